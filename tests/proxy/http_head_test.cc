// The request and response head parsers, table-driven: every status
// (Ok, NeedMore, Malformed, TooLarge) with the inputs real clients send
// and the ones a smuggling or confusion attack would.
#include <catch2/catch.hpp>

#include <string>
#include <string_view>

#include "proxy/http_head.h"

namespace {

std::span<const uint8_t> bytes(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

struct Case {
  const char* description;
  std::string input;
  proxy::ParseStatus status;
  const char* whyContains = "";
};

}  // namespace

TEST_CASE("request heads: every status, from real clients and from attackers", "[proxy][http_head]") {
  using S = proxy::ParseStatus;
  const Case cases[] = {
      {"curl CONNECT", "CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n", S::Ok},
      {"curl absolute-form", "GET http://api.example.com/x HTTP/1.1\r\nHost: api.example.com\r\n\r\n", S::Ok},
      {"HTTP/1.0 CONNECT without headers", "CONNECT 10.0.0.1:5432 HTTP/1.0\r\n\r\n", S::Ok},
      {"leading empty lines are skipped", "\r\n\r\nCONNECT a.example.com:443 HTTP/1.1\r\n\r\n", S::Ok},
      {"no blank line yet", "CONNECT api.example.com:443 HTTP/1.1\r\nHost: a", S::NeedMore},
      {"nothing yet", "", S::NeedMore},
      {"bare LF line ends", "CONNECT api.example.com:443 HTTP/1.1\nHost: x\n\n", S::Malformed, "bare LF"},
      {"bare LF before the end", "GET http://a/ HTTP/1.1\r\nA: b\nC: d\r\n\r\n", S::Malformed, "bare"},
      {"obsolete line folding", "GET http://a.example/ HTTP/1.1\r\nX: a\r\n b\r\n\r\n", S::Malformed,
       "folding"},
      {"space before the colon", "GET http://a.example/ HTTP/1.1\r\nHost : a\r\n\r\n", S::Malformed,
       "header name"},
      {"a line without a colon", "GET http://a.example/ HTTP/1.1\r\nHost a\r\n\r\n", S::Malformed, "colon"},
      {"NUL in a value", std::string("GET http://a.example/ HTTP/1.1\r\nX: a\0b\r\n\r\n", 42), S::Malformed,
       "control"},
      {"CL and TE together",
       "POST http://a.example/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
       S::Malformed, "both"},
      {"conflicting Content-Length",
       "POST http://a.example/ HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", S::Malformed,
       "Content-Length"},
      {"Content-Length list", "POST http://a.example/ HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n", S::Malformed,
       "Content-Length"},
      {"negative Content-Length", "POST http://a.example/ HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
       S::Malformed, "Content-Length"},
      {"gzip transfer coding", "POST http://a.example/ HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
       S::Malformed, "Transfer-Encoding"},
      {"chunked twice",
       "POST http://a.example/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
       S::Malformed, "Transfer-Encoding"},
      {"chunked in HTTP/1.0", "POST http://a.example/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
       S::Malformed, "HTTP/1.0"},
      {"two Host fields", "GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
       S::Malformed, "Host"},
      {"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", S::Malformed, "HTTP/1"},
      {"HTTP/0.9 style", "GET /\r\n\r\n", S::Malformed, "request line"},
      {"two spaces", "GET  http://a.example/ HTTP/1.1\r\n\r\n", S::Malformed, "request line"},
      {"CONNECT without a port", "CONNECT api.example.com HTTP/1.1\r\n\r\n", S::Malformed, "host:port"},
      {"CONNECT port 0", "CONNECT api.example.com:0 HTTP/1.1\r\n\r\n", S::Malformed, "port"},
      {"CONNECT port 65536", "CONNECT api.example.com:65536 HTTP/1.1\r\n\r\n", S::Malformed, "port"},
      {"userinfo", "GET http://user:pw@evil.example/ HTTP/1.1\r\n\r\n", S::Malformed, "userinfo"},
      {"percent-encoded host", "GET http://ev%69l.example/ HTTP/1.1\r\n\r\n", S::Malformed, "percent"},
      {"IPv6 zone", "CONNECT [fe80::1%25eth0]:443 HTTP/1.1\r\n\r\n", S::Malformed, "percent"},
      {"numeric short IPv4", "GET http://127.1/ HTTP/1.1\r\n\r\n", S::Malformed, "numeric"},
      {"hex IPv4", "CONNECT 0x7f.0.0.1:443 HTTP/1.1\r\n\r\n", S::Malformed, "numeric"},
      {"decimal IPv4", "CONNECT 2130706433:443 HTTP/1.1\r\n\r\n", S::Malformed, "numeric"},
      {"fragment", "GET http://a.example/x#frag HTTP/1.1\r\n\r\n", S::Malformed, "fragment"},
      {"unknown scheme", "GET ftp://a.example/ HTTP/1.1\r\n\r\n", S::Malformed, "target"},
      {"underscore host is fine", "CONNECT my_host.example.com:443 HTTP/1.1\r\n\r\n", S::Ok},
      {"tab in host", "CONNECT a\tb:443 HTTP/1.1\r\n\r\n", S::Malformed, "control"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.description);
    proxy::RequestHead head;
    CHECK(proxy::parseRequestHead(bytes(c.input), 4096, head) == c.status);
    if (c.status == S::Malformed) CHECK(head.why.find(c.whyContains) != std::string_view::npos);
  }
}

TEST_CASE("a head that does not end within the limit is TooLarge", "[proxy][http_head]") {
  std::string input = "GET http://a.example/ HTTP/1.1\r\nX-Big: " + std::string(5000, 'a');
  proxy::RequestHead head;
  CHECK(proxy::parseRequestHead(bytes(input), 4096, head) == proxy::ParseStatus::TooLarge);
  // Below the limit it is only incomplete.
  CHECK(proxy::parseRequestHead(bytes(input.substr(0, 4000)), 4096, head) == proxy::ParseStatus::NeedMore);
  // A complete head of exactly the limit is accepted.
  std::string exact = "GET http://a.example/ HTTP/1.1\r\nX: ";
  exact += std::string(4096 - exact.size() - 4, 'b') + "\r\n\r\n";
  REQUIRE(exact.size() == 4096);
  CHECK(proxy::parseRequestHead(bytes(exact), 4096, head) == proxy::ParseStatus::Ok);
}

TEST_CASE("CONNECT: the authority, IPv4 and IPv6 literals", "[proxy][http_head]") {
  proxy::RequestHead head;
  REQUIRE(proxy::parseRequestHead(bytes("CONNECT API.Example.com:443 HTTP/1.1\r\n\r\n"), 4096, head) ==
          proxy::ParseStatus::Ok);
  CHECK(head.form == proxy::RequestForm::Connect);
  CHECK(head.authority.host == "API.Example.com");
  CHECK(head.authority.port == 443);
  CHECK_FALSE(head.authority.ipLiteral);
  CHECK(head.keepAlive());

  REQUIRE(proxy::parseRequestHead(bytes("CONNECT [2001:db8::1]:8443 HTTP/1.1\r\n\r\n"), 4096, head) ==
          proxy::ParseStatus::Ok);
  CHECK(head.authority.host == "2001:db8::1");
  CHECK(head.authority.port == 8443);
  CHECK(head.authority.ipLiteral);

  REQUIRE(proxy::parseRequestHead(bytes("CONNECT 203.0.113.7:22 HTTP/1.0\r\n\r\n"), 4096, head) ==
          proxy::ParseStatus::Ok);
  CHECK(head.authority.ipLiteral);
  CHECK_FALSE(head.keepAlive());  // HTTP/1.0 without keep-alive
}

TEST_CASE("absolute-form: authority, default port, path, framing, keep-alive", "[proxy][http_head]") {
  proxy::RequestHead head;
  const std::string input =
      "POST http://api.example.com:8080/upload?x=1 HTTP/1.1\r\nHost: wrong.example\r\n"
      "Content-Length: 12\r\nProxy-Connection: close\r\nX-Empty:\r\n\r\nbody";
  REQUIRE(proxy::parseRequestHead(bytes(input), 4096, head) == proxy::ParseStatus::Ok);
  CHECK(head.form == proxy::RequestForm::Absolute);
  CHECK(head.authority.host == "api.example.com");
  CHECK(head.authority.port == 8080);
  CHECK(head.authority.text == "api.example.com:8080");
  CHECK(head.path == "/upload?x=1");
  CHECK(head.headers.hasContentLength);
  CHECK(head.headers.contentLength == 12);
  CHECK_FALSE(head.keepAlive());
  CHECK(head.headLength == input.size() - 4);
  CHECK(head.headers.count == 4);
  CHECK(head.headers.fields[3].value.empty());

  REQUIRE(proxy::parseRequestHead(bytes("GET http://www.example.org HTTP/1.1\r\n\r\n"), 4096, head) ==
          proxy::ParseStatus::Ok);
  CHECK(head.authority.port == 80);
  CHECK(head.path.empty());

  REQUIRE(proxy::parseRequestHead(bytes("GET https://www.example.org/ HTTP/1.1\r\n\r\n"), 4096, head) ==
          proxy::ParseStatus::Ok);
  CHECK(head.httpsScheme);
  CHECK(head.authority.port == 443);

  REQUIRE(proxy::parseRequestHead(bytes("GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n"), 4096, head) ==
          proxy::ParseStatus::Ok);
  CHECK(head.form == proxy::RequestForm::Origin);

  REQUIRE(proxy::parseRequestHead(
              bytes("PUT http://a.example/ HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n"), 4096, head) ==
          proxy::ParseStatus::Ok);
  CHECK(head.headers.chunked);
  CHECK(head.hasBody());
}

TEST_CASE("response heads: status, framing, errors", "[proxy][http_head]") {
  using S = proxy::ParseStatus;
  proxy::ResponseHead head;
  REQUIRE(proxy::parseResponseHead(bytes("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), 4096, head) ==
          S::Ok);
  CHECK(head.status == 200);
  CHECK(head.reason == "OK");
  CHECK(head.headers.contentLength == 5);
  REQUIRE(proxy::parseResponseHead(bytes("HTTP/1.1 204\r\n\r\n"), 4096, head) == S::Ok);
  CHECK(head.status == 204);
  CHECK(head.reason.empty());
  CHECK(proxy::parseResponseHead(bytes("HTTP/1.1 200 OK\r\n"), 4096, head) == S::NeedMore);
  CHECK(proxy::parseResponseHead(bytes("HTTP/1.1 2000 OK\r\n\r\n"), 4096, head) == S::Malformed);
  CHECK(proxy::parseResponseHead(bytes("HTTP/1.1 099 Low\r\n\r\n"), 4096, head) == S::Malformed);
  CHECK(proxy::parseResponseHead(bytes("SSH-2.0-OpenSSH\r\n\r\n"), 4096, head) == S::Malformed);
  CHECK(proxy::parseResponseHead(
            bytes("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"), 4096,
            head) == S::Malformed);
  CHECK(proxy::parseResponseHead(bytes(std::string(5000, 'x')), 4096, head) == S::TooLarge);
}

TEST_CASE("parseStatusName names every status", "[proxy][http_head]") {
  CHECK(proxy::parseStatusName(proxy::ParseStatus::Ok) == "ok");
  CHECK(proxy::parseStatusName(proxy::ParseStatus::NeedMore) == "need_more");
  CHECK(proxy::parseStatusName(proxy::ParseStatus::Malformed) == "malformed");
  CHECK(proxy::parseStatusName(proxy::ParseStatus::TooLarge) == "too_large");
}

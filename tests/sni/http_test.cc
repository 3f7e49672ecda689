#include <catch2/catch.hpp>
#include <string>

#include "sni/http.h"
#include "tests/sni/test_util.h"

using namespace sni_test;
using sni::HttpTargetForm;
using sni::ParseStatus;

namespace {

sni::HttpRequestResult parse(std::string_view s) {
  // Exact-size heap copy so sanitizers catch reads past the end.
  const Bytes b(s.begin(), s.end());
  auto r = sni::parseHttpRequest(b);
  // Views would dangle after return: keep only what the cases compare.
  static std::string host, method;
  host.assign(r.host);
  method.assign(r.method);
  r.host = host;
  r.method = method;
  r.target = {};
  return r;
}

struct OkCase {
  const char* description;
  const char* request;
  const char* method;
  const char* host;
  uint16_t port;
  HttpTargetForm form;
  bool ipLiteral;
};

const OkCase kOk[] = {
    {"origin-form", "GET /v1/items?x=1 HTTP/1.1\r\nHost: api.example.com\r\nAccept: */*\r\n\r\n", "GET",
     "api.example.com", 0, HttpTargetForm::Origin, false},
    {"port in Host", "GET / HTTP/1.1\r\nHost: api.example.com:8080\r\n\r\n", "GET", "api.example.com", 8080,
     HttpTargetForm::Origin, false},
    {"header name case, OWS around value", "POST /x HTTP/1.1\r\nhOsT:\t api.example.com \t\r\n\r\n", "POST",
     "api.example.com", 0, HttpTargetForm::Origin, false},
    {"no OWS", "GET / HTTP/1.1\r\nHost:api.example.com\r\n\r\n", "GET", "api.example.com", 0,
     HttpTargetForm::Origin, false},
    {"host case kept, trailing dot dropped", "GET / HTTP/1.1\r\nHost: API.Example.COM.\r\n\r\n", "GET",
     "API.Example.COM", 0, HttpTargetForm::Origin, false},
    {"absolute-form", "GET http://api.example.com/path HTTP/1.1\r\nHost: api.example.com\r\n\r\n", "GET",
     "api.example.com", 0, HttpTargetForm::Absolute, false},
    {"absolute-form with port, Host differs in case",
     "GET HTTP://Api.Example.com:81/?q HTTP/1.1\r\nHost: api.example.com:81\r\n\r\n", "GET",
     "Api.Example.com", 81, HttpTargetForm::Absolute, false},
    {"absolute-form, HTTP/1.0 without Host", "GET http://api.example.com HTTP/1.0\r\n\r\n", "GET",
     "api.example.com", 0, HttpTargetForm::Absolute, false},
    {"authority-form CONNECT", "CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n",
     "CONNECT", "api.example.com", 443, HttpTargetForm::Authority, false},
    {"asterisk-form", "OPTIONS * HTTP/1.1\r\nHost: api.example.com\r\n\r\n", "OPTIONS", "api.example.com", 0,
     HttpTargetForm::Asterisk, false},
    {"IPv4 Host", "GET / HTTP/1.1\r\nHost: 203.0.113.7:8080\r\n\r\n", "GET", "203.0.113.7", 8080,
     HttpTargetForm::Origin, true},
    {"IPv6 Host", "GET / HTTP/1.1\r\nHost: [2001:db8::1]:8443\r\n\r\n", "GET", "2001:db8::1", 8443,
     HttpTargetForm::Origin, true},
    {"HTTP/1.0 without Host", "GET / HTTP/1.0\r\nUser-Agent: x\r\n\r\n", "GET", "", 0, HttpTargetForm::Origin,
     false},
    {"one leading empty line", "\r\nGET / HTTP/1.1\r\nHost: a.example\r\n\r\n", "GET", "a.example", 0,
     HttpTargetForm::Origin, false},
    {"obs-text in another field", "GET / HTTP/1.1\r\nX: caf\xc3\xa9\r\nHost: a.example\r\n\r\n", "GET",
     "a.example", 0, HttpTargetForm::Origin, false},
    {"body bytes after the header", "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\n\r\nabc",
     "POST", "a.example", 0, HttpTargetForm::Origin, false},
};

struct BadCase {
  const char* request;
  ParseStatus status;
  const char* reason;
};

const BadCase kBad[] = {
    {"\x16\x03\x01\x00\x10", ParseStatus::NotThisProtocol, "None"},
    {"SSH-2.0-OpenSSH_9.2\r\n", ParseStatus::NotThisProtocol, "None"},
    {"\r\n\r\n\r\nGET / HTTP/1.1\r\n", ParseStatus::NotThisProtocol, "None"},
    {"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", ParseStatus::Malformed, "HttpRequestLine"},
    {"GET /\r\n\r\n", ParseStatus::Malformed, "HttpVersion"},
    {"GET / HTTP/2.0\r\n\r\n", ParseStatus::Malformed, "HttpVersion"},
    {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", ParseStatus::Malformed, "HttpVersion"},
    {"GET / http/1.1\r\nHost: a\r\n\r\n", ParseStatus::Malformed, "HttpVersion"},
    {"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", ParseStatus::Malformed, "HttpRequestLine"},
    {"GET / HTTP/1.1\nHost: a\n\n", ParseStatus::Malformed, "HttpBareLineFeed"},
    {"GET / HTTP/1.1\r\nHost: a\n\r\n", ParseStatus::Malformed, "HttpBareLineFeed"},
    {"GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", ParseStatus::Malformed, "HttpTarget"},
    {"GET ftp://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n", ParseStatus::Malformed, "HttpTarget"},
    {"GET * HTTP/1.1\r\nHost: a\r\n\r\n", ParseStatus::Malformed, "HttpTarget"},
    {"CONNECT a.example HTTP/1.1\r\nHost: a.example\r\n\r\n", ParseStatus::Malformed, "HttpTarget"},
    {"GET http://good.example@evil.example/ HTTP/1.1\r\nHost: evil.example\r\n\r\n", ParseStatus::Malformed,
     "HttpUserinfo"},
    {"GET / HTTP/1.1\r\nHost : a.example\r\n\r\n", ParseStatus::Malformed, "HttpWhitespaceBeforeColon"},
    {"GET / HTTP/1.1\r\nX: 1\r\n folded\r\nHost: a\r\n\r\n", ParseStatus::Malformed, "HttpObsFold"},
    {"GET / HTTP/1.1\r\n Host: a\r\n\r\n", ParseStatus::Malformed, "HttpObsFold"},
    {"GET / HTTP/1.1\r\nHo(st: a\r\n\r\n", ParseStatus::Malformed, "HttpFieldName"},
    {"GET / HTTP/1.1\r\n: a\r\n\r\n", ParseStatus::Malformed, "HttpFieldName"},
    {"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", ParseStatus::Malformed, "HttpFieldValue"},
    {"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", ParseStatus::Malformed, "HttpMissingHost"},
    {"GET / HTTP/1.1\r\nHost: a.example\r\nHOST: b.example\r\n\r\n", ParseStatus::Malformed,
     "HttpDuplicateHost"},
    {"GET / HTTP/1.1\r\nHost: \r\n\r\n", ParseStatus::Malformed, "HttpBadHost"},
    {"GET / HTTP/1.1\r\nHost: a.example:0\r\n\r\n", ParseStatus::Malformed, "HttpBadHost"},
    {"GET / HTTP/1.1\r\nHost: a.example:65536\r\n\r\n", ParseStatus::Malformed, "HttpBadHost"},
    {"GET / HTTP/1.1\r\nHost: a.example:\r\n\r\n", ParseStatus::Malformed, "HttpBadHost"},
    {"GET / HTTP/1.1\r\nHost: a.example:80:80\r\n\r\n", ParseStatus::Malformed, "HttpBadHost"},
    {"GET / HTTP/1.1\r\nHost: a%2eexample\r\n\r\n", ParseStatus::Malformed, "HttpBadHost"},
    {"GET / HTTP/1.1\r\nHost: a.example, b.example\r\n\r\n", ParseStatus::Malformed, "HttpBadHost"},
    {"GET / HTTP/1.1\r\nHost: [2001:db8::1\r\n\r\n", ParseStatus::Malformed, "HttpBadHost"},
    {"GET / HTTP/1.1\r\nHost: [a.example]\r\n\r\n", ParseStatus::Malformed, "HttpBadHost"},
    {"GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n", ParseStatus::Malformed, "HttpHostMismatch"},
    {"GET http://a.example:81/ HTTP/1.1\r\nHost: a.example\r\n\r\n", ParseStatus::Malformed,
     "HttpHostMismatch"},
};

}  // namespace

TEST_CASE("HTTP requests in every form") {
  for (const auto& c : kOk) {
    INFO(c.description);
    const auto r = parse(c.request);
    REQUIRE(r.status == ParseStatus::Ok);
    CHECK(r.method == c.method);
    CHECK(r.host == c.host);
    CHECK(r.port == c.port);
    CHECK(r.targetForm == c.form);
    CHECK(r.hostIsIpLiteral == c.ipLiteral);
  }
}

TEST_CASE("HTTP refusals are named") {
  for (const auto& c : kBad) {
    const std::string_view request(c.request);
    INFO(request);
    const auto r = parse(request);
    CHECK(r.status == c.status);
    CHECK(sni::malformedReasonName(r.reason) == c.reason);
  }
  // NUL inside a value (a C string cannot carry it in the table above).
  static const char kNul[] = "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n";
  const std::string withNul(kNul, sizeof kNul - 1);
  const auto r = parse(withNul);
  CHECK(sni::malformedReasonName(r.reason) == "HttpFieldValue");
}

TEST_CASE("HTTP request split at every byte: NeedMore then the same result") {
  const Bytes captured = readFixture("curl_http.bin");
  const std::string curl(captured.begin(), captured.end());
  for (const std::string& request :
       {curl, std::string(kOk[0].request), std::string(kOk[6].request), std::string(kOk[11].request)}) {
    const auto whole = sni::parseHttpRequest(Bytes(request.begin(), request.end()));
    REQUIRE(whole.status == ParseStatus::Ok);
    for (size_t cut = 0; cut < whole.consumed; ++cut) {
      INFO(request << " cut " << cut);
      const Bytes first(request.begin(), request.begin() + static_cast<long>(cut));
      const auto partial = sni::parseHttpRequest(first);
      REQUIRE(partial.status == ParseStatus::NeedMore);
      REQUIRE(partial.needBytes >= 1);
      REQUIRE(partial.needBytes <= whole.consumed - cut);
    }
  }
  const auto r = sni::parseHttpRequest(captured);
  REQUIRE(r.status == ParseStatus::Ok);
  CHECK(r.method == "GET");
  CHECK(r.host == "api.example.com");
  CHECK(r.port != 0);  // curl puts the non-default port into Host
}

TEST_CASE("HTTP header section is bounded") {
  std::string request =
      "GET / HTTP/1.1\r\nHost: a.example\r\nX: " + std::string(sni::kMaxHttpHeaderBytes, 'x');
  auto r = parse(request);
  CHECK(sni::malformedReasonName(r.reason) == "HttpHeaderTooLarge");
  request += "\r\n\r\n";
  r = parse(request);
  CHECK(sni::malformedReasonName(r.reason) == "HttpHeaderTooLarge");
}

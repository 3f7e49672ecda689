#include <array>
#include <catch2/catch.hpp>
#include <set>
#include <string>

#include "sni/tls.h"
#include "tests/sni/test_util.h"

using namespace sni_test;
using sni::MalformedReason;
using sni::ParseStatus;

namespace {

std::array<uint8_t, sni::kMaxClientHelloBytes> gScratch;

sni::TlsHelloResult parse(const Bytes& b) {
  return sni::parseTlsClientHello(b, gScratch);
}

// Results are views into their input: keep a temporary input alive.
Bytes gKept;
sni::TlsHelloResult parseOwned(Bytes b) {
  gKept = std::move(b);
  return parse(gKept);
}

std::string reasonOf(const sni::TlsHelloResult& r) {
  return std::string(sni::malformedReasonName(r.reason));
}

struct RealHello {
  const char* file;
  const char* serverName;  // "" = none
  uint16_t maxVersion;
  const char* firstAlpn;  // "" = no ALPN
  bool ech;
  size_t minSize;
};

// Captured from real clients by tests/sni/fixtures/capture.py.
const RealHello kRealHellos[] = {
    {"rfc8448_client_hello.bin", "server", 0x0304, "", false, 201},
    {"openssl_s_client.bin", "api.example.com", 0x0304, "", false, 200},
    {"openssl_no_sni.bin", "", 0x0304, "", false, 200},
    {"openssl_tls12.bin", "legacy.example.com", 0x0303, "", false, 100},
    {"openssl_fragmented.bin", "split.example.com", 0x0304, "", false, 300},
    {"curl.bin", "api.example.com", 0x0304, "h2", false, 500},
    {"go_pq.bin", "api.example.com", 0x0304, "h2", false, 1501},
    // ECH: the outer SNI is the provider's public name from the ECH config.
    {"go_ech.bin", "public.example.com", 0x0304, "h2", true, 1501},
};

void checkSame(const sni::TlsHelloResult& a, const sni::TlsHelloResult& b) {
  REQUIRE(a.status == b.status);
  REQUIRE(a.hello.serverName == b.hello.serverName);
  REQUIRE(a.hello.maxVersion == b.hello.maxVersion);
  REQUIRE(a.hello.alpnCount == b.hello.alpnCount);
  REQUIRE(a.hello.echPresent == b.hello.echPresent);
  REQUIRE(a.consumed == b.consumed);
}

}  // namespace

TEST_CASE("RFC 8448 section 3 ClientHello") {
  const Bytes stream = readFixture("rfc8448_client_hello.bin");
  const auto r = parse(stream);
  REQUIRE(r.status == ParseStatus::Ok);
  CHECK(r.hello.serverName == "server");
  CHECK(r.hello.legacyVersion == 0x0303);
  CHECK(r.hello.maxVersion == 0x0304);
  CHECK(r.hello.hasSupportedVersions);
  CHECK_FALSE(r.hello.hasAlpn);
  CHECK_FALSE(r.hello.echPresent);
  CHECK_FALSE(r.hello.greaseSeen);
  CHECK(r.hello.cipherSuites.size() == 6);
  CHECK(r.hello.extensionCount == 9);
  CHECK(r.consumed == stream.size());
  CHECK_FALSE(r.usedScratch);
  // The same message without the record layer (as QUIC carries it).
  const Bytes message(stream.begin() + 5, stream.end());
  const auto m = sni::parseClientHelloMessage(message);
  REQUIRE(m.status == ParseStatus::Ok);
  CHECK(m.hello.serverName == "server");
}

TEST_CASE("real client hellos: fields") {
  for (const auto& h : kRealHellos) {
    INFO(h.file);
    const Bytes stream = readFixture(h.file);
    REQUIRE(stream.size() >= h.minSize);
    const auto r = parse(stream);
    REQUIRE(r.status == ParseStatus::Ok);
    CHECK(r.hello.serverName == h.serverName);
    CHECK(r.hello.hasServerNameExtension == (std::string_view(h.serverName) != ""));
    CHECK(r.hello.maxVersion == h.maxVersion);
    CHECK(r.hello.echPresent == h.ech);
    if (std::string_view(h.firstAlpn).empty()) {
      CHECK_FALSE(r.hello.hasAlpn);
    } else {
      REQUIRE(r.hello.alpnCount >= 1);
      CHECK(r.hello.alpn[0] == h.firstAlpn);
    }
    CHECK(r.consumed == stream.size());
  }
}

TEST_CASE("post-quantum hellos exceed one segment") {
  const Bytes stream = readFixture("go_pq.bin");
  CHECK(stream.size() > 1500);
  // The ML-KEM share: key_share carries X25519MLKEM768 (0x11ec).
  const Bytes needle{0x11, 0xec};
  CHECK(std::search(stream.begin(), stream.end(), needle.begin(), needle.end()) != stream.end());
}

TEST_CASE("every split into two segments gives NeedMore then the same result") {
  for (const auto& h : kRealHellos) {
    INFO(h.file);
    const Bytes stream = readFixture(h.file);
    const auto whole = parse(stream);
    REQUIRE(whole.status == ParseStatus::Ok);
    for (size_t cut = 0; cut < stream.size(); ++cut) {
      INFO("cut " << cut);
      // First segment alone: exact-size copy so ASan sees any over-read.
      const Bytes first(stream.begin(), stream.begin() + static_cast<long>(cut));
      const auto partial = parse(first);
      REQUIRE(partial.status == ParseStatus::NeedMore);
      REQUIRE(partial.needBytes >= 1);
      REQUIRE(partial.needBytes <= stream.size() - cut);  // a lower bound, never more than what is missing
      Bytes both = first;
      both.insert(both.end(), stream.begin() + static_cast<long>(cut), stream.end());
      checkSame(parse(both), whole);
    }
  }
}

TEST_CASE("hello fragmented over several records is reassembled in scratch") {
  const Bytes message = handshakeOf(readFixture("go_pq.bin"));
  for (size_t fragment : {1u, 3u, 100u, 1000u}) {
    INFO("fragment " << fragment);
    const Bytes stream = records(message, fragment);
    const auto r = parse(stream);
    REQUIRE(r.status == ParseStatus::Ok);
    CHECK(r.usedScratch);
    CHECK(r.hello.serverName == "api.example.com");
    CHECK(r.consumed == stream.size());
    // Without (enough) scratch: a named refusal, never a wrong answer.
    std::array<uint8_t, 64> small{};
    CHECK(reasonOf(sni::parseTlsClientHello(stream, small)) == "TlsScratchTooSmall");
    // NeedMore is decided without scratch.
    CHECK(sni::parseTlsClientHello(std::span(stream).first(stream.size() - 1)).status ==
          ParseStatus::NeedMore);
  }
  // Records after the hello (e.g. early data) are not part of it.
  Bytes stream = records(message, 500);
  const size_t helloBytes = stream.size();
  append(stream, Bytes{23, 3, 3, 0, 2, 0xaa, 0xbb});
  const auto r = parse(stream);
  REQUIRE(r.status == ParseStatus::Ok);
  CHECK(r.consumed == helloBytes);
}

TEST_CASE("GREASE values are skipped") {
  HelloSpec spec;
  spec.cipherSuites = {0x3a3a, 0x1301};
  spec.extensions = {{0x0a0a, {}},
                     sniExtension("grease.example.com"),
                     alpnExtension({"\x5a\x5a", "h2", "http/1.1"}),
                     versionsExtension({0x7a7a, 0x0304, 0x0303}),
                     {0xfafa, {0}}};
  const auto r = parseOwned(records(helloMessage(spec)));
  REQUIRE(r.status == ParseStatus::Ok);
  CHECK(r.hello.greaseSeen);
  CHECK(r.hello.maxVersion == 0x0304);  // 0x7a7a is larger but GREASE
  REQUIRE(r.hello.alpnCount == 2);
  CHECK(r.hello.alpn[0] == "h2");
  CHECK(r.hello.alpn[1] == "http/1.1");
  CHECK(r.hello.serverName == "grease.example.com");
  CHECK(sni::isGrease(0x0a0a));
  CHECK(sni::isGrease(0xfafa));
  CHECK_FALSE(sni::isGrease(0x0a1a));
  CHECK_FALSE(sni::isGrease(0x1301));
}

TEST_CASE("ECH extension present") {
  HelloSpec spec;
  spec.extensions = {
      sniExtension("public.example.net"), versionsExtension({0x0304}), {0xfe0d, {0, 0, 1, 0, 1}}};
  auto r = parseOwned(records(helloMessage(spec)));
  REQUIRE(r.status == ParseStatus::Ok);
  CHECK(r.hello.echPresent);
  CHECK(r.hello.echType == 0);
  CHECK(r.hello.serverName == "public.example.net");
  spec.extensions[2].data = {1};  // inner
  r = parseOwned(records(helloMessage(spec)));
  REQUIRE(r.status == ParseStatus::Ok);
  CHECK(r.hello.echType == 1);
  spec.extensions[2].data = {7};
  CHECK(reasonOf(parseOwned(records(helloMessage(spec)))) == "TlsEchExtension");
}

TEST_CASE("SNI absent, IP literal, trailing dot, case") {
  HelloSpec spec;
  spec.extensions = {versionsExtension({0x0304})};
  auto r = parseOwned(records(helloMessage(spec)));
  REQUIRE(r.status == ParseStatus::Ok);
  CHECK_FALSE(r.hello.hasServerNameExtension);
  CHECK(r.hello.serverName.empty());

  for (const char* ip : {"203.0.113.7", "2001:db8::1", "::ffff:192.0.2.1", "127.1"}) {
    INFO(ip);
    spec.extensions = {sniExtension(ip)};
    r = parseOwned(records(helloMessage(spec)));
    REQUIRE(r.status == ParseStatus::Ok);
    CHECK(r.hello.hasServerNameExtension);
    CHECK(r.hello.serverName.empty());  // never matched as a name
    CHECK(r.hello.serverNameIpLiteral == ip);
  }
  spec.extensions = {sniExtension("API.Example.com.")};
  r = parseOwned(records(helloMessage(spec)));
  REQUIRE(r.status == ParseStatus::Ok);
  CHECK(r.hello.serverName == "API.Example.com");  // case kept, dot dropped

  spec.extensions = {};
  spec.omitExtensions = true;  // TLS 1.2 and older may omit the block
  r = parseOwned(records(helloMessage(spec)));
  REQUIRE(r.status == ParseStatus::Ok);
  CHECK(r.hello.maxVersion == 0x0303);
  CHECK(r.hello.extensionCount == 0);
}

TEST_CASE("not TLS") {
  for (std::string_view s : {"GET / HTTP/1.1\r\n", "SSH-2.0-OpenSSH_9.2\r\n", "\x80\x2e\x01\x03\x01",
                             "\x16\x02", "\x17\x03\x03\x00\x10"}) {
    const Bytes b(s.begin(), s.end());
    CHECK(parse(b).status == ParseStatus::NotThisProtocol);
  }
  CHECK(parse(Bytes{}).status == ParseStatus::NeedMore);
  CHECK(parse(Bytes{0x16}).status == ParseStatus::NeedMore);
}

TEST_CASE("malformed hellos are refused with a named reason") {
  const auto withExtensions = [](std::vector<Extension> e) {
    HelloSpec spec;
    spec.extensions = std::move(e);
    return records(helloMessage(spec));
  };
  const Bytes good = withExtensions({sniExtension("a.example")});
  struct Case {
    const char* reason;
    Bytes input;
  };
  std::vector<Case> cases;
  {
    HelloSpec s;
    s.sessionIdLength = 33;
    cases.push_back({"TlsSessionIdTooLong", records(helloMessage(s))});
  }
  {
    HelloSpec s;
    s.cipherSuites = {};
    cases.push_back({"TlsCipherSuites", records(helloMessage(s))});
  }
  {
    HelloSpec s;
    s.compression = {};
    cases.push_back({"TlsCompressionMethods", records(helloMessage(s))});
  }
  cases.push_back({"TlsDuplicateExtension",
                   withExtensions({sniExtension("a.example"), {43, {2, 3, 4}}, sniExtension("b.example")})});
  cases.push_back({"TlsDuplicateExtension", withExtensions({{0x1234, {}}, {0x1234, {}}})});
  cases.push_back({"TlsPskNotLast", withExtensions({{41, {0}}, sniExtension("a.example")})});
  cases.push_back({"TlsBadServerName", withExtensions({sniExtension(std::string("a\0b.com", 7))})});
  cases.push_back({"TlsBadServerName", withExtensions({sniExtension("a b.com")})});
  cases.push_back({"TlsBadServerName", withExtensions({sniExtension("a..com")})});
  cases.push_back({"TlsBadServerName", withExtensions({sniExtension(".a.com")})});
  cases.push_back({"TlsBadServerName", withExtensions({sniExtension(std::string(64, 'a') + ".com")})});
  cases.push_back({"TlsBadServerName", withExtensions({sniExtension("caf\xc3\xa9.com")})});
  cases.push_back({"TlsServerNameList", withExtensions({{0, {0, 0}}})});
  cases.push_back({"TlsServerNameList", withExtensions({{0, {0, 5, 0, 0, 1, 'a'}}})});
  cases.push_back({"TlsServerNameList", withExtensions({{0, {0, 4, 1, 0, 1, 'a'}}})});  // unknown name_type
  cases.push_back({"TlsDuplicateServerName", withExtensions({{0, {0, 8, 0, 0, 1, 'a', 0, 0, 1, 'b'}}})});
  cases.push_back({"TlsAlpnList", withExtensions({{16, {0, 2, 0, 0}}})});
  cases.push_back({"TlsAlpnList", withExtensions({{16, {0, 3, 2, 'h'}}})});
  cases.push_back({"TlsSupportedVersions", withExtensions({{43, {3, 3, 4, 3}}})});
  cases.push_back({"TlsSupportedVersions", withExtensions({{43, {}}})});
  {
    Bytes b = good;  // extension block length one too long
    b[5 + 4 + 2 + 32 + 1 + 32 + 2 + 4 + 1 + 1 + 1] += 1;
    cases.push_back({"TlsExtensionsLength", b});
  }
  {
    Bytes msg = helloMessage(HelloSpec{.extensions = {sniExtension("a.example")}});
    msg.push_back(0);  // inner ext length off: declared block shorter than body
    msg[3] = static_cast<uint8_t>(msg[3] + 1);
    cases.push_back({"TlsExtensionsLength", records(msg)});
  }
  {
    Bytes msg = helloMessage(HelloSpec{});
    msg[0] = 2;  // ServerHello
    cases.push_back({"TlsNotClientHello", records(msg)});
  }
  cases.push_back({"TlsHelloTooLarge", Bytes{22, 3, 1, 0, 4, 1, 0, 0x50, 0}});
  cases.push_back({"TlsRecordEmpty", Bytes{22, 3, 1, 0, 0}});
  cases.push_back({"TlsRecordTooLong", Bytes{22, 3, 1, 0x40, 0x01}});
  cases.push_back({"TlsRecordVersion", Bytes{22, 3, 9, 0, 4}});
  {
    // A record of another type between two fragments of the hello.
    const Bytes msg = helloMessage(HelloSpec{});
    Bytes b = records(Bytes(msg.begin(), msg.begin() + 10), 10);
    append(b, Bytes{21, 3, 3, 0, 2, 1, 0});
    append(b, records(Bytes(msg.begin() + 10, msg.end())));
    cases.push_back({"TlsRecordInterleaved", b});
  }
  {
    Bytes msg = helloMessage(HelloSpec{});
    append(msg, Bytes{0x10, 0, 0, 0});  // a second handshake message in the same record
    cases.push_back({"TlsTrailingRecordBytes", records(msg)});
  }
  {
    Bytes msg = helloMessage(HelloSpec{});
    msg.resize(20);
    msg[1] = 0, msg[2] = 0, msg[3] = 16;
    cases.push_back({"TlsHelloTruncated", records(msg)});
  }
  for (const auto& c : cases) {
    INFO(c.reason);
    const auto r = parse(c.input);
    CHECK(r.status == ParseStatus::Malformed);
    CHECK(reasonOf(r) == c.reason);
  }
  CHECK(parse(good).status == ParseStatus::Ok);
}

TEST_CASE("malformed reasons have distinct names") {
  std::set<std::string_view> names;
  for (size_t i = 0; i < sni::kMalformedReasonCount; ++i) {
    const auto name = sni::malformedReasonName(static_cast<MalformedReason>(i));
    CHECK(name != "Unknown");
    names.insert(name);
  }
  CHECK(names.size() == sni::kMalformedReasonCount);
}

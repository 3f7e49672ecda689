// Upstream answer analysis: question matching, CNAME chains, TTLs, the
// rebinding check and ECH stripping.
#include <catch2/catch.hpp>

#include <string>

#include "common/c_handle.h"
#include "dns/answer.h"
#include "dns_test_util.h"

// ldns last: its headers define macros that upset <optional>.
#include <ldns/ldns.h>

using dns::AnswerStatus;
using dnstest::Msg;

namespace {

constexpr uint16_t kResponse = dns::flag::QR | dns::flag::RD | dns::flag::RA;

common::IpAddress ip(const char* text) {
  return *common::parseIpAddress(text);
}

Msg answerHeader(uint16_t id, uint16_t flags, uint16_t an, uint16_t ns, std::string_view qname,
                 uint16_t qtype) {
  Msg m;
  m.header(id, flags, 1, an, ns, 0).question(qname, qtype);
  return m;
}

}  // namespace

TEST_CASE("the answer must match ID and question", "[dns][answer]") {
  const auto q = dnstest::parsed(dnstest::query("api.example.com", dns::rrtype::A));
  dns::AnswerInfo info;
  auto good =
      answerHeader(0x1234, kResponse, 1, 0, "API.example.com", 1).a("api.example.com", 60, {192, 0, 2, 1});
  CHECK(dns::analyzeAnswer(good.bytes, q, 0x1234, info) == AnswerStatus::Ok);
  CHECK(dns::analyzeAnswer(good.bytes, q, 0x1235, info) == AnswerStatus::IdMismatch);
  auto otherName = answerHeader(0x1234, kResponse, 1, 0, "evil.com", 1).a("evil.com", 60, {192, 0, 2, 1});
  CHECK(dns::analyzeAnswer(otherName.bytes, q, 0x1234, info) == AnswerStatus::QuestionMismatch);
  auto otherType = answerHeader(0x1234, kResponse, 0, 0, "api.example.com", dns::rrtype::AAAA);
  CHECK(dns::analyzeAnswer(otherType.bytes, q, 0x1234, info) == AnswerStatus::QuestionMismatch);
  Msg noQuestion;
  noQuestion.header(0x1234, kResponse | dns::rcode::FormErr, 0, 0, 0, 0);
  CHECK(dns::analyzeAnswer(noQuestion.bytes, q, 0x1234, info) == AnswerStatus::QuestionMismatch);
  auto query = dnstest::query("api.example.com", 1);
  CHECK(dns::analyzeAnswer(query.bytes, q, 0x1234, info) == AnswerStatus::NotAResponse);
  auto truncated = good;
  truncated.bytes.resize(truncated.size() - 2);
  CHECK(dns::analyzeAnswer(truncated.bytes, q, 0x1234, info) == AnswerStatus::Malformed);
}

TEST_CASE("CNAME chains bind the final addresses to the asked name", "[dns][answer]") {
  const auto q = dnstest::parsed(dnstest::query("www.example.com", dns::rrtype::A));
  // Out of order on purpose, plus an unrelated A record.
  auto m = answerHeader(0x1234, kResponse, 5, 0, "www.example.com", 1)
               .a("edge.cdn.example.net", 20, {192, 0, 2, 10})
               .cname("lb.example.net", 300, "edge.cdn.example.net")
               .cname("www.example.com", 600, "lb.example.net")
               .a("edge.cdn.example.net", 200, {192, 0, 2, 11})
               .a("unrelated.example", 900, {198, 51, 100, 1});
  dns::AnswerInfo info;
  REQUIRE(dns::analyzeAnswer(m.bytes, q, 0x1234, info) == AnswerStatus::Ok);
  CHECK(info.chainLength == 3);
  REQUIRE(info.addressCount == 3);
  CHECK(info.addresses[0].ip == ip("192.0.2.10"));
  CHECK(info.addresses[0].inChain);
  CHECK(info.addresses[0].ttl == 20);
  CHECK(info.addresses[1].ip == ip("192.0.2.11"));
  CHECK(info.addresses[1].ttl == 200);  // min(200, 300, 600)
  CHECK_FALSE(info.addresses[2].inChain);
  CHECK(info.cacheTtl == 20);
}

TEST_CASE("CNAME loops and over-long chains stop", "[dns][answer]") {
  const auto q = dnstest::parsed(dnstest::query("a.example", dns::rrtype::A));
  auto loop = answerHeader(0x1234, kResponse, 3, 0, "a.example", 1)
                  .cname("a.example", 60, "b.example")
                  .cname("b.example", 60, "a.example")
                  .a("b.example", 60, {192, 0, 2, 1});
  dns::AnswerInfo info;
  REQUIRE(dns::analyzeAnswer(loop.bytes, q, 0x1234, info) == AnswerStatus::Ok);
  CHECK(info.chainLength == 2);
  CHECK(info.addresses[0].inChain);

  Msg longChain = answerHeader(0x1234, kResponse, 20, 0, "a.example", 1);
  std::string previous = "a.example";
  for (int i = 0; i < 20; ++i) {
    const std::string next = "n" + std::to_string(i) + ".example";
    longChain.cname(previous, 60, next);
    previous = next;
  }
  REQUIRE(dns::analyzeAnswer(longChain.bytes, q, 0x1234, info) == AnswerStatus::Ok);
  CHECK(info.chainTooLong);
  CHECK(info.chainLength == dns::kMaxChainLength);
}

TEST_CASE("negative answers cache for min(SOA TTL, MINIMUM), SERVFAIL and TC not at all", "[dns][answer]") {
  const auto q = dnstest::parsed(dnstest::query("nx.example.com", dns::rrtype::A));
  dns::AnswerInfo info;
  auto nx = answerHeader(0x1234, kResponse | dns::rcode::NxDomain, 0, 1, "nx.example.com", 1)
                .soa("example.com", 3600, 120);
  REQUIRE(dns::analyzeAnswer(nx.bytes, q, 0x1234, info) == AnswerStatus::Ok);
  CHECK(info.rcode == dns::rcode::NxDomain);
  CHECK(info.cacheTtl == 120);
  auto nodata = answerHeader(0x1234, kResponse, 0, 1, "nx.example.com", 1).soa("example.com", 30, 120);
  REQUIRE(dns::analyzeAnswer(nodata.bytes, q, 0x1234, info) == AnswerStatus::Ok);
  CHECK(info.cacheTtl == 30);
  auto noSoa = answerHeader(0x1234, kResponse | dns::rcode::NxDomain, 0, 0, "nx.example.com", 1);
  REQUIRE(dns::analyzeAnswer(noSoa.bytes, q, 0x1234, info) == AnswerStatus::Ok);
  CHECK(info.cacheTtl == 0);
  auto servfail = answerHeader(0x1234, kResponse | dns::rcode::ServFail, 0, 0, "nx.example.com", 1);
  REQUIRE(dns::analyzeAnswer(servfail.bytes, q, 0x1234, info) == AnswerStatus::Ok);
  CHECK(info.cacheTtl == 0);
  auto tc = answerHeader(0x1234, kResponse | dns::flag::TC, 0, 0, "nx.example.com", 1);
  REQUIRE(dns::analyzeAnswer(tc.bytes, q, 0x1234, info) == AnswerStatus::Ok);
  CHECK(info.truncated);
  CHECK(info.cacheTtl == 0);
  auto huge = answerHeader(0x1234, kResponse, 1, 0, "nx.example.com", 1)
                  .a("nx.example.com", 0x7fffffff, {192, 0, 2, 1});
  REQUIRE(dns::analyzeAnswer(huge.bytes, q, 0x1234, info) == AnswerStatus::Ok);
  CHECK(info.cacheTtl == dns::kMaxCacheTtl);
}

TEST_CASE("rebinding: private answers are refused unless a rule names the address", "[dns][answer]") {
  const auto q = dnstest::parsed(dnstest::query("app.example.com", dns::rrtype::A));
  const auto open = dnstest::makePolicy({"app.example.com:443"});
  const auto named = dnstest::makePolicy({"app.example.com:443", "10.1.2.0/24:5432", "169.254.169.254:80"});
  struct Case {
    std::initializer_list<uint8_t> address;
    bool refusedOpen;
    bool refusedNamed;
  };
  const Case cases[] = {
      {{192, 0, 2, 1}, false, false},      {{10, 1, 2, 3}, true, false},  {{10, 9, 9, 9}, true, true},
      {{169, 254, 169, 254}, true, false}, {{127, 0, 0, 1}, true, true},  {{192, 168, 1, 1}, true, true},
      {{172, 16, 0, 1}, true, true},       {{100, 64, 0, 1}, true, true}, {{0, 0, 0, 0}, true, true},
  };
  for (const auto& c : cases) {
    auto m = answerHeader(0x1234, kResponse, 1, 0, "app.example.com", 1).a("app.example.com", 60, c.address);
    dns::AnswerInfo info;
    REQUIRE(dns::analyzeAnswer(m.bytes, q, 0x1234, info) == AnswerStatus::Ok);
    INFO(info.addresses[0].ip.toString());
    CHECK((dns::findRebinding(info, *open) != nullptr) == c.refusedOpen);
    CHECK((dns::findRebinding(info, *named) != nullptr) == c.refusedNamed);
  }
  // IPv6 loopback, link-local and IPv4-mapped private space too.
  const auto q6 = dnstest::parsed(dnstest::query("app.example.com", dns::rrtype::AAAA));
  for (const char* text : {"::1", "fe80::1", "::ffff:10.0.0.1", "fd00::5"}) {
    const auto address = ip(text);
    Msg m = answerHeader(0x1234, kResponse, 1, 0, "app.example.com", dns::rrtype::AAAA);
    m.rr("app.example.com", dns::rrtype::AAAA, 60, 16);
    m.bytes.insert(m.bytes.end(), address.bytes.begin(), address.bytes.end());
    dns::AnswerInfo info;
    REQUIRE(dns::analyzeAnswer(m.bytes, q6, 0x1234, info) == AnswerStatus::Ok);
    INFO(text);
    CHECK(dns::findRebinding(info, *open) != nullptr);
  }
}

TEST_CASE("rebinding uses the world-access list: embedding forms, documentation, operator ranges",
          "[dns][answer][internal]") {
  const auto q6 = dnstest::parsed(dnstest::query("app.example.com", dns::rrtype::AAAA));
  const auto q4 = dnstest::parsed(dnstest::query("app.example.com", dns::rrtype::A));
  const auto refused = [&](const policy::Policy& policy, const char* text) {
    const auto address = ip(text);
    const bool v6 = address.family == common::IpFamily::V6;
    Msg m = answerHeader(0x1234, kResponse, 1, 0, "app.example.com", v6 ? dns::rrtype::AAAA : dns::rrtype::A);
    m.rr("app.example.com", v6 ? dns::rrtype::AAAA : dns::rrtype::A, 60, v6 ? 16 : 4);
    m.bytes.insert(m.bytes.end(), address.bytes.begin(), address.bytes.begin() + (v6 ? 16 : 4));
    dns::AnswerInfo info;
    REQUIRE(dns::analyzeAnswer(m.bytes, v6 ? q6 : q4, 0x1234, info) == AnswerStatus::Ok);
    return dns::findRebinding(info, policy) != nullptr;
  };
  std::vector<policy::RuleSet> sets(1);
  sets[0].ns = "default";
  sets[0].name = "t";
  for (const char* text : {"app.example.com:443", "*:80", "10.20.0.0/16:5432"}) {
    sets[0].targets.push_back(*policy::parseTarget(text, policy::defaultPublicSuffixList()).target);
  }
  const auto defaults = policy::Policy::compile(sets);
  for (const char* text : {"64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1", "::ffff:100.64.0.1", "fd00:ec2::254",
                           "192.0.2.1", "2001:db8::1", "198.18.0.1", "64:ff9b:1::1"}) {
    INFO(text);
    CHECK(refused(*defaults, text));
  }
  for (const char* text :
       {"93.184.215.14", "2a00:1450::1", "64:ff9b::808:808", "10.20.1.1", "::ffff:10.20.1.1"}) {
    INFO(text);
    CHECK_FALSE(refused(*defaults, text));  // public, or named by the CIDR target (any port)
  }
  const std::vector<common::IpNetwork> widen = {*common::parseIpNetwork("93.184.215.0/24").network};
  const std::vector<common::IpNetwork> narrow = {*common::parseIpNetwork("10.99.0.0/16").network};
  const auto custom = policy::Policy::compile(sets, policy::InternalRanges(widen, narrow));
  CHECK(refused(*custom, "93.184.215.14"));
  CHECK_FALSE(refused(*custom, "10.99.1.1"));
  CHECK(refused(*custom, "10.98.1.1"));
}

namespace {

// svc.example HTTPS with alpn, ech and ipv4hint, then a CNAME whose target
// is referenced by a later compression pointer (so removing bytes in the
// HTTPS record would break it unless the rewrite decompresses).
Msg httpsAnswer(bool withEch, size_t& cnameTargetOffset) {
  Msg m;
  m.header(0x1234, kResponse, 1, 3, 0, 0).question("svc.example", dns::rrtype::HTTPS);
  Msg rdata;
  rdata.u16(1).u8(0);                                        // priority 1, target "."
  rdata.u16(1).u16(3).raw({2, 'h', '2'});                    // alpn=h2
  rdata.u16(4).u16(4).raw({192, 0, 2, 1});                   // ipv4hint
  if (withEch) rdata.u16(5).u16(6).raw({0, 4, 1, 2, 3, 4});  // ech
  rdata.u16(6).u16(16);                                      // ipv6hint
  for (int i = 0; i < 15; ++i) rdata.u8(0);
  rdata.u8(1);
  m.rrPointer(12, dns::rrtype::HTTPS, 300, static_cast<uint16_t>(rdata.size()));
  m.bytes.insert(m.bytes.end(), rdata.bytes.begin(), rdata.bytes.end());
  m.rrPointer(12, dns::rrtype::CNAME, 300, 18);
  cnameTargetOffset = m.size();
  m.name("edge.cdn.example");  // 18 bytes
  m.rrPointer(static_cast<uint16_t>(cnameTargetOffset), dns::rrtype::A, 300, 4).raw({192, 0, 2, 7});
  return m;
}

using LdnsPacket = common::CHandle<ldns_pkt, ldns_pkt_free>;

}  // namespace

TEST_CASE("ECH is stripped from HTTPS answers, everything else survives", "[dns][answer][ech]") {
  const auto q = dnstest::parsed(dnstest::query("svc.example", dns::rrtype::HTTPS));
  size_t cnameTarget = 0;
  auto m = httpsAnswer(true, cnameTarget);
  dns::AnswerInfo info;
  REQUIRE(dns::analyzeAnswer(m.bytes, q, 0x1234, info) == AnswerStatus::Ok);
  CHECK(info.hasEch);

  std::vector<uint8_t> out(dns::kMaxMessageSize);
  const size_t length = dns::stripEch(m.bytes, out);
  REQUIRE(length > 0);
  out.resize(length);
  dns::AnswerInfo after;
  REQUIRE(dns::analyzeAnswer(out, q, 0x1234, after) == AnswerStatus::Ok);
  CHECK_FALSE(after.hasEch);
  CHECK(after.chainLength == 2);
  REQUIRE(after.addressCount == 1);
  CHECK(after.addresses[0].inChain);
  CHECK(after.addresses[0].ip == ip("192.0.2.7"));

  // ldns agrees that the rewritten message is well formed, and the A
  // record's owner (a pointer in the original) is still right.
  ldns_pkt* raw = nullptr;
  REQUIRE(ldns_wire2pkt(&raw, out.data(), out.size()) == LDNS_STATUS_OK);
  LdnsPacket packet(raw);
  ldns_rr_list* answers = ldns_pkt_answer(packet.get());
  REQUIRE(ldns_rr_list_rr_count(answers) == 3);
  char* owner = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(answers, 2)));
  CHECK(std::string(owner) == "edge.cdn.example.");
  free(owner);  // NOLINT: ldns allocates with malloc
  // The HTTPS rdata still holds alpn, ipv4hint and ipv6hint: 3 + (4+3) + (4+4) + (4+16).
  CHECK(ldns_rr_rdf(ldns_rr_list_rr(answers, 0), 0) != nullptr);
  dns::MessageReader reader;
  REQUIRE(reader.start(out));
  dns::ResourceRecord rr;
  REQUIRE(reader.next(rr));
  CHECK(rr.type == dns::rrtype::HTTPS);
  CHECK(rr.rdlength == 3 + 7 + 8 + 20);
}

TEST_CASE("stripEch leaves answers without ech alone", "[dns][answer][ech]") {
  size_t cnameTarget = 0;
  auto m = httpsAnswer(false, cnameTarget);
  std::vector<uint8_t> out(dns::kMaxMessageSize);
  CHECK(dns::stripEch(m.bytes, out) == 0);
  auto a = answerHeader(0x1234, kResponse, 1, 0, "a.example", 1).a("a.example", 60, {192, 0, 2, 1});
  CHECK(dns::stripEch(a.bytes, out) == 0);
  // Too small an output: 0, no overflow.
  auto withEch = httpsAnswer(true, cnameTarget);
  std::vector<uint8_t> small(40);
  CHECK(dns::stripEch(withEch.bytes, small) == 0);
}

// Query parsing and name decoding: table-driven fixtures, including the
// malformed shapes the server must survive (RFC 1035 section 4).
#include <catch2/catch.hpp>

#include "dns/wire.h"
#include "dns_test_util.h"

using dns::QueryStatus;
using dnstest::Msg;

TEST_CASE("a plain query parses: name lower-cased, type, class, EDNS", "[dns][wire]") {
  Msg m;
  m.header(0xabcd, dns::flag::RD, 1, 0, 0, 1).question("Api.Example.COM", dns::rrtype::AAAA).opt(4096, true);
  dns::Query q;
  REQUIRE(dns::parseQuery(m.bytes, q) == QueryStatus::Ok);
  CHECK(q.header.id == 0xabcd);
  CHECK(q.qname.view() == "api.example.com");
  CHECK(q.qname.labels == 3);
  CHECK_FALSE(q.qname.unusualBytes);
  CHECK(q.qtype == dns::rrtype::AAAA);
  CHECK(q.qclass == dns::kClassIn);
  CHECK(q.hasEdns);
  CHECK(q.dnssecOk);
  CHECK(q.udpSize == 4096);
  CHECK(q.maxUdpResponse() == 4096);
  CHECK(q.questionEnd == 12 + 17 + 4);
}

TEST_CASE("without EDNS the client takes 512 bytes, tiny EDNS sizes count as 512", "[dns][wire]") {
  dns::Query q;
  REQUIRE(dns::parseQuery(dnstest::query("a.example", 1, false).bytes, q) == QueryStatus::Ok);
  CHECK_FALSE(q.hasEdns);
  CHECK(q.maxUdpResponse() == 512);
  Msg small;
  small.header(1, 0, 1, 0, 0, 1).question("a.example", 1).opt(100);
  REQUIRE(dns::parseQuery(small.bytes, q) == QueryStatus::Ok);
  CHECK(q.maxUdpResponse() == 512);
}

TEST_CASE("malformed queries are classified, never read out of bounds", "[dns][wire]") {
  struct Case {
    const char* description;
    Msg message;
    QueryStatus expected;
  };
  auto base = [] { return Msg{}; };
  std::vector<Case> cases;
  cases.push_back({"empty", base(), QueryStatus::TooShort});
  cases.push_back({"11 bytes", base().raw({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}), QueryStatus::TooShort});
  cases.push_back({"response (QR set)", base().header(1, dns::flag::QR, 1, 0, 0, 0).question("a.b", 1),
                   QueryStatus::NotAQuery});
  cases.push_back({"no question", base().header(1, 0, 0, 0, 0, 0), QueryStatus::BadQuestionCount});
  cases.push_back({"two questions", base().header(1, 0, 2, 0, 0, 0).question("a.b", 1).question("c.d", 1),
                   QueryStatus::BadQuestionCount});
  cases.push_back({"header only, qdcount 1", base().header(1, 0, 1, 0, 0, 0), QueryStatus::BadName});
  cases.push_back(
      {"label runs past the end", base().header(1, 0, 1, 0, 0, 0).raw({5, 'a', 'b'}), QueryStatus::BadName});
  cases.push_back(
      {"name without root label", base().header(1, 0, 1, 0, 0, 0).raw({1, 'a'}), QueryStatus::BadName});
  cases.push_back({"compressed question", base().header(1, 0, 1, 0, 0, 0).raw({0xc0, 0x0c, 0, 1, 0, 1}),
                   QueryStatus::BadName});
  cases.push_back({"extended label type", base().header(1, 0, 1, 0, 0, 0).raw({0x41, 'a', 0, 0, 1, 0, 1}),
                   QueryStatus::BadName});
  cases.push_back(
      {"missing qclass", base().header(1, 0, 1, 0, 0, 0).name("a.b").u16(1), QueryStatus::Truncated});
  cases.push_back({"additional count without record", base().header(1, 0, 1, 0, 0, 1).question("a.b", 1),
                   QueryStatus::Truncated});
  cases.push_back({"OPT rdata longer than message",
                   base().header(1, 0, 1, 0, 0, 1).question("a.b", 1).u8(0).u16(41).u16(512).u32(0).u16(10),
                   QueryStatus::Truncated});
  cases.push_back({"two OPT records", base().header(1, 0, 1, 0, 0, 2).question("a.b", 1).opt().opt(),
                   QueryStatus::BadEdns});
  cases.push_back({"OPT in the answer section", base().header(1, 0, 1, 1, 0, 0).question("a.b", 1).opt(),
                   QueryStatus::BadEdns});
  cases.push_back(
      {"OPT not owned by the root",
       base().header(1, 0, 1, 0, 0, 1).question("a.b", 1).name("x").u16(41).u16(512).u32(0).u16(0),
       QueryStatus::BadEdns});
  cases.push_back({"trailing garbage", base().header(1, 0, 1, 0, 0, 0).question("a.b", 1).raw({0xff}),
                   QueryStatus::TrailingBytes});
  for (auto& c : cases) {
    INFO(c.description);
    dns::Query q;
    CHECK(dns::parseQuery(c.message.bytes, q) == c.expected);
  }
}

TEST_CASE("names over 255 octets and labels over 63 are refused", "[dns][wire]") {
  std::string longName;
  for (int i = 0; i < 5; ++i) longName += std::string(60, 'a') + ".";
  longName += "com";  // 5*61 + 4 + 1 > 255
  dns::Query q;
  CHECK(dns::parseQuery(dnstest::query(longName, 1).bytes, q) == QueryStatus::BadName);
  Msg m;
  m.header(1, 0, 1, 0, 0, 0).u8(64);  // 64 = 0x40: extended label type, not a length
  m.bytes.insert(m.bytes.end(), 64, 'a');
  m.u8(0).u16(1).u16(1);
  CHECK(dns::parseQuery(m.bytes, q) == QueryStatus::BadName);
  // 63 is fine.
  CHECK(dns::parseQuery(dnstest::query(std::string(63, 'b') + ".example", 1).bytes, q) == QueryStatus::Ok);
}

TEST_CASE("labels with dots or control bytes are flagged as unusual", "[dns][wire]") {
  Msg m;
  m.header(1, 0, 1, 0, 0, 0).raw({7, 'a', 'p', 'i', '.', 'c', 'o', 'm', 0}).u16(1).u16(1);
  dns::Query q;
  REQUIRE(dns::parseQuery(m.bytes, q) == QueryStatus::Ok);
  CHECK(q.qname.view() == "api.com");
  CHECK(q.qname.unusualBytes);
  Msg c;
  c.header(1, 0, 1, 0, 0, 0).raw({2, 'a', 0x00, 3, 'c', 'o', 'm', 0}).u16(1).u16(1);
  REQUIRE(dns::parseQuery(c.bytes, q) == QueryStatus::Ok);
  CHECK(q.qname.unusualBytes);
}

TEST_CASE("the root name parses as empty text", "[dns][wire]") {
  dns::Query q;
  REQUIRE(dns::parseQuery(dnstest::query("", dns::rrtype::NS).bytes, q) == QueryStatus::Ok);
  CHECK(q.qname.length == 0);
}

TEST_CASE("compression pointers are followed backwards only", "[dns][wire]") {
  Msg m;
  m.header(1, dns::flag::QR, 1, 1, 0, 0).question("www.example.com", 1);
  const size_t owner = m.size();
  m.nameThenPointer("cdn", 12 + 4);  // "cdn" + pointer to "example.com" inside the question
  dns::Name name;
  size_t offset = owner;
  REQUIRE(dns::readName(m.bytes, offset, name));
  CHECK(name.view() == "cdn.example.com");
  CHECK(offset == owner + 6);

  // A pointer to itself and a forward pointer are loops/invalid.
  Msg self;
  self.header(1, 0, 0, 0, 0, 0).u16(0xc000 | 12);
  offset = 12;
  CHECK_FALSE(dns::readName(self.bytes, offset, name));
  Msg forward;
  forward.header(1, 0, 0, 0, 0, 0).u16(0xc000 | 14).name("a");
  offset = 12;
  CHECK_FALSE(dns::readName(forward.bytes, offset, name));
  // Disallowed when compression is off.
  offset = owner;
  CHECK_FALSE(dns::readName(m.bytes, offset, name, false));
  // A pointer chain that hops backwards repeatedly still terminates.
  Msg chain;
  chain.header(1, 0, 0, 0, 0, 0).name("a");  // offset 12
  chain.nameThenPointer("b", 12);            // offset 15
  chain.nameThenPointer("c", 15);            // offset 19
  offset = 19;
  REQUIRE(dns::readName(chain.bytes, offset, name));
  CHECK(name.view() == "c.b.a");
}

TEST_CASE("MessageReader walks sections and stops at a truncated record", "[dns][wire]") {
  Msg m;
  m.header(1, dns::flag::QR, 1, 2, 1, 1).question("a.example", 1);
  m.a("a.example", 60, {192, 0, 2, 1}).a("a.example", 30, {192, 0, 2, 2});
  m.soa("example", 100, 50).opt();
  dns::MessageReader reader;
  REQUIRE(reader.start(m.bytes));
  dns::ResourceRecord rr;
  std::vector<std::pair<dns::Section, uint16_t>> seen;
  while (reader.next(rr)) seen.emplace_back(rr.section, rr.type);
  CHECK_FALSE(reader.failed());
  REQUIRE(seen.size() == 4);
  CHECK(seen[0] == std::make_pair(dns::Section::Answer, dns::rrtype::A));
  CHECK(seen[2] == std::make_pair(dns::Section::Authority, dns::rrtype::SOA));
  CHECK(seen[3] == std::make_pair(dns::Section::Additional, dns::rrtype::OPT));

  m.bytes.resize(m.bytes.size() - 3);
  REQUIRE(reader.start(m.bytes));
  size_t count = 0;
  while (reader.next(rr)) ++count;
  CHECK(count == 3);
  CHECK(reader.failed());
}

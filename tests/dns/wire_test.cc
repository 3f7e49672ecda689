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

namespace {

// readName as it was written first, a byte at a time (the reference the
// word-at-a-time version must agree with).
bool referenceReadName(std::span<const uint8_t> message, size_t& offset, dns::Name& out,
                       bool allowCompression) {
  out.length = 0;
  out.labels = 0;
  out.unusualBytes = false;
  size_t at = offset;
  size_t wireLength = 0;
  bool jumped = false;
  size_t limit = offset;
  while (true) {
    if (at >= message.size()) return false;
    const uint8_t length = message[at];
    if ((length & 0xc0) == 0xc0) {
      if (!allowCompression || at + 1 >= message.size()) return false;
      const size_t target = static_cast<size_t>(((length & 0x3f) << 8) | message[at + 1]);
      if (target >= limit) return false;
      if (!jumped) offset = at + 2;
      jumped = true;
      limit = target;
      at = target;
      continue;
    }
    if ((length & 0xc0) != 0) return false;
    wireLength += 1 + length;
    if (wireLength > dns::kMaxWireNameLength) return false;
    if (length == 0) {
      if (!jumped) offset = at + 1;
      return true;
    }
    if (at + 1 + length > message.size()) return false;
    size_t text = out.length;
    if (text != 0) out.text[text++] = '.';
    for (size_t i = 0; i < length; ++i) {
      uint8_t c = message[at + 1 + i];
      if (c == '.' || c < 0x21 || c >= 0x7f) out.unusualBytes = true;
      if (c >= 'A' && c <= 'Z') c = static_cast<uint8_t>(c - 'A' + 'a');
      out.text[text++] = static_cast<char>(c);
    }
    out.length = static_cast<uint8_t>(text);
    ++out.labels;
    at += 1 + length;
  }
}

}  // namespace

// Random names (every byte value, long and short labels, pointers forward
// and back, names over 255 octets) decode exactly as the reference does.
TEST_CASE("readName agrees with the byte-at-a-time reference on random messages", "[dns][wire]") {
  uint64_t state = 0x9e3779b97f4a7c15ULL;
  const auto next = [&state] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  const std::string alphabet = "abcxyzABCXYZ019-_.*";
  size_t agreed = 0;
  for (int round = 0; round < 20000; ++round) {
    std::vector<uint8_t> message;
    const size_t names = 1 + next() % 3;
    std::vector<size_t> starts;
    for (size_t n = 0; n < names; ++n) {
      starts.push_back(message.size());
      const size_t labels = next() % 6;
      for (size_t l = 0; l < labels; ++l) {
        const size_t length = next() % 4 == 0 ? next() % 64 : 1 + next() % 12;
        message.push_back(static_cast<uint8_t>(length));
        for (size_t i = 0; i < length; ++i) {
          const uint64_t r = next();
          message.push_back(r % 8 == 0 ? static_cast<uint8_t>(r >> 8)
                                       : static_cast<uint8_t>(alphabet[(r >> 8) % alphabet.size()]));
        }
      }
      if (!starts.empty() && next() % 2 == 0) {
        const size_t target = starts[next() % starts.size()];
        message.push_back(static_cast<uint8_t>(0xc0 | (target >> 8)));
        message.push_back(static_cast<uint8_t>(target));
      } else {
        message.push_back(0);
      }
    }
    if (next() % 8 == 0 && !message.empty()) message.resize(next() % message.size());  // cut short
    for (size_t start : starts) {
      for (bool compression : {false, true}) {
        size_t offsetA = start;
        size_t offsetB = start;
        dns::Name a;
        dns::Name b;
        const bool okA = dns::readName(message, offsetA, a, compression);
        const bool okB = referenceReadName(message, offsetB, b, compression);
        REQUIRE(okA == okB);
        if (!okA) continue;
        REQUIRE(offsetA == offsetB);
        REQUIRE(a.view() == b.view());
        REQUIRE(a.labels == b.labels);
        REQUIRE(a.unusualBytes == b.unusualBytes);
        ++agreed;
      }
    }
  }
  CHECK(agreed > 10000);
}

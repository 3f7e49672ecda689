// The answer cache with an injected clock: TTL decrement, expiry, policy
// generations, LRU bound, the client's ID and question spelling.
#include <catch2/catch.hpp>

#include <algorithm>

#include "dns/answer.h"
#include "dns/cache.h"
#include "dns_test_util.h"

using dnstest::Msg;
using namespace std::chrono_literals;

namespace {

constexpr uint16_t kResponse = dns::flag::QR | dns::flag::RD | dns::flag::RA;

Msg answerFor(std::string_view name, uint32_t ttl, uint8_t last = 1) {
  Msg m;
  m.header(0x1111, kResponse, 1, 1, 0, 1).question(name, 1).a(name, ttl, {192, 0, 2, last}).opt();
  return m;
}

uint32_t firstAnswerTtl(const std::vector<uint8_t>& message) {
  dns::MessageReader reader;
  REQUIRE(reader.start(message));
  dns::ResourceRecord rr;
  REQUIRE(reader.next(rr));
  return rr.ttl;
}

}  // namespace

TEST_CASE("a cached answer is served with the client's ID and decremented TTLs", "[dns][cache]") {
  dns::AnswerCache cache(100);
  const dns::TimePoint t0{};
  auto first = dnstest::query("api.example.com", 1, true, 0x1111);
  const auto q1 = dnstest::parsed(first);
  const dns::CachedBinding binding{*common::parseIpAddress("192.0.2.1"), t0 + 360s};
  cache.insert(q1, answerFor("api.example.com", 60).bytes, 60, 7, t0, std::span(&binding, 1));

  auto second = dnstest::query("API.example.COM", 1, true, 0x2222);
  const auto q2 = dnstest::parsed(second);
  std::vector<uint8_t> out(dns::kMaxMessageSize);
  auto hit = cache.lookup(q2, second.bytes, 7, t0 + 25s, out);
  REQUIRE(hit.length > 0);
  out.resize(hit.length);
  CHECK(dns::readU16(out.data()) == 0x2222);
  CHECK(std::string(reinterpret_cast<const char*>(out.data() + 13), 3) == "API");
  CHECK(firstAnswerTtl(out) == 35);
  REQUIRE(hit.bindings.size() == 1);
  CHECK(hit.bindings[0].expiry == t0 + 360s);
  CHECK(hit.answerCount == 1);
  // The OPT "TTL" (EDNS flags) is not a TTL: untouched.
  CHECK(dns::readU16(out.data() + out.size() - 4) == 0);

  // Expired: a miss, and the entry is gone.
  out.resize(dns::kMaxMessageSize);
  CHECK(cache.lookup(q2, second.bytes, 7, t0 + 60s, out).length == 0);
  CHECK(cache.stats().entries == 0);
}

TEST_CASE("a new policy generation turns old entries into misses", "[dns][cache]") {
  dns::AnswerCache cache(100);
  const dns::TimePoint t0{};
  auto m = dnstest::query("api.example.com", 1);
  const auto q = dnstest::parsed(m);
  cache.insert(q, answerFor("api.example.com", 300).bytes, 300, 1, t0, {});
  std::vector<uint8_t> out(dns::kMaxMessageSize);
  CHECK(cache.lookup(q, m.bytes, 1, t0 + 1s, out).length > 0);
  CHECK(cache.lookup(q, m.bytes, 2, t0 + 1s, out).length == 0);
  CHECK(cache.lookup(q, m.bytes, 1, t0 + 1s, out).length == 0);  // evicted on the generation miss
}

TEST_CASE("the key separates type, EDNS, DO and CD", "[dns][cache]") {
  dns::AnswerCache cache(100);
  const dns::TimePoint t0{};
  auto a = dnstest::query("api.example.com", 1, true);
  cache.insert(dnstest::parsed(a), answerFor("api.example.com", 300).bytes, 300, 1, t0, {});
  std::vector<uint8_t> out(dns::kMaxMessageSize);
  auto noEdns = dnstest::query("api.example.com", 1, false);
  CHECK(cache.lookup(dnstest::parsed(noEdns), noEdns.bytes, 1, t0, out).length == 0);
  auto aaaa = dnstest::query("api.example.com", dns::rrtype::AAAA, true);
  CHECK(cache.lookup(dnstest::parsed(aaaa), aaaa.bytes, 1, t0, out).length == 0);
  Msg withDo;
  withDo.header(5, dns::flag::RD, 1, 0, 0, 1).question("api.example.com", 1).opt(1232, true);
  CHECK(cache.lookup(dnstest::parsed(withDo), withDo.bytes, 1, t0, out).length == 0);
  Msg withCd;
  withCd.header(5, dns::flag::RD | dns::flag::CD, 1, 0, 0, 1).question("api.example.com", 1).opt();
  CHECK(cache.lookup(dnstest::parsed(withCd), withCd.bytes, 1, t0, out).length == 0);
  CHECK(cache.lookup(dnstest::parsed(a), a.bytes, 1, t0, out).length > 0);
}

TEST_CASE("the cache is bounded, least recently used first", "[dns][cache]") {
  dns::AnswerCache cache(3);
  const dns::TimePoint t0{};
  std::vector<Msg> queries;
  for (int i = 0; i < 4; ++i) queries.push_back(dnstest::query("n" + std::to_string(i) + ".example", 1));
  std::vector<uint8_t> out(dns::kMaxMessageSize);
  for (int i = 0; i < 3; ++i) {
    const auto q = dnstest::parsed(queries[i]);
    cache.insert(q, answerFor("n" + std::to_string(i) + ".example", 300).bytes, 300, 1, t0, {});
  }
  // Touch n0 so n1 is the oldest.
  CHECK(cache.lookup(dnstest::parsed(queries[0]), queries[0].bytes, 1, t0, out).length > 0);
  cache.insert(dnstest::parsed(queries[3]), answerFor("n3.example", 300).bytes, 300, 1, t0, {});
  CHECK(cache.stats().entries == 3);
  CHECK(cache.stats().evictions == 1);
  CHECK(cache.lookup(dnstest::parsed(queries[1]), queries[1].bytes, 1, t0, out).length == 0);
  CHECK(cache.lookup(dnstest::parsed(queries[0]), queries[0].bytes, 1, t0, out).length > 0);
  CHECK(cache.lookup(dnstest::parsed(queries[3]), queries[3].bytes, 1, t0, out).length > 0);
  cache.setMaxEntries(1);
  CHECK(cache.stats().entries == 1);
}

TEST_CASE("zero TTLs, size 0 and malformed answers are not cached", "[dns][cache]") {
  const dns::TimePoint t0{};
  auto m = dnstest::query("api.example.com", 1);
  const auto q = dnstest::parsed(m);
  dns::AnswerCache cache(10);
  cache.insert(q, answerFor("api.example.com", 0).bytes, 0, 1, t0, {});
  auto broken = answerFor("api.example.com", 60);
  broken.bytes.resize(broken.size() - 5);
  cache.insert(q, broken.bytes, 60, 1, t0, {});
  CHECK(cache.stats().entries == 0);
  dns::AnswerCache disabled(0);
  disabled.insert(q, answerFor("api.example.com", 60).bytes, 60, 1, t0, {});
  CHECK(disabled.stats().entries == 0);
}

// Hits counted on their entries (the per-rule-set counts of /metrics read
// them later): each counted hit is reported exactly once, by takeHits() or
// by the sink when its entry leaves (expiry, eviction, generation, clear).
TEST_CASE("counted hits are reported once, by takeHits or when the entry leaves", "[dns][cache]") {
  dns::AnswerCache cache(2);
  std::vector<std::pair<std::string, uint64_t>> left;
  cache.setHitSink([&](std::string_view name, uint64_t hits) { left.emplace_back(std::string(name), hits); });
  std::vector<std::pair<std::string, uint64_t>> taken;
  const dns::AnswerCache::HitSink take = [&](std::string_view name, uint64_t hits) {
    taken.emplace_back(std::string(name), hits);
  };
  const dns::TimePoint t0{};
  auto api = dnstest::query("API.example.com", 1);
  auto www = dnstest::query("www.example.com", 1);
  cache.insert(dnstest::parsed(api), answerFor("api.example.com", 60).bytes, 60, 1, t0, {});
  cache.insert(dnstest::parsed(www), answerFor("www.example.com", 300).bytes, 300, 1, t0, {});
  std::vector<uint8_t> out(dns::kMaxMessageSize);
  for (int i = 0; i < 3; ++i)
    REQUIRE(cache.lookup(dnstest::parsed(api), api.bytes, 1, t0, out, true).length > 0);
  REQUIRE(cache.lookup(dnstest::parsed(www), www.bytes, 1, t0, out, true).length > 0);
  REQUIRE(cache.lookup(dnstest::parsed(www), www.bytes, 1, t0, out, false).length > 0);  // not counted
  cache.takeHits(take);
  std::sort(taken.begin(), taken.end());
  CHECK(taken ==
        std::vector<std::pair<std::string, uint64_t>>{{"api.example.com", 3}, {"www.example.com", 1}});
  CHECK(left.empty());
  taken.clear();
  cache.takeHits(take);  // nothing new
  CHECK(taken.empty());

  // Two more hits on api, then it expires: the sink gets them as it goes.
  for (int i = 0; i < 2; ++i)
    REQUIRE(cache.lookup(dnstest::parsed(api), api.bytes, 1, t0, out, true).length > 0);
  CHECK(cache.lookup(dnstest::parsed(api), api.bytes, 1, t0 + 61s, out, true).length == 0);
  CHECK(left == std::vector<std::pair<std::string, uint64_t>>{{"api.example.com", 2}});
  // A hit on www, then www falls to a new generation's miss.
  left.clear();
  REQUIRE(cache.lookup(dnstest::parsed(www), www.bytes, 1, t0, out, true).length > 0);
  CHECK(cache.lookup(dnstest::parsed(www), www.bytes, 2, t0, out, true).length == 0);
  CHECK(left == std::vector<std::pair<std::string, uint64_t>>{{"www.example.com", 1}});

  // Eviction by the bound (2 entries) and clear().
  left.clear();
  auto a = dnstest::query("a.example.com", 1);
  auto b = dnstest::query("b.example.com", 1);
  auto c = dnstest::query("c.example.com", 1);
  cache.insert(dnstest::parsed(a), answerFor("a.example.com", 300).bytes, 300, 1, t0, {});
  cache.insert(dnstest::parsed(b), answerFor("b.example.com", 300).bytes, 300, 1, t0, {});
  REQUIRE(cache.lookup(dnstest::parsed(a), a.bytes, 1, t0, out, true).length > 0);
  REQUIRE(cache.lookup(dnstest::parsed(b), b.bytes, 1, t0, out, true).length > 0);
  REQUIRE(cache.lookup(dnstest::parsed(b), b.bytes, 1, t0, out, true).length > 0);
  cache.insert(dnstest::parsed(c), answerFor("c.example.com", 300).bytes, 300, 1, t0, {});  // evicts a
  CHECK(left == std::vector<std::pair<std::string, uint64_t>>{{"a.example.com", 1}});
  cache.clear();
  CHECK(left == std::vector<std::pair<std::string, uint64_t>>{{"a.example.com", 1}, {"b.example.com", 2}});
  taken.clear();
  cache.takeHits(take);
  CHECK(taken.empty());
}

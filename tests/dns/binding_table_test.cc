// The binding table with an injected clock: expiry, case, lookups, the
// bounds and their counted evictions, and concurrent readers/writers.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <thread>

#include "dns/binding_lookup.h"
#include "dns/binding_table.h"
#include "dns_test_util.h"

using namespace std::chrono_literals;

namespace {
common::IpAddress ip(const char* text) {
  return *common::parseIpAddress(text);
}
common::IpAddress v4(uint32_t n) {
  return common::IpAddress::v4(n);
}
}  // namespace

TEST_CASE("a binding holds until its expiry, for that name and address only", "[dns][bindings]") {
  dns::BindingTable table(1000);
  const dns::TimePoint t0{};
  table.record("api.example.com", ip("192.0.2.1"), t0 + 60s);
  CHECK(table.isBound("api.example.com", ip("192.0.2.1"), t0));
  CHECK(table.isBound("API.Example.com.", ip("192.0.2.1"), t0 + 59s));
  CHECK_FALSE(table.isBound("api.example.com", ip("192.0.2.1"), t0 + 60s));
  CHECK_FALSE(table.isBound("api.example.com", ip("192.0.2.2"), t0));
  CHECK_FALSE(table.isBound("other.example.com", ip("192.0.2.1"), t0));
  CHECK_FALSE(table.isBound("api.example.com", ip("::ffff:192.0.2.1"), t0));  // exact family
  // A later record extends; an earlier one does not shorten.
  table.record("api.example.com", ip("192.0.2.1"), t0 + 120s);
  table.record("api.example.com", ip("192.0.2.1"), t0 + 10s);
  CHECK(table.isBound("api.example.com", ip("192.0.2.1"), t0 + 100s));
  CHECK(table.stats().entries == 1);
}

TEST_CASE("lookup lists the unexpired names of an address", "[dns][bindings]") {
  dns::BindingTable table(1000);
  const dns::TimePoint t0{};
  table.record("a.example", ip("2001:db8::1"), t0 + 10s);
  table.record("b.example", ip("2001:db8::1"), t0 + 100s);
  table.record("c.example", ip("2001:db8::2"), t0 + 100s);
  std::array<dns::BoundName, 4> out;
  REQUIRE(table.lookup(ip("2001:db8::1"), t0, out) == 2);
  std::vector<std::string> names{std::string(out[0].view()), std::string(out[1].view())};
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"a.example", "b.example"});
  REQUIRE(table.lookup(ip("2001:db8::1"), t0 + 50s, out) == 1);
  CHECK(out[0].view() == "b.example");
  // More names than room: the count says so.
  std::array<dns::BoundName, 1> one;
  CHECK(table.lookup(ip("2001:db8::1"), t0, one) == 2);
  CHECK(table.lookup(ip("2001:db8::3"), t0, out) == 0);
}

TEST_CASE("purgeExpired removes and counts", "[dns][bindings]") {
  dns::BindingTable table(1000);
  const dns::TimePoint t0{};
  for (uint32_t i = 0; i < 100; ++i)
    table.record("n.example", v4(0xc0000200 + i), t0 + std::chrono::seconds(i));
  CHECK(table.stats().entries == 100);
  CHECK(table.purgeExpired(t0 + 50s) == 51);
  CHECK(table.stats().entries == 49);
  CHECK(table.stats().expired == 51);
}

TEST_CASE("the table never exceeds its bound, evictions are counted", "[dns][bindings]") {
  dns::BindingTable table(256, 4);
  const dns::TimePoint t0{};
  for (uint32_t i = 0; i < 5000; ++i)
    table.record("n.example", v4(0xc6336400 + i), t0 + std::chrono::seconds(i));
  const auto stats = table.stats();
  CHECK(stats.entries <= 256 + 4);
  CHECK(stats.entries >= 256);
  CHECK(stats.evictions == 5000 - stats.entries);
  // The most recent (latest expiry) entries are the likeliest to survive.
  CHECK(table.isBound("n.example", v4(0xc6336400 + 4999), t0));
}

TEST_CASE("at most kMaxNamesPerAddress names per address", "[dns][bindings]") {
  dns::BindingTable table(10000);
  const dns::TimePoint t0{};
  for (size_t i = 0; i < dns::BindingTable::kMaxNamesPerAddress + 10; ++i) {
    table.record("n" + std::to_string(i) + ".example", ip("192.0.2.9"), t0 + std::chrono::seconds(100 + i));
  }
  CHECK(table.stats().entries == dns::BindingTable::kMaxNamesPerAddress);
  CHECK(table.stats().evictions == 10);
  CHECK_FALSE(table.isBound("n0.example", ip("192.0.2.9"), t0));
  CHECK(table.isBound("n41.example", ip("192.0.2.9"), t0));
}

TEST_CASE("names over 253 bytes and empty names are ignored", "[dns][bindings]") {
  dns::BindingTable table(10);
  const dns::TimePoint t0{};
  table.record(std::string(254, 'a'), ip("192.0.2.1"), t0 + 10s);
  table.record("", ip("192.0.2.1"), t0 + 10s);
  table.record(".", ip("192.0.2.1"), t0 + 10s);
  CHECK(table.stats().entries == 0);
}

TEST_CASE("concurrent writers and readers see consistent bindings", "[dns][bindings]") {
  dns::BindingTable table(100000);
  const dns::TimePoint t0{};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> hits{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < 2; ++w) {
    threads.emplace_back([&, w] {
      for (uint32_t i = 0; i < 20000; ++i) {
        table.record("w" + std::to_string(w) + ".example", v4(0x0a000000 + i), t0 + 3600s);
      }
    });
  }
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&] {
      std::array<dns::BoundName, 4> out;
      while (!stop.load()) {
        for (uint32_t i = 0; i < 20000; i += 97) {
          if (table.isBound("w0.example", v4(0x0a000000 + i), t0)) hits.fetch_add(1);
          table.lookup(v4(0x0a000000 + i), t0, out);
        }
      }
    });
  }
  threads[0].join();
  threads[1].join();
  stop = true;
  threads[2].join();
  threads[3].join();
  CHECK(table.stats().entries == 40000);
  for (uint32_t i = 0; i < 20000; i += 1000) {
    CHECK(table.isBound("w0.example", v4(0x0a000000 + i), t0));
    CHECK(table.isBound("w1.example", v4(0x0a000000 + i), t0));
  }
}

TEST_CASE("boundNamesAllowedOn applies the policy's ports to the bound names", "[dns][bindings]") {
  const auto policy =
      dnstest::makePolicy({"api.example.com:443", "*.cdn.example.net:443", "mail.example.com:25"});
  dns::BindingTable table(100);
  const dns::TimePoint t0{};
  const auto shared = ip("192.0.2.77");
  table.record("api.example.com", shared, t0 + 60s);
  table.record("x.cdn.example.net", shared, t0 + 10s);
  table.record("mail.example.com", shared, t0 + 60s);
  table.record("gone.example.com", shared, t0 + 60s);  // no longer allowed at all
  std::array<dns::BoundName, 8> out;
  REQUIRE(dns::boundNamesAllowedOn(table, *policy, shared, 443, t0, out) == 2);
  std::vector<std::string> names{std::string(out[0].view()), std::string(out[1].view())};
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"api.example.com", "x.cdn.example.net"});
  REQUIRE(dns::boundNamesAllowedOn(table, *policy, shared, 443, t0 + 30s, out) == 1);
  CHECK(out[0].view() == "api.example.com");
  REQUIRE(dns::boundNamesAllowedOn(table, *policy, shared, 25, t0, out) == 1);
  CHECK(out[0].view() == "mail.example.com");
  CHECK(dns::boundNamesAllowedOn(table, *policy, shared, 80, t0, out) == 0);
  std::array<dns::BoundName, 1> one;
  CHECK(dns::boundNamesAllowedOn(table, *policy, shared, 443, t0, one) == 2);
}

// ---- incremental expiry (purgeExpiredStep) ------------------------------------

namespace {
// Steps until a whole pass has ended (at most `limit` calls); returns the
// number of calls and checks that each stayed within its budget.
size_t sweepPass(dns::BindingTable& table, dns::TimePoint now, size_t budget, size_t limit,
                 size_t* removed = nullptr) {
  size_t calls = 0;
  size_t total = 0;
  while (calls < limit) {
    const dns::SweepStep step = table.purgeExpiredStep(now, budget);
    ++calls;
    total += step.removed;
    CHECK(step.visited <= budget);
    CHECK(step.removed <= step.visited);
    if (step.passDone) break;
  }
  if (removed != nullptr) *removed = total;
  return calls;
}

struct Observed final : dns::BindingObserver {
  std::vector<std::pair<std::string, common::IpAddress>> calls;
  std::vector<std::pair<std::string, common::IpAddress>> evicted;
  const dns::BindingTable* table = nullptr;
  bool evictedStillBound = false;
  void onBound(std::string_view name, const common::IpAddress& address, dns::TimePoint) noexcept override {
    calls.emplace_back(std::string(name), address);
  }
  void onEvicted(std::string_view name, const common::IpAddress& address) noexcept override {
    evicted.emplace_back(std::string(name), address);
    // Told after the entry left the table (and outside its locks: reading works).
    if (table != nullptr && table->isBound(name, address, dns::TimePoint{})) evictedStillBound = true;
  }
};
}  // namespace

TEST_CASE("expired bindings disappear after enough incremental steps; live ones stay", "[dns][bindings]") {
  dns::BindingTable table(100000, 8);
  const dns::TimePoint t0{};
  // 3000 addresses; even ones expire at t0+10s, odd ones live until t0+1h;
  // every tenth address also carries a second, short-lived name.
  for (uint32_t i = 0; i < 3000; ++i) {
    table.record("svc" + std::to_string(i % 7) + ".example", v4(0x0a010000 + i),
                 t0 + (i % 2 == 0 ? 10s : 3600s));
    if (i % 10 == 0) table.record("short.example", v4(0x0a010000 + i), t0 + 5s);
  }
  const size_t expiring = 1500 + 300;
  REQUIRE(table.stats().entries == 3300);
  const dns::TimePoint now = t0 + 60s;
  // Readers already ignore the expired ones before any sweep (lazy is safe).
  CHECK_FALSE(table.isBound("svc0.example", v4(0x0a010000), now));
  CHECK_FALSE(table.isBound("short.example", v4(0x0a010000 + 10), now));
  std::array<dns::BoundName, 4> out;
  CHECK(table.lookup(v4(0x0a010000 + 10), now, out) == 0);
  CHECK(table.lookup(v4(0x0a010000 + 11), now, out) == 1);

  // One step removes some but not all.
  const dns::SweepStep first = table.purgeExpiredStep(now, 100);
  CHECK(first.visited == 100);
  CHECK(first.removed > 0);
  CHECK(first.removed < expiring);
  CHECK_FALSE(first.passDone);

  size_t removed = 0;
  const size_t calls = sweepPass(table, now, 100, 10000, &removed);
  // 3300 entries at <= 100 per call: at least 32 more calls for the pass.
  CHECK(calls >= 32);
  CHECK(calls < 10000);
  // The pass began after `first`, so together they cover the table (an
  // address may be seen twice; it is removed once).
  CHECK(first.removed + removed == expiring);
  const auto stats = table.stats();
  CHECK(stats.entries == 3300 - expiring);
  CHECK(stats.expired == expiring);
  // Every live binding is still there; nothing expired is.
  size_t seen = 0;
  table.forEach([&](std::string_view name, const common::IpAddress&, dns::TimePoint expiry) {
    ++seen;
    CHECK(expiry > now);
    CHECK(name.substr(0, 3) == "svc");
  });
  CHECK(seen == 1500);
  for (uint32_t i = 1; i < 3000; i += 2)
    CHECK(table.isBound("svc" + std::to_string(i % 7) + ".example", v4(0x0a010000 + i), now));
  // Another pass at the same time finds nothing more.
  sweepPass(table, now, 100, 10000, &removed);
  CHECK(removed == 0);
  CHECK(table.stats().entries == 1500);
}

TEST_CASE("a sweep step is bounded in the entries it visits", "[dns][bindings]") {
  dns::BindingTable table(100000, 4);
  const dns::TimePoint t0{};
  // Addresses with the most names (adjacent nodes of one key).
  for (uint32_t a = 0; a < 20; ++a)
    for (size_t n = 0; n < dns::BindingTable::kMaxNamesPerAddress; ++n)
      table.record("n" + std::to_string(n) + ".example", v4(0x0a020000 + a), t0 + 1s);
  for (uint32_t a = 0; a < 2000; ++a) table.record("one.example", v4(0x0a030000 + a), t0 + 1s);
  const size_t total = 20 * dns::BindingTable::kMaxNamesPerAddress + 2000;
  REQUIRE(table.stats().entries == total);
  for (const size_t budget : {size_t{1}, size_t{7}, size_t{64}, size_t{500}}) {
    INFO("budget " << budget);
    // Nothing expired: a full pass visits every entry and keeps it.
    size_t visited = 0;
    size_t calls = 0;
    for (;;) {
      const dns::SweepStep step = table.purgeExpiredStep(t0, budget);
      ++calls;
      CHECK(step.visited <= budget);
      CHECK(step.removed == 0);
      visited += step.visited;
      if (step.passDone || calls > 100000) break;
    }
    CHECK(visited == total);
    CHECK(table.stats().entries == total);
  }
  // Everything expired: removed in bounded steps.
  size_t removed = 0;
  sweepPass(table, t0 + 2s, 50, 100000, &removed);
  CHECK(removed == total);
  CHECK(table.stats().entries == 0);
  CHECK(table.stats().expired == total);
  // An empty table: a step ends (each shard once) and reports the pass.
  sweepPass(table, t0 + 2s, 50, 100000);
  CHECK(table.purgeExpiredStep(t0 + 2s, 50).visited == 0);
}

TEST_CASE("names are shared between addresses and survive removals of others", "[dns][bindings]") {
  dns::BindingTable table(100, 1);
  const dns::TimePoint t0{};
  const std::string longName = "a-name-longer-than-the-small-string-buffer.example.com";
  for (uint32_t i = 0; i < 50; ++i)
    table.record(longName, v4(0x0a040000 + i), t0 + std::chrono::seconds(1 + i));
  table.record("API.Other.Example.", v4(0x0a040000), t0 + 100s);
  // Expire half the users of the long name, evict some more by filling up.
  CHECK(table.purgeExpired(t0 + 25s) == 25);
  CHECK(table.isBound("api.other.example", v4(0x0a040000), t0 + 50s));
  for (uint32_t i = 0; i < 100; ++i) table.record("filler.example", v4(0x0a050000 + i), t0 + 200s);
  CHECK(table.stats().entries <= 100 + 1);
  std::array<dns::BoundName, 4> out;
  size_t longLeft = 0;
  for (uint32_t i = 0; i < 50; ++i) {
    const size_t n = table.lookup(v4(0x0a040000 + i), t0 + 25s, out);
    for (size_t k = 0; k < std::min(n, out.size()); ++k) {
      const bool known = out[k].view() == longName || out[k].view() == "api.other.example";
      CHECK(known);
      longLeft += out[k].view() == longName;
    }
  }
  CHECK(longLeft <= 25);
  // All users of a name gone, then the name again: a fresh copy.
  sweepPass(table, t0 + 1000s, 10, 100000);
  CHECK(table.stats().entries == 0);
  table.record(longName, v4(0x0a040001), t0 + 2000s);
  REQUIRE(table.lookup(v4(0x0a040001), t0 + 1000s, out) == 1);
  CHECK(out[0].view() == longName);
}

TEST_CASE("the observer is told about bindings recorded again after the sweep removed them",
          "[dns][bindings]") {
  dns::BindingTable table(1000, 2);
  Observed observer;
  table.setObserver(&observer);
  const dns::TimePoint t0{};
  table.record("a.example", v4(0x0a060001), t0 + 10s);
  table.record("b.example", v4(0x0a060002), t0 + 100s);
  REQUIRE(observer.calls.size() == 2);
  sweepPass(table, t0 + 20s, 1, 1000);  // removes a.example only, calls nothing
  CHECK(observer.calls.size() == 2);
  CHECK(table.stats().entries == 1);
  table.record("a.example", v4(0x0a060001), t0 + 30s);  // new again
  table.record("b.example", v4(0x0a060002), t0 + 50s);  // earlier than kept: no call
  REQUIRE(observer.calls.size() == 3);
  CHECK(observer.calls[2].first == "a.example");
  CHECK(observer.calls[2].second == v4(0x0a060001));
  table.setObserver(nullptr);
}

TEST_CASE("sweep steps run concurrently with writers and readers", "[dns][bindings]") {
  dns::BindingTable table(50000, 8);
  const dns::TimePoint t0{};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> wrongs{0};
  std::vector<std::thread> threads;
  // Writer: short-lived bindings on even, long-lived on odd addresses.
  threads.emplace_back([&] {
    for (uint32_t round = 0; round < 5; ++round)
      for (uint32_t i = 0; i < 8000; ++i)
        table.record("w" + std::to_string(i % 5) + ".example", v4(0x0a070000 + i),
                     t0 + (i % 2 == 0 ? 1s : 3600s));
  });
  threads.emplace_back([&] {
    while (!stop.load()) {
      for (uint32_t i = 1; i < 8000; i += 2) {
        std::array<dns::BoundName, 4> out;
        const size_t n = table.lookup(v4(0x0a070000 + i), t0 + 10s, out);
        if (n > 1) wrongs.fetch_add(1);  // only the one long-lived name
        if (n == 1 && out[0].view() != "w" + std::to_string(i % 5) + ".example") wrongs.fetch_add(1);
      }
    }
  });
  threads.emplace_back([&] {
    while (!stop.load()) table.purgeExpiredStep(t0 + 10s, 64);
  });
  threads[0].join();
  stop = true;
  threads[1].join();
  threads[2].join();
  CHECK(wrongs.load() == 0);
  sweepPass(table, t0 + 10s, 256, 100000);
  sweepPass(table, t0 + 10s, 256, 100000);  // the first may have begun mid-table
  CHECK(table.stats().entries == 4000);
  for (uint32_t i = 1; i < 8000; i += 2)
    CHECK(table.isBound("w" + std::to_string(i % 5) + ".example", v4(0x0a070000 + i), t0 + 10s));
}

TEST_CASE("a sweep of an empty or nearly empty table walks nothing it need not", "[dns][bindings]") {
  // A table whose buckets grew for many entries: 4096 per shard would take
  // many steps to walk if empty shards were walked bucket by bucket.
  dns::BindingTable table(1 << 20, 64);
  const dns::TimePoint t0{};
  for (uint32_t i = 0; i < 200000; ++i) table.record("grow.example", v4(0x0b000000 + i), t0 + 1s);
  size_t removed = 0;
  sweepPass(table, t0 + 2s, dns::BindingTable::kDefaultSweepBudget, 100000, &removed);
  REQUIRE(table.stats().entries == 0);
  // Empty: every step ends the pass at once, having looked at nothing.
  const dns::SweepStep empty = table.purgeExpiredStep(t0 + 3s);
  CHECK(empty.passDone);
  CHECK(empty.visited == 0);
  // One live and one expired binding, in one shard among 64 with large,
  // empty bucket arrays: a step or two find the expired one and end the
  // pass (walking the empty shards' buckets took some fifty).
  table.record("live.example", v4(0x0c000001), t0 + 3600s);
  table.record("gone.example", v4(0x0c000001), t0 + 4s);
  size_t removedNow = 0;
  CHECK(sweepPass(table, t0 + 5s, dns::BindingTable::kDefaultSweepBudget, 100, &removedNow) <= 2);
  CHECK(removedNow == 1);
  CHECK(table.isBound("live.example", v4(0x0c000001), t0 + 5s));
}

TEST_CASE("the observer is told which binding each eviction dropped", "[dns][bindings]") {
  const dns::TimePoint t0{};
  SECTION("the per-address bound drops the address's earliest expiry") {
    dns::BindingTable table(10000);
    Observed observer;
    observer.table = &table;
    table.setObserver(&observer);
    const size_t names = dns::BindingTable::kMaxNamesPerAddress;
    // n5 expires first; it is the one pushed out by the 33rd name.
    for (size_t i = 0; i < names; ++i) {
      table.record("N" + std::to_string(i) + ".example.", ip("192.0.2.9"),
                   t0 + std::chrono::seconds(i == 5 ? 10 : 100 + i));
    }
    CHECK(observer.evicted.empty());
    table.record("late.example", ip("192.0.2.9"), t0 + 1h);
    REQUIRE(observer.evicted.size() == 1);
    CHECK(observer.evicted[0].first == "n5.example");  // as stored: lower case, no dot
    CHECK(observer.evicted[0].second == ip("192.0.2.9"));
    CHECK_FALSE(observer.evictedStillBound);
    // Told before the binding that made the room.
    CHECK(observer.calls.back().first == "late.example");
    CHECK(table.stats().evictions == 1);
  }
  SECTION("the table's bound drops an entry of another address, named as it was") {
    dns::BindingTable table(64, 1);
    Observed observer;
    observer.table = &table;
    table.setObserver(&observer);
    for (uint32_t i = 0; i < 200; ++i)
      table.record("h" + std::to_string(i) + ".example", v4(0xc6336400 + i),
                   t0 + std::chrono::seconds(1 + i));
    CHECK(observer.evicted.size() == table.stats().evictions);
    REQUIRE_FALSE(observer.evicted.empty());
    for (const auto& [name, address] : observer.evicted) {
      CAPTURE(name);
      // The name is the one that address was bound to, and it is gone.
      CHECK(name == "h" + std::to_string(address.bytes[3] + (address.bytes[2] - 0x64) * 256) + ".example");
      CHECK_FALSE(table.isBound(name, address, t0));
    }
    CHECK_FALSE(observer.evictedStillBound);
  }
}

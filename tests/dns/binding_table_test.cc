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

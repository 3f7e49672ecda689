// The DNS tunnel guard (dns/tunnel_guard.h) with the real public suffix
// list and an injected time: the budget trips on the name after it, names
// seen before stay free, each (client, registrable domain) has its own
// budget, windows restart, and a flood of one-name domains does not push
// out a nearly spent budget.
#include <catch2/catch.hpp>

#include <array>
#include <span>
#include <string>

#include "dns/tunnel_guard.h"

using namespace std::chrono_literals;

namespace {

// Client addresses as the service passes them: the bytes, network order.
constexpr std::array<uint8_t, 4> kClientBytes{10, 0, 0, 7};
constexpr std::array<uint8_t, 4> kOtherBytes{10, 0, 0, 8};
const std::span<const uint8_t> kClient(kClientBytes);
const std::span<const uint8_t> kOther(kOtherBytes);
const dns::TimePoint kStart = dns::TimePoint{} + 1000s;

}  // namespace

TEST_CASE("registrable domains come from the public suffix list", "[dns][tunnel]") {
  const auto& psl = policy::defaultPublicSuffixList();
  CHECK(psl.registrableDomain("a.b.example.co.uk") == "example.co.uk");
  CHECK(psl.registrableDomain("x.y.example.com") == "example.com");
  CHECK(psl.registrableDomain("example.com") == "example.com");
  CHECK(psl.registrableDomain("bucket.s3.amazonaws.com") == "bucket.s3.amazonaws.com");
  CHECK(psl.registrableDomain("me.github.io") == "me.github.io");
  // A public suffix or a single label: the name itself.
  CHECK(psl.registrableDomain("co.uk") == "co.uk");
  CHECK(psl.registrableDomain("localhost") == "localhost");
  // Names deeper than what the list decides cost no more and agree.
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += "l" + std::to_string(i) + ".";
  CHECK(psl.registrableDomain(deep + "t.example.org") == "example.org");
}

TEST_CASE("tunnel guard: the budget trips on the first name over it", "[dns][tunnel]") {
  dns::TunnelGuard guard(policy::defaultPublicSuffixList(), 64, 42);
  int sent = 0;
  dns::TunnelGuard::Result over;
  std::string name;  // over.domain is a view into it
  for (; sent < 40; ++sent) {
    name = "c" + std::to_string(sent) + ".t.evil.example";
    over = guard.check(kClient, name, kStart, 20, 60s);
    if (!over.admitted) break;
  }
  CHECK(sent == 20);
  CHECK_FALSE(over.admitted);
  CHECK(over.tripped);
  CHECK(over.domain == "evil.example");
  CHECK(over.distinct == 20);
  // Once per window: the next refusals are not trips.
  over = guard.check(kClient, "x" + std::to_string(sent) + ".t.evil.example", kStart + 2s, 20, 60s);
  CHECK_FALSE(over.admitted);
  CHECK_FALSE(over.tripped);
  // Names answered before stay answerable (repeats, TTL refreshes).
  CHECK(guard.check(kClient, "c3.t.evil.example", kStart + 3s, 20, 60s).admitted);
  // Other clients and other domains have their own budgets.
  CHECK(guard.check(kOther, "c22.t.evil.example", kStart + 3s, 20, 60s).admitted);
  CHECK(guard.check(kClient, "www.example.net", kStart + 3s, 20, 60s).admitted);
  // A new window starts from zero.
  CHECK(guard.check(kClient, "c23.t.evil.example", kStart + 61s, 20, 60s).admitted);
  CHECK(guard.stats().trips == 1);
}

TEST_CASE("tunnel guard: ordinary browsing of many sites never trips", "[dns][tunnel]") {
  dns::TunnelGuard guard(policy::defaultPublicSuffixList(), dns::TunnelGuard::kDefaultEntries, 7);
  // 2000 sites, a dozen host names each, asked twice: far more names than
  // any budget, but few under any one registrable domain.
  const char* hosts[] = {"www",   "cdn", "static", "api", "img", "fonts",
                         "login", "m",   "assets", "js",  "css", "t"};
  for (int round = 0; round < 2; ++round) {
    for (int site = 0; site < 2000; ++site) {
      for (const char* host : hosts) {
        const std::string name = std::string(host) + ".site" + std::to_string(site) + ".com";
        REQUIRE(guard.check(kClient, name, kStart + std::chrono::seconds(round), 100, 600s).admitted);
      }
    }
  }
  CHECK(guard.stats().trips == 0);
}

TEST_CASE("tunnel guard: budget 0 admits everything", "[dns][tunnel]") {
  dns::TunnelGuard guard(policy::defaultPublicSuffixList(), 64, 1);
  for (int i = 0; i < 500; ++i)
    CHECK(guard.check(kClient, "x" + std::to_string(i) + ".evil.example", kStart, 0, 60s).admitted);
}

TEST_CASE("tunnel guard: a flood of one-name domains keeps a spent budget", "[dns][tunnel]") {
  dns::TunnelGuard guard(policy::defaultPublicSuffixList(), 64, 99);
  for (int i = 0; i < 10; ++i)
    REQUIRE(guard.check(kClient, "d" + std::to_string(i) + ".evil.example", kStart, 10, 600s).admitted);
  REQUIRE_FALSE(guard.check(kClient, "d10.evil.example", kStart, 10, 600s).admitted);
  // Thousands of other domains through a 64-entry table: every set fills
  // with one-name entries, which replace each other, never the full one.
  for (int i = 0; i < 5000; ++i)
    guard.check(kClient, "www.flood" + std::to_string(i) + ".com", kStart + 1s, 10, 600s);
  CHECK(guard.stats().evictions > 0);
  CHECK_FALSE(guard.check(kClient, "d11.evil.example", kStart + 2s, 10, 600s).admitted);
}

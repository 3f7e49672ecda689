#include "attribution/pod_table.h"

#include <catch2/catch.hpp>
#include <cstdio>
#include <ctime>

#include "tests/support/alloc_counter.h"

using attribution::PodRecord;
using attribution::PodTable;

namespace {
common::IpAddress ip(std::string_view text) {
  return *common::parseIpAddress(text);
}
}  // namespace

TEST_CASE("pod table: lookup by address, IPv4 in either spelling, IPv6") {
  const PodTable table = PodTable::build({
      {ip("10.244.1.7"), "team-a", "web-1", "Deployment/web", "web-sa"},
      {ip("fd00::7"), "team-b", "db-0", "StatefulSet/db", ""},
      {ip("10.244.1.8"), "team-c", "bare", "", ""},
  });
  CHECK(table.size() == 3);
  observe::PodIdentity who;
  REQUIRE(table.lookup(ip("10.244.1.7"), who));
  CHECK(who.namespaceView() == "team-a");
  CHECK(who.podView() == "web-1");
  CHECK(who.workloadView() == "Deployment/web");
  CHECK(who.serviceAccountView() == "web-sa");
  observe::PodIdentity mapped;
  REQUIRE(table.lookup(ip("::ffff:10.244.1.7"), mapped));
  CHECK(mapped.podView() == "web-1");
  REQUIRE(table.lookup(ip("fd00::7"), who));
  CHECK(who.podView() == "db-0");
  CHECK(who.serviceAccountView().empty());
  REQUIRE(table.lookup(ip("10.244.1.8"), who));
  CHECK(who.workloadView().empty());

  observe::PodIdentity none;
  CHECK_FALSE(table.lookup(ip("10.244.1.9"), none));
  CHECK_FALSE(none.known());
  // 10.244.1.7 and ::a f4:107 differ: no family confusion.
  CHECK_FALSE(table.lookup(ip("::af4:107"), none));
  CHECK_FALSE(PodTable().lookup(ip("10.244.1.7"), none));
}

TEST_CASE("pod table: a repeated address keeps its first pod") {
  const PodTable table = PodTable::build({
      {ip("10.0.0.1"), "a", "first", "", ""},
      {ip("10.0.0.2"), "a", "other", "", ""},
      {ip("::ffff:10.0.0.1"), "b", "second", "", ""},
  });
  CHECK(table.size() == 2);
  observe::PodIdentity who;
  REQUIRE(table.lookup(ip("10.0.0.1"), who));
  CHECK(who.podView() == "first");
}

TEST_CASE("pod table: find() returns a reference, names() reads the texts in place") {
  const PodTable table = PodTable::build({
      {ip("10.244.1.7"), "team-a", "web-1", "Deployment/web", "web-sa"},
      {ip("fd00::7"), "team b", "db-0", "StatefulSet/db", ""},
      {ip("10.244.1.9"), "team-c", "x=1", "", ""},
  });
  const attribution::PodRef web = table.find(ip("10.244.1.7"));
  REQUIRE(web);
  const attribution::PodNames names = table.names(web);
  CHECK(names.ns == "team-a");
  CHECK(names.pod == "web-1");
  CHECK(names.workload == "Deployment/web");
  CHECK(names.serviceAccount == "web-sa");
  CHECK(names.plain);
  // Texts a log line must quote or escape are not plain.
  CHECK_FALSE(table.names(table.find(ip("fd00::7"))).plain);
  CHECK_FALSE(table.names(table.find(ip("10.244.1.9"))).plain);
  CHECK(table.find(ip("::ffff:10.244.1.7")).index == web.index);
  CHECK_FALSE(table.find(ip("10.244.1.8")));
  CHECK_FALSE(table.find(ip("fd00::8")));
  CHECK_FALSE(PodTable().find(ip("fd00::7")));
  // Only IPv6 pods: an IPv4 address finds nothing (and the reverse).
  const PodTable onlyV6 = PodTable::build({{ip("fd00::1"), "n", "p", "", ""}});
  CHECK_FALSE(onlyV6.find(ip("10.0.0.1")));
  CHECK(onlyV6.find(ip("fd00::1")));
  const PodTable onlyV4 = PodTable::build({{ip("10.0.0.1"), "n", "p", "", ""}});
  CHECK_FALSE(onlyV4.find(ip("fd00::1")));
  CHECK_FALSE(onlyV4.find(ip("::10.0.0.1")));  // IPv4-compatible, not mapped: another address
}

// Every pod found with its own texts, every other address not found, at
// sizes where buckets are shared (the smallest table: 8 pods in 16
// buckets) and at 10,000 pods of each family; addresses that differ only
// in high bytes, only in low bytes, and in the IPv6 prefix.
TEST_CASE("pod table: every address finds its own pod, misses find none, at every size") {
  for (const uint32_t count : {1U, 7U, 8U, 9U, 100U, 10'000U}) {
    std::vector<PodRecord> records;
    std::vector<common::IpAddress> members;
    std::vector<common::IpAddress> others;
    for (uint32_t i = 0; i < count; ++i) {
      // IPv4: low bytes counting, and the same low bytes under another /16.
      const uint32_t v4 = (i % 2 == 0 ? 0x0af40000U : 0x0a000000U) + i * 3U;
      common::IpAddress v6 = ip("fd00:10:244::");
      v6.bytes[8] = static_cast<uint8_t>(i >> 8);
      v6.bytes[15] = static_cast<uint8_t>(i);
      v6.bytes[14] = static_cast<uint8_t>(i >> 8);
      for (const common::IpAddress& address : {common::IpAddress::v4(v4), v6}) {
        const std::string n = std::to_string(i) + (address.family == common::IpFamily::V4 ? "-4" : "-6");
        records.push_back({address, "ns-" + n, "pod-" + n, "Deployment/w-" + n, "sa-" + n});
        members.push_back(address);
      }
      others.push_back(common::IpAddress::v4(v4 + 1));
      others.push_back(common::IpAddress::v4(v4 ^ 0x80000000U));
      common::IpAddress near = v6;
      near.bytes[0] = 0xfe;  // another prefix, same interface id
      others.push_back(near);
    }
    const PodTable table = PodTable::build(records);
    INFO("pods of each family: " << count);
    REQUIRE(table.size() == records.size());
    size_t wrong = 0;
    for (const PodRecord& record : records) {
      const attribution::PodRef found = table.find(record.ip);
      if (!found) {
        ++wrong;
        continue;
      }
      const attribution::PodNames names = table.names(found);
      if (names.ns != record.ns || names.pod != record.pod || names.workload != record.workload ||
          names.serviceAccount != record.serviceAccount || !names.plain) {
        ++wrong;
      }
    }
    CHECK(wrong == 0);
    size_t falseHits = 0;
    for (const common::IpAddress& other : others) falseHits += table.find(other) ? 1 : 0;
    CHECK(falseHits == 0);
  }
}

TEST_CASE("pod table: lookup allocates nothing; memory per pod at 10,000 pods") {
  std::vector<PodRecord> records;
  for (uint32_t i = 0; i < 10'000; ++i) {
    // Names as long as a typical Deployment pod's.
    char pod[64];
    std::snprintf(pod, sizeof pod, "checkout-api-7d9c6b5f4-%05u", i);
    records.push_back({common::IpAddress::v4(0x0af40000U + i), "team-payments", pod,
                       "Deployment/checkout-api", "checkout-api"});
  }
  const PodTable table = PodTable::build(records);
  REQUIRE(table.size() == 10'000);
  const double perPod = static_cast<double>(table.bytes()) / 10'000.0;
  std::printf("pod table: %zu pods, %zu bytes, %.1f bytes per pod\n", table.size(), table.bytes(), perPod);
  // The entry (12 bytes), the IPv4 buckets (fewer than 4 per pod, 8 bytes
  // each: 32,768 here) and the texts (76 bytes here), nothing more.
  CHECK(perPod <= 12 + 32 + 76 + 1);

  observe::PodIdentity who;
  size_t found = 0;
  {
    testsupport::AllocationCounter counter;
    for (uint32_t i = 0; i < 20'000; ++i) {
      found += table.lookup(common::IpAddress::v4(0x0af40000U + i), who) ? 1 : 0;
      found += table.find(common::IpAddress::v4(0x0af40000U + i)) ? 1 : 0;
    }
    CHECK(counter.count() == 0);
  }
  CHECK(found == 20'000);
  REQUIRE(table.lookup(common::IpAddress::v4(0x0af40000U + 4242), who));
  CHECK(who.podView() == "checkout-api-7d9c6b5f4-04242");

  // What a worker pays per event: the lookup and the copy into the event
  // (bench/observe compares it with egressd's CPU per connection, several
  // microseconds). A loose bound, so a shared machine does not fail it.
  constexpr uint32_t kRounds = 1'000'000;
  // Thread CPU time, not wall time: the machine may be shared.
  const auto cpuNow = [] {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
  };
  const double start = cpuNow();
  observe::Event event;
  for (uint32_t i = 0; i < kRounds; ++i) {
    found += table.lookup(common::IpAddress::v4(0x0af40000U + (i * 7919U) % 10'000U), event.client) ? 1 : 0;
  }
  const double ns = (cpuNow() - start) / kRounds;
  std::printf("pod table: %.0f ns per lookup into an event (10,000 pods)\n", ns);
  CHECK(found == 20'000 + kRounds);
  CHECK(ns < 5'000);
}

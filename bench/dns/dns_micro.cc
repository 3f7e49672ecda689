// Micro-benchmarks of the pure DNS parts and the binding table memory:
//   - deny path: parseQuery + classifyQuery + buildResponse (EDE), ns/query
//   - cache-hit path: parseQuery + classifyQuery + AnswerCache::lookup
//   - heap allocations counted on both paths (must be 0)
//   - BindingTable at N entries (default 1,000,000): heap bytes per entry,
//     record and isBound ns/op.
// Prints one JSON object. Usage: dns_micro [entries]
#include <malloc.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "dns/binding_table.h"
#include "dns/cache.h"
#include "dns/classify.h"
#include "dns/response.h"
#include "dns/wire.h"
#include "policy/policy.h"
#include "policy/target.h"

namespace {
std::atomic<uint64_t> allocations{0};
}

void* operator new(size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, size_t) noexcept {
  std::free(p);
}

namespace {

using Steady = std::chrono::steady_clock;

std::vector<uint8_t> makeQuery(const std::string& name, uint16_t id) {
  std::vector<uint8_t> m = {
      static_cast<uint8_t>(id >> 8), static_cast<uint8_t>(id), 1, 0, 0, 1, 0, 0, 0, 0, 0, 1};
  size_t start = 0;
  while (start < name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    m.push_back(static_cast<uint8_t>(dot - start));
    m.insert(m.end(), name.begin() + static_cast<long>(start), name.begin() + static_cast<long>(dot));
    start = dot + 1;
  }
  m.insert(m.end(), {0, 0, 1, 0, 1});
  m.insert(m.end(), {0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0});
  return m;
}

std::shared_ptr<const policy::Policy> benchPolicy() {
  policy::RuleSet set;
  set.ns = "bench";
  set.name = "bench";
  for (int i = 0; i < 1000; ++i) {
    const std::string text = "api" + std::to_string(i) + ".example.com:443";
    set.targets.push_back(*policy::parseTarget(text, policy::defaultPublicSuffixList()).target);
    set.targetTexts.push_back(text);
  }
  set.targets.push_back(*policy::parseTarget("*.bench.test:443", policy::defaultPublicSuffixList()).target);
  set.targetTexts.emplace_back("*.bench.test:443");
  return policy::Policy::compile({set});
}

size_t heapInUse() {
  return mallinfo2().uordblks;
}

}  // namespace

int main(int argc, char** argv) {
  const size_t entries = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1'000'000;
  const auto policy = benchPolicy();
  dns::DnsOptions options;
  std::vector<uint8_t> out(dns::kMaxMessageSize);

  // Deny path.
  std::vector<std::vector<uint8_t>> denied;
  denied.reserve(256);
  for (int i = 0; i < 256; ++i)
    denied.push_back(makeQuery("host" + std::to_string(i) + ".denied.example", 7));
  const int rounds = 2'000'000;
  uint64_t before = allocations.load();
  auto start = Steady::now();
  size_t sink = 0;
  for (int i = 0; i < rounds; ++i) {
    const auto& wire = denied[static_cast<size_t>(i) & 255];
    dns::Query q;
    const auto status = dns::parseQuery(wire, q);
    const auto decision = dns::classifyQuery(status, q, *policy, options);
    const dns::ExtendedError ede{dns::kEdeBlocked, dns::denyReasonText(decision.reason)};
    sink += dns::buildResponse(wire, q, decision.rcode, &ede, out);
  }
  const double denyNs = std::chrono::duration<double, std::nano>(Steady::now() - start).count() / rounds;
  const uint64_t denyAllocations = allocations.load() - before;

  // Cache-hit path.
  dns::AnswerCache cache(10000);
  const dns::TimePoint t0 = Steady::now();
  std::vector<std::vector<uint8_t>> allowed;
  allowed.reserve(256);
  for (int i = 0; i < 256; ++i) {
    auto wire = makeQuery("api" + std::to_string(i) + ".example.com", 9);
    dns::Query q;
    dns::parseQuery(wire, q);
    // A one-record answer: the query with QR, ANCOUNT 1 and an A record.
    std::vector<uint8_t> answer(wire.begin(), wire.begin() + static_cast<long>(q.questionEnd));
    answer[2] |= 0x80;
    answer[7] = 1;
    answer[11] = 0;
    answer.insert(answer.end(),
                  {0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, static_cast<uint8_t>(i)});
    cache.insert(q, answer, 300, 1, t0, {});
    allowed.push_back(std::move(wire));
  }
  before = allocations.load();
  start = Steady::now();
  for (int i = 0; i < rounds; ++i) {
    const auto& wire = allowed[static_cast<size_t>(i) & 255];
    dns::Query q;
    const auto status = dns::parseQuery(wire, q);
    dns::classifyQuery(status, q, *policy, options);
    sink += cache.lookup(q, wire, 1, t0 + std::chrono::seconds(1), out).length;
  }
  const double hitNs = std::chrono::duration<double, std::nano>(Steady::now() - start).count() / rounds;
  const uint64_t hitAllocations = allocations.load() - before;

  // Binding table memory at `entries`.
  const size_t heapBefore = heapInUse();
  double recordNs = 0;
  double lookupNs = 0;
  size_t heapAfter = 0;
  size_t finalEntries = 0;
  {
    dns::BindingTable table(entries);
    const dns::TimePoint expiry = t0 + std::chrono::hours(1);
    std::vector<std::string> names;
    names.reserve(1000);
    for (int i = 0; i < 1000; ++i) names.push_back("service-" + std::to_string(i) + ".example-cdn.com");
    start = Steady::now();
    for (size_t i = 0; i < entries; ++i) {
      table.record(names[i % names.size()], common::IpAddress::v4(0x0b000000 + static_cast<uint32_t>(i)),
                   expiry);
    }
    recordNs = std::chrono::duration<double, std::nano>(Steady::now() - start).count() /
               static_cast<double>(entries);
    heapAfter = heapInUse();
    finalEntries = table.stats().entries;
    start = Steady::now();
    size_t found = 0;
    const size_t lookups = 2'000'000;
    for (size_t i = 0; i < lookups; ++i) {
      const size_t k = (i * 7919) % entries;
      found += table.isBound(names[k % names.size()],
                             common::IpAddress::v4(0x0b000000 + static_cast<uint32_t>(k)), t0);
    }
    lookupNs = std::chrono::duration<double, std::nano>(Steady::now() - start).count() / lookups;
    if (found != lookups) std::fprintf(stderr, "dns_micro: only %zu of %zu bindings found\n", found, lookups);
  }
  const double bytesPerEntry =
      static_cast<double>(heapAfter - heapBefore) / static_cast<double>(finalEntries);
  std::printf(
      "{\"deny_path_ns\": %.1f, \"deny_path_allocations\": %llu, \"cache_hit_path_ns\": %.1f, "
      "\"cache_hit_path_allocations\": %llu, \"binding_entries\": %zu, \"binding_heap_bytes\": %zu, "
      "\"binding_bytes_per_entry\": %.1f, \"binding_record_ns\": %.1f, \"binding_is_bound_ns\": %.1f, "
      "\"checksum\": %zu}\n",
      denyNs, static_cast<unsigned long long>(denyAllocations), hitNs,
      static_cast<unsigned long long>(hitAllocations), finalEntries, heapAfter - heapBefore, bytesPerEntry,
      recordNs, lookupNs, sink);
  return 0;
}

// Micro-benchmarks of the pure DNS parts and the binding table memory:
//   - deny path: parseQuery + classifyQuery + buildResponse (EDE), ns/query
//   - cache-hit path: parseQuery + classifyQuery + AnswerCache::lookup
//   - heap allocations counted on both paths (must be 0)
//   - BindingTable at N entries (default 1,000,000): heap bytes per entry,
//     record and isBound ns/op, and the expiry sweep over all N, once when
//     nothing has expired (the usual case: a scan that keeps everything)
//     and once when all N have: the incremental sweep the DNS thread runs
//     (purgeExpiredStep with the default budget, every 100 ms): calls per
//     pass, worst single call, total; and the one-shot purgeExpired for
//     comparison with the old every-60-s sweep.
// Prints one JSON object. Usage: dns_micro [entries]
#include <malloc.h>
#include <time.h>

#include <algorithm>
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

// One whole pass of the incremental sweep, timed call by call.
struct StepPass {
  size_t calls = 0;
  size_t removed = 0;
  double worstMs = 0;
  double p50Ms = 0;
  double p99Ms = 0;
  double totalMs = 0;
  double worstCpuMs = 0;  // thread CPU time: the wall time less preemption
  double p99CpuMs = 0;
};

double threadCpuMs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

StepPass sweepPass(dns::BindingTable& table, dns::TimePoint now) {
  StepPass pass;
  // Start a pass from the beginning: finish the one in progress first
  // (at a time when nothing has expired, so it removes nothing).
  while (!table.purgeExpiredStep(dns::TimePoint::min()).passDone) {
  }
  std::vector<double> times;
  std::vector<double> cpuTimes;
  for (;;) {
    const double cpuStart = threadCpuMs();
    const auto start = Steady::now();
    const dns::SweepStep step = table.purgeExpiredStep(now);
    const double ms = std::chrono::duration<double, std::milli>(Steady::now() - start).count();
    cpuTimes.push_back(threadCpuMs() - cpuStart);
    ++pass.calls;
    pass.removed += step.removed;
    pass.totalMs += ms;
    pass.worstMs = std::max(pass.worstMs, ms);
    times.push_back(ms);
    if (step.passDone) break;
  }
  std::sort(times.begin(), times.end());
  pass.p50Ms = times[times.size() / 2];
  pass.p99Ms = times[std::min(times.size() - 1, times.size() * 99 / 100)];
  std::sort(cpuTimes.begin(), cpuTimes.end());
  pass.worstCpuMs = cpuTimes.back();
  pass.p99CpuMs = cpuTimes[std::min(cpuTimes.size() - 1, cpuTimes.size() * 99 / 100)];
  return pass;
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
  double sweepNoneMs = 0;
  double sweepAllMs = 0;
  size_t sweptAll = 0;
  StepPass stepNone;
  StepPass stepAll;
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
    stepNone = sweepPass(table, t0);
    if (stepNone.removed != 0)
      std::fprintf(stderr, "dns_micro: %zu bindings expired early\n", stepNone.removed);
    start = Steady::now();
    const size_t sweptNone = table.purgeExpired(t0);
    sweepNoneMs = std::chrono::duration<double, std::milli>(Steady::now() - start).count();
    if (sweptNone != 0) std::fprintf(stderr, "dns_micro: %zu bindings expired early\n", sweptNone);
    stepAll = sweepPass(table, expiry + std::chrono::seconds(1));
    if (stepAll.removed != finalEntries)
      std::fprintf(stderr, "dns_micro: step-swept %zu of %zu\n", stepAll.removed, finalEntries);
    // Refill for the one-shot sweep of everything.
    for (size_t i = 0; i < entries; ++i) {
      table.record(names[i % names.size()], common::IpAddress::v4(0x0b000000 + static_cast<uint32_t>(i)),
                   expiry);
    }
    start = Steady::now();
    sweptAll = table.purgeExpired(expiry + std::chrono::seconds(1));
    sweepAllMs = std::chrono::duration<double, std::milli>(Steady::now() - start).count();
    if (sweptAll != finalEntries)
      std::fprintf(stderr, "dns_micro: swept %zu of %zu\n", sweptAll, finalEntries);
  }
  const double bytesPerEntry =
      static_cast<double>(heapAfter - heapBefore) / static_cast<double>(finalEntries);
  std::printf(
      "{\"deny_path_ns\": %.1f, \"deny_path_allocations\": %llu, \"cache_hit_path_ns\": %.1f, "
      "\"cache_hit_path_allocations\": %llu, \"binding_entries\": %zu, \"binding_heap_bytes\": %zu, "
      "\"binding_bytes_per_entry\": %.1f, \"binding_record_ns\": %.1f, \"binding_is_bound_ns\": %.1f, "
      "\"binding_sweep_none_expired_ms\": %.1f, \"binding_sweep_all_expired_ms\": %.1f, "
      "\"binding_swept\": %zu, \"binding_sweep_step_budget\": %zu, "
      "\"binding_step_none_expired\": {\"calls\": %zu, \"worst_call_ms\": %.3f, \"p50_call_ms\": %.3f, "
      "\"p99_call_ms\": %.3f, \"worst_call_cpu_ms\": %.3f, \"p99_call_cpu_ms\": %.3f, \"total_ms\": %.1f}, "
      "\"binding_step_all_expired\": {\"calls\": %zu, \"worst_call_ms\": %.3f, \"p50_call_ms\": %.3f, "
      "\"p99_call_ms\": %.3f, \"worst_call_cpu_ms\": %.3f, \"p99_call_cpu_ms\": %.3f, \"total_ms\": %.1f, "
      "\"removed\": %zu}, \"checksum\": %zu}\n",
      denyNs, static_cast<unsigned long long>(denyAllocations), hitNs,
      static_cast<unsigned long long>(hitAllocations), finalEntries, heapAfter - heapBefore, bytesPerEntry,
      recordNs, lookupNs, sweepNoneMs, sweepAllMs, sweptAll, dns::BindingTable::kDefaultSweepBudget,
      stepNone.calls, stepNone.worstMs, stepNone.p50Ms, stepNone.p99Ms, stepNone.worstCpuMs,
      stepNone.p99CpuMs, stepNone.totalMs, stepAll.calls, stepAll.worstMs, stepAll.p50Ms, stepAll.p99Ms,
      stepAll.worstCpuMs, stepAll.p99CpuMs, stepAll.totalMs, stepAll.removed, sink);
  return 0;
}

// Every counter of a running egressd in one plain value (StatsSnapshot),
// and its two renderings: Prometheus text for GET /metrics
// (daemon/metrics.h, docs/metrics.md lists every family) and JSON for the
// control socket's stats request (`egressctl stats`).
//
//   StatsSources sources = ...;  // what is running now (Daemon::statsSources())
//   std::string text = renderPrometheus(collectStats(sources));
//   nlohmann::json json = collectStatsJson(sources); // == toJson(collectStats(sources))
//
// collectStats() copies the components' counters (relaxed atomics, plain
// stats structs, the DNS cache) into the snapshot; the renderers are pure
// functions of the snapshot, so tests render hand-made snapshots.
//
// Thread-safety: collectStats()/collectStatsJson() on the daemon's event
// loop thread (the DNS cache is not shared); everything else is pure.
// Nothing here fails; all of it allocates (never on a data path).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/enforcement.h"
#include "daemon/namespace_denials.h"
#include "daemon/pod_map_loader.h"
#include "daemon/rule_set_hits.h"
#include "daemon/rules_state.h"
#include "dns/binding_table.h"
#include "dns/cache.h"
#include "dns/service.h"
#include "nfq/flow_table.h"
#include "nfq/packet.h"
#include "nfq/queue_worker.h"
#include "nfq/verdict.h"
#include "policy/policy.h"

namespace daemon_main {

using SystemTime = std::chrono::system_clock::time_point;

// The daemon's own counters: reloads and the policy in force. Kept by the
// Daemon (event loop only) and updated where it reloads.
struct DaemonStats {
  struct Outcomes {
    uint64_t success = 0;
    uint64_t failure = 0;
  };
  SystemTime startedAt{};
  // kind "rules": a pass over the rules directories. Failure = it reported
  // errors (a file kept its last good version, a rule set was rejected);
  // the policy is still rebuilt from everything valid.
  Outcomes rulesReloads;
  // kind "config": SIGHUP. Failure = the file did not load; the running
  // configuration stays.
  Outcomes configReloads;
  uint64_t policyGeneration = 0;
  SystemTime policyLoadedAt{};
  size_t policyRuleSets = 0;
  size_t policyTargets = 0;
  // Of the last pass over the rules directories.
  size_t rulesFiles = 0;
  size_t rulesErrors = 0;
  size_t rulesWarnings = 0;
  size_t rejectedRuleSets = 0;
  size_t refusedTargets = 0;  // targets not in force in rule sets that are
  size_t filesKeptLastGood = 0;

  void recordRulesReload(const RulesReload& reload, const policy::Policy& policy, uint64_t generation,
                         SystemTime now);
  void recordConfigReload(bool ok) { ++(ok ? configReloads.success : configReloads.failure); }
};

// A Prometheus histogram: `counts[i]` observations <= upperBounds[i] (and
// above the previous bound), the last count is the +Inf bucket. Seconds.
struct HistogramValue {
  std::vector<double> upperBounds;
  std::vector<uint64_t> counts;  // upperBounds.size() + 1, not cumulative
  double sum = 0;
};

// One queue's counters since egressd started (across worker restarts:
// Enforcement::queueTotals()).
struct QueueStats : nfq::QueueCounters {
  uint16_t queue = 0;
  size_t flowCapacity = 0;
};

// The kernel fast path (daemon/enforcement.h BoundSetFeeder); present while
// NFQUEUE enforcement runs.
struct FastPathSnapshot {
  bool available = false;           // the chain passes bound SYNs in the kernel
  uint64_t bindings = 0;            // bindings the feeder saw
  uint64_t entries = 0;             // set entries written (added or timeout renewed)
  uint64_t setFull = 0;             // refused: set at maxelem
  uint64_t failed = 0;              // other refusals, send errors, plan overflow
  uint64_t resyncs = 0;             // flush + refill (policy change)
  uint64_t flushes = 0;             // sets emptied (resync, stop)
  uint64_t kernelNames = 0;         // kernel verdict names map entries written
  uint64_t kernelNamesFailed = 0;   // refused or not planned (their first payloads are queued)
  uint64_t kernelNamesEvicted = 0;  // bindings evicted for room, their names deleted from the map
  // Entries the kernel holds now, by family (nullopt: could not be read).
  std::optional<uint64_t> setEntries4;
  std::optional<uint64_t> setEntries6;
};

// dns::DnsCounters as plain values; `outcomes` by dns::DnsOutcome.
inline constexpr size_t kDnsOutcomeCount = 7;
struct DnsStats {
  uint64_t queries = 0;
  std::array<uint64_t, kDnsOutcomeCount> outcomes{};
  uint64_t rebindingBlocked = 0;
  uint64_t echStripped = 0;
  uint64_t upstreamTimeouts = 0;
  uint64_t upstreamTcpRetries = 0;
  uint64_t upstreamMismatched = 0;
  uint64_t truncatedToClient = 0;
  uint64_t tcpRejected = 0;
  uint64_t tcpTimeouts = 0;
  uint64_t pendingOverflow = 0;
  uint64_t bindingsRecorded = 0;
  uint64_t tcpHalfClosed = 0;
  // By dns::DenyReason (index 0, none, unused).
  std::array<uint64_t, dns::kDenyReasonCount> denials{};
  std::array<uint64_t, dns::kDenyReasonCount> wouldDeny{};
  uint64_t tunnelGuardTrips = 0;
  uint64_t tunnelGuardEvictions = 0;
  uint64_t upstreamUnreachable = 0;
  uint64_t proxyHeaders = 0;
  uint64_t proxyHeadersLocal = 0;
  uint64_t proxyHeadersMissing = 0;
  uint64_t proxyHeadersMalformed = 0;
  size_t tcpClients = 0;
  dns::CacheStats cache;
  size_t cacheCapacity = 0;
  // dns::DnsCounters::upstreamLatency (nullopt only in hand-made snapshots).
  std::optional<HistogramValue> upstreamLatency;
};

struct BindingTableStats {
  dns::BindingStats table;
  size_t capacity = 0;
};

struct StatsSnapshot {
  SystemTime now{};
  bool audit = false;  // mode = "audit" (a live setting)
  DaemonStats daemon;
  std::vector<QueueStats> queues;            // empty: NFQUEUE off
  std::optional<FastPathSnapshot> fastPath;  // nullopt: NFQUEUE off
  std::optional<bool> kernelGuard;           // the insertion guard's eBPF checks loaded; nullopt: NFQUEUE off
  std::optional<bool> kernelVerdict;         // first payloads judged by eBPF; nullopt: NFQUEUE off
  std::optional<DnsStats> dns;               // nullopt: DNS off
  std::optional<BindingTableStats> bindings;  // nullopt: no table
  uint64_t eventsDropped = 0;                 // decision events the event hub could not take
  uint64_t controlClientDrops = 0;            // events dropped for slow control-socket (watch) clients
  std::vector<RuleSetHitRow> ruleSetHits;
  size_t ruleSetHitsLimit = RuleSetHits::kDefaultMaxRuleSets;
  std::vector<NamespaceDenialRow> namespaceDenials;  // attribution
  size_t namespaceDenialsLimit = NamespaceDenials::kDefaultMaxNamespaces;
  std::optional<PodMapCounters> podMap;  // nullopt: attribution off
};

// What a running egressd has; every pointer may be null (component off).
// The referenced objects must outlive the collectStats() call only.
struct StatsSources {
  SystemTime now = std::chrono::system_clock::now();
  bool audit = false;
  const DaemonStats* daemon = nullptr;
  // The verdict workers (their totals across restarts) and the fast path.
  const Enforcement* enforcement = nullptr;
  size_t flowCapacity = 0;  // nfqueue.max_held_flows, per worker
  const dns::DnsService* dns = nullptr;
  size_t dnsCacheCapacity = 0;  // dns.cache_size
  const dns::BindingTable* bindings = nullptr;
  const RuleSetHits* ruleSetHits = nullptr;
  const NamespaceDenials* namespaceDenials = nullptr;
  const PodMapCounters* podMap = nullptr;
  uint64_t eventsDropped = 0;
  uint64_t controlClientDrops = 0;
};

StatsSnapshot collectStats(const StatsSources& sources);

// Prometheus text exposition format 0.0.4 (docs/metrics.md): every family
// with # HELP and # TYPE, names egressd_*, counters ending in _total.
std::string renderPrometheus(const StatsSnapshot& snapshot);

// The same numbers as one JSON object (docs/metrics.md "JSON"), with a
// "version" member for the control protocol.
nlohmann::json toJson(const StatsSnapshot& snapshot);

// For the control server (`egressctl stats`): toJson(collectStats(sources)).
inline nlohmann::json collectStatsJson(const StatsSources& sources) {
  return toJson(collectStats(sources));
}

// Prometheus label value escaping: backslash, double quote, line feed.
std::string escapeLabelValue(std::string_view value);

// Converts a common::LatencyHistogram-like reader (bucket(i), kBoundsMicros,
// sumMicros()) into seconds; cumulative consistency is the renderer's job.
template <typename Histogram>
HistogramValue histogramValue(const Histogram& histogram) {
  HistogramValue value;
  for (uint64_t bound : Histogram::kBoundsMicros)
    value.upperBounds.push_back(static_cast<double>(bound) / 1e6);
  for (size_t i = 0; i < Histogram::kBuckets; ++i) value.counts.push_back(histogram.bucket(i));
  value.sum = static_cast<double>(histogram.sumMicros()) / 1e6;
  return value;
}

}  // namespace daemon_main

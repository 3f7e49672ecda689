#include "daemon/stats.h"

#include <charconv>
#include <cmath>
#include <initializer_list>
#include <utility>

#include "common/metrics_text.h"

namespace daemon_main {

namespace {

constexpr int kJsonVersion = 1;

double unixSeconds(SystemTime time) {
  return std::chrono::duration<double>(time.time_since_epoch()).count();
}

double secondsBetween(SystemTime from, SystemTime to) {
  if (from == SystemTime{} || to < from) return 0;
  return std::chrono::duration<double>(to - from).count();
}

uint64_t load(const std::atomic<uint64_t>& counter) {
  return counter.load(std::memory_order_relaxed);
}

std::string_view outcomeName(size_t index) {
  return dns::dnsOutcomeName(static_cast<dns::DnsOutcome>(index));
}

QueueStats queueStats(const QueueTotals& totals, size_t capacity) {
  QueueStats out;
  static_cast<nfq::QueueCounters&>(out) = totals.counters;
  out.queue = totals.queue;
  out.flowCapacity = capacity;
  return out;
}

FastPathSnapshot fastPathStats(const Enforcement& enforcement) {
  FastPathSnapshot out;
  const BoundSetFeeder* feeder = enforcement.fastPath();
  if (feeder == nullptr) return out;
  const FastPathStats& f = feeder->stats();
  out.available = true;
  out.bindings = load(f.bindings);
  out.entries = load(f.entries);
  out.setFull = load(f.setFull);
  out.failed = load(f.failed);
  out.resyncs = load(f.resyncs);
  out.flushes = load(f.flushes);
  out.kernelNames = load(f.kernelNames);
  out.kernelNamesFailed = load(f.kernelNamesFailed);
  out.kernelNamesEvicted = load(f.kernelNamesEvicted);
  const BoundSetSizes sizes = feeder->setSizes();
  out.setEntries4 = sizes.v4;
  out.setEntries6 = sizes.v6;
  return out;
}

DnsStats dnsStats(const dns::DnsService& service, size_t cacheCapacity) {
  const dns::DnsCounters& c = service.counters();
  DnsStats out;
  out.queries = load(c.queries);
  const auto set = [&out](dns::DnsOutcome outcome, uint64_t value) {
    out.outcomes[static_cast<size_t>(outcome)] = value;
  };
  set(dns::DnsOutcome::Allowed, load(c.allowed));
  set(dns::DnsOutcome::CacheHit, load(c.cacheHit));
  set(dns::DnsOutcome::Denied, load(c.denied));
  set(dns::DnsOutcome::Cluster, load(c.cluster));
  set(dns::DnsOutcome::UpstreamError, load(c.upstreamError));
  set(dns::DnsOutcome::Malformed, load(c.malformed));
  set(dns::DnsOutcome::Refused, load(c.refused));
  out.rebindingBlocked = load(c.rebindingBlocked);
  out.echStripped = load(c.echStripped);
  out.upstreamTimeouts = load(c.upstreamTimeouts);
  out.upstreamTcpRetries = load(c.upstreamTcpRetries);
  out.upstreamMismatched = load(c.upstreamMismatched);
  out.truncatedToClient = load(c.truncatedToClient);
  out.tcpRejected = load(c.tcpRejected);
  out.tcpTimeouts = load(c.tcpTimeouts);
  out.pendingOverflow = load(c.pendingOverflow);
  out.bindingsRecorded = load(c.bindingsRecorded);
  out.tcpHalfClosed = load(c.tcpHalfClosed);
  for (size_t i = 0; i < dns::kDenyReasonCount; ++i) {
    out.denials[i] = load(c.denials[i]);
    out.wouldDeny[i] = load(c.wouldDeny[i]);
  }
  out.tunnelGuardTrips = load(c.tunnelGuardTrips);
  out.tunnelGuardEvictions = load(c.tunnelGuardEvictions);
  out.upstreamUnreachable = load(c.upstreamUnreachable);
  out.proxyHeaders = load(c.proxyHeaders);
  out.proxyHeadersLocal = load(c.proxyHeadersLocal);
  out.proxyHeadersMissing = load(c.proxyHeadersMissing);
  out.proxyHeadersMalformed = load(c.proxyHeadersMalformed);
  out.tcpClients = service.tcpClients();
  out.cache = service.cacheStats();
  out.cacheCapacity = cacheCapacity;
  out.upstreamLatency = histogramValue(c.upstreamLatency);
  return out;
}

// ---- Prometheus text format 0.0.4 -----------------------------------------

using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

class Exposition {
 public:
  // Starts a family: # HELP and # TYPE, before any of its samples.
  void family(std::string_view name, std::string_view type, std::string_view help) {
    common::appendMetricFamily(out_, name, type, help);
  }

  void sample(std::string_view name, Labels labels, uint64_t value) {
    start(name, labels);
    out_ += std::to_string(value);
    out_ += '\n';
  }
  void sample(std::string_view name, Labels labels, double value) {
    start(name, labels);
    appendDouble(value);
    out_ += '\n';
  }

  // A whole histogram: cumulative _bucket{le} ending in +Inf, _sum, and
  // _count equal to the +Inf bucket (computed from the same reads, so a
  // scrape racing a record() is still self-consistent).
  void histogram(std::string_view name, const HistogramValue& value) {
    uint64_t cumulative = 0;
    const std::string bucket = std::string(name) + "_bucket";
    for (size_t i = 0; i < value.counts.size(); ++i) {
      cumulative += value.counts[i];
      std::string le = "+Inf";
      if (i < value.upperBounds.size()) le = formatDouble(value.upperBounds[i]);
      sample(bucket, {{"le", le}}, cumulative);
    }
    sample(std::string(name) + "_sum", {}, value.sum);
    sample(std::string(name) + "_count", {}, cumulative);
  }

  std::string take() { return std::move(out_); }

  static std::string formatDouble(double value) {
    if (std::isnan(value)) return "NaN";
    if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
    char buffer[64];
    // Fixed notation, shortest round-trip digits: "0.00025", "1700000000.5".
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::fixed);
    if (result.ec != std::errc()) return std::to_string(value);
    return std::string(buffer, result.ptr);
  }

 private:
  void start(std::string_view name, Labels labels) {
    out_ += name;
    if (labels.size() != 0) {
      out_ += '{';
      bool first = true;
      for (const auto& [key, value] : labels) {
        if (!first) out_ += ',';
        first = false;
        out_ += key;
        out_ += "=\"";
        out_ += escapeLabelValue(value);
        out_ += '"';
      }
      out_ += '}';
    }
    out_ += ' ';
  }
  void appendDouble(double value) { out_ += formatDouble(value); }

  std::string out_;
};

constexpr std::array<std::string_view, 3> kEventVerdicts = {"allow", "deny", "audit"};
constexpr std::array<std::string_view, 2> kEventKinds = {"connection", "dns"};

void renderDaemon(Exposition& e, const StatsSnapshot& s) {
  const DaemonStats& d = s.daemon;
  e.family("egressd_start_time_seconds", "gauge", "Start time of the egressd process since the Unix epoch.");
  e.sample("egressd_start_time_seconds", {}, unixSeconds(d.startedAt));
  e.family("egressd_audit_mode", "gauge", "1 when mode = \"audit\" (denials are logged and let through).");
  e.sample("egressd_audit_mode", {}, uint64_t{s.audit ? 1u : 0u});
  e.family("egressd_policy_generation", "gauge",
           "Number of policies compiled since start (the one in force).");
  e.sample("egressd_policy_generation", {}, d.policyGeneration);
  e.family("egressd_policy_loaded_timestamp_seconds", "gauge",
           "When the policy in force was compiled, seconds since the Unix epoch.");
  e.sample("egressd_policy_loaded_timestamp_seconds", {}, unixSeconds(d.policyLoadedAt));
  e.family("egressd_policy_age_seconds", "gauge", "Seconds since the policy in force was compiled.");
  e.sample("egressd_policy_age_seconds", {}, secondsBetween(d.policyLoadedAt, s.now));
  e.family("egressd_policy_rule_sets", "gauge", "Valid rule sets in the policy in force.");
  e.sample("egressd_policy_rule_sets", {}, uint64_t{d.policyRuleSets});
  e.family("egressd_policy_targets", "gauge", "Targets (HOST:PORT) in the policy in force.");
  e.sample("egressd_policy_targets", {}, uint64_t{d.policyTargets});
  e.family("egressd_rules_files", "gauge", "Rules files read by the last pass over the rules directories.");
  e.sample("egressd_rules_files", {}, uint64_t{d.rulesFiles});
  e.family("egressd_rules_problems", "gauge", "Problems the last pass over the rules directories reported.");
  e.sample("egressd_rules_problems", {{"severity", "error"}}, uint64_t{d.rulesErrors});
  e.sample("egressd_rules_problems", {{"severity", "warning"}}, uint64_t{d.rulesWarnings});
  e.family("egressd_rules_rejected_rule_sets", "gauge",
           "Documents the last pass could not read as rule sets (their last good version stays, if any).");
  e.sample("egressd_rules_rejected_rule_sets", {}, uint64_t{d.rejectedRuleSets});
  e.family("egressd_rules_refused_targets", "gauge",
           "Targets the last pass refused; the other targets of their rule sets are in force.");
  e.sample("egressd_rules_refused_targets", {}, uint64_t{d.refusedTargets});
  e.family("egressd_rules_files_kept_last_good", "gauge",
           "Rules files that failed to load as a whole and keep their last good version.");
  e.sample("egressd_rules_files_kept_last_good", {}, uint64_t{d.filesKeptLastGood});
  e.family("egressd_reloads_total", "counter",
           "Reloads by kind (rules: a pass over the rules directories; config: SIGHUP) and outcome.");
  e.sample("egressd_reloads_total", {{"kind", "rules"}, {"outcome", "success"}}, d.rulesReloads.success);
  e.sample("egressd_reloads_total", {{"kind", "rules"}, {"outcome", "failure"}}, d.rulesReloads.failure);
  e.sample("egressd_reloads_total", {{"kind", "config"}, {"outcome", "success"}}, d.configReloads.success);
  e.sample("egressd_reloads_total", {{"kind", "config"}, {"outcome", "failure"}}, d.configReloads.failure);
}

void renderQueues(Exposition& e, const StatsSnapshot& s) {
  std::vector<std::string> names;
  names.reserve(s.queues.size());
  for (const QueueStats& q : s.queues) names.push_back(std::to_string(q.queue));

  const auto perQueue = [&](std::string_view name, std::string_view type, std::string_view help, auto value) {
    e.family(name, type, help);
    for (size_t i = 0; i < s.queues.size(); ++i) e.sample(name, {{"queue", names[i]}}, value(s.queues[i]));
  };
  perQueue("egressd_nfq_packets_total", "counter", "Packets received from the NFQUEUE.",
           [](const QueueStats& q) { return q.packets; });
  perQueue("egressd_nfq_verdict_batches_total", "counter", "Verdict batches sent (one sendmsg each).",
           [](const QueueStats& q) { return q.batches; });
  perQueue("egressd_nfq_receive_errors_total", "counter",
           "Netlink receive errors, including ENOBUFS (the kernel queue overran).",
           [](const QueueStats& q) { return q.receiveErrors; });

  e.family("egressd_nfq_verdicts_total", "counter",
           "Packet verdicts: allow, deny and audit-allow are final decisions of a flow; pass and hold wait "
           "for its first payload.");
  for (size_t i = 0; i < s.queues.size(); ++i) {
    for (size_t v = 0; v < nfq::kVerdictCount; ++v) {
      e.sample("egressd_nfq_verdicts_total",
               {{"queue", names[i]}, {"verdict", nfq::verdictName(static_cast<nfq::Verdict>(v))}},
               s.queues[i].verdicts[v]);
    }
  }
  e.family("egressd_nfq_reasons_total", "counter",
           "Packet verdicts by reason (docs/metrics.md says which reasons deny).");
  for (size_t i = 0; i < s.queues.size(); ++i) {
    for (size_t r = 0; r < nfq::kReasonCount; ++r) {
      e.sample("egressd_nfq_reasons_total",
               {{"queue", names[i]}, {"reason", nfq::reasonName(static_cast<nfq::Reason>(r))}},
               s.queues[i].reasons[r]);
    }
  }
  e.family("egressd_nfq_decode_errors_total", "counter", "Queued packets that did not decode, by error.");
  for (size_t i = 0; i < s.queues.size(); ++i) {
    for (size_t d = 0; d < nfq::kDecodeErrorCount; ++d) {
      const auto error = static_cast<nfq::DecodeError>(d);
      if (error == nfq::DecodeError::Ok) continue;
      e.sample("egressd_nfq_decode_errors_total",
               {{"queue", names[i]}, {"error", nfq::decodeErrorName(error)}}, s.queues[i].decodeErrors[d]);
    }
  }
  perQueue("egressd_nfq_dropped_segments_total", "counter",
           "Retransmitted or out-of-order segments of held flows, dropped (the client resends).",
           [](const QueueStats& q) { return q.droppedSegments; });
  perQueue("egressd_nfq_held_retransmits_passed_total", "counter",
           "Retransmissions of bytes already held, let through without a connection mark (the server "
           "acknowledges them; the flow stays held).",
           [](const QueueStats& q) { return q.heldRetransmitsPassed; });
  perQueue("egressd_nfq_recent_repeats_total", "counter",
           "Packets given their flow's recent final verdict again (queued before the connection mark was "
           "saved); not decisions, no events.",
           [](const QueueStats& q) { return q.recentRepeats; });
  perQueue("egressd_nfq_confirmed_total", "counter",
           "Provisional allows made final by the server's acknowledgment of the judged bytes "
           "(insertion guard).",
           [](const QueueStats& q) { return q.confirmed; });
  perQueue("egressd_nfq_confirm_segments_passed_total", "counter",
           "Client segments compared with the judged bytes while waiting for the server, and passed.",
           [](const QueueStats& q) { return q.confirmSegmentsPassed; });
  perQueue("egressd_nfq_confirm_replies_dropped_total", "counter",
           "Server packets the insertion guard dropped: no allow waited for them, or they came in on "
           "the client's interface.",
           [](const QueueStats& q) { return q.repliesDropped; });
  perQueue("egressd_nfq_replies_total", "counter",
           "Server packets the insertion guard read (SYN-ACKs included); the rest of "
           "egressd_nfq_packets_total came from clients.",
           [](const QueueStats& q) { return q.replies; });
  perQueue("egressd_nfq_reply_syn_acks_total", "counter",
           "Server SYN-ACKs the insertion guard read to learn where a client's stream starts.",
           [](const QueueStats& q) { return q.replySynAcks; });
  perQueue(
      "egressd_nfq_kernel_starts_total", "counter",
      "First payloads judged whose stream start the kernel guard recorded from the SYN-ACK (not queued).",
      [](const QueueStats& q) { return q.kernelStarts; });
  perQueue("egressd_nfq_kernel_confirmed_total", "counter",
           "Provisional allows the kernel guard confirmed on the server's acknowledgment (also in "
           "egressd_nfq_confirmed_total).",
           [](const QueueStats& q) { return q.kernelConfirmed; });
  perQueue("egressd_nfq_kernel_confirm_missed_total", "counter",
           "Provisional allows the kernel guard's map could not take (full): confirmed in user space.",
           [](const QueueStats& q) { return q.kernelConfirmMissed; });
  perQueue("egressd_nfq_kernel_verdicts_total", "counter",
           "First payloads the kernel verdict's program allowed (not queued) whose decision the worker "
           "adopted from the program's record (also in egressd_nfq_verdicts_total and the reasons).",
           [](const QueueStats& q) { return q.kernelVerdicts; });
  perQueue("egressd_nfq_kernel_verdict_disagreements_total", "counter",
           "Kernel verdict records the worker's own decision did not allow (a policy change or an expiry "
           "raced the program): the connection was withdrawn, both ends reset.",
           [](const QueueStats& q) { return q.kernelVerdictDisagreements; });
  e.family("egressd_nfq_server_resets_total", "counter",
           "TCP resets sent to the servers of connections denied after their handshake, by result.");
  for (size_t i = 0; i < s.queues.size(); ++i) {
    e.sample("egressd_nfq_server_resets_total", {{"queue", names[i]}, {"result", "sent"}},
             s.queues[i].serverResets);
    e.sample("egressd_nfq_server_resets_total", {{"queue", names[i]}, {"result", "failed"}},
             s.queues[i].serverResetErrors);
  }

  perQueue("egressd_nfq_held_flows", "gauge", "Flows held waiting for the rest of their first payload.",
           [](const QueueStats& q) { return uint64_t{q.flows.active}; });
  perQueue("egressd_nfq_held_flows_capacity", "gauge", "Flows the worker can hold (nfqueue.max_held_flows).",
           [](const QueueStats& q) { return uint64_t{q.flowCapacity}; });
  perQueue("egressd_nfq_held_flows_inserted_total", "counter", "Flows that started being held.",
           [](const QueueStats& q) { return q.flows.inserted; });
  e.family("egressd_nfq_held_flows_removed_total", "counter",
           "Held flows removed, by cause: decided, expired (nfqueue.hold_timeout), evicted (table full).");
  for (size_t i = 0; i < s.queues.size(); ++i) {
    const nfq::FlowTableStats& f = s.queues[i].flows;
    e.sample("egressd_nfq_held_flows_removed_total", {{"queue", names[i]}, {"cause", "decided"}}, f.released);
    e.sample("egressd_nfq_held_flows_removed_total", {{"queue", names[i]}, {"cause", "expired"}}, f.expired);
    e.sample("egressd_nfq_held_flows_removed_total", {{"queue", names[i]}, {"cause", "evicted"}}, f.evicted);
  }
  e.family("egressd_nfq_held_flow_anomalies_total", "counter",
           "Segments of held flows that could not be added, by anomaly.");
  for (size_t i = 0; i < s.queues.size(); ++i) {
    const nfq::FlowTableStats& f = s.queues[i].flows;
    const std::string& q = names[i];
    e.sample("egressd_nfq_held_flow_anomalies_total", {{"queue", q}, {"anomaly", "duplicate"}}, f.duplicates);
    e.sample("egressd_nfq_held_flow_anomalies_total", {{"queue", q}, {"anomaly", "out_of_order"}},
             f.outOfOrder);
    e.sample("egressd_nfq_held_flow_anomalies_total", {{"queue", q}, {"anomaly", "buffer_full"}},
             f.bufferFull);
    e.sample("egressd_nfq_held_flow_anomalies_total", {{"queue", q}, {"anomaly", "pool_exhausted"}},
             f.poolExhausted);
  }
}

void renderFastPath(Exposition& e, const StatsSnapshot& s) {
  e.family("egressd_nfq_kernel_guard_active", "gauge",
           "1 when the insertion guard's SYN-ACK and confirmation checks run in the kernel (eBPF); 0 when "
           "they run in user space (nfqueue.kernel_guard = \"off\", or loading failed: see "
           "event=nfq.kernel_guard_unavailable).");
  if (s.kernelGuard) e.sample("egressd_nfq_kernel_guard_active", {}, uint64_t{*s.kernelGuard ? 1u : 0u});
  e.family("egressd_nfq_kernel_verdict_active", "gauge",
           "1 when the first payload of a connection to a DNS-bound allowed name is judged in the kernel "
           "(eBPF, nfqueue.kernel_verdict = \"auto\"); 0 when every first payload is queued (\"off\", or a "
           "condition was missing: see event=nfq.kernel_verdict_unavailable).");
  if (s.kernelVerdict) {
    e.sample("egressd_nfq_kernel_verdict_active", {}, uint64_t{*s.kernelVerdict ? 1u : 0u});
  }
  const FastPathSnapshot* f = s.fastPath ? &*s.fastPath : nullptr;
  const auto single = [&](std::string_view name, std::string_view type, std::string_view help, auto value) {
    e.family(name, type, help);
    if (f != nullptr) e.sample(name, {}, value(*f));
  };
  single("egressd_nfq_fast_path_available", "gauge",
         "1 when the kernel fast path passes SYNs to DNS-bound (address, port) pairs in the kernel; 0 when "
         "it is off (nfqueue.install_rules = false, or the kernel lacks ip_set/xt_set/xt_u32).",
         [](const FastPathSnapshot& x) { return uint64_t{x.available ? 1u : 0u}; });
  e.family("egressd_nfq_fast_path_set_entries", "gauge",
           "Entries in the kernel's bound sets by family, as the kernel counts them (timed-out entries "
           "until its garbage collector runs).");
  if (f != nullptr && f->setEntries4)
    e.sample("egressd_nfq_fast_path_set_entries", {{"family", "ipv4"}}, *f->setEntries4);
  if (f != nullptr && f->setEntries6)
    e.sample("egressd_nfq_fast_path_set_entries", {{"family", "ipv6"}}, *f->setEntries6);
  single("egressd_nfq_fast_path_bindings_total", "counter",
         "DNS bindings (new or extended) the fast path planned set entries for.",
         [](const FastPathSnapshot& x) { return x.bindings; });
  single("egressd_nfq_fast_path_entries_written_total", "counter",
         "Bound-set entries added or given a new timeout.",
         [](const FastPathSnapshot& x) { return x.entries; });
  e.family("egressd_nfq_fast_path_failures_total", "counter",
           "Bound-set entries or flushes that failed, by cause: set_full (the set is at maxelem), other "
           "(kernel refusals, send errors, plan overflow); those SYNs are decided in user space.");
  if (f != nullptr) {
    e.sample("egressd_nfq_fast_path_failures_total", {{"cause", "set_full"}}, f->setFull);
    e.sample("egressd_nfq_fast_path_failures_total", {{"cause", "other"}}, f->failed);
  }
  single("egressd_nfq_fast_path_resyncs_total", "counter",
         "Flushes and refills of the bound sets after a policy change.",
         [](const FastPathSnapshot& x) { return x.resyncs; });
  single("egressd_nfq_fast_path_flushes_total", "counter",
         "Bound sets emptied (each set counted: two per resync, two at stop).",
         [](const FastPathSnapshot& x) { return x.flushes; });
}

void renderDns(Exposition& e, const StatsSnapshot& s) {
  const DnsStats* d = s.dns ? &*s.dns : nullptr;
  const auto counter = [&](std::string_view name, std::string_view type, std::string_view help, auto value) {
    e.family(name, type, help);
    if (d != nullptr) e.sample(name, {}, value(*d));
  };
  counter("egressd_dns_queries_total", "counter", "DNS queries received over UDP and TCP.",
          [](const DnsStats& x) { return x.queries; });
  e.family("egressd_dns_responses_total", "counter",
           "DNS queries by outcome: allowed (forwarded), cache_hit, denied, cluster (unfiltered), "
           "upstream_error (SERVFAIL), malformed, refused.");
  if (d != nullptr) {
    for (size_t i = 0; i < kDnsOutcomeCount; ++i) {
      e.sample("egressd_dns_responses_total", {{"outcome", outcomeName(i)}}, d->outcomes[i]);
    }
  }
  counter("egressd_dns_rebinding_blocked_total", "counter",
          "Answers for allowed names denied because they pointed into private, loopback or link-local space.",
          [](const DnsStats& x) { return x.rebindingBlocked; });
  counter("egressd_dns_ech_stripped_total", "counter", "Answers whose ECH configuration was removed.",
          [](const DnsStats& x) { return x.echStripped; });
  counter("egressd_dns_upstream_timeouts_total", "counter", "Upstream attempts that timed out.",
          [](const DnsStats& x) { return x.upstreamTimeouts; });
  counter("egressd_dns_upstream_tcp_retries_total", "counter",
          "Queries retried over TCP because the upstream's UDP answer was truncated.",
          [](const DnsStats& x) { return x.upstreamTcpRetries; });
  counter("egressd_dns_upstream_mismatched_total", "counter",
          "Upstream answers ignored because their ID or question did not match.",
          [](const DnsStats& x) { return x.upstreamMismatched; });
  counter("egressd_dns_truncated_responses_total", "counter", "Responses sent to clients truncated (TC).",
          [](const DnsStats& x) { return x.truncatedToClient; });
  counter("egressd_dns_tcp_rejected_total", "counter", "TCP clients refused over dns.max_tcp_clients.",
          [](const DnsStats& x) { return x.tcpRejected; });
  counter("egressd_dns_tcp_timeouts_total", "counter", "TCP clients closed after dns.tcp_idle_timeout.",
          [](const DnsStats& x) { return x.tcpTimeouts; });
  counter("egressd_dns_pending_overflow_total", "counter",
          "Queries answered SERVFAIL because too many were waiting for upstreams.",
          [](const DnsStats& x) { return x.pendingOverflow; });
  counter("egressd_dns_tcp_half_closed_total", "counter",
          "TCP clients that shut down their sending side first (answered, then closed).",
          [](const DnsStats& x) { return x.tcpHalfClosed; });
  const auto byReason = [&](std::string_view name, std::string_view help, auto values) {
    e.family(name, "counter", help);
    if (d == nullptr) return;
    for (size_t i = 1; i < dns::kDenyReasonCount; ++i) {
      e.sample(name, {{"reason", dns::denyReasonName(static_cast<dns::DenyReason>(i))}}, values(*d)[i]);
    }
  };
  byReason("egressd_dns_denials_total",
           "DNS queries answered with a denial (EDE 15), by reason: not_allowed, invalid_name, rebinding, "
           "world_non_address_query, dns_tunnel_budget.",
           [](const DnsStats& x) { return x.denials; });
  byReason("egressd_dns_audit_would_deny_total",
           "DNS queries answered in audit mode that enforce mode would have denied, by reason (never "
           "rebinding: that is refused in audit mode too).",
           [](const DnsStats& x) { return x.wouldDeny; });
  counter("egressd_dns_tunnel_guard_trips_total", "counter",
          "(client, registrable domain) pairs that used up dns.tunnel_guard_names within a window "
          "(each logged once as dns.tunnel_guard).",
          [](const DnsStats& x) { return x.tunnelGuardTrips; });
  counter("egressd_dns_tunnel_guard_evictions_total", "counter",
          "Live tunnel-guard entries replaced because their table set was full.",
          [](const DnsStats& x) { return x.tunnelGuardEvictions; });
  counter("egressd_dns_upstream_unreachable_total", "counter",
          "Queries answered SERVFAIL because every upstream timed out (EDE 22) or failed (EDE 23).",
          [](const DnsStats& x) { return x.upstreamUnreachable; });
  e.family("egressd_dns_proxy_protocol_headers_total", "counter",
           "PROXY protocol headers honoured from dns.proxy_protocol_from, by command (proxy: a client "
           "named; local: the balancer's own query, e.g. a health check).");
  if (d != nullptr) {
    e.sample("egressd_dns_proxy_protocol_headers_total", {{"command", "proxy"}}, d->proxyHeaders);
    e.sample("egressd_dns_proxy_protocol_headers_total", {{"command", "local"}}, d->proxyHeadersLocal);
  }
  e.family("egressd_dns_proxy_protocol_refused_total", "counter",
           "Datagrams dropped and TCP connections closed from dns.proxy_protocol_from, by reason (missing: "
           "no PROXY header; malformed: an invalid or cut header).");
  if (d != nullptr) {
    e.sample("egressd_dns_proxy_protocol_refused_total", {{"reason", "missing"}}, d->proxyHeadersMissing);
    e.sample("egressd_dns_proxy_protocol_refused_total", {{"reason", "malformed"}}, d->proxyHeadersMalformed);
  }
  counter("egressd_dns_tcp_clients", "gauge", "Open TCP client connections.",
          [](const DnsStats& x) { return uint64_t{x.tcpClients}; });
  counter("egressd_dns_cache_entries", "gauge", "Answers in the DNS cache.",
          [](const DnsStats& x) { return uint64_t{x.cache.entries}; });
  counter("egressd_dns_cache_capacity", "gauge", "Answers the DNS cache holds at most (dns.cache_size).",
          [](const DnsStats& x) { return uint64_t{x.cacheCapacity}; });
  counter("egressd_dns_cache_bytes", "gauge", "Answer bytes held by the DNS cache.",
          [](const DnsStats& x) { return uint64_t{x.cache.bytes}; });
  e.family("egressd_dns_cache_lookups_total", "counter", "DNS cache lookups by result (hit, miss).");
  if (d != nullptr) {
    e.sample("egressd_dns_cache_lookups_total", {{"result", "hit"}}, d->cache.hits);
    e.sample("egressd_dns_cache_lookups_total", {{"result", "miss"}}, d->cache.misses);
  }
  counter("egressd_dns_cache_evictions_total", "counter", "Answers evicted from the full DNS cache.",
          [](const DnsStats& x) { return x.cache.evictions; });
  e.family("egressd_dns_upstream_latency_seconds", "histogram",
           "Time from forwarding a query to the upstream's answer (including retries).");
  if (d != nullptr && d->upstreamLatency)
    e.histogram("egressd_dns_upstream_latency_seconds", *d->upstreamLatency);

  const BindingTableStats* b = s.bindings ? &*s.bindings : nullptr;
  const auto binding = [&](std::string_view name, std::string_view type, std::string_view help, auto value) {
    e.family(name, type, help);
    if (b != nullptr) e.sample(name, {}, value(*b));
  };
  binding("egressd_dns_bindings", "gauge", "(name, address) pairs in the DNS binding table.",
          [](const BindingTableStats& x) { return uint64_t{x.table.entries}; });
  binding("egressd_dns_bindings_capacity", "gauge", "(name, address) pairs the binding table holds at most.",
          [](const BindingTableStats& x) { return uint64_t{x.capacity}; });
  binding("egressd_dns_bindings_recorded_total", "counter", "Bindings added or extended by DNS answers.",
          [](const BindingTableStats& x) { return x.table.recorded; });
  binding("egressd_dns_binding_evictions_total", "counter", "Bindings evicted to make room.",
          [](const BindingTableStats& x) { return x.table.evictions; });
  binding("egressd_dns_bindings_expired_total", "counter", "Bindings removed after TTL plus grace.",
          [](const BindingTableStats& x) { return x.table.expired; });
}

void renderEvents(Exposition& e, const StatsSnapshot& s) {
  e.family("egressd_events_dropped_total", "counter",
           "Decision events dropped because the event ring was full (the data path never waits).");
  e.sample("egressd_events_dropped_total", {}, s.eventsDropped);
  e.family("egressd_control_events_dropped_total", "counter",
           "Decision events not delivered to slow control-socket (watch) clients.");
  e.sample("egressd_control_events_dropped_total", {}, s.controlClientDrops);

  e.family("egressd_ruleset_decisions_total", "counter",
           "Decisions naming a rule set, by rule set, kind (connection, dns) and verdict (allow, deny, "
           "audit); rule sets beyond the tracked limit are summed in ruleset=\"_other\".");
  for (const RuleSetHitRow& row : s.ruleSetHits) {
    for (size_t kind = 0; kind < kEventKinds.size(); ++kind) {
      for (size_t verdict = 0; verdict < kEventVerdicts.size(); ++verdict) {
        if (row.counts[kind][verdict] == 0) continue;
        e.sample(
            "egressd_ruleset_decisions_total",
            {{"ruleset", row.ruleSet}, {"kind", kEventKinds[kind]}, {"verdict", kEventVerdicts[verdict]}},
            row.counts[kind][verdict]);
      }
    }
  }
  e.family("egressd_ruleset_tracked_limit", "gauge",
           "Rule sets counted separately in egressd_ruleset_decisions_total at most.");
  e.sample("egressd_ruleset_tracked_limit", {}, uint64_t{s.ruleSetHitsLimit});

  // Attribution (docs/attribution.md).
  e.family("egressd_denials_by_namespace_total", "counter",
           "Denied (verdict=deny) and would-be denied (verdict=audit) decisions by the client pod's "
           "namespace and kind (connection, dns); namespaces beyond the tracked limit are summed in "
           "namespace=\"_other\", clients that are no known pod in namespace=\"_none\".");
  static constexpr std::array<std::string_view, 2> kDenialVerdicts = {"deny", "audit"};
  for (const NamespaceDenialRow& row : s.namespaceDenials) {
    for (size_t kind = 0; kind < kEventKinds.size(); ++kind) {
      for (size_t verdict = 0; verdict < kDenialVerdicts.size(); ++verdict) {
        if (row.counts[kind][verdict] == 0) continue;
        e.sample("egressd_denials_by_namespace_total",
                 {{"namespace", row.ns}, {"kind", kEventKinds[kind]}, {"verdict", kDenialVerdicts[verdict]}},
                 row.counts[kind][verdict]);
      }
    }
  }
  e.family("egressd_denials_namespace_tracked_limit", "gauge",
           "Namespaces counted separately in egressd_denials_by_namespace_total at most.");
  e.sample("egressd_denials_namespace_tracked_limit", {}, uint64_t{s.namespaceDenialsLimit});
  if (s.podMap) {
    e.family("egressd_pod_map_pods", "gauge", "Addresses in the pod map in force (attribution).");
    e.sample("egressd_pod_map_pods", {}, uint64_t{s.podMap->pods});
    e.family("egressd_pod_map_bytes", "gauge", "Memory of the pod map in force, in bytes.");
    e.sample("egressd_pod_map_bytes", {}, uint64_t{s.podMap->bytes});
    e.family("egressd_pod_map_problems", "gauge", "Lines of the pod map file that were skipped.");
    e.sample("egressd_pod_map_problems", {}, uint64_t{s.podMap->problems});
    e.family("egressd_pod_map_loads_total", "counter", "Pod maps loaded (one per change of the file).");
    e.sample("egressd_pod_map_loads_total", {}, s.podMap->loads);
  }
}

nlohmann::json histogramJson(const HistogramValue& h) {
  nlohmann::json buckets = nlohmann::json::array();
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.counts.size(); ++i) {
    cumulative += h.counts[i];
    nlohmann::json bucket;
    if (i < h.upperBounds.size()) {
      bucket["le"] = h.upperBounds[i];
    } else {
      bucket["le"] = "+Inf";
    }
    bucket["count"] = cumulative;
    buckets.push_back(std::move(bucket));
  }
  return {{"buckets", std::move(buckets)}, {"sum_seconds", h.sum}, {"count", cumulative}};
}

}  // namespace

void DaemonStats::recordRulesReload(const RulesReload& reload, const policy::Policy& policy,
                                    uint64_t generation, SystemTime now) {
  rulesErrors = 0;
  rulesWarnings = 0;
  for (const auto& problem : reload.problems) {
    ++(problem.severity == policy::Severity::Error ? rulesErrors : rulesWarnings);
  }
  ++(rulesErrors == 0 ? rulesReloads.success : rulesReloads.failure);
  rulesFiles = reload.files;
  rejectedRuleSets = reload.rejectedRuleSets;
  refusedTargets = reload.refusedTargets;
  filesKeptLastGood = reload.keptLastGood.size();
  policyGeneration = generation;
  policyLoadedAt = now;
  policyRuleSets = policy.ruleSets().size();
  policyTargets = policy.targetCount();
}

std::string escapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

StatsSnapshot collectStats(const StatsSources& sources) {
  StatsSnapshot s;
  s.now = sources.now;
  s.audit = sources.audit;
  if (sources.daemon != nullptr) s.daemon = *sources.daemon;
  if (sources.enforcement != nullptr) {
    for (const QueueTotals& totals : sources.enforcement->queueTotals()) {
      s.queues.push_back(queueStats(totals, sources.flowCapacity));
    }
    s.fastPath = fastPathStats(*sources.enforcement);
    s.kernelGuard = sources.enforcement->kernelGuard() != nullptr;
    s.kernelVerdict = sources.enforcement->kernelVerdict() != nullptr;
  }
  if (sources.dns != nullptr) s.dns = dnsStats(*sources.dns, sources.dnsCacheCapacity);
  if (sources.bindings != nullptr) {
    s.bindings = BindingTableStats{sources.bindings->stats(), sources.bindings->capacity()};
  }
  s.eventsDropped = sources.eventsDropped;
  s.controlClientDrops = sources.controlClientDrops;
  if (sources.ruleSetHits != nullptr) {
    s.ruleSetHits = sources.ruleSetHits->rows();
    s.ruleSetHitsLimit = sources.ruleSetHits->maxRuleSets();
  }
  if (sources.namespaceDenials != nullptr) {
    s.namespaceDenials = sources.namespaceDenials->rows();
    s.namespaceDenialsLimit = sources.namespaceDenials->maxNamespaces();
  }
  if (sources.podMap != nullptr) s.podMap = *sources.podMap;
  return s;
}

std::string renderPrometheus(const StatsSnapshot& snapshot) {
  Exposition e;
  renderDaemon(e, snapshot);
  renderQueues(e, snapshot);
  renderFastPath(e, snapshot);
  renderDns(e, snapshot);
  renderEvents(e, snapshot);
  return e.take();
}

nlohmann::json toJson(const StatsSnapshot& s) {
  using nlohmann::json;
  const DaemonStats& d = s.daemon;
  json out;
  out["version"] = kJsonVersion;
  out["time"] = unixSeconds(s.now);
  out["started_at"] = unixSeconds(d.startedAt);
  out["mode"] = s.audit ? "audit" : "enforce";
  out["policy"] = {{"generation", d.policyGeneration},
                   {"loaded_at", unixSeconds(d.policyLoadedAt)},
                   {"age_seconds", secondsBetween(d.policyLoadedAt, s.now)},
                   {"rule_sets", d.policyRuleSets},
                   {"targets", d.policyTargets}};
  out["rules"] = {{"files", d.rulesFiles},
                  {"errors", d.rulesErrors},
                  {"warnings", d.rulesWarnings},
                  {"rejected_rule_sets", d.rejectedRuleSets},
                  {"refused_targets", d.refusedTargets},
                  {"files_kept_last_good", d.filesKeptLastGood}};
  out["reloads"] = {{"rules", {{"success", d.rulesReloads.success}, {"failure", d.rulesReloads.failure}}},
                    {"config", {{"success", d.configReloads.success}, {"failure", d.configReloads.failure}}}};

  json queues = json::array();
  for (const QueueStats& q : s.queues) {
    json verdicts = json::object();
    for (size_t v = 0; v < nfq::kVerdictCount; ++v) {
      verdicts[std::string(nfq::verdictName(static_cast<nfq::Verdict>(v)))] = q.verdicts[v];
    }
    json reasons = json::object();
    for (size_t r = 0; r < nfq::kReasonCount; ++r) {
      if (q.reasons[r] != 0)
        reasons[std::string(nfq::reasonName(static_cast<nfq::Reason>(r)))] = q.reasons[r];
    }
    json decodeErrors = json::object();
    for (size_t e = 1; e < nfq::kDecodeErrorCount; ++e) {
      if (q.decodeErrors[e] != 0) {
        decodeErrors[std::string(nfq::decodeErrorName(static_cast<nfq::DecodeError>(e)))] = q.decodeErrors[e];
      }
    }
    const nfq::FlowTableStats& f = q.flows;
    queues.push_back({{"queue", q.queue},
                      {"packets", q.packets},
                      {"batches", q.batches},
                      {"receive_errors", q.receiveErrors},
                      {"dropped_segments", q.droppedSegments},
                      {"held_retransmits_passed", q.heldRetransmitsPassed},
                      {"recent_repeats", q.recentRepeats},
                      {"server_resets", q.serverResets},
                      {"server_reset_errors", q.serverResetErrors},
                      {"confirmed", q.confirmed},
                      {"confirm_segments_passed", q.confirmSegmentsPassed},
                      {"confirm_replies_dropped", q.repliesDropped},
                      {"replies", q.replies},
                      {"reply_syn_acks", q.replySynAcks},
                      {"kernel_starts", q.kernelStarts},
                      {"kernel_confirmed", q.kernelConfirmed},
                      {"kernel_confirm_missed", q.kernelConfirmMissed},
                      {"kernel_verdicts", q.kernelVerdicts},
                      {"kernel_verdict_disagreements", q.kernelVerdictDisagreements},
                      {"verdicts", std::move(verdicts)},
                      {"reasons", std::move(reasons)},
                      {"decode_errors", std::move(decodeErrors)},
                      {"held_flows",
                       {{"active", f.active},
                        {"capacity", q.flowCapacity},
                        {"inserted", f.inserted},
                        {"decided", f.released},
                        {"expired", f.expired},
                        {"evicted", f.evicted},
                        {"duplicates", f.duplicates},
                        {"out_of_order", f.outOfOrder},
                        {"buffer_full", f.bufferFull},
                        {"pool_exhausted", f.poolExhausted}}}});
  }
  out["nfqueue"] = {{"enabled", !s.queues.empty()}, {"queues", std::move(queues)}};
  if (s.kernelGuard) out["nfqueue"]["kernel_guard"] = {{"active", *s.kernelGuard}};
  if (s.kernelVerdict) out["nfqueue"]["kernel_verdict"] = {{"active", *s.kernelVerdict}};
  if (s.fastPath) {
    const FastPathSnapshot& f = *s.fastPath;
    json sets = json::object();
    if (f.setEntries4) sets["ipv4"] = *f.setEntries4;
    if (f.setEntries6) sets["ipv6"] = *f.setEntries6;
    out["nfqueue"]["fast_path"] = {{"available", f.available},
                                   {"set_entries", std::move(sets)},
                                   {"bindings", f.bindings},
                                   {"entries_written", f.entries},
                                   {"set_full", f.setFull},
                                   {"failed", f.failed},
                                   {"resyncs", f.resyncs},
                                   {"flushes", f.flushes},
                                   {"kernel_names_written", f.kernelNames},
                                   {"kernel_names_failed", f.kernelNamesFailed},
                                   {"kernel_names_evicted", f.kernelNamesEvicted}};
  }

  if (s.dns) {
    const DnsStats& n = *s.dns;
    json outcomes = json::object();
    for (size_t i = 0; i < kDnsOutcomeCount; ++i) outcomes[std::string(outcomeName(i))] = n.outcomes[i];
    out["dns"] = {{"enabled", true},
                  {"queries", n.queries},
                  {"outcomes", std::move(outcomes)},
                  {"rebinding_blocked", n.rebindingBlocked},
                  {"ech_stripped", n.echStripped},
                  {"upstream_timeouts", n.upstreamTimeouts},
                  {"upstream_tcp_retries", n.upstreamTcpRetries},
                  {"upstream_mismatched", n.upstreamMismatched},
                  {"truncated_to_client", n.truncatedToClient},
                  {"tcp_rejected", n.tcpRejected},
                  {"tcp_timeouts", n.tcpTimeouts},
                  {"pending_overflow", n.pendingOverflow},
                  {"bindings_recorded", n.bindingsRecorded},
                  {"tcp_half_closed", n.tcpHalfClosed},
                  {"tunnel_guard_trips", n.tunnelGuardTrips},
                  {"tunnel_guard_evictions", n.tunnelGuardEvictions},
                  {"upstream_unreachable", n.upstreamUnreachable},
                  {"proxy_protocol",
                   {{"proxy", n.proxyHeaders},
                    {"local", n.proxyHeadersLocal},
                    {"missing", n.proxyHeadersMissing},
                    {"malformed", n.proxyHeadersMalformed}}},
                  {"tcp_clients", n.tcpClients},
                  {"cache",
                   {{"entries", n.cache.entries},
                    {"capacity", n.cacheCapacity},
                    {"bytes", n.cache.bytes},
                    {"hits", n.cache.hits},
                    {"misses", n.cache.misses},
                    {"evictions", n.cache.evictions}}}};
    if (n.upstreamLatency) out["dns"]["upstream_latency"] = histogramJson(*n.upstreamLatency);
    json denials = json::object();
    json wouldDeny = json::object();
    for (size_t i = 1; i < dns::kDenyReasonCount; ++i) {
      const std::string reason(dns::denyReasonName(static_cast<dns::DenyReason>(i)));
      denials[reason] = n.denials[i];
      wouldDeny[reason] = n.wouldDeny[i];
    }
    out["dns"]["denials"] = std::move(denials);
    out["dns"]["audit_would_deny"] = std::move(wouldDeny);
  } else {
    out["dns"] = {{"enabled", false}};
  }
  if (s.bindings) {
    const dns::BindingStats& b = s.bindings->table;
    out["bindings"] = {{"entries", b.entries},
                       {"capacity", s.bindings->capacity},
                       {"recorded", b.recorded},
                       {"evictions", b.evictions},
                       {"expired", b.expired}};
  }
  out["events"] = {{"dropped", s.eventsDropped}, {"control_client_dropped", s.controlClientDrops}};

  json ruleSets = json::array();
  for (const RuleSetHitRow& row : s.ruleSetHits) {
    json entry = {{"ruleset", row.ruleSet}};
    for (size_t kind = 0; kind < kEventKinds.size(); ++kind) {
      json verdicts = json::object();
      for (size_t verdict = 0; verdict < kEventVerdicts.size(); ++verdict) {
        verdicts[std::string(kEventVerdicts[verdict])] = row.counts[kind][verdict];
      }
      entry[std::string(kEventKinds[kind])] = std::move(verdicts);
    }
    ruleSets.push_back(std::move(entry));
  }
  out["rulesets"] = {{"limit", s.ruleSetHitsLimit}, {"hits", std::move(ruleSets)}};
  json denials = json::array();
  for (const NamespaceDenialRow& row : s.namespaceDenials) {
    json entry = {{"namespace", row.ns}};
    for (size_t kind = 0; kind < kEventKinds.size(); ++kind) {
      entry[std::string(kEventKinds[kind])] = {{"deny", row.counts[kind][0]}, {"audit", row.counts[kind][1]}};
    }
    denials.push_back(std::move(entry));
  }
  out["denials_by_namespace"] = {{"limit", s.namespaceDenialsLimit}, {"namespaces", std::move(denials)}};
  if (s.podMap) {
    out["pod_map"] = {{"pods", s.podMap->pods},
                      {"bytes", s.podMap->bytes},
                      {"problems", s.podMap->problems},
                      {"loads", s.podMap->loads},
                      {"failures", s.podMap->failures}};
  }
  return out;
}

}  // namespace daemon_main

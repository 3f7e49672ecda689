// Snapshots for the metrics tests: one with every component on and
// distinct, non-zero values, so a rendering bug (a value in the wrong
// series, a lost label) shows up as a wrong number.
#pragma once

#include <chrono>

#include "daemon/stats.h"

namespace metrics_fixtures {

inline daemon_main::SystemTime at(double unixSeconds) {
  return daemon_main::SystemTime(std::chrono::duration_cast<daemon_main::SystemTime::duration>(
      std::chrono::duration<double>(unixSeconds)));
}

inline daemon_main::StatsSnapshot fullSnapshot() {
  using namespace daemon_main;
  StatsSnapshot s;
  s.now = at(1'700'000'100.0);
  s.audit = true;
  s.daemon.startedAt = at(1'700'000'000.0);
  s.daemon.policyGeneration = 7;
  s.daemon.policyLoadedAt = at(1'700'000'090.0);
  s.daemon.policyRuleSets = 3;
  s.daemon.policyTargets = 11;
  s.daemon.rulesFiles = 4;
  s.daemon.rulesErrors = 2;
  s.daemon.rulesWarnings = 1;
  s.daemon.rejectedRuleSets = 1;
  s.daemon.filesKeptLastGood = 1;
  s.daemon.rulesReloads = {5, 2};
  s.daemon.configReloads = {3, 1};
  for (uint16_t queue : {uint16_t{0}, uint16_t{17}}) {
    QueueStats q;
    q.queue = queue;
    q.packets = 1000u + queue;
    q.batches = 100u + queue;
    q.receiveErrors = 3;
    q.droppedSegments = 4;
    q.serverResets = 5;
    q.serverResetErrors = 6;
    q.heldRetransmitsPassed = 15u + queue;
    q.recentRepeats = 16u + queue;
    for (size_t i = 0; i < q.verdicts.size(); ++i) q.verdicts[i] = 10 * (i + 1) + queue;
    for (size_t i = 0; i < q.reasons.size(); ++i) q.reasons[i] = i + queue;
    for (size_t i = 0; i < q.decodeErrors.size(); ++i) q.decodeErrors[i] = 2 * i;
    q.flows.active = 9;
    q.flows.inserted = 90;
    q.flows.released = 70;
    q.flows.expired = 8;
    q.flows.evicted = 3;
    q.flows.duplicates = 1;
    q.flows.outOfOrder = 2;
    q.flows.bufferFull = 3;
    q.flows.poolExhausted = 4;
    q.flowCapacity = 65536;
    s.queues.push_back(q);
  }
  FastPathSnapshot fast;
  fast.available = true;
  fast.bindings = 21;
  fast.entries = 22;
  fast.setFull = 23;
  fast.failed = 24;
  fast.resyncs = 25;
  fast.flushes = 26;
  fast.setEntries4 = 27;  // the IPv6 set's size could not be read
  s.fastPath = fast;
  DnsStats d;
  d.queries = 500;
  for (size_t i = 0; i < d.outcomes.size(); ++i) d.outcomes[i] = 100 + i;
  d.rebindingBlocked = 1;
  d.echStripped = 2;
  d.upstreamTimeouts = 3;
  d.upstreamTcpRetries = 4;
  d.upstreamMismatched = 5;
  d.truncatedToClient = 6;
  d.tcpRejected = 7;
  d.tcpTimeouts = 8;
  d.pendingOverflow = 9;
  d.bindingsRecorded = 10;
  d.tcpHalfClosed = 11;
  d.proxyHeaders = 12;
  d.proxyHeadersLocal = 13;
  d.proxyHeadersMissing = 14;
  d.proxyHeadersMalformed = 15;
  d.tcpClients = 2;
  d.cache = dns::CacheStats{40, 4096, 30, 20, 5};
  d.cacheCapacity = 10000;
  HistogramValue latency;
  latency.upperBounds = {0.001, 0.01, 0.1};
  latency.counts = {4, 3, 2, 1};
  latency.sum = 1.25;
  d.upstreamLatency = latency;
  s.dns = d;
  BindingTableStats b;
  b.table.entries = 12;
  b.table.recorded = 34;
  b.table.evictions = 5;
  b.table.expired = 6;
  b.capacity = 1 << 20;
  s.bindings = b;
  s.eventsDropped = 13;
  s.controlClientDrops = 14;
  RuleSetHitRow a{"team-a/api", {}};
  a.counts[0] = {1, 2, 3};
  a.counts[1] = {4, 0, 0};
  // Label escaping: ids cannot hold these, but the renderer must not care.
  RuleSetHitRow odd{"we\"ird\\ns/x\ny", {}};
  odd.counts[0] = {7, 0, 0};
  RuleSetHitRow other{"_other", {}};
  other.counts[0] = {0, 9, 0};
  s.ruleSetHits = {a, odd, other};
  s.ruleSetHitsLimit = 500;
  return s;
}

}  // namespace metrics_fixtures

// The final verdicts of the last few seconds, per 5-tuple: packets that the
// kernel queued behind a deciding packet, before the chain saved the
// connection mark (a client's second QUIC Initial, the rest of an HTTP
// request, a retransmitted SYN), get the same verdict again instead of
// being judged as a new flow (a second, wrong event: a continuation
// datagram held until `hold_timeout`, a mid-stream segment denied as a
// malformed hello).
//
// TCP: only denials are remembered. A new connection may reuse the
// 5-tuple at once (the kernel then starts a new conntrack entry, without
// the connection mark), and its initial sequence number can lie right
// after the old one's (RFC 6528 numbers grow with time), so no sequence
// test tells it apart reliably: a remembered allow could let a connection
// through whose hello egressd never read. A remembered deny at worst
// denies such a reuse for a moment (fail-closed). TCP entries also keep
// the decided sequence numbers: a segment is a repeat only from the first
// decided byte to kTcpWindow bytes beyond the last; a SYN only when it is
// the decided SYN itself (same number, a retransmission). Anything else
// removes the entry and is judged afresh.
// UDP and other protocols: every final verdict; the kernel's conntrack
// entry joins all datagrams of a 5-tuple (and its mark) the same way.
//
// Bounded and allocation-free after construction: a set-associative table
// (kWays entries per set); a new entry overwrites an expired one or the
// set's oldest. Thread-safety: none; one per verdict worker thread. Time
// is passed in (tests inject it). Nothing here fails after construction.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "nfq/flow_table.h"
#include "nfq/verdict.h"

namespace nfq {

struct RecentVerdictsStats {
  uint64_t recorded = 0;
  uint64_t hits = 0;         // packets given a recorded verdict
  uint64_t overwritten = 0;  // a live entry made room for a newer one
  uint64_t outOfWindow = 0;  // TCP: a segment of another connection removed the entry
};

class RecentVerdicts {
 public:
  static constexpr size_t kWays = 4;
  // Beyond the decided bytes: what a client can have sent before the
  // verdict reached the kernel (its receive window towards the server).
  static constexpr uint32_t kTcpWindow = 1U << 16;

  struct Entry {
    FlowKey key;
    TimePoint expires{};
    uint32_t seq = 0;     // TCP: the first decided byte (or the SYN's number)
    uint32_t length = 0;  // TCP: decided bytes
    bool hasSeq = false;
    bool syn = false;  // TCP: decided at the SYN
    bool inUse = false;
    Verdict verdict = Verdict::Deny;
    Reason reason = Reason::ProtocolNotAllowed;
  };

  // At least `capacity` entries (rounded up to whole sets of a power of two).
  // Throws std::invalid_argument when capacity is 0.
  RecentVerdicts(size_t capacity, std::chrono::nanoseconds lifetime);

  // What a TCP packet says about its connection (nullopt for other protocols).
  struct TcpPosition {
    uint32_t seq = 0;  // of the first payload byte (or the SYN's number)
    bool syn = false;  // a SYN without ACK: a connection's first packet
  };

  // Remembers a final verdict until now + lifetime (TCP: denials only, see
  // above; `tcp.seq` the first decided byte, `length` decided bytes).
  void record(const FlowKey& key, Verdict verdict, Reason reason, std::optional<TcpPosition> tcp,
              size_t length, TimePoint now) noexcept;
  // The live entry of key that covers the packet, or null. A TCP entry
  // that does not cover it is removed (see above).
  const Entry* find(const FlowKey& key, std::optional<TcpPosition> tcp, TimePoint now) noexcept;
  // Forgets everything (policy or mode changed: decide again).
  void clear() noexcept;

  const RecentVerdictsStats& stats() const noexcept { return stats_; }
  size_t capacity() const noexcept { return entries_.size(); }

 private:
  Entry* set(const FlowKey& key) noexcept { return entries_.data() + (key.hash(seed_) & setMask_) * kWays; }

  std::chrono::nanoseconds lifetime_;
  std::vector<Entry> entries_;
  size_t setMask_ = 0;
  uint64_t seed_ = 0;  // random per table, as FlowTable's
  RecentVerdictsStats stats_;
};

}  // namespace nfq

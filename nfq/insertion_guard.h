// The bytes egressd judges must be the bytes the server accepts
// (docs/nfq.md "Insertion: the judged bytes are the bytes the server
// accepts"). An IDS-style "insertion" — a first payload the server
// discards (stale TCP timestamp under PAWS, a TTL that expires after the
// gateway, an unexpected TCP MD5 option, a bad checksum) but egressd
// judges, followed by other bytes at the same sequence numbers — must not
// let those other bytes through under the allow mark. Three checks, pure
// here, applied by the queue worker:
//
//   1. the judged bytes start at the connection's first byte: the server's
//      SYN-ACK acknowledges the client's ISN + 1 (StreamStarts remembers it);
//   2. until the server acknowledges the judged bytes, every client segment
//      is compared with them: one that starts before them or overlaps them
//      with other bytes denies the connection (classifySegment);
//   3. only a server acknowledgment that covers the judged bytes turns the
//      provisional allow into the final one (acknowledges).
//
// Together: the server's stream starts at the judged first byte, every
// byte it can have received for the judged range passed this comparison,
// and it confirmed having them — so it parses what egressd parsed.
//
// Thread-safety: StreamStarts is one per worker thread (no locking); the
// functions are pure. Nothing here allocates after construction or throws
// after it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "nfq/flow_table.h"
#include "nfq/verdict.h"

namespace nfq {

// Whether an allow decided on a TCP first payload must be confirmed by the
// server before it becomes final: when the bytes decided it (a name read
// from them, or a binding that allowed them because they carry no name in
// the inspected-bound-flows mode). Allows at the SYN (address rules, world
// access, bound flows not inspected) do not depend on any byte.
bool needsConfirmation(const Decision& decision, const DecideOptions& options, bool hadPayload) noexcept;

// Where a client segment of a connection waiting for confirmation lies
// relative to the judged bytes [judgedStart, judgedStart + judgedLength)
// (sequence numbers modulo 2^32, RFC 9293 section 3.4).
enum class SegmentPlace : uint8_t {
  Before,   // starts before the judged bytes: never sent by an honest client
  Overlap,  // some of its bytes lie in the judged range: compare them
  After,    // entirely after the judged bytes
};
struct SegmentCheck {
  SegmentPlace place = SegmentPlace::After;
  size_t overlap = 0;  // Overlap: how many leading bytes of the payload to compare
};
SegmentCheck classifySegment(uint32_t judgedStart, size_t judgedLength, uint32_t seq,
                             size_t payloadLength) noexcept;

// True when a server acknowledgment number covers every judged byte
// (ack >= judgedEnd, and not so far beyond that it wrapped, RFC 9293
// section 3.4), given the highest sequence number the client was let send.
bool acknowledges(uint32_t ack, uint32_t judgedEnd, uint32_t passedEnd) noexcept;

// The first client byte of each TCP connection, from the server's SYN-ACK
// (its acknowledgment number, ISN + 1) or the client's SYN (ISN + 1), with
// the interface the SYN-ACK came in on. Set-associative, bounded, no
// allocation after construction: a new entry takes an expired slot or the
// set's oldest.
class StreamStarts {
 public:
  static constexpr size_t kWays = 4;

  struct Start {
    uint32_t seq = 0;         // the client's first payload byte
    uint32_t replyIndev = 0;  // interface of the SYN-ACK (0: learnt from the SYN)
    TimePoint at{};           // when it was learnt (the newest start of a 5-tuple counts)
  };

  // At least `capacity` entries. Throws std::invalid_argument when 0.
  StreamStarts(size_t capacity, std::chrono::nanoseconds lifetime);

  void record(const FlowKey& key, Start start, TimePoint now) noexcept;
  std::optional<Start> find(const FlowKey& key, TimePoint now) const noexcept;
  void erase(const FlowKey& key) noexcept;

  uint64_t overwritten() const noexcept { return overwritten_; }

 private:
  // A set: its ways' tags (a hash fingerprint, 0 when free) and expiries in
  // one cache line, then the ways' keys and starts, one line each. A lookup
  // reads the first line and the line of a way whose tag matches: a
  // connection costs three of these per allow (starts, and the table of
  // recent confirmations twice), and the tables are megabytes.
  struct alignas(64) Way {
    FlowKey key;
    Start start;
  };
  struct alignas(64) Set {
    uint32_t tags[kWays] = {};
    TimePoint expires[kWays] = {};
    Way ways[kWays];
  };
  Set& setOf(size_t hash) noexcept { return sets_[hash & setMask_]; }
  const Set& setOf(size_t hash) const noexcept { return sets_[hash & setMask_]; }
  static uint32_t tagOf(size_t hash) noexcept { return static_cast<uint32_t>(uint64_t{hash} >> 32) | 1U; }

  std::chrono::nanoseconds lifetime_;
  std::vector<Set> sets_;
  size_t setMask_ = 0;
  uint64_t seed_ = 0;
  uint64_t overwritten_ = 0;
};

// Check 1's start of a connection: the newest of the one this worker
// learnt from a queued SYN or SYN-ACK (`known`) and the one the kernel
// guard recorded (`kernel`: its starts map, or the copy a kernel verdict
// record carries), as when both came through the queue. A kernel start as
// old as `lifetime` or older does not count (the worker's own expire).
// `fromKernel` says whether the kernel's was taken.
std::optional<StreamStarts::Start> newestStart(const std::optional<StreamStarts::Start>& known,
                                               const std::optional<StreamStarts::Start>& kernel,
                                               std::chrono::nanoseconds lifetime, TimePoint now,
                                               bool& fromKernel) noexcept;

// Check 1 itself, for judged bytes starting at `start` of a packet that came
// in on `indev`: nullopt when they are the connection's first bytes, else
// why not (StreamStartUnknown: no start, or a SYN-ACK that came in on the
// client's own interface, forged there; NotStreamStart: another place).
std::optional<Reason> checkStreamStart(const std::optional<StreamStarts::Start>& known, uint32_t start,
                                       uint32_t indev) noexcept;

// The key of the connection a server's packet answers (source and
// destination swapped).
FlowKey replyKey(const PacketView& packet) noexcept;

}  // namespace nfq

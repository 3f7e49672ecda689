// The flows whose first payload is not complete yet (a ClientHello split
// over several TCP segments or QUIC datagrams): their held packet ids, their
// client bytes so far, and when they were first seen.
//
// Bounded and preallocated: every slot, index entry and buffer chunk is
// reserved by the constructor; insert/append/release/expire never
// allocate. The reservation is lazy (common/lazy_array.h): slots are handed
// out lowest index first, so memory is committed for the most flows ever
// held at once, not for the capacity. When the table is full the oldest
// flow is evicted (its held packets handed to the caller for a verdict) and
// counted.
//
// Thread-safety: one table per verdict worker thread, which alone calls the
// mutating members; stats() may be called from any thread (the counters are
// single-writer relaxed atomics, nfq/owned_counter.h). Time is passed in
// (no clock inside), so tests inject it.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "common/ip_address.h"
#include "common/lazy_array.h"
#include "nfq/owned_counter.h"
#include "nfq/packet.h"

namespace nfq {

struct FlowKey {
  common::IpAddress src;
  common::IpAddress dst;
  uint16_t srcPort = 0;
  uint16_t dstPort = 0;
  uint8_t protocol = 0;

  static FlowKey of(const PacketView& packet) noexcept;
  size_t hash(uint64_t seed) const noexcept;
  friend bool operator==(const FlowKey&, const FlowKey&) = default;
};

struct FlowTableOptions {
  size_t maxFlows = 4096;
  size_t maxFlowBytes = 16384;  // reassembly bytes per flow (hold limit)
  size_t chunkBytes = 2048;     // buffer pool granularity
  size_t poolBytes = 8u << 20;  // all flows' buffers together
  std::chrono::nanoseconds holdTimeout = std::chrono::seconds(2);
};

// A copy of the table's counters (FlowTable::stats()).
struct FlowTableStats {
  size_t active = 0;
  uint64_t inserted = 0;
  uint64_t released = 0;       // decided and removed
  uint64_t expired = 0;        // hold timeout
  uint64_t evicted = 0;        // table full: the oldest made room
  uint64_t duplicates = 0;     // retransmitted bytes already held
  uint64_t outOfOrder = 0;     // a gap or a partial overlap
  uint64_t bufferFull = 0;     // maxFlowBytes or held-packet limit reached
  uint64_t poolExhausted = 0;  // no free chunk
};

class FlowTable {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;
  static constexpr size_t kMaxHeldPackets = 32;
  static constexpr size_t kMaxChunksPerFlow = 64;

  struct Flow {
    FlowKey key;
    TimePoint firstSeen{};
    uint32_t nextSeq = 0;  // TCP: the sequence number expected next
    bool seqKnown = false;
    size_t length = 0;  // bytes held
    std::array<uint32_t, kMaxChunksPerFlow> chunks{};
    uint32_t chunkCount = 0;
    std::array<uint32_t, kMaxHeldPackets> packetIds{};
    uint32_t heldCount = 0;
    // Intrusive list in insertion order (= expiry order), slot indexes.
    uint32_t prev = kNone;
    uint32_t next = kNone;
    bool inUse = false;

    std::span<const uint32_t> heldPackets() const noexcept { return {packetIds.data(), heldCount}; }
  };

  enum class Append : uint8_t {
    Appended,       // bytes and packet id added
    Duplicate,      // all bytes already held (retransmission); nothing added
    OutOfOrder,     // a gap before it or a partial overlap; nothing added
    BufferFull,     // maxFlowBytes or kMaxHeldPackets reached; nothing added
    PoolExhausted,  // no free chunk; nothing added (evict, or deny)
  };

  // Reserves everything. Throws std::invalid_argument on nonsensical
  // options (zero sizes, maxFlowBytes above kMaxChunksPerFlow chunks).
  explicit FlowTable(const FlowTableOptions& options);
  FlowTable(const FlowTable&) = delete;
  FlowTable& operator=(const FlowTable&) = delete;

  Flow* find(const FlowKey& key) noexcept;
  // A new, empty flow. When the table is full, the oldest flow is removed
  // first and `onEvict(const Flow&)` sees it (to verdict its packets).
  // `key` must not be in the table.
  template <typename OnEvict>
  Flow& insert(const FlowKey& key, TimePoint now, OnEvict&& onEvict) noexcept {
    if (full()) {
      Flow& oldest = slots_[head_];
      counters_.evicted.add();
      onEvict(static_cast<const Flow&>(oldest));
      unlink(oldest);  // counted as evicted, not released
    }
    return insertUnchecked(key, now);
  }

  // Adds one packet's payload. `seq`: the TCP sequence number of its first
  // byte (nullopt for UDP: datagrams are appended in arrival order).
  Append append(Flow& flow, std::optional<uint32_t> seq, std::span<const uint8_t> payload,
                uint32_t packetId) noexcept;

  // True when the TCP bytes [seq, seq + payload.size()) all lie within the
  // held bytes and equal them: a retransmission that carries nothing the
  // table has not already parsed (the worker may then let it through).
  // False for an empty payload, a flow without sequence numbers, any byte
  // outside the held range, or any byte that differs.
  bool holdsCopy(const Flow& flow, uint32_t seq, std::span<const uint8_t> payload) const noexcept;

  // The held bytes as one span: a view of the chunk when they fit in one,
  // else copied into `scratch` (truncated to its size).
  std::span<const uint8_t> stream(const Flow& flow, std::span<uint8_t> scratch) const noexcept;

  // Removes a flow (after its verdict) and frees its chunks.
  void release(Flow& flow) noexcept;

  // Removes every flow first seen at or before now - holdTimeout, oldest
  // first, after `onExpire(const Flow&)` saw it. Returns how many.
  template <typename OnExpire>
  size_t expire(TimePoint now, OnExpire&& onExpire) noexcept {
    size_t count = 0;
    while (head_ != kNone && slots_[head_].firstSeen + options_.holdTimeout <= now) {
      Flow& oldest = slots_[head_];
      onExpire(static_cast<const Flow&>(oldest));
      unlink(oldest);
      counters_.expired.add();
      ++count;
    }
    return count;
  }

  // The slot index of a flow, 0 <= index < maxFlows: lets a worker keep
  // per-flow state of its own (e.g. QUIC reassembly) in a parallel array.
  size_t slotIndex(const Flow& flow) const noexcept { return static_cast<size_t>(&flow - slots_.data()); }
  // How many slots were ever in use (0 <= slotsTouched() <= capacity()):
  // the slots whose memory is committed.
  size_t slotsTouched() const noexcept { return unusedFrom_; }
  // When the oldest flow expires (nullopt: empty), for the worker's timer.
  std::optional<TimePoint> nextExpiry() const noexcept;

  // A copy, one relaxed read per counter: callable from any thread.
  FlowTableStats stats() const noexcept;
  size_t size() const noexcept { return static_cast<size_t>(counters_.active.load()); }
  size_t capacity() const noexcept { return slots_.size(); }
  bool full() const noexcept { return freeSlots_.empty() && unusedFrom_ == slots_.size(); }
  size_t freeChunks() const noexcept { return freeChunks_.size(); }

 private:
  static constexpr uint32_t kNone = UINT32_MAX;

  struct Counters {
    OwnedCounter active;
    OwnedCounter inserted;
    OwnedCounter released;
    OwnedCounter expired;
    OwnedCounter evicted;
    OwnedCounter duplicates;
    OwnedCounter outOfOrder;
    OwnedCounter bufferFull;
    OwnedCounter poolExhausted;
  };

  // `options`, or std::invalid_argument (before anything is reserved).
  static const FlowTableOptions& validated(const FlowTableOptions& options);
  Flow& insertUnchecked(const FlowKey& key, TimePoint now) noexcept;
  // release() without counting it as decided (expiry and eviction count
  // themselves).
  void unlink(Flow& flow) noexcept;
  size_t bucketOf(const FlowKey& key) const noexcept { return key.hash(seed_) & indexMask_; }
  void indexRemove(uint32_t slot) noexcept;
  uint8_t* chunk(uint32_t index) noexcept { return pool_.data() + size_t{index} * options_.chunkBytes; }
  const uint8_t* chunk(uint32_t index) const noexcept {
    return pool_.data() + size_t{index} * options_.chunkBytes;
  }

  FlowTableOptions options_;
  common::LazyArray<Flow> slots_;
  // Slots at or above unusedFrom_ were never used; below it, the released
  // ones are on the freeSlots_ stack (reserved, filled as they come back).
  size_t unusedFrom_ = 0;
  std::vector<uint32_t> freeSlots_;
  // Open addressing, linear probing: slot + 1, 0 = empty. Twice the slots.
  common::LazyArray<uint32_t> index_;
  size_t indexMask_ = 0;
  uint64_t seed_ = 0;  // random per table: pods cannot aim keys at one bucket
  common::LazyArray<uint8_t> pool_;
  std::vector<uint32_t> freeChunks_;  // stack
  uint32_t head_ = kNone;             // oldest
  uint32_t tail_ = kNone;             // newest
  Counters counters_;
};

}  // namespace nfq

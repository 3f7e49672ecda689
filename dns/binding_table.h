// The binding table: which allowed names egressd's DNS resolved to which
// addresses, until when (record TTL + rules.binding_grace). Written by the
// DNS service, read by the verdict workers ("was D handed out for N?").
//
// Thread-safety: every method may be called from any thread. The table is
// split into shards by address, each behind a reader/writer lock, so
// readers only contend with a writer of the same shard. Readers never
// allocate; record() allocates a node for a new entry (and a copy of the
// name when its shard does not hold it yet).
// Bounded: at most `maxEntries` (name, address) pairs overall (plus at
// most one per shard while shards fill unevenly) and kMaxNamesPerAddress
// names per address; when full, the entry with the earliest expiry among a
// small sample of the inserting shard is evicted and counted. Time is
// always passed in (no clock inside), so tests control it.
// Expiry: readers ignore expired entries, so removing them is only about
// memory and room; purgeExpiredStep() does it a bounded slice at a time
// (the DNS thread calls it often), so no call holds a lock for long.
// Memory: one hash node per (name, address) entry holding the address, a
// pointer to the name and the expiry; names are interned per shard (one
// reference-counted copy per distinct name in a shard).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/ip_address.h"

namespace dns {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

struct BoundName {
  std::array<char, 253> name{};
  uint8_t length = 0;
  TimePoint expiry{};
  std::string_view view() const noexcept { return {name.data(), length}; }
};

struct BindingStats {
  size_t entries = 0;
  uint64_t recorded = 0;   // record() calls that added or extended an entry
  uint64_t evictions = 0;  // entries dropped for room (table or per-address bound)
  uint64_t expired = 0;    // entries removed by purgeExpired() or purgeExpiredStep()
};

// What one purgeExpiredStep() call did.
struct SweepStep {
  size_t removed = 0;     // expired entries removed
  size_t visited = 0;     // entries looked at (expired or not)
  bool passDone = false;  // the cursor wrapped: a whole pass over the table ended
};

// Told about every binding that is new or now lasts longer (not about one
// re-recorded with the same or an earlier expiry), and about every one
// evicted, e.g. to keep the kernel's set of bound destinations and names in
// step (nfq/ipset.h, nfq/kernel_verdict.h). Called on the
// recording thread after the entry is in the table and outside its locks,
// so it may read the table; must not block or record.
class BindingObserver {
 public:
  // `name` is lower case without a trailing dot.
  virtual void onBound(std::string_view name, const common::IpAddress& ip, TimePoint expiry) noexcept = 0;
  // `name` (lower case) bound to `ip` was dropped for room before it
  // expired (the per-address bound or the table's): a mirror of the table
  // that allows on a binding must forget it too (the kernel verdict's
  // names map). Called before the onBound() of the record() that made the
  // room, under the same rules.
  virtual void onEvicted(std::string_view name, const common::IpAddress& ip) noexcept = 0;

 protected:
  ~BindingObserver() = default;
};

class BindingTable {
 public:
  static constexpr size_t kMaxNamesPerAddress = 32;
  // Entries one purgeExpiredStep() looks at by default: ~0.1-0.3 ms at
  // 1,000,000 entries (bench/dns dns_micro), so well under 1 ms.
  static constexpr size_t kDefaultSweepBudget = 1024;

  explicit BindingTable(size_t maxEntries, size_t shardCount = 64);
  BindingTable(const BindingTable&) = delete;
  BindingTable& operator=(const BindingTable&) = delete;
  ~BindingTable();

  // `name` as on the wire or in SNI (any case, optional trailing dot; over
  // 253 bytes is ignored). An existing pair keeps the later expiry.
  void record(std::string_view name, const common::IpAddress& ip, TimePoint expiry);

  // True when `ip` was handed out for `name` and the binding has not
  // expired at `now`. `name` may be in any case, with a trailing dot.
  bool isBound(std::string_view name, const common::IpAddress& ip, TimePoint now) const noexcept;

  // Copies the unexpired names bound to `ip` into `out` (as many as fit);
  // returns how many there are in total.
  size_t lookup(const common::IpAddress& ip, TimePoint now, std::span<BoundName> out) const noexcept;

  // Calls fn(std::string_view name, const common::IpAddress&, TimePoint expiry)
  // for every entry, one shard at a time under its read lock (for dumps and
  // the control socket, not the packet path). The names of one address come
  // one after the other. `fn` must not use the table.
  template <typename Fn>
  void forEach(Fn&& fn) const {
    for (const auto& shard : shards_) {
      std::shared_lock lock(shard->mutex);
      for (const auto& [ip, entry] : shard->map) {
        fn(entry.view(), ip, entry.expiry);
      }
    }
  }

  // The observer (nullptr: none) for record() calls from now on. Set it
  // from the recording thread, or while nothing records: a call in flight
  // may still reach the previous one. The observer must outlive that.
  void setObserver(BindingObserver* observer) noexcept {
    observer_.store(observer, std::memory_order_release);
  }

  // Removes all expired entries at once (tests, tools; a full scan under
  // each shard's lock in turn); returns how many.
  size_t purgeExpired(TimePoint now);

  // Incremental expiry: continues a sweep cursor through the shards and
  // their hash buckets, removing what has expired at `now`, and stops once
  // it has looked at `budget` entries or 4 * budget buckets (empty ones
  // included). Repeated calls cycle through the whole table; an entry
  // inserted behind the cursor (or moved by a rehash) waits for the next
  // pass, which is fine because readers ignore expired entries anyway.
  // Holds one shard lock at a time; does not allocate. Calls are
  // serialised by an internal mutex.
  SweepStep purgeExpiredStep(TimePoint now, size_t budget = kDefaultSweepBudget);

  BindingStats stats() const noexcept;
  size_t capacity() const noexcept { return maxEntries_; }

 private:
  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view name) const noexcept { return std::hash<std::string_view>{}(name); }
  };
  // Interned name -> how many entries of the shard use it. Nodes are
  // stable, so entries point at them.
  using NamePool = std::unordered_map<std::string, uint32_t, NameHash, std::equal_to<>>;
  using InternedName = NamePool::value_type;
  struct Entry {
    InternedName* name;
    TimePoint expiry;
    std::string_view view() const noexcept { return name->first; }
  };
  struct IpHash {
    uint64_t seed;
    size_t operator()(const common::IpAddress& ip) const noexcept;
  };
  struct Shard {
    mutable std::shared_mutex mutex;
    // The names of one address are adjacent nodes (same key).
    std::unordered_multimap<common::IpAddress, Entry, IpHash> map;
    NamePool names;
    size_t entries = 0;
    size_t cursor = 0;  // bucket where the next eviction sample starts
    explicit Shard(uint64_t seed) : map(16, IpHash{seed}) {}
  };
  struct SweepCursor {
    size_t shard = 0;
    size_t bucket = 0;
    size_t skip = 0;  // entries of `bucket` already visited (budget ran out mid-bucket)
  };

  // What one insert() evicted (at most one per bound), for the observer.
  // Not zeroed: record() runs for every DNS answer, and evicts rarely.
  struct Evicted {
    static constexpr size_t kMax = 2;
    char names[kMax][253];
    uint8_t lengths[kMax];
    common::IpAddress ips[kMax];
    size_t count = 0;
    void add(std::string_view name, const common::IpAddress& ip) noexcept;
    std::string_view name(size_t i) const noexcept { return {names[i], lengths[i]}; }
  };

  Shard& shardFor(const common::IpAddress& ip) const noexcept;
  void evictOne(Shard& shard, Evicted& evicted);
  bool insert(std::string_view key, const common::IpAddress& ip, TimePoint expiry, Evicted& evicted);
  // Removes the node holding `value` (found in a bucket walk) and its
  // name reference. Caller holds the shard's write lock.
  static void eraseNode(Shard& shard, const std::pair<const common::IpAddress, Entry>& value);
  static void release(Shard& shard, const Entry& entry);
  // One shard's part of purgeExpiredStep(); true when the shard is done.
  bool sweepShard(Shard& shard, TimePoint now, size_t budget, size_t bucketBudget, SweepStep& step,
                  size_t& buckets);

  size_t maxEntries_;
  uint64_t seed_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<size_t> entries_{0};
  std::atomic<uint64_t> recorded_{0};
  std::atomic<uint64_t> evictions_{0};
  std::atomic<uint64_t> expired_{0};
  std::atomic<BindingObserver*> observer_{nullptr};
  std::mutex sweepMutex_;
  SweepCursor sweep_;  // guarded by sweepMutex_
};

}  // namespace dns

// The binding table: which allowed names egressd's DNS resolved to which
// addresses, until when (record TTL + rules.binding_grace). Written by the
// DNS service, read by the verdict workers ("was D handed out for N?").
//
// Thread-safety: every method may be called from any thread. The table is
// split into shards by address, each behind a reader/writer lock, so
// readers only contend with a writer of the same shard. Readers never
// allocate; record() allocates for a new entry (name copy).
// Bounded: at most `maxEntries` (name, address) pairs overall (plus at
// most one per shard while shards fill unevenly) and kMaxNamesPerAddress
// names per address; when full, the entry with the earliest expiry among a
// small sample of the inserting shard is evicted and counted. Time is always passed in (no clock inside), so
// tests control it.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
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
  uint64_t expired = 0;    // entries removed by purgeExpired()
};

class BindingTable {
 public:
  static constexpr size_t kMaxNamesPerAddress = 32;

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
  // the control socket, not the packet path). `fn` must not use the table.
  template <typename Fn>
  void forEach(Fn&& fn) const {
    for (const auto& shard : shards_) {
      std::shared_lock lock(shard->mutex);
      for (const auto& [ip, list] : shard->map) {
        for (const Entry& entry : list) fn(std::string_view(entry.name), ip, entry.expiry);
      }
    }
  }

  // Removes expired entries; returns how many.
  size_t purgeExpired(TimePoint now);

  BindingStats stats() const noexcept;
  size_t capacity() const noexcept { return maxEntries_; }

 private:
  struct Entry {
    std::string name;
    TimePoint expiry;
  };
  struct IpHash {
    uint64_t seed;
    size_t operator()(const common::IpAddress& ip) const noexcept;
  };
  struct Shard {
    mutable std::shared_mutex mutex;
    std::unordered_map<common::IpAddress, std::vector<Entry>, IpHash> map;
    size_t entries = 0;
    size_t cursor = 0;  // bucket where the next eviction sample starts
    explicit Shard(uint64_t seed) : map(16, IpHash{seed}) {}
  };

  Shard& shardFor(const common::IpAddress& ip) const noexcept;
  void evictOne(Shard& shard);

  size_t maxEntries_;
  uint64_t seed_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<size_t> entries_{0};
  std::atomic<uint64_t> recorded_{0};
  std::atomic<uint64_t> evictions_{0};
  std::atomic<uint64_t> expired_{0};
};

}  // namespace dns

// Cache of upstream answers for allowed names (positive and negative),
// keyed by (name, type, class, EDNS, DO, CD). Answers are stored after
// post-processing (ECH stripped, rebinding checked) together with the
// bindings they produced, so a hit re-records them without parsing.
//
// Lookups do not allocate: the key is built on the stack, found by
// heterogeneous lookup, and the answer is copied into the caller's buffer
// with the client's ID and question bytes and TTLs decremented by the
// time spent in the cache (RFC 1035 section 7.4; RFC 2308 section 5).
// Inserts allocate (one entry). Entries belong to one policy generation: a
// new policy makes older entries misses, so a name that is no longer
// allowed (or an address no longer named) is never served from cache.
//
// Bounded by entry count, least recently used evicted first.
//
// Hits can be counted per entry instead of reported one by one (the
// per-rule-set counts of /metrics need the name, not each query): lookup()
// with `countHit` adds one to the entry; takeHits() hands every entry's
// count since the last call to a function, and an entry that leaves the
// cache (expiry, eviction, a new policy generation, a smaller bound) hands
// its count to the sink set with setHitSink() first. So each counted hit
// is reported exactly once, and counting costs an increment per hit.
// Thread-safety: none; owned by the DNS service's event-loop thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/ip_address.h"
#include "dns/binding_table.h"
#include "dns/wire.h"

namespace dns {

struct CachedBinding {
  common::IpAddress ip;
  TimePoint expiry;
};

struct CacheStats {
  size_t entries = 0;
  size_t bytes = 0;  // answer bytes held
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t evictions = 0;
};

class AnswerCache {
 public:
  // Reserves the index for min(maxEntries, kMaxReserved) entries at once.
  explicit AnswerCache(size_t maxEntries);

  struct Hit {
    size_t length = 0;  // answer written to `out`; 0 on a miss
    std::span<const CachedBinding> bindings;
    uint16_t answerFlags = 0;
    uint16_t answerCount = 0;
    // The entry's note of the binding table's eviction count when its
    // bindings were last recorded (the caller re-records them only when
    // the table has evicted since, and updates the note). Valid until the
    // next call on the cache.
    uint64_t* bindingsStamp = nullptr;
  };

  // `queryWire` is the client's query (parsed as `query`). `countHit`: a
  // hit adds one to the entry's untaken hits (see takeHits()).
  Hit lookup(const Query& query, std::span<const uint8_t> queryWire, uint64_t policyGeneration, TimePoint now,
             std::span<uint8_t> out, bool countHit = false) noexcept;

  // Receives the untaken hits of an entry that leaves the cache: its name
  // (lower case, no trailing dot) and the count (never 0). Called from
  // lookup(), insert(), setMaxEntries() and clear(); must not call back
  // into the cache.
  using HitSink = std::function<void(std::string_view name, uint64_t hits)>;
  void setHitSink(HitSink sink) { hitSink_ = std::move(sink); }
  // Hands every entry's untaken hits to `take` (same arguments as the
  // sink) and resets them; touches only entries hit since the last call.
  void takeHits(const HitSink& take);

  // Stores `answer` (already post-processed) for `ttlSeconds`; 0 is ignored.
  void insert(const Query& query, std::span<const uint8_t> answer, uint32_t ttlSeconds,
              uint64_t policyGeneration, TimePoint now, std::span<const CachedBinding> bindings,
              uint64_t bindingsStamp = 0);

  // Growing the index to a new bound happens here, not on the query path.
  void setMaxEntries(size_t maxEntries);

  // Growing an unordered_map rehashes every entry in one go: one insert
  // took 205 ms at 712,000 entries (measured), a stall of the event loop
  // that showed up as the uncached p99 of bench/dns. The bucket array is
  // therefore sized when the bound is set (8 bytes a bucket); past this
  // many entries the index still grows on demand.
  static constexpr size_t kMaxReserved = size_t{1} << 22;

  void clear();
  CacheStats stats() const noexcept;

 private:
  struct Entry {
    std::string key;
    std::vector<uint8_t> answer;
    std::vector<uint16_t> ttlOffsets;  // TTL fields of every record but OPT
    std::vector<CachedBinding> bindings;
    TimePoint stored;
    TimePoint expiry;
    uint64_t generation = 0;
    uint64_t bindingsStamp = 0;
    // Hits counted since the last takeHits(); entries with some are
    // linked in a list (hitsHead_) so that takeHits() visits only them.
    uint64_t untakenHits = 0;
    Entry* hitsPrev = nullptr;
    Entry* hitsNext = nullptr;
    std::string_view name() const noexcept { return std::string_view(key).substr(kKeyPrefix); }
  };
  static constexpr size_t kKeyPrefix = 5;  // type, class, flags (buildKey)
  // The index key carries its hash: a lookup hashes the query's key once,
  // and walking a bucket compares stored hashes (and finds the bucket's end)
  // without touching, let alone rehashing, the other entries' key bytes.
  // (std::unordered_map does not cache the hash of a "fast" hasher; with
  // string keys that cost a cache miss and a rehash per node visited, a
  // tenth of the user time of a cache hit in bench/dns.)
  struct IndexKey {
    std::string_view text;
    size_t hash = 0;
    static IndexKey of(std::string_view text) noexcept {
      return IndexKey{text, std::hash<std::string_view>{}(text)};
    }
    friend bool operator==(const IndexKey& a, const IndexKey& b) noexcept {
      return a.hash == b.hash && a.text == b.text;
    }
  };
  struct KeyHash {
    size_t operator()(const IndexKey& key) const noexcept { return key.hash; }
  };
  using Lru = std::list<Entry>;

  // Key: type, class, flags byte, lower-case name. Returns its length.
  static size_t buildKey(const Query& query, char* out) noexcept;
  void erase(Lru::iterator it) noexcept;
  void unlinkHits(Entry& entry) noexcept;

  size_t maxEntries_;
  size_t bytes_ = 0;
  Lru lru_;  // front = most recently used
  std::unordered_map<IndexKey, Lru::iterator, KeyHash> index_;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
  uint64_t evictions_ = 0;
  Entry* hitsHead_ = nullptr;  // entries with untaken hits
  HitSink hitSink_;
};

}  // namespace dns

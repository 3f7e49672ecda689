#include "dns/binding_table.h"

#include <sys/random.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "common/strings.h"

namespace dns {

namespace {

uint64_t mix(uint64_t x) noexcept {
  // splitmix64 finaliser.
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

std::string_view trimDot(std::string_view name) noexcept {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return name;
}

}  // namespace

size_t BindingTable::IpHash::operator()(const common::IpAddress& ip) const noexcept {
  // Keyed so that answers crafted by an allowed but hostile zone cannot
  // pile addresses into one bucket.
  uint64_t a = 0;
  uint64_t b = 0;
  std::memcpy(&a, ip.bytes.data(), 8);
  std::memcpy(&b, ip.bytes.data() + 8, 8);
  return static_cast<size_t>(mix(mix(a ^ seed) ^ b ^ (static_cast<uint64_t>(ip.family) << 1)));
}

BindingTable::BindingTable(size_t maxEntries, size_t shardCount)
    : maxEntries_(std::max<size_t>(maxEntries, 1)), seed_(0) {
  shardCount = std::clamp<size_t>(shardCount, 1, maxEntries_);
  if (getrandom(&seed_, sizeof seed_, 0) != sizeof seed_) {
    seed_ = static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  }
  shards_.reserve(shardCount);
  for (size_t i = 0; i < shardCount; ++i) shards_.push_back(std::make_unique<Shard>(seed_));
}

BindingTable::~BindingTable() = default;

BindingTable::Shard& BindingTable::shardFor(const common::IpAddress& ip) const noexcept {
  const size_t hash = IpHash{seed_ ^ 0x5bd1e995}(ip);
  return *shards_[hash % shards_.size()];
}

void BindingTable::eraseNode(Shard& shard, const std::pair<const common::IpAddress, Entry>& value) {
  // A bucket walk has local iterators only; find the node among the few
  // with its address (at most kMaxNamesPerAddress).
  auto [it, end] = shard.map.equal_range(value.first);
  while (it != end && &*it != &value) ++it;
  if (it == end) return;  // not reached: the caller found it in the map
  release(shard, it->second);
  shard.map.erase(it);
  --shard.entries;
}

void BindingTable::Evicted::add(std::string_view name, const common::IpAddress& ip) noexcept {
  if (count == kMax || name.size() > sizeof names[count]) return;
  std::memcpy(names[count], name.data(), name.size());
  lengths[count] = static_cast<uint8_t>(name.size());
  ips[count] = ip;
  ++count;
}

void BindingTable::evictOne(Shard& shard, Evicted& evicted) {
  // Sample a few buckets from a rotating cursor and drop the entry that
  // expires first: bounded work per insert, no global LRU list to keep.
  const size_t buckets = shard.map.bucket_count();
  const std::pair<const common::IpAddress, Entry>* victim = nullptr;
  size_t sampled = 0;
  for (size_t step = 0; step < buckets && sampled < 8; ++step) {
    const size_t bucket = (shard.cursor + step) % buckets;
    for (auto it = shard.map.begin(bucket); it != shard.map.end(bucket); ++it) {
      ++sampled;
      if (victim == nullptr || it->second.expiry < victim->second.expiry) victim = &*it;
    }
    shard.cursor = (bucket + 1) % buckets;
  }
  if (victim == nullptr) return;
  evicted.add(victim->second.view(), victim->first);
  eraseNode(shard, *victim);
  entries_.fetch_sub(1, std::memory_order_relaxed);
  evictions_.fetch_add(1, std::memory_order_relaxed);
}

void BindingTable::record(std::string_view name, const common::IpAddress& ip, TimePoint expiry) {
  name = trimDot(name);
  if (name.empty() || name.size() > 253) return;
  char lower[253];
  for (size_t i = 0; i < name.size(); ++i) lower[i] = common::asciiLower(name[i]);
  const std::string_view key(lower, name.size());
  Evicted evicted;
  const bool changed = insert(key, ip, expiry, evicted);
  // Outside the shard lock, so the observer may read the table.
  BindingObserver* observer = observer_.load(std::memory_order_acquire);
  if (observer == nullptr) return;
  for (size_t i = 0; i < evicted.count; ++i) observer->onEvicted(evicted.name(i), evicted.ips[i]);
  if (changed) observer->onBound(key, ip, expiry);
}

// True when the pair is new or its expiry moved later.
bool BindingTable::insert(std::string_view key, const common::IpAddress& ip, TimePoint expiry,
                          Evicted& evicted) {
  Shard& shard = shardFor(ip);
  std::unique_lock lock(shard.mutex);
  auto [it, end] = shard.map.equal_range(ip);
  size_t names = 0;
  auto earliest = end;
  for (; it != end; ++it) {
    Entry& entry = it->second;
    if (entry.view() == key) {
      const bool later = expiry > entry.expiry;
      entry.expiry = std::max(entry.expiry, expiry);
      recorded_.fetch_add(1, std::memory_order_relaxed);
      return later;
    }
    ++names;
    if (earliest == end || entry.expiry < earliest->second.expiry) earliest = it;
  }
  if (names >= kMaxNamesPerAddress) {
    evicted.add(earliest->second.view(), ip);
    release(shard, earliest->second);
    shard.map.erase(earliest);
    --shard.entries;
    entries_.fetch_sub(1, std::memory_order_relaxed);
    evictions_.fetch_add(1, std::memory_order_relaxed);
  }
  // The bound is global (so uneven shards do not evict early); a shard
  // evicts from itself, so the table may overshoot by at most one entry
  // per empty shard.
  if (entries_.load(std::memory_order_relaxed) >= maxEntries_ && shard.entries > 0) evictOne(shard, evicted);
  // Intern the name: one copy per shard however many addresses it has.
  auto interned = shard.names.find(key);
  if (interned == shard.names.end()) interned = shard.names.emplace(std::string(key), 0).first;
  shard.map.emplace(ip, Entry{&*interned, expiry});
  ++interned->second;
  ++shard.entries;
  entries_.fetch_add(1, std::memory_order_relaxed);
  recorded_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool BindingTable::isBound(std::string_view name, const common::IpAddress& ip, TimePoint now) const noexcept {
  name = trimDot(name);
  const Shard& shard = shardFor(ip);
  std::shared_lock lock(shard.mutex);
  // find() and stop at the match: equal_range() would also read the node
  // after the address's last one (a cache miss) just to end the range.
  for (auto it = shard.map.find(ip); it != shard.map.end() && it->first == ip; ++it) {
    if (it->second.expiry > now && common::equalsIgnoreCase(it->second.view(), name)) return true;
  }
  return false;
}

size_t BindingTable::lookup(const common::IpAddress& ip, TimePoint now,
                            std::span<BoundName> out) const noexcept {
  const Shard& shard = shardFor(ip);
  std::shared_lock lock(shard.mutex);
  size_t count = 0;
  for (auto [it, end] = shard.map.equal_range(ip); it != end; ++it) {
    const Entry& entry = it->second;
    if (entry.expiry <= now) continue;
    if (count < out.size()) {
      BoundName& bound = out[count];
      const std::string_view name = entry.view();
      bound.length = static_cast<uint8_t>(name.size());
      std::memcpy(bound.name.data(), name.data(), name.size());
      bound.expiry = entry.expiry;
    }
    ++count;
  }
  return count;
}

void BindingTable::release(Shard& shard, const Entry& entry) {
  // erase(key) finds the node before freeing it, so passing the node's own
  // key is safe (and avoids a copy of the name).
  if (--entry.name->second == 0) shard.names.erase(entry.name->first);
}

size_t BindingTable::purgeExpired(TimePoint now) {
  size_t removed = 0;
  for (auto& shardPointer : shards_) {
    Shard& shard = *shardPointer;
    std::unique_lock lock(shard.mutex);
    for (auto it = shard.map.begin(); it != shard.map.end();) {
      if (it->second.expiry > now) {
        ++it;
        continue;
      }
      release(shard, it->second);
      it = shard.map.erase(it);
      --shard.entries;
      ++removed;
    }
  }
  entries_.fetch_sub(removed, std::memory_order_relaxed);
  expired_.fetch_add(removed, std::memory_order_relaxed);
  return removed;
}

bool BindingTable::sweepShard(Shard& shard, TimePoint now, size_t budget, size_t bucketBudget,
                              SweepStep& step, size_t& buckets) {
  std::unique_lock lock(shard.mutex);
  // An empty shard is done without walking its (empty) buckets.
  if (shard.entries == 0) return true;
  // The map only grows its bucket array (never on erase), so a cursor
  // past the end just means this shard is done; after a rehash the cursor
  // may skip or revisit some entries, which only delays their removal.
  const size_t bucketCount = shard.map.bucket_count();
  while (sweep_.bucket < bucketCount) {
    if (step.visited >= budget || buckets >= bucketBudget) return false;
    ++buckets;
    size_t position = 0;
    for (auto it = shard.map.begin(sweep_.bucket); it != shard.map.end(sweep_.bucket);) {
      const auto& current = *it++;  // erasing `current` leaves `it` valid
      if (position < sweep_.skip) {
        ++position;
        continue;
      }
      if (step.visited >= budget) {
        sweep_.skip = position;  // resume with the next entry of this bucket
        return false;
      }
      ++step.visited;
      if (current.second.expiry <= now) {
        eraseNode(shard, current);
        ++step.removed;
      } else {
        ++position;
      }
    }
    sweep_.skip = 0;
    ++sweep_.bucket;
  }
  return true;
}

SweepStep BindingTable::purgeExpiredStep(TimePoint now, size_t budget) {
  budget = std::max<size_t>(budget, 1);
  // Empty buckets cost a little too: bound them as well.
  const size_t bucketBudget = 4 * budget;
  SweepStep step;
  size_t buckets = 0;
  std::lock_guard sweepLock(sweepMutex_);
  if (entries_.load(std::memory_order_relaxed) == 0) {
    // Nothing to expire: no shard lock taken, no bucket walked. The pass
    // restarts from the first shard when there is something again.
    sweep_ = {};
    step.passDone = true;
    return step;
  }
  // Each shard at most once per call, so a table of empty shards ends.
  for (size_t visitedShards = 0; visitedShards < shards_.size(); ++visitedShards) {
    if (!sweepShard(*shards_[sweep_.shard], now, budget, bucketBudget, step, buckets)) break;
    sweep_.bucket = 0;
    sweep_.skip = 0;
    sweep_.shard = (sweep_.shard + 1) % shards_.size();
    if (sweep_.shard == 0) {
      step.passDone = true;
      break;
    }
  }
  entries_.fetch_sub(step.removed, std::memory_order_relaxed);
  expired_.fetch_add(step.removed, std::memory_order_relaxed);
  return step;
}

BindingStats BindingTable::stats() const noexcept {
  return BindingStats{entries_.load(std::memory_order_relaxed), recorded_.load(std::memory_order_relaxed),
                      evictions_.load(std::memory_order_relaxed), expired_.load(std::memory_order_relaxed)};
}

}  // namespace dns

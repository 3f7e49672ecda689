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

void BindingTable::evictOne(Shard& shard) {
  // Sample a few buckets from a rotating cursor and drop the entry that
  // expires first: bounded work per insert, no global LRU list to keep.
  const size_t buckets = shard.map.bucket_count();
  std::vector<Entry>* victimList = nullptr;
  const common::IpAddress* victimIp = nullptr;
  size_t victimIndex = 0;
  size_t sampled = 0;
  for (size_t step = 0; step < buckets && sampled < 8; ++step) {
    const size_t bucket = (shard.cursor + step) % buckets;
    for (auto it = shard.map.begin(bucket); it != shard.map.end(bucket); ++it) {
      ++sampled;
      for (size_t i = 0; i < it->second.size(); ++i) {
        if (victimList == nullptr || it->second[i].expiry < (*victimList)[victimIndex].expiry) {
          victimList = &it->second;
          victimIp = &it->first;
          victimIndex = i;
        }
      }
    }
    shard.cursor = (bucket + 1) % buckets;
  }
  if (victimList == nullptr) return;
  victimList->erase(victimList->begin() + static_cast<std::ptrdiff_t>(victimIndex));
  if (victimList->empty()) shard.map.erase(*victimIp);
  --shard.entries;
  entries_.fetch_sub(1, std::memory_order_relaxed);
  evictions_.fetch_add(1, std::memory_order_relaxed);
}

void BindingTable::record(std::string_view name, const common::IpAddress& ip, TimePoint expiry) {
  name = trimDot(name);
  if (name.empty() || name.size() > 253) return;
  char lower[253];
  for (size_t i = 0; i < name.size(); ++i) lower[i] = common::asciiLower(name[i]);
  const std::string_view key(lower, name.size());

  Shard& shard = shardFor(ip);
  std::unique_lock lock(shard.mutex);
  auto found = shard.map.find(ip);
  if (found != shard.map.end()) {
    for (Entry& entry : found->second) {
      if (entry.name == key) {
        entry.expiry = std::max(entry.expiry, expiry);
        recorded_.fetch_add(1, std::memory_order_relaxed);
        return;
      }
    }
  }
  // The bound is global (so uneven shards do not evict early); a shard
  // evicts from itself, so the table may overshoot by at most one entry
  // per empty shard.
  if (entries_.load(std::memory_order_relaxed) >= maxEntries_ && shard.entries > 0) {
    evictOne(shard);
    found = shard.map.find(ip);  // the eviction may have removed it
  }
  if (found == shard.map.end()) found = shard.map.try_emplace(ip).first;
  std::vector<Entry>& list = found->second;
  if (list.size() >= kMaxNamesPerAddress) {
    auto earliest = std::min_element(list.begin(), list.end(),
                                     [](const Entry& a, const Entry& b) { return a.expiry < b.expiry; });
    list.erase(earliest);
    --shard.entries;
    entries_.fetch_sub(1, std::memory_order_relaxed);
    evictions_.fetch_add(1, std::memory_order_relaxed);
  }
  list.push_back(Entry{std::string(key), expiry});
  ++shard.entries;
  entries_.fetch_add(1, std::memory_order_relaxed);
  recorded_.fetch_add(1, std::memory_order_relaxed);
}

bool BindingTable::isBound(std::string_view name, const common::IpAddress& ip, TimePoint now) const noexcept {
  name = trimDot(name);
  const Shard& shard = shardFor(ip);
  std::shared_lock lock(shard.mutex);
  const auto found = shard.map.find(ip);
  if (found == shard.map.end()) return false;
  for (const Entry& entry : found->second) {
    if (entry.expiry > now && common::equalsIgnoreCase(entry.name, name)) return true;
  }
  return false;
}

size_t BindingTable::lookup(const common::IpAddress& ip, TimePoint now,
                            std::span<BoundName> out) const noexcept {
  const Shard& shard = shardFor(ip);
  std::shared_lock lock(shard.mutex);
  const auto found = shard.map.find(ip);
  if (found == shard.map.end()) return 0;
  size_t count = 0;
  for (const Entry& entry : found->second) {
    if (entry.expiry <= now) continue;
    if (count < out.size()) {
      BoundName& bound = out[count];
      bound.length = static_cast<uint8_t>(entry.name.size());
      std::memcpy(bound.name.data(), entry.name.data(), entry.name.size());
      bound.expiry = entry.expiry;
    }
    ++count;
  }
  return count;
}

size_t BindingTable::purgeExpired(TimePoint now) {
  size_t removed = 0;
  for (auto& shardPointer : shards_) {
    Shard& shard = *shardPointer;
    std::unique_lock lock(shard.mutex);
    for (auto it = shard.map.begin(); it != shard.map.end();) {
      auto& list = it->second;
      const size_t before = list.size();
      list.erase(std::remove_if(list.begin(), list.end(), [&](const Entry& e) { return e.expiry <= now; }),
                 list.end());
      const size_t gone = before - list.size();
      shard.entries -= gone;
      removed += gone;
      it = list.empty() ? shard.map.erase(it) : std::next(it);
    }
  }
  entries_.fetch_sub(removed, std::memory_order_relaxed);
  expired_.fetch_add(removed, std::memory_order_relaxed);
  return removed;
}

BindingStats BindingTable::stats() const noexcept {
  return BindingStats{entries_.load(std::memory_order_relaxed), recorded_.load(std::memory_order_relaxed),
                      evictions_.load(std::memory_order_relaxed), expired_.load(std::memory_order_relaxed)};
}

}  // namespace dns

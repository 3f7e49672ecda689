#include "dns/tunnel_guard.h"

#include <sys/random.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace dns {

namespace {

// Eight bytes at a time (names are short and this runs per query): a
// multiply-xorshift over little-endian words, seeded, the length mixed in.
// Not cryptographic; the seed is secret and nothing of the hash leaves the
// process, so clients cannot aim names at entries.
uint64_t mix(uint64_t h) noexcept {
  h ^= h >> 32;
  h *= 0xd6e8feb86659fd93ULL;
  h ^= h >> 32;
  return h;
}

uint64_t hashBytes(uint64_t seed, const void* data, size_t length) noexcept {
  const auto* bytes = static_cast<const uint8_t*>(data);
  constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;
  uint64_t h = seed ^ (length * kGolden);
  size_t i = 0;
  for (; i + 8 <= length; i += 8) {
    uint64_t word = 0;
    std::memcpy(&word, bytes + i, 8);
    h = (h ^ word) * kGolden;
    h ^= h >> 29;
  }
  if (i < length) {
    uint64_t word = 0;
    std::memcpy(&word, bytes + i, length - i);
    h = (h ^ word) * kGolden;
  }
  return mix(h);
}

}  // namespace

TunnelGuard::TunnelGuard(const policy::PublicSuffixList& suffixes, size_t entries, uint64_t seed)
    : suffixes_(suffixes), seed_(seed) {
  if (seed_ == 0 && getrandom(&seed_, sizeof seed_, 0) != static_cast<ssize_t>(sizeof seed_)) {
    arc4random_buf(&seed_, sizeof seed_);
  }
  entries = std::max(entries, kWays);
  entries_.resize((entries + kWays - 1) / kWays * kWays);
  memo_.resize(kDomainMemo);
}

std::string_view TunnelGuard::registrableDomain(std::string_view name, uint64_t nameHash,
                                                uint64_t& domainHash) noexcept {
  nameHash |= 1;  // 0 marks an empty slot
  // Two ways per bucket: the newest in front, the one before behind it.
  Memo* bucket = memo_.data() + (nameHash >> 20) % (memo_.size() / 2) * 2;
  for (size_t way = 0; way < 2; ++way) {
    const Memo& memo = bucket[way];
    if (memo.nameHash == nameHash && memo.nameLength == name.size() && memo.domainOffset <= name.size()) {
      domainHash = memo.domainHash;
      return name.substr(memo.domainOffset);
    }
  }
  const std::string_view domain = suffixes_.registrableDomain(name);
  domainHash = hashBytes(seed_, domain.data(), domain.size());
  bucket[1] = bucket[0];
  bucket[0] = Memo{nameHash, domainHash, static_cast<uint16_t>(name.size()),
                   static_cast<uint16_t>(name.size() - domain.size())};
  return domain;
}

TunnelGuard::Result TunnelGuard::check(std::span<const uint8_t> client, std::string_view name, TimePoint now,
                                       uint32_t budget, std::chrono::milliseconds window) noexcept {
  Result result;
  if (budget == 0) return result;
  budget = std::min(budget, kMaxBudget);
  const uint64_t nameHash = hashBytes(~seed_, name.data(), name.size());
  uint64_t domainHash = 0;
  result.domain = registrableDomain(name, nameHash, domainHash);
  const uint64_t key = mix(hashBytes(seed_, client.data(), client.size()) ^ domainHash) | 1;

  const size_t sets = entries_.size() / kWays;
  Entry* set = entries_.data() + (key >> 32) % sets * kWays;
  const auto expired = [&](const Entry& e) { return e.key == 0 || now - e.windowStart >= window; };
  Entry* entry = nullptr;
  for (size_t i = 0; i < kWays; ++i) {
    if (set[i].key == key) {
      entry = &set[i];
      break;
    }
  }
  if (entry == nullptr || expired(*entry)) {
    if (entry == nullptr) {
      // An expired or empty way first; else the one with the fewest names
      // (a flood of one-name domains replaces itself, not a spent budget).
      entry = &set[0];
      for (size_t i = 0; i < kWays; ++i) {
        Entry& candidate = set[i];
        if (expired(candidate)) {
          entry = &candidate;
          break;
        }
        if (candidate.distinct < entry->distinct ||
            (candidate.distinct == entry->distinct && candidate.windowStart < entry->windowStart)) {
          entry = &candidate;
        }
      }
      if (!expired(*entry)) ++stats_.evictions;
    }
    entry->key = key;
    entry->windowStart = now;
    entry->distinct = 0;
    entry->tripped = false;
  }

  const auto fingerprint = static_cast<uint32_t>(nameHash >> 32);
  const uint32_t* names = entry->names.data();
  if (std::find(names, names + entry->distinct, fingerprint) != names + entry->distinct) {
    result.distinct = entry->distinct;
    return result;  // seen in this window: free
  }
  if (entry->distinct >= budget) {
    result.admitted = false;
    result.distinct = entry->distinct;
    result.tripped = !entry->tripped;
    if (result.tripped) ++stats_.trips;
    entry->tripped = true;
    ++stats_.refused;
    return result;
  }
  entry->names[entry->distinct++] = fingerprint;
  ++stats_.charged;
  result.distinct = entry->distinct;
  return result;
}

}  // namespace dns

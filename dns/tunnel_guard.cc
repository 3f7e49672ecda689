#include "dns/tunnel_guard.h"

#include <sys/random.h>

#include <algorithm>
#include <cstdlib>

namespace dns {

namespace {

// FNV-1a over the bytes, started from the seed, with a murmur3 finalizer so
// that low bits (the set index, the name bit) depend on every input byte.
uint64_t hashBytes(uint64_t seed, const void* data, size_t length, uint64_t state) noexcept {
  const auto* bytes = static_cast<const uint8_t*>(data);
  uint64_t h = state ^ seed;
  for (size_t i = 0; i < length; ++i) {
    h ^= bytes[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

uint64_t finish(uint64_t h) noexcept {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ULL;

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

std::string_view TunnelGuard::registrableDomain(std::string_view name, uint64_t nameHash) noexcept {
  nameHash |= 1;  // 0 marks an empty slot
  Memo& memo = memo_[(nameHash >> 20) % memo_.size()];
  if (memo.nameHash == nameHash && memo.nameLength == name.size() && memo.domainOffset <= name.size()) {
    return name.substr(memo.domainOffset);
  }
  const std::string_view domain = suffixes_.registrableDomain(name);
  memo =
      Memo{nameHash, static_cast<uint16_t>(name.size()), static_cast<uint16_t>(name.size() - domain.size())};
  return domain;
}

TunnelGuard::Result TunnelGuard::check(const common::IpAddress& client, std::string_view name, TimePoint now,
                                       uint32_t budget, std::chrono::milliseconds window) noexcept {
  Result result;
  if (budget == 0) return result;
  budget = std::min(budget, kMaxBudget);
  const uint64_t nameHash = finish(hashBytes(~seed_, name.data(), name.size(), kFnvOffset));
  result.domain = registrableDomain(name, nameHash);

  const common::IpAddress ip = client.unmapped();
  uint64_t h = hashBytes(seed_, ip.bytes.data(), ip.family == common::IpFamily::V4 ? 4 : 16, kFnvOffset);
  h = hashBytes(seed_, "|", 1, h);
  const uint64_t key = finish(hashBytes(seed_, result.domain.data(), result.domain.size(), h)) | 1;

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

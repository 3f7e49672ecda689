#include "dns/tunnel_guard.h"

#include <sys/random.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "common/tail_word.h"

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

// Inlined (as the helpers below): it runs twice per charged query, and a
// call costs about as much as hashing a short name.
[[gnu::always_inline]] inline uint64_t hashBytes(uint64_t seed, const void* data, size_t length) noexcept {
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
  if (i < length) h = (h ^ common::tailWord(bytes + length, length - i, length)) * kGolden;
  return mix(h);
}

// The table's key: the client's address bytes (4 or 16) and the registrable
// domain in one hash (the seed first absorbs the address).
[[gnu::always_inline]] inline uint64_t keyHash(uint64_t seed, std::span<const uint8_t> client,
                                               std::string_view domain) noexcept {
  constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;
  uint64_t first = 0;
  uint64_t second = 0;
  if (client.size() == 4) {
    uint32_t v4 = 0;
    std::memcpy(&v4, client.data(), 4);
    first = v4;
  } else if (client.size() == 16) {
    std::memcpy(&first, client.data(), 8);
    std::memcpy(&second, client.data() + 8, 8);
  } else {
    first = hashBytes(seed, client.data(), client.size());  // no such client today
  }
  uint64_t h = (seed ^ first ^ (client.size() << 56)) * kGolden;
  h ^= h >> 29;
  h = (h ^ second) * kGolden;
  h ^= h >> 29;
  return hashBytes(h, domain.data(), domain.size());
}

// Whether `fingerprint` is among `names` (a multiple of four, zero past the
// ones in use): four lanes per compare, no branch per name, since a new
// name (the case that costs) is compared with every one.
[[gnu::always_inline]] inline bool contains(const uint32_t* names, size_t count,
                                            uint32_t fingerprint) noexcept {
  using Lanes = uint32_t __attribute__((vector_size(16)));
  const Lanes wanted = {fingerprint, fingerprint, fingerprint, fingerprint};
  Lanes found{};
  for (size_t i = 0; i < count; i += 4) {
    Lanes group;
    std::memcpy(&group, names + i, sizeof group);
    found |= static_cast<Lanes>(group == wanted);
  }
  return (found[0] | found[1] | found[2] | found[3]) != 0;
}

size_t roundUp4(size_t n) noexcept {
  return (n + 3) & ~size_t{3};
}

}  // namespace

static_assert(TunnelGuard::kMaxBudget % 4 == 0, "fingerprints are compared in groups of four");

TunnelGuard::TunnelGuard(const policy::PublicSuffixList& suffixes, size_t entries, uint64_t seed)
    : suffixes_(suffixes), seed_(seed) {
  if (seed_ == 0 && getrandom(&seed_, sizeof seed_, 0) != static_cast<ssize_t>(sizeof seed_)) {
    arc4random_buf(&seed_, sizeof seed_);
  }
  entries = std::max(entries, kWays);
  entries = (entries + kWays - 1) / kWays * kWays;
  keys_.resize(entries);
  entries_.resize(entries);
  memo_.resize(kDomainMemo);
}

std::string_view TunnelGuard::registrableDomain(std::string_view name, uint64_t nameHash) noexcept {
  nameHash |= 1;  // 0 marks an empty slot
  // Two ways per bucket: the newest in front, the one before behind it.
  Memo* bucket = memo_.data() + (nameHash >> 20) % (memo_.size() / 2) * 2;
  for (size_t way = 0; way < 2; ++way) {
    const Memo& memo = bucket[way];
    if (memo.nameHash == nameHash && memo.nameLength == name.size() && memo.domainOffset <= name.size()) {
      return name.substr(memo.domainOffset);
    }
  }
  // A query name that reached the guard passed classifyQuery: no empty
  // label, no NUL (those are refused as invalid names).
  const std::string_view domain = suffixes_.registrableDomainOfHost(name);
  bucket[1] = bucket[0];
  bucket[0] =
      Memo{nameHash, static_cast<uint16_t>(name.size()), static_cast<uint16_t>(name.size() - domain.size())};
  return domain;
}

void TunnelGuard::restart(Entry& entry, TimePoint now) noexcept {
  std::fill_n(entry.names.data(), roundUp4(entry.distinct), 0U);
  entry.windowStart = now;
  entry.distinct = 0;
  entry.tripped = false;
}

TunnelGuard::Result TunnelGuard::check(std::span<const uint8_t> client, std::string_view name, TimePoint now,
                                       uint32_t budget, std::chrono::milliseconds window) noexcept {
  Result result;
  if (budget == 0) return result;
  budget = std::min(budget, kMaxBudget);
  // One hash of the name: its memo slot and its fingerprint.
  const uint64_t nameHash = hashBytes(seed_, name.data(), name.size());
  result.domain = registrableDomain(name, nameHash);
  const uint64_t key = keyHash(seed_, client, result.domain) | 1;

  const size_t first = (key >> 32) % (keys_.size() / kWays) * kWays;
  const uint64_t* keys = keys_.data() + first;
  Entry* set = entries_.data() + first;
  const auto expired = [&](size_t way) { return keys[way] == 0 || now - set[way].windowStart >= window; };
  size_t way = 0;
  while (way < kWays && keys[way] != key) ++way;
  if (way == kWays) {
    // An expired or empty way first; else the one with the fewest names
    // (a flood of one-name domains replaces itself, not a spent budget).
    way = 0;
    for (size_t i = 0; i < kWays; ++i) {
      if (expired(i)) {
        way = i;
        break;
      }
      if (set[i].distinct < set[way].distinct ||
          (set[i].distinct == set[way].distinct && set[i].windowStart < set[way].windowStart)) {
        way = i;
      }
    }
    if (!expired(way)) ++stats_.evictions;
    keys_[first + way] = key;
    restart(set[way], now);
  } else if (expired(way)) {
    restart(set[way], now);
  }
  Entry& entry = set[way];

  auto fingerprint = static_cast<uint32_t>(nameHash >> 32);
  if (fingerprint == 0) fingerprint = 1;  // 0 marks an unused slot
  result.distinct = entry.distinct;
  if (contains(entry.names.data(), roundUp4(entry.distinct), fingerprint)) return result;  // seen: free
  if (entry.distinct >= budget) {
    result.admitted = false;
    result.tripped = !entry.tripped;
    if (result.tripped) ++stats_.trips;
    entry.tripped = true;
    ++stats_.refused;
    return result;
  }
  entry.names[entry.distinct++] = fingerprint;
  ++stats_.charged;
  result.distinct = entry.distinct;
  return result;
}

}  // namespace dns

// The DNS tunnel guard. World access (`*:PORT`) makes every name resolvable
// for A/AAAA, and an address query for a made-up name still reaches the
// authoritative server of its domain: data can leave in the labels
// ("<chunk>.t.evil.example"). The guard gives each client a budget of
// distinct names per registrable domain (public suffix list) per window,
// for names allowed only through world access; names allowed by an exact
// or wildcard target are never charged. A name already seen in the window
// costs nothing again, so repeated lookups and 0x20 case changes do not
// count.
//
// Memory is fixed at construction: a set-associative table of (client,
// registrable domain) entries, each with the 32-bit fingerprints of the
// names charged in its window (room for kMaxBudget; a false "seen" needs a
// 32-bit collision, so names over the budget do not slip through). When a
// set is full the entry with the fewest names is replaced (an expired one
// first), so flooding the table with one-name domains cannot push out a
// tunnel's nearly spent budget. Hashes are keyed with a per-process random
// seed.
//
// Per query it costs two hashes: one of the name (its memo slot and its
// fingerprint) and one of the client and registrable domain together (the
// table's key); the probe reads one set's four keys, kept apart from the
// entries, and compares the fingerprints four at a time.
//
// Thread-safety: none (the DNS event loop). check() is noexcept and does
// not allocate.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "common/ip_address.h"
#include "dns/binding_table.h"
#include "policy/public_suffix.h"

namespace dns {

class TunnelGuard {
 public:
  static constexpr size_t kDefaultEntries = 4096;
  // Names whose registrable domain is remembered: a name asked again after
  // its answer left the cache skips the public suffix lookup (~300
  // instructions with the in-process table).
  static constexpr size_t kDomainMemo = 8192;  // two ways per bucket
  static constexpr size_t kWays = 4;
  // Names an entry remembers, and so the largest budget (dns.tunnel_guard_names).
  static constexpr uint32_t kMaxBudget = 128;

  struct Result {
    bool admitted = true;
    // The first refusal of this (client, domain) in its window: worth one
    // log line; later ones are only counted.
    bool tripped = false;
    uint32_t distinct = 0;    // names charged in the window so far
    std::string_view domain;  // the registrable domain (a view into `name`)
  };

  struct Stats {
    uint64_t charged = 0;    // new names counted against a budget
    uint64_t refused = 0;    // queries over budget
    uint64_t trips = 0;      // (client, domain) pairs that ran out in a window
    uint64_t evictions = 0;  // live entries replaced in a full set
  };

  // `entries` is rounded up to a multiple of kWays. `seed` 0: from the
  // kernel's random source.
  explicit TunnelGuard(const policy::PublicSuffixList& suffixes, size_t entries = kDefaultEntries,
                       uint64_t seed = 0);

  // Charges `name` (lower case, no trailing dot) to (client, its registrable
  // domain). `budget` distinct names per `window`; budget 0 admits all.
  // `client` is the address's bytes (4 or 16, network order).
  Result check(std::span<const uint8_t> client, std::string_view name, TimePoint now, uint32_t budget,
               std::chrono::milliseconds window) noexcept;

  const Stats& stats() const noexcept { return stats_; }
  size_t capacity() const noexcept { return entries_.size(); }

 private:
  // The key of entries_[i] is keys_[i] (0: empty): a set's four keys share
  // one cache line, and only the matching entry is read.
  struct Entry {
    TimePoint windowStart{};
    uint32_t distinct = 0;
    bool tripped = false;
    // Fingerprints (never 0), [0, distinct) in use and 0 after, so the
    // search may read whole groups of four past `distinct`.
    std::array<uint32_t, kMaxBudget> names{};
  };

  struct Memo {
    uint64_t nameHash = 0;  // 0: empty
    uint16_t nameLength = 0;
    uint16_t domainOffset = 0;  // the registrable domain starts here
  };
  // The registrable domain of `name`, remembered by the name's hash.
  [[gnu::always_inline]] inline std::string_view registrableDomain(std::string_view name,
                                                                   uint64_t nameHash) noexcept;
  // Starts `entry`'s window afresh (a new key, or its window ended).
  static void restart(Entry& entry, TimePoint now) noexcept;

  const policy::PublicSuffixList& suffixes_;
  uint64_t seed_;
  std::vector<uint64_t> keys_;
  std::vector<Entry> entries_;
  std::vector<Memo> memo_;
  Stats stats_;
};

}  // namespace dns

// egressd's view of the pod map: an immutable table from address to pod,
// built off the packet path from parsed records and published whole
// (common::SnapshotHolder), read by the NFQUEUE workers and the DNS
// service while they build each decision event.
//
// Two flat open-addressing indexes, at most half full: IPv4 addresses
// keyed by their 32 bits (8-byte buckets), IPv6 by their 128 (an
// IPv4-mapped address is the IPv4 one). find() hashes once (one multiply)
// and compares the key in the bucket itself, so a hit is usually one
// cache line and a miss ends at the first empty bucket. It returns a
// PodRef, an index into this table: the four texts stay in one arena and
// are copied into an event's PodIdentity (copyTo) or read in place
// (names) only where some consumer needs them. No allocation, no lock,
// noexcept. bytes() reports the memory held (tests/attribution measures
// it per pod at 10,000 pods).
//
// A PodRef means something only with the table that made it: whoever
// keeps one keeps that snapshot alive with it (daemon/event_hub.h).
//
// Thread-safety: immutable after build(); any number of readers.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "attribution/pod_map_file.h"
#include "common/ip_address.h"
#include "observe/event.h"

namespace attribution {

// One pod of one PodTable; empty when the address is no pod's.
struct PodRef {
  static constexpr uint32_t kNone = UINT32_MAX;
  uint32_t index = kNone;
  explicit operator bool() const noexcept { return index != kNone; }
};

// A pod's texts, views into its table. `plain`: every byte of the four is
// printable ASCII other than space, '"', '=' and '\\', so a log line or a
// JSON string can take them as they are (Kubernetes names always are).
struct PodNames {
  std::string_view ns;
  std::string_view pod;
  std::string_view workload;
  std::string_view serviceAccount;
  bool plain = false;
};

class PodTable {
 public:
  PodTable() = default;
  // Records whose texts do not fit an event (longer than Kubernetes
  // allows) are cut; a repeated address keeps its first record.
  static PodTable build(const std::vector<PodRecord>& records);

  // The pod of `ip`; an empty ref when no pod has it.
  PodRef find(const common::IpAddress& ip) const noexcept;
  // `pod` must be a non-empty ref from this table.
  PodNames names(PodRef pod) const noexcept;
  void copyTo(PodRef pod, observe::PodIdentity& out) const noexcept;

  // find() and copyTo(): false and `out` untouched when no pod has `ip`.
  bool lookup(const common::IpAddress& ip, observe::PodIdentity& out) const noexcept {
    const PodRef pod = find(ip);
    if (!pod) return false;
    copyTo(pod, out);
    return true;
  }

  size_t size() const noexcept { return entries_.size(); }
  size_t bytes() const noexcept {
    return sizeof(*this) + entries_.capacity() * sizeof(Entry) + v4_.capacity() * sizeof(V4Bucket) +
           v6_.capacity() * sizeof(V6Bucket) + arena_.capacity();
  }

 private:
  struct Entry {
    uint32_t offset = 0;  // into arena_: namespace, pod, workload, service account back to back
    uint16_t workloadLength = 0;
    uint8_t namespaceLength = 0;
    uint8_t podLength = 0;
    uint8_t serviceAccountLength = 0;
    bool plain = false;
  };
  // entry: index + 1 into entries_, 0 = an empty bucket.
  struct V4Bucket {
    uint32_t address = 0;  // the four bytes as they are in memory (network order)
    uint32_t entry = 0;
  };
  struct V6Bucket {
    std::array<uint8_t, 16> address{};
    uint32_t entry = 0;
  };

  uint32_t findV4(uint32_t address) const noexcept;
  uint32_t findV6(const std::array<uint8_t, 16>& address) const noexcept;

  std::vector<Entry> entries_;
  std::vector<V4Bucket> v4_;  // a power of two, at most half full; empty without IPv4 pods
  std::vector<V6Bucket> v6_;  // the same for IPv6
  unsigned v4Shift_ = 64;     // the bucket of a hash: its top bits (64 - log2 of the size)
  unsigned v6Shift_ = 64;
  std::string arena_;
};

}  // namespace attribution

// egressd's view of the pod map: an immutable table from address to pod,
// built off the packet path from parsed records and published whole
// (common::SnapshotHolder), read by the NFQUEUE workers and the DNS
// service while they build each decision event.
//
// Compact: one 28-byte slot per address (the address and where its texts
// are), an open-addressing hash index over them (4 bytes per bucket, at
// most half full), and the texts once in one arena; lookup is one hash
// probe (usually one or two cache lines) and copying the texts into the
// event's fixed PodIdentity: no allocation, no lock, noexcept. bytes() reports the memory held
// (tests/attribution measures it per pod at 10,000 pods).
//
// Thread-safety: immutable after build(); any number of readers.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "attribution/pod_map_file.h"
#include "common/ip_address.h"
#include "observe/event.h"

namespace attribution {

class PodTable {
 public:
  PodTable() = default;
  // Records whose texts do not fit an event (longer than Kubernetes
  // allows) are cut; a repeated address keeps its first record.
  static PodTable build(const std::vector<PodRecord>& records);

  // Fills `out` with the pod of `ip` (an IPv4-mapped IPv6 address is the
  // IPv4 address); false and `out` untouched when no pod has it.
  bool lookup(const common::IpAddress& ip, observe::PodIdentity& out) const noexcept;

  size_t size() const noexcept { return slots_.size(); }
  size_t bytes() const noexcept {
    return sizeof(*this) + slots_.capacity() * sizeof(Slot) + buckets_.capacity() * sizeof(uint32_t) +
           arena_.capacity();
  }

 private:
  using Key = std::array<uint8_t, 16>;  // IPv4 as ::ffff:a.b.c.d
  struct Slot {
    Key key;
    uint32_t offset;  // into arena_: namespace, pod, workload, service account back to back
    uint8_t namespaceLength;
    uint8_t podLength;
    uint8_t serviceAccountLength;
    uint8_t pad = 0;
    uint16_t workloadLength;
    uint16_t pad2 = 0;
  };
  static Key keyOf(const common::IpAddress& ip) noexcept;
  static size_t hashOf(const Key& key) noexcept;

  std::vector<Slot> slots_;        // sorted by key, one per address
  std::vector<uint32_t> buckets_;  // slot index + 1, 0 = empty; a power of two, at most half full
  std::string arena_;
};

}  // namespace attribution

// Which destination addresses are internal: never covered by world access
// (`*:PORT`), and never a public name's DNS answer (rebinding) unless an
// IP/CIDR target names them. One table, with its sources, for the
// transparent path, the kernel fast path's planning, DNS, explain and lint
// (docs/nfq.md "Internal addresses").
//
// The table is the IANA IPv4 and IPv6 Special-Purpose Address Registries
// (RFC 6890 and its updates; the entries whose "Globally Reachable" is
// False, and the N/A ones decided below), plus multicast (RFC 5771,
// RFC 4291) and, for IPv6, everything outside global unicast 2000::/3.
// Addresses that embed an IPv4 address and reach it (IPv4-mapped,
// IPv4-compatible, NAT64 64:ff9b::/96, 6to4 2002::/16) are classified like
// the IPv4 address inside.
//
// An operator widens the list (rules.internal_cidrs) or narrows it
// (rules.public_cidrs); the most specific range decides, and an operator's
// range wins over a built-in one of the same length.
//
// Thread-safety: immutable after construction; lookups are noexcept,
// allocation-free and lock-free (the packet and query paths call them).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip_address.h"

namespace policy {

enum class RangeKind : uint8_t {
  Internal,  // not covered by world access
  Public,    // a globally reachable exception inside an internal range
  Embedded,  // classify by the IPv4 address at `embedOffset`
};

struct SpecialRange {
  std::string_view network;  // "169.254.0.0/16"
  RangeKind kind;
  std::string_view name;    // "link-local (cloud metadata 169.254.169.254)"
  std::string_view source;  // "RFC 3927"
  uint8_t embedOffset = 0;  // Embedded: byte offset of the IPv4 address
};

// The built-in table, in registry order (IPv4 first).
std::span<const SpecialRange> specialRanges() noexcept;

enum class RangeOrigin : uint8_t { None, Builtin, OperatorInternal, OperatorPublic };

struct AddressClass {
  bool internal = false;
  // The range that decided (the longest prefix). None: no range matched
  // (an IPv4 address outside every special range: public).
  RangeOrigin origin = RangeOrigin::None;
  common::IpNetwork network;
  std::string_view name;    // built-in: the table's name; operator: the config key
  std::string_view source;  // built-in: the RFC
  // Set when an embedding form (IPv4-mapped, NAT64...) led to an IPv4
  // address; `network`..`source` then describe the IPv4's range.
  bool embedded = false;
  common::IpAddress embeddedIpv4;
  std::string_view embeddingName;  // "IPv4-mapped (RFC 4291 section 2.5.5.2)"
};

class InternalRanges {
 public:
  // The built-in table only (the default).
  InternalRanges();
  // The built-in table plus an operator's ranges. Call checkOperatorRange
  // and refuse bad entries first (config/ does); any still given are used
  // as they are.
  InternalRanges(std::span<const common::IpNetwork> internal,
                 std::span<const common::IpNetwork> publicRanges);

  bool isInternal(const common::IpAddress& ip) const noexcept { return classify(ip).internal; }
  AddressClass classify(const common::IpAddress& ip) const noexcept;

  const std::vector<common::IpNetwork>& operatorInternal() const noexcept { return operatorInternal_; }
  const std::vector<common::IpNetwork>& operatorPublic() const noexcept { return operatorPublic_; }
  friend bool operator==(const InternalRanges& a, const InternalRanges& b) noexcept {
    return a.operatorInternal_ == b.operatorInternal_ && a.operatorPublic_ == b.operatorPublic_;
  }

 private:
  struct Ref {
    common::IpNetwork network;
    RangeKind kind = RangeKind::Internal;
    RangeOrigin origin = RangeOrigin::Builtin;
    const SpecialRange* builtin = nullptr;
  };
  struct V4Entry {
    uint32_t value, mask;
    uint16_t ref;
  };
  struct V6Entry {
    uint64_t hi, lo, maskHi, maskLo;
    uint16_t ref;
  };
  void add(const common::IpNetwork& network, RangeKind kind, RangeOrigin origin, const SpecialRange* builtin);
  void finish();
  const Ref* findV4(uint32_t address) const noexcept;
  const Ref* findV6(uint64_t hi, uint64_t lo) const noexcept;
  AddressClass fromRef(const Ref* ref) const noexcept;

  std::vector<Ref> refs_;
  std::vector<V4Entry> v4_;  // longest prefix first; operator before built-in at equal length
  std::vector<V6Entry> v6_;
  std::vector<common::IpNetwork> operatorInternal_;
  std::vector<common::IpNetwork> operatorPublic_;
};

// Why an operator's range cannot be used, or nullopt: a range inside an
// embedding form (e.g. "::ffff:10.0.0.0/104", "64:ff9b::a00:0/104") is
// refused, since those addresses are classified by the IPv4 inside; the
// message says which IPv4 network to write instead.
std::optional<std::string> checkOperatorRange(const common::IpNetwork& network);

// "169.254.0.0/16 link-local (...), RFC 3927": for explain and lint.
std::string describeClass(const AddressClass& addressClass);

// The ranges lint names when it warns about world access, in one sentence's
// worth: "loopback, link-local (169.254.169.254 and fd00:ec2::254, the
// cloud metadata services), RFC 1918 ...".
std::string_view closedRangesSummary() noexcept;

}  // namespace policy

// Which (address, tcp:port) pairs the kernel fast path may pass at the SYN
// for the names egressd's DNS bound to one address (nfq/ruleset.h, the
// "<chain>-bound4/6" sets; docs/nfq.md "Kernel fast path").
//
// A pair goes in only where decide() would answer a SYN with "pass, read
// the first payload" (or "allow, bound"): the port has an exact or
// wildcard name rule allowing one of the names, no world access
// (`*:port`) and no IP/CIDR target covering the address — those SYNs get
// a final verdict in user space anyway, one packet, and keep their event
// at the SYN. The timeout is the latest expiry among those names, rounded
// down to whole seconds, so the kernel entry never outlives the binding.
//
// The kernel verdict's names map (nfq/kernel_verdict.h) is planned from the
// same binding: planKernelNames lists, for those same ports, every bound
// name an exact or wildcard rule allows there, with its own expiry.
//
// Pure and allocation-free. Thread-safety: none needed.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

#include "common/ip_address.h"
#include "nfq/ipset.h"
#include "nfq/verdict.h"
#include "policy/policy.h"

namespace nfq {

struct BoundNameExpiry {
  std::string_view name;
  TimePoint expiry;
};

struct BoundPlan {
  size_t count = 0;    // entries written to `out`
  size_t dropped = 0;  // entries that did not fit in `out` (their SYNs go to user space)
};

// `namePorts`: computeNamePorts(policy), computed once per policy snapshot.
BoundPlan planBoundEntries(const common::IpAddress& ip, std::span<const BoundNameExpiry> names,
                           const policy::Policy& policy, const NamePorts& namePorts, TimePoint now,
                           std::span<SetEntry> out) noexcept;

// One entry of the kernel verdict's names map: the first payload naming
// `name` (SNI or Host) to (the address, `port`) may be allowed in the
// kernel until `expiry`.
struct KernelNameEntry {
  uint16_t port = 0;
  std::string_view name;  // a view into the `names` given
  TimePoint expiry{};
};

// The names map entries of one address: on every port planBoundEntries
// would consider (a name rule, no world access, no IP/CIDR target covering
// the address), each unexpired name of `names` that an exact or wildcard
// rule allows on that port — exactly the first payloads decide() answers
// `sni_allowed` / `host_allowed` there (the name is allowed and bound to
// the address, strict binding or not). Names allowed only by world access
// are never listed (an internal address needs an exact or wildcard rule).
BoundPlan planKernelNames(const common::IpAddress& ip, std::span<const BoundNameExpiry> names,
                          const policy::Policy& policy, const NamePorts& namePorts, TimePoint now,
                          std::span<KernelNameEntry> out) noexcept;

}  // namespace nfq

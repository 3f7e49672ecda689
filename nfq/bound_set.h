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

}  // namespace nfq

// The verdict's question to the binding table, with the policy applied:
// "which allowed names resolved to this IP, for this port?" Pure glue over
// BindingTable::lookup and Policy::matchName; allocation-free.
//
// Thread-safety: as BindingTable (any thread); the policy is immutable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "common/ip_address.h"
#include "dns/binding_table.h"
#include "policy/policy.h"

namespace dns {

// Copies into `out` the unexpired names bound to `ip` that the policy
// allows on `port` (as many as fit, at most BindingTable::kMaxNamesPerAddress
// are considered); returns how many qualified.
size_t boundNamesAllowedOn(const BindingTable& table, const policy::Policy& policy,
                           const common::IpAddress& ip, uint16_t port, TimePoint now,
                           std::span<BoundName> out) noexcept;

}  // namespace dns

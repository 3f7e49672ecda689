#include "dns/binding_lookup.h"

#include <algorithm>
#include <array>

namespace dns {

size_t boundNamesAllowedOn(const BindingTable& table, const policy::Policy& policy,
                           const common::IpAddress& ip, uint16_t port, TimePoint now,
                           std::span<BoundName> out) noexcept {
  std::array<BoundName, BindingTable::kMaxNamesPerAddress> bound;
  const size_t total = std::min(table.lookup(ip, now, bound), bound.size());
  size_t count = 0;
  for (size_t i = 0; i < total; ++i) {
    // Rules may have changed since the name was answered: ask again.
    if (!policy.matchName(bound[i].view(), port)) continue;
    if (count < out.size()) out[count] = bound[i];
    ++count;
  }
  return count;
}

}  // namespace dns

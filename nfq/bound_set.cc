#include "nfq/bound_set.h"

#include <algorithm>
#include <chrono>

namespace nfq {

BoundPlan planBoundEntries(const common::IpAddress& ip, std::span<const BoundNameExpiry> names,
                           const policy::Policy& policy, const NamePorts& namePorts, TimePoint now,
                           std::span<SetEntry> out) noexcept {
  BoundPlan plan;
  if (names.empty()) return plan;
  for (const uint16_t port : policy.portsInUse()) {
    // Same order of questions as decideTcp(): an address rule or world
    // access decides the SYN for good in user space, keep it there.
    if (!namePorts.test(port) || policy.worldOnPort(port) || policy.matchAddress(ip, port)) continue;
    TimePoint latest = now;
    for (const BoundNameExpiry& bound : names) {
      if (bound.expiry <= latest) continue;
      const policy::NameMatch match = policy.matchName(bound.name, port);
      if (match && match.kind != policy::MatchKind::World) latest = bound.expiry;
    }
    // Rounded down: the kernel must forget the pair no later than we do.
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(latest - now).count();
    if (seconds < 1) continue;
    if (plan.count == out.size()) {
      ++plan.dropped;
      continue;
    }
    out[plan.count++] =
        SetEntry{ip, port, static_cast<uint32_t>(std::min<int64_t>(seconds, kIpSetMaxTimeout))};
  }
  return plan;
}

BoundPlan planKernelNames(const common::IpAddress& ip, std::span<const BoundNameExpiry> names,
                          const policy::Policy& policy, const NamePorts& namePorts, TimePoint now,
                          std::span<KernelNameEntry> out) noexcept {
  BoundPlan plan;
  if (names.empty()) return plan;
  for (const uint16_t port : policy.portsInUse()) {
    // The ports planBoundEntries considers: elsewhere the SYN is decided
    // for good in user space, and no first payload reaches the program.
    if (!namePorts.test(port) || policy.worldOnPort(port) || policy.matchAddress(ip, port)) continue;
    for (const BoundNameExpiry& bound : names) {
      if (bound.expiry <= now) continue;
      const policy::NameMatch match = policy.matchName(bound.name, port);
      if (!match || match.kind == policy::MatchKind::World) continue;
      if (plan.count == out.size()) {
        ++plan.dropped;
        continue;
      }
      out[plan.count++] = KernelNameEntry{port, bound.name, bound.expiry};
    }
  }
  return plan;
}

}  // namespace nfq

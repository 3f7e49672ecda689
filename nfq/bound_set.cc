#include "nfq/bound_set.h"

#include <algorithm>
#include <chrono>

namespace nfq {
namespace {

// Whether decide() answers a SYN to (ip, port) with "read the first
// payload": the port has name rules, and neither world access nor an
// address rule decides it for good in user space (the same order of
// questions as decideTcp()).
bool synAwaitsPayload(const common::IpAddress& ip, uint16_t port, const policy::Policy& policy,
                      const NamePorts& namePorts) noexcept {
  return namePorts.test(port) && !policy.worldOnPort(port) && !policy.matchAddress(ip, port);
}

}  // namespace

BoundPlan planBoundEntries(const common::IpAddress& ip, std::span<const BoundNameExpiry> names,
                           const policy::Policy& policy, const NamePorts& namePorts, TimePoint now,
                           std::span<SetEntry> out) noexcept {
  BoundPlan plan;
  if (names.empty()) return plan;
  for (const uint16_t port : policy.portsInUse()) {
    if (!synAwaitsPayload(ip, port, policy, namePorts)) continue;
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
    // Elsewhere no first payload reaches the program: the SYN is decided.
    if (!synAwaitsPayload(ip, port, policy, namePorts)) continue;
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

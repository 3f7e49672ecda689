#include "proxy/decision.h"

#include <array>

namespace proxy {

namespace {
constexpr std::array<std::string_view, kProxyReasonCount> kReasonNames = {
    "name_allowed",         "world_access",         "address_rule",           "port_not_in_policy",
    "name_not_allowed",     "address_not_allowed",  "internal_address",       "no_address",
    "upstream_unreachable", "upstream_timeout",     "malformed_request",      "head_too_large",
    "header_timeout",       "too_many_connections", "https_scheme",           "not_proxy_request",
    "pipelining_refused",   "client_not_allowed",   "proxy_protocol_invalid",
};
}  // namespace

std::string_view proxyReasonName(ProxyReason reason) noexcept {
  const auto index = static_cast<size_t>(reason);
  return index < kReasonNames.size() ? kReasonNames[index] : "unknown";
}

TargetDecision judgeTarget(const policy::Policy& policy, const Authority& authority) noexcept {
  TargetDecision out;
  const uint16_t port = authority.port;
  if (authority.ipLiteral) {
    const auto parsed = common::parseIpAddress(authority.host);
    if (!parsed) {  // the parser checked it; fail closed all the same
      out.reason = ProxyReason::AddressNotAllowed;
      return out;
    }
    // ::ffff:a.b.c.d is a.b.c.d on the wire.
    out.literal = parsed->unmapped();
    const policy::AddressMatch byAddress = policy.matchAddress(out.literal, port);
    if (byAddress) {
      out.allowed = true;
      out.reason = ProxyReason::AddressAllowed;
      out.match = byAddress.kind;
      out.ruleSets = byAddress.ruleSets;
      return out;
    }
    const bool internal = policy.isInternal(out.literal);
    if (policy.worldOnPort(port) && !internal) {
      const policy::NameMatch world = policy.matchName("*", port);
      out.allowed = true;
      out.reason = ProxyReason::WorldAccess;
      out.match = policy::MatchKind::World;
      out.ruleSets = world.ruleSets;
      return out;
    }
    out.reason = !policy.portInUse(port) ? ProxyReason::PortNotInPolicy
                 : internal              ? ProxyReason::InternalAddress
                                         : ProxyReason::AddressNotAllowed;
    return out;
  }
  const policy::NameMatch byName = policy.matchName(authority.host, port);
  if (byName) {
    out.allowed = true;
    out.resolve = true;
    out.reason =
        byName.kind == policy::MatchKind::World ? ProxyReason::WorldAccess : ProxyReason::NameAllowed;
    out.match = byName.kind;
    out.ruleSets = byName.ruleSets;
    return out;
  }
  out.reason = policy.portInUse(port) ? ProxyReason::NameNotAllowed : ProxyReason::PortNotInPolicy;
  return out;
}

bool resolvedAddressAllowed(const policy::Policy& policy, const common::IpAddress& address,
                            uint16_t port) noexcept {
  const common::IpAddress ip = address.unmapped();
  if (!policy.isInternal(ip)) return true;
  return static_cast<bool>(policy.matchAddress(ip, port));
}

}  // namespace proxy

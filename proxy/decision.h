// Is a proxy request's target allowed? The same policy::Policy, and the
// same semantics, as the transparent path (docs/rules.md): a name is
// judged on its own port (exact > wildcard > world access), an IP literal
// only by IP/CIDR targets or world access, and world access never covers
// an internal address (policy/internal_ranges.h). The addresses a name
// resolved to are judged again before anything is connected to: an
// internal one is refused unless an IP/CIDR target names it, as egressd's
// DNS refuses such answers (rebinding, cloud metadata).
//
// Pure, noexcept, allocation-free; reads the policy snapshot it is given.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/ip_address.h"
#include "policy/policy.h"
#include "proxy/http_head.h"

namespace proxy {

// Why a request was answered as it was: the X-Egressd-Reason header, the
// event's reason and the counters' label.
enum class ProxyReason : uint8_t {
  NameAllowed,          // an exact or wildcard target
  WorldAccess,          // `*:PORT`
  AddressAllowed,       // an IP/CIDR target
  PortNotInPolicy,      // no target of any kind uses the port
  NameNotAllowed,       // the name is not allowed on that port
  AddressNotAllowed,    // an IP literal no IP/CIDR target covers
  InternalAddress,      // world access does not cover it; or a name resolved there
  NoAddress,            // the name has no address egressd's DNS hands out
  UpstreamUnreachable,  // every address refused or failed (502)
  UpstreamTimeout,      // no address answered within the connect timeout (504)
  Malformed,            // 400
  HeadTooLarge,         // 431
  HeaderTimeout,        // 408
  TooManyConnections,   // 503
  HttpsScheme,          // GET https://...: use CONNECT (400)
  NotProxyRequest,      // origin-form or `*`: a request for a server (400)
  PipeliningRefused,    // a second request before the first was answered
  // The accept path (proxy/client_admission.h), before any request:
  ClientNotAllowed,      // the client is not in proxy.clients: closed unread
  ProxyProtocolInvalid,  // no valid PROXY header from a proxy.proxy_protocol_from address (400)
};
inline constexpr size_t kProxyReasonCount = 19;

std::string_view proxyReasonName(ProxyReason reason) noexcept;

struct TargetDecision {
  bool allowed = false;
  ProxyReason reason = ProxyReason::NameNotAllowed;
  policy::MatchKind match = policy::MatchKind::None;
  policy::RuleSetRefs ruleSets;
  // A name to resolve (false: an IP literal, connect to it as it is).
  bool resolve = false;
  common::IpAddress literal;
};

// The request's authority against the policy.
TargetDecision judgeTarget(const policy::Policy& policy, const Authority& authority) noexcept;

// One address `name` resolved to, for a target judgeTarget() allowed:
// refused (InternalAddress) when internal and no IP/CIDR target covers it
// on `port`.
bool resolvedAddressAllowed(const policy::Policy& policy, const common::IpAddress& address,
                            uint16_t port) noexcept;

}  // namespace proxy

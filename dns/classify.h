// The decision for one client query, before any I/O: answer it ourselves
// (deny, refuse, error), or forward it to the cluster resolver or to the
// upstreams. Pure and allocation-free; the service only acts on the result.
//
// Thread-safety: pure function; the policy is an immutable snapshot.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dns/options.h"
#include "dns/wire.h"
#include "policy/policy.h"

namespace dns {

enum class QueryAction : uint8_t {
  Forward,  // allowed name: upstreams (cache first)
  Cluster,  // under a cluster domain: cluster upstreams, unfiltered
  Deny,     // not allowed: deny rcode + EDE 15 (Blocked)
  Refuse,   // answered with `rcode` and no EDE (opcode, class, transfers, EDNS version)
  FormErr,  // malformed but has a header: FORMERR
  Drop,     // not worth an answer (no header, or a response)
};

// Why a query (or an answer) was refused. Each has an EDE text (RFC 8914
// EXTRA-TEXT) and a counter.
enum class DenyReason : uint8_t {
  None,
  NotAllowed,   // no rule allows the name on any port
  InvalidName,  // labels with bytes no host name has, or the root
  Rebinding,    // allowed name, answer in private/loopback/link-local space
  // Allowed only through world access (`*:PORT`) and not an address query:
  // TXT, MX, NULL, ANY... would make every authoritative server in the
  // world reachable as a tunnel. Answered NODATA (NOERROR, no records) with
  // EDE 15: the name exists for A/AAAA, so no NXDOMAIN that caches would
  // apply to every type of the name (RFC 2308 section 5).
  WorldNonAddressQuery,
  // Allowed only through world access, and the client has asked for more
  // distinct names under this registrable domain than the tunnel guard's
  // budget allows in its window (dns/tunnel_guard.h).
  TunnelBudget,
};
inline constexpr size_t kDenyReasonCount = 6;

std::string_view denyReasonName(DenyReason reason) noexcept;
// EDE EXTRA-TEXT naming the reason, e.g. "egressd: name not allowed by policy".
std::string_view denyReasonText(DenyReason reason) noexcept;

// RFC 6891 section 9: unsupported EDNS version.
inline constexpr uint16_t kRcodeBadVers = 16;

struct Classification {
  QueryAction action = QueryAction::Drop;
  // Deny: why. Forward with `audit`: why enforce mode would have denied.
  DenyReason reason = DenyReason::None;
  uint16_t rcode = rcode::NoError;  // for Deny, Refuse, FormErr (may be extended)
  // Forward: the name is allowed only through world access (`*:PORT`); the
  // tunnel guard charges it.
  bool worldOnly = false;
  // Forward in audit mode of a query enforce mode denies ("would deny").
  bool audit = false;
};

uint8_t denyRcodeValue(DenyRcode rcode) noexcept;
// The rcode of a denial for `reason`: NOERROR (NODATA) for a world-access
// name asked for a type other than A/AAAA, else the configured deny rcode.
uint8_t denyRcodeFor(DenyReason reason, DenyRcode configured) noexcept;

// What the policy says about the question's name and type, before any
// budget: None (allowed by an exact or wildcard target, or an address
// query for a name world access allows: `worldOnly`), NotAllowed, or
// WorldNonAddressQuery. Used for the query and again for the upstream's
// answer (the policy may have changed meanwhile).
struct NameVerdict {
  DenyReason reason = DenyReason::None;
  bool worldOnly = false;
};
// `name` as dns::Name::view() gives it (lower case, no trailing dot).
NameVerdict judgeName(const policy::Policy& policy, std::string_view name, uint16_t qtype) noexcept;

// The denial for `reason`; in audit mode (options.audit) a forward that
// records why enforce mode would have denied. Rebinding is never audited:
// it protects the pod, not the policy.
Classification denial(DenyReason reason, const DnsOptions& options) noexcept;

// True when `name` (lower case, no trailing dot) is `domain` or below it.
bool isUnderDomain(std::string_view name, std::string_view domain) noexcept;

Classification classifyQuery(QueryStatus status, const Query& query, const policy::Policy& policy,
                             const DnsOptions& options) noexcept;

}  // namespace dns

// The decision for one client query, before any I/O: answer it ourselves
// (deny, refuse, error), or forward it to the cluster resolver or to the
// upstreams. Pure and allocation-free; the service only acts on the result.
//
// Thread-safety: pure function; the policy is an immutable snapshot.
#pragma once

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
};

std::string_view denyReasonName(DenyReason reason) noexcept;
// EDE EXTRA-TEXT naming the reason, e.g. "egressd: name not allowed by policy".
std::string_view denyReasonText(DenyReason reason) noexcept;

// RFC 6891 section 9: unsupported EDNS version.
inline constexpr uint16_t kRcodeBadVers = 16;

struct Classification {
  QueryAction action = QueryAction::Drop;
  DenyReason reason = DenyReason::None;
  uint16_t rcode = rcode::NoError;  // for Deny, Refuse, FormErr (may be extended)
};

uint8_t denyRcodeValue(DenyRcode rcode) noexcept;

// True when `name` (lower case, no trailing dot) is `domain` or below it.
bool isUnderDomain(std::string_view name, std::string_view domain) noexcept;

Classification classifyQuery(QueryStatus status, const Query& query, const policy::Policy& policy,
                             const DnsOptions& options) noexcept;

}  // namespace dns

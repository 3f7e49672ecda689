#include "dns/classify.h"

namespace dns {

std::string_view denyReasonName(DenyReason reason) noexcept {
  switch (reason) {
    case DenyReason::None:
      return "none";
    case DenyReason::NotAllowed:
      return "not_allowed";
    case DenyReason::InvalidName:
      return "invalid_name";
    case DenyReason::Rebinding:
      return "rebinding";
    case DenyReason::WorldNonAddressQuery:
      return "world_non_address_query";
    case DenyReason::TunnelBudget:
      return "dns_tunnel_budget";
  }
  return "unknown";
}

std::string_view denyReasonText(DenyReason reason) noexcept {
  switch (reason) {
    case DenyReason::None:
      return "";
    case DenyReason::NotAllowed:
      return "egressd: name not allowed by policy";
    case DenyReason::InvalidName:
      return "egressd: not a valid host name";
    case DenyReason::Rebinding:
      return "egressd: answer points to a non-public address";
    case DenyReason::WorldNonAddressQuery:
      return "egressd: only A/AAAA queries for names allowed by world access";
    case DenyReason::TunnelBudget:
      return "egressd: too many distinct names under this domain (DNS tunnel guard)";
  }
  return "";
}

uint8_t denyRcodeValue(DenyRcode value) noexcept {
  return value == DenyRcode::Refused ? rcode::Refused : rcode::NxDomain;
}

uint8_t denyRcodeFor(DenyReason reason, DenyRcode configured) noexcept {
  return reason == DenyReason::WorldNonAddressQuery ? rcode::NoError : denyRcodeValue(configured);
}

namespace {

// The bodies of judgeName(), denial() and isUnderDomain(), which
// classifyQuery() (once per query) gets inlined.
inline __attribute__((always_inline)) NameVerdict judgeNameInline(const policy::Policy& policy,
                                                                  std::string_view name,
                                                                  uint16_t qtype) noexcept {
  // `name` comes from the wire parser: lower case, no trailing dot.
  if (policy.normalizedNameRuleAllows(name)) return {DenyReason::None, false};
  if (!policy.hasWorldAccess()) return {DenyReason::NotAllowed, false};
  // World access cannot see the port a name will be used on, so every name
  // resolves, but only as addresses (CNAME chains come with them): no type
  // that can carry data back from an authoritative server. HTTPS/SVCB stay
  // out too: their SvcParams carry arbitrary bytes, and clients fall back
  // to A/AAAA when they get none.
  if (qtype == rrtype::A || qtype == rrtype::AAAA) return {DenyReason::None, true};
  return {DenyReason::WorldNonAddressQuery, true};
}

inline __attribute__((always_inline)) Classification denialInline(DenyReason reason,
                                                                  const DnsOptions& options) noexcept {
  if (options.audit && reason != DenyReason::Rebinding) {
    return {QueryAction::Forward, reason, rcode::NoError, false, true};
  }
  return {QueryAction::Deny, reason, denyRcodeFor(reason, options.denyRcode), false, false};
}

inline __attribute__((always_inline)) bool isUnderDomainInline(std::string_view name,
                                                               std::string_view domain) noexcept {
  if (domain.empty()) return false;  // never "everything"
  if (name.size() < domain.size()) return false;
  // The dot before the domain first: one byte rules out most names
  // before any comparison of the text.
  if (name.size() != domain.size() && name[name.size() - domain.size() - 1] != '.') return false;
  return name.substr(name.size() - domain.size()) == domain;
}

}  // namespace

NameVerdict judgeName(const policy::Policy& policy, std::string_view name, uint16_t qtype) noexcept {
  return judgeNameInline(policy, name, qtype);
}

Classification denial(DenyReason reason, const DnsOptions& options) noexcept {
  return denialInline(reason, options);
}

bool isUnderDomain(std::string_view name, std::string_view domain) noexcept {
  return isUnderDomainInline(name, domain);
}

Classification classifyQuery(QueryStatus status, const Query& query, const policy::Policy& policy,
                             const DnsOptions& options) noexcept {
  switch (status) {
    case QueryStatus::Ok:
      break;
    case QueryStatus::TooShort:
    case QueryStatus::NotAQuery:
      return {QueryAction::Drop, DenyReason::None, rcode::NoError};
    default:
      return {QueryAction::FormErr, DenyReason::None, rcode::FormErr};
  }
  // RFC 1035 section 4.1.1: only standard queries are served.
  if (query.header.opcode() != kOpcodeQuery) return {QueryAction::Refuse, DenyReason::None, rcode::NotImp};
  if (query.hasEdns && query.ednsVersion != 0) return {QueryAction::Refuse, DenyReason::None, kRcodeBadVers};
  if (query.qtype == rrtype::OPT) return {QueryAction::FormErr, DenyReason::None, rcode::FormErr};
  // Zone transfers and other classes (CHAOS version.bind) are no business
  // of a filtering forwarder.
  if (query.qclass != kClassIn || query.qtype == rrtype::AXFR || query.qtype == rrtype::IXFR) {
    return {QueryAction::Refuse, DenyReason::None, rcode::Refused};
  }
  if (query.qname.unusualBytes || query.qname.length == 0)
    return denialInline(DenyReason::InvalidName, options);
  const std::string_view name = query.qname.view();
  for (const std::string& domain : options.clusterDomains) {
    if (isUnderDomainInline(name, domain)) return {QueryAction::Cluster, DenyReason::None, rcode::NoError};
  }
  const NameVerdict verdict = judgeNameInline(policy, name, query.qtype);
  if (verdict.reason != DenyReason::None) return denialInline(verdict.reason, options);
  return {QueryAction::Forward, DenyReason::None, rcode::NoError, verdict.worldOnly, false};
}

}  // namespace dns

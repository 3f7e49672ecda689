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
  }
  return "";
}

uint8_t denyRcodeValue(DenyRcode value) noexcept {
  return value == DenyRcode::Refused ? rcode::Refused : rcode::NxDomain;
}

bool isUnderDomain(std::string_view name, std::string_view domain) noexcept {
  if (domain.empty()) return false;  // never "everything"
  if (name.size() < domain.size()) return false;
  if (name.substr(name.size() - domain.size()) != domain) return false;
  return name.size() == domain.size() || name[name.size() - domain.size() - 1] == '.';
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
  const uint8_t deny = denyRcodeValue(options.denyRcode);
  if (query.qname.unusualBytes || query.qname.length == 0) {
    return {QueryAction::Deny, DenyReason::InvalidName, deny};
  }
  const std::string_view name = query.qname.view();
  for (const std::string& domain : options.clusterDomains) {
    if (isUnderDomain(name, domain)) return {QueryAction::Cluster, DenyReason::None, rcode::NoError};
  }
  if (policy.nameAllowedOnAnyPort(name)) return {QueryAction::Forward, DenyReason::None, rcode::NoError};
  return {QueryAction::Deny, DenyReason::NotAllowed, deny};
}

}  // namespace dns

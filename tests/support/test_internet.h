// The tests' "internet": documentation addresses (RFC 5737, RFC 3849), as
// in tests/e2e/topology.sh. They are internal by default (world access
// does not cover them, policy/internal_ranges.h); a test that means them
// as public destinations compiles its policy with these ranges, the way an
// operator would write rules.public_cidrs.
#pragma once

#include <memory>
#include <vector>

#include "common/ip_address.h"
#include "policy/internal_ranges.h"
#include "policy/policy.h"

namespace testsupport {

inline std::vector<common::IpNetwork> testInternetNetworks() {
  std::vector<common::IpNetwork> out;
  for (const char* text : {"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"}) {
    out.push_back(*common::parseIpNetwork(text).network);
  }
  return out;
}

inline policy::InternalRanges testInternetIsPublic() {
  return policy::InternalRanges({}, testInternetNetworks());
}

// Policy::compile with the documentation ranges public.
inline std::shared_ptr<const policy::Policy> compileWithTestInternet(
    const std::vector<policy::RuleSet>& sets) {
  return policy::Policy::compile(sets, testInternetIsPublic());
}

}  // namespace testsupport

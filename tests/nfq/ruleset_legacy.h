// The chain layout before the dispatch to <chain>-NEW, for the
// outcome-equivalence test (ruleset_equivalence_test.cc).
#pragma once

#include <string>
#include <vector>

#include "nfq/ruleset.h"

namespace nfqtest {

// What renderChainRules returned at main 6b936a9: the chain, then the
// verdict chain's rules, then (with confirmFirstPayload) the reply chain's.
std::vector<std::string> legacyChainRules(const nfq::RulesetOptions& options, nfq::IpTablesFamily family);

}  // namespace nfqtest

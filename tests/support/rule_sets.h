// Builds a policy::RuleSet from target texts for unit tests (Catch2):
// every text must parse, else the test fails at the REQUIRE.
#pragma once

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "policy/public_suffix.h"
#include "policy/rule_set.h"
#include "policy/target.h"

namespace testsupport {

inline policy::RuleSet ruleSet(const std::string& ns, const std::string& name,
                               const std::vector<std::string>& targets) {
  policy::RuleSet set;
  set.ns = ns;
  set.name = name;
  set.source = "test";
  for (const auto& target : targets) {
    auto parsed = policy::parseTarget(target, policy::defaultPublicSuffixList());
    REQUIRE(parsed.target);
    set.targets.push_back(*parsed.target);
    set.targetTexts.push_back(target);
  }
  return set;
}

}  // namespace testsupport

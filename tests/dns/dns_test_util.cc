#include "dns_test_util.h"

#include <stdexcept>

#include "policy/target.h"
#include "tests/support/test_internet.h"

namespace dnstest {

std::shared_ptr<const policy::Policy> makePolicy(const std::vector<std::string>& targets) {
  policy::RuleSet set;
  set.ns = "default";
  set.name = "test";
  set.source = "test";
  for (const auto& text : targets) {
    auto parsed = policy::parseTarget(text, policy::defaultPublicSuffixList());
    if (!parsed.target) throw std::runtime_error("bad test target " + text + ": " + parsed.reason());
    set.targets.push_back(*parsed.target);
    set.targetTexts.push_back(text);
  }
  // The tests answer with documentation addresses, standing for the
  // internet (the e2e topology does the same through rules.public_cidrs).
  return policy::Policy::compile({set}, testsupport::testInternetIsPublic());
}

}  // namespace dnstest

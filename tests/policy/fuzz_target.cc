// libFuzzer target: the target parser on arbitrary bytes, plus the lookups
// of a policy compiled from whatever parsed (they must agree).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "policy/policy.h"
#include "policy/target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto parsed = policy::parseTarget(text, policy::defaultPublicSuffixList());
  if (!parsed.target) {
    if (parsed.reason().empty()) std::abort();
    return 0;
  }
  // A canonical target parses again to itself.
  const std::string canonical = parsed.target->canonical();
  const auto again = policy::parseTarget(canonical, policy::defaultPublicSuffixList());
  if (!again.target || !(*again.target == *parsed.target)) std::abort();

  policy::RuleSet set;
  set.name = "fuzz";
  set.ns = "default";
  set.targets.push_back(*parsed.target);
  const auto compiled = policy::Policy::compile({set});
  const auto& t = *parsed.target;
  switch (t.kind) {
    case policy::TargetKind::ExactName:
      if (!compiled->matchName(t.name, t.port)) std::abort();
      break;
    case policy::TargetKind::WildcardName:
      if (!compiled->matchName("x." + t.name, t.port) || compiled->matchName(t.name, t.port)) std::abort();
      break;
    case policy::TargetKind::AnyName:
      if (!compiled->matchName("anything.example", t.port)) std::abort();
      break;
    case policy::TargetKind::Address:
    case policy::TargetKind::Network:
      if (!compiled->matchAddress(t.network.address, t.port)) std::abort();
      break;
  }
  return 0;
}

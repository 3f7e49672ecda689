// The WorldAccess condition of an EgressRuleSet's status: True when world
// access targets ("*:PORT") of the rule set are in force, so
// `kubectl get ers -A` (column WORLD) shows at a glance which rule sets open
// every destination on a port (docs/governance.md). Decided from egressd's
// own loader on the mirrored content, like the Accepted condition
// (status.h). Pure; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "controller/rule_set_object.h"
#include "policy/public_suffix.h"

namespace controller {

struct WorldAccess {
  std::vector<std::string> targets;  // canonical "*:PORT" in force, in spec order, unique
};

// The world-access targets in force in the manifest `content`
// (manifestContent(object)); none when the rule set is not loaded at all.
WorldAccess worldAccessOf(const std::string& content, const std::string& sourceName,
                          const policy::PublicSuffixList& suffixes);

// `patch` (statusPatch()'s result) with the WorldAccess condition set, or a
// patch of the conditions alone when only this condition changed; nullopt
// when neither changed. lastTransitionTime changes only when the condition's
// status flips; other conditions are kept (a merge patch replaces the list).
std::optional<nlohmann::json> withWorldAccessCondition(std::optional<nlohmann::json> patch,
                                                       const RuleSetObject& object, const WorldAccess& world,
                                                       std::string_view now);

}  // namespace controller

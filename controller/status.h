// What the controller reports in EgressRuleSet status, decided purely from
// the object and egressd's own loader (policy::RulesLoader on exactly the
// content written to the rules dir, the code path of egressd and lint), so
// Accepted=True means egressd enforces every target, and Accepted=False
// carries egressd's refusal reasons: either some targets are refused (the
// others are in force, status.targetsInForce counts them) or the document
// cannot be read as a rule set at all (egressd keeps its last good
// version, if it had one).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "controller/rule_set_object.h"
#include "policy/public_suffix.h"

namespace controller {

struct Validation {
  bool accepted = false;
  size_t targetCount = 0;                // entries of spec.targets
  std::optional<size_t> targetsInForce;  // unset when the document cannot be read as a rule set
  // "Valid"; "InvalidTargets" (some targets refused, the others in force);
  // "InvalidRuleSet" (nothing of it can be read as a rule set).
  std::string reason;
  std::string message;  // human-readable; the loader's messages when refused
};

// Validates the manifest `content` (manifestContent(object)).
Validation validateManifest(const std::string& content, const std::string& sourceName,
                            const policy::PublicSuffixList& suffixes);

// The merge-patch body for the status subresource, or nullopt when the
// object's status already says the same (so a controller restart or a
// status echo writes nothing). `now` is RFC 3339; lastTransitionTime only
// changes when the condition's status does. Other conditions are kept.
std::optional<nlohmann::json> statusPatch(const RuleSetObject& object, const Validation& validation,
                                          std::string_view now);

// Wall-clock time as RFC 3339 with microseconds (metav1.MicroTime) or
// seconds (metav1.Time).
std::string rfc3339Now(bool micro);

}  // namespace controller

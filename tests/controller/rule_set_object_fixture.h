// A RuleSetObject as the API server would hand it to the controller, for
// the status and WorldAccess tests: namespace team-a, resourceVersion 5.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "controller/rule_set_object.h"

namespace controller_test {

inline controller::RuleSetObject ruleSetObject(const std::string& name, const nlohmann::json& targets,
                                               int64_t generation, const nlohmann::json& status = nullptr) {
  controller::RuleSetObject o;
  o.ns = "team-a";
  o.name = name;
  o.generation = generation;
  o.resourceVersion = "5";
  o.spec = {{"targets", targets}};
  o.status = status;
  return o;
}

}  // namespace controller_test

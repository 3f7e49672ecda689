// An EgressRuleSet as loaded from a manifest, and the problems found while
// loading it. A rule set with any error is invalid as a whole and never
// affects the others.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "policy/target.h"

namespace policy {

enum class Severity : uint8_t { Error, Warning };

struct Problem {
  Severity severity = Severity::Error;
  std::string file;                   // source name, e.g. a path
  int document = 0;                   // 1-based document index in the file, 0 = whole file
  std::optional<size_t> targetIndex;  // 0-based index in spec.targets
  std::string target;                 // the target text as written
  std::string ruleSet;                // "namespace/name" when known
  std::string message;

  // "file: document 2 (default/my-app) target[1] \"x\": message"
  std::string toString() const;
  friend bool operator==(const Problem&, const Problem&) = default;
};

struct RuleSet {
  std::string ns;       // metadata.namespace, "default" when absent
  std::string name;     // metadata.name
  std::string source;   // "path#document"
  bool system = false;  // from a system (bootstrap) rules directory
  std::vector<Target> targets;
  std::vector<std::string> targetTexts;  // as written, same order as targets

  std::string id() const { return ns + "/" + name; }
  friend bool operator==(const RuleSet&, const RuleSet&) = default;
};

}  // namespace policy

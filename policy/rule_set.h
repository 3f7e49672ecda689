// An EgressRuleSet as loaded from a manifest, and the problems found while
// loading it.
//
// A refused target never takes the rule set's valid targets with it
// (docs/rules.md, "Union and provenance"): a rule set whose document could
// be read is in force with the targets that are valid, and lists the
// refused ones in `refused` so that lint, egressd's log, its metrics and
// the controller's status all name them. Only a document that cannot be
// read as a rule set at all (broken YAML, wrong apiVersion or kind, bad
// metadata, no spec.targets list) is refused as a whole.
#pragma once

#include <cstddef>
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
  // Where in the file, when the loader knows it (YAML syntax errors):
  // 1-based line and column, and that line's text for a caret display.
  size_t line = 0;
  size_t column = 0;
  std::string sourceLine;

  // One line: "file: document 2 (default/my-app): target[1] \"x\": error: message",
  // or "file:LINE:COL: error: message" when the position is known.
  std::string toString() const;
  // The offending line and a caret under the column ("    - *:80\n      ^\n"),
  // empty when the position is unknown. For terminals, after toString().
  std::string excerpt() const;
  friend bool operator==(const Problem&, const Problem&) = default;
};

// A target of spec.targets that is not in force, and why.
struct RefusedTarget {
  size_t index = 0;    // 0-based index in spec.targets
  std::string text;    // as written
  std::string reason;  // the loader's message
  friend bool operator==(const RefusedTarget&, const RefusedTarget&) = default;
};

struct RuleSet {
  std::string ns;                        // metadata.namespace, "default" when absent
  std::string name;                      // metadata.name
  std::string source;                    // "path#document"
  bool system = false;                   // from a system (bootstrap) rules directory
  std::vector<Target> targets;           // the targets in force (valid, duplicates merged)
  std::vector<std::string> targetTexts;  // as written, same order as targets
  std::vector<RefusedTarget> refused;    // targets of spec.targets that are not in force

  std::string id() const { return ns + "/" + name; }
  friend bool operator==(const RuleSet&, const RuleSet&) = default;
};

}  // namespace policy

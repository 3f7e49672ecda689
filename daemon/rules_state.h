// The rule sets of the rules directories, re-read on every change.
//
// Fail closed, but never lose a rule to a half-written file: a file that
// cannot be loaded as a whole (unreadable, too large, a YAML syntax error)
// keeps the rule sets of its last good version, and says so. A rule set
// that loads but is invalid is dropped whole; a deleted file takes its rule
// sets with it.
//
// Thread-safety: one owner (the daemon's event loop).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "policy/manifest.h"

namespace daemon_main {

struct RulesReload {
  std::vector<policy::RuleSet> ruleSets;  // valid ones, in dir then file order
  std::vector<policy::Problem> problems;  // errors and warnings of this pass
  std::vector<std::string> keptLastGood;  // files whose last good version stays in force
  size_t files = 0;
  size_t rejectedRuleSets = 0;
};

class RulesState {
 public:
  RulesReload reload(const std::vector<std::string>& dirs, const std::vector<std::string>& systemDirs,
                     const policy::PublicSuffixList& suffixes);

 private:
  std::map<std::string, std::vector<policy::RuleSet>> lastGood_;  // file path → its valid rule sets
};

// True when a load failed for the file as a whole (document 0 errors).
bool failedAsWhole(const policy::ManifestLoad& load);

}  // namespace daemon_main

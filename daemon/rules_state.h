// The rule sets of the rules directories, re-read on every change, and
// what changed since the last pass (for egressd's log).
//
// Fail closed, but never lose a rule to a half-written file
// (policy::RulesLoader): a file that cannot be read as a whole keeps the
// rule sets of its last good version, a document that cannot be read as a
// rule set keeps its own, a file still open for writing is not read at all.
// A refused target costs only itself: the rule set's valid targets stay in
// force. A deleted or intentionally emptied file takes its rule sets with
// it, and the log names them.
//
// Thread-safety: one owner (the daemon's event loop).
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "policy/manifest.h"
#include "policy/policy.h"

namespace daemon_main {

// Rule sets by id ("namespace/name"), between two passes.
struct RuleSetChanges {
  std::vector<std::string> added;
  std::vector<std::string> removed;
  std::vector<std::string> changed;
  bool empty() const { return added.empty() && removed.empty() && changed.empty(); }
};

RuleSetChanges diffRuleSets(const std::vector<policy::RuleSet>& before,
                            const std::vector<policy::RuleSet>& after);

// "a, b, c and 7 more": at most `limit` names, so a log line stays bounded.
std::string boundedList(const std::vector<std::string>& names, size_t limit = 10);

struct RulesReload : policy::RulesLoad {
  RuleSetChanges changes;                    // against the previous pass
  std::vector<policy::Problem> newProblems;  // problems the previous pass did not report
  // Files that were in force last pass and are gone (deleted or renamed
  // away), with the rule sets they took with them.
  std::vector<std::pair<std::string, std::vector<std::string>>> removedFiles;
  bool skippedChanged = false;  // the list of skipped directory entries differs from the last pass
};

class RulesState {
 public:
  // `beingWritten(path)`: the file is open for writing (from the watcher);
  // its last good version stays and it is read once it is closed.
  RulesReload reload(const std::vector<std::string>& dirs, const std::vector<std::string>& systemDirs,
                     const policy::PublicSuffixList& suffixes,
                     const std::function<bool(const std::string&)>& beingWritten = {});

 private:
  std::map<std::string, std::vector<policy::RuleSet>> lastGood_;  // file path → its rule sets in force
  std::vector<policy::RuleSet> previous_;
  std::set<std::string> reported_;  // problems of the previous pass, as logged
  std::vector<std::string> skipped_;
};

// The log lines of one pass: each new problem (`rules.problem`, with the
// target and rule set as fields), each rule set with refused targets
// (`rules.targets_refused`), removed files (`rules.file_removed`), skipped
// directory entries (debug), and `policy.loaded` (when `published`) or
// `policy.kept` naming what was added, removed, changed and refused.
void logRulesReload(const RulesReload& reload, bool published, uint64_t generation,
                    const policy::Policy& current);

}  // namespace daemon_main

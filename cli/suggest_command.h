// `egressctl suggest`: proposed EgressRuleSets from observed decisions,
// listening to the running egressd for a while (--for 10m) or reading a
// file saved by `egressctl watch --json` (--from FILE, - for stdin). The
// logic is suggest/ (pure); this file does the I/O: the watch stream with
// progress on stderr, the file, and the rules in force (from egressd or
// --rules-dir).
#pragma once

#include <cstddef>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "policy/rule_set.h"

namespace cli {

struct SuggestOptions {
  std::string socket;
  std::string from;                    // a watch --json file, "-" for stdin; empty: listen
  std::string forDuration;             // "10m": listen this long
  std::vector<std::string> rulesDirs;  // the rules in force, offline
  bool all = false;
  std::string per = "namespace";  // or "workload"
  size_t wildcardMin = 3;
  std::string unattributedNamespace = "default";
  std::string namePrefix = "suggested";
};

// The rule sets of the control protocol's `rules` object
// (docs/control-protocol.md), targets parsed again; nullopt with `error`
// when the object is not one.
std::optional<std::vector<policy::RuleSet>> ruleSetsFromRulesJson(const nlohmann::json& rules,
                                                                  std::string& error);

// Exit code: 0 done, 1 egressd or the input failed, 2 usage error.
int runSuggest(const SuggestOptions& options, std::istream& in, std::ostream& out, std::ostream& err);

}  // namespace cli

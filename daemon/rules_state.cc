#include "daemon/rules_state.h"

#include <algorithm>
#include <filesystem>

namespace daemon_main {

bool failedAsWhole(const policy::ManifestLoad& load) {
  return std::any_of(load.problems.begin(), load.problems.end(), [](const policy::Problem& p) {
    return p.severity == policy::Severity::Error && p.document == 0;
  });
}

RulesReload RulesState::reload(const std::vector<std::string>& dirs,
                               const std::vector<std::string>& systemDirs,
                               const policy::PublicSuffixList& suffixes) {
  RulesReload out;
  std::map<std::string, std::vector<policy::RuleSet>> seen;
  policy::RuleSetIds ids;
  for (const std::string& dir : dirs) {
    const bool system = std::find(systemDirs.begin(), systemDirs.end(), dir) != systemDirs.end();
    for (const std::string& file : policy::listManifestFiles(dir, out.problems)) {
      ++out.files;
      policy::ManifestLoad load = policy::loadManifestFile(file, suffixes, system);
      std::error_code ec;
      if (failedAsWhole(load) && !std::filesystem::exists(file, ec)) continue;  // deleted while we listed
      for (auto& problem : load.problems) out.problems.push_back(problem);
      out.rejectedRuleSets += load.rejected.size();
      std::vector<policy::RuleSet> valid = std::move(load.valid);
      if (failedAsWhole(load)) {
        const auto last = lastGood_.find(file);
        if (last == lastGood_.end()) continue;  // never loaded: nothing to keep
        valid = last->second;
        out.keptLastGood.push_back(file);
        policy::Problem note;
        note.severity = policy::Severity::Warning;
        note.file = file;
        note.message = "keeping the last good version of this file (" + std::to_string(valid.size()) +
                       " rule sets) until it loads again";
        out.problems.push_back(std::move(note));
      }
      for (const auto& ruleSet : valid) {
        ids.note(ruleSet, file, out.problems);
        out.ruleSets.push_back(ruleSet);
      }
      seen[file] = std::move(valid);
    }
  }
  lastGood_ = std::move(seen);  // files that disappeared are forgotten with their rules
  return out;
}

}  // namespace daemon_main

#include "daemon/rules_state.h"

#include <algorithm>
#include <filesystem>
#include <set>

namespace daemon_main {

bool failedAsWhole(const policy::ManifestLoad& load) {
  return std::any_of(load.problems.begin(), load.problems.end(), [](const policy::Problem& p) {
    return p.severity == policy::Severity::Error && p.document == 0;
  });
}

namespace {

std::vector<std::string> manifestFiles(const std::string& dir, std::vector<policy::Problem>& problems) {
  std::vector<std::string> files;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code typeError;
    if (policy::isManifestFileName(it->path().filename().string()) &&
        std::filesystem::is_regular_file(it->path(), typeError)) {
      files.push_back(it->path().string());
    }
  }
  if (ec) {
    policy::Problem problem;
    problem.severity = policy::Severity::Warning;
    problem.file = dir;
    problem.message =
        ec == std::errc::no_such_file_or_directory
            ? "rules directory does not exist (yet); watching for it, nothing from it is allowed"
            : "rules directory cannot be read: " + ec.message();
    problems.push_back(std::move(problem));
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

RulesReload RulesState::reload(const std::vector<std::string>& dirs,
                               const std::vector<std::string>& systemDirs,
                               const policy::PublicSuffixList& suffixes) {
  RulesReload out;
  std::map<std::string, std::vector<policy::RuleSet>> seen;
  std::map<std::string, std::string> firstSource;
  for (const std::string& dir : dirs) {
    const bool system = std::find(systemDirs.begin(), systemDirs.end(), dir) != systemDirs.end();
    for (const std::string& file : manifestFiles(dir, out.problems)) {
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
        const auto [it, inserted] = firstSource.emplace(ruleSet.id(), ruleSet.source);
        if (!inserted) {
          policy::Problem problem;
          problem.severity = policy::Severity::Warning;
          problem.file = file;
          problem.ruleSet = ruleSet.id();
          problem.message = "rule set " + ruleSet.id() + " is also defined in " + it->second + "; both apply";
          out.problems.push_back(std::move(problem));
        }
        out.ruleSets.push_back(ruleSet);
      }
      seen[file] = std::move(valid);
    }
  }
  lastGood_ = std::move(seen);  // files that disappeared are forgotten with their rules
  return out;
}

}  // namespace daemon_main

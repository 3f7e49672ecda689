#include "daemon/rules_state.h"

#include <algorithm>

#include "common/log.h"

namespace daemon_main {

namespace {

std::map<std::string, std::vector<const policy::RuleSet*>> byId(const std::vector<policy::RuleSet>& sets) {
  std::map<std::string, std::vector<const policy::RuleSet*>> out;
  for (const policy::RuleSet& ruleSet : sets) out[ruleSet.id()].push_back(&ruleSet);
  return out;
}

bool sameGroup(const std::vector<const policy::RuleSet*>& a, const std::vector<const policy::RuleSet*>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!(*a[i] == *b[i])) return false;
  }
  return true;
}

}  // namespace

RuleSetChanges diffRuleSets(const std::vector<policy::RuleSet>& before,
                            const std::vector<policy::RuleSet>& after) {
  RuleSetChanges changes;
  const auto old = byId(before);
  const auto now = byId(after);
  for (const auto& [id, sets] : now) {
    const auto it = old.find(id);
    if (it == old.end()) {
      changes.added.push_back(id);
    } else if (!sameGroup(it->second, sets)) {
      changes.changed.push_back(id);
    }
  }
  for (const auto& [id, sets] : old) {
    if (now.find(id) == now.end()) changes.removed.push_back(id);
  }
  return changes;
}

std::string boundedList(const std::vector<std::string>& names, size_t limit) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < limit; ++i) {
    if (i > 0) out += ',';
    out += names[i];
  }
  if (names.size() > limit) out += " and " + std::to_string(names.size() - limit) + " more";
  return out;
}

RulesReload RulesState::reload(const std::vector<std::string>& dirs,
                               const std::vector<std::string>& systemDirs,
                               const policy::PublicSuffixList& suffixes,
                               const std::function<bool(const std::string&)>& beingWritten) {
  policy::RulesLoader loader(suffixes, &lastGood_, beingWritten);
  for (const std::string& dir : dirs) {
    loader.addDirectory(dir, std::find(systemDirs.begin(), systemDirs.end(), dir) != systemDirs.end());
  }
  RulesReload out;
  static_cast<policy::RulesLoad&>(out) = std::move(loader).finish();
  out.changes = diffRuleSets(previous_, out.ruleSets);

  std::set<std::string> reported;
  for (const policy::Problem& problem : out.problems) {
    std::string key = problem.toString();
    if (reported_.count(key) == 0) out.newProblems.push_back(problem);
    reported.insert(std::move(key));
  }
  reported_ = std::move(reported);

  for (const auto& [file, sets] : lastGood_) {
    if (sets.empty() || out.byFile.count(file) != 0) continue;
    std::vector<std::string> ids;
    ids.reserve(sets.size());
    for (const policy::RuleSet& ruleSet : sets) ids.push_back(ruleSet.id());
    out.removedFiles.emplace_back(file, std::move(ids));
  }
  out.skippedChanged = out.skipped != skipped_;
  skipped_ = out.skipped;
  lastGood_ = out.byFile;  // files that disappeared are forgotten with their rules
  previous_ = out.ruleSets;
  return out;
}

void logRulesReload(const RulesReload& reload, bool published, uint64_t generation,
                    const policy::Policy& current) {
  for (const policy::Problem& problem : reload.newProblems) {
    common::LogLine line(
        problem.severity == policy::Severity::Error ? common::LogLevel::Warn : common::LogLevel::Info,
        "rules.problem");
    line.field("file", problem.file);
    if (problem.line > 0) line.field("line", problem.line).field("column", problem.column);
    if (problem.document > 0) line.field("document", problem.document);
    if (!problem.ruleSet.empty()) line.field("ruleset", problem.ruleSet);
    if (problem.targetIndex) line.field("target_index", *problem.targetIndex).field("target", problem.target);
    line.field("severity", problem.severity == policy::Severity::Error ? "error" : "warning")
        .field("problem", problem.toString());
  }
  // One line per rule set whose refused targets changed: which targets are
  // not in force, and how many are.
  std::set<std::string> touched(reload.changes.added.begin(), reload.changes.added.end());
  touched.insert(reload.changes.changed.begin(), reload.changes.changed.end());
  for (const policy::RuleSet& ruleSet : reload.ruleSets) {
    if (ruleSet.refused.empty() || touched.count(ruleSet.id()) == 0) continue;
    std::vector<std::string> refused;
    std::vector<std::string> reasons;
    for (const policy::RefusedTarget& target : ruleSet.refused) {
      refused.push_back(target.text.empty() ? "target[" + std::to_string(target.index) + "]" : target.text);
      reasons.push_back("target[" + std::to_string(target.index) + "]: " + target.reason);
    }
    common::LogLine(common::LogLevel::Warn, "rules.targets_refused")
        .field("ruleset", ruleSet.id())
        .field("source", ruleSet.source)
        .field("in_force", ruleSet.targets.size())
        .field("refused", ruleSet.refused.size())
        .field("targets", boundedList(refused))
        .field("reasons", boundedList(reasons, 3));
  }
  for (const auto& [file, ids] : reload.removedFiles) {
    common::LogLine(common::LogLevel::Info, "rules.file_removed")
        .field("file", file)
        .field("rulesets", boundedList(ids));
  }
  for (const std::string& file : reload.deferred) {
    common::LogLine(common::LogLevel::Info, "rules.file_deferred")
        .field("file", file)
        .field("reason", "open for writing; its last good version stays until it is closed");
  }
  if (reload.skippedChanged) {
    for (const std::string& path : reload.skipped) {
      common::LogLine(common::LogLevel::Debug, "rules.skipped_file")
          .field("path", path)
          .field("reason", "not a *.yaml, *.yml or *.json file");
    }
  }

  std::vector<std::string> partial;
  for (const policy::RuleSet& ruleSet : reload.ruleSets) {
    if (!ruleSet.refused.empty()) partial.push_back(ruleSet.id());
  }
  common::LogLine line(common::LogLevel::Info, published ? "policy.loaded" : "policy.kept");
  line.field("generation", generation)
      .field("files", reload.files)
      .field("rulesets", current.ruleSets().size())
      .field("targets", current.targetCount());
  if (!reload.changes.added.empty()) line.field("added", boundedList(reload.changes.added));
  if (!reload.changes.removed.empty()) line.field("removed", boundedList(reload.changes.removed));
  if (!reload.changes.changed.empty()) line.field("changed", boundedList(reload.changes.changed));
  line.field("rejected", reload.rejectedRuleSets);
  if (!reload.rejected.empty()) line.field("rejected_rulesets", boundedList(reload.rejected));
  line.field("refused_targets", reload.refusedTargets);
  if (!partial.empty()) line.field("partial_rulesets", boundedList(partial));
  line.field("kept_last_good", reload.keptLastGood.size());
  if (!reload.keptLastGood.empty()) line.field("kept_files", boundedList(reload.keptLastGood));
  if (!reload.deferred.empty()) line.field("deferred", reload.deferred.size());
  line.field("skipped_files", reload.skipped.size());
}

}  // namespace daemon_main

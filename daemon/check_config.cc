#include "daemon/check_config.h"

#include <ostream>

#include "config/load.h"
#include "daemon/rules_state.h"
#include "policy/policy.h"

namespace daemon_main {

int runCheckConfig(const std::string& path, std::ostream& out) {
  const config::ConfigLoad loaded = config::loadConfigFile(path);
  if (!loaded.ok()) {
    for (const auto& problem : loaded.problems) out << problem.toString() << '\n';
    out << path << ": " << loaded.problems.size() << (loaded.problems.size() == 1 ? " problem" : " problems")
        << ", configuration NOT valid\n";
    return 1;
  }
  const config::Config& cfg = *loaded.config;
  // Valid but probably not meant (a documentation address as resolver):
  // said, never fatal.
  for (const auto& warning : loaded.warnings) out << warning.toString() << '\n';
  RulesState rules;
  const RulesReload reload =
      rules.reload(cfg.rules.dirs, cfg.rules.systemDirs, policy::defaultPublicSuffixList());
  size_t ruleErrors = 0;
  for (const auto& problem : reload.problems) {
    out << problem.toString() << '\n';
    if (problem.severity == policy::Severity::Error) ++ruleErrors;
  }
  const auto compiled = policy::Policy::compile(reload.ruleSets);
  out << path << ": configuration valid (mode " << config::toString(cfg.mode) << "); rules: " << reload.files
      << " files, " << compiled->ruleSets().size() << " rule sets in force, " << compiled->targetCount()
      << " targets";
  if (reload.rejectedRuleSets > 0 || ruleErrors > 0) {
    out << ", " << reload.rejectedRuleSets << " rule sets rejected (" << ruleErrors
        << " errors; egressd skips them)";
  }
  out << '\n';
  return 0;
}

}  // namespace daemon_main

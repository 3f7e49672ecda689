#include "daemon/check_config.h"

#include <filesystem>
#include <ostream>

#include "config/load.h"
#include "policy/manifest.h"
#include "policy/policy.h"

namespace daemon_main {

namespace {

const char* plural(size_t n, const char* one, const char* many) {
  return n == 1 ? one : many;
}

}  // namespace

int runCheckConfig(const std::string& path, std::ostream& out, bool strict) {
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
  size_t notDirectories = 0;
  for (const std::string& dir : cfg.rules.dirs) {
    std::error_code ec;
    if (std::filesystem::exists(dir, ec) && !std::filesystem::is_directory(dir, ec)) ++notDirectories;
  }
  const policy::RulesLoad rules =
      policy::loadRulesDirectories(cfg.rules.dirs, policy::defaultPublicSuffixList(), cfg.rules.systemDirs);
  for (const auto& problem : rules.problems) out << problem.toString() << '\n' << problem.excerpt();
  const auto compiled = policy::Policy::compile(rules.ruleSets);
  const size_t errors = rules.errors();
  if (notDirectories > 0) {
    out << path << ": rules.dirs: " << notDirectories << plural(notDirectories, " entry is", " entries are")
        << " not a directory, configuration NOT valid\n";
    return 1;
  }
  out << path << ": configuration valid (mode " << config::toString(cfg.mode) << "); rules: " << rules.files
      << plural(rules.files, " file, ", " files, ") << compiled->ruleSets().size()
      << plural(compiled->ruleSets().size(), " rule set", " rule sets") << " in force, "
      << compiled->targetCount() << plural(compiled->targetCount(), " target", " targets");
  if (errors > 0) {
    out << "; NOT in force: " << rules.rejectedRuleSets
        << plural(rules.rejectedRuleSets, " rule set", " rule sets") << ", " << rules.refusedTargets
        << plural(rules.refusedTargets, " target", " targets") << " (" << errors
        << plural(errors, " error", " errors")
        << (strict ? "; --strict: failing)" : "; egressd runs without them, --strict makes this exit 1)");
  }
  out << '\n';
  return strict && errors > 0 ? 1 : 0;
}

}  // namespace daemon_main

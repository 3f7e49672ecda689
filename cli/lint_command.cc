#include "cli/lint_command.h"

#include <filesystem>
#include <iostream>
#include <iterator>

#include "policy/manifest.h"

namespace cli {

namespace {

std::string count(size_t n, const char* one, const char* many) {
  return std::to_string(n) + (n == 1 ? one : many);
}

}  // namespace

int runLint(const LintOptions& options, std::istream& in, std::ostream& out) {
  policy::RulesLoader loader(policy::defaultPublicSuffixList());
  size_t emptyDirs = 0;
  std::vector<std::string> emptyDirNames;
  for (const std::string& path : options.paths) {
    if (path == "-") {
      const std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      loader.addContent(content, "<stdin>");
      continue;
    }
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
      std::vector<policy::Problem> ignored;
      if (policy::listRulesDirectory(path, ignored).files.empty()) {
        ++emptyDirs;
        emptyDirNames.push_back(path);
      }
      loader.addDirectory(path);
      continue;
    }
    loader.addFile(path);
  }
  const policy::RulesLoad load = std::move(loader).finish();

  for (const auto& problem : load.problems) out << problem.toString() << '\n' << problem.excerpt();
  for (const auto& dir : emptyDirNames) out << dir << ": warning: no *.yaml, *.yml or *.json files\n";
  if (!load.skipped.empty() && !options.quiet) {
    out << "lint: skipped " << count(load.skipped.size(), " entry", " entries")
        << " (not *.yaml, *.yml or *.json files):";
    for (size_t i = 0; i < load.skipped.size() && i < 10; ++i) out << ' ' << load.skipped[i];
    if (load.skipped.size() > 10) out << " and " << load.skipped.size() - 10 << " more";
    out << '\n';
  }
  // An empty input (a `helm template | egressctl lint -` that rendered
  // nothing, a file of other kinds) has nothing wrong in it, and nothing
  // checked either: said, so that a CI step cannot pass on it unseen.
  const bool nothingChecked =
      load.ruleSets.empty() && load.rejectedRuleSets == 0 && load.errors() == 0 && emptyDirs == 0;
  if (nothingChecked) out << "lint: warning: no EgressRuleSet in the input; nothing was checked\n";
  const size_t errors = load.errors();
  const size_t warnings = load.warnings() + emptyDirs + (nothingChecked ? 1 : 0);
  if (!options.quiet) {
    out << "lint: " << count(load.files, " file, ", " files, ")
        << count(load.ruleSets.size() + load.rejectedRuleSets, " rule set, ", " rule sets, ")
        << count(load.targetsInForce(), " target in force, ", " targets in force, ")
        << count(errors, " error, ", " errors, ") << count(warnings, " warning", " warnings");
    if (load.rejectedRuleSets > 0 || load.refusedTargets > 0) {
      out << "; not in force: " << count(load.rejectedRuleSets, " rule set", " rule sets") << ", "
          << count(load.refusedTargets, " target", " targets");
    }
    out << '\n';
  }
  if (errors > 0) return 1;
  if (options.warningsAsErrors && warnings > 0) return 1;
  return 0;
}

}  // namespace cli

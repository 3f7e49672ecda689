#include "cli/lint_command.h"

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <iterator>

#include "policy/manifest.h"

namespace cli {

int runLint(const LintOptions& options, std::istream& in, std::ostream& out) {
  const auto& suffixes = policy::defaultPublicSuffixList();
  size_t errors = 0;
  size_t warnings = 0;
  size_t ruleSets = 0;
  size_t targets = 0;
  size_t files = 0;

  auto report = [&](const policy::ManifestLoad& load) {
    for (const auto& problem : load.problems) {
      out << problem.toString() << '\n';
      (problem.severity == policy::Severity::Error ? errors : warnings) += 1;
    }
    ruleSets += load.valid.size() + load.rejected.size();
    for (const auto& set : load.valid) targets += set.targets.size();
  };

  for (const std::string& path : options.paths) {
    if (path == "-") {
      const std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      report(policy::loadManifest(content, "<stdin>", suffixes));
      ++files;
      continue;
    }
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
      std::vector<policy::Problem> listing;
      const std::vector<std::string> entries = policy::listManifestFiles(path, listing);
      for (const auto& problem : listing) out << problem.toString() << '\n';
      warnings += listing.size();
      if (entries.empty() && listing.empty()) {
        out << path << ": warning: no *.yaml, *.yml or *.json files\n";
        ++warnings;
      }
      for (const auto& file : entries) {
        report(policy::loadManifestFile(file, suffixes));
        ++files;
      }
      continue;
    }
    report(policy::loadManifestFile(path, suffixes));
    ++files;
  }

  if (!options.quiet) {
    out << "lint: " << files << (files == 1 ? " file, " : " files, ") << ruleSets
        << (ruleSets == 1 ? " rule set, " : " rule sets, ") << targets
        << (targets == 1 ? " valid target, " : " valid targets, ") << errors
        << (errors == 1 ? " error, " : " errors, ") << warnings << (warnings == 1 ? " warning" : " warnings")
        << '\n';
  }
  if (errors > 0) return 1;
  if (options.warningsAsErrors && warnings > 0) return 1;
  return 0;
}

}  // namespace cli

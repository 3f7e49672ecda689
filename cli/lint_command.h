// `egressctl lint FILE|DIR|- ...`: validates EgressRuleSet manifests offline,
// exactly as egressd and the controller would load them.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace cli {

struct LintOptions {
  std::vector<std::string> paths;  // files, directories, or "-" for stdin
  bool warningsAsErrors = false;
  bool quiet = false;  // only problems, no summary
};

// Returns the exit code: 0 valid, 1 errors (or warnings with
// warningsAsErrors). Problems go to `out`, one line each.
int runLint(const LintOptions& options, std::istream& in, std::ostream& out);

}  // namespace cli

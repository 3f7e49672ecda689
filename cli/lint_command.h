// `egressctl lint FILE|DIR|- ...`: validates EgressRuleSet manifests offline,
// exactly as egressd and the controller load them (policy::RulesLoader, the
// same code path): refused targets are errors and the rule set's other
// targets stay in force ("these targets will not be in force; the other N
// will"), a document that cannot be read is an error, two definitions of
// one rule set are a warning.
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
// warningsAsErrors). Problems go to `out`: one line each, plus the
// offending source line and a caret when the position is known.
int runLint(const LintOptions& options, std::istream& in, std::ostream& out);

}  // namespace cli

// `egressd --check-config --config FILE [--strict]`: validates the
// configuration and reports every problem; also loads the rules
// directories it names, through the same loader as egressd and `egressctl
// lint`, and reports their problems.
//
// Exit status: 1 when the configuration is invalid or a rules.dirs entry
// exists but is not a directory. Refused rule sets and targets are errors
// too, but egressd runs without them (the rest stays in force), so they
// fail the check only with `strict` (for CI); without it they are listed
// and counted.
#pragma once

#include <iosfwd>
#include <string>

namespace daemon_main {

// Returns 0 when the configuration is valid (and, with `strict`, every
// rule set and target is in force), 1 otherwise.
int runCheckConfig(const std::string& path, std::ostream& out, bool strict = false);

}  // namespace daemon_main

// `egressd --check-config --config FILE`: validates the configuration and
// reports every problem; also loads the rules directories it names and
// reports their problems (broken rule files are warnings: egressd skips
// them at run time rather than refusing to start).
#pragma once

#include <iosfwd>
#include <string>

namespace daemon_main {

// Returns 0 when the configuration is valid, 1 otherwise.
int runCheckConfig(const std::string& path, std::ostream& out);

}  // namespace daemon_main

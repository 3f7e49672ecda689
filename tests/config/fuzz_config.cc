// Arbitrary bytes as egressd.toml: loading must never crash, throw or hang,
// and its invariants hold (a config only without problems; a loaded config
// validates and is its own restart-only baseline).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "config/load.h"

// libFuzzer's fixed entry point name.
// NOLINTNEXTLINE(readability-identifier-naming)
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > config::kMaxConfigBytes) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const config::ConfigLoad result = config::loadConfigText(text, "fuzz.toml", "/base");
  if (result.config.has_value() != result.problems.empty()) std::abort();
  for (const config::ConfigProblem& problem : result.problems) {
    if (problem.toString().empty()) std::abort();
  }
  if (result.config) {
    if (!config::validate(*result.config).empty()) std::abort();
    if (!config::restartOnlyChanges(*result.config, *result.config).empty()) std::abort();
    const config::Config defaults;
    const config::Config applied = config::withRestartOnlyFrom(*result.config, defaults);
    if (!config::restartOnlyChanges(applied, defaults).empty()) std::abort();
  }
  return 0;
}

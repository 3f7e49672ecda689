// Loading egressd.toml: TOML syntax (toml++), key types, value formats and
// ranges, unknown keys, then config::validate(). Every problem is reported at
// once, each with its key path and, where known, line and column.
//
// dns.upstreams_from names a resolv.conf, which is read while loading (the
// only file besides the config itself).
//
// Relative paths (rules.dirs, rules.system_dirs, control.socket) are resolved
// against the directory of the config file, like nginx's include, so a config
// means the same whatever the daemon's working directory is.
//
// Never throws for bad input (toml++ exceptions are caught inside); only
// std::bad_alloc can escape. Thread-safe: no shared state.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace config {

// Config files are small; anything larger is a mistake (or not a config).
inline constexpr size_t kMaxConfigBytes = 1 << 20;

struct ConfigLoad {
  std::optional<Config> config;  // set only when `problems` is empty
  std::vector<ConfigProblem> problems;
  // With a config: config::warnings(), with positions. Never fatal.
  std::vector<ConfigProblem> warnings;

  bool ok() const noexcept { return config.has_value(); }
};

// Reads `path` (at most kMaxConfigBytes), parses and validates it. Relative
// paths inside are resolved against the file's directory (made absolute).
ConfigLoad loadConfigFile(const std::string& path);

// Parses and validates `text`; `sourceName` names it in problems. Relative
// paths inside are resolved against `baseDirectory`; when that is empty they
// are resolved against the directory part of `sourceName` (possibly left
// relative if that has none).
ConfigLoad loadConfigText(std::string_view text, const std::string& sourceName,
                          const std::string& baseDirectory = {});

}  // namespace config

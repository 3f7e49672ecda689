// Durations in configuration are strings with a unit: "250ms", "5s", "5m",
// "1h", or a sum such as "1m30s" (units from the largest down, each once:
// "5m5m" and "30s1m" are refused as typos). A bare number is refused
// (ambiguous).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace common {

using Duration = std::chrono::milliseconds;

std::optional<Duration> parseDuration(std::string_view text) noexcept;
std::string formatDuration(Duration duration);

}  // namespace common

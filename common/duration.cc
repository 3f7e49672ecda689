#include "common/duration.h"

#include <cstdint>

namespace common {

std::optional<Duration> parseDuration(std::string_view text) noexcept {
  if (text.empty()) return std::nullopt;
  int64_t totalMs = 0;
  int64_t previousFactor = INT64_MAX;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    int64_t value = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      value = value * 10 + (text[i] - '0');
      if (value > 1'000'000'000) return std::nullopt;
      ++i;
    }
    const size_t unitStart = i;
    while (i < text.size() && text[i] >= 'a' && text[i] <= 'z') ++i;
    const std::string_view unit = text.substr(unitStart, i - unitStart);
    int64_t factor = 0;
    if (unit == "ms") {
      factor = 1;
    } else if (unit == "s") {
      factor = 1000;
    } else if (unit == "m") {
      factor = 60'000;
    } else if (unit == "h") {
      factor = 3'600'000;
    } else if (unit == "d") {
      factor = 86'400'000;
    } else {
      return std::nullopt;  // includes a missing unit
    }
    // Largest unit first, each once: "5m5m" or "30s1m" is a typo, not a sum.
    if (factor >= previousFactor) return std::nullopt;
    previousFactor = factor;
    totalMs += value * factor;
    if (totalMs > int64_t{365} * 86'400'000) return std::nullopt;
  }
  return Duration(totalMs);
}

std::string formatDuration(Duration duration) {
  const int64_t ms = duration.count();
  if (ms % 3'600'000 == 0 && ms != 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0 && ms != 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace common

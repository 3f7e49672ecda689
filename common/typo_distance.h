// How far a word is from a known one, for "did you mean ...?" in every
// component that names a misspelt key, field or keyword (config, rule
// manifests, watch filters). Not for the packet path: it allocates.
#pragma once

#include <algorithm>
#include <string_view>
#include <vector>

#include "common/strings.h"

namespace common {

// Optimal string alignment distance, ASCII case-insensitive: insertions,
// deletions, substitutions and the swap of two neighbours cost 1 each, so
// "hots", "sepc" and "nmae" are one step from "host", "spec" and "name",
// and "Spec" is none from "spec".
inline size_t typoDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  const auto same = [&](size_t i, size_t j) { return asciiLower(a[i]) == asciiLower(b[j]); };
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (same(i - 1, j - 1) ? 0 : 1)});
      if (i > 1 && j > 1 && same(i - 1, j - 2) && same(i - 2, j - 1)) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace common

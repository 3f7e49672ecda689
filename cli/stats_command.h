// `egressctl stats`: the running egressd's counters, as "name value" lines
// (nested objects flattened with dots) or --json; `--watch[=SECONDS]`
// refreshes until interrupted.
#pragma once

#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>

namespace cli {

struct StatsOptions {
  std::string socket;
  bool json = false;
  double watchSeconds = 0;  // 0: once
  uint64_t iterations = 0;  // with watch: stop after this many (0: never)
};

// "dns.queries 12" lines, in the object's order (pure).
void printStats(const nlohmann::json& stats, std::ostream& out);

int runStats(const StatsOptions& options, std::ostream& out, std::ostream& err);

}  // namespace cli

// `egressctl stats`: the running egressd's counters, grouped by section
// (dns, nfqueue, policy, ...) with aligned values and histograms as a few
// quantiles, or --json (the control protocol's object, for machines);
// `--watch [SECONDS]` refreshes until interrupted.
#pragma once

#include <iosfwd>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace cli {

struct StatsOptions {
  std::string socket;
  bool json = false;
  double watchSeconds = 0;  // 0: once
  uint64_t iterations = 0;  // with watch: stop after this many (0: never)
};

// Human form (pure): "mode enforce, up 2h03m", then one block per
// section, "  queries          12" aligned; lists of queues or rule sets
// per id ("queues[0].packets"); histograms as "count N: p50 …, p90 …,
// p99 …".
void printStats(const nlohmann::json& stats, std::ostream& out);

// The q-quantile of a cumulative histogram, interpolated inside the bucket
// as Prometheus' histogram_quantile() does; +inf when it falls in the +Inf
// bucket; nullopt when empty.
std::optional<double> histogramQuantile(double q, const std::vector<double>& upperBounds,
                                        const std::vector<uint64_t>& cumulative);

int runStats(const StatsOptions& options, std::ostream& out, std::ostream& err);

}  // namespace cli

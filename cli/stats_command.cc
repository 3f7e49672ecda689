#include "cli/stats_command.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <limits>
#include <thread>
#include <utility>
#include <vector>

#include "cli/control_client.h"

namespace cli {

namespace {

using Rows = std::vector<std::pair<std::string, std::string>>;

bool isHistogram(const nlohmann::json& value) {
  return value.is_object() && value.contains("buckets") && value["buckets"].is_array() &&
         value.contains("count");
}

// "0.35 ms", "12 ms", "1.50 s".
std::string humanSeconds(double seconds) {
  char text[32];
  if (seconds < 0.01) {
    std::snprintf(text, sizeof text, "%.2f ms", seconds * 1000);
  } else if (seconds < 1) {
    std::snprintf(text, sizeof text, "%.0f ms", seconds * 1000);
  } else {
    std::snprintf(text, sizeof text, "%.2f s", seconds);
  }
  return text;
}

// "count 120: p50 1.2 ms, p90 3.0 ms, p99 9.8 ms" from cumulative buckets.
std::string histogramLine(const nlohmann::json& histogram) {
  std::vector<std::pair<double, uint64_t>> buckets;  // upper bound (inf for +Inf), cumulative count
  for (const auto& bucket : histogram["buckets"]) {
    if (!bucket.is_object() || !bucket.contains("count") || !bucket["count"].is_number()) continue;
    const double bound = bucket.contains("le") && bucket["le"].is_number()
                             ? bucket["le"].get<double>()
                             : std::numeric_limits<double>::infinity();
    buckets.emplace_back(bound, bucket["count"].get<uint64_t>());
  }
  std::vector<double> bounds;
  std::vector<uint64_t> counts;
  for (const auto& [bound, count] : buckets) {
    bounds.push_back(bound);
    counts.push_back(count);
  }
  const uint64_t total = histogram["count"].is_number() ? histogram["count"].get<uint64_t>() : 0;
  std::string line = "count " + std::to_string(total);
  if (total == 0) return line;
  line += ":";
  const char* names[] = {"p50", "p90", "p99"};
  const double qs[] = {0.5, 0.9, 0.99};
  for (size_t i = 0; i < 3; ++i) {
    const std::optional<double> q = histogramQuantile(qs[i], bounds, counts);
    line += std::string(i == 0 ? " " : ", ") + names[i] + " ";
    if (!q) {
      line += "?";
    } else if (std::isinf(*q)) {
      // Above the highest finite bucket: only a lower bound is known.
      double highest = 0;
      for (double b : bounds) {
        if (!std::isinf(b)) highest = b;
      }
      line += "> " + humanSeconds(highest);
    } else {
      line += humanSeconds(*q);
    }
  }
  return line;
}

std::string scalar(const nlohmann::json& value) {
  return value.is_string() ? value.get<std::string>() : value.dump();
}

// Rows of one group, keys relative to it ("outcomes.allowed"); a list of
// objects with an id-like first field ("queue", "ruleset") is shown per id.
void collect(const nlohmann::json& value, const std::string& prefix, Rows& rows) {
  if (isHistogram(value)) {
    rows.emplace_back(prefix, histogramLine(value));
    return;
  }
  if (value.is_object()) {
    if (value.empty()) return;
    for (const auto& [key, child] : value.items())
      collect(child, prefix.empty() ? key : std::string(prefix).append(".").append(key), rows);
    return;
  }
  if (value.is_array() && !value.empty() && value.front().is_object()) {
    for (size_t i = 0; i < value.size(); ++i) {
      const nlohmann::json& item = value[i];
      std::string label = prefix + "[" + std::to_string(i) + "]";
      for (const char* id : {"queue", "ruleset"}) {
        if (item.contains(id) && (item[id].is_string() || item[id].is_number())) {
          label = prefix + "[" + scalar(item[id]) + "]";
          break;
        }
      }
      collect(item, label, rows);
    }
    return;
  }
  rows.emplace_back(prefix, value.is_array() && value.empty() ? "(none)" : scalar(value));
}

std::string duration(int64_t seconds) {
  if (seconds < 0) return "?";
  const int64_t days = seconds / 86400;
  const int64_t hours = seconds % 86400 / 3600;
  const int64_t minutes = seconds % 3600 / 60;
  char text[48];
  if (days > 0) {
    std::snprintf(text, sizeof text, "%lldd%02lldh", static_cast<long long>(days),
                  static_cast<long long>(hours));
  } else if (hours > 0) {
    std::snprintf(text, sizeof text, "%lldh%02lldm", static_cast<long long>(hours),
                  static_cast<long long>(minutes));
  } else {
    std::snprintf(text, sizeof text, "%lldm%02llds", static_cast<long long>(minutes),
                  static_cast<long long>(seconds % 60));
  }
  return text;
}

}  // namespace

std::optional<double> histogramQuantile(double q, const std::vector<double>& upperBounds,
                                        const std::vector<uint64_t>& cumulative) {
  if (upperBounds.size() != cumulative.size() || cumulative.empty() || cumulative.back() == 0)
    return std::nullopt;
  // As Prometheus' histogram_quantile(): the rank's bucket, then linear
  // interpolation inside it (from 0 for the first bucket).
  const double rank = q * static_cast<double>(cumulative.back());
  for (size_t i = 0; i < cumulative.size(); ++i) {
    if (static_cast<double>(cumulative[i]) < rank) continue;
    if (std::isinf(upperBounds[i])) return upperBounds[i];
    const double lower = i == 0 ? 0 : upperBounds[i - 1];
    const double below = i == 0 ? 0 : static_cast<double>(cumulative[i - 1]);
    const double inBucket = static_cast<double>(cumulative[i]) - below;
    if (inBucket <= 0) return upperBounds[i];
    return lower + (upperBounds[i] - lower) * (rank - below) / inBucket;
  }
  return upperBounds.back();
}

void printStats(const nlohmann::json& stats, std::ostream& out) {
  if (!stats.is_object()) {
    out << stats.dump() << '\n';
    return;
  }
  // Header: mode and uptime; the raw times are in --json.
  std::string header;
  if (stats.contains("mode")) header += "mode " + scalar(stats["mode"]);
  if (stats.contains("time") && stats.contains("started_at") && stats["time"].is_number() &&
      stats["started_at"].is_number()) {
    const auto up = static_cast<int64_t>(stats["time"].get<double>() - stats["started_at"].get<double>());
    header += (header.empty() ? "" : ", ") + std::string("up ") + duration(up);
  }
  if (!header.empty()) out << header << '\n';
  Rows loose;  // top-level scalars other than the header's
  for (const auto& [key, value] : stats.items()) {
    if (key == "mode" || key == "time" || key == "started_at" || key == "version") continue;
    if (!value.is_object() && !(value.is_array() && !value.empty() && value.front().is_object())) {
      loose.emplace_back(key, scalar(value));
      continue;
    }
    Rows rows;
    collect(value, "", rows);
    if (rows.empty()) continue;
    size_t width = 0;
    for (const auto& row : rows) width = std::max(width, row.first.size());
    out << '\n' << key << '\n';
    for (const auto& [name, text] : rows) {
      out << "  " << name << std::string(width - name.size() + 2, ' ') << text << '\n';
    }
  }
  if (!loose.empty()) {
    size_t width = 0;
    for (const auto& row : loose) width = std::max(width, row.first.size());
    out << '\n';
    for (const auto& [name, text] : loose)
      out << name << std::string(width - name.size() + 2, ' ') << text << '\n';
  }
}

int runStats(const StatsOptions& options, std::ostream& out, std::ostream& err) {
  std::string error;
  auto client = ControlClient::connect(options.socket, error);
  if (!client) {
    err << "egressctl stats: " << error << '\n';
    return 1;
  }
  installInterruptHandler();
  const bool clear = options.watchSeconds > 0 && !options.json && ::isatty(STDOUT_FILENO) == 1;
  for (uint64_t round = 1;; ++round) {
    control::Request request;
    request.op = control::Op::Stats;
    const auto response = client->call(request, error);
    if (!response || !response->contains("stats")) {
      if (interrupted()) return 0;
      err << "egressctl stats: " << (error.empty() ? "no stats in the answer" : error) << '\n';
      return 1;
    }
    if (options.json) {
      out << (*response)["stats"].dump(options.watchSeconds > 0 ? -1 : 2) << std::endl;
    } else {
      if (clear) out << "\x1b[H\x1b[2J";
      if (options.watchSeconds > 0) {
        const std::time_t now = std::time(nullptr);
        std::tm local{};
        localtime_r(&now, &local);  // std::localtime shares a static buffer
        char stamp[32];
        std::strftime(stamp, sizeof(stamp), "%H:%M:%S", &local);
        out << "egressd " << client->daemonVersion() << " at " << client->path() << ", " << stamp << '\n';
      }
      printStats((*response)["stats"], out);
      out << std::flush;
    }
    if (options.watchSeconds <= 0 || (options.iterations > 0 && round >= options.iterations)) return 0;
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(options.watchSeconds);
    while (std::chrono::steady_clock::now() < until) {
      if (interrupted()) return 0;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!clear && !options.json) out << '\n';
  }
}

}  // namespace cli

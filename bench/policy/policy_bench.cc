// Policy benchmark: compile time, median match time and memory for 10,
// 1,000 and 100,000 targets (exact names, wildcards, *:port, CIDRs), and at
// 1,000 targets the ratio against a naive linear scan measured in the same
// run. Writes JSON to the path given as argv[1] and a table to stdout.
//
// Each size runs in a forked child so that its memory figures are its own.
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "policy/policy.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Query {
  std::string name;  // empty for address queries
  common::IpAddress ip;
  uint16_t port;
};

std::vector<policy::RuleSet> generateRuleSets(size_t targets, std::mt19937& rng) {
  std::vector<policy::RuleSet> sets;
  const size_t perSet = 10;
  std::uniform_int_distribution<int> percent(0, 99);
  const uint16_t commonPorts[] = {443, 443, 443, 80, 8443, 5432, 6379, 9200};
  for (size_t i = 0; i < targets; ++i) {
    if (i % perSet == 0) {
      sets.emplace_back();
      sets.back().ns = "team-" + std::to_string(i / 1000);
      sets.back().name = "set-" + std::to_string(i / perSet);
    }
    policy::Target t;
    t.port = commonPorts[rng() % 8];
    const int kind = percent(rng);
    if (kind < 60) {
      t.kind = policy::TargetKind::ExactName;
      t.name = "svc" + std::to_string(i) + ".team" + std::to_string(i % 97) + ".example.com";
    } else if (kind < 80) {
      t.kind = policy::TargetKind::WildcardName;
      t.name = "zone" + std::to_string(i) + ".example.net";
    } else if (kind < 81) {
      t.kind = policy::TargetKind::AnyName;
      t.port = static_cast<uint16_t>(10000 + i % 50);
    } else {
      t.kind = policy::TargetKind::Network;
      const auto base = static_cast<uint32_t>(rng()) & 0xffffff00U;
      t.network = common::IpNetwork{common::IpAddress::v4(base), 24};
    }
    sets.back().targets.push_back(t);
    sets.back().targetTexts.push_back(t.canonical());
  }
  return sets;
}

std::vector<Query> generateQueries(const std::vector<policy::RuleSet>& sets, std::mt19937& rng,
                                   size_t count) {
  std::vector<const policy::Target*> all;
  for (const auto& s : sets) {
    for (const auto& t : s.targets) all.push_back(&t);
  }
  std::vector<Query> queries;
  for (size_t i = 0; i < count; ++i) {
    const policy::Target& t = *all[rng() % all.size()];
    Query q{};
    q.port = t.port;
    switch (rng() % 4) {
      case 0:  // a name nobody allowed: the common case for denied traffic
        q.name = "unknown" + std::to_string(i) + ".tracker.example.io";
        break;
      default:
        if (t.kind == policy::TargetKind::ExactName) {
          q.name = t.name;
        } else if (t.kind == policy::TargetKind::WildcardName) {
          q.name = "api.eu." + t.name;
        } else if (t.kind == policy::TargetKind::AnyName) {
          q.name = "any.example.org";
        } else {
          q.ip = t.network.address;
          q.ip.bytes[3] = static_cast<uint8_t>(rng());
        }
    }
    queries.push_back(std::move(q));
  }
  return queries;
}

bool compiledMatch(const policy::Policy& p, const Query& q) {
  if (!q.name.empty()) return static_cast<bool>(p.matchName(q.name, q.port));
  return static_cast<bool>(p.matchAddress(q.ip, q.port)) || p.worldOnPort(q.port);
}

// The naive peer: what a straightforward implementation would do.
bool linearMatch(const std::vector<policy::RuleSet>& sets, const Query& q) {
  for (const auto& s : sets) {
    for (const auto& t : s.targets) {
      if (t.port != q.port) continue;
      switch (t.kind) {
        case policy::TargetKind::AnyName:
          return true;
        case policy::TargetKind::ExactName:
          if (!q.name.empty() && q.name == t.name) return true;
          break;
        case policy::TargetKind::WildcardName:
          if (!q.name.empty() && q.name.size() > t.name.size() + 1 && q.name.ends_with(t.name) &&
              q.name[q.name.size() - t.name.size() - 1] == '.') {
            return true;
          }
          break;
        default:
          if (q.name.empty() && t.network.contains(q.ip)) return true;
      }
    }
  }
  return false;
}

template <typename F>
double medianNsPerQuery(const std::vector<Query>& queries, F&& match, int batches) {
  std::vector<double> samples;
  size_t sink = 0;
  for (int b = 0; b < batches; ++b) {
    const auto start = Clock::now();
    for (const auto& q : queries) sink += match(q) ? 1 : 0;
    const auto ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
    samples.push_back(ns / static_cast<double>(queries.size()));
  }
  std::nth_element(samples.begin(), samples.begin() + static_cast<long>(samples.size() / 2), samples.end());
  if (sink == 0) std::fprintf(stderr, "(no query matched)\n");
  return samples[samples.size() / 2];
}

size_t heapInUse() {
  return mallinfo2().uordblks;
}

long peakRssKiB() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

nlohmann::json runSize(size_t targets) {
  std::mt19937 rng(42);
  auto sets = generateRuleSets(targets, rng);
  const auto queries = generateQueries(sets, rng, 2000);

  std::vector<double> compileSeconds;
  compileSeconds.reserve(16);
  const size_t heapBefore = heapInUse();
  std::shared_ptr<const policy::Policy> compiled;
  for (int i = 0; i < (targets >= 100000 ? 3 : 15); ++i) {
    compiled.reset();
    const auto start = Clock::now();
    compiled = policy::Policy::compile(sets);
    compileSeconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  std::sort(compileSeconds.begin(), compileSeconds.end());
  const size_t heapWithPolicy = heapInUse();

  const double matchNs = medianNsPerQuery(
      queries, [&](const Query& q) { return compiledMatch(*compiled, q); }, 101);
  nlohmann::json out;
  out["targets"] = targets;
  out["compile_seconds_median"] = compileSeconds[compileSeconds.size() / 2];
  out["match_ns_median"] = matchNs;
  // Heap held by the snapshot, including its copy of the rule sets (kept
  // for explain and `egressctl rules`).
  out["policy_heap_bytes"] = heapWithPolicy - heapBefore;
  out["peak_rss_kib"] = peakRssKiB();
  if (targets == 1000) {
    const double linearNs = medianNsPerQuery(
        queries, [&](const Query& q) { return linearMatch(sets, q); }, 21);
    const double againNs = medianNsPerQuery(
        queries, [&](const Query& q) { return compiledMatch(*compiled, q); }, 101);
    out["linear_scan_ns_median"] = linearNs;
    out["speedup_vs_linear_scan"] = linearNs / againNs;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const char* outPath = argc > 1 ? argv[1] : "policy.json";
  nlohmann::json results = nlohmann::json::array();
  for (size_t targets : {size_t{10}, size_t{1000}, size_t{100000}}) {
    int pipeFds[2];
    if (pipe(pipeFds) != 0) return 1;
    const pid_t child = fork();
    if (child == 0) {
      close(pipeFds[0]);
      const std::string text = runSize(targets).dump();
      const ssize_t written = write(pipeFds[1], text.data(), text.size());
      _exit(written == static_cast<ssize_t>(text.size()) ? 0 : 1);
    }
    close(pipeFds[1]);
    std::string text;
    char buffer[4096];
    ssize_t n;
    while ((n = read(pipeFds[0], buffer, sizeof buffer)) > 0) text.append(buffer, static_cast<size_t>(n));
    close(pipeFds[0]);
    int status = 0;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::fprintf(stderr, "policy_bench: size %zu failed\n", targets);
      return 1;
    }
    results.push_back(nlohmann::json::parse(text));
  }

  std::printf("%-10s %14s %14s %14s %12s\n", "targets", "match ns p50", "compile s", "policy MiB",
              "peak RSS MiB");
  for (const auto& r : results) {
    std::printf("%-10zu %14.1f %14.4f %14.2f %12.1f\n", r["targets"].get<size_t>(),
                r["match_ns_median"].get<double>(), r["compile_seconds_median"].get<double>(),
                r["policy_heap_bytes"].get<double>() / 1048576.0, r["peak_rss_kib"].get<double>() / 1024.0);
    if (r.contains("speedup_vs_linear_scan")) {
      std::printf("           at %zu targets: linear scan %.1f ns, compiled is %.1fx faster\n",
                  r["targets"].get<size_t>(), r["linear_scan_ns_median"].get<double>(),
                  r["speedup_vs_linear_scan"].get<double>());
    }
  }
  nlohmann::json doc;
  doc["benchmark"] = "policy";
  doc["results"] = results;
  std::ofstream(outPath) << doc.dump(2) << '\n';
  return 0;
}

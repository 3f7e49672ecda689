// Test driver for nfq/queue_worker (the daemon wires the real one): reads
// EgressRuleSet manifests, takes DNS bindings from the command line, runs one
// worker per queue and prints one line per final decision. SIGTERM/SIGINT
// stop it; the chain stays (fail-closed), as with egressd.
//
//   nfq_gateway --rules FILE [--rules FILE]... [--bind NAME=IP]... [--queues A:B]
//               [--audit] [--no-strict] [--inspect-bound] [--hold-timeout-ms N]
//               [--bind-ttl-ms N] [--fast-path [--chain NAME]]
//               [--public-cidr NET]... [--internal-cidr NET]...
// --public-cidr / --internal-cidr: rules.public_cidrs / rules.internal_cidrs
// (a test network in private space standing for the internet).
// --bind-ttl-ms: the bindings expire N ms after start. --fast-path: also
// writes the bindings into the chain's bound sets (nfq/bound_set.h, as the
// daemon's feeder does). SIGUSR1 prints the workers' packet counters;
// SIGUSR2 toggles audit mode live (QueueWorker::setLiveOptions).
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/strings.h"
#include "nfq/bound_set.h"
#include "nfq/ipset.h"
#include "nfq/queue_worker.h"
#include "nfq/ruleset.h"
#include "policy/manifest.h"
#include "policy/policy.h"

namespace {

volatile std::sig_atomic_t gStop = 0;
volatile std::sig_atomic_t gStats = 0;
volatile std::sig_atomic_t gToggleAudit = 0;

class StaticBindings final : public nfq::BindingLookup {
 public:
  std::vector<std::pair<std::string, common::IpAddress>> entries;
  nfq::TimePoint expiry = nfq::TimePoint::max();
  bool isBound(std::string_view name, const common::IpAddress& ip,
               nfq::TimePoint now) const noexcept override {
    if (now >= expiry) return false;
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    for (const auto& [bound, address] : entries) {
      if (address == ip && common::equalsIgnoreCase(bound, name)) return true;
    }
    return false;
  }
  void forEachBoundName(const common::IpAddress& ip, nfq::TimePoint now,
                        Visitor& visitor) const noexcept override {
    if (now >= expiry) return;
    for (const auto& [bound, address] : entries) {
      if (address == ip && visitor.visit(bound)) return;
    }
  }
};

// What the daemon's BoundSetFeeder does for each binding, once at start.
bool feedBoundSets(const StaticBindings& bindings, const policy::Policy& policy, const std::string& chain) {
  nfq::IpSetClient client;
  std::string error;
  if (!client.open(error)) {
    std::fprintf(stderr, "nfq_gateway: ipset: %s\n", error.c_str());
    return false;
  }
  nfq::RulesetOptions ruleset;
  ruleset.chain = chain;
  const nfq::NamePorts namePorts = nfq::computeNamePorts(policy);
  const nfq::TimePoint now = nfq::Clock::now();
  std::vector<nfq::SetEntry> out(1024);
  size_t total = 0;
  for (const auto& [unused, ip] : bindings.entries) {
    std::vector<nfq::BoundNameExpiry> names;
    for (const auto& [name, address] : bindings.entries) {
      if (address == ip) names.push_back({name, bindings.expiry});
    }
    const nfq::BoundPlan plan = nfq::planBoundEntries(ip, names, policy, namePorts, now, out);
    const nfq::IpSetAddResult added =
        client.add(nfq::boundSetName(ruleset, nfq::IpTablesFamily::V4),
                   nfq::boundSetName(ruleset, nfq::IpTablesFamily::V6), std::span(out.data(), plan.count));
    if (added.failed != 0 || added.full != 0) {
      std::fprintf(stderr, "nfq_gateway: %zu set entries refused\n", added.failed + added.full);
      return false;
    }
    total += plan.count;
  }
  std::fprintf(stderr, "nfq_gateway: %zu bound set entries\n", total);
  return true;
}

class PrintEvents final : public nfq::EventSink {
 public:
  void onDecision(const nfq::DecisionEvent& e) noexcept override {
    std::string ruleSets;
    if (e.policy != nullptr) {
      for (uint32_t index : e.decision.ruleSets) {
        if (!ruleSets.empty()) ruleSets += ",";
        ruleSets += e.policy->ruleSets()[index].id;
      }
    }
    const std::string verdict = e.decision.verdict == nfq::Verdict::AuditAllow
                                    ? "audit:would-deny"
                                    : std::string(nfq::verdictName(e.decision.verdict));
    std::lock_guard lock(mutex_);
    std::printf("verdict=%s reason=%s proto=%u src=%s:%u dst=%s:%u name=%.*s source=%s rulesets=%s\n",
                verdict.c_str(), std::string(nfq::reasonName(e.decision.reason)).c_str(), e.protocol,
                e.src.toString().c_str(), e.srcPort, e.dst.toString().c_str(), e.dstPort,
                static_cast<int>(e.decision.name().size()), e.decision.name().data(),
                std::string(nfq::nameSourceName(e.decision.nameSource)).c_str(), ruleSets.c_str());
    std::fflush(stdout);
  }

 private:
  std::mutex mutex_;
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<policy::RuleSet> ruleSets;
  StaticBindings bindings;
  nfq::QueueWorkerOptions base;
  uint16_t first = 0, last = 0;
  bool fastPath = false;
  std::string chain = "EGRESSD";
  std::vector<common::IpNetwork> publicCidrs, internalCidrs;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool hasValue = i + 1 < argc;
    if (arg == "--rules" && hasValue) {
      auto load = policy::loadManifestFile(argv[++i], policy::defaultPublicSuffixList());
      for (const auto& problem : load.problems) std::fprintf(stderr, "%s\n", problem.toString().c_str());
      if (load.hasErrors()) return 2;
      for (auto& set : load.valid) ruleSets.push_back(std::move(set));
    } else if (arg == "--bind" && hasValue) {
      const std::string spec = argv[++i];
      const size_t eq = spec.find('=');
      const auto ip = common::parseIpAddress(spec.substr(eq + 1));
      if (eq == std::string::npos || !ip) {
        std::fprintf(stderr, "bad --bind %s\n", spec.c_str());
        return 2;
      }
      bindings.entries.emplace_back(spec.substr(0, eq), *ip);
    } else if (arg == "--queues" && hasValue) {
      const std::string range = argv[++i];
      const size_t colon = range.find(':');
      first = static_cast<uint16_t>(std::stoi(range.substr(0, colon)));
      last = colon == std::string::npos ? first : static_cast<uint16_t>(std::stoi(range.substr(colon + 1)));
    } else if (arg == "--audit") {
      base.decide.audit = true;
    } else if (arg == "--no-strict") {
      base.decide.strictBinding = false;
    } else if (arg == "--inspect-bound") {
      base.decide.inspectBoundFlows = true;
    } else if (arg == "--bind-ttl-ms" && hasValue) {
      bindings.expiry = nfq::Clock::now() + std::chrono::milliseconds(std::atoi(argv[++i]));
    } else if (arg == "--fast-path") {
      fastPath = true;
    } else if (arg == "--confirm") {
      base.confirmFirstPayload = true;  // the chain needs nfq_ruleset_tool --confirm
    } else if (arg == "--chain" && hasValue) {
      chain = argv[++i];
    } else if ((arg == "--public-cidr" || arg == "--internal-cidr") && hasValue) {
      const auto parsed = common::parseIpNetwork(argv[++i]);
      if (!parsed.network) {
        std::fprintf(stderr, "bad %s %s\n", argv[i - 1], argv[i]);
        return 2;
      }
      (arg == "--public-cidr" ? publicCidrs : internalCidrs).push_back(*parsed.network);
    } else if (arg == "--hold-timeout-ms" && hasValue) {
      base.flows.holdTimeout = std::chrono::milliseconds(std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  common::SnapshotHolder<policy::Policy> policy(
      policy::Policy::compile(ruleSets, policy::InternalRanges(internalCidrs, publicCidrs)));
  PrintEvents events;
  std::vector<std::unique_ptr<nfq::QueueWorker>> workers;
  try {
    for (uint32_t queue = first; queue <= last; ++queue) {
      nfq::QueueWorkerOptions options = base;
      options.queue = static_cast<uint16_t>(queue);
      options.flows.maxFlows = 256;
      workers.push_back(std::make_unique<nfq::QueueWorker>(options, policy, bindings, &events));
      workers.back()->start();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nfq_gateway: %s\n", e.what());
    return 1;
  }
  if (fastPath && !feedBoundSets(bindings, *policy.load(), chain)) return 1;
  std::signal(SIGTERM, [](int) { gStop = 1; });
  std::signal(SIGINT, [](int) { gStop = 1; });
  std::signal(SIGUSR1, [](int) { gStats = 1; });
  std::signal(SIGUSR2, [](int) { gToggleAudit = 1; });
  bool audit = base.decide.audit;
  std::fprintf(stderr, "nfq_gateway: ready on queues %u:%u\n", first, last);
  while (gStop == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (gToggleAudit != 0) {
      gToggleAudit = 0;
      audit = !audit;
      for (auto& worker : workers) worker->setLiveOptions(audit, base.decide.strictBinding);
      std::fprintf(stderr, "nfq_gateway: audit=%d\n", audit ? 1 : 0);
    }
    if (gStats != 0) {
      gStats = 0;
      uint64_t packets = 0;
      for (auto& worker : workers) packets += worker->stats().packets.load();
      std::fprintf(stderr, "nfq_gateway: stats packets=%llu\n", static_cast<unsigned long long>(packets));
    }
  }
  for (auto& worker : workers) worker->stop();
  for (auto& worker : workers) {
    const auto& s = worker->stats();
    std::fprintf(stderr,
                 "nfq_gateway: packets=%llu batches=%llu held_expired=%llu held_passed=%llu "
                 "recent_repeats=%llu\n",
                 static_cast<unsigned long long>(s.packets.load()),
                 static_cast<unsigned long long>(s.batches.load()),
                 static_cast<unsigned long long>(worker->flowStats().expired),
                 static_cast<unsigned long long>(s.heldRetransmitsPassed.load()),
                 static_cast<unsigned long long>(s.recentRepeats.load()));
  }
  return 0;
}

#include "daemon/enforcement.h"

#include <algorithm>
#include <array>
#include <stdexcept>

#include "common/log.h"

namespace daemon_main {

bool BindingTableLookup::isBound(std::string_view name, const common::IpAddress& ip,
                                 nfq::TimePoint now) const noexcept {
  return table_.isBound(name, ip, now);
}

void BindingTableLookup::forEachBoundName(const common::IpAddress& ip, nfq::TimePoint now,
                                          Visitor& visitor) const noexcept {
  std::array<dns::BoundName, 32> names;
  const size_t total = table_.lookup(ip, now, names);
  for (size_t i = 0; i < std::min(total, names.size()); ++i) {
    if (visitor.visit(names[i].view())) return;
  }
}

nfq::RulesetOptions rulesetOptions(const config::Config& config) {
  nfq::RulesetOptions options;
  options.protectedCidrs = config.nfqueue.protectedCidrs;
  const auto [low, high] = std::minmax_element(config.nfqueue.queues.begin(), config.nfqueue.queues.end());
  if (low != config.nfqueue.queues.end()) {
    options.queueFirst = *low;
    options.queueLast = *high;
  }
  return options;
}

Enforcement::Enforcement(const common::SnapshotHolder<policy::Policy>& policy,
                         const dns::BindingTable& bindings, nfq::EventSink* events)
    : policy_(policy), bindings_(bindings), events_(events) {}

Enforcement::~Enforcement() {
  stop();
}

bool Enforcement::start(const config::Config& config, std::string& error) {
  const auto& queues = config.nfqueue.queues;
  const auto [low, high] = std::minmax_element(queues.begin(), queues.end());
  if (queues.empty() || static_cast<size_t>(*high - *low) + 1 != queues.size()) {
    // iptables balances over a range (--queue-balance first:last).
    std::string given;
    for (uint16_t queue : queues) given += (given.empty() ? "" : ", ") + std::to_string(queue);
    error = "nfqueue.queues = [" + given +
            "] must be consecutive numbers, e.g. [0, 1] (iptables balances over a range)";
    return false;
  }
  if (config.nfqueue.installRules) {
    const nfq::CommandResult installed = nfq::applyRuleset(rulesetOptions(config));
    if (!installed.ok) {
      error = "installing the iptables chain failed: " + installed.error;
      return false;
    }
    common::LogLine(common::LogLevel::Info, "nfq.chain_installed")
        .field("chain", rulesetOptions(config).chain)
        .field("queues", std::to_string(*low) + "-" + std::to_string(*high));
  }
  return startWorkers(config, error);
}

bool Enforcement::startWorkers(const config::Config& config, std::string& error) {
  running_ = config;
  for (uint16_t queue : config.nfqueue.queues) {
    nfq::QueueWorkerOptions options;
    options.queue = queue;
    options.queueMaxlen = config.nfqueue.queueMaxlen;
    options.flows.maxFlows = config.nfqueue.maxHeldFlows;
    options.flows.holdTimeout = config.nfqueue.holdTimeout;
    options.decide.audit = config.mode == config::Mode::Audit;
    options.decide.strictBinding = config.rules.strictBinding;
    // ARCHITECTURE.md: a SYN to a DNS-bound address is only provisionally
    // allowed; the first payload is still read, so a denied SNI cannot ride
    // on an address shared with an allowed name (CDNs). Server-speaks-first
    // protocols still work: replies are never queued, and the client's
    // first bytes (not TLS/HTTP) are allowed through the binding.
    options.decide.inspectBoundFlows = true;
    options.repeatVerdicts = config.nfqueue.installRules;
    auto worker = std::make_unique<nfq::QueueWorker>(options, policy_, bindings_, events_);
    try {
      worker->start();
    } catch (const std::exception& e) {
      error = "NFQUEUE " + std::to_string(queue) + ": " + e.what();
      stop();
      return false;
    }
    workers_.push_back(std::move(worker));
    common::LogLine(common::LogLevel::Info, "nfq.worker_started")
        .field("queue", static_cast<unsigned>(queue));
  }
  return true;
}

void Enforcement::stop() {
  for (auto& worker : workers_) worker->stop();
  workers_.clear();
}

bool Enforcement::update(const config::Config& config, std::string& error) {
  const bool changed = config.mode != running_.mode ||
                       config.rules.strictBinding != running_.rules.strictBinding ||
                       config.nfqueue.holdTimeout != running_.nfqueue.holdTimeout;
  if (!changed || workers_.empty()) return true;
  stop();
  return startWorkers(config, error);
}

bool uninstall(const config::Config& config, std::string& error) {
  const nfq::CommandResult removed = nfq::removeRuleset(rulesetOptions(config));
  if (!removed.ok) error = removed.error;
  return removed.ok;
}

}  // namespace daemon_main

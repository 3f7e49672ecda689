#include "daemon/enforcement.h"

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cstring>
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

namespace {
// Entries planned per binding at most (one per port with name rules).
constexpr size_t kPlanEntries = 1024;
}  // namespace

BoundSetFeeder::BoundSetFeeder(const common::SnapshotHolder<policy::Policy>& policy,
                               const dns::BindingTable& bindings, std::string set4, std::string set6)
    : policyReader_(policy),
      bindings_(bindings),
      set4_(std::move(set4)),
      set6_(std::move(set6)),
      plan_(kPlanEntries),
      kernelPlan_(kPlanEntries) {
  pending_.reserve(2 * kPlanEntries);
}

void BoundSetFeeder::setKernelVerdict(nfq::KernelVerdict* verdict) noexcept {
  std::lock_guard lock(mutex_);
  kernelVerdict_ = verdict;
}

void BoundSetFeeder::suspendKernelNames() noexcept {
  std::lock_guard lock(mutex_);
  if (kernelVerdict_ == nullptr) return;
  kernelNamesSuspended_ = true;
  kernelVerdict_->invalidateAll();
}

void BoundSetFeeder::writeKernelNames(const common::IpAddress& ip,
                                      std::span<const nfq::BoundNameExpiry> names,
                                      nfq::TimePoint now) noexcept {
  if (kernelVerdict_ == nullptr || kernelNamesSuspended_) return;
  const nfq::BoundPlan plan = nfq::planKernelNames(ip, names, *policy_, namePorts_, now, kernelPlan_);
  uint64_t written = 0;
  for (size_t i = 0; i < plan.count; ++i) {
    const nfq::KernelNameEntry& entry = kernelPlan_[i];
    if (kernelVerdict_->allow(ip, entry.port, entry.name, entry.expiry)) ++written;
  }
  stats_.kernelNames.fetch_add(written, std::memory_order_relaxed);
  stats_.kernelNamesFailed.fetch_add(plan.count - written + plan.dropped, std::memory_order_relaxed);
}

bool BoundSetFeeder::open(std::string& error) {
  std::lock_guard lock(mutex_);
  if (!client_.open(error)) return false;
  refreshPolicyLocked();
  return true;
}

void BoundSetFeeder::refreshPolicyLocked() noexcept {
  const auto& current = policyReader_.shared();
  if (current == policy_) return;
  policy_ = current;
  namePorts_ = nfq::computeNamePorts(*policy_);
}

void BoundSetFeeder::write(std::span<const nfq::SetEntry> entries) noexcept {
  if (entries.empty()) return;
  const nfq::IpSetAddResult result = client_.add(set4_, set6_, entries);
  stats_.entries.fetch_add(result.sent - std::min(result.sent, result.full + result.failed),
                           std::memory_order_relaxed);
  stats_.setFull.fetch_add(result.full, std::memory_order_relaxed);
  stats_.failed.fetch_add(result.failed, std::memory_order_relaxed);
}

void BoundSetFeeder::onBound(std::string_view, const common::IpAddress& ip, nfq::TimePoint) noexcept {
  std::lock_guard lock(mutex_);
  stats_.bindings.fetch_add(1, std::memory_order_relaxed);
  // A policy published without policyChanged() (or before it ran): the
  // sets may hold entries the new one does not allow.
  if (policyReader_.shared() != policy_) resyncLocked();
  // Every name of the address, not just this one: the kernel entry of a
  // (address, port) pair takes the latest expiry among them.
  const nfq::TimePoint now = nfq::Clock::now();
  std::array<dns::BoundName, dns::BindingTable::kMaxNamesPerAddress> names;
  const size_t total = std::min(bindings_.lookup(ip, now, names), names.size());
  std::array<nfq::BoundNameExpiry, dns::BindingTable::kMaxNamesPerAddress> views;
  for (size_t i = 0; i < total; ++i) views[i] = {names[i].view(), names[i].expiry};
  const nfq::BoundPlan plan =
      nfq::planBoundEntries(ip, std::span(views.data(), total), *policy_, namePorts_, now, plan_);
  stats_.failed.fetch_add(plan.dropped, std::memory_order_relaxed);
  write(std::span(plan_.data(), plan.count));
  // Before the answer goes out too: the client's first payload finds them.
  writeKernelNames(ip, std::span(views.data(), total), now);
}

void BoundSetFeeder::onEvicted(std::string_view name, const common::IpAddress& ip) noexcept {
  std::lock_guard lock(mutex_);
  if (kernelVerdict_ == nullptr) return;
  stats_.kernelNamesEvicted.fetch_add(1, std::memory_order_relaxed);
  // The ports it was written for are the ones the planner picks for it
  // (under an older policy, the generation voids them anyway).
  const nfq::TimePoint now = nfq::Clock::now();
  const nfq::BoundNameExpiry evicted{name, now + std::chrono::hours(1)};
  const nfq::BoundPlan plan =
      nfq::planKernelNames(ip, std::span(&evicted, 1), *policy_, namePorts_, now, kernelPlan_);
  for (size_t i = 0; i < plan.count; ++i) kernelVerdict_->forget(ip, kernelPlan_[i].port, name);
}

void BoundSetFeeder::resync() noexcept {
  std::lock_guard lock(mutex_);
  resyncLocked();
}

BoundSetSizes BoundSetFeeder::setSizes() const {
  std::lock_guard lock(mutex_);
  BoundSetSizes out;
  std::string error;
  uint64_t entries = 0;
  if (client_.size(set4_, entries, error)) out.v4 = entries;
  if (client_.size(set6_, entries, error)) out.v6 = entries;
  return out;
}

void BoundSetFeeder::clear() noexcept {
  std::lock_guard lock(mutex_);
  std::string error;
  for (const std::string* set : {&set4_, &set6_}) {
    stats_.flushes.fetch_add(1, std::memory_order_relaxed);
    if (!client_.flush(*set, error)) {
      common::LogLine(common::LogLevel::Warn, "nfq.fast_path_flush_failed")
          .field("set", *set)
          .field("error", error);
      stats_.failed.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

void BoundSetFeeder::resyncLocked() noexcept {
  refreshPolicyLocked();
  stats_.resyncs.fetch_add(1, std::memory_order_relaxed);
  if (kernelVerdict_ != nullptr) {
    // Names written under an older policy (also those written after
    // suspendKernelNames()'s bump, had any been) stop counting; the refill
    // below writes the current ones.
    kernelVerdict_->invalidateAll();
    kernelNamesSuspended_ = false;
  }
  std::string error;
  for (const std::string* set : {&set4_, &set6_}) {
    stats_.flushes.fetch_add(1, std::memory_order_relaxed);
    if (!client_.flush(*set, error)) {
      // The stale entries stay: say so loudly (they still only let SYNs
      // and empty segments through; every payload is judged).
      common::LogLine(common::LogLevel::Error, "nfq.fast_path_flush_failed")
          .field("set", *set)
          .field("error", error);
      stats_.failed.fetch_add(1, std::memory_order_relaxed);
    }
  }
  // Refill: forEach visits the names of one address one after the other,
  // so each address is planned once with all its names. Runs on the event
  // loop: a policy change is rare; the cost grows with bindings × ports in
  // use (not measured at scale, see docs/nfq.md "Known limits").
  const nfq::TimePoint now = nfq::Clock::now();
  std::array<dns::BoundName, dns::BindingTable::kMaxNamesPerAddress> names;
  std::array<nfq::BoundNameExpiry, dns::BindingTable::kMaxNamesPerAddress> views;
  size_t count = 0;
  common::IpAddress current;
  std::vector<nfq::SetEntry>& pending = pending_;
  pending.clear();
  size_t written = 0;
  const auto planAddress = [&] {
    if (count == 0) return;
    for (size_t i = 0; i < count; ++i) views[i] = {names[i].view(), names[i].expiry};
    const nfq::BoundPlan plan =
        nfq::planBoundEntries(current, std::span(views.data(), count), *policy_, namePorts_, now, plan_);
    stats_.failed.fetch_add(plan.dropped, std::memory_order_relaxed);
    writeKernelNames(current, std::span(views.data(), count), now);
    pending.insert(pending.end(), plan_.begin(), plan_.begin() + static_cast<std::ptrdiff_t>(plan.count));
    if (pending.size() >= kPlanEntries) {
      write(pending);
      written += pending.size();
      pending.clear();
    }
    count = 0;
  };
  bindings_.forEach([&](std::string_view name, const common::IpAddress& ip, nfq::TimePoint expiry) {
    if (expiry <= now) return;
    if (count > 0 && !(ip == current)) planAddress();
    current = ip;
    if (count == names.size() || name.size() > names[count].name.size()) return;
    dns::BoundName& slot = names[count++];
    std::memcpy(slot.name.data(), name.data(), name.size());
    slot.length = static_cast<uint8_t>(name.size());
    slot.expiry = expiry;
  });
  planAddress();
  write(pending);
  written += pending.size();
  common::LogLine(common::LogLevel::Info, "nfq.fast_path_resync").field("entries", written);
}

nfq::RulesetOptions rulesetOptions(const config::Config& config) {
  nfq::RulesetOptions options;
  // With egressd's own chain, the kernel fast path comes with it.
  options.kernelFastPath = config.nfqueue.installRules;
  // The insertion guard's reply rules (docs/nfq.md "Insertion").
  options.confirmFirstPayload = config.nfqueue.installRules;
  options.protectedCidrs = config.nfqueue.protectedCidrs;
  const auto [low, high] = std::minmax_element(config.nfqueue.queues.begin(), config.nfqueue.queues.end());
  if (low != config.nfqueue.queues.end()) {
    options.queueFirst = *low;
    options.queueLast = *high;
  }
  return options;
}

// Where the kernel guard pins its programs (the chain's rules name them):
// /sys/fs/bpf/<chain>-<network namespace inode>. The bpffs is shared by
// every network namespace of the host, the chain is not: two egressd in
// two namespaces (gateways side by side, tests in parallel) must not
// replace or remove each other's pins, and `--uninstall` in a namespace
// finds the pins of the egressd that ran there.
std::string kernelGuardDir(const nfq::RulesetOptions& ruleset) {
  std::string name = ruleset.chain;
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  struct stat netns {};
  if (::stat("/proc/self/ns/net", &netns) == 0) name += "-" + std::to_string(netns.st_ino);
  return "/sys/fs/bpf/" + name;
}

void RetiredCounters::retire(uint16_t queue, const nfq::QueueCounters& last) {
  retired_[queue] += last;
}

nfq::QueueCounters RetiredCounters::total(uint16_t queue, const nfq::QueueCounters& live) const {
  nfq::QueueCounters out = live;
  if (const auto it = retired_.find(queue); it != retired_.end()) out += it->second;
  return out;
}

Enforcement::Enforcement(const common::SnapshotHolder<policy::Policy>& policy, dns::BindingTable& bindings,
                         nfq::EventSink* events)
    : policy_(policy), table_(bindings), bindings_(bindings), events_(events) {}

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
  if (!config.nfqueue.installRules && config.nfqueue.kernelVerdict == config::KernelVerdictMode::Auto) {
    common::LogLine(common::LogLevel::Info, "nfq.kernel_verdict_unavailable")
        .field("error", "nfqueue.install_rules is false");
  }
  if (config.nfqueue.installRules) {
    nfq::RulesetOptions ruleset = rulesetOptions(config);
    if (config.nfqueue.kernelGuard == config::KernelGuardMode::Auto) {
      // Loaded before the chain that names its pins; any failure (no
      // CAP_BPF, no bpffs, an old kernel) leaves the checks in user space.
      auto guard = std::make_unique<nfq::KernelGuard>();
      nfq::KernelGuard::Options guardOptions;
      guardOptions.dir = kernelGuardDir(ruleset);
      guardOptions.confirms = static_cast<uint32_t>(
          std::min<uint64_t>(uint64_t{config.nfqueue.maxHeldFlows} * queues.size(), 1U << 20));
      std::string guardError;
      if (guard->open(guardOptions, guardError)) {
        ruleset.kernelGuardDir = guardOptions.dir;
        kernelGuard_ = std::move(guard);
      } else {
        common::LogLine(common::LogLevel::Warn, "nfq.kernel_guard_unavailable").field("error", guardError);
      }
    }
    openKernelVerdict(config, ruleset);
    nfq::CommandResult installed = nfq::applyRuleset(ruleset);
    if (!installed.ok && kernelVerdict_) {
      // A kernel whose xt_bpf refuses the verdict program's rule.
      common::LogLine(common::LogLevel::Warn, "nfq.kernel_verdict_unavailable")
          .field("error", installed.error);
      dropKernelVerdict(ruleset);
      installed = nfq::applyRuleset(ruleset);
    }
    if (!installed.ok && kernelGuard_) {
      // A kernel without xt_bpf: the rules that name the programs fail.
      common::LogLine(common::LogLevel::Warn, "nfq.kernel_guard_unavailable").field("error", installed.error);
      dropKernelVerdict(ruleset);
      kernelGuard_.reset();
      ruleset.kernelGuardDir.clear();
      installed = nfq::applyRuleset(ruleset);
    }
    if (!installed.ok && ruleset.kernelFastPath) {
      // A kernel without ip_set / xt_set / xt_u32: enforce without the
      // fast path (every SYN to user space) rather than not at all.
      common::LogLine(common::LogLevel::Warn, "nfq.fast_path_unavailable").field("error", installed.error);
      ruleset.kernelFastPath = false;
      if (kernelVerdict_) {
        // Its names are fed with the bound sets' entries.
        common::LogLine(common::LogLevel::Warn, "nfq.kernel_verdict_unavailable")
            .field("error", "the kernel fast path is unavailable");
        dropKernelVerdict(ruleset);
      }
      installed = nfq::applyRuleset(ruleset);
    }
    if (!installed.ok) {
      error = "installing the iptables chain failed: " + installed.error;
      return false;
    }
    common::LogLine(common::LogLevel::Info, "nfq.chain_installed")
        .field("chain", ruleset.chain)
        .field("queues", std::to_string(*low) + "-" + std::to_string(*high))
        .field("fast_path", ruleset.kernelFastPath ? "on" : "off")
        .field("kernel_guard", kernelGuard_ ? kernelGuard_->dir() : std::string("off"))
        .field("kernel_verdict", kernelVerdict_ ? "on" : "off");
    if (ruleset.kernelFastPath) {
      auto feeder = std::make_unique<BoundSetFeeder>(policy_, table_,
                                                     nfq::boundSetName(ruleset, nfq::IpTablesFamily::V4),
                                                     nfq::boundSetName(ruleset, nfq::IpTablesFamily::V6));
      std::string fastPathError;
      if (!feeder->open(fastPathError)) {
        error = "kernel fast path: " + fastPathError;
        return false;
      }
      feeder->setKernelVerdict(kernelVerdict_.get());
      // Bindings recorded before now (DNS starts first) go in too.
      feeder->resync();
      table_.setObserver(feeder.get());
      feeder_ = std::move(feeder);
    }
  }
  return startWorkers(config, error);
}

void Enforcement::openKernelVerdict(const config::Config& config, nfq::RulesetOptions& ruleset) {
  if (config.nfqueue.kernelVerdict != config::KernelVerdictMode::Auto) return;
  // One line, once, whatever is missing; never fatal: the first payloads
  // are then judged in user space as without it.
  const auto unavailable = [](common::LogLevel level, const std::string& why) {
    common::LogLine(level, "nfq.kernel_verdict_unavailable").field("error", why);
  };
  if (!kernelGuard_) {
    // Its programs read the guard's starts and write its confirm entries.
    unavailable(common::LogLevel::Warn, config.nfqueue.kernelGuard == config::KernelGuardMode::Off
                                            ? "nfqueue.kernel_guard is \"off\""
                                            : "the kernel guard is not active");
    return;
  }
  if (config.nfqueue.queues.size() != 1) {
    unavailable(common::LogLevel::Warn, "nfqueue.queues has " + std::to_string(config.nfqueue.queues.size()) +
                                            " queues; the kernel verdict needs exactly one");
    return;
  }
  if (!ruleset.kernelFastPath) {
    unavailable(common::LogLevel::Warn, "the kernel fast path is off");
    return;
  }
  auto verdict = std::make_unique<nfq::KernelVerdict>();
  nfq::KernelVerdict::Options options;
  options.dir = kernelGuard_->dir();
  std::string why;
  if (!verdict->open(options, *kernelGuard_, why)) {
    unavailable(common::LogLevel::Warn, why);
    return;
  }
  ruleset.kernelVerdict = true;
  kernelVerdict_ = std::move(verdict);
}

void Enforcement::dropKernelVerdict(nfq::RulesetOptions& ruleset) {
  ruleset.kernelVerdict = false;
  if (kernelVerdict_) kernelVerdict_->remove();
  kernelVerdict_.reset();
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
    // docs/architecture.md: a SYN to a DNS-bound address is only provisionally
    // allowed; the first payload is still read, so a denied SNI cannot ride
    // on an address shared with an allowed name (CDNs). Server-speaks-first
    // protocols still work: replies are never queued, and the client's
    // first bytes (not TLS/HTTP) are allowed through the binding.
    options.decide.inspectBoundFlows = true;
    options.repeatVerdicts = config.nfqueue.installRules;
    // The bytes judged must be the bytes the server accepts: with our chain
    // (its reply rules), an allow on a first payload waits for the server
    // to acknowledge exactly those bytes (docs/nfq.md "Insertion").
    options.confirmFirstPayload = config.nfqueue.installRules;
    options.kernelGuard = kernelGuard_.get();
    options.kernelVerdict = kernelVerdict_.get();
    auto worker = std::make_unique<nfq::QueueWorker>(options, policy_, bindings_, events_);
    try {
      worker->start();
    } catch (const std::exception& e) {
      error = "NFQUEUE " + std::to_string(queue) + ": " + e.what();
      stopWorkers();
      return false;
    }
    workers_.push_back(std::move(worker));
    workerQueues_.push_back(queue);
    common::LogLine(common::LogLevel::Info, "nfq.worker_started")
        .field("queue", static_cast<unsigned>(queue));
  }
  return true;
}

void Enforcement::stopWorkers() {
  for (size_t i = 0; i < workers_.size(); ++i) {
    workers_[i]->stop();
    // After stop(): its held flows were denied and counted.
    retired_.retire(workerQueues_[i], workers_[i]->counters());
  }
  workers_.clear();
  workerQueues_.clear();
}

std::vector<QueueTotals> Enforcement::queueTotals() const {
  std::vector<QueueTotals> out;
  // Every configured queue, with or without a running worker (a failed
  // restart): its totals stay reported.
  for (uint16_t queue : running_.nfqueue.queues) {
    nfq::QueueCounters live;
    for (size_t i = 0; i < workers_.size(); ++i) {
      if (workerQueues_[i] == queue) live = workers_[i]->counters();
    }
    out.push_back({queue, retired_.total(queue, live)});
  }
  return out;
}

void Enforcement::stop() {
  // Nothing more is allowed in the kernel once no worker adopts it (the
  // workers drain what came before as they stop).
  if (feeder_) {
    feeder_->suspendKernelNames();
  } else if (kernelVerdict_) {
    kernelVerdict_->invalidateAll();
  }
  stopWorkers();
  if (feeder_) {
    table_.setObserver(nullptr);
    // Nobody reads the queue now: with the sets empty, bound SYNs are
    // dropped like every other new flow instead of completing handshakes.
    feeder_->clear();
    feeder_.reset();
  }
  // The pins go; the chain's rules keep their programs (and maps) while
  // the chain stays, as the fail-closed chain does.
  if (kernelVerdict_) kernelVerdict_->remove();
  kernelVerdict_.reset();
  kernelGuard_.reset();
}

void Enforcement::policyWillChange() {
  if (feeder_) {
    feeder_->suspendKernelNames();
  } else if (kernelVerdict_) {
    kernelVerdict_->invalidateAll();
  }
}

void Enforcement::policyChanged() {
  if (feeder_) feeder_->resync();
}

bool Enforcement::update(const config::Config& config, std::string& error) {
  if (workers_.empty()) return true;
  if (config.nfqueue.holdTimeout != running_.nfqueue.holdTimeout) {
    // The flow tables are sized and timed at construction: restart (the
    // kernel drops what arrives meanwhile: fail-closed).
    stopWorkers();
    return startWorkers(config, error);
  }
  if (config.mode != running_.mode || config.rules.strictBinding != running_.rules.strictBinding) {
    // Swapped live: the queues stay bound, nothing is dropped.
    for (auto& worker : workers_) {
      worker->setLiveOptions(config.mode == config::Mode::Audit, config.rules.strictBinding);
    }
    running_.mode = config.mode;
    running_.rules.strictBinding = config.rules.strictBinding;
  }
  return true;
}

nfq::DnsInterceptOptions dnsInterceptOptions(const config::Config& config) {
  nfq::DnsInterceptOptions options;
  if (config.dns.enabled) options.addresses = config.dns.intercept;
  return options;
}

bool applyDnsIntercept(const config::Config& config, std::string& error) {
  const nfq::CommandResult applied = nfq::applyDnsIntercept(dnsInterceptOptions(config));
  if (!applied.ok) {
    error = "installing the DNS take-over rules for dns.intercept failed: " + applied.error +
            " (they need the raw and nat tables and the xt_socket match; without them use the link-local "
            "address instead, docs/deploy.md)";
  }
  return applied.ok;
}

bool uninstall(const config::Config& config, std::string& error) {
  const nfq::CommandResult removed = nfq::removeRuleset(rulesetOptions(config));
  // A killed run's pins (the chain that used them is gone now).
  nfq::removeKernelPins(kernelGuardDir(rulesetOptions(config)));
  // The DNS take-over chains too, whatever dns.intercept says now.
  const nfq::CommandResult dns = nfq::removeDnsIntercept(nfq::DnsInterceptOptions{});
  if (!removed.ok) {
    error = removed.error;
  } else if (!dns.ok) {
    error = dns.error;
  }
  return removed.ok && dns.ok;
}

}  // namespace daemon_main

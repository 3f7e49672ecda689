#include "daemon/daemon.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <fstream>

#include "common/log.h"
#include "config/load.h"
#include "nfq/ruleset.h"
#include "proxy/metrics_text.h"

namespace daemon_main {

namespace {
// Bindings kept at most (addresses × names); eviction is counted.
constexpr size_t kBindingTableEntries = 1 << 20;

// The CPUs egressd may use: its affinity mask (a container's cpuset),
// fewer when its cgroup's CPU limit grants fewer (a pod's limits.cpu).
uint32_t cpusAvailable() {
  cpu_set_t set;
  CPU_ZERO(&set);
  uint32_t cpus = ::sched_getaffinity(0, sizeof set, &set) == 0 ? static_cast<uint32_t>(CPU_COUNT(&set)) : 1;
  std::ifstream file("/sys/fs/cgroup/cpu.max");  // cgroup v2, as the container sees its own
  std::string line;
  if (std::getline(file, line)) {
    if (const auto limit = config::cpusFromCpuMax(line)) cpus = std::min(cpus, std::max<uint32_t>(*limit, 1));
  }
  return cpus;
}

std::string joinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) {
    if (!out.empty()) out += ",";
    out += name;
  }
  return out;
}
}  // namespace

Daemon::Daemon(std::string configPath, config::Config config)
    : configPath_(std::move(configPath)),
      config_(std::move(config)),
      base_(event_base_new()),
      policy_(policy::Policy::empty()),
      pods_(std::make_shared<const attribution::PodTable>()),
      bindings_(std::make_unique<dns::BindingTable>(kBindingTableEntries)) {}

Daemon::~Daemon() {
  // Workers and the DNS service borrow the event base, bindings, policy
  // holder and the decision log: stop them first.
  enforcement_.reset();
  proxy_.reset();
  control_.reset();
  decisions_.reset();
  dns_.reset();
  watcher_.reset();
  podMap_.reset();
}

int Daemon::run() {
  if (!base_) {
    common::LogLine(common::LogLevel::Error, "startup.failed").field("error", "event_base_new failed");
    return 1;
  }
  std::signal(SIGPIPE, SIG_IGN);
  sighup_.reset(evsignal_new(base_.get(), SIGHUP, &Daemon::onSignal, this));
  sigterm_.reset(evsignal_new(base_.get(), SIGTERM, &Daemon::onSignal, this));
  sigint_.reset(evsignal_new(base_.get(), SIGINT, &Daemon::onSignal, this));
  for (auto* ev : {sighup_.get(), sigterm_.get(), sigint_.get()}) event_add(ev, nullptr);
  // Read before any thread starts (getenv).
  std::string notifyError;
  notifier_ = ServiceNotifier::fromEnvironment(notifyError);
  if (!notifyError.empty()) {
    common::LogLine(common::LogLevel::Warn, "systemd.notify_unusable").field("error", notifyError);
  }

  stats_.startedAt = std::chrono::system_clock::now();
  // Rules first: no listener opens before the policy is in force.
  reloadRules();
  watcher_ = std::make_unique<RulesWatcher>(base_.get(), [this] { reloadRules(); });
  std::string error;
  if (!watcher_->watch(config_.rules.dirs, error)) {
    common::LogLine(common::LogLevel::Error, "startup.failed").field("error", error);
    return 1;
  }
  EventHubOptions hubOptions;
  // Only the NFQUEUE workers and the proxy's own loops publish from other
  // threads (their rings need the periodic drain); without them the hub
  // wakes only to write lines.
  proxyThreads_ = config::proxyThreadCount(config_.proxy.threads, cpusAvailable());
  hubOptions.periodicDrain = config_.nfqueue.enabled || (config_.proxy.enabled() && proxyThreads_ > 1);
  decisions_ = std::make_unique<EventHub>(base_.get(), hubOptions);
  if (!config_.attribution.mapFile.empty()) {
    podMap_ = std::make_unique<PodMapLoader>(base_.get(), config_.attribution.mapFile, pods_);
    if (!podMap_->start(error)) {
      common::LogLine(common::LogLevel::Error, "startup.failed")
          .field("component", "attribution")
          .field("error", error);
      return 1;
    }
    decisions_->setPodTable(&pods_);
  }
  // The filter names the DNS events the hook counts: per-rule-set hits
  // (those naming rule sets) and per-namespace denials (every policy denial
  // and every audit "would deny"). A counter added to the hook must be added
  // to it, or its DNS events are skipped when nothing else wants them.
  // Cache hits (not audit) are left out: the DNS service counts those on
  // its cache entries and hands them over in bulk (onDnsCacheHits) when
  // /metrics or `egressctl stats` is read (statsSources()). Without
  // attribution, every DNS denial is "_none": those come from the DNS
  // service's verdict counters then, not from events.
  const bool attributed = podMap_ != nullptr;
  decisions_->setCounterHook(
      [this, attributed](const observe::Event& event, uint64_t times) {
        ruleSetHits_.count(event, times);
        if (attributed || event.kind != observe::EventKind::Dns) namespaceDenials_.count(event, times);
      },
      [attributed](dns::DnsOutcome outcome, dns::DenyReason reason, bool audit) {
        if (outcome == dns::DnsOutcome::CacheHit && !audit) return false;
        return EventHub::namesRuleSets(outcome, reason) ||
               (attributed && (outcome == dns::DnsOutcome::Denied || audit));
      });
  if (config_.dns.enabled && !startDns(error)) {
    common::LogLine(common::LogLevel::Error, "startup.failed")
        .field("component", "dns")
        .field("error", error);
    return 1;
  }
  // After the listeners are bound: the take-over rules match only while
  // egressd's socket on the Service address exists (nfq/dns_intercept.h).
  // With none configured, ones an earlier run left are removed, but only
  // where egressd owns its rules (nfqueue on, install_rules): a DNS-only
  // egressd never touches iptables.
  const bool ownsRules = config_.nfqueue.enabled && config_.nfqueue.installRules;
  if ((config_.dns.enabled && !config_.dns.intercept.empty()) || ownsRules) {
    if (!applyDnsIntercept(config_, error)) {
      common::LogLine(common::LogLevel::Error, "startup.failed")
          .field("component", "dns")
          .field("error", error);
      return 1;
    }
    for (const auto& address : config_.dns.intercept) {
      common::LogLine(common::LogLevel::Info, "dns.intercepting").field("address", address.toString());
    }
  }
  if (config_.proxy.enabled() && !startProxy(error)) {
    common::LogLine(common::LogLevel::Error, "startup.failed")
        .field("component", "proxy")
        .field("error", error);
    return 1;
  }
  if (config_.nfqueue.enabled) {
    enforcement_ = std::make_unique<Enforcement>(policy_, *bindings_, decisions_.get());
    if (!enforcement_->start(config_, error)) {
      common::LogLine(common::LogLevel::Error, "startup.failed")
          .field("component", "nfqueue")
          .field("error", error);
      return 1;
    }
  }
  if (!startControl(error)) {
    common::LogLine(common::LogLevel::Error, "startup.failed")
        .field("component", "control")
        .field("error", error);
    return 1;
  }
  if (config_.metrics.enabled && !startMetrics(error)) {
    common::LogLine(common::LogLevel::Error, "startup.failed")
        .field("component", "metrics")
        .field("error", error);
    return 1;
  }
  // What this egressd enforces, in one line an operator can check: DNS
  // only, connections (which queues), the proxy, the mode and binding.
  const auto addresses = [](const std::vector<common::SocketAddress>& list) {
    std::string out;
    for (const auto& address : list) out += (out.empty() ? "" : ",") + address.toString();
    return out;
  };
  std::string queues;
  for (uint16_t queue : config_.nfqueue.queues) queues += (queues.empty() ? "" : ",") + std::to_string(queue);
  const bool dns = config_.dns.enabled;
  const bool nfq = config_.nfqueue.enabled;
  const char* enforces = dns && nfq ? "dns+connections"
                         : dns      ? "dns_only"
                         : nfq      ? "connections_only"
                                    : "nothing";
  common::LogLine(common::LogLevel::Info, "egressd.started")
      .field("config", configPath_)
      .field("mode", config::toString(config_.mode))
      .field("enforces", enforces)
      .field("dns", dns ? addresses(config_.dns.listen) : std::string("off"))
      .field("upstreams",
             dns ? addresses(config_.dns.upstreams) +
                       (config_.dns.upstreamsFrom.empty() ? "" : " (from " + config_.dns.upstreamsFrom + ")")
                 : std::string("-"))
      .field("nfqueue", nfq ? "queues " + queues : std::string("off: connections are not judged"))
      .field("proxy", proxy_ ? addresses(proxy_->boundAddresses()) : std::string("off"))
      .field("attribution",
             config_.attribution.mapFile.empty() ? std::string("off") : config_.attribution.mapFile)
      .field("strict_binding", config_.rules.strictBinding);
  startServiceNotify();
  event_base_dispatch(base_.get());
  // The proxy's own loops end before the last events are drained (their
  // open tunnels are closed with the rest, in the destructor).
  if (proxy_) proxy_->stop();
  // The chain stays: until egressd is back, new flows are dropped, not let
  // through (fail closed across restarts and upgrades).
  if (enforcement_) enforcement_->stop();
  if (decisions_) decisions_->drain();
  control_.reset();  // removes the socket file
  common::logEvent(common::LogLevel::Info, "egressd.stopped");
  return 0;
}

void Daemon::onSignal(evutil_socket_t signal, short, void* arg) {
  auto* self = static_cast<Daemon*>(arg);
  if (signal == SIGHUP) {
    self->reloadConfig();
    return;
  }
  common::LogLine(common::LogLevel::Info, "egressd.stopping")
      .field("signal", signal == SIGTERM ? "TERM" : "INT");
  if (self->notifier_) self->notifyService("STOPPING=1");
  event_base_loopbreak(self->base_.get());
}

void Daemon::startServiceNotify() {
  if (!notifier_) return;
  // Start-up is complete: every component is up (one that cannot start
  // ends egressd with exit code 1 before this). Whether egressd serves is
  // /readyz, carried in STATUS= (a rules directory may still be missing).
  notifiedStatus_ = readinessStatus(readiness());
  notifyService("READY=1\nMAINPID=" + std::to_string(::getpid()) + "\nSTATUS=" + notifiedStatus_);
  // Every second, or twice per watchdog interval when that is shorter.
  std::chrono::microseconds interval = std::chrono::seconds(1);
  if (notifier_->watchdog().count() > 0) interval = std::min(interval, notifier_->watchdog() / 2);
  const timeval tv{static_cast<time_t>(interval.count() / 1000000),
                   static_cast<suseconds_t>(interval.count() % 1000000)};
  notifyTimer_.reset(event_new(base_.get(), -1, EV_PERSIST, &Daemon::onNotifyTimer, this));
  event_add(notifyTimer_.get(), &tv);
}

void Daemon::onNotifyTimer(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Daemon*>(arg);
  std::string message;
  std::string status = readinessStatus(self->readiness());
  if (status != self->notifiedStatus_) {
    message = "STATUS=" + status;
    self->notifiedStatus_ = std::move(status);
  }
  // The loop turned: what /healthz answers for the kubelet, for systemd.
  if (self->notifier_->watchdog().count() > 0)
    message += (message.empty() ? "" : "\n") + std::string("WATCHDOG=1");
  if (!message.empty()) self->notifyService(message);
}

void Daemon::notifyService(const std::string& message) {
  std::string error;
  if (notifier_->send(message, error) || notifyFailureLogged_) return;
  notifyFailureLogged_ = true;  // once: systemd gone away is not news every second
  common::LogLine(common::LogLevel::Warn, "systemd.notify_failed").field("error", error);
}

void Daemon::reloadRules() {
  RulesReload reload = rules_.reload(
      config_.rules.dirs, config_.rules.systemDirs, policy::defaultPublicSuffixList(),
      [this](const std::string& path) { return watcher_ != nullptr && watcher_->beingWritten(path); });
  // The periodic rescan (and editors touching files) usually finds nothing
  // new: republishing the same policy would flush the DNS cache and the
  // kernel fast path for nothing, so an identical result is a no-op, and
  // problems already logged are not logged again. rules.internal_cidrs /
  // public_cidrs travel in the snapshot: a SIGHUP that changes them
  // recompiles as a rules change does.
  noteUnreadableDirs(reload);
  const policy::InternalRanges ranges(config_.rules.internalCidrs, config_.rules.publicCidrs);
  const bool ruleSetsChanged = policyGeneration_ == 0 || reload.ruleSets != publishedRuleSets_ ||
                               !(policy_.load()->internalRanges() == ranges);
  if (!ruleSetsChanged && reload.newProblems.empty() && reload.removedFiles.empty() &&
      !reload.skippedChanged) {
    common::LogLine(common::LogLevel::Debug, "policy.unchanged").field("generation", policyGeneration_);
    return;
  }
  if (ruleSetsChanged) {
    auto compiled = policy::Policy::compile(reload.ruleSets, ranges);
    // The kernel stops allowing first payloads by the old policy's names
    // before the new one is visible (and is refilled under it below).
    if (enforcement_) enforcement_->policyWillChange();
    policy_.publish(std::move(compiled));
    publishedRuleSets_ = reload.ruleSets;
    ++policyGeneration_;
    policyLoadedAt_ = std::chrono::system_clock::now();
    if (enforcement_) enforcement_->policyChanged();  // stale kernel fast-path entries go now
  }
  const auto current = policy_.load();
  stats_.recordRulesReload(reload, *current, policyGeneration_, policyLoadedAt_);
  if (ruleSetsChanged) ruleSetHits_.retain(*current);  // rule sets that are gone lose their series
  logRulesReload(reload, ruleSetsChanged, policyGeneration_, *current);
}

void Daemon::noteUnreadableDirs(const RulesReload& reload) {
  // The loader reports a directory it cannot list (missing, not a
  // directory, no permission) as a problem of the directory itself.
  unreadableDirs_.clear();
  for (const auto& dir : config_.rules.dirs) {
    for (const auto& problem : reload.problems) {
      if (problem.file == dir && problem.document == 0 && problem.line == 0) {
        unreadableDirs_.push_back(dir);
        break;
      }
    }
  }
}

Readiness Daemon::readiness() const {
  ReadinessInputs in;
  in.policyLoaded = policyGeneration_ > 0;
  in.unreadableDirs = unreadableDirs_;
  in.dnsEnabled = config_.dns.enabled;
  in.dnsListenersWanted = config_.dns.listen.size();
  in.dnsListenersOpen = dns_ ? dns_->boundAddresses().size() : 0;
  in.nfqueueEnabled = config_.nfqueue.enabled;
  in.queuesWanted = config_.nfqueue.queues.size();
  in.workersRunning = enforcement_ ? enforcement_->workers().size() : 0;
  return judgeReadiness(in);
}

void Daemon::reloadConfig() {
  config::ConfigLoad loaded = config::loadConfigFile(configPath_);
  if (!loaded.ok()) {
    for (const auto& problem : loaded.problems) {
      common::LogLine(common::LogLevel::Error, "config.problem").field("problem", problem.toString());
    }
    common::LogLine(common::LogLevel::Error, "config.reload_failed")
        .field("problems", loaded.problems.size())
        .field("action", "keeping the running configuration");
    stats_.recordConfigReload(false);
    return;
  }
  for (const auto& warning : loaded.warnings) {
    common::LogLine(common::LogLevel::Warn, "config.warning").field("problem", warning.toString());
  }
  const auto restartOnly = config::restartOnlyChanges(config_, *loaded.config);
  if (!restartOnly.empty()) {
    common::LogLine(common::LogLevel::Warn, "config.restart_needed")
        .field("keys", joinNames(restartOnly))
        .field("action", "keeping the running values until restart");
  }
  const bool dirsChanged = loaded.config->rules.dirs != config_.rules.dirs;
  config_ = config::withRestartOnlyFrom(*loaded.config, config_);
  common::setLogLevel(config_.log.level);
  if (dns_) dns_->updateOptions(dnsOptions());
  if (enforcement_) {
    std::string error;
    if (!enforcement_->update(config_, error)) {
      common::LogLine(common::LogLevel::Error, "nfq.update_failed").field("error", error);
    }
  }
  if (dirsChanged) {
    std::string error;
    if (!watcher_->watch(config_.rules.dirs, error)) {
      common::LogLine(common::LogLevel::Error, "rules.watch_failed").field("error", error);
    }
  }
  reloadRules();
  stats_.recordConfigReload(true);
  common::LogLine(common::LogLevel::Info, "config.reloaded").field("mode", config::toString(config_.mode));
}

dns::DnsOptions Daemon::dnsOptions() const {
  const config::DnsConfig& d = config_.dns;
  dns::DnsOptions options;
  options.listen = d.listen;
  options.upstreams = d.upstreams;
  options.clusterDomains = d.clusterDomains;
  options.clusterUpstreams = d.clusterUpstreams.empty() ? d.upstreams : d.clusterUpstreams;
  options.denyRcode =
      d.denyRcode == config::DenyRcode::Refused ? dns::DenyRcode::Refused : dns::DenyRcode::NxDomain;
  options.stripEch = d.stripEch;
  options.upstreamTimeout = d.upstreamTimeout;
  options.cacheSize = d.cacheSize;
  options.tcpIdleTimeout = d.tcpIdleTimeout;
  options.maxTcpClients = d.maxTcpClients;
  options.bindingGrace = config_.rules.bindingGrace;
  options.audit = config_.mode == config::Mode::Audit;
  options.tunnelGuardNames = d.tunnelGuardNames;
  options.tunnelGuardWindow = std::chrono::duration_cast<std::chrono::milliseconds>(d.tunnelGuardWindow);
  options.proxyProtocolFrom = d.proxyProtocolFrom;
  return options;
}

bool Daemon::startDns(std::string& error) {
  dns_ = std::make_unique<dns::DnsService>(base_.get(), dnsOptions(), policy_, *bindings_, this);
  if (!dns_->start(error)) return false;
  if (decisions_) decisions_->setDnsListeners(dns_->boundAddresses());
  for (const auto& address : dns_->boundAddresses()) {
    common::LogLine(common::LogLevel::Info, "dns.listening").field("address", address.toString());
  }
  return true;
}

void Daemon::onDnsEvent(const dns::DnsEvent& event) {
  // Logged, counted and streamed to `watch` clients by the event hub.
  if (decisions_) decisions_->onDnsEvent(event);
}

bool Daemon::wantsDnsEvent(dns::DnsOutcome outcome, dns::DenyReason reason, bool audit) const noexcept {
  return decisions_ && decisions_->wantsDnsEvent(outcome, reason, audit);
}

void Daemon::onDnsCacheHits(std::string_view name, const policy::Policy& policy, uint64_t hits) {
  if (decisions_) decisions_->onDnsCacheHits(name, policy, hits);
}

bool Daemon::startProxy(std::string& error) {
  const config::ProxyConfig& p = config_.proxy;
  proxy::ProxyOptions options;
  options.listen = p.listen;
  options.clients = p.clients;
  options.proxyProtocolFrom = p.proxyProtocolFrom;
  options.maxHeadBytes = p.maxHeadBytes;
  options.maxConnections = p.maxConnections;
  options.headerTimeout = std::chrono::duration_cast<std::chrono::milliseconds>(p.headerTimeout);
  options.idleTimeout = std::chrono::duration_cast<std::chrono::milliseconds>(p.idleTimeout);
  options.connectTimeout = std::chrono::duration_cast<std::chrono::milliseconds>(p.connectTimeout);
  options.audit = config_.mode == config::Mode::Audit;
  // The proxy's own connections carry the bypass mark: egressd's chain
  // lets them out instead of queueing them (the proxy has judged them).
  options.socketMark = nfq::MarkScheme().bypass;
  options.bindingGrace = std::chrono::duration_cast<std::chrono::seconds>(config_.rules.bindingGrace);
  // Names are resolved by egressd's own DNS (same upstreams, cache and
  // rebinding refusal; the answers become bindings there too), reached on
  // loopback when it listens on a wildcard address. Not on an address of
  // dns.intercept: egressd's own queries to it leave through OUTPUT, which
  // the take-over leaves to kube-proxy, so they would reach CoreDNS.
  if (dns_ && !dns_->boundAddresses().empty()) {
    const auto& bound = dns_->boundAddresses();
    const auto& intercepted = config_.dns.intercept;
    const auto own = std::find_if(bound.begin(), bound.end(), [&](const common::SocketAddress& address) {
      return std::find(intercepted.begin(), intercepted.end(), address) == intercepted.end();
    });
    if (own == bound.end()) {
      error =
          "proxy.listen is set but every dns.listen address is in dns.intercept, which egressd's own "
          "queries do not reach (they go to CoreDNS): add a listener for the proxy, e.g. \"127.0.0.1:53\" "
          "in dns.listen";
      return false;
    }
    options.resolver = *own;
    const common::IpAddress any4{};
    common::IpAddress any6;
    any6.family = common::IpFamily::V6;
    if (options.resolver.ip == any4) options.resolver.ip = common::IpAddress::v4(0x7f000001);
    if (options.resolver.ip == any6) options.resolver.ip.bytes[15] = 1;
  } else if (!config_.dns.upstreams.empty()) {
    options.resolver = config_.dns.upstreams.front();
  } else {
    error = "proxy.listen is set but there is no resolver: enable [dns] or give dns.upstreams";
    return false;
  }
  // proxy.threads: 1 serves on this loop; more, each on its own loop and
  // listeners (SO_REUSEPORT). Bound here, before /readyz can say ready.
  proxy_ = std::make_unique<proxy::ProxyLoops>(base_.get(), proxyThreads_, std::move(options), policy_,
                                               *bindings_, this);
  if (!proxy_->start(error)) {
    proxy_.reset();
    return false;
  }
  for (const auto& address : proxy_->boundAddresses()) {
    common::LogLine(common::LogLevel::Info, "proxy.listening")
        .field("address", address.toString())
        .field("resolver", proxy_->options().resolver.toString())
        .field("threads", proxy_->threads());
  }
  return true;
}

void Daemon::onProxyEvent(const observe::Event& event) {
  if (!decisions_) return;
  if (proxyThreads_ > 1) {
    decisions_->publishProxyEvent(event);  // from a proxy loop's thread
  } else {
    decisions_->onProxyEvent(event);
  }
}

bool Daemon::startControl(std::string& error) {
  ControlServerOptions options;
  options.path = config_.control.socket;
  options.mode = static_cast<mode_t>(config_.control.socketMode);  // control.socket_mode
  options.audit = [this] { return config_.mode == config::Mode::Audit; };
  control_ = std::make_unique<ControlServer>(
      base_.get(), options, policy_, [this] { return controlStats(); }, decisions_.get());
  if (!control_->start(error)) {
    control_.reset();
    return false;
  }
  decisions_->setFanout(
      [this](const observe::Event& event, const observe::CapturedPacket* packet) {
        if (control_) control_->publish(event, packet);
      },
      [this] { return control_ && control_->watching(); });
  common::LogLine(common::LogLevel::Info, "control.listening").field("socket", config_.control.socket);
  return true;
}

nlohmann::json Daemon::controlStats() {
  // The numbers of /metrics (daemon/stats.h), plus the control socket's own.
  nlohmann::json out = collectStatsJson(statsSources());
  if (control_) {
    const ControlServerCounters c = control_->counters();
    out["control"] = {{"clients", c.clients},
                      {"watchers", c.watchers},
                      {"requests", c.requests},
                      {"bad_requests", c.badRequests},
                      {"watch_events_sent", c.watchEventsSent},
                      {"watch_events_dropped", c.watchEventsDropped}};
  }
  if (proxy_) {
    // The proxy's numbers of /metrics, every loop's added up.
    proxy::ProxyCounters p;
    proxy_->sumCounters(p);
    const auto load = [](const std::atomic<uint64_t>& value) {
      return value.load(std::memory_order_relaxed);
    };
    out["proxy"] = {{"threads", proxy_->threads()},
                    {"connections", load(p.connectionsAccepted)},
                    {"connections_by_loop", proxy_->connectionsPerLoop()},
                    {"connections_open", load(p.connectionsActive)},
                    {"tunnels_open", load(p.tunnelsActive)},
                    {"requests", {{"connect", load(p.connectRequests)}, {"http", load(p.httpRequests)}}},
                    {"clients_refused", load(p.clientsRefused)},
                    {"bytes", {{"upstream", load(p.bytesToUpstream)}, {"client", load(p.bytesToClient)}}}};
  }
  return out;
}

StatsSources Daemon::statsSources() {
  // Cache hits counted lazily reach the per-rule-set counts now, before
  // they are read; so do DNS denials when no attribution names their
  // clients (all of them are "_none", no event needed).
  if (dns_) {
    dns_->reportCacheHits();
    if (!podMap_) {
      const dns::DnsCounters& counters = dns_->counters();
      namespaceDenials_.setUnattributedDns(counters.verdictDeny.load(std::memory_order_relaxed),
                                           counters.verdictAudit.load(std::memory_order_relaxed));
    }
  }
  StatsSources sources;
  sources.audit = config_.mode == config::Mode::Audit;
  sources.daemon = &stats_;
  if (enforcement_) {
    sources.enforcement = enforcement_.get();  // queue totals across worker restarts, fast path
    sources.flowCapacity = config_.nfqueue.maxHeldFlows;
  }
  sources.dns = dns_.get();
  sources.dnsCacheCapacity = config_.dns.cacheSize;
  sources.bindings = bindings_.get();
  sources.ruleSetHits = &ruleSetHits_;
  sources.namespaceDenials = &namespaceDenials_;
  if (podMap_) sources.podMap = &podMap_->counters();
  if (decisions_) sources.eventsDropped = decisions_->counters().dropped;
  if (control_) sources.controlClientDrops = control_->counters().watchEventsDropped;
  return sources;
}

bool Daemon::startMetrics(std::string& error) {
  metrics_ = std::make_unique<MetricsServer>(
      base_.get(),
      [this] {
        std::string text = renderPrometheus(collectStats(statsSources()));
        if (proxy_) {
          proxy::ProxyCounters total;  // every loop's, added up
          proxy_->sumCounters(total);
          text += proxy::renderPrometheus(total, proxy_->connectionsPerLoop());
        }
        return text;
      },
      [this] { return readiness(); });
  if (!metrics_->start(config_.metrics.listen, error)) return false;
  common::LogLine(common::LogLevel::Info, "metrics.listening")
      .field("address", metrics_->boundAddress().toString());
  return true;
}

}  // namespace daemon_main

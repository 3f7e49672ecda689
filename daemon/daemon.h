// egressd's process: wires configuration, rules, DNS and the NFQUEUE
// verdict workers onto one libevent loop (the proxy, proxy.threads > 1, onto
// loops of its own: proxy/loops.h). Owns every component; the pure
// logic lives in the component libraries.
//
// Lifecycle: run() loads the rules before any listener opens (fail closed:
// nothing is answered or allowed from an unloaded policy), then serves until
// SIGTERM/SIGINT. SIGHUP re-reads the config file: a bad file is reported
// and the running configuration stays; restart-only changes are named and
// left for a restart.
#pragma once

#include <event2/event.h>

#include <memory>
#include <string>

#include "common/c_handle.h"
#include "common/snapshot.h"
#include "config/config.h"
#include "daemon/control_server.h"
#include "daemon/enforcement.h"
#include "daemon/event_hub.h"
#include "daemon/health.h"
#include "daemon/metrics.h"
#include "daemon/namespace_denials.h"
#include "daemon/pod_map_loader.h"
#include "daemon/rule_set_hits.h"
#include "daemon/rules_state.h"
#include "daemon/rules_watcher.h"
#include "daemon/service_notify.h"
#include "daemon/stats.h"
#include "dns/binding_table.h"
#include "dns/service.h"
#include "policy/policy.h"
#include "proxy/loops.h"
#include "proxy/server.h"

namespace daemon_main {

class Daemon final : public dns::DnsEventSink, public proxy::ProxyEventSink {
 public:
  Daemon(std::string configPath, config::Config config);
  ~Daemon() override;
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Returns the process exit code.
  int run();

  void onDnsEvent(const dns::DnsEvent& event) override;
  bool wantsDnsEvent(dns::DnsOutcome outcome, dns::DenyReason reason, bool audit) const noexcept override;
  void onDnsCacheHits(std::string_view name, const policy::Policy& policy, uint64_t hits) override;
  // On the proxy's loop: this one, or one of its own threads.
  void onProxyEvent(const observe::Event& event) override;

 private:
  static void onSignal(evutil_socket_t signal, short what, void* arg);
  // systemd (Type=notify, daemon/service_notify.h): READY=1 after start-up,
  // then STATUS= on every /readyz change and WATCHDOG=1 from the loop.
  void startServiceNotify();
  static void onNotifyTimer(evutil_socket_t fd, short what, void* arg);
  void notifyService(const std::string& message);
  void reloadRules();
  void reloadConfig();
  bool startDns(std::string& error);
  dns::DnsOptions dnsOptions() const;
  bool startProxy(std::string& error);
  bool startControl(std::string& error);
  nlohmann::json controlStats();
  // What /metrics and `egressctl stats` report (daemon/stats.h); event loop.
  // Brings the counts the DNS service keeps for later (cache hits per rule
  // set, denials without attribution) up to date first.
  StatsSources statsSources();
  bool startMetrics(std::string& error);
  // /readyz (daemon/health.h): what the last rules pass and the running
  // components say; event loop.
  void noteUnreadableDirs(const RulesReload& reload);
  Readiness readiness() const;

  std::string configPath_;
  config::Config config_;
  common::CHandle<event_base, event_base_free> base_;
  common::SnapshotHolder<policy::Policy> policy_;
  RulesState rules_;
  std::unique_ptr<RulesWatcher> watcher_;
  // Attribution ([attribution] map_file): the pod of each client address.
  common::SnapshotHolder<attribution::PodTable> pods_;
  std::unique_ptr<PodMapLoader> podMap_;
  std::unique_ptr<dns::BindingTable> bindings_;
  std::unique_ptr<dns::DnsService> dns_;
  // The explicit proxy, when proxy.listen is set: on this loop, or on
  // loops of its own (proxy.threads > 1, proxyThreads_), whose decisions
  // then reach the hub through its rings.
  std::unique_ptr<proxy::ProxyLoops> proxy_;
  size_t proxyThreads_ = 1;
  std::unique_ptr<EventHub> decisions_;  // every decision: log, counters, watch
  std::unique_ptr<ControlServer> control_;
  std::unique_ptr<Enforcement> enforcement_;
  common::CHandle<event, event_free> sighup_;
  common::CHandle<event, event_free> sigterm_;
  common::CHandle<event, event_free> sigint_;
  std::unique_ptr<ServiceNotifier> notifier_;  // null unless started by systemd with NOTIFY_SOCKET
  common::CHandle<event, event_free> notifyTimer_;
  std::string notifiedStatus_;
  bool notifyFailureLogged_ = false;
  uint64_t policyGeneration_ = 0;
  // What the running policy was compiled from: a reload that finds the
  // same rule sets publishes nothing.
  std::vector<policy::RuleSet> publishedRuleSets_;
  std::chrono::system_clock::time_point policyLoadedAt_;
  std::vector<std::string> unreadableDirs_;  // configured rules dirs the last pass could not list
  // Metrics: reload counters, per-rule-set hits (fed by the event hub), the
  // /metrics listener.
  DaemonStats stats_;
  RuleSetHits ruleSetHits_;
  NamespaceDenials namespaceDenials_;
  std::unique_ptr<MetricsServer> metrics_;
};

}  // namespace daemon_main

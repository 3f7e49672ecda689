// egressd's process: wires configuration, rules, DNS and the NFQUEUE
// verdict workers onto one libevent loop. Owns every component; the pure
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
#include "daemon/decision_log.h"
#include "daemon/enforcement.h"
#include "daemon/rules_state.h"
#include "daemon/rules_watcher.h"
#include "dns/binding_table.h"
#include "dns/service.h"
#include "policy/policy.h"

namespace daemon_main {

class Daemon final : public dns::DnsEventSink {
 public:
  Daemon(std::string configPath, config::Config config);
  ~Daemon() override;
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Returns the process exit code.
  int run();

  void onDnsEvent(const dns::DnsEvent& event) override;

 private:
  static void onSignal(evutil_socket_t signal, short what, void* arg);
  void reloadRules();
  void reloadConfig();
  bool startDns(std::string& error);
  dns::DnsOptions dnsOptions() const;

  std::string configPath_;
  config::Config config_;
  common::CHandle<event_base, event_base_free> base_;
  common::SnapshotHolder<policy::Policy> policy_;
  RulesState rules_;
  std::unique_ptr<RulesWatcher> watcher_;
  std::unique_ptr<dns::BindingTable> bindings_;
  std::unique_ptr<dns::DnsService> dns_;
  std::unique_ptr<DecisionLog> decisions_;
  std::unique_ptr<Enforcement> enforcement_;
  common::CHandle<event, event_free> sighup_;
  common::CHandle<event, event_free> sigterm_;
  common::CHandle<event, event_free> sigint_;
  uint64_t policyGeneration_ = 0;
};

}  // namespace daemon_main

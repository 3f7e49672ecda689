// The transparent enforcement part of egressd: egressd's iptables chain and
// one NFQUEUE worker per configured queue, fed with the policy snapshot and
// the DNS binding table.
//
// Fail closed: the chain queues new flows without --queue-bypass, so while
// no worker is bound (egressd stopped, restarting, crashed) the kernel drops
// them; stop() therefore leaves the chain in place, and only uninstall()
// (egressd --uninstall) removes it.
//
// Thread-safety: start/stop/restart from the daemon's event loop thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/snapshot.h"
#include "config/config.h"
#include "dns/binding_table.h"
#include "nfq/queue_worker.h"
#include "nfq/ruleset.h"

namespace daemon_main {

// Lets the verdict workers ask the DNS binding table.
class BindingTableLookup final : public nfq::BindingLookup {
 public:
  explicit BindingTableLookup(const dns::BindingTable& table) : table_(table) {}
  bool isBound(std::string_view name, const common::IpAddress& ip,
               nfq::TimePoint now) const noexcept override;
  void forEachBoundName(const common::IpAddress& ip, nfq::TimePoint now,
                        Visitor& visitor) const noexcept override;

 private:
  const dns::BindingTable& table_;
};

// The chain egressd installs for `config` (both families).
nfq::RulesetOptions rulesetOptions(const config::Config& config);

class Enforcement {
 public:
  Enforcement(const common::SnapshotHolder<policy::Policy>& policy, const dns::BindingTable& bindings,
              nfq::EventSink* events);
  ~Enforcement();
  Enforcement(const Enforcement&) = delete;
  Enforcement& operator=(const Enforcement&) = delete;

  // Installs the chain (if nfqueue.install_rules) and starts the workers.
  bool start(const config::Config& config, std::string& error);
  // Stops the workers (held packets are denied); the chain stays.
  void stop();
  // Applies changed live settings (mode, strict binding, hold timeout) by
  // restarting the workers; queued packets wait in the kernel meanwhile.
  bool update(const config::Config& config, std::string& error);

  const std::vector<std::unique_ptr<nfq::QueueWorker>>& workers() const noexcept { return workers_; }

 private:
  bool startWorkers(const config::Config& config, std::string& error);

  const common::SnapshotHolder<policy::Policy>& policy_;
  BindingTableLookup bindings_;
  nfq::EventSink* events_;
  std::vector<std::unique_ptr<nfq::QueueWorker>> workers_;
  config::Config running_;
};

// egressd --uninstall: removes the chain and its jumps (both families).
bool uninstall(const config::Config& config, std::string& error);

}  // namespace daemon_main

// The transparent enforcement part of egressd: egressd's iptables chain and
// one NFQUEUE worker per configured queue, fed with the policy snapshot and
// the DNS binding table.
//
// Fail closed: the chain queues new flows without --queue-bypass, so while
// no worker is bound (egressd stopped, restarting, crashed) the kernel drops
// them; stop() therefore leaves the chain in place, and only uninstall()
// (egressd --uninstall) removes it.
//
// The kernel fast path (nfqueue.install_rules): the chain passes SYNs to
// DNS-bound (address, port) pairs and payload-less handshake segments in the
// kernel; BoundSetFeeder keeps the bound sets in step with the binding
// table (each new binding, with its expiry) and the policy (flushed and
// refilled when it changes), so a connection to an allowed name costs one
// packet in user space: its first payload.
//
// The kernel verdict (nfqueue.kernel_verdict, nfq/kernel_verdict.h): with
// the kernel guard, the fast path and one queue, that first payload too is
// judged in the kernel when it names a bound name an exact or wildcard
// rule allows; the feeder writes those names next to the set entries, and
// policyWillChange() voids them before a new policy is published. The
// worker adopts each allow from the program's ring (event, check 2).
//
// Counters: queueTotals() reports each queue's counters since start, the
// workers' that update() replaced included, so /metrics never goes back.
//
// Thread-safety: start/stop/restart/policyChanged/queueTotals from the
// daemon's event loop thread; the feeder is also called from whatever thread records
// bindings (a mutex serialises it).
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/snapshot.h"
#include "config/config.h"
#include "dns/binding_table.h"
#include "nfq/bound_set.h"
#include "nfq/dns_intercept.h"
#include "nfq/ipset.h"
#include "nfq/kernel_verdict.h"
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

struct FastPathStats {
  std::atomic<uint64_t> bindings{0};  // bindings seen (new or extended)
  std::atomic<uint64_t> entries{0};   // set entries written (added or timeout renewed)
  std::atomic<uint64_t> setFull{0};   // refused: set at maxelem (those SYNs go to user space)
  std::atomic<uint64_t> failed{0};    // other kernel refusals, send errors, plan overflow
  std::atomic<uint64_t> resyncs{0};   // flush + refill after a policy change
  std::atomic<uint64_t> flushes{0};   // sets emptied (resync, stop), each set counted
  // The kernel verdict's names map (nfq/kernel_verdict.h): entries written,
  // and those refused (map full, a name that cannot be a key) or that did
  // not fit the plan (their first payloads go to user space).
  std::atomic<uint64_t> kernelNames{0};
  std::atomic<uint64_t> kernelNamesFailed{0};
  std::atomic<uint64_t> kernelNamesEvicted{0};  // bindings evicted for room: their names deleted
};

// Entries in the kernel's bound sets now (nullopt: could not be read).
struct BoundSetSizes {
  std::optional<uint64_t> v4;
  std::optional<uint64_t> v6;
};

// Writes the (address, tcp:port) pairs of each binding into the bound sets
// (nfq::planBoundEntries decides which). Cheap on the DNS path: a table
// lookup of the address's names, a few policy lookups, one sendmsg without
// waiting for an answer, no allocation.
class BoundSetFeeder final : public dns::BindingObserver {
 public:
  BoundSetFeeder(const common::SnapshotHolder<policy::Policy>& policy, const dns::BindingTable& bindings,
                 std::string set4, std::string set6);
  bool open(std::string& error);

  void onBound(std::string_view name, const common::IpAddress& ip, nfq::TimePoint expiry) noexcept override;
  // A name the binding table dropped for room leaves the kernel verdict's
  // names map too (its ipset pair only lets SYNs through: it stays).
  void onEvicted(std::string_view name, const common::IpAddress& ip) noexcept override;
  // Empties the sets and refills them from the unexpired bindings under the
  // current policy. Entries of names the new policy no longer allows must
  // stop passing at once; the refill keeps the others in the kernel.
  void resync() noexcept;
  // Empties the sets (egressd stopping: SYNs then go to the unread queue).
  void clear() noexcept;
  // The kernel verdict's names map, fed from the same bindings (null: off).
  // Set before the first resync.
  void setKernelVerdict(nfq::KernelVerdict* verdict) noexcept;
  // A new policy is about to be published (or egressd stops): every name
  // written so far stops counting in the kernel, and none is written until
  // the next resync() plans them under the new policy.
  void suspendKernelNames() noexcept;

  const FastPathStats& stats() const noexcept { return stats_; }
  // Asks the kernel (two netlink round trips, under the feeder's lock): for
  // a scrape, never for the data path.
  BoundSetSizes setSizes() const;

 private:
  void refreshPolicyLocked() noexcept;
  void resyncLocked() noexcept;
  void write(std::span<const nfq::SetEntry> entries) noexcept;
  void writeKernelNames(const common::IpAddress& ip, std::span<const nfq::BoundNameExpiry> names,
                        nfq::TimePoint now) noexcept;

  // Mutable: setSizes() is a read, but it talks over the one socket.
  mutable std::mutex mutex_;
  common::SnapshotReader<policy::Policy> policyReader_;
  std::shared_ptr<const policy::Policy> policy_;
  nfq::NamePorts namePorts_;
  const dns::BindingTable& bindings_;
  std::string set4_;
  std::string set6_;
  mutable nfq::IpSetClient client_;
  std::vector<nfq::SetEntry> plan_;     // preallocated
  std::vector<nfq::SetEntry> pending_;  // resync batches, preallocated
  nfq::KernelVerdict* kernelVerdict_ = nullptr;
  std::vector<nfq::KernelNameEntry> kernelPlan_;  // preallocated
  bool kernelNamesSuspended_ = false;
  FastPathStats stats_;
};

// The counters of one configured queue since egressd started.
struct QueueTotals {
  uint16_t queue = 0;
  nfq::QueueCounters counters;
};

// The final counters of the workers that were replaced (a restart on a
// live-settings change), per queue, so reported counters never go back.
// Pure; one thread (the event loop).
class RetiredCounters {
 public:
  void retire(uint16_t queue, const nfq::QueueCounters& last);
  // `live` (the running worker's counters, or zeros) plus the retired ones.
  nfq::QueueCounters total(uint16_t queue, const nfq::QueueCounters& live) const;

 private:
  std::map<uint16_t, nfq::QueueCounters> retired_;
};

class Enforcement {
 public:
  Enforcement(const common::SnapshotHolder<policy::Policy>& policy, dns::BindingTable& bindings,
              nfq::EventSink* events);
  ~Enforcement();
  Enforcement(const Enforcement&) = delete;
  Enforcement& operator=(const Enforcement&) = delete;

  // Installs the chain (if nfqueue.install_rules) and starts the workers.
  bool start(const config::Config& config, std::string& error);
  // Stops the workers (held packets are denied) and empties the bound sets;
  // the chain stays.
  void stop();
  // A new policy snapshot is about to be published: the kernel verdict
  // stops allowing by the names of the old one (before the publish, so no
  // first payload is allowed in the kernel by a rule already gone).
  void policyWillChange();
  // The policy snapshot was replaced: stale bound-set entries go now, and
  // the kernel verdict's names are written again under the new policy.
  void policyChanged();
  // Applies changed live settings: mode and strict binding are swapped into
  // the running workers; a changed hold timeout restarts them.
  bool update(const config::Config& config, std::string& error);

  const std::vector<std::unique_ptr<nfq::QueueWorker>>& workers() const noexcept { return workers_; }
  // Per configured queue, in configuration order: the running worker's
  // counters plus those of the workers it replaced (event loop thread).
  std::vector<QueueTotals> queueTotals() const;
  // Null when the fast path is off (nfqueue.install_rules = false).
  const BoundSetFeeder* fastPath() const noexcept { return feeder_.get(); }
  // Null when the insertion guard's checks run in user space
  // (nfqueue.kernel_guard = "off", or the kernel guard could not load).
  const nfq::KernelGuard* kernelGuard() const noexcept { return kernelGuard_.get(); }
  // Null when every first payload is judged in user space
  // (nfqueue.kernel_verdict = "off", or a condition was missing).
  const nfq::KernelVerdict* kernelVerdict() const noexcept { return kernelVerdict_.get(); }

 private:
  // nfqueue.kernel_verdict: opened when every condition holds (the guard,
  // one queue, the fast path), else logged once; sets ruleset.kernelVerdict.
  void openKernelVerdict(const config::Config& config, nfq::RulesetOptions& ruleset);
  void dropKernelVerdict(nfq::RulesetOptions& ruleset);
  bool startWorkers(const config::Config& config, std::string& error);
  void stopWorkers();

  const common::SnapshotHolder<policy::Policy>& policy_;
  dns::BindingTable& table_;
  BindingTableLookup bindings_;
  std::unique_ptr<BoundSetFeeder> feeder_;
  std::unique_ptr<nfq::KernelGuard> kernelGuard_;  // before the workers, which borrow it
  std::unique_ptr<nfq::KernelVerdict>
      kernelVerdict_;  // uses the guard's maps; borrowed by the feeder and the worker
  nfq::EventSink* events_;
  std::vector<std::unique_ptr<nfq::QueueWorker>> workers_;
  std::vector<uint16_t> workerQueues_;  // the queue of each of workers_
  RetiredCounters retired_;
  config::Config running_;
};

// The Service addresses egressd takes over for DNS (dns.intercept).
nfq::DnsInterceptOptions dnsInterceptOptions(const config::Config& config);

// Installs the DNS take-over rules of dns.intercept (nfq/dns_intercept.h),
// or removes them when it is empty (a node switched to the link-local
// address). They stay when egressd stops: they only match while egressd's
// socket is bound.
bool applyDnsIntercept(const config::Config& config, std::string& error);

// egressd --uninstall: removes the chain and its jumps (both families), the
// bound sets and the DNS take-over chains.
bool uninstall(const config::Config& config, std::string& error);

}  // namespace daemon_main

// The explicit proxy on one or more event loops (proxy.threads). With one,
// the ProxyServer runs on the caller's loop (egressd's main loop), as it
// did before there was a choice. With N > 1, each of N threads runs its
// own event_base and its own ProxyServer, whose listeners are bound with
// SO_REUSEPORT on every proxy.listen address: the kernel spreads the
// connections among them (by a hash of the addresses and ports), and a
// connection stays on the loop that accepted it until it ends. The
// request logic is untouched: each server is the one of proxy/server.h,
// with its own resolver (evdns), answer cache, pipe pool and counters.
//
// What the loops share is thread-safe: the policy holder, the binding
// table, the count of open connections (proxy.max_connections holds for
// all of them together), and the event sink, which must accept events
// from every loop's thread when N > 1 (the daemon's hub takes them into
// its rings, as it does the NFQUEUE workers').
//
// Lifecycle: start() binds every listener on the calling thread, before
// any thread runs (so a caller that reports ready after start() is right
// to), then starts the threads. stop() asks each loop to end and joins
// its thread (nothing is served after it; the counters stay readable);
// the destructor stops, then frees the servers, which closes their
// listeners and open tunnels, as on the single loop.
//
// Ownership: borrows the caller's event_base (threads == 1), the policy
// holder, the binding table and the sink (all must outlive the loops).
// Thread-safety: start(), stop() and the accessors on the caller's thread;
// counters may be read while the loops run.
#pragma once

#include <event2/event.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/c_handle.h"
#include "common/snapshot.h"
#include "common/unique_fd.h"
#include "dns/binding_table.h"
#include "policy/policy.h"
#include "proxy/server.h"

namespace proxy {

class ProxyLoops {
 public:
  // `threads` >= 1; `base` runs the only server when it is 1.
  ProxyLoops(event_base* base, size_t threads, ProxyOptions options,
             const common::SnapshotHolder<policy::Policy>& policy, dns::BindingTable& bindings,
             ProxyEventSink* sink);
  ~ProxyLoops();
  ProxyLoops(const ProxyLoops&) = delete;
  ProxyLoops& operator=(const ProxyLoops&) = delete;

  // Binds every listen address for every loop, then starts the threads.
  // False with `error` (naming the address) and nothing left running.
  bool start(std::string& error);
  // Ends every loop and joins its thread; idempotent.
  void stop();

  size_t threads() const noexcept { return shards_.size(); }
  const std::vector<common::SocketAddress>& boundAddresses() const noexcept;
  const ProxyOptions& options() const noexcept { return options_; }
  // Every loop's counters added up (monotonic: each loop's counters live
  // as long as this object). Into `out`, which starts from zero.
  void sumCounters(ProxyCounters& out) const noexcept;
  // Connections accepted by each loop, in loop order.
  std::vector<uint64_t> connectionsPerLoop() const;

 private:
  struct Shard;
  static void onStop(evutil_socket_t fd, short what, void* arg);
  bool startShard(Shard& shard, ProxyOptions options, std::string& error);

  event_base* callerBase_;
  ProxyOptions options_;
  const common::SnapshotHolder<policy::Policy>& policy_;
  dns::BindingTable& bindings_;
  ProxyEventSink* sink_;
  std::atomic<size_t> openConnections_{0};  // all loops together (proxy.max_connections)
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace proxy

#include "proxy/loops.h"

#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>

#include "common/errno_text.h"

namespace proxy {

// One event loop and the server on it. Members are declared in the order
// they can be freed backwards: the thread (joined) before the server, the
// server before its event_base.
struct ProxyLoops::Shard {
  size_t index = 0;
  common::CHandle<event_base, event_base_free> ownBase;  // null: the caller's loop
  event_base* base = nullptr;
  common::UniqueFd wake;  // eventfd: stop() writes, onStop() ends the loop
  common::CHandle<event, event_free> stopEvent;
  std::unique_ptr<ProxyServer> server;
  std::thread thread;
};

namespace {

void addCounters(const ProxyCounters& from, ProxyCounters& to) noexcept {
  const auto add = [](const std::atomic<uint64_t>& a, std::atomic<uint64_t>& b) {
    b.fetch_add(a.load(std::memory_order_relaxed), std::memory_order_relaxed);
  };
  add(from.connectionsAccepted, to.connectionsAccepted);
  add(from.connectionsActive, to.connectionsActive);
  add(from.tunnelsActive, to.tunnelsActive);
  add(from.tunnelsUnspliced, to.tunnelsUnspliced);
  add(from.tunnelResets, to.tunnelResets);
  add(from.connectRequests, to.connectRequests);
  add(from.httpRequests, to.httpRequests);
  add(from.idleTimeouts, to.idleTimeouts);
  add(from.bytesToUpstream, to.bytesToUpstream);
  add(from.bytesToClient, to.bytesToClient);
  add(from.bindingsRecorded, to.bindingsRecorded);
  add(from.resolverCacheHits, to.resolverCacheHits);
  add(from.clientsRefused, to.clientsRefused);
  add(from.proxyHeaders, to.proxyHeaders);
  add(from.proxyHeadersLocal, to.proxyHeadersLocal);
  for (size_t i = 0; i < kProxyReasonCount; ++i) {
    add(from.outcomes[i], to.outcomes[i]);
    add(from.wouldDeny[i], to.wouldDeny[i]);
  }
}

// Whether `address` is free: a plain bind (SO_REUSEADDR, as the listeners
// have, but not SO_REUSEPORT) fails while anyone listens there. The loops'
// own listeners share their ports (SO_REUSEPORT), so without this check a
// second egressd of the same user on the same addresses would quietly
// take a share of the connections instead of failing to start, as it does
// with one loop.
bool addressFree(const common::SocketAddress& address, std::string& error) {
  if (address.port == 0) return true;  // any port: nobody else's
  sockaddr_storage storage{};
  const socklen_t length = address.toSockaddr(storage);
  const common::UniqueFd probe(::socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe) return true;  // the listener's own bind will say what is wrong
  const int one = 1;
  ::setsockopt(probe.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(probe.get(), reinterpret_cast<const sockaddr*>(&storage), length) == 0 || errno != EADDRINUSE) {
    return true;
  }
  error = "cannot listen on " + address.toString() +
          " (proxy.listen): address in use (another egressd or proxy listens there)";
  return false;
}

// A loop thread's body. The signals egressd handles (SIGHUP, SIGTERM,
// SIGINT) are blocked in it (inherited from start()), so they always wake
// the main loop.
void runLoop(event_base* base, size_t index) {
  const std::string name = "egressd-proxy" + std::to_string(index);  // at most 15 bytes
  ::pthread_setname_np(::pthread_self(), name.c_str());
  event_base_dispatch(base);
}

}  // namespace

ProxyLoops::ProxyLoops(event_base* base, size_t threads, ProxyOptions options,
                       const common::SnapshotHolder<policy::Policy>& policy, dns::BindingTable& bindings,
                       ProxyEventSink* sink)
    : callerBase_(base), options_(std::move(options)), policy_(policy), bindings_(bindings), sink_(sink) {
  for (size_t i = 0; i < std::max<size_t>(threads, 1); ++i) {
    shards_.push_back(std::make_unique<Shard>());
    shards_.back()->index = i;
  }
}

ProxyLoops::~ProxyLoops() {
  stop();
  // Every loop has ended: freeing the servers (from this thread) closes
  // their listeners and connections, the open tunnels too, as on the
  // single loop.
  shards_.clear();
}

bool ProxyLoops::startShard(Shard& shard, ProxyOptions options, std::string& error) {
  if (shards_.size() == 1) {
    shard.base = callerBase_;
  } else {
    shard.ownBase.reset(event_base_new());
    shard.wake = common::UniqueFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!shard.ownBase || !shard.wake) {
      error = "cannot make the event loop of proxy thread " + std::to_string(shard.index) + ": " +
              common::errnoText(errno);
      return false;
    }
    shard.base = shard.ownBase.get();
    shard.stopEvent.reset(event_new(shard.base, shard.wake.get(), EV_READ, &ProxyLoops::onStop, &shard));
    if (!shard.stopEvent || event_add(shard.stopEvent.get(), nullptr) != 0) {
      error = "cannot make the event loop of proxy thread " + std::to_string(shard.index);
      return false;
    }
  }
  shard.server = std::make_unique<ProxyServer>(shard.base, std::move(options), policy_, bindings_, sink_);
  shard.server->shareConnectionCount(openConnections_);
  return shard.server->start(error);
}

bool ProxyLoops::start(std::string& error) {
  ProxyOptions options = options_;
  options.reusePort = shards_.size() > 1;
  if (options.reusePort) {
    for (const common::SocketAddress& address : options.listen) {
      if (!addressFree(address, error)) {
        shards_.clear();
        return false;
      }
    }
  }
  for (auto& shard : shards_) {
    if (!startShard(*shard, options, error)) {
      shards_.clear();  // no thread runs yet: the servers and loops just go
      return false;
    }
    // The others join the first one's sockets' addresses: the same ports
    // also when a listen address asked for any port (tests).
    if (shard->index == 0) options.listen = shard->server->boundAddresses();
  }
  if (shards_.size() == 1) return true;
  // Every listener is bound and listening: connections wait in their
  // backlogs until the loops run. Threads inherit the signal mask.
  sigset_t handled;
  sigset_t previous;
  sigemptyset(&handled);
  for (const int signal : {SIGHUP, SIGTERM, SIGINT}) sigaddset(&handled, signal);
  ::pthread_sigmask(SIG_BLOCK, &handled, &previous);
  for (auto& shard : shards_) {
    shard->thread = std::thread(&runLoop, shard->base, shard->index);
  }
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  return true;
}

void ProxyLoops::onStop(evutil_socket_t, short, void* arg) {
  event_base_loopbreak(static_cast<Shard*>(arg)->base);
}

void ProxyLoops::stop() {
  for (auto& shard : shards_) {
    if (!shard->thread.joinable()) continue;
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t written = ::write(shard->wake.get(), &one, sizeof one);
  }
  for (auto& shard : shards_) {
    if (shard->thread.joinable()) shard->thread.join();
  }
}

const std::vector<common::SocketAddress>& ProxyLoops::boundAddresses() const noexcept {
  static const std::vector<common::SocketAddress> kNone;
  if (shards_.empty() || !shards_.front()->server) return kNone;
  return shards_.front()->server->boundAddresses();
}

void ProxyLoops::sumCounters(ProxyCounters& out) const noexcept {
  for (const auto& shard : shards_) {
    if (shard->server) addCounters(shard->server->counters(), out);
  }
}

std::vector<uint64_t> ProxyLoops::connectionsPerLoop() const {
  std::vector<uint64_t> out;
  for (const auto& shard : shards_) {
    out.push_back(
        shard->server ? shard->server->counters().connectionsAccepted.load(std::memory_order_relaxed) : 0);
  }
  return out;
}

}  // namespace proxy

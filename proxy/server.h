// The explicit egress proxy: HTTP/1.1 CONNECT and absolute-form requests
// from clients that honour HTTP_PROXY/HTTPS_PROXY, judged by the same
// policy as the transparent path. A thin libevent shell around the pure
// parts (http_head.h parses, decision.h judges, response.h words the
// refusals); this file only accepts, reads, resolves, connects and relays.
//
// Per connection: admit the client (proxy/client_admission.h: in
// clients, or named by the PROXY header of a trusted load balancer; else
// closed unread), read one request head (bounded by maxHeadBytes, within
// headerTimeout), judge its authority, resolve a name through egressd's
// own DNS listener (same upstreams, cache and rebinding refusal), connect
// (A and AAAA raced, happy-eyeballs style, within connectTimeout) with the
// bypass mark so egressd's own chain does not queue the proxy's sockets,
// record the address as a binding, then relay. CONNECT becomes a tunnel
// (handed to proxy/relay.h, which owns both sockets from then on);
// an absolute-form request is forwarded in origin-form with its body and
// the response relayed back; the connection is then kept for the next
// request, judged on its own. Memory per connection is bounded by the
// relay's high-water mark in each direction.
//
// Ownership: borrows the event_base, the policy holder, the binding table
// and the event sink (all must outlive the server). Thread-safety: every
// method on the event_base's thread; counters() from any thread. The
// policy holder and the binding table are thread-safe, so servers on
// several loops may share them (proxy/loops.h); the sink is called on the
// server's own loop thread.
#pragma once

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/c_handle.h"
#include "common/snapshot.h"
#include "common/socket_address.h"
#include "dns/binding_table.h"
#include "observe/event.h"
#include "policy/policy.h"
#include "proxy/client_admission.h"
#include "proxy/decision.h"
#include "proxy/relay.h"

namespace proxy {

struct ProxyOptions {
  std::vector<common::SocketAddress> listen;
  // Who may use the proxy (proxy.clients); empty: nobody. A connection from
  // elsewhere is closed at accept, unread.
  std::vector<common::IpNetwork> clients;
  // Load balancers (proxy.proxy_protocol_from): their connections must
  // start with a PROXY header, whose client is then the client.
  std::vector<common::IpNetwork> proxyProtocolFrom;
  size_t maxHeadBytes = size_t{16} * 1024;
  size_t maxConnections = 4096;
  std::chrono::milliseconds headerTimeout{10'000};
  std::chrono::milliseconds idleTimeout{300'000};
  std::chrono::milliseconds connectTimeout{10'000};
  // Relay buffer per direction: reading stops while this much is waiting
  // (absolute-form, and tunnels that could not get a pipe).
  size_t relayHighWater = size_t{64} * 1024;
  // Tunnels: pipe capacity per direction for splice(2) (proxy/relay.h),
  // the bytes in flight per direction; pipes are held only while busy.
  size_t tunnelPipeBytes = size_t{256} * 1024;
  // Tunnels splice through pipes; false: recv/send through relayHighWater.
  bool splice = true;
  bool audit = false;
  // SO_MARK on upstream sockets (0: none): egressd's bypass mark.
  uint32_t socketMark = 0;
  // The resolver asked for names: egressd's own DNS listener.
  common::SocketAddress resolver;
  std::chrono::seconds bindingGrace{300};
  // SO_REUSEPORT on the listeners: several servers (proxy/loops.h), one
  // per event loop, bind the same addresses and the kernel spreads the
  // connections among them.
  bool reusePort = false;
};

class ProxyEventSink {
 public:
  virtual ~ProxyEventSink() = default;
  // One decision (kind Proxy), on the event loop thread; must not block.
  virtual void onProxyEvent(const observe::Event& event) = 0;
};

// Monotonic counters (STYLE.md rule 3) and two gauges.
struct ProxyCounters {
  std::atomic<uint64_t> connectionsAccepted{0};
  std::atomic<uint64_t> connectionsActive{0};  // gauge
  std::atomic<uint64_t> tunnelsActive{0};      // gauge
  // Tunnels that copied through user space because no pipe could be had
  // (EMFILE...), counted when they end.
  std::atomic<uint64_t> tunnelsUnspliced{0};
  // Tunnels ended by a reset or error on one side (passed on to the other).
  std::atomic<uint64_t> tunnelResets{0};
  std::atomic<uint64_t> connectRequests{0};
  std::atomic<uint64_t> httpRequests{0};
  std::atomic<uint64_t> idleTimeouts{0};
  std::atomic<uint64_t> bytesToUpstream{0};
  std::atomic<uint64_t> bytesToClient{0};
  std::atomic<uint64_t> bindingsRecorded{0};
  // Names answered from the proxy's copy of egressd's DNS answers (TTL).
  std::atomic<uint64_t> resolverCacheHits{0};
  // Connections closed at accept: the client is not in `clients`.
  std::atomic<uint64_t> clientsRefused{0};
  // PROXY headers honoured: naming a client, or LOCAL (health checks).
  std::atomic<uint64_t> proxyHeaders{0};
  std::atomic<uint64_t> proxyHeadersLocal{0};
  // By reason: requests answered (allowed ones too) and, in audit mode,
  // let through although enforce mode would have refused them.
  std::array<std::atomic<uint64_t>, kProxyReasonCount> outcomes{};
  std::array<std::atomic<uint64_t>, kProxyReasonCount> wouldDeny{};
};

class ProxyServer {
 public:
  ProxyServer(event_base* base, ProxyOptions options, const common::SnapshotHolder<policy::Policy>& policy,
              dns::BindingTable& bindings, ProxyEventSink* sink);
  ~ProxyServer();
  ProxyServer(const ProxyServer&) = delete;
  ProxyServer& operator=(const ProxyServer&) = delete;

  // Several servers on one set of addresses (proxy/loops.h): proxy.max_connections
  // counts the connections of all of them, in `open` (must outlive the
  // server). Before start(); without it the server counts its own.
  void shareConnectionCount(std::atomic<size_t>& open) noexcept { open_ = &open; }

  // Binds every listen address. False with `error` naming the address.
  bool start(std::string& error);
  const std::vector<common::SocketAddress>& boundAddresses() const noexcept { return bound_; }
  const ProxyCounters& counters() const noexcept { return counters_; }
  const ProxyOptions& options() const noexcept { return options_; }

  struct Connection;  // public for the C callbacks in server.cc

 private:
  static void onAccept(evconnlistener* listener, int fd, struct sockaddr* addr, int length, void* arg);
  static void onDnsAnswer(int result, char type, int count, int ttl, void* addresses, void* arg);
  static void onReap(evutil_socket_t fd, short what, void* arg);

  friend struct Connection;
  // What egressd's DNS answered for a name, kept for the record's TTL so
  // that a burst of tunnels to one name asks once. Only the answer is kept:
  // every request still judges each address against the policy in force.
  struct CachedAnswer {
    std::vector<common::IpAddress> addresses;
    dns::Clock::time_point expires;
  };
  static constexpr size_t kMaxCachedNames = 4096;
  const CachedAnswer* cachedAnswer(const std::string& name) const;
  void rememberAnswer(const std::string& name, const std::vector<common::IpAddress>& addresses,
                      dns::Clock::time_point expires);
  void close(uint64_t id);
  void count(ProxyReason reason) noexcept;
  // The accept path's refusals: a decision event (kind proxy, verdict
  // deny) naming `client`, and a log line at most once a second.
  void refused(ProxyReason reason, const common::SocketAddress& client, const common::SocketAddress& peer);

  event_base* base_;
  ProxyOptions options_;
  const common::SnapshotHolder<policy::Policy>& policy_;
  dns::BindingTable& bindings_;
  ProxyEventSink* sink_;
  ProxyCounters counters_;
  std::vector<common::CHandle<evconnlistener, evconnlistener_free>> listeners_;
  std::vector<common::SocketAddress> bound_;
  struct DnsBaseFree {
    // Pending lookups are failed (their callbacks find no connection).
    void operator()(evdns_base* dns) const noexcept { evdns_base_free(dns, 1); }
  };
  std::unique_ptr<evdns_base, DnsBaseFree> dns_;
  std::unordered_map<std::string, CachedAnswer> answers_;
  std::unique_ptr<PipePool> pipes_;  // tunnels borrow pipes while bytes are in flight
  // net.ipv4.tcp_wmem's maximum in egressd's namespace, read at start()
  // (RelayOptions::kernelSendBufferMax).
  size_t kernelSendBufferMax_ = RelayOptions{}.kernelSendBufferMax;
  std::unordered_map<uint64_t, std::unique_ptr<Connection>> connections_;
  // Connections open, against maxConnections: this server's (ownOpen_) or
  // those of every server sharing the listeners (shareConnectionCount).
  std::atomic<size_t> ownOpen_{0};
  std::atomic<size_t>* open_ = &ownOpen_;
  std::vector<std::unique_ptr<Connection>> graveyard_;  // closed, freed by reaper_ on the next loop pass
  common::CHandle<event, event_free> reaper_;
  RefusalLog refusalLog_;
  uint64_t nextId_ = 1;
};

}  // namespace proxy

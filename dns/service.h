// The DNS server: libevent UDP and TCP listeners, forwarding to upstreams,
// the answer cache, and the bindings. A thin adapter around the pure parts
// (parseQuery, classifyQuery, buildResponse, analyzeAnswer, stripEch).
//
// Ownership: the event_base, policy holder, binding table and event sink
// are borrowed and must outlive the service. Everything else (sockets,
// events, pending queries, TCP connections) is owned.
// Thread-safety: start(), updateOptions() and the destructor run on the
// thread that runs the event_base; counters() may be read from any thread.
// What allocates on the query path: nothing for denials, refusals and cache
// hits over UDP (bytes patched into reused buffers, received with recvmmsg
// and answered with sendmmsg per batch); a forwarded query
// reuses a pooled slot (allocation only while the pool grows) but opens a
// socket; TCP clients and the TCP retry to upstreams go through libevent
// bufferevents (their evbuffers allocate); cache inserts and new bindings
// allocate.
#pragma once

#include <event2/event.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/c_handle.h"
#include "common/histogram.h"
#include "common/snapshot.h"
#include "common/socket_address.h"
#include "dns/binding_table.h"
#include "dns/cache.h"
#include "dns/classify.h"
#include "dns/options.h"
#include "dns/tunnel_guard.h"
#include "policy/policy.h"

struct evconnlistener;
struct bufferevent;
struct evbuffer;

namespace dns {

enum class DnsOutcome : uint8_t {
  Allowed,        // forwarded to the upstreams, answer relayed
  CacheHit,       // answered from the cache
  Denied,         // deny rcode + EDE (name not allowed, invalid, rebinding)
  Cluster,        // cluster domain, relayed unfiltered
  UpstreamError,  // every upstream failed: SERVFAIL
  Malformed,      // FORMERR (or dropped when not even a header)
  Refused,        // opcode/class/transfer/EDNS version: NOTIMP/REFUSED/BADVERS (last: EventHub::kDnsOutcomes)
};

std::string_view dnsOutcomeName(DnsOutcome outcome) noexcept;

// One decision. Views are valid only during onDnsEvent().
struct DnsEvent {
  std::chrono::system_clock::time_point time;
  common::SocketAddress client;
  bool tcp = false;
  // As the client asked it: the letters' case kept (0x20), no trailing
  // dot; empty (never a null pointer) when unparsed. Policy lookups
  // normalize on their own.
  std::string_view qname{""};
  uint16_t qtype = 0;
  DnsOutcome outcome = DnsOutcome::Allowed;
  // Denied: why. Allowed/CacheHit with `audit`: why enforce mode would
  // have denied (mode = "audit").
  DenyReason reason = DenyReason::None;
  bool audit = false;
  uint16_t rcode = 0;
  uint16_t answers = 0;  // ANCOUNT of the response
  // Allowed / CacheHit: the answer's addresses for the asked name (its
  // CNAME chain), as bound; empty otherwise.
  std::span<const CachedBinding> addresses;
  bool upstreamTcp = false;  // the answer came over TCP (truncated over UDP)
  bool echStripped = false;
  // The local address that received the query: the receiving UDP
  // listener's bound address (a wildcard listener: the address the query
  // was sent to); TCP: the address the client connected to. Port 0
  // when unknown (a TCP client gone before its answer).
  common::SocketAddress server;
  // The policy snapshot that decided (the service holds it while
  // onDnsEvent() runs; do not keep the pointer). Resolves provenance: the
  // rule sets allowing `qname` (Policy::matchName on its ports in use).
  const policy::Policy* policy = nullptr;
};

class DnsEventSink {
 public:
  virtual ~DnsEventSink() = default;
  // Called on the event-loop thread; must not block.
  virtual void onDnsEvent(const DnsEvent& event) = 0;
  // Whether an event of this outcome would reach anyone now (a log line at
  // the current level, a counter, a watcher). False lets the service skip
  // building it: at log level warn with no watcher, a denial's event is
  // work nobody asked for. Event-loop thread; cheap.
  virtual bool wantsDnsEvent(DnsOutcome /*outcome*/, DenyReason /*reason*/, bool /*audit*/) const noexcept {
    return true;
  }
  // Cache hits that were not sent as events (wantsDnsEvent() said no to
  // them), counted per answer and reported later, all at once: `hits`
  // answers for `name` (lower case, no trailing dot) from the cache, not
  // audit, allowed by `policy` (do not keep the reference). The per-rule-
  // set counts of /metrics need these and nothing else does; they arrive
  // when DnsService::reportCacheHits() is called (before /metrics is read),
  // when a cache entry leaves and before a rules change. Event-loop thread.
  virtual void onDnsCacheHits(std::string_view /*name*/, const policy::Policy& /*policy*/,
                              uint64_t /*hits*/) {}
};

// Monotonic counters, one per outcome and per anomaly (STYLE.md rule 3).
struct DnsCounters {
  std::atomic<uint64_t> queries{0};
  std::atomic<uint64_t> allowed{0};
  std::atomic<uint64_t> denied{0};
  std::atomic<uint64_t> cluster{0};
  std::atomic<uint64_t> cacheHit{0};
  std::atomic<uint64_t> upstreamError{0};
  std::atomic<uint64_t> malformed{0};
  std::atomic<uint64_t> refused{0};
  std::atomic<uint64_t> rebindingBlocked{0};
  std::atomic<uint64_t> echStripped{0};
  std::atomic<uint64_t> upstreamTimeouts{0};
  std::atomic<uint64_t> upstreamTcpRetries{0};
  std::atomic<uint64_t> upstreamMismatched{0};  // wrong ID/question, ignored
  std::atomic<uint64_t> truncatedToClient{0};
  std::atomic<uint64_t> tcpRejected{0};  // over max_tcp_clients
  std::atomic<uint64_t> tcpTimeouts{0};
  std::atomic<uint64_t> pendingOverflow{0};  // over maxPendingQueries: SERVFAIL
  std::atomic<uint64_t> bindingsRecorded{0};
  std::atomic<uint64_t> tcpHalfClosed{0};  // clients that shut down their write side first
  // Decisions by the verdict their event carries, whether or not an event
  // was built (a policy denial; an audit "would deny"): the per-namespace
  // denials of /metrics when no attribution names the clients.
  std::atomic<uint64_t> verdictDeny{0};
  std::atomic<uint64_t> verdictAudit{0};
  // By DenyReason: answered with a denial; and (audit mode) let through
  // although enforce mode would have denied them.
  std::array<std::atomic<uint64_t>, kDenyReasonCount> denials{};
  std::array<std::atomic<uint64_t>, kDenyReasonCount> wouldDeny{};
  // (client, registrable domain) pairs that ran out of tunnel-guard budget
  // in a window (each also logged once, dns.tunnel_guard).
  std::atomic<uint64_t> tunnelGuardTrips{0};
  std::atomic<uint64_t> tunnelGuardEvictions{0};
  // SERVFAIL because every upstream failed, by the EDE given: 22 (all
  // timed out) or 23 (network error).
  std::atomic<uint64_t> upstreamUnreachable{0};
  // Per upstream exchange (UDP, or the TCP retry): from sending the query to
  // receiving its matching answer (steady clock, not the injected one).
  // Timeouts and errors are not recorded (they count upstreamTimeouts).
  common::LatencyHistogram upstreamLatency;
  // PROXY protocol headers from dns.proxy_protocol_from: honoured, naming
  // a client (proxy) or the balancer itself (local, its health checks);
  // and refused: datagrams dropped and connections closed because they did
  // not start with one (missing) or it was invalid or cut short (malformed).
  std::atomic<uint64_t> proxyHeaders{0};
  std::atomic<uint64_t> proxyHeadersLocal{0};
  std::atomic<uint64_t> proxyHeadersMissing{0};
  std::atomic<uint64_t> proxyHeadersMalformed{0};
};

class DnsService {
 public:
  using ClockFunction = std::function<TimePoint()>;

  DnsService(event_base* base, DnsOptions options, const common::SnapshotHolder<policy::Policy>& policy,
             BindingTable& bindings, DnsEventSink* sink, ClockFunction clock = {});
  ~DnsService();
  DnsService(const DnsService&) = delete;
  DnsService& operator=(const DnsService&) = delete;

  // Binds UDP and TCP on every listen address. False with `error` set
  // (naming the address) when any fails; then nothing is left bound.
  bool start(std::string& error);

  // The listen addresses with their actual ports (port 0 resolved).
  const std::vector<common::SocketAddress>& boundAddresses() const noexcept { return bound_; }

  // Live settings for the next query (listen addresses are ignored).
  void updateOptions(const DnsOptions& options);

  const DnsCounters& counters() const noexcept { return counters_; }
  // Event-loop thread only (the cache is not shared).
  CacheStats cacheStats() const noexcept { return cache_.stats(); }
  size_t tcpClients() const noexcept { return tcp_.size(); }
  // Hands the cache hits counted since the last call to the sink
  // (DnsEventSink::onDnsCacheHits). Event-loop thread; call it before
  // reading counts that include them.
  void reportCacheHits();

 private:
  struct Listener;
  struct TcpClient;
  struct Pending;
  struct ClientRef;
  struct UdpBatch;

  static void onUdpReadable(int fd, short what, void* arg);
  static void onTcpAccept(evconnlistener* listener, int fd, struct sockaddr* addr, int length, void* arg);
  static void onTcpRead(bufferevent* bev, void* arg);
  static void onTcpEvent(bufferevent* bev, short what, void* arg);
  static void onTcpWrite(bufferevent* bev, void* arg);
  static void onUpstreamUdp(int fd, short what, void* arg);
  static void onUpstreamTcpRead(bufferevent* bev, void* arg);
  static void onUpstreamTcpEvent(bufferevent* bev, short what, void* arg);
  static void onHousekeeping(int fd, short what, void* arg);

  // Wildcard listeners: the query's destination from its control message,
  // and the same address as the answer's source (0: no control message).
  static void readPktinfo(msghdr& header, ClientRef& client) noexcept;
  static socklen_t writePktinfo(const ClientRef& client, uint8_t* control) noexcept;
  // Load balancers (DnsOptions::proxyProtocolFrom): whether the peer is
  // one; its PROXY header taken off a datagram or off the start of a TCP
  // stream, naming the client. UDP: the bytes before the query (0 from
  // anyone else), or kRefused (counted; the caller drops the datagram).
  // TCP: false when not complete yet, or refused and the connection closed.
  static constexpr size_t kRefused = SIZE_MAX;
  bool fromBalancer(const sockaddr_storage& peer) const noexcept;
  size_t takeBalancerHeader(std::span<const uint8_t> wire, ClientRef& client);
  bool takeBalancerHeader(TcpClient& client, evbuffer* input);
  void refuseBalancerHeader(const ClientRef& client, bool missing, std::string_view why);
  void handleQuery(std::span<const uint8_t> wire, const ClientRef& client);
  void handleOversized(std::span<const uint8_t> wire, const ClientRef& client);
  void sendToClient(const ClientRef& client, std::span<const uint8_t> wire, const Query* query);
  // `wire` is the client's query (for the name as asked); empty when
  // `query` is null.
  // False when the sink did not want the event (nothing was built).
  bool emit(const ClientRef& client, const Query* query, std::span<const uint8_t> wire, DnsOutcome outcome,
            DenyReason reason, uint16_t rcode, uint16_t answers, bool upstreamTcp = false,
            bool echStripped = false, bool audit = false, std::span<const CachedBinding> addresses = {}) {
    // The verdict the event would carry (EventHub::fromDns).
    if (audit) {
      counters_.verdictAudit.fetch_add(1, std::memory_order_relaxed);
    } else if (outcome == DnsOutcome::Denied) {
      counters_.verdictDeny.fetch_add(1, std::memory_order_relaxed);
    }
    if (sink_ == nullptr || !sink_->wantsDnsEvent(outcome, reason, audit)) return false;
    sendEvent(client, query, wire, outcome, reason, rcode, answers, upstreamTcp, echStripped, audit,
              addresses);
    return true;
  }
  // emit()'s second half, once the sink wants the event: builds and sends
  // it. Out of line, so that a decision nobody asked to see costs emit()
  // only the verdict counters and the question to the sink.
  void sendEvent(const ClientRef& client, const Query* query, std::span<const uint8_t> wire,
                 DnsOutcome outcome, DenyReason reason, uint16_t rcode, uint16_t answers, bool upstreamTcp,
                 bool echStripped, bool audit, std::span<const CachedBinding> addresses);
  // One name's lazily counted cache hits, under the cache's policy.
  void reportHits(std::string_view name, uint64_t hits);
  // The tunnel guard's charge for a world-only name at `current`: false
  // when the client is over its budget (logged once per window).
  bool chargeTunnelGuard(const Query& query, const ClientRef& client, const DnsOptions& options,
                         TimePoint current);
  void deny(std::span<const uint8_t> wire, const Query& query, const ClientRef& client,
            const Classification& decision);
  void logUpstreamFailure(const Pending& pending, bool timedOut);
  // `allowedBy`: the snapshot that allowed the name just now (the answer
  // is then not judged again under it); null when it did not.
  void forward(std::span<const uint8_t> wire, const Query& query, const ClientRef& client, bool cluster,
               DenyReason wouldDeny = DenyReason::None,
               const std::shared_ptr<const policy::Policy>* allowedBy = nullptr);
  void sendUdpAttempt(Pending& pending);
  void startTcpAttempt(Pending& pending);
  void nextUpstream(Pending& pending);
  void failAll(Pending& pending);
  void deliver(Pending& pending, std::span<const uint8_t> answer);
  // `answer` is the service's own receive buffer; its ID is patched in place.
  void handleUpstreamAnswer(Pending& pending, std::span<uint8_t> answer, bool overTcp);
  void release(Pending& pending);
  void logUpstreamTimeout(const Pending& pending);
  void closeTcpClient(uint64_t id);
  // A half-closed TCP client is closed once nothing is pending for it and
  // its answers have been written out.
  void closeTcpIfDone(TcpClient& client);
  // UDP answers: queued for one sendmmsg while a recvmmsg batch is being
  // handled, else sent at once.
  void sendUdp(const ClientRef& client, std::span<const uint8_t> wire);
  // Where to build an answer for `client`: the next slot of the sendmmsg
  // batch when the answer will join it (sendUdp() then copies nothing),
  // else tx_.
  std::span<uint8_t> answerBuffer(const ClientRef& client) noexcept;
  void flushUdp();
  uint16_t randomId() noexcept;
  // The cache's policy version: changes only when the rules change, not
  // on every publish (the daemon republishes the same rules on periodic
  // rescans, which would otherwise empty the cache every 30 s).
  uint64_t cacheEpoch(const std::shared_ptr<const policy::Policy>& policy) {
    if (policy.get() == epochPolicy_.get()) return epoch_;  // the usual case: one pointer compare
    return nextCacheEpoch(policy);
  }
  uint64_t nextCacheEpoch(const std::shared_ptr<const policy::Policy>& policy);
  // Time to the next expiry sweep step with `bindings` entries in the table.
  static std::chrono::milliseconds housekeepingInterval(size_t bindings) noexcept;
  TimePoint now() const { return clock_ ? clock_() : Clock::now(); }

  event_base* base_;
  std::shared_ptr<const DnsOptions> options_;
  common::SnapshotReader<policy::Policy> policy_;
  std::shared_ptr<const policy::Policy> epochPolicy_;
  uint64_t epoch_ = 0;
  BindingTable& bindings_;
  DnsEventSink* sink_;
  ClockFunction clock_;
  DnsCounters counters_;
  AnswerCache cache_;

  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<common::SocketAddress> bound_;
  std::unordered_map<uint64_t, std::unique_ptr<TcpClient>> tcp_;
  uint64_t nextTcpId_ = 1;
  std::vector<std::unique_ptr<Pending>> pendingPool_;
  std::vector<Pending*> freePending_;
  size_t pendingInUse_ = 0;
  common::CHandle<event, event_free> housekeeping_;
  TunnelGuard tunnelGuard_;
  // DnsOptions::proxyProtocolFrom as started (restart-only), as masks;
  // the UDP path tests `balancersListed_` once per datagram and nothing
  // more when false.
  struct BalancerNetwork;
  std::vector<BalancerNetwork> balancers_;
  bool balancersListed_ = false;
  Clock::time_point lastBalancerRefusalLog_{};
  uint64_t balancerRefusalsNotLogged_ = 0;
  // dns.upstream_failed warnings: at most one per interval, with the
  // number held back since the last.
  Clock::time_point lastFailureLog_{};
  uint64_t failuresNotLogged_ = 0;
  std::array<char, kNameTextCapacity> askedName_{};
  // The query being handled (handleQuery() is never re-entered): reused,
  // so its name buffer is not cleared for every query.
  Query query_;

  // Reused buffers: one message each, so nothing on the path allocates.
  std::vector<uint8_t> rx_;
  std::vector<uint8_t> tx_;
  std::vector<uint8_t> upstreamRx_;
  std::vector<uint8_t> scratch_;
  std::unique_ptr<UdpBatch> udpBatch_;
  std::unique_ptr<ClientRef> udpClient_;  // the UDP datagram being handled (onUdpReadable)
  std::array<uint16_t, 256> ids_{};
  size_t idsLeft_ = 0;
};

}  // namespace dns

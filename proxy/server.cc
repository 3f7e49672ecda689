#include "proxy/server.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <span>
#include <vector>

#include "common/errno_text.h"
#include "common/log.h"
#include "common/proxy_protocol.h"
#include "proxy/chunked.h"
#include "proxy/http_head.h"
#include "proxy/relay.h"
#include "proxy/response.h"

namespace proxy {

// The PROXY protocol parser is shared with the DNS listeners (common/).
using common::kMaxProxyHeaderBytes;
using common::parseProxyHeader;
using common::ProxyHeader;
using common::ProxyHeaderStatus;

namespace {

using BevHandle = common::CHandle<bufferevent, bufferevent_free>;
using EventHandle = common::CHandle<event, event_free>;

// RFC 8305 section 5: the next address is tried this long after the last
// attempt started, unless it failed sooner.
constexpr std::chrono::milliseconds kAttemptDelay{250};
// Addresses tried per request, at most (the rest of a long answer is not).
constexpr size_t kMaxCandidates = 8;
// An origin server's response head may be larger than a request's (cookies).
constexpr size_t kMaxResponseHead = size_t{64} * 1024;
// Bytes moved per read or write call while relaying.
constexpr size_t kMaxSingleIo = size_t{64} * 1024;
// Bytes of a chunked body scanned per step (pullup makes them contiguous).
constexpr size_t kChunkScanStep = size_t{16} * 1024;
// How long a tunnel's upstream handshake ACK waits for the client's first
// bytes to carry it before it goes alone (proxy/relay.h): a client that
// speaks first does so within a round trip of the 200; a server that
// speaks first (SSH, SMTP) waits this much longer for the ACK.
constexpr std::chrono::milliseconds kUpstreamAckDelay{10};

timeval toTimeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

std::span<const uint8_t> pullup(evbuffer* buffer, size_t max) {
  const size_t length = std::min(evbuffer_get_length(buffer), max);
  const unsigned char* data = evbuffer_pullup(buffer, static_cast<ev_ssize_t>(length));
  return {data, data == nullptr ? 0 : length};
}

bool hopByHop(std::string_view name) {
  return fieldIs(name, "connection") || fieldIs(name, "proxy-connection") || fieldIs(name, "keep-alive") ||
         fieldIs(name, "proxy-authorization") || fieldIs(name, "te") || fieldIs(name, "upgrade") ||
         fieldIs(name, "trailer") || fieldIs(name, "proxy-authenticate");
}

void copyName(std::string_view text, observe::Event& out) {
  out.nameLength = static_cast<uint8_t>(std::min(text.size(), out.name.size()));
  std::copy_n(text.data(), out.nameLength, out.name.data());
}

// close() then sends a reset, not a FIN: the peer learns nothing more, and
// no connection state lingers for a scanner's probes.
void resetOnClose(int fd) {
  const linger reset{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
}

void lowerInPlace(std::string& text) {
  for (char& c : text) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
}

}  // namespace

// One client connection, through all its requests.
struct ProxyServer::Connection {
  enum class State : uint8_t { ProxyHeader, Head, Resolving, Connecting, Tunnel, Body, Response, Closing };
  enum class BodyKind : uint8_t { None, Length, Chunked };

  struct Attempt {
    int fd = -1;
    common::SocketAddress address;
    EventHandle writable;
  };

  ProxyServer& server;
  uint64_t id;
  // Whom the decisions name: the TCP peer, or the client a trusted load
  // balancer's PROXY header names.
  common::SocketAddress client;
  common::SocketAddress peer;      // the TCP peer (the balancer, behind one)
  bool expectProxyHeader = false;  // peer is in proxyProtocolFrom
  // The client's socket: in `clientFd` until the connection needs a
  // bufferevent (materialize()), which then owns it; a tunnel's relay
  // takes it from either.
  UniqueFd clientFd;
  BevHandle clientBev;
  // A CONNECT head that came whole with the connection: the bytes behind
  // it, still in the thread's head buffer (valid until start() returns).
  std::span<const uint8_t> early;
  BevHandle upstreamBev;
  std::unique_ptr<TunnelRelay> relay;  // once CONNECT succeeded: owns both sockets
  EventHandle headerTimer;
  State state = State::Head;
  bool sawRequestBytes = false;
  bool headQuickAcked = false;  // quickAckClient() for the head being read
  bool clientEof = false;
  bool upstreamEof = false;
  bool pipelined = false;
  bool countedTunnel = false;
  // Closed: waiting for the reaper (callbacks still on the stack may run on).
  bool dead = false;

  // The request being served.
  std::shared_ptr<const policy::Policy> policy;
  TargetDecision decision;
  bool connect = false;
  bool keepAlive = true;
  bool headRequest = false;
  std::string method;
  std::string host;         // lower case
  std::string writtenHost;  // as the request wrote it (judged)
  uint16_t port = 0;
  bool ipLiteral = false;
  std::string upstreamHead;  // absolute-form: the rewritten head
  BodyKind body = BodyKind::None;
  uint64_t bodyLeft = 0;
  ChunkedScanner bodyChunks;
  ProxyReason auditReason = ProxyReason::NameAllowed;  // audit mode: why enforce would refuse
  bool audited = false;

  // Resolution and connecting.
  int dnsPending = 0;
  int dnsTtl = INT32_MAX;
  std::vector<common::IpAddress> v4, v6;
  std::vector<common::IpAddress> answers;  // as egressd's DNS gave them, for the cache
  bool refusedInternal = false;
  std::vector<common::SocketAddress> candidates;
  size_t nextCandidate = 0;
  std::vector<Attempt> attempts;
  EventHandle staggerTimer;
  EventHandle connectTimer;
  common::SocketAddress upstreamAddress;
  // Last byte relayed either way (idle timeout of a one-way transfer).
  std::chrono::steady_clock::time_point lastActivity;

  // The response being relayed (absolute-form).
  bool responseHeadDone = false;
  bool responseCloseDelimited = false;
  BodyKind responseBody = BodyKind::None;
  uint64_t responseLeft = 0;
  ChunkedScanner responseChunks;

  Connection(ProxyServer& s, uint64_t i, common::SocketAddress c) : server(s), id(i), client(c), peer(c) {}
  ~Connection() { dropAttempts(); }

  const ProxyOptions& options() const { return server.options_; }
  ProxyCounters& counters() { return server.counters_; }

  // ---- the client side --------------------------------------------------

  // The listener defers accept until the client has sent something
  // (TCP_DEFER_ACCEPT), so the head is usually already here: one recv(2)
  // reads it now rather than after a loop pass (an epoll_ctl and a wakeup
  // saved). A whole CONNECT head is served straight from that read: when
  // it is allowed and the upstream connects at once (a cached name, a
  // near upstream), the tunnel starts without the client ever having a
  // bufferevent or a header timer. Anything else (a partial head, an
  // absolute-form request, a PROXY header, a refusal, a wait for DNS or
  // the handshake) gets them, with the bytes read so far in its input.
  void start(int fd) {
    clientFd.reset(fd);
    const std::span<uint8_t> buffer = headBuffer(options().maxHeadBytes + 1);
    const ssize_t got = ::recv(fd, buffer.data(), buffer.size(), 0);
    if (got == 0) {
      server.close(id);  // connected and closed without a word
      return;
    }
    const std::span<const uint8_t> read(buffer.data(), got > 0 ? static_cast<size_t>(got) : 0);
    if (!expectProxyHeader && !read.empty()) {
      RequestHead head;
      if (parseRequestHead(read, options().maxHeadBytes, head) == ParseStatus::Ok &&
          head.form == RequestForm::Connect) {
        sawRequestBytes = true;
        takeRequest(head);
        early = read.subspan(head.headLength);
        judge(head.authority);
        early = {};  // served, refused, or moved into the bufferevent
        return;
      }
    }
    if (!materialize(read)) return;
    if (expectProxyHeader) {
      awaitProxyHeader();
      return;
    }
    awaitHead();
  }

  // The accepted socket acknowledges late (the listener's TCP_QUICKACK is
  // off so that an answer carries the ACK of the request). While the
  // client is still sending (a head in pieces, a request body) that would
  // hold a client's second small piece for 40 ms when it has Nagle's
  // algorithm on (Java's sockets by default): the ACK goes now, and the
  // socket acknowledges at once, as a fresh connection does. Best effort.
  void quickAckClient() {
    setTcpFlag(clientBev ? bufferevent_getfd(clientBev.get()) : clientFd.get(), TCP_QUICKACK, true);
  }

  // The thread's buffer for the first read of every connection.
  static std::span<uint8_t> headBuffer(size_t bytes) {
    thread_local std::vector<uint8_t> buffer;
    if (buffer.size() < bytes) buffer.resize(bytes);
    return {buffer.data(), bytes};
  }

  // Gives the client its bufferevent (and header timer), with `input` (the
  // bytes read so far, or the early bytes behind a CONNECT head) in its
  // input buffer. False when it cannot: the connection is closed.
  bool materialize(std::span<const uint8_t> input = {}) {
    if (clientBev) return true;
    if (input.empty()) input = early;
    early = {};
    clientBev.reset(bufferevent_socket_new(server.base_, clientFd.get(), BEV_OPT_CLOSE_ON_FREE));
    if (!clientBev) {
      server.close(id);  // clientFd closes the socket
      return false;
    }
    [[maybe_unused]] const int owned = clientFd.release();  // the bufferevent closes it now
    bufferevent_setcb(clientBev.get(), &Connection::onClientRead, &Connection::onClientWrite,
                      &Connection::onClientEvent, this);
    headerTimer.reset(evtimer_new(server.base_, &Connection::onHeaderTimeout, this));
    // A socket bufferevent keeps its input's end frozen except while it
    // reads itself (libevent's bufferevent_readcb thaws it the same way).
    evbuffer* buffered = bufferevent_get_input(clientBev.get());
    evbuffer_unfreeze(buffered, 0);
    const bool added = input.empty() || evbuffer_add(buffered, input.data(), input.size()) == 0;
    evbuffer_freeze(buffered, 0);
    if (!headerTimer || !added) {
      server.close(id);
      return false;
    }
    return true;
  }

  // ---- a trusted load balancer's PROXY header ------------------------------

  // Before the request: the header, within proxy.header_timeout.
  void awaitProxyHeader() {
    state = State::ProxyHeader;
    bufferevent_setwatermark(clientBev.get(), EV_READ, 0, kMaxProxyHeaderBytes + options().maxHeadBytes + 1);
    const timeval tv = toTimeval(options().headerTimeout);
    evtimer_add(headerTimer.get(), &tv);
    readProxyHeader();
    if (dead || state != State::ProxyHeader) return;
    bufferevent_enable(clientBev.get(), EV_READ);
  }

  void readProxyHeader() {
    evbuffer* input = bufferevent_get_input(clientBev.get());
    if (evbuffer_get_length(input) == 0) return;
    sawRequestBytes = true;
    ProxyHeader header;
    const ProxyHeaderStatus status = parseProxyHeader(pullup(input, kMaxProxyHeaderBytes), header);
    if (status == ProxyHeaderStatus::NeedMore) return;
    if (status != ProxyHeaderStatus::Ok) {
      // Anything else from a balancer's address is refused: a request
      // without the header would be judged as the balancer's own.
      server.refused(ProxyReason::ProxyProtocolInvalid, peer, peer);
      refuse(ProxyReason::ProxyProtocolInvalid,
             problemBody(ProxyReason::ProxyProtocolInvalid,
                         status == ProxyHeaderStatus::Malformed ? header.why : "no header"),
             false);
      return;
    }
    evbuffer_drain(input, header.length);
    if (header.local) {
      counters().proxyHeadersLocal.fetch_add(1, std::memory_order_relaxed);
    } else {
      counters().proxyHeaders.fetch_add(1, std::memory_order_relaxed);
      client = {header.source.ip.unmapped(), header.source.port};
    }
    // The allowlist applies to the client the balancer speaks for (to the
    // balancer itself for its own LOCAL connections).
    if (!inNetworks(options().clients, client.ip)) {
      evtimer_del(headerTimer.get());
      resetOnClose(bufferevent_getfd(clientBev.get()));
      server.refused(ProxyReason::ClientNotAllowed, client, peer);
      server.close(id);
      return;
    }
    awaitHead();
  }

  void awaitHead() {
    state = State::Head;
    sawRequestBytes = evbuffer_get_length(bufferevent_get_input(clientBev.get())) > 0;
    // Reading stops once a head's worth is buffered and incomplete (431).
    bufferevent_setwatermark(clientBev.get(), EV_READ, 0, options().maxHeadBytes + 1);
    bufferevent_set_timeouts(clientBev.get(), nullptr, nullptr);
    const timeval tv = toTimeval(options().headerTimeout);
    evtimer_add(headerTimer.get(), &tv);
    // Writing is enabled when there is something to write (refuse(), the
    // previous response's tail): enabled on an empty output, libevent
    // would poll for EPOLLOUT once for nothing (two epoll_ctl and a wakeup
    // per connection).
    if (evbuffer_get_length(bufferevent_get_output(clientBev.get())) > 0) {
      bufferevent_enable(clientBev.get(), EV_WRITE);
    }
    // A head already buffered is judged first: when it is complete, the
    // next state (resolving, connecting, refusing) never reads the client,
    // so its socket is not polled for reading at all.
    if (sawRequestBytes) {
      readHead();
      if (dead || state != State::Head) return;
    }
    bufferevent_enable(clientBev.get(), EV_READ);
  }

  static void onClientRead(bufferevent*, void* arg) {
    auto* self = static_cast<Connection*>(arg);
    if (self->dead) return;
    switch (self->state) {
      case State::ProxyHeader:
        self->readProxyHeader();
        break;
      case State::Head:
        self->readHead();
        break;
      case State::Body:
        self->lastActivity = std::chrono::steady_clock::now();  // an upload moves only this side
        self->forwardBody();
        break;
      case State::Response:
        // A second request before the first is answered: not served
        // (the response says Connection: close).
        self->pipelined = true;
        bufferevent_disable(self->clientBev.get(), EV_READ);
        break;
      default:
        bufferevent_disable(self->clientBev.get(), EV_READ);
        break;
    }
  }

  static void onClientWrite(bufferevent*, void* arg) {
    auto* self = static_cast<Connection*>(arg);
    if (self->dead) return;
    if (self->state == State::Closing) {
      self->server.close(self->id);
      return;
    }
    if (self->state == State::Response) {
      // The client drained what was queued: resume reading upstream.
      if (self->upstreamBev && !self->upstreamEof) bufferevent_enable(self->upstreamBev.get(), EV_READ);
    }
  }

  static void onClientEvent(bufferevent*, short what, void* arg) {
    auto* self = static_cast<Connection*>(arg);
    if (self->dead) return;
    if ((what & BEV_EVENT_TIMEOUT) != 0) {
      self->onIdle(self->clientBev.get());
      return;
    }
    if ((what & BEV_EVENT_EOF) != 0 && (self->state == State::Response || self->state == State::Body)) {
      // The client finished sending; the response may still come.
      self->clientEof = true;
      if (self->state == State::Body) {
        self->server.close(self->id);  // the body was cut short
      }
      return;
    }
    self->server.close(self->id);
  }

  static void onHeaderTimeout(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<Connection*>(arg);
    if (self->dead) return;
    if (self->state == State::ProxyHeader) {
      // A balancer's connection without its header in time: a partial one
      // is refused as invalid; none at all (a TCP health check) just ends.
      if (self->sawRequestBytes) {
        self->server.refused(ProxyReason::ProxyProtocolInvalid, self->peer, self->peer);
        self->refuse(ProxyReason::ProxyProtocolInvalid,
                     problemBody(ProxyReason::ProxyProtocolInvalid, "incomplete header"), false);
      } else {
        self->server.close(self->id);
      }
      return;
    }
    if (self->state != State::Head) return;
    if (!self->sawRequestBytes && evbuffer_get_length(bufferevent_get_input(self->clientBev.get())) == 0) {
      // An idle kept-alive connection: closed without a word.
      self->counters().idleTimeouts.fetch_add(1, std::memory_order_relaxed);
      self->server.close(self->id);
      return;
    }
    self->refuse(ProxyReason::HeaderTimeout, problemBody(ProxyReason::HeaderTimeout, ""), false);
  }

  void readHead() {
    evbuffer* input = bufferevent_get_input(clientBev.get());
    if (evbuffer_get_length(input) == 0) return;
    sawRequestBytes = true;
    RequestHead head;
    const ParseStatus status =
        parseRequestHead(pullup(input, options().maxHeadBytes), options().maxHeadBytes, head);
    if (status == ParseStatus::NeedMore) {
      // The client may hold its next piece for our ACK; once per head is
      // enough (nothing goes to the client meanwhile to slow the ACKs again).
      if (!headQuickAcked) quickAckClient();
      headQuickAcked = true;
      return;
    }
    headQuickAcked = false;
    evtimer_del(headerTimer.get());
    if (status == ParseStatus::TooLarge) {
      refuse(ProxyReason::HeadTooLarge,
             problemBody(ProxyReason::HeadTooLarge,
                         "over " + std::to_string(options().maxHeadBytes) + " bytes (proxy.max_head_bytes)"),
             false);
      return;
    }
    if (status == ParseStatus::Malformed) {
      refuse(ProxyReason::Malformed, problemBody(ProxyReason::Malformed, head.why), false);
      return;
    }
    if (head.form == RequestForm::Origin || head.form == RequestForm::Asterisk) {
      refuse(ProxyReason::NotProxyRequest, problemBody(ProxyReason::NotProxyRequest, ""), false);
      return;
    }
    if (head.httpsScheme) {
      refuse(ProxyReason::HttpsScheme, problemBody(ProxyReason::HttpsScheme, ""), false);
      return;
    }
    takeRequest(head);
    // The head's views point into the input, which the drain may free:
    // the authority is judged from a copy.
    writtenHost.assign(head.authority.host);
    Authority authority = head.authority;
    authority.host = writtenHost;
    authority.text = {};
    evbuffer_drain(input, head.headLength);
    judge(authority);
  }

  // Copies what the request needs out of the client's buffer (the head's
  // views die when it is drained) and builds the upstream head.
  void takeRequest(const RequestHead& head) {
    connect = head.form == RequestForm::Connect;
    keepAlive = head.keepAlive();
    method.assign(head.method);
    headRequest = method == "HEAD";
    host.assign(head.authority.host);
    lowerInPlace(host);
    if (!host.empty() && host.back() == '.') host.pop_back();
    port = head.authority.port;
    ipLiteral = head.authority.ipLiteral;
    body = BodyKind::None;
    bodyLeft = 0;
    bodyChunks = ChunkedScanner();
    upstreamHead.clear();
    (connect ? counters().connectRequests : counters().httpRequests).fetch_add(1, std::memory_order_relaxed);
    if (connect) return;
    if (head.headers.chunked) {
      body = BodyKind::Chunked;
    } else if (head.headers.contentLength > 0) {
      body = BodyKind::Length;
      bodyLeft = head.headers.contentLength;
    }
    // RFC 9112 section 3.2.2: a proxy replaces Host with the URI's
    // authority, so the server sees the name that was judged.
    upstreamHead.reserve(head.headLength + 64);
    upstreamHead.append(head.method).append(" ");
    if (head.path.empty() || head.path.front() != '/') upstreamHead += '/';
    upstreamHead.append(head.path).append(" HTTP/1.1\r\nHost: ").append(head.authority.text).append("\r\n");
    for (size_t i = 0; i < head.headers.count; ++i) {
      const HeaderField& field = head.headers.fields[i];
      if (fieldIs(field.name, "host") || hopByHop(field.name)) continue;
      upstreamHead.append(field.name).append(": ").append(field.value).append("\r\n");
    }
    // One request per upstream connection: the response ends at its
    // framing, or when the server closes.
    upstreamHead += "Connection: close\r\n\r\n";
  }

  // ---- deciding ------------------------------------------------------------

  void judge(const Authority& authority) {
    policy = server.policy_.load();
    decision = judgeTarget(*policy, authority);
    audited = false;
    if (!decision.allowed) {
      if (!options().audit) {
        deny(decision.reason);
        return;
      }
      // Audit: decide as enforce does, record "would deny", let it through.
      audited = true;
      auditReason = decision.reason;
      decision.resolve = !authority.ipLiteral;
      if (authority.ipLiteral) decision.literal = common::parseIpAddress(authority.host)->unmapped();
    }
    if (!decision.resolve) {
      candidates.assign(1, common::SocketAddress{decision.literal, port});
      startConnecting();
      return;
    }
    resolve();
  }

  void deny(ProxyReason reason) {
    emit(observe::EventVerdict::Deny, reason, std::nullopt);
    refuse(reason, denialBody(connect ? "CONNECT" : method, currentAuthority(), reason), true);
  }

  Authority currentAuthority() const {
    Authority a;
    a.host = host;
    a.port = port;
    a.ipLiteral = ipLiteral;
    return a;
  }

  // Answers with an error and closes once it is written.
  void refuse(ProxyReason reason, const std::string& bodyText, bool counted) {
    (void)counted;
    server.count(reason);
    if (!materialize()) return;
    evtimer_del(headerTimer.get());
    dropAttempts();
    upstreamBev.reset();
    state = State::Closing;
    const std::string response = errorResponse(reason, bodyText);
    bufferevent_disable(clientBev.get(), EV_READ);
    bufferevent_setwatermark(clientBev.get(), EV_WRITE, 0, 0);
    bufferevent_write(clientBev.get(), response.data(), response.size());
    bufferevent_enable(clientBev.get(), EV_WRITE);
  }

  void emit(observe::EventVerdict verdict, ProxyReason reason,
            std::optional<common::SocketAddress> upstream) {
    if (server.sink_ == nullptr) return;
    observe::Event event;
    event.kind = observe::EventKind::Proxy;
    event.time = std::chrono::system_clock::now();
    event.src = client.ip;
    event.srcPort = client.port;
    if (upstream) {
      event.dst = upstream->ip;
    } else if (ipLiteral) {
      if (auto literal = common::parseIpAddress(host)) event.dst = literal->unmapped();
    }
    event.dstPort = port;
    event.protocol = IPPROTO_TCP;
    event.verdict = verdict;
    event.reason = proxyReasonName(reason);
    event.nameSource = connect ? "connect" : "request";
    event.match = policy::matchKindName(decision.match);
    if (!ipLiteral) copyName(host, event);
    if (policy) {
      std::string list;
      for (const uint32_t ref : decision.ruleSets) {
        if (ref >= policy->ruleSets().size()) continue;
        if (!list.empty()) list += ',';
        list += policy->ruleSets()[ref].id;
      }
      if (list.size() > event.ruleSets.size())
        list.replace(event.ruleSets.size() - 3, std::string::npos, "...");
      event.ruleSetsLength = static_cast<uint16_t>(std::min(list.size(), event.ruleSets.size()));
      std::copy_n(list.data(), event.ruleSetsLength, event.ruleSets.data());
    }
    server.sink_->onProxyEvent(event);
  }

  // ---- resolving -------------------------------------------------------------

  void resolve() {
    state = State::Resolving;
    if (clientBev) bufferevent_disable(clientBev.get(), EV_READ);
    v4.clear();
    v6.clear();
    answers.clear();
    refusedInternal = false;
    dnsTtl = INT32_MAX;
    dnsPending = 0;
    if (const auto* cached = server.cachedAnswer(host)) {
      // Asked within its TTL: the same addresses egressd's DNS handed out,
      // judged against the policy in force now.
      const auto left = std::chrono::duration_cast<std::chrono::seconds>(cached->expires - dns::Clock::now());
      dnsTtl = static_cast<int>(std::max<int64_t>(left.count(), 0));
      for (const common::IpAddress& ip : cached->addresses) takeAddress(ip);
      counters().resolverCacheHits.fetch_add(1, std::memory_order_relaxed);
      answered();
      return;
    }
    if (!materialize()) return;  // the answer comes on a later loop pass
    for (const bool ipv6 : {false, true}) {
      auto* wait = new DnsWait{&server, id, ipv6};  // owned by the callback
      ++dnsPending;
      evdns_request* request =
          ipv6 ? evdns_base_resolve_ipv6(server.dns_.get(), host.c_str(), DNS_QUERY_NO_SEARCH,
                                         &ProxyServer::onDnsAnswer, wait)
               : evdns_base_resolve_ipv4(server.dns_.get(), host.c_str(), DNS_QUERY_NO_SEARCH,
                                         &ProxyServer::onDnsAnswer, wait);
      // libevent calls the callback itself when it cannot send (and
      // returns null); nothing to undo here either way.
      (void)request;
    }
    connectTimer.reset(evtimer_new(server.base_, &Connection::onConnectTimeout, this));
    const timeval tv = toTimeval(options().connectTimeout);
    evtimer_add(connectTimer.get(), &tv);
  }

  void onAnswer(bool ipv6, int result, int count, int ttl, void* addresses) {
    --dnsPending;
    if (result == DNS_ERR_NONE && addresses != nullptr) {
      dnsTtl = std::min(dnsTtl, ttl);
      for (int i = 0; i < count; ++i) {
        common::IpAddress ip;
        if (ipv6) {
          ip = common::IpAddress::v6Bytes(static_cast<const in6_addr*>(addresses)[i].s6_addr);
        } else {
          ip = common::IpAddress::v4Bytes(
              reinterpret_cast<const uint8_t*>(&static_cast<const uint32_t*>(addresses)[i]));
        }
        if (answers.size() < kMaxCandidates * 2) answers.push_back(ip);
        takeAddress(ip);
      }
    }
    if (dnsPending > 0) return;
    if (dnsTtl != INT32_MAX && dnsTtl > 0 && !answers.empty()) {
      server.rememberAnswer(host, answers, dns::Clock::now() + std::chrono::seconds(dnsTtl));
    }
    answered();
  }

  void takeAddress(const common::IpAddress& ip) {
    if (!resolvedAddressAllowed(*policy, ip, port)) {
      refusedInternal = true;
      return;
    }
    (ip.family == common::IpFamily::V6 ? v6 : v4).push_back(ip);
  }

  // Both families answered (or the cache did): connect, or say why not.
  void answered() {
    // RFC 8305 section 4: interleave the families, IPv6 first.
    candidates.clear();
    for (size_t i = 0; candidates.size() < kMaxCandidates && (i < v6.size() || i < v4.size()); ++i) {
      if (i < v6.size()) candidates.push_back({v6[i], port});
      if (i < v4.size() && candidates.size() < kMaxCandidates) candidates.push_back({v4[i], port});
    }
    if (candidates.empty()) {
      connectTimer.reset();
      if (refusedInternal) {
        // Not audited: it protects the pod, not the policy (as DNS does).
        emit(observe::EventVerdict::Deny, ProxyReason::InternalAddress, std::nullopt);
        refuse(ProxyReason::InternalAddress,
               denialBody(connect ? "CONNECT" : method, currentAuthority(), ProxyReason::InternalAddress),
               true);
        return;
      }
      fail(ProxyReason::NoAddress,
           host +
               " has no address egressd's DNS hands out (no such name, or only internal addresses, "
               "which egressd's DNS refuses: see egressctl watch dns)");
      return;
    }
    startConnecting();
  }

  // ---- connecting (RFC 8305) ---------------------------------------------------

  void startConnecting() {
    state = State::Connecting;
    if (clientBev) bufferevent_disable(clientBev.get(), EV_READ);
    nextCandidate = 0;
    attempts.clear();
    startAttempt();
  }

  // The timers an attempt in progress needs, made only then: on a near
  // upstream connect() has usually finished when it returns.
  bool armAttemptTimers() {
    if (!connectTimer) {
      connectTimer.reset(evtimer_new(server.base_, &Connection::onConnectTimeout, this));
      if (!connectTimer) return false;
      const timeval tv = toTimeval(options().connectTimeout);
      evtimer_add(connectTimer.get(), &tv);
    }
    if (!staggerTimer) staggerTimer.reset(evtimer_new(server.base_, &Connection::onStagger, this));
    return static_cast<bool>(staggerTimer);
  }

  void startAttempt() {
    while (nextCandidate < candidates.size()) {
      const common::SocketAddress address = candidates[nextCandidate++];
      sockaddr_storage storage{};
      const socklen_t length = address.toSockaddr(storage);
      const int fd = ::socket(storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) continue;
      if (options().socketMark != 0) {
        const uint32_t mark = options().socketMark;
        // Without it the proxy's own connections would be queued and
        // judged again by the chain (and denied by address).
        if (::setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0) {
          common::LogLine(common::LogLevel::Warn, "proxy.mark_failed")
              .field("error", common::errnoText(errno));
        }
      }
      if (connect) {
        // A tunnel's handshake ACK waits for the client's first bytes to
        // carry it, and the server accepts with them in; the relay sends
        // it alone after kUpstreamAckDelay when none come, turns quick
        // ACKs back on after the first write, and TCP_NODELAY on before
        // the second (RelayOptions): a one-request tunnel needs no more.
        setTcpFlag(fd, TCP_QUICKACK, false);
      } else {
        // Forwarded requests go through bufferevents: no Nagle from the
        // start, and the kernel's own ACK handling.
        setTcpFlag(fd, TCP_NODELAY, true);
      }
      if (::connect(fd, reinterpret_cast<const sockaddr*>(&storage), length) != 0 && errno != EINPROGRESS) {
        ::close(fd);
        continue;
      }
      const Handshake handshake = handshakeState(fd, storage, length);
      if (handshake == Handshake::Failed) {
        ::close(fd);
        continue;
      }
      if (handshake == Handshake::Done) {
        // The usual case on a near upstream: the handshake finished inside
        // connect(); no poll for writability, no loop pass.
        upstreamAddress = address;
        dropAttempts();
        connected(fd);
        return;
      }
      if (!materialize()) {  // the handshake ends on a later loop pass
        ::close(fd);
        return;
      }
      if (!armAttemptTimers()) {
        ::close(fd);
        break;
      }
      Attempt attempt;
      attempt.fd = fd;
      attempt.address = address;
      attempt.writable.reset(event_new(server.base_, fd, EV_WRITE, &Connection::onAttempt, this));
      event_add(attempt.writable.get(), nullptr);
      attempts.push_back(std::move(attempt));
      if (nextCandidate < candidates.size()) {
        const timeval tv = toTimeval(kAttemptDelay);
        evtimer_add(staggerTimer.get(), &tv);
      }
      return;
    }
    if (attempts.empty()) {
      connectTimer.reset();
      fail(ProxyReason::UpstreamUnreachable, "every address of " + host + " refused or failed");
    }
  }

  enum class Handshake : uint8_t { Done, Pending, Failed };

  // How far a non-blocking connect() got. On a near upstream the answer to
  // the SYN arrives while connect() still holds the socket, so it says
  // EINPROGRESS although the socket is established when it returns.
  // Asking connect() again tells in one system call (poll(2) plus
  // getsockopt(SO_ERROR) took two): 0 or EISCONN connected, EALREADY
  // still in progress (the poller says when), anything else failed. The
  // failure is reported here only: connect() has consumed the socket's
  // error, so a poll for writability would find none.
  static Handshake handshakeState(int fd, const sockaddr_storage& address, socklen_t length) {
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), length) == 0 || errno == EISCONN) {
      return Handshake::Done;
    }
    return errno == EALREADY || errno == EINPROGRESS || errno == EINTR ? Handshake::Pending
                                                                       : Handshake::Failed;
  }

  static void onStagger(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<Connection*>(arg);
    if (!self->dead) self->startAttempt();
  }

  static void onAttempt(evutil_socket_t fd, short, void* arg) {
    auto* self = static_cast<Connection*>(arg);
    if (self->dead) return;
    int error = 0;
    socklen_t length = sizeof error;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
    auto it = std::find_if(self->attempts.begin(), self->attempts.end(),
                           [fd](const Attempt& a) { return a.fd == fd; });
    if (it == self->attempts.end()) return;
    if (error != 0) {
      ::close(it->fd);
      self->attempts.erase(it);
      if (self->staggerTimer) evtimer_del(self->staggerTimer.get());
      self->startAttempt();  // the next one now, not after the delay
      return;
    }
    const int winner = it->fd;
    self->upstreamAddress = it->address;
    it->fd = -1;
    self->dropAttempts();
    self->connected(winner);
  }

  static void onConnectTimeout(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<Connection*>(arg);
    if (self->dead) return;
    self->dropAttempts();
    self->fail(ProxyReason::UpstreamTimeout, "no address of " + self->host + " answered within " +
                                                 std::to_string(self->options().connectTimeout.count()) +
                                                 " ms (proxy.connect_timeout)");
  }

  void dropAttempts() {
    for (Attempt& attempt : attempts) {
      attempt.writable.reset();
      if (attempt.fd >= 0) ::close(attempt.fd);
    }
    attempts.clear();
    staggerTimer.reset();
  }

  // An allowed request that could not be served.
  void fail(ProxyReason reason, const std::string& detail) {
    emit(audited ? observe::EventVerdict::Audit : observe::EventVerdict::Allow, reason, std::nullopt);
    refuse(reason, problemBody(reason, detail), false);
  }

  void connected(int fd) {
    connectTimer.reset();
    if (decision.resolve) {
      // The transparent path agrees: this address was handed out for the
      // name (rules.binding_grace past the record's TTL, as DNS does).
      const auto ttl = std::chrono::seconds(dnsTtl == INT32_MAX ? 0 : std::max(dnsTtl, 0));
      server.bindings_.record(host, upstreamAddress.ip, dns::Clock::now() + ttl + options().bindingGrace);
      counters().bindingsRecorded.fetch_add(1, std::memory_order_relaxed);
    }
    if (!connect) {
      upstreamBev.reset(bufferevent_socket_new(server.base_, fd, BEV_OPT_CLOSE_ON_FREE));
      if (!upstreamBev) {
        ::close(fd);
        fail(ProxyReason::UpstreamUnreachable, "out of memory");
        return;
      }
      bufferevent_setcb(upstreamBev.get(), &Connection::onUpstreamRead, &Connection::onUpstreamWrite,
                        &Connection::onUpstreamEvent, this);
    }
    if (audited) {
      counters().wouldDeny[static_cast<size_t>(auditReason)].fetch_add(1, std::memory_order_relaxed);
      emit(observe::EventVerdict::Audit, auditReason, upstreamAddress);
    } else {
      server.count(decision.reason);
      emit(observe::EventVerdict::Allow, decision.reason, upstreamAddress);
    }
    upstreamEof = false;
    clientEof = false;
    if (connect) {
      startTunnel(UniqueFd(fd));
    } else {
      startForwarding();
    }
  }

  // ---- relaying ---------------------------------------------------------------

  // From here on the tunnel relay owns both sockets: the client's leaves
  // its bufferevent, taking along what that still held either way.
  void startTunnel(UniqueFd upstream) {
    state = State::Tunnel;
    counters().tunnelsActive.fetch_add(1, std::memory_order_relaxed);
    countedTunnel = true;
    // Usually nothing is left unsent and the answer goes as it is; the
    // relay copies only what the socket does not take at once.
    std::string toClient;
    std::string toUpstream;  // bytes the client sent right behind CONNECT (a TLS ClientHello)
    UniqueFd clientSocket;
    if (!clientBev) {
      // Served from the first read: the early bytes are still in its buffer.
      toUpstream.assign(early.begin(), early.end());
      early = {};
      clientSocket = std::move(clientFd);
    } else {
      evbuffer* unsent = bufferevent_get_output(clientBev.get());
      if (evbuffer_get_length(unsent) > 0) {
        toClient.resize(evbuffer_get_length(unsent));
        evbuffer_remove(unsent, toClient.data(), toClient.size());
        toClient.append(kConnectEstablished);
      }
      evbuffer* input = bufferevent_get_input(clientBev.get());
      toUpstream.resize(evbuffer_get_length(input));
      evbuffer_remove(input, toUpstream.data(), toUpstream.size());
      clientSocket = UniqueFd(bufferevent_getfd(clientBev.get()));
      bufferevent_setfd(clientBev.get(), -1);  // its free must not close the socket
      clientBev.reset();
      evtimer_del(headerTimer.get());
    }
    RelayOptions relayOptions;
    relayOptions.pipeBytes = options().tunnelPipeBytes;
    relayOptions.bufferBytes = options().relayHighWater;
    relayOptions.idleTimeout = options().idleTimeout;
    relayOptions.upstreamNagle = true;                  // startAttempt() left TCP_NODELAY to the relay
    relayOptions.upstreamAckDelay = kUpstreamAckDelay;  // and held the handshake's ACK back
    relayOptions.clientQuickAck = true;                 // the listener's sockets acknowledge late
    relayOptions.kernelSendBufferMax = server.kernelSendBufferMax_;
    relay = std::make_unique<TunnelRelay>(server.base_, std::move(clientSocket), std::move(upstream),
                                          server.pipes_.get(), relayOptions, counters().bytesToUpstream,
                                          counters().bytesToClient, &Connection::onRelayEnd, this);
    if (!relay->start(toClient.empty() ? kConnectEstablished : std::string_view(toClient), toUpstream)) {
      server.close(id);
    }
  }

  static void onRelayEnd(void* arg, RelayEnd end) {
    auto* self = static_cast<Connection*>(arg);
    if (end == RelayEnd::Idle) self->counters().idleTimeouts.fetch_add(1, std::memory_order_relaxed);
    if (end == RelayEnd::Reset) self->counters().tunnelResets.fetch_add(1, std::memory_order_relaxed);
    if (self->relay->copied()) self->counters().tunnelsUnspliced.fetch_add(1, std::memory_order_relaxed);
    self->server.close(self->id);
  }

  void setIdleTimeouts() {
    const timeval idle = toTimeval(options().idleTimeout);
    bufferevent_set_timeouts(clientBev.get(), &idle, nullptr);
    bufferevent_set_timeouts(upstreamBev.get(), &idle, nullptr);
    lastActivity = std::chrono::steady_clock::now();
    // libevent moves 16 KiB per read or write by default: one loop pass
    // per 16 KiB caps a bulk transfer far below the link.
    for (bufferevent* bev : {clientBev.get(), upstreamBev.get()}) {
      bufferevent_set_max_single_read(bev, kMaxSingleIo);
      bufferevent_set_max_single_write(bev, kMaxSingleIo);
    }
  }

  void onIdle(bufferevent* which) {
    // A read timeout on one side; the connection is idle only when neither
    // side has moved for the whole interval (a download reads only one).
    if (std::chrono::steady_clock::now() - lastActivity < options().idleTimeout) {
      bufferevent_enable(which, EV_READ);
      return;
    }
    counters().idleTimeouts.fetch_add(1, std::memory_order_relaxed);
    server.close(id);
  }

  static void onUpstreamRead(bufferevent*, void* arg) {
    auto* self = static_cast<Connection*>(arg);
    if (self->dead) return;
    if (self->state == State::Response || self->state == State::Body) {
      self->lastActivity = std::chrono::steady_clock::now();  // a download moves only this side
      self->relayResponse();
    }
  }

  static void onUpstreamWrite(bufferevent*, void* arg) {
    auto* self = static_cast<Connection*>(arg);
    if (self->dead) return;
    if (self->state == State::Body) bufferevent_enable(self->clientBev.get(), EV_READ);
  }

  static void onUpstreamEvent(bufferevent*, short what, void* arg) {
    auto* self = static_cast<Connection*>(arg);
    if (self->dead) return;
    if ((what & BEV_EVENT_TIMEOUT) != 0) {
      self->onIdle(self->upstreamBev.get());
      return;
    }
    if (self->state == State::Response || self->state == State::Body) {
      self->upstreamEof = true;
      if (!self->responseHeadDone &&
          evbuffer_get_length(bufferevent_get_input(self->upstreamBev.get())) == 0) {
        self->refuse(ProxyReason::UpstreamUnreachable,
                     problemBody(ProxyReason::UpstreamUnreachable,
                                 self->host + " closed the connection without a response"),
                     false);
        return;
      }
      self->relayResponse();  // finishes the exchange when the response is complete
      if (self->dead || self->state == State::Closing || self->state == State::Head) return;
      // The server closed mid-response: the client sees it cut short, as
      // it would have from the server itself.
      self->server.close(self->id);
      return;
    }
    self->server.close(self->id);
  }

  // ---- absolute-form: request body and response ----------------------------

  void startForwarding() {
    bufferevent_write(upstreamBev.get(), upstreamHead.data(), upstreamHead.size());
    upstreamHead.clear();
    responseHeadDone = false;
    responseCloseDelimited = false;
    responseBody = BodyKind::None;
    responseChunks = ChunkedScanner();
    pipelined = false;
    setIdleTimeouts();
    bufferevent_setwatermark(clientBev.get(), EV_READ, 0, 0);
    bufferevent_enable(upstreamBev.get(), EV_READ | EV_WRITE);
    state = body == BodyKind::None ? State::Response : State::Body;
    bufferevent_enable(clientBev.get(), EV_READ | EV_WRITE);
    if (state == State::Body) forwardBody();
    if (state == State::Body) quickAckClient();  // more of the body to come
    if (state == State::Response && evbuffer_get_length(bufferevent_get_input(clientBev.get())) > 0) {
      pipelined = true;
      bufferevent_disable(clientBev.get(), EV_READ);
    }
  }

  // Passes the request body on unchanged, up to its end and not a byte
  // further: what follows would be the next request.
  void forwardBody() {
    evbuffer* input = bufferevent_get_input(clientBev.get());
    evbuffer* output = bufferevent_get_output(upstreamBev.get());
    while (state == State::Body && evbuffer_get_length(input) > 0) {
      size_t take = 0;
      if (body == BodyKind::Length) {
        take = static_cast<size_t>(std::min<uint64_t>(bodyLeft, evbuffer_get_length(input)));
        bodyLeft -= take;
      } else {
        const auto chunk = pullup(input, std::min(evbuffer_get_length(input), kChunkScanStep));
        ChunkedScanner::Status status;
        take = bodyChunks.feed(chunk, status);
        if (status == ChunkedScanner::Status::Malformed) {
          refuse(ProxyReason::Malformed, problemBody(ProxyReason::Malformed, "invalid chunked body"), false);
          return;
        }
      }
      counters().bytesToUpstream.fetch_add(take, std::memory_order_relaxed);
      evbuffer_remove_buffer(input, output, take);
      const bool done =
          body == BodyKind::Length ? bodyLeft == 0 : bodyChunks.status() == ChunkedScanner::Status::Done;
      if (done) {
        state = State::Response;
        if (evbuffer_get_length(input) > 0) {
          pipelined = true;
          bufferevent_disable(clientBev.get(), EV_READ);
        }
      }
      if (take == 0) break;
    }
    if (state == State::Body && evbuffer_get_length(output) >= options().relayHighWater) {
      bufferevent_disable(clientBev.get(), EV_READ);
      bufferevent_setwatermark(upstreamBev.get(), EV_WRITE, options().relayHighWater / 2, 0);
    }
  }

  void relayResponse() {
    evbuffer* input = bufferevent_get_input(upstreamBev.get());
    evbuffer* output = bufferevent_get_output(clientBev.get());
    while (!responseHeadDone) {
      ResponseHead head;
      const ParseStatus status = parseResponseHead(pullup(input, kMaxResponseHead), kMaxResponseHead, head);
      if (status == ParseStatus::NeedMore && !upstreamEof) return;
      if (status != ParseStatus::Ok) {
        refuse(ProxyReason::UpstreamUnreachable,
               problemBody(ProxyReason::UpstreamUnreachable,
                           host + " sent an invalid response head" +
                               (head.why.empty() ? "" : " (" + std::string(head.why) + ")")),
               false);
        return;
      }
      const bool interim = head.status >= 100 && head.status < 200 && head.status != 101;
      const bool noBody = interim || headRequest || head.status == 204 || head.status == 304;
      if (!interim) {
        responseHeadDone = true;
        if (noBody) {
          responseBody = BodyKind::None;
        } else if (head.headers.chunked) {
          responseBody = BodyKind::Chunked;
        } else if (head.headers.hasContentLength) {
          responseBody = BodyKind::Length;
          responseLeft = head.headers.contentLength;
        } else {
          responseCloseDelimited = true;
        }
      }
      const bool closeAfter = !keepAlive || pipelined || responseCloseDelimited || head.status == 101;
      std::string rebuilt =
          "HTTP/1.1 " + std::to_string(head.status) + " " + std::string(head.reason) + "\r\n";
      for (size_t i = 0; i < head.headers.count; ++i) {
        const HeaderField& field = head.headers.fields[i];
        if (hopByHop(field.name)) continue;
        rebuilt.append(field.name).append(": ").append(field.value).append("\r\n");
      }
      if (!interim) rebuilt += closeAfter ? "Connection: close\r\n" : "Connection: keep-alive\r\n";
      rebuilt += "\r\n";
      evbuffer_drain(input, head.headLength);
      bufferevent_write(clientBev.get(), rebuilt.data(), rebuilt.size());
      if (head.status == 101) {
        responseCloseDelimited = true;  // the upgraded stream ends when the server closes
      }
    }
    // The body: through to the client, up to its end.
    while (evbuffer_get_length(input) > 0 && !responseComplete()) {
      size_t take = evbuffer_get_length(input);
      if (responseBody == BodyKind::Length) {
        take = static_cast<size_t>(std::min<uint64_t>(responseLeft, take));
        responseLeft -= take;
      } else if (responseBody == BodyKind::Chunked) {
        ChunkedScanner::Status status;
        take = responseChunks.feed(pullup(input, std::min(take, kChunkScanStep)), status);
        if (status == ChunkedScanner::Status::Malformed) {
          server.close(id);  // the client sees a cut response, as from the server
          return;
        }
      }
      counters().bytesToClient.fetch_add(take, std::memory_order_relaxed);
      evbuffer_remove_buffer(input, output, take);
      if (take == 0) break;
    }
    if (responseComplete()) {
      responseDone();
      return;
    }
    if (evbuffer_get_length(output) >= options().relayHighWater) {
      bufferevent_disable(upstreamBev.get(), EV_READ);
      bufferevent_setwatermark(clientBev.get(), EV_WRITE, options().relayHighWater / 2, 0);
    }
  }

  bool responseComplete() const {
    if (!responseHeadDone) return false;
    if (responseCloseDelimited) return upstreamEof;
    if (responseBody == BodyKind::None) return true;
    if (responseBody == BodyKind::Length) return responseLeft == 0;
    return responseChunks.status() == ChunkedScanner::Status::Done;
  }

  void responseDone() {
    upstreamBev.reset();
    if (!keepAlive || pipelined || responseCloseDelimited || clientEof || state == State::Body) {
      if (pipelined) server.count(ProxyReason::PipeliningRefused);
      state = State::Closing;
      bufferevent_setwatermark(clientBev.get(), EV_WRITE, 0, 0);
      bufferevent_disable(clientBev.get(), EV_READ);
      if (evbuffer_get_length(bufferevent_get_output(clientBev.get())) == 0) server.close(id);
      return;
    }
    // Kept alive: the next request is judged on its own, against the
    // policy in force when it arrives.
    policy.reset();
    bufferevent_setwatermark(clientBev.get(), EV_WRITE, 0, 0);
    awaitHead();
  }

  struct DnsWait {
    ProxyServer* server;
    uint64_t id;
    bool ipv6;
  };
};

ProxyServer::ProxyServer(event_base* base, ProxyOptions options,
                         const common::SnapshotHolder<policy::Policy>& policy, dns::BindingTable& bindings,
                         ProxyEventSink* sink)
    : base_(base), options_(std::move(options)), policy_(policy), bindings_(bindings), sink_(sink) {}

ProxyServer::~ProxyServer() {
  open_->fetch_sub(connections_.size(), std::memory_order_relaxed);
  connections_.clear();
  graveyard_.clear();
  listeners_.clear();
  dns_.reset();  // fails pending lookups; their callbacks find no connection
}

bool ProxyServer::start(std::string& error) {
  // Two descriptors per proxied connection: take the hard limit, as a
  // server expecting thousands of tunnels must.
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &files);
  }
  reaper_.reset(event_new(base_, -1, 0, &ProxyServer::onReap, this));
  if (options_.splice) pipes_ = std::make_unique<PipePool>(base_, options_.tunnelPipeBytes);
  kernelSendBufferMax_ = kernelSendBufferMax(kernelSendBufferMax_);
  dns_.reset(evdns_base_new(base_, 0));
  if (!dns_) {
    error = "evdns_base_new failed";
    return false;
  }
  sockaddr_storage resolver{};
  const socklen_t resolverLength = options_.resolver.toSockaddr(resolver);
  if (evdns_base_nameserver_sockaddr_add(dns_.get(), reinterpret_cast<const sockaddr*>(&resolver),
                                         resolverLength, 0) != 0) {
    error = "cannot use " + options_.resolver.toString() + " as the proxy's resolver";
    return false;
  }
  evdns_base_set_option(dns_.get(), "timeout:", "2");
  evdns_base_set_option(dns_.get(), "attempts:", "2");
  // egressd's DNS keeps the case of a question; 0x20 would only cost cache hits.
  evdns_base_set_option(dns_.get(), "randomize-case:", "0");
  for (const common::SocketAddress& address : options_.listen) {
    sockaddr_storage storage{};
    const socklen_t length = address.toSockaddr(storage);
    evconnlistener* listener =
        evconnlistener_new_bind(base_, &ProxyServer::onAccept, this,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC |
                                    (options_.reusePort ? LEV_OPT_REUSEABLE_PORT : 0),
                                1024, reinterpret_cast<const sockaddr*>(&storage), static_cast<int>(length));
    if (listener == nullptr) {
      error = "cannot listen on " + address.toString() + " (proxy.listen): " + common::errnoText(errno);
      listeners_.clear();
      bound_.clear();
      return false;
    }
    listeners_.emplace_back(listener);
    // Accepted only once the client's first bytes are in (or after the
    // kernel's few SYN-ACK retries, when proxy.header_timeout takes over):
    // the head is read in the accept callback itself. Best effort.
    const int deferSeconds = 1;
    ::setsockopt(evconnlistener_get_fd(listener), IPPROTO_TCP, TCP_DEFER_ACCEPT, &deferSeconds,
                 sizeof deferSeconds);
    // The proxy answers every request head at once (the 200, a refusal):
    // its answer can carry the acknowledgment of the head. Without this a
    // new connection's first segment is acknowledged on its own (the
    // kernel's quick-ack start), a packet per connection for nothing. The
    // accepted sockets inherit the setting (delayed-ACK "ping-pong" mode);
    // when an answer takes longer than the delayed-ACK timer (a slow
    // upstream), the ACK goes alone and the socket leaves that mode, as
    // any interactive server's.
    setTcpFlag(evconnlistener_get_fd(listener), TCP_QUICKACK, false);
    sockaddr_storage actual{};
    socklen_t actualLength = sizeof actual;
    common::SocketAddress boundAddress = address;
    if (::getsockname(evconnlistener_get_fd(listener), reinterpret_cast<sockaddr*>(&actual), &actualLength) ==
        0) {
      if (auto parsed = common::SocketAddress::fromSockaddr(reinterpret_cast<const sockaddr*>(&actual))) {
        boundAddress = *parsed;
      }
    }
    bound_.push_back(boundAddress);
  }
  return true;
}

void ProxyServer::onAccept(evconnlistener*, int fd, struct sockaddr* addr, int, void* arg) {
  auto* self = static_cast<ProxyServer*>(arg);
  self->counters_.connectionsAccepted.fetch_add(1, std::memory_order_relaxed);
  // Already non-blocking and close-on-exec: evconnlistener accepts with
  // accept4(SOCK_NONBLOCK | SOCK_CLOEXEC).
  const auto client = common::SocketAddress::fromSockaddr(addr).value_or(common::SocketAddress{});
  // Who may use the proxy is settled before a byte is read: a client
  // outside proxy.clients is reset, unread (docs/proxy.md "Who may use the
  // proxy"); a trusted balancer's clients are checked after its header.
  const bool balancer = inNetworks(self->options_.proxyProtocolFrom, client.ip);
  if (!balancer && !inNetworks(self->options_.clients, client.ip)) {
    resetOnClose(fd);
    ::close(fd);
    self->refused(ProxyReason::ClientNotAllowed, client, client);
    return;
  }
  if (self->open_->fetch_add(1, std::memory_order_relaxed) >= self->options_.maxConnections) {
    // Over proxy.max_connections: one best-effort answer, then closed.
    self->open_->fetch_sub(1, std::memory_order_relaxed);
    self->count(ProxyReason::TooManyConnections);
    const std::string response = errorResponse(
        ProxyReason::TooManyConnections,
        problemBody(ProxyReason::TooManyConnections,
                    std::to_string(self->options_.maxConnections) + " open (proxy.max_connections)"));
    [[maybe_unused]] const ssize_t written = ::send(fd, response.data(), response.size(), MSG_NOSIGNAL);
    ::close(fd);
    return;
  }
  const uint64_t id = self->nextId_++;
  auto connection = std::make_unique<Connection>(*self, id, client);
  connection->expectProxyHeader = balancer;
  Connection* raw = connection.get();
  self->connections_.emplace(id, std::move(connection));
  self->counters_.connectionsActive.store(self->connections_.size(), std::memory_order_relaxed);
  // Closes itself when it cannot go on. Without a bufferevent is no sign
  // of that: a tunnel whose head came with the connection has left it.
  raw->start(fd);
}

void ProxyServer::onDnsAnswer(int result, char type, int count, int ttl, void* addresses, void* arg) {
  std::unique_ptr<Connection::DnsWait> wait(static_cast<Connection::DnsWait*>(arg));
  (void)type;
  auto it = wait->server->connections_.find(wait->id);
  if (it == wait->server->connections_.end()) return;
  Connection& connection = *it->second;
  if (connection.state != Connection::State::Resolving) return;
  connection.onAnswer(wait->ipv6, result, count, ttl, addresses);
}

void ProxyServer::close(uint64_t id) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  Connection& connection = *it->second;
  if (connection.countedTunnel) counters_.tunnelsActive.fetch_sub(1, std::memory_order_relaxed);
  // close() runs inside the connection's own callbacks, which may go on
  // after it returns: stop everything now, free it from the loop next.
  connection.dead = true;
  if (connection.relay) connection.relay->stop();
  if (connection.clientBev) bufferevent_disable(connection.clientBev.get(), EV_READ | EV_WRITE);
  if (connection.upstreamBev) bufferevent_disable(connection.upstreamBev.get(), EV_READ | EV_WRITE);
  if (connection.headerTimer) evtimer_del(connection.headerTimer.get());
  if (connection.connectTimer) evtimer_del(connection.connectTimer.get());
  if (connection.staggerTimer) evtimer_del(connection.staggerTimer.get());
  for (auto& attempt : connection.attempts) event_del(attempt.writable.get());
  graveyard_.push_back(std::move(it->second));
  connections_.erase(it);
  open_->fetch_sub(1, std::memory_order_relaxed);
  counters_.connectionsActive.store(connections_.size(), std::memory_order_relaxed);
  event_active(reaper_.get(), EV_TIMEOUT, 0);
}

void ProxyServer::onReap(evutil_socket_t, short, void* arg) {
  static_cast<ProxyServer*>(arg)->graveyard_.clear();
}

const ProxyServer::CachedAnswer* ProxyServer::cachedAnswer(const std::string& name) const {
  auto it = answers_.find(name);
  if (it == answers_.end() || it->second.expires <= dns::Clock::now()) return nullptr;
  return &it->second;
}

void ProxyServer::rememberAnswer(const std::string& name, const std::vector<common::IpAddress>& addresses,
                                 dns::Clock::time_point expires) {
  if (answers_.size() >= kMaxCachedNames && answers_.find(name) == answers_.end()) {
    const auto now = dns::Clock::now();
    std::erase_if(answers_, [now](const auto& entry) { return entry.second.expires <= now; });
    // Still full of live names: one goes (bounded memory beats the hit).
    if (answers_.size() >= kMaxCachedNames) answers_.erase(answers_.begin());
  }
  CachedAnswer& entry = answers_[name];
  entry.addresses = addresses;
  entry.expires = expires;
}

void ProxyServer::count(ProxyReason reason) noexcept {
  counters_.outcomes[static_cast<size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
}

void ProxyServer::refused(ProxyReason reason, const common::SocketAddress& client,
                          const common::SocketAddress& peer) {
  if (reason == ProxyReason::ClientNotAllowed) {
    counters_.clientsRefused.fetch_add(1, std::memory_order_relaxed);
  }
  if (sink_ != nullptr) {
    // No request was read: the event has a client and a reason, no target.
    observe::Event event;
    event.kind = observe::EventKind::Proxy;
    event.time = std::chrono::system_clock::now();
    event.src = client.ip;
    event.srcPort = client.port;
    event.protocol = IPPROTO_TCP;
    event.verdict = observe::EventVerdict::Deny;
    event.reason = proxyReasonName(reason);
    event.nameSource = "client";
    sink_->onProxyEvent(event);
  }
  // A scan must not flood the log: a line a second at most, saying how
  // many refusals it stands for (the events and counters have them all).
  uint64_t suppressed = 0;
  if (!refusalLog_.shouldLog(RefusalLog::Clock::now(), suppressed)) return;
  common::LogLine line(common::LogLevel::Warn, "proxy.client_refused");
  line.field("client", client.toString());
  if (!(peer == client)) line.field("via", peer.toString());
  line.field("reason", proxyReasonName(reason));
  line.field("suppressed", suppressed);
  line.field("hint", reason == ProxyReason::ClientNotAllowed
                         ? "not in proxy.clients (add its network there if it should use the proxy)"
                         : "no valid PROXY header from an address in proxy.proxy_protocol_from");
}

}  // namespace proxy

#include "dns/service.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event_struct.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <system_error>
#include <utility>

#include "common/log.h"
#include "common/proxy_protocol.h"
#include "dns/answer.h"
#include "dns/response.h"
#include "policy/public_suffix.h"

namespace dns {

std::string_view dnsOutcomeName(DnsOutcome outcome) noexcept {
  switch (outcome) {
    case DnsOutcome::Allowed:
      return "allowed";
    case DnsOutcome::CacheHit:
      return "cache_hit";
    case DnsOutcome::Denied:
      return "denied";
    case DnsOutcome::Cluster:
      return "cluster";
    case DnsOutcome::UpstreamError:
      return "upstream_error";
    case DnsOutcome::Malformed:
      return "malformed";
    case DnsOutcome::Refused:
      return "refused";
  }
  return "unknown";
}

namespace {

constexpr size_t kUdpBatch = 32;                 // datagrams per recvmmsg
constexpr size_t kUdpPerWakeUp = 4 * kUdpBatch;  // then the other events' turn
constexpr size_t kUdpSlot = 4096;                // bigger UDP queries get FORMERR
constexpr size_t kMaxTcpOutput = 1 << 20;        // a client that does not read is dropped
// Binding table expiry: a bounded slice per tick (BindingTable::purgeExpiredStep,
// 1024 entries, well under 1 ms). The ticks come as often as the table
// needs for a pass in about kSweepPass: every 25 ms at 1,000,000 bindings
// (as before), once a second at 25,600 or fewer, so an idle node does not
// wake up 40 times a second to sweep a table that is (nearly) empty.
constexpr std::chrono::milliseconds kHousekeepingMin{25};
constexpr std::chrono::milliseconds kHousekeepingMax{1000};
constexpr std::chrono::milliseconds kSweepPass{25'000};
constexpr uint64_t kNoTcp = 0;
// dns.upstream_failed: one warning per interval at most (a dead upstream
// fails every query; the count of the others goes with the next line).
constexpr std::chrono::seconds kUpstreamFailureLogInterval{10};

timeval toTimeval(std::chrono::milliseconds ms) noexcept {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

std::string errnoText() {
  return std::error_code(errno, std::generic_category()).message();
}

void inc(std::atomic<uint64_t>& counter) noexcept {
  counter.fetch_add(1, std::memory_order_relaxed);
}

// A peer's address: IPv4 and IPv6 ones (all but a few bytes of the
// storage unused) with a fixed-size copy, which compiles to a few moves.
void copyAddress(sockaddr_storage& to, const sockaddr_storage& from, socklen_t length) noexcept {
  if (length <= sizeof(sockaddr_in6)) {
    std::memcpy(&to, &from, sizeof(sockaddr_in6));
  } else {
    std::memcpy(&to, &from, std::min<size_t>(length, sizeof to));
  }
}

struct FdCloser {
  int fd = -1;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
  int release() noexcept { return std::exchange(fd, -1); }
};

}  // namespace

struct DnsService::Listener {
  int udpFd = -1;
  // Bound to 0.0.0.0 or ::: each datagram's destination comes with it
  // (IP_PKTINFO / IPV6_RECVPKTINFO) and the answer leaves from that address.
  bool wildcard = false;
  event udpEvent{};
  bool udpEventAdded = false;
  common::CHandle<evconnlistener, evconnlistener_free> tcp;
  DnsService* service = nullptr;
  ~Listener() {
    if (udpEventAdded) event_del(&udpEvent);
    if (udpFd >= 0) ::close(udpFd);
  }
};

// The UDP listener's batches: received with one recvmmsg, answered with one
// sendmmsg. Without the batching each query cost an epoll_wait, a recv
// and a send (plus a recv for EAGAIN); with it the two transfers are
// shared by everything that arrived together. Slots are preallocated and
// the headers point into them once and for all.
// Room for one IP_PKTINFO or IPV6_PKTINFO control message.
constexpr size_t kPktinfoControl = CMSG_SPACE(sizeof(in6_pktinfo));
struct alignas(cmsghdr) PktinfoControl {
  std::array<uint8_t, kPktinfoControl> bytes;
};

struct DnsService::UdpBatch {
  std::array<mmsghdr, kUdpBatch> headers{};
  std::array<PktinfoControl, kUdpBatch> control{};  // wildcard listeners only
  std::array<iovec, kUdpBatch> iov{};
  std::array<sockaddr_storage, kUdpBatch> addresses{};
  std::vector<uint8_t> buffers = std::vector<uint8_t>(kUdpBatch * kUdpSlot);
  // Answers queued while `collectingFd`'s batch is handled (-1: none).
  std::array<mmsghdr, kUdpBatch> outHeaders{};
  std::array<iovec, kUdpBatch> outIov{};
  std::array<sockaddr_storage, kUdpBatch> outAddresses{};
  std::array<PktinfoControl, kUdpBatch> outControl{};
  std::vector<uint8_t> outBuffers = std::vector<uint8_t>(kUdpBatch * kUdpSlot);
  size_t outCount = 0;
  int collectingFd = -1;
  // Receive headers the kernel wrote since they were last prepared, and
  // the kind of listener they were prepared for (a wildcard one gets a
  // control buffer): only those are reset before the next recvmmsg.
  size_t headersWritten = kUdpBatch;
  bool preparedForWildcard = false;

  UdpBatch() {
    for (size_t i = 0; i < kUdpBatch; ++i) {
      iov[i] = iovec{buffers.data() + i * kUdpSlot, kUdpSlot};
      headers[i].msg_hdr.msg_name = &addresses[i];
      headers[i].msg_hdr.msg_iov = &iov[i];
      headers[i].msg_hdr.msg_iovlen = 1;
      outIov[i] = iovec{outBuffers.data() + i * kUdpSlot, 0};
      outHeaders[i].msg_hdr.msg_name = &outAddresses[i];
      outHeaders[i].msg_hdr.msg_iov = &outIov[i];
      outHeaders[i].msg_hdr.msg_iovlen = 1;
    }
  }
};

struct DnsService::ClientRef {
  bool tcp = false;
  int udpFd = -1;
  sockaddr_storage addr{};
  socklen_t addrLength = 0;
  // UDP to a wildcard listener: the address the query was sent to (the
  // answer's source) and the interface it came in on.
  bool hasLocal = false;
  common::IpAddress local;
  uint32_t localInterface = 0;
  uint64_t tcpId = kNoTcp;
  // From a load balancer whose PROXY header named a client: that client is
  // the query's (decision, event, log, tunnel guard); `addr` stays the
  // balancer's, where the answer goes.
  bool proxied = false;
  common::SocketAddress origin;

  // Who the query is for: the named client, else the peer.
  std::optional<common::SocketAddress> who() const noexcept {
    if (proxied) return origin;
    return common::SocketAddress::fromSockaddr(reinterpret_cast<const sockaddr*>(&addr));
  }
};

struct DnsService::TcpClient {
  uint64_t id = 0;
  common::CHandle<bufferevent, bufferevent_free> bev;
  DnsService* service = nullptr;
  ClientRef ref;
  bool awaitingProxyHeader = false;  // a load balancer's connection, its header not read yet
  size_t pending = 0;                // its queries waiting for an upstream
  bool readClosed = false;           // EOF seen: answer what is pending, then close
  // The address the client connected to (getsockname once per connection;
  // port 0 if unknown), for the events' destination.
  common::SocketAddress local;
};

struct DnsService::Pending {
  DnsService* service = nullptr;
  ClientRef client;
  Query query;
  std::vector<uint8_t> wire;  // the client's query; ID replaced per attempt
  uint16_t clientId = 0;
  uint16_t upstreamId = 0;
  bool cluster = false;
  std::shared_ptr<const DnsOptions> options;  // as when the query arrived
  // The policy snapshot that allowed the name when the query arrived (null:
  // not allowed then, or a cluster name). The answer is judged again only
  // under another snapshot: the same one gives the same verdict.
  std::shared_ptr<const policy::Policy> allowedBy;
  size_t upstream = 0;
  int udpFd = -1;
  event udpEvent{};
  bool udpEventAdded = false;
  common::CHandle<bufferevent, bufferevent_free> tcp;
  bool overTcp = false;
  Clock::time_point sentAt{};  // this attempt's query left (upstreamLatency)
  // Forwarded in audit mode although enforce mode denies it: why.
  bool audit = false;
  DenyReason auditReason = DenyReason::None;
  // Why the last attempt failed: a timeout (EDE 22) or anything else (23).
  bool timedOut = false;

  const std::vector<common::SocketAddress>& upstreams() const {
    return cluster ? options->clusterUpstreams : options->upstreams;
  }
  void closeTransport() noexcept {
    if (udpEventAdded) event_del(&udpEvent);
    udpEventAdded = false;
    if (udpFd >= 0) ::close(udpFd);
    udpFd = -1;
    tcp.reset();
  }
};

// A network of dns.proxy_protocol_from as bytes and mask (IPv4 in the
// first four), so that a datagram's source is matched straight from its
// sockaddr with a few masked compares: every datagram of a listener with
// balancers pays it, pods' own too.
struct DnsService::BalancerNetwork {
  bool v4 = true;
  std::array<uint8_t, 16> bytes{};
  std::array<uint8_t, 16> mask{};

  explicit BalancerNetwork(const common::IpNetwork& network) noexcept
      : v4(network.address.family == common::IpFamily::V4) {
    for (unsigned bit = 0; bit < network.prefixLength; ++bit) {
      mask[bit / 8] = static_cast<uint8_t>(mask[bit / 8] | (0x80U >> (bit % 8)));
    }
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = network.address.bytes[i] & mask[i];
  }
  bool contains(const uint8_t* address, size_t length) const noexcept {
    uint8_t differ = 0;
    for (size_t i = 0; i < length; ++i) differ |= static_cast<uint8_t>((address[i] ^ bytes[i]) & mask[i]);
    return differ == 0;
  }
};

DnsService::DnsService(event_base* base, DnsOptions options,
                       const common::SnapshotHolder<policy::Policy>& policy, BindingTable& bindings,
                       DnsEventSink* sink, ClockFunction clock)
    : base_(base),
      options_(std::make_shared<const DnsOptions>(std::move(options))),
      policy_(policy),
      bindings_(bindings),
      sink_(sink),
      clock_(std::move(clock)),
      cache_(options_->cacheSize),
      tunnelGuard_(policy::defaultPublicSuffixList()),
      balancers_(options_->proxyProtocolFrom.begin(), options_->proxyProtocolFrom.end()),
      balancersListed_(!balancers_.empty()),
      rx_(kMaxMessageSize + 1),
      tx_(kMaxMessageSize + 2),
      upstreamRx_(kMaxMessageSize + 1),
      scratch_(kMaxMessageSize),
      udpBatch_(std::make_unique<UdpBatch>()),
      udpClient_(std::make_unique<ClientRef>()) {
  cache_.setHitSink([this](std::string_view name, uint64_t hits) { reportHits(name, hits); });
}

DnsService::~DnsService() {
  for (auto& pending : pendingPool_) pending->closeTransport();
  tcp_.clear();
  listeners_.clear();
}

uint16_t DnsService::randomId() noexcept {
  // Query IDs from the kernel CSPRNG (RFC 5452 section 9.2), fetched in
  // batches to keep one syscall per 256 queries.
  if (idsLeft_ == 0) {
    if (getrandom(ids_.data(), sizeof ids_, 0) != static_cast<ssize_t>(sizeof ids_)) {
      arc4random_buf(ids_.data(), sizeof ids_);
    }
    idsLeft_ = ids_.size();
  }
  return ids_[--idsLeft_];
}

bool DnsService::start(std::string& error) {
  for (const common::SocketAddress& address : options_->listen) {
    bool done = false;
    // With port 0, UDP picks the port and TCP must get the same one; retry
    // a few times if another program holds it for TCP.
    for (int attempt = 0; attempt < 16 && !done; ++attempt) {
      auto listener = std::make_unique<Listener>();
      listener->service = this;
      sockaddr_storage storage{};
      socklen_t length = address.toSockaddr(storage);
      const int family = storage.ss_family;
      FdCloser udp{::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
      if (udp.fd < 0) {
        error = "dns: socket for " + address.toString() + ": " + errnoText();
        listeners_.clear();
        bound_.clear();
        return false;
      }
      const int one = 1;
      if (family == AF_INET6) ::setsockopt(udp.fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
      const int buffer = 4 << 20;
      ::setsockopt(udp.fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
      // A wildcard address: answers must leave from the address each query
      // was sent to, or clients on a host with several addresses drop them.
      listener->wildcard = address.ip == common::IpAddress{address.ip.family, {}};
      if (listener->wildcard) {
        const int on = family == AF_INET6
                           ? ::setsockopt(udp.fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one)
                           : ::setsockopt(udp.fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
        if (on != 0) {
          error = "dns: packet info on udp " + address.toString() + ": " + errnoText();
          listeners_.clear();
          bound_.clear();
          return false;
        }
      }
      if (::bind(udp.fd, reinterpret_cast<sockaddr*>(&storage), length) != 0) {
        error = "dns: bind udp " + address.toString() + ": " + errnoText();
        listeners_.clear();
        bound_.clear();
        return false;
      }
      sockaddr_storage actual{};
      socklen_t actualLength = sizeof actual;
      ::getsockname(udp.fd, reinterpret_cast<sockaddr*>(&actual), &actualLength);
      const auto boundAddress = common::SocketAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&actual));
      if (!boundAddress) {
        error = "dns: getsockname " + address.toString();
        listeners_.clear();
        bound_.clear();
        return false;
      }
      FdCloser tcp{::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
      if (tcp.fd < 0) {
        error = "dns: socket for " + address.toString() + ": " + errnoText();
        listeners_.clear();
        bound_.clear();
        return false;
      }
      ::setsockopt(tcp.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (family == AF_INET6) ::setsockopt(tcp.fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
      if (::bind(tcp.fd, reinterpret_cast<sockaddr*>(&actual), actualLength) != 0) {
        if (errno == EADDRINUSE && address.port == 0) continue;
        error = "dns: bind tcp " + boundAddress->toString() + ": " + errnoText();
        listeners_.clear();
        bound_.clear();
        return false;
      }
      if (::listen(tcp.fd, 128) != 0) {
        error = "dns: listen tcp " + boundAddress->toString() + ": " + errnoText();
        listeners_.clear();
        bound_.clear();
        return false;
      }
      listener->tcp.reset(evconnlistener_new(base_, &DnsService::onTcpAccept, this,
                                             LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, tcp.fd));
      if (!listener->tcp) {
        error = "dns: evconnlistener for " + boundAddress->toString();
        listeners_.clear();
        bound_.clear();
        return false;
      }
      tcp.release();
      listener->udpFd = udp.release();
      event_assign(&listener->udpEvent, base_, listener->udpFd, EV_READ | EV_PERSIST,
                   &DnsService::onUdpReadable, listener.get());
      event_add(&listener->udpEvent, nullptr);
      listener->udpEventAdded = true;
      bound_.push_back(*boundAddress);
      listeners_.push_back(std::move(listener));
      done = true;
    }
    if (!done) {
      error = "dns: no port free for both UDP and TCP on " + address.toString();
      listeners_.clear();
      bound_.clear();
      return false;
    }
  }
  housekeeping_.reset(event_new(base_, -1, 0, &DnsService::onHousekeeping, this));
  const timeval interval = toTimeval(kHousekeepingMax);
  event_add(housekeeping_.get(), &interval);
  return true;
}

void DnsService::updateOptions(const DnsOptions& options) {
  auto next = std::make_shared<DnsOptions>(options);
  next->listen = options_->listen;  // restart-only
  if (next->cacheSize != options_->cacheSize) cache_.setMaxEntries(next->cacheSize);
  options_ = std::move(next);
}

std::chrono::milliseconds DnsService::housekeepingInterval(size_t bindings) noexcept {
  // Steps per pass: one per kDefaultSweepBudget entries.
  const size_t steps = std::max<size_t>(1, bindings / BindingTable::kDefaultSweepBudget);
  return std::clamp(std::chrono::milliseconds(kSweepPass.count() / static_cast<int64_t>(steps)),
                    kHousekeepingMin, kHousekeepingMax);
}

void DnsService::onHousekeeping(int, short, void* arg) {
  auto* self = static_cast<DnsService*>(arg);
  self->bindings_.purgeExpiredStep(self->now());
  const timeval interval = toTimeval(housekeepingInterval(self->bindings_.stats().entries));
  event_add(self->housekeeping_.get(), &interval);
}

// ---- client side ----------------------------------------------------------

void DnsService::onUdpReadable(int fd, short, void* arg) {
  auto* listener = static_cast<Listener*>(arg);
  DnsService& self = *listener->service;
  UdpBatch& batch = *self.udpBatch_;
  // recvmmsg: one syscall for everything queued (up to a batch), again
  // after each batch's answers until the socket is empty (EAGAIN), as
  // unbound reads until EAGAIN: a query that came in while the last ones
  // were answered is taken now, not after another trip through the event
  // loop (epoll_wait and libevent's dispatch, ~680 user-space instructions,
  // more than answering a denial). When nothing came meanwhile, the price
  // is that one recvmmsg finding the socket empty. At most kUdpPerWakeUp
  // datagrams, so that TCP clients, upstream answers and timers get their
  // turn under a flood.
  for (size_t handled = 0; handled < kUdpPerWakeUp;) {
    // In/out fields: the kernel overwrote them in the headers it filled
    // (one per datagram received), the others are still as prepared.
    const size_t dirty = batch.preparedForWildcard != listener->wildcard ? kUdpBatch : batch.headersWritten;
    for (size_t i = 0; i < dirty; ++i) {
      batch.headers[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
      batch.headers[i].msg_hdr.msg_flags = 0;
      batch.headers[i].msg_hdr.msg_control = listener->wildcard ? batch.control[i].bytes.data() : nullptr;
      batch.headers[i].msg_hdr.msg_controllen = listener->wildcard ? kPktinfoControl : 0;
    }
    batch.preparedForWildcard = listener->wildcard;
    const int received = ::recvmmsg(fd, batch.headers.data(), kUdpBatch, MSG_DONTWAIT, nullptr);
    // An empty socket (EAGAIN, the usual end of a wake-up) touches no
    // header: the kernel writes a header back only for a datagram it
    // received. After another error all are reset, to be safe.
    if (received >= 0) {
      batch.headersWritten = static_cast<size_t>(received);
    } else {
      batch.headersWritten = errno == EAGAIN || errno == EWOULDBLOCK ? 0 : kUdpBatch;
    }
    if (received <= 0) return;  // EAGAIN, or an ICMP error from an earlier send
    batch.collectingFd = fd;
    // One client at a time, in a reused ClientRef (its address buffer is
    // not cleared per datagram; only addrLength bytes of it count).
    ClientRef& client = *self.udpClient_;
    client.tcp = false;
    client.tcpId = kNoTcp;
    client.udpFd = fd;
    for (size_t i = 0; i < static_cast<size_t>(received); ++i) {
      client.addrLength = batch.headers[i].msg_hdr.msg_namelen;
      copyAddress(client.addr, batch.addresses[i], client.addrLength);
      client.hasLocal = false;
      if (listener->wildcard) readPktinfo(batch.headers[i].msg_hdr, client);
      std::span<const uint8_t> wire(batch.buffers.data() + i * kUdpSlot, batch.headers[i].msg_len);
      if (self.balancersListed_) [[unlikely]] {
        const size_t header = self.takeBalancerHeader(wire, client);
        if (header == kRefused) continue;
        wire = wire.subspan(header);
      }
      if ((batch.headers[i].msg_hdr.msg_flags & MSG_TRUNC) != 0) {
        self.handleOversized(wire, client);
      } else {
        self.handleQuery(wire, client);
      }
    }
    self.flushUdp();
    handled += static_cast<size_t>(received);
  }
}

namespace {

// The destination of a datagram to a wildcard listener (RFC 3542 section
// 6.1 for IPv6; ip(7) IP_PKTINFO for IPv4).
void readPktinfoInto(msghdr& header, bool& hasLocal, common::IpAddress& local, uint32_t& interface) noexcept {
  for (cmsghdr* c = CMSG_FIRSTHDR(&header); c != nullptr; c = CMSG_NXTHDR(&header, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO &&
        c->cmsg_len >= CMSG_LEN(sizeof(in_pktinfo))) {
      in_pktinfo info{};
      std::memcpy(&info, CMSG_DATA(c), sizeof info);
      local = common::IpAddress::v4Bytes(reinterpret_cast<const uint8_t*>(&info.ipi_addr));
      interface = static_cast<uint32_t>(info.ipi_ifindex);
      hasLocal = true;
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO &&
               c->cmsg_len >= CMSG_LEN(sizeof(in6_pktinfo))) {
      in6_pktinfo info{};
      std::memcpy(&info, CMSG_DATA(c), sizeof info);
      local = common::IpAddress::v6Bytes(info.ipi6_addr.s6_addr);
      interface = info.ipi6_ifindex;
      hasLocal = true;
    }
  }
}

}  // namespace

void DnsService::readPktinfo(msghdr& header, ClientRef& client) noexcept {
  readPktinfoInto(header, client.hasLocal, client.local, client.localInterface);
}

socklen_t DnsService::writePktinfo(const ClientRef& client, uint8_t* control) noexcept {
  if (!client.hasLocal) return 0;
  std::memset(control, 0, kPktinfoControl);
  auto* c = reinterpret_cast<cmsghdr*>(control);
  if (client.local.family == common::IpFamily::V4) {
    in_pktinfo info{};
    std::memcpy(&info.ipi_spec_dst, client.local.bytes.data(), 4);  // the source; routing picks the interface
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof info);
    std::memcpy(CMSG_DATA(c), &info, sizeof info);
    return static_cast<socklen_t>(CMSG_SPACE(sizeof info));
  }
  in6_pktinfo info{};
  std::memcpy(info.ipi6_addr.s6_addr, client.local.bytes.data(), 16);
  info.ipi6_ifindex = client.localInterface;  // needed for link-local sources
  c->cmsg_level = IPPROTO_IPV6;
  c->cmsg_type = IPV6_PKTINFO;
  c->cmsg_len = CMSG_LEN(sizeof info);
  std::memcpy(CMSG_DATA(c), &info, sizeof info);
  return static_cast<socklen_t>(CMSG_SPACE(sizeof info));
}

void DnsService::sendUdp(const ClientRef& client, std::span<const uint8_t> wire) {
  UdpBatch& batch = *udpBatch_;
  if (client.udpFd != batch.collectingFd || wire.size() > kUdpSlot || batch.outCount == kUdpBatch) {
    // Outside a batch (an upstream's answer arriving later): one sendmsg.
    PktinfoControl control{};
    iovec iov{const_cast<uint8_t*>(wire.data()), wire.size()};
    msghdr header{};
    header.msg_name = const_cast<sockaddr_storage*>(&client.addr);
    header.msg_namelen = client.addrLength;
    header.msg_iov = &iov;
    header.msg_iovlen = 1;
    header.msg_controllen = writePktinfo(client, control.bytes.data());
    header.msg_control = header.msg_controllen > 0 ? control.bytes.data() : nullptr;
    ::sendmsg(client.udpFd, &header, MSG_DONTWAIT);
    return;
  }
  const size_t slot = batch.outCount++;
  uint8_t* buffer = batch.outBuffers.data() + slot * kUdpSlot;
  if (wire.data() != buffer) std::memcpy(buffer, wire.data(), wire.size());  // else built in place
  batch.outIov[slot].iov_len = wire.size();
  copyAddress(batch.outAddresses[slot], client.addr, client.addrLength);
  batch.outHeaders[slot].msg_hdr.msg_namelen = client.addrLength;
  msghdr& out = batch.outHeaders[slot].msg_hdr;
  out.msg_controllen = client.hasLocal ? writePktinfo(client, batch.outControl[slot].bytes.data()) : 0;
  out.msg_control = out.msg_controllen > 0 ? batch.outControl[slot].bytes.data() : nullptr;
}

std::span<uint8_t> DnsService::answerBuffer(const ClientRef& client) noexcept {
  UdpBatch& batch = *udpBatch_;
  if (client.tcp || client.udpFd != batch.collectingFd || batch.outCount == kUdpBatch) {
    return {tx_.data(), kMaxMessageSize};
  }
  return {batch.outBuffers.data() + batch.outCount * kUdpSlot, kUdpSlot};
}

void DnsService::flushUdp() {
  UdpBatch& batch = *udpBatch_;
  size_t sent = 0;
  while (sent < batch.outCount) {
    const int n = ::sendmmsg(batch.collectingFd, batch.outHeaders.data() + sent,
                             static_cast<unsigned>(batch.outCount - sent), MSG_DONTWAIT);
    // sendmmsg stops at the first datagram that fails (a full socket
    // buffer, an unreachable client): that one is dropped, as a lone
    // sendto would drop it; the client retries.
    sent += n > 0 ? static_cast<size_t>(n) : 1;
  }
  batch.outCount = 0;
  batch.collectingFd = -1;
}

void DnsService::handleOversized(std::span<const uint8_t> wire, const ClientRef& client) {
  // Larger than any query we accept over UDP: FORMERR from the header
  // alone (never to something that claims to be a response).
  inc(counters_.queries);
  inc(counters_.malformed);
  Header header;
  if (!parseHeader(wire, header) || header.qr()) return;
  const size_t length = buildHeaderOnlyResponse(wire, rcode::FormErr, tx_);
  sendToClient(client, std::span<const uint8_t>(tx_.data(), length), nullptr);
  emit(client, nullptr, {}, DnsOutcome::Malformed, DenyReason::None, rcode::FormErr, 0);
}

// ---- load balancers' PROXY headers (dns.proxy_protocol_from) --------------

bool DnsService::fromBalancer(const sockaddr_storage& peer) const noexcept {
  // The listeners are IPV6_V6ONLY (start()): an IPv4 peer is AF_INET, never
  // ::ffff:a.b.c.d.
  const uint8_t* address = nullptr;
  const bool v4 = peer.ss_family == AF_INET;
  if (v4) {
    address = reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in&>(peer).sin_addr);
  } else if (peer.ss_family == AF_INET6) {
    address = reinterpret_cast<const sockaddr_in6&>(peer).sin6_addr.s6_addr;
  } else {
    return false;
  }
  for (const BalancerNetwork& network : balancers_) {
    if (network.v4 == v4 && network.contains(address, v4 ? 4 : 16)) return true;
  }
  return false;
}

size_t DnsService::takeBalancerHeader(std::span<const uint8_t> wire, ClientRef& client) {
  client.proxied = false;
  // From anyone else a header is never read: those bytes are a DNS query
  // (and one starting with the signature is malformed or refused as such).
  if (!fromBalancer(client.addr)) return 0;
  // dnsdist puts a whole v2 header before every datagram (its health
  // checks: LOCAL); a datagram is never continued, so NeedMore is a cut.
  common::ProxyHeader header;
  const common::ProxyHeaderStatus status =
      common::parseProxyHeader(wire, header, common::ProxyCarrier::Datagram);
  if (status != common::ProxyHeaderStatus::Ok) {
    refuseBalancerHeader(client, status == common::ProxyHeaderStatus::NotThisProtocol,
                         status == common::ProxyHeaderStatus::NeedMore ? "header cut short" : header.why);
    return kRefused;
  }
  if (header.local) {
    inc(counters_.proxyHeadersLocal);  // the balancer's own query: it is the client
    return header.length;
  }
  inc(counters_.proxyHeaders);
  client.proxied = true;
  client.origin = header.source;
  return header.length;
}

bool DnsService::takeBalancerHeader(TcpClient& client, evbuffer* input) {
  // v1 or v2 (STREAM), at the start of the connection, possibly split over
  // segments: wait for the rest (the idle timeout bounds a balancer that
  // never sends it).
  const size_t available = std::min(evbuffer_get_length(input), common::kMaxProxyHeaderBytes);
  if (available == 0) return false;
  const uint8_t* bytes = evbuffer_pullup(input, static_cast<ev_ssize_t>(available));
  common::ProxyHeader header;
  const common::ProxyHeaderStatus status = common::parseProxyHeader(
      std::span<const uint8_t>(bytes, available), header, common::ProxyCarrier::Stream);
  if (status == common::ProxyHeaderStatus::NeedMore) return false;
  if (status != common::ProxyHeaderStatus::Ok) {
    refuseBalancerHeader(client.ref, status == common::ProxyHeaderStatus::NotThisProtocol, header.why);
    closeTcpClient(client.id);
    return false;
  }
  evbuffer_drain(input, header.length);
  client.awaitingProxyHeader = false;
  if (header.local) {
    inc(counters_.proxyHeadersLocal);
    return true;
  }
  inc(counters_.proxyHeaders);
  client.ref.proxied = true;
  client.ref.origin = header.source;
  return true;
}

void DnsService::refuseBalancerHeader(const ClientRef& client, bool missing, std::string_view why) {
  inc(missing ? counters_.proxyHeadersMissing : counters_.proxyHeadersMalformed);
  // One warning per interval at most: a balancer without useProxyProtocol
  // sends every query this way.
  const Clock::time_point current = Clock::now();
  if (lastBalancerRefusalLog_ != Clock::time_point{} &&
      current - lastBalancerRefusalLog_ < kUpstreamFailureLogInterval) {
    ++balancerRefusalsNotLogged_;
    return;
  }
  const auto peer = client.who();
  common::LogLine(common::LogLevel::Warn, "dns.proxy_protocol_refused")
      .field("balancer", peer ? peer->ip.toString() : std::string("?"))
      .field("transport", client.tcp ? "tcp" : "udp")
      .field("reason", missing ? "missing" : "malformed")
      .field("why", missing ? std::string_view("no PROXY header") : why)
      .field("not_logged", balancerRefusalsNotLogged_)
      .field("fix",
             "this address is in dns.proxy_protocol_from: make the balancer send PROXY protocol v2 "
             "(dnsdist newServer{..., useProxyProtocol=true}) or remove it from the list");
  lastBalancerRefusalLog_ = current;
  balancerRefusalsNotLogged_ = 0;
}

void DnsService::onTcpAccept(evconnlistener*, int fd, struct sockaddr* addr, int length, void* arg) {
  auto* self = static_cast<DnsService*>(arg);
  if (self->tcp_.size() >= self->options_->maxTcpClients) {
    inc(self->counters_.tcpRejected);
    ::close(fd);
    return;
  }
  auto client = std::make_unique<TcpClient>();
  client->id = self->nextTcpId_++;
  client->service = self;
  client->ref.tcp = true;
  client->ref.tcpId = client->id;
  client->ref.addrLength =
      static_cast<socklen_t>(std::min<size_t>(static_cast<size_t>(length), sizeof(sockaddr_storage)));
  std::memcpy(&client->ref.addr, addr, client->ref.addrLength);
  client->awaitingProxyHeader = self->balancersListed_ && self->fromBalancer(client->ref.addr);
  sockaddr_storage local{};
  socklen_t localLength = sizeof local;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &localLength) == 0) {
    if (auto address = common::SocketAddress::fromSockaddr(reinterpret_cast<const sockaddr*>(&local)))
      client->local = *address;
  }
  client->bev.reset(bufferevent_socket_new(self->base_, fd, BEV_OPT_CLOSE_ON_FREE));
  if (!client->bev) {
    ::close(fd);
    return;
  }
  bufferevent_setcb(client->bev.get(), &DnsService::onTcpRead, &DnsService::onTcpWrite,
                    &DnsService::onTcpEvent, client.get());
  // RFC 7766 section 6.2.3: idle connections are closed; the read timeout
  // also ends a client that never finishes a message.
  const timeval idle = toTimeval(self->options_->tcpIdleTimeout);
  bufferevent_set_timeouts(client->bev.get(), &idle, &idle);
  bufferevent_enable(client->bev.get(), EV_READ);
  self->tcp_.emplace(client->id, std::move(client));
}

void DnsService::onTcpRead(bufferevent* bev, void* arg) {
  auto* client = static_cast<TcpClient*>(arg);
  DnsService& self = *client->service;
  const uint64_t id = client->id;
  evbuffer* input = bufferevent_get_input(bev);
  if (client->awaitingProxyHeader && !self.takeBalancerHeader(*client, input)) return;
  // RFC 1035 section 4.2.2 / RFC 7766 section 8: two-byte length prefix,
  // several messages per connection, possibly pipelined.
  while (true) {
    const size_t available = evbuffer_get_length(input);
    if (available < 2) return;
    uint8_t prefix[2];
    if (evbuffer_copyout(input, prefix, 2) != 2) return;
    const size_t length = readU16(prefix);
    if (length == 0) {
      inc(self.counters_.malformed);
      self.closeTcpClient(id);
      return;
    }
    if (available < 2 + length) return;  // wait for the rest (the read timeout bounds it)
    evbuffer_drain(input, 2);
    if (evbuffer_remove(input, self.rx_.data(), length) != static_cast<int>(length)) {
      self.closeTcpClient(id);
      return;
    }
    const ClientRef ref = client->ref;
    self.handleQuery(std::span<const uint8_t>(self.rx_.data(), length), ref);
    // The handler may have closed this connection (output overflow).
    if (self.tcp_.find(id) == self.tcp_.end()) return;
  }
}

void DnsService::onTcpEvent(bufferevent*, short what, void* arg) {
  auto* client = static_cast<TcpClient*>(arg);
  DnsService& self = *client->service;
  if ((what & (BEV_EVENT_EOF | BEV_EVENT_READING)) == (BEV_EVENT_EOF | BEV_EVENT_READING) &&
      (what & BEV_EVENT_ERROR) == 0) {
    // The client shut down its write side (RFC 7766 section 6.2.3 lets it
    // half-close once it has sent its queries): every complete query was
    // handled in onTcpRead; the answers still owed go out before we close.
    // libevent has stopped reading; the write timeout bounds a client that
    // does not read them, the upstream timeouts bound the pending ones.
    client->readClosed = true;
    inc(self.counters_.tcpHalfClosed);
    self.closeTcpIfDone(*client);
    return;
  }
  if ((what & BEV_EVENT_TIMEOUT) != 0) inc(self.counters_.tcpTimeouts);
  self.closeTcpClient(client->id);
}

void DnsService::onTcpWrite(bufferevent*, void* arg) {
  // Called when the output buffer has drained.
  auto* client = static_cast<TcpClient*>(arg);
  client->service->closeTcpIfDone(*client);
}

void DnsService::closeTcpIfDone(TcpClient& client) {
  if (client.readClosed && client.pending == 0 &&
      evbuffer_get_length(bufferevent_get_output(client.bev.get())) == 0) {
    closeTcpClient(client.id);
  }
}

void DnsService::closeTcpClient(uint64_t id) {
  tcp_.erase(id);
}

void DnsService::sendToClient(const ClientRef& client, std::span<const uint8_t> wire, const Query* query) {
  if (wire.empty()) return;
  if (client.tcp) {
    const auto found = tcp_.find(client.tcpId);
    if (found == tcp_.end()) return;  // the client went away meanwhile
    bufferevent* bev = found->second->bev.get();
    uint8_t prefix[2];
    writeU16(prefix, static_cast<uint16_t>(wire.size()));
    bufferevent_write(bev, prefix, 2);
    bufferevent_write(bev, wire.data(), wire.size());
    if (evbuffer_get_length(bufferevent_get_output(bev)) > kMaxTcpOutput) closeTcpClient(client.tcpId);
    return;
  }
  if (query != nullptr && wire.size() > query->maxUdpResponse()) {
    // RFC 6891 section 7 / RFC 1035 section 4.2.1: too big for the client's
    // UDP buffer; an empty answer with TC makes it retry over TCP. `wire`
    // may live in scratch_, so build into tx_ only when it is not tx_.
    std::span<uint8_t> out =
        wire.data() == tx_.data() ? std::span<uint8_t>(scratch_) : std::span<uint8_t>(tx_);
    const size_t length = buildTruncatedResponse(wire, *query, readU16(wire.data() + 2), out);
    inc(counters_.truncatedToClient);
    if (length != 0) sendUdp(client, std::span<const uint8_t>(out.data(), length));
    return;
  }
  sendUdp(client, wire);
}

__attribute__((noinline)) void DnsService::sendEvent(const ClientRef& client, const Query* query,
                                                     std::span<const uint8_t> wire, DnsOutcome outcome,
                                                     DenyReason reason, uint16_t rcode, uint16_t answers,
                                                     bool upstreamTcp, bool echStripped, bool audit,
                                                     std::span<const CachedBinding> addresses) {
  DnsEvent event;
  event.time = std::chrono::system_clock::now();
  if (auto address = client.who()) event.client = *address;
  event.tcp = client.tcp;
  if (query != nullptr) {
    event.qname = wire.empty() ? query->qname.view() : askedName(wire, *query, askedName_);
    event.qtype = query->qtype;
  }
  event.outcome = outcome;
  event.reason = reason;
  event.audit = audit;
  event.rcode = rcode;
  event.answers = answers;
  event.addresses = addresses;
  event.upstreamTcp = upstreamTcp;
  event.echStripped = echStripped;
  // The address that received it: for TCP the connection's own (taken at
  // accept); for UDP the receiving listener's bound address (listeners_ and
  // bound_ are parallel: a compare per listener, no syscall).
  if (client.tcp) {
    if (const auto found = tcp_.find(client.tcpId); found != tcp_.end()) event.server = found->second->local;
  } else {
    for (size_t i = 0; i < listeners_.size() && i < bound_.size(); ++i) {
      if (listeners_[i]->udpFd == client.udpFd) {
        event.server = bound_[i];
        if (client.hasLocal) event.server.ip = client.local;  // a wildcard listener: where it was sent
        break;
      }
    }
  }
  event.policy = policy_.shared().get();  // the snapshot this call decided with
  sink_->onDnsEvent(event);
}

void DnsService::reportHits(std::string_view name, uint64_t hits) {
  // The cache's entries all belong to epochPolicy_'s rules: cacheEpoch()
  // reports them before it moves to other rules.
  if (sink_ != nullptr && epochPolicy_) sink_->onDnsCacheHits(name, *epochPolicy_, hits);
}

void DnsService::reportCacheHits() {
  cache_.takeHits([this](std::string_view name, uint64_t hits) { reportHits(name, hits); });
}

namespace {

// Same allow decisions: the same rule sets with the same targets, in the
// same order (a reordering counts as a change; it is rare and only costs
// the cache).
bool sameRules(const policy::Policy& a, const policy::Policy& b) {
  const auto& left = a.sourceRuleSets();
  const auto& right = b.sourceRuleSets();
  if (left.size() != right.size()) return false;
  for (size_t i = 0; i < left.size(); ++i) {
    if (left[i].ns != right[i].ns || left[i].name != right[i].name || left[i].system != right[i].system ||
        left[i].targetTexts != right[i].targetTexts) {
      return false;
    }
  }
  return true;
}

}  // namespace

uint64_t DnsService::nextCacheEpoch(const std::shared_ptr<const policy::Policy>& policy) {
  // Tagging entries with the epoch of the very policy that decided them
  // (not a generation read before or after) leaves no window where an
  // entry looks newer than its rules.
  if (!epochPolicy_ || !sameRules(*epochPolicy_, *policy)) {
    // The hits counted so far were allowed by the rules going out.
    reportCacheHits();
    ++epoch_;
  }
  epochPolicy_ = policy;
  return epoch_;
}

void DnsService::handleQuery(std::span<const uint8_t> wire, const ClientRef& client) {
  inc(counters_.queries);
  Query& query = query_;
  const QueryStatus status = parseQuery(wire, query);
  const std::shared_ptr<const policy::Policy>& policyPointer = policy_.shared();
  const policy::Policy& policy = *policyPointer;
  const uint64_t generation = cacheEpoch(policyPointer);
  const DnsOptions& options = *options_;
  Classification decision = classifyQuery(status, query, policy, options);
  if (decision.audit) inc(counters_.wouldDeny[static_cast<size_t>(decision.reason)]);
  const std::span<uint8_t> out(tx_.data(), kMaxMessageSize);
  switch (decision.action) {
    case QueryAction::Drop:
      inc(counters_.malformed);
      return;
    case QueryAction::FormErr: {
      inc(counters_.malformed);
      sendToClient(client,
                   std::span<const uint8_t>(tx_.data(), buildHeaderOnlyResponse(wire, rcode::FormErr, out)),
                   nullptr);
      emit(client, status == QueryStatus::Ok ? &query : nullptr,
           status == QueryStatus::Ok ? wire : wire.first(0), DnsOutcome::Malformed, DenyReason::None,
           rcode::FormErr, 0);
      return;
    }
    case QueryAction::Refuse: {
      inc(counters_.refused);
      const size_t length = buildResponse(wire, query, decision.rcode, nullptr, out);
      sendToClient(client, std::span<const uint8_t>(tx_.data(), length), &query);
      emit(client, &query, wire, DnsOutcome::Refused, DenyReason::None, decision.rcode, 0);
      return;
    }
    case QueryAction::Deny:
      deny(wire, query, client, decision);
      return;
    case QueryAction::Cluster:
      forward(wire, query, client, true);
      return;
    case QueryAction::Forward: {
      const TimePoint current = now();
      // A hit nobody wants as an event (no log line at this level, no
      // watcher) is only counted, on its cache entry, for the per-rule-set
      // counts of /metrics (reportCacheHits()); an audit hit is always an
      // event (its would-deny is counted from it).
      const bool hitEvent =
          sink_ != nullptr && sink_->wantsDnsEvent(DnsOutcome::CacheHit, decision.reason, decision.audit);
      const AnswerCache::Hit hit = cache_.lookup(query, wire, generation, current, out,
                                                 sink_ != nullptr && !hitEvent && !decision.audit);
      if (hit.length != 0) {
        inc(counters_.cacheHit);
        // Keep the bindings alive as long as the cache hands the answer out:
        // the table may have evicted them meanwhile. Expiry cannot have
        // removed them (TTL + grace outlives the cache entry), so when the
        // table has not evicted anything since they were last recorded
        // they are all still there, and the write lock is saved.
        const uint64_t evictions = bindings_.stats().evictions;
        if (!hit.bindings.empty() && *hit.bindingsStamp != evictions) {
          *hit.bindingsStamp = evictions;
          for (const CachedBinding& binding : hit.bindings)
            bindings_.record(query.qname.view(), binding.ip, binding.expiry);
        }
        sendToClient(client, std::span<const uint8_t>(tx_.data(), hit.length), &query);
        if (hitEvent || decision.audit) {  // an audit hit's verdict is counted in emit()
          emit(client, &query, wire, DnsOutcome::CacheHit, decision.reason, hit.answerFlags & 0xf,
               hit.answerCount, false, false, decision.audit, hit.bindings);
        }
        return;
      }
      // The tunnel guard charges only what leaves: a cache hit reaches no
      // authoritative server, so it can carry nothing out (and costs the
      // guard nothing on the busiest path).
      if (decision.worldOnly && options.tunnelGuardNames != 0 &&
          !chargeTunnelGuard(query, client, options, current)) {
        decision = denial(DenyReason::TunnelBudget, options);
        if (decision.action == QueryAction::Deny) {
          deny(wire, query, client, decision);
          return;
        }
        inc(counters_.wouldDeny[static_cast<size_t>(decision.reason)]);
      }
      forward(wire, query, client, false, decision.audit ? decision.reason : DenyReason::None,
              decision.audit ? nullptr : &policyPointer);
      return;
    }
  }
}

// ---- upstream side --------------------------------------------------------

bool DnsService::chargeTunnelGuard(const Query& query, const ClientRef& client, const DnsOptions& options,
                                   TimePoint current) {
  // The client's address bytes straight from the sockaddr (this runs for
  // every world-only query; the SocketAddress is built only to log).
  std::span<const uint8_t> address;
  if (client.proxied) {
    address = std::span<const uint8_t>(client.origin.ip.bytes.data(), client.origin.ip.byteLength());
  } else if (client.addr.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(client.addr);
    address = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&v4.sin_addr), 4);
  } else if (client.addr.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(client.addr);
    address = std::span<const uint8_t>(v6.sin6_addr.s6_addr, 16);
  } else {
    return true;
  }
  const TunnelGuard::Result charge = tunnelGuard_.check(address, query.qname.view(), current,
                                                        options.tunnelGuardNames, options.tunnelGuardWindow);
  counters_.tunnelGuardEvictions.store(tunnelGuard_.stats().evictions, std::memory_order_relaxed);
  if (charge.admitted) return true;
  if (charge.tripped) {
    inc(counters_.tunnelGuardTrips);
    const auto peer = client.who();
    // Once per (client, domain) and window; every refused query is an
    // event (reason dns_tunnel_budget) and counted.
    common::LogLine(common::LogLevel::Warn, "dns.tunnel_guard")
        .field("client", peer ? peer->ip.toString() : std::string("?"))
        .field("domain", charge.domain)
        .field("names", static_cast<uint64_t>(charge.distinct))
        .field("window_s",
               static_cast<uint64_t>(
                   std::chrono::duration_cast<std::chrono::seconds>(options.tunnelGuardWindow).count()))
        .field("action", options.audit ? "would deny (audit)" : "deny")
        .field("fix",
               "allow the domain with an exact or wildcard target if these names are legitimate, or "
               "raise dns.tunnel_guard_names");
  }
  return false;
}

void DnsService::deny(std::span<const uint8_t> wire, const Query& query, const ClientRef& client,
                      const Classification& decision) {
  inc(counters_.denied);
  inc(counters_.denials[static_cast<size_t>(decision.reason)]);
  // The EDE travels in the OPT record, so only to clients that sent EDNS
  // (buildResponse() leaves it out otherwise).
  const ExtendedError ede{kEdeBlocked, query.hasEdns ? denyReasonText(decision.reason) : std::string_view()};
  const std::span<uint8_t> out = answerBuffer(client);
  const size_t length = buildResponse(wire, query, decision.rcode, &ede, out);
  if (!client.tcp && length != 0 && length <= query.maxUdpResponse()) {
    sendUdp(client, out.first(length));  // what sendToClient() would do, without its other cases
  } else {
    sendToClient(client, out.first(length), &query);
  }
  emit(client, &query, wire, DnsOutcome::Denied, decision.reason, decision.rcode, 0);
}

void DnsService::forward(std::span<const uint8_t> wire, const Query& query, const ClientRef& client,
                         bool cluster, DenyReason wouldDeny,
                         const std::shared_ptr<const policy::Policy>* allowedBy) {
  const auto& upstreams = cluster ? options_->clusterUpstreams : options_->upstreams;
  if (upstreams.empty() || pendingInUse_ >= options_->maxPendingQueries) {
    if (!upstreams.empty()) inc(counters_.pendingOverflow);
    inc(counters_.upstreamError);
    const size_t length = buildResponse(wire, query, rcode::ServFail, nullptr, tx_);
    sendToClient(client, std::span<const uint8_t>(tx_.data(), length), &query);
    emit(client, &query, wire, DnsOutcome::UpstreamError, wouldDeny, rcode::ServFail, 0, false, false,
         wouldDeny != DenyReason::None);
    return;
  }
  Pending* pending = nullptr;
  if (!freePending_.empty()) {
    pending = freePending_.back();
    freePending_.pop_back();
  } else {
    pendingPool_.push_back(std::make_unique<Pending>());
    pending = pendingPool_.back().get();
    pending->service = this;
  }
  ++pendingInUse_;
  if (client.tcp) {
    const auto found = tcp_.find(client.tcpId);
    if (found != tcp_.end()) ++found->second->pending;
  }
  pending->client = client;
  pending->query = query;
  pending->wire.assign(wire.begin(), wire.end());
  pending->clientId = query.header.id;
  pending->cluster = cluster;
  pending->options = options_;
  if (allowedBy != nullptr) pending->allowedBy = *allowedBy;
  pending->upstream = 0;
  pending->overTcp = false;
  pending->audit = wouldDeny != DenyReason::None;
  pending->auditReason = wouldDeny;
  pending->timedOut = false;
  sendUdpAttempt(*pending);
}

void DnsService::sendUdpAttempt(Pending& pending) {
  pending.closeTransport();
  pending.overTcp = false;
  pending.timedOut = false;  // until this attempt times out: a network error
  const common::SocketAddress& upstream = pending.upstreams()[pending.upstream];
  sockaddr_storage storage{};
  const socklen_t length = upstream.toSockaddr(storage);
  // A fresh socket per query: the kernel picks a random source port
  // (RFC 5452 section 9.2), and connect() makes it accept datagrams from
  // the upstream's address and port only.
  pending.udpFd = ::socket(storage.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  pending.upstreamId = randomId();
  writeU16(pending.wire.data(), pending.upstreamId);
  if (pending.udpFd < 0 || ::connect(pending.udpFd, reinterpret_cast<sockaddr*>(&storage), length) != 0 ||
      ::send(pending.udpFd, pending.wire.data(), pending.wire.size(), MSG_DONTWAIT) < 0) {
    nextUpstream(pending);
    return;
  }
  pending.sentAt = Clock::now();
  event_assign(&pending.udpEvent, base_, pending.udpFd, EV_READ | EV_PERSIST, &DnsService::onUpstreamUdp,
               &pending);
  const timeval timeout = toTimeval(pending.options->upstreamTimeout);
  event_add(&pending.udpEvent, &timeout);
  pending.udpEventAdded = true;
}

void DnsService::onUpstreamUdp(int fd, short what, void* arg) {
  auto* pending = static_cast<Pending*>(arg);
  DnsService& self = *pending->service;
  if ((what & EV_TIMEOUT) != 0) {
    inc(self.counters_.upstreamTimeouts);
    self.logUpstreamTimeout(*pending);
    pending->timedOut = true;
    self.nextUpstream(*pending);
    return;
  }
  for (int i = 0; i < 8; ++i) {
    const ssize_t n = ::recv(fd, self.upstreamRx_.data(), self.upstreamRx_.size(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      self.nextUpstream(*pending);  // ECONNREFUSED (ICMP port unreachable) and friends
      return;
    }
    const std::span<uint8_t> answer(self.upstreamRx_.data(), static_cast<size_t>(n));
    AnswerInfo info;
    const AnswerStatus status = analyzeAnswer(answer, pending->query, pending->upstreamId, info);
    if (status == AnswerStatus::IdMismatch || status == AnswerStatus::QuestionMismatch ||
        status == AnswerStatus::NotAResponse) {
      inc(self.counters_.upstreamMismatched);  // not ours: keep waiting
      continue;
    }
    if (status == AnswerStatus::Malformed) {
      self.nextUpstream(*pending);
      return;
    }
    self.counters_.upstreamLatency.record(Clock::now() - pending->sentAt);
    if (info.truncated) {
      // RFC 7766 section 5: retry the same upstream over TCP.
      inc(self.counters_.upstreamTcpRetries);
      self.startTcpAttempt(*pending);
      return;
    }
    self.handleUpstreamAnswer(*pending, answer, false);
    return;
  }
}

void DnsService::startTcpAttempt(Pending& pending) {
  pending.closeTransport();
  pending.overTcp = true;
  pending.timedOut = false;
  const common::SocketAddress& upstream = pending.upstreams()[pending.upstream];
  sockaddr_storage storage{};
  const socklen_t length = upstream.toSockaddr(storage);
  pending.tcp.reset(bufferevent_socket_new(base_, -1, BEV_OPT_CLOSE_ON_FREE));
  if (!pending.tcp) {
    nextUpstream(pending);
    return;
  }
  bufferevent_setcb(pending.tcp.get(), &DnsService::onUpstreamTcpRead, nullptr,
                    &DnsService::onUpstreamTcpEvent, &pending);
  const timeval timeout = toTimeval(pending.options->upstreamTimeout);
  bufferevent_set_timeouts(pending.tcp.get(), &timeout, &timeout);
  pending.upstreamId = randomId();
  writeU16(pending.wire.data(), pending.upstreamId);
  uint8_t prefix[2];
  writeU16(prefix, static_cast<uint16_t>(pending.wire.size()));
  bufferevent_write(pending.tcp.get(), prefix, 2);
  bufferevent_write(pending.tcp.get(), pending.wire.data(), pending.wire.size());
  bufferevent_enable(pending.tcp.get(), EV_READ | EV_WRITE);
  pending.sentAt = Clock::now();  // connect + send: what a TCP exchange costs
  if (bufferevent_socket_connect(pending.tcp.get(), reinterpret_cast<sockaddr*>(&storage),
                                 static_cast<int>(length)) != 0) {
    nextUpstream(pending);
  }
}

void DnsService::onUpstreamTcpRead(bufferevent* bev, void* arg) {
  auto* pending = static_cast<Pending*>(arg);
  DnsService& self = *pending->service;
  evbuffer* input = bufferevent_get_input(bev);
  const size_t available = evbuffer_get_length(input);
  if (available < 2) return;
  uint8_t prefix[2];
  evbuffer_copyout(input, prefix, 2);
  const size_t length = readU16(prefix);
  if (available < 2 + length) return;
  evbuffer_drain(input, 2);
  evbuffer_remove(input, self.upstreamRx_.data(), length);
  const std::span<uint8_t> answer(self.upstreamRx_.data(), length);
  AnswerInfo info;
  const AnswerStatus status = analyzeAnswer(answer, pending->query, pending->upstreamId, info);
  if (status != AnswerStatus::Ok) {
    if (status != AnswerStatus::Malformed) inc(self.counters_.upstreamMismatched);
    self.nextUpstream(*pending);
    return;
  }
  self.counters_.upstreamLatency.record(Clock::now() - pending->sentAt);
  self.handleUpstreamAnswer(*pending, answer, true);
}

void DnsService::onUpstreamTcpEvent(bufferevent*, short what, void* arg) {
  auto* pending = static_cast<Pending*>(arg);
  if ((what & BEV_EVENT_CONNECTED) != 0) return;
  pending->timedOut = (what & BEV_EVENT_TIMEOUT) != 0;
  if (pending->timedOut) {
    inc(pending->service->counters_.upstreamTimeouts);
    pending->service->logUpstreamTimeout(*pending);
  }
  pending->service->nextUpstream(*pending);
}

void DnsService::nextUpstream(Pending& pending) {
  pending.closeTransport();
  ++pending.upstream;
  if (pending.upstream >= pending.upstreams().size()) {
    failAll(pending);
    return;
  }
  sendUdpAttempt(pending);
}

void DnsService::failAll(Pending& pending) {
  inc(counters_.upstreamError);
  inc(counters_.upstreamUnreachable);
  writeU16(pending.wire.data(), pending.clientId);
  // RFC 8914: the client (and its operator) learns why there is no answer.
  // What the last upstream did decides: all of them timing out is "no
  // reachable authority", a refused or broken exchange a network error.
  const ExtendedError ede =
      pending.timedOut
          ? ExtendedError{kEdeNoReachableAuthority, "egressd: no upstream resolver answered in time"}
          : ExtendedError{kEdeNetworkError, "egressd: upstream resolver unreachable"};
  const size_t length = buildResponse(pending.wire, pending.query, rcode::ServFail, &ede, tx_);
  sendToClient(pending.client, std::span<const uint8_t>(tx_.data(), length), &pending.query);
  logUpstreamFailure(pending, pending.timedOut);
  emit(pending.client, &pending.query, pending.wire, DnsOutcome::UpstreamError, pending.auditReason,
       rcode::ServFail, 0, false, false, pending.audit);
  release(pending);
}

void DnsService::logUpstreamFailure(const Pending& pending, bool timedOut) {
  const Clock::time_point current = Clock::now();
  if (lastFailureLog_ != Clock::time_point{} && current - lastFailureLog_ < kUpstreamFailureLogInterval) {
    ++failuresNotLogged_;
    return;
  }
  std::string upstreams;
  for (const common::SocketAddress& upstream : pending.upstreams()) {
    if (!upstreams.empty()) upstreams += ',';
    upstreams += upstream.toString();
  }
  common::LogLine(common::LogLevel::Warn, "dns.upstream_failed")
      .field("upstreams", upstreams)
      .field("cause", timedOut ? "timeout" : "network_error")
      .field("name", pending.query.qname.view())
      .field("answer", timedOut ? "SERVFAIL EDE 22" : "SERVFAIL EDE 23")
      .field("not_logged", failuresNotLogged_)
      .field("fix", pending.cluster ? "check dns.cluster_upstreams and the route to them"
                                    : "check dns.upstreams and the route to them");
  lastFailureLog_ = current;
  failuresNotLogged_ = 0;
}

void DnsService::handleUpstreamAnswer(Pending& pending, std::span<uint8_t> answer, bool overTcp) {
  const uint8_t answerRcode = static_cast<uint8_t>(readU16(answer.data() + 2) & 0xf);
  const bool serverFailure =
      answerRcode == rcode::ServFail || answerRcode == rcode::Refused || answerRcode == rcode::NotImp;
  if (serverFailure && pending.upstream + 1 < pending.upstreams().size()) {
    nextUpstream(pending);  // another upstream may do better
    return;
  }
  writeU16(answer.data(), pending.clientId);
  const uint16_t answers = readU16(answer.data() + 6);

  if (pending.cluster) {
    inc(counters_.cluster);
    sendToClient(pending.client, answer, &pending.query);
    emit(pending.client, &pending.query, pending.wire, DnsOutcome::Cluster, DenyReason::None, answerRcode,
         answers, overTcp);
    release(pending);
    return;
  }

  const std::shared_ptr<const policy::Policy>& policyPointer = policy_.shared();
  const policy::Policy& policy = *policyPointer;
  const uint64_t generation = cacheEpoch(policyPointer);
  const DnsOptions& options = *pending.options;
  const Query& query = pending.query;
  // The policy (or the mode) may have changed while the upstream answered:
  // judge the name again. The tunnel budget was charged when the query
  // came and is not charged twice.
  const NameVerdict verdict = pending.allowedBy == policyPointer
                                  ? NameVerdict{}  // allowed by this very snapshot when asked
                                  : judgeName(policy, query.qname.view(), query.qtype);
  DenyReason reason = verdict.reason;
  bool audit = false;
  if (reason == DenyReason::None && pending.auditReason == DenyReason::TunnelBudget) {
    reason = DenyReason::TunnelBudget;
    audit = true;  // let through in audit mode when it came
  } else if (reason != DenyReason::None && options_->audit) {
    audit = true;
    if (!pending.audit) inc(counters_.wouldDeny[static_cast<size_t>(reason)]);
  }
  AnswerInfo info;
  analyzeAnswer(answer, query, pending.clientId, info);
  DenyReason denied = audit ? DenyReason::None : reason;
  // Rebinding is refused in audit mode too: it protects the pod.
  if (denied == DenyReason::None && findRebinding(info, policy) != nullptr) {
    denied = DenyReason::Rebinding;
    audit = false;
    inc(counters_.rebindingBlocked);
  }
  if (denied != DenyReason::None) {
    inc(counters_.denied);
    inc(counters_.denials[static_cast<size_t>(denied)]);
    const ExtendedError ede{kEdeBlocked, denyReasonText(denied)};
    const uint8_t code = denyRcodeFor(denied, options_->denyRcode);
    const size_t length = buildResponse(pending.wire, query, code, &ede, tx_);
    writeU16(tx_.data(), pending.clientId);
    sendToClient(pending.client, std::span<const uint8_t>(tx_.data(), length), &query);
    emit(pending.client, &query, pending.wire, DnsOutcome::Denied, denied, code, 0, overTcp);
    release(pending);
    return;
  }

  // Bindings: every address on the CNAME chain of the asked name. The
  // eviction count is read first: an eviction racing with the records
  // below makes the cache re-record on its next hit, never skip.
  const uint64_t evictionsBefore = bindings_.stats().evictions;
  const TimePoint current = now();
  std::array<CachedBinding, kMaxAnswerAddresses> cached;
  size_t cachedCount = 0;
  for (const AnswerAddress& address : info.addressList()) {
    if (!address.inChain) continue;
    const TimePoint expiry = current + std::chrono::seconds(address.ttl) + options.bindingGrace;
    bindings_.record(query.qname.view(), address.ip, expiry);
    inc(counters_.bindingsRecorded);
    if (common::logLevel() <= common::LogLevel::Debug) {
      // What the verdict will accept for this name; the control socket's
      // binding dump is the other way to see it.
      common::LogLine(common::LogLevel::Debug, "dns.binding")
          .field("name", query.qname.view())
          .field("ip", address.ip.toString())
          .field("ttl", static_cast<uint64_t>(address.ttl))
          .field("expires_in_s",
                 static_cast<int64_t>(
                     std::chrono::duration_cast<std::chrono::seconds>(expiry - current).count()));
    }
    cached[cachedCount++] = CachedBinding{address.ip, expiry};
  }

  std::span<const uint8_t> relay = answer;
  bool stripped = false;
  if (options.stripEch && info.hasEch) {
    const size_t length = stripEch(answer, scratch_);
    if (length != 0) {
      relay = std::span<const uint8_t>(scratch_.data(), length);
      stripped = true;
      inc(counters_.echStripped);
    }
  }
  cache_.insert(query, relay, info.cacheTtl, generation, current,
                std::span<const CachedBinding>(cached.data(), cachedCount), evictionsBefore);
  inc(counters_.allowed);
  sendToClient(pending.client, relay, &query);
  emit(pending.client, &query, pending.wire, DnsOutcome::Allowed, audit ? reason : DenyReason::None,
       answerRcode, answers, overTcp, stripped, audit,
       std::span<const CachedBinding>(cached.data(), cachedCount));
  release(pending);
}

void DnsService::release(Pending& pending) {
  pending.closeTransport();
  pending.options.reset();
  pending.allowedBy.reset();
  --pendingInUse_;
  freePending_.push_back(&pending);
  if (pending.client.tcp) {
    const auto found = tcp_.find(pending.client.tcpId);
    if (found != tcp_.end()) {
      --found->second->pending;
      closeTcpIfDone(*found->second);
    }
  }
}

void DnsService::logUpstreamTimeout(const Pending& pending) {
  if (common::logLevel() > common::LogLevel::Debug) return;
  common::LogLine(common::LogLevel::Debug, "dns.upstream_timeout")
      .field("upstream", pending.upstreams()[pending.upstream].toString())
      .field("transport", pending.overTcp ? "tcp" : "udp")
      .field("name", pending.query.qname.view());
}

}  // namespace dns

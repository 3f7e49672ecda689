// DnsService behind a DNS load balancer (dns.proxy_protocol_from): dnsdist
// with useProxyProtocol=true puts a PROXY protocol v2 header before every
// UDP query and at the start of every TCP connection. Real sockets on
// loopback: the "balancer" sends from 127.0.0.2 (listed), a pod from
// 127.0.0.3 (not listed); the header names 10.244.1.7, the pod behind the
// balancer. The far end is the judge: what the service answered, to which
// socket, and whom its events name.
#include <event2/event.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/c_handle.h"
#include "common/unique_fd.h"
#include "dns/service.h"
#include "dns_test_util.h"

using namespace std::chrono_literals;

namespace {

using Bytes = std::vector<uint8_t>;

const common::IpAddress kBalancer = *common::parseIpAddress("127.0.0.2");
const common::IpAddress kPodOnLoopback = *common::parseIpAddress("127.0.0.3");

// A v2 header (spec 2.2): signature, version/command, family/transport,
// length, then `block`.
Bytes proxyV2(uint8_t versionCommand, uint8_t familyTransport, const Bytes& block) {
  Bytes out = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
  out.push_back(versionCommand);
  out.push_back(familyTransport);
  out.push_back(static_cast<uint8_t>(block.size() >> 8));
  out.push_back(static_cast<uint8_t>(block.size()));
  out.insert(out.end(), block.begin(), block.end());
  return out;
}

// 10.244.1.7:40412 -> 10.96.0.10:53, what dnsdist writes for a pod's query.
const Bytes kPodBlock = {10, 244, 1, 7, 10, 96, 0, 10, 0x9D, 0xDC, 0x00, 0x35};
Bytes podHeader(uint8_t podLastByte = 7) {
  Bytes block = kPodBlock;
  block[3] = podLastByte;
  return proxyV2(0x21, 0x12, block);  // PROXY, INET + DGRAM
}

Bytes text(std::string_view characters) {
  return Bytes(characters.begin(), characters.end());
}

Bytes concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Bytes query(std::string_view name, uint16_t id, uint16_t qtype = 1) {
  return dnstest::query(name, qtype, true, id).bytes;
}

uint16_t idOf(const Bytes& m) {
  return dns::readU16(m.data());
}
uint8_t rcodeOf(const Bytes& m) {
  return static_cast<uint8_t>(dns::readU16(m.data() + 2) & 0xf);
}

// A UDP upstream on 127.0.0.1 answering every query with NXDOMAIN (the
// names forwarded here need no address).
class NxUpstream {
 public:
  explicit NxUpstream(event_base* base) : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    socklen_t length = sizeof address;
    ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    event_.reset(event_new(base, fd_.get(), EV_READ | EV_PERSIST, &NxUpstream::onRead, this));
    event_add(event_.get(), nullptr);
  }
  common::SocketAddress address() const { return {common::IpAddress::v4(0x7f000001), port_}; }
  int queries = 0;

 private:
  static void onRead(int fd, short, void* arg) {
    auto* self = static_cast<NxUpstream*>(arg);
    Bytes buffer(4096);
    sockaddr_storage from{};
    socklen_t length = sizeof from;
    const ssize_t n =
        ::recvfrom(fd, buffer.data(), buffer.size(), 0, reinterpret_cast<sockaddr*>(&from), &length);
    if (n < 12) return;
    buffer.resize(static_cast<size_t>(n));
    ++self->queries;
    dns::writeU16(buffer.data() + 2, dns::flag::QR | dns::flag::RD | dns::flag::RA | dns::rcode::NxDomain);
    ::sendto(fd, buffer.data(), buffer.size(), 0, reinterpret_cast<sockaddr*>(&from), length);
  }

  common::UniqueFd fd_;
  uint16_t port_ = 0;
  common::CHandle<event, event_free> event_;
};

struct Harness {
  common::CHandle<event_base, event_base_free> base{event_base_new()};
  common::SnapshotHolder<policy::Policy> holder{dnstest::makePolicy({"api.example.com:443"})};
  dns::BindingTable bindings{1000};
  std::optional<dns::DnsService> service;
  struct Seen {
    std::string client;
    std::string qname;
    bool tcp = false;
    dns::DenyReason reason = dns::DenyReason::None;
  };
  std::vector<Seen> events;

  struct Sink : dns::DnsEventSink {
    Harness* harness = nullptr;
    void onDnsEvent(const dns::DnsEvent& event) override {
      harness->events.push_back({event.client.toString(), std::string(event.qname), event.tcp, event.reason});
    }
  } sink;

  void start(common::IpAddress listen, const std::vector<std::string>& balancers,
             std::vector<common::SocketAddress> upstreams = {},
             const std::function<void(dns::DnsOptions&)>& tweak = {}) {
    dns::DnsOptions options;
    options.listen = {{listen, 0}};
    options.upstreams = std::move(upstreams);
    options.upstreamTimeout = 500ms;
    for (const std::string& network : balancers) {
      options.proxyProtocolFrom.push_back(*common::parseIpNetwork(network).network);
    }
    if (tweak) tweak(options);
    sink.harness = this;
    service.emplace(base.get(), options, holder, bindings, &sink);
    std::string error;
    REQUIRE(service->start(error));
  }

  const dns::DnsCounters& counters() const { return service->counters(); }

  // A UDP socket bound to `from` (port 0) that sends each of `datagrams` to
  // the service and collects the answers until the last datagram's ID is
  // answered (or 2 s): the service handles a socket's datagrams in order,
  // so a refused datagram followed by a probe shows as the probe's answer
  // alone.
  std::vector<Bytes> exchange(const common::IpAddress& from, const std::vector<Bytes>& datagrams,
                              uint16_t lastId) {
    const common::SocketAddress target = service->boundAddresses().front();
    const int family = target.ip.family == common::IpFamily::V4 ? AF_INET : AF_INET6;
    common::UniqueFd fd(::socket(family, SOCK_DGRAM | SOCK_NONBLOCK, 0));
    sockaddr_storage local{};
    const socklen_t localLength = common::SocketAddress{from, 0}.toSockaddr(local);
    REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&local), localLength) == 0);
    sockaddr_storage destination{};
    const socklen_t length = target.toSockaddr(destination);
    for (const Bytes& datagram : datagrams) {
      REQUIRE(::sendto(fd.get(), datagram.data(), datagram.size(), 0,
                       reinterpret_cast<sockaddr*>(&destination),
                       length) == static_cast<ssize_t>(datagram.size()));
    }
    struct Wait {
      event_base* base;
      std::vector<Bytes> answers;
      uint16_t lastId;
    } wait{base.get(), {}, lastId};
    common::CHandle<event, event_free> readable(event_new(
        base.get(), fd.get(), EV_READ | EV_PERSIST,
        [](int socket, short what, void* arg) {
          auto* w = static_cast<Wait*>(arg);
          Bytes buffer(65535);
          const ssize_t n = (what & EV_READ) != 0 ? ::recv(socket, buffer.data(), buffer.size(), 0) : -1;
          if (n >= 12) {
            buffer.resize(static_cast<size_t>(n));
            w->answers.push_back(buffer);
            if (idOf(buffer) != w->lastId) return;
          }
          event_base_loopbreak(w->base);
        },
        &wait));
    const timeval timeout{2, 0};
    event_add(readable.get(), &timeout);
    event_base_dispatch(base.get());
    return wait.answers;
  }
};

}  // namespace

TEST_CASE("balancer: a header names the pod, and the answer goes back to the balancer", "[dns][balancer]") {
  Harness h;
  NxUpstream upstream(h.base.get());
  h.start(common::IpAddress::v4(0x7f000001), {"127.0.0.2/32"}, {upstream.address()});
  // Denied here, and forwarded (the upstream's answer relayed later): both
  // reach the balancer's socket, both events name the pod.
  const auto answers = h.exchange(kBalancer,
                                  {concat(podHeader(), query("evil.example.com", 0x1001)),
                                   concat(podHeader(8), query("api.example.com", 0x1002))},
                                  0x1002);
  REQUIRE(answers.size() == 2);
  CHECK(idOf(answers[0]) == 0x1001);
  CHECK(rcodeOf(answers[0]) == dns::rcode::NxDomain);
  CHECK(idOf(answers[1]) == 0x1002);
  CHECK(upstream.queries == 1);
  REQUIRE(h.events.size() == 2);
  CHECK(h.events[0].client == "10.244.1.7:40412");
  CHECK(h.events[0].qname == "evil.example.com");
  CHECK(h.events[0].reason == dns::DenyReason::NotAllowed);
  CHECK(h.events[1].client == "10.244.1.8:40412");
  CHECK(h.events[1].qname == "api.example.com");
  CHECK(h.counters().proxyHeaders.load() == 2);
  CHECK(h.counters().proxyHeadersMissing.load() == 0);
}

TEST_CASE("balancer: without a valid header its datagrams are dropped and counted", "[dns][balancer]") {
  Harness h;
  h.start(common::IpAddress::v4(0x7f000001), {"127.0.0.2/32"});
  const Bytes denied = query("evil.example.com", 0x2001);
  const Bytes header = podHeader();
  Bytes badVersion = header;
  badVersion[12] = 0x31;  // version 3
  Bytes overlong = header;
  overlong[15] = 200;  // length past the datagram's end: cut
  const std::vector<Bytes> refused = {
      denied,                                          // no header at all
      Bytes(header.begin(), header.begin() + 20),      // cut inside the header
      concat(badVersion, denied),                      // not version 2
      concat(overlong, denied),                        // length beyond the datagram
      concat(proxyV2(0x21, 0x11, kPodBlock), denied),  // STREAM: names a TCP connection
      concat(proxyV2(0x22, 0x12, kPodBlock), denied),  // neither LOCAL nor PROXY
      concat(text("PROXY UNKNOWN\r\n"), denied),       // v1: TCP only
  };
  std::vector<Bytes> datagrams = refused;
  datagrams.push_back(concat(header, query("evil.example.com", 0x2002)));  // the probe
  const auto answers = h.exchange(kBalancer, datagrams, 0x2002);
  REQUIRE(answers.size() == 1);  // the probe's answer alone
  CHECK(idOf(answers[0]) == 0x2002);
  CHECK(h.counters().proxyHeadersMissing.load() == 1);
  CHECK(h.counters().proxyHeadersMalformed.load() == refused.size() - 1);
  CHECK(h.counters().queries.load() == 1);
  REQUIRE(h.events.size() == 1);
  CHECK(h.events[0].client == "10.244.1.7:40412");
}

TEST_CASE("balancer: from anyone else a header is never believed", "[dns][balancer]") {
  Harness h;
  h.start(common::IpAddress::v4(0x7f000001), {"127.0.0.2/32"});
  // A pod sending a header naming another pod: its bytes are a DNS query
  // (ID 0x0D0A, opcode 1) and refused as such, in its own name; its plain
  // queries are answered as ever.
  const auto answers = h.exchange(
      kPodOnLoopback,
      {concat(podHeader(), query("evil.example.com", 0x3001)), query("evil.example.com", 0x3002)}, 0x3002);
  REQUIRE(answers.size() == 2);
  CHECK(idOf(answers[0]) == 0x0D0A);
  CHECK(rcodeOf(answers[0]) != dns::rcode::NoError);
  CHECK(idOf(answers[1]) == 0x3002);
  CHECK(rcodeOf(answers[1]) == dns::rcode::NxDomain);
  for (const auto& seen : h.events) CHECK(seen.client.rfind("127.0.0.3:", 0) == 0);
  CHECK(h.counters().proxyHeaders.load() == 0);
  CHECK(h.counters().proxyHeadersMissing.load() == 0);
  CHECK(h.counters().proxyHeadersMalformed.load() == 0);
}

TEST_CASE("balancer: LOCAL (its health check) is the balancer's own query", "[dns][balancer]") {
  Harness h;
  h.start(common::IpAddress::v4(0x7f000001), {"127.0.0.0/30"});
  // dnsdist's health check: v2 LOCAL, UNSPEC, no addresses.
  const auto answers =
      h.exchange(kBalancer, {concat(proxyV2(0x20, 0x00, {}), query("evil.example.com", 0x4001))}, 0x4001);
  REQUIRE(answers.size() == 1);
  CHECK(rcodeOf(answers[0]) == dns::rcode::NxDomain);
  REQUIRE(h.events.size() == 1);
  CHECK(h.events[0].client.rfind("127.0.0.2:", 0) == 0);
  CHECK(h.counters().proxyHeadersLocal.load() == 1);
}

TEST_CASE("balancer: IPv6, a balancer on ::1 naming an IPv6 pod", "[dns][balancer]") {
  Harness h;
  h.start(*common::parseIpAddress("::1"), {"::1/128"});
  // 2001:db8::7:40412 -> fd00::53:53, INET6 + DGRAM.
  Bytes block(36, 0);
  block[0] = 0x20, block[1] = 0x01, block[2] = 0x0D, block[3] = 0xB8, block[15] = 7;
  block[16] = 0xFD, block[31] = 0x53;
  block[32] = 0x9D, block[33] = 0xDC, block[35] = 0x35;
  const auto answers =
      h.exchange(*common::parseIpAddress("::1"),
                 {concat(proxyV2(0x21, 0x22, block), query("evil.example.com", 0x5001))}, 0x5001);
  REQUIRE(answers.size() == 1);
  CHECK(rcodeOf(answers[0]) == dns::rcode::NxDomain);
  REQUIRE(h.events.size() == 1);
  CHECK(h.events[0].client == "[2001:db8::7]:40412");
}

TEST_CASE("balancer: the tunnel guard's budget is each pod's, not the balancer's", "[dns][balancer]") {
  Harness h;
  h.holder.publish(dnstest::makePolicy({"*:80"}));
  NxUpstream upstream(h.base.get());
  h.start(common::IpAddress::v4(0x7f000001), {"127.0.0.2/32"}, {upstream.address()},
          [](dns::DnsOptions& options) { options.tunnelGuardNames = 3; });
  // Pod .7 uses up its budget under one domain; pod .8, behind the same
  // balancer, still has its own.
  std::vector<Bytes> burst;
  for (uint16_t i = 0; i < 4; ++i) {
    burst.push_back(concat(podHeader(7), query("c" + std::to_string(i) + ".t.evil.example", 0x6000 + i)));
  }
  burst.push_back(concat(podHeader(8), query("c9.t.evil.example", 0x6009)));
  const auto answers = h.exchange(kBalancer, burst, 0x6009);
  REQUIRE(answers.size() == 5);
  CHECK(upstream.queries == 4);  // c0..c2 of pod .7, c9 of pod .8
  CHECK(h.counters().tunnelGuardTrips.load() == 1);
  REQUIRE(h.events.size() == 5);
  size_t budgetDenials = 0;
  for (const auto& seen : h.events) {
    if (seen.reason != dns::DenyReason::TunnelBudget) continue;
    ++budgetDenials;
    CHECK(seen.client == "10.244.1.7:40412");
    CHECK(seen.qname == "c3.t.evil.example");
  }
  CHECK(budgetDenials == 1);
}

TEST_CASE("balancer: over TCP the connection starts with the header", "[dns][balancer]") {
  Harness h;
  h.start(common::IpAddress::v4(0x7f000001), {"127.0.0.2/32"});
  const auto converse = [&h](const Bytes& payload) {
    const common::SocketAddress target = h.service->boundAddresses().front();
    common::UniqueFd fd(::socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_storage local{};
    const socklen_t localLength = common::SocketAddress{kBalancer, 0}.toSockaddr(local);
    REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&local), localLength) == 0);
    sockaddr_storage to{};
    const socklen_t length = target.toSockaddr(to);
    REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&to), length) == 0);
    REQUIRE(::send(fd.get(), payload.data(), payload.size(), 0) == static_cast<ssize_t>(payload.size()));
    ::shutdown(fd.get(), SHUT_WR);
    struct Context {
      event_base* base;
      Bytes received;
    } context{h.base.get(), {}};
    common::CHandle<event, event_free> readable(event_new(
        h.base.get(), fd.get(), EV_READ | EV_PERSIST,
        [](int socket, short what, void* arg) {
          auto* c = static_cast<Context*>(arg);
          uint8_t buffer[4096];
          const ssize_t n = (what & EV_READ) != 0 ? ::recv(socket, buffer, sizeof buffer, MSG_DONTWAIT) : 0;
          if (n > 0) {
            c->received.insert(c->received.end(), buffer, buffer + n);
            return;
          }
          event_base_loopbreak(c->base);  // closed (or 2 s)
        },
        &context));
    const timeval timeout{2, 0};
    event_add(readable.get(), &timeout);
    event_base_dispatch(h.base.get());
    return context.received;
  };
  const Bytes message = query("evil.example.com", 0x7001);
  const Bytes framed = concat(Bytes{0, static_cast<uint8_t>(message.size())}, message);
  // dnsdist over TCP: v2 PROXY, INET + STREAM, then the length-prefixed query.
  const Bytes answer = converse(concat(proxyV2(0x21, 0x11, kPodBlock), framed));
  REQUIRE(answer.size() > 4);
  CHECK(dns::readU16(answer.data() + 2) == 0x7001);
  REQUIRE(h.events.size() == 1);
  CHECK(h.events[0].client == "10.244.1.7:40412");
  CHECK(h.events[0].tcp);
  // HAProxy-style v1 works too; a connection without a header is closed
  // unanswered; a DGRAM header describes no TCP connection.
  CHECK_FALSE(converse(concat(text("PROXY TCP4 10.244.1.9 10.96.0.10 5 53\r\n"), framed)).empty());
  CHECK(h.events.back().client == "10.244.1.9:5");
  CHECK(converse(framed).empty());
  CHECK(converse(concat(podHeader(), framed)).empty());
  CHECK(h.counters().proxyHeaders.load() == 2);
  CHECK(h.counters().proxyHeadersMissing.load() == 1);
  CHECK(h.counters().proxyHeadersMalformed.load() == 1);
  CHECK(h.events.size() == 2);
}

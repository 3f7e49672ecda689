// DnsService on a real event loop over loopback, with scripted upstreams
// written in the test (so answers can be spoofed, wrong or failing on
// purpose) and an injected clock for the bindings.
#include <event2/event.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/c_handle.h"
#include "dns/response.h"
#include "dns/service.h"
#include "dns_test_util.h"

using namespace std::chrono_literals;
using dnstest::Msg;

namespace {

using Bytes = std::vector<uint8_t>;
constexpr uint16_t kResponse = dns::flag::QR | dns::flag::RD | dns::flag::RA;

// A UDP "upstream" on 127.0.0.1:0 whose answers the test scripts.
class ScriptedUpstream {
 public:
  using Script = std::function<std::vector<Bytes>(const Bytes& query)>;

  ScriptedUpstream(event_base* base, Script script) : script_(std::move(script)) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    socklen_t length = sizeof address;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    event_.reset(event_new(base, fd_, EV_READ | EV_PERSIST, &ScriptedUpstream::onRead, this));
    event_add(event_.get(), nullptr);
  }
  ~ScriptedUpstream() {
    event_.reset();
    ::close(fd_);
  }
  common::SocketAddress address() const { return {common::IpAddress::v4(0x7f000001), port_}; }
  int queries = 0;

 private:
  static void onRead(int fd, short, void* arg) {
    auto* self = static_cast<ScriptedUpstream*>(arg);
    Bytes buffer(65535);
    sockaddr_storage from{};
    socklen_t length = sizeof from;
    const ssize_t n =
        ::recvfrom(fd, buffer.data(), buffer.size(), 0, reinterpret_cast<sockaddr*>(&from), &length);
    if (n <= 0) return;
    buffer.resize(static_cast<size_t>(n));
    ++self->queries;
    for (const Bytes& answer : self->script_(buffer)) {
      ::sendto(fd, answer.data(), answer.size(), 0, reinterpret_cast<sockaddr*>(&from), length);
    }
  }

  Script script_;
  int fd_ = -1;
  uint16_t port_ = 0;
  common::CHandle<event, event_free> event_;
};

// The answer to `query` (as received by the upstream): same ID and
// question, plus the records in `records` (already encoded).
Bytes answerTo(const Bytes& query, uint16_t flags, uint16_t ancount, const Bytes& records) {
  dns::Query parsed;
  REQUIRE(dns::parseQuery(query, parsed) == dns::QueryStatus::Ok);
  Bytes answer(query.begin(), query.begin() + static_cast<long>(parsed.questionEnd));
  dns::writeU16(answer.data() + 2, flags);
  dns::writeU16(answer.data() + 6, ancount);
  dns::writeU16(answer.data() + 8, 0);
  dns::writeU16(answer.data() + 10, 0);
  answer.insert(answer.end(), records.begin(), records.end());
  return answer;
}

Bytes aRecord(std::string_view owner, uint32_t ttl, std::initializer_list<uint8_t> ip) {
  Msg m;
  m.a(owner, ttl, ip);
  return m.bytes;
}

struct Harness {
  common::CHandle<event_base, event_base_free> base{event_base_new()};
  common::SnapshotHolder<policy::Policy> holder{
      dnstest::makePolicy({"api.example.com:443", "app.example.com:443"})};
  dns::BindingTable bindings{1000};
  dns::TimePoint now = dns::TimePoint{} + 1000s;
  std::optional<dns::DnsService> service;
  std::vector<dns::DnsOutcome> outcomes;
  // The last event, copied (its views die with onDnsEvent).
  struct Seen {
    std::string qname;
    dns::DenyReason reason = dns::DenyReason::None;
    bool audit = false;
    uint16_t rcode = 0;
  } last;

  // Called after each event is recorded, while the service handles it.
  std::function<void()> afterEvent;

  struct Sink : dns::DnsEventSink {
    Harness* harness = nullptr;
    void onDnsEvent(const dns::DnsEvent& event) override {
      harness->outcomes.push_back(event.outcome);
      harness->last = {std::string(event.qname), event.reason, event.audit, event.rcode};
      if (harness->afterEvent) harness->afterEvent();
    }
  } sink;

  void start(std::vector<common::SocketAddress> upstreams,
             common::SocketAddress listen = {common::IpAddress::v4(0x7f000001), 0},
             const std::function<void(dns::DnsOptions&)>& tweak = {}) {
    dns::DnsOptions options;
    options.listen = {listen};
    options.upstreams = std::move(upstreams);
    options.upstreamTimeout = 300ms;
    options.bindingGrace = 60s;
    if (tweak) tweak(options);
    sink.harness = this;
    service.emplace(base.get(), options, holder, bindings, &sink, [this] { return now; });
    std::string error;
    REQUIRE(service->start(error));
  }

  // Sends `query` over UDP and runs the loop until the answer arrives (or 3
  // s). With `via`: to that address at the service's port, from a connected
  // socket, which takes answers only from that very address.
  std::optional<Bytes> ask(const Bytes& query, std::optional<common::IpAddress> via = std::nullopt) {
    common::SocketAddress target = service->boundAddresses().front();
    if (via) target.ip = *via;
    const int fd = ::socket(target.ip.family == common::IpFamily::V4 ? AF_INET : AF_INET6,
                            SOCK_DGRAM | SOCK_NONBLOCK, 0);
    sockaddr_storage to{};
    const socklen_t length = target.toSockaddr(to);
    if (via) {
      REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&to), length) == 0);
      ::send(fd, query.data(), query.size(), 0);
    } else {
      ::sendto(fd, query.data(), query.size(), 0, reinterpret_cast<sockaddr*>(&to), length);
    }
    struct Wait {
      event_base* base;
      bool done = false;
    } wait{base.get()};
    common::CHandle<event, event_free> readable(event_new(
        base.get(), fd, EV_READ,
        [](int, short, void* arg) {
          auto* w = static_cast<Wait*>(arg);
          w->done = true;
          event_base_loopbreak(w->base);
        },
        &wait));
    const timeval timeout{3, 0};
    event_add(readable.get(), &timeout);
    event_base_dispatch(base.get());
    std::optional<Bytes> answer;
    Bytes buffer(65535);
    const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (n > 0) {
      buffer.resize(static_cast<size_t>(n));
      answer = buffer;
    }
    ::close(fd);
    return answer;
  }
};

uint8_t rcodeOf(const Bytes& m) {
  return static_cast<uint8_t>(dns::readU16(m.data() + 2) & 0xf);
}
uint16_t ancountOf(const Bytes& m) {
  return dns::readU16(m.data() + 6);
}

// The EDE INFO-CODE (RFC 8914) of the answer's OPT record, or -1.
int edeOf(const Bytes& m) {
  // The EDE option is the only one we write: code 15, length, info code.
  for (size_t i = 12; i + 6 <= m.size(); ++i) {
    if (dns::readU16(m.data() + i) == dns::kEdeOptionCode && i + 6 <= m.size()) {
      const size_t length = dns::readU16(m.data() + i + 2);
      if (length >= 2 && i + 4 + length == m.size()) return dns::readU16(m.data() + i + 4);
    }
  }
  return -1;
}

common::SocketAddress closedPort() {
  // Bound, then closed: nothing listens there (ICMP port unreachable).
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return {common::IpAddress::v4(0x7f000001), ntohs(address.sin_port)};
}

}  // namespace

TEST_CASE("service: answers with the wrong ID or question are ignored", "[dns][service]") {
  Harness h;
  ScriptedUpstream upstream(h.base.get(), [](const Bytes& query) {
    Bytes wrongId = answerTo(query, kResponse, 1, aRecord("api.example.com", 60, {203, 0, 113, 66}));
    wrongId[0] ^= 0x55;
    Msg other;
    other.header(dns::readU16(query.data()), kResponse, 1, 1, 0, 0).question("evil.example.com", 1);
    other.a("evil.example.com", 60, {203, 0, 113, 66});
    Bytes right = answerTo(query, kResponse, 1, aRecord("api.example.com", 60, {192, 0, 2, 10}));
    return std::vector<Bytes>{wrongId, other.bytes, right};
  });
  h.start({upstream.address()});
  const auto answer = h.ask(dnstest::query("api.example.com", 1, false, 0x4321).bytes);
  REQUIRE(answer);
  CHECK(dns::readU16(answer->data()) == 0x4321);
  CHECK(rcodeOf(*answer) == dns::rcode::NoError);
  REQUIRE(ancountOf(*answer) == 1);
  CHECK((*answer)[answer->size() - 1] == 10);  // 192.0.2.10, not the spoofed .66
  CHECK(h.service->counters().upstreamMismatched.load() == 2);
  CHECK(h.bindings.isBound("api.example.com", *common::parseIpAddress("192.0.2.10"), h.now));
  CHECK_FALSE(h.bindings.isBound("api.example.com", *common::parseIpAddress("203.0.113.66"), h.now));
}

TEST_CASE("service: bindings expire at TTL + grace by the injected clock", "[dns][service]") {
  Harness h;
  ScriptedUpstream upstream(h.base.get(), [](const Bytes& query) {
    return std::vector<Bytes>{answerTo(query, kResponse, 1, aRecord("api.example.com", 30, {192, 0, 2, 10}))};
  });
  h.start({upstream.address()});
  REQUIRE(h.ask(dnstest::query("api.example.com", 1).bytes));
  const auto ip = *common::parseIpAddress("192.0.2.10");
  CHECK(h.bindings.isBound("api.example.com", ip, h.now + 89s));  // 30 s TTL + 60 s grace
  CHECK_FALSE(h.bindings.isBound("api.example.com", ip, h.now + 90s));
  // A second query is a cache hit: no new upstream query.
  h.now += 10s;
  const auto cached = h.ask(dnstest::query("api.example.com", 1).bytes);
  REQUIRE(cached);
  CHECK(upstream.queries == 1);
  CHECK(h.outcomes.back() == dns::DnsOutcome::CacheHit);
  // TTL decremented by the 10 s spent in the cache.
  CHECK(dns::readU32(cached->data() + cached->size() - 10) == 20);
}

TEST_CASE("service: SERVFAIL from one upstream fails over to the next", "[dns][service]") {
  Harness h;
  ScriptedUpstream failing(h.base.get(), [](const Bytes& query) {
    return std::vector<Bytes>{answerTo(query, kResponse | dns::rcode::ServFail, 0, {})};
  });
  ScriptedUpstream good(h.base.get(), [](const Bytes& query) {
    return std::vector<Bytes>{answerTo(query, kResponse, 1, aRecord("app.example.com", 60, {192, 0, 2, 20}))};
  });
  h.start({failing.address(), good.address()});
  const auto answer = h.ask(dnstest::query("app.example.com", 1).bytes);
  REQUIRE(answer);
  CHECK(rcodeOf(*answer) == dns::rcode::NoError);
  CHECK(failing.queries == 1);
  CHECK(good.queries == 1);
}

TEST_CASE("service: silent upstreams time out into SERVFAIL", "[dns][service]") {
  Harness h;
  ScriptedUpstream silent(h.base.get(), [](const Bytes&) { return std::vector<Bytes>{}; });
  h.start({silent.address(), silent.address()});
  const auto answer = h.ask(dnstest::query("app.example.com", 1).bytes);
  REQUIRE(answer);
  CHECK(rcodeOf(*answer) == dns::rcode::ServFail);
  CHECK(silent.queries == 2);
  CHECK(h.service->counters().upstreamTimeouts.load() == 2);
  CHECK(h.outcomes.back() == dns::DnsOutcome::UpstreamError);
}

TEST_CASE("service: rebinding answers are refused and leave no binding", "[dns][service]") {
  Harness h;
  ScriptedUpstream upstream(h.base.get(), [](const Bytes& query) {
    return std::vector<Bytes>{
        answerTo(query, kResponse, 1, aRecord("app.example.com", 60, {169, 254, 169, 254}))};
  });
  h.start({upstream.address()});
  const auto answer = h.ask(dnstest::query("app.example.com", 1).bytes);
  REQUIRE(answer);
  CHECK(rcodeOf(*answer) == dns::rcode::NxDomain);
  CHECK(ancountOf(*answer) == 0);
  CHECK(h.service->counters().rebindingBlocked.load() == 1);
  CHECK(h.bindings.stats().entries == 0);
}

TEST_CASE("service: a new policy applies to the next query, cache included", "[dns][service]") {
  Harness h;
  ScriptedUpstream upstream(h.base.get(), [](const Bytes& query) {
    return std::vector<Bytes>{
        answerTo(query, kResponse, 1, aRecord("api.example.com", 300, {192, 0, 2, 10}))};
  });
  h.start({upstream.address()});
  REQUIRE(rcodeOf(*h.ask(dnstest::query("api.example.com", 1).bytes)) == dns::rcode::NoError);
  h.holder.publish(dnstest::makePolicy({"app.example.com:443"}));
  const auto denied = h.ask(dnstest::query("api.example.com", 1).bytes);
  REQUIRE(denied);
  CHECK(rcodeOf(*denied) == dns::rcode::NxDomain);
  CHECK(h.outcomes.back() == dns::DnsOutcome::Denied);
  h.holder.publish(dnstest::makePolicy({"api.example.com:443"}));
  REQUIRE(rcodeOf(*h.ask(dnstest::query("api.example.com", 1).bytes)) == dns::rcode::NoError);
  // The old cache entry belonged to the first policy: asked again upstream.
  CHECK(upstream.queries == 2);
}

TEST_CASE("service: start fails cleanly, naming the address, when the port is taken", "[dns][service]") {
  Harness first;
  first.start({});
  const common::SocketAddress taken = first.service->boundAddresses().front();
  Harness second;
  dns::DnsOptions options;
  options.listen = {{common::IpAddress::v4(0x7f000001), 0}, taken};
  second.service.emplace(second.base.get(), options, second.holder, second.bindings, nullptr);
  std::string error;
  CHECK_FALSE(second.service->start(error));
  CHECK(error.find(taken.toString()) != std::string::npos);
  CHECK(second.service->boundAddresses().empty());
  // No upstreams: SERVFAIL at once, for allowed names; denied names still denied.
  const auto answer = first.ask(dnstest::query("api.example.com", 1).bytes);
  REQUIRE(answer);
  CHECK(rcodeOf(*answer) == dns::rcode::ServFail);
  const auto denied = first.ask(dnstest::query("evil.example.com", 1).bytes);
  REQUIRE(denied);
  CHECK(rcodeOf(*denied) == dns::rcode::NxDomain);
}

namespace {

// A TCP client driven by the harness's event loop: sends `payload`, shuts
// down its write side, and reads until the server closes (or 3 s).
struct HalfClosingClient {
  Bytes received;
  bool closedByServer = false;

  void run(Harness& h, const Bytes& payload) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_storage to{};
    const socklen_t length = h.service->boundAddresses().front().toSockaddr(to);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&to), length) == 0);
    REQUIRE(::send(fd, payload.data(), payload.size(), 0) == static_cast<ssize_t>(payload.size()));
    REQUIRE(::shutdown(fd, SHUT_WR) == 0);
    struct Context {
      HalfClosingClient* client;
      event_base* base;
    } context{this, h.base.get()};
    common::CHandle<event, event_free> readable(event_new(
        h.base.get(), fd, EV_READ | EV_PERSIST,
        [](int socket, short what, void* arg) {
          auto* c = static_cast<Context*>(arg);
          if ((what & EV_TIMEOUT) != 0) {
            event_base_loopbreak(c->base);
            return;
          }
          uint8_t buffer[4096];
          const ssize_t n = ::recv(socket, buffer, sizeof buffer, MSG_DONTWAIT);
          if (n > 0) {
            c->client->received.insert(c->client->received.end(), buffer, buffer + n);
            return;
          }
          c->client->closedByServer = true;
          event_base_loopbreak(c->base);
        },
        &context));
    const timeval timeout{3, 0};
    event_add(readable.get(), &timeout);
    event_base_dispatch(h.base.get());
    ::close(fd);
  }

  // The IDs of the length-prefixed messages received, in order.
  std::vector<uint16_t> ids() const {
    std::vector<uint16_t> out;
    size_t at = 0;
    while (at + 2 <= received.size()) {
      const size_t length = dns::readU16(received.data() + at);
      if (at + 2 + length > received.size() || length < 2) break;
      out.push_back(dns::readU16(received.data() + at + 2));
      at += 2 + length;
    }
    return out;
  }
};

Bytes framed(const std::vector<Bytes>& messages) {
  Bytes out;
  for (const Bytes& m : messages) {
    out.push_back(static_cast<uint8_t>(m.size() >> 8));
    out.push_back(static_cast<uint8_t>(m.size()));
    out.insert(out.end(), m.begin(), m.end());
  }
  return out;
}

}  // namespace

TEST_CASE("service: a TCP client that half-closes still gets every pending answer", "[dns][service]") {
  Harness h;
  ScriptedUpstream upstream(h.base.get(), [](const Bytes& query) {
    return std::vector<Bytes>{answerTo(query, kResponse, 1, aRecord("api.example.com", 60, {192, 0, 2, 10}))};
  });
  h.start({upstream.address()});
  // One answered at once (denied), two only after the upstream answered.
  HalfClosingClient client;
  client.run(h, framed({dnstest::query("api.example.com", 1, true, 0x0101).bytes,
                        dnstest::query("evil.example.com", 1, true, 0x0202).bytes,
                        dnstest::query("app.example.com", 1, true, 0x0303).bytes}));
  CHECK(client.closedByServer);
  std::vector<uint16_t> ids = client.ids();
  std::sort(ids.begin(), ids.end());
  CHECK(ids == std::vector<uint16_t>{0x0101, 0x0202, 0x0303});
  CHECK(upstream.queries == 2);
  CHECK(h.service->counters().tcpHalfClosed.load() == 1);
  CHECK(h.service->tcpClients() == 0);
}

TEST_CASE("service: a half-closed TCP client with nothing pending is closed at once", "[dns][service]") {
  Harness h;
  h.start({});
  HalfClosingClient client;
  // A complete denied query and the first half of another: the half is dropped.
  Bytes payload = framed({dnstest::query("evil.example.com", 1, true, 0x0404).bytes});
  payload.insert(payload.end(), {0, 40, 0x12, 0x34});
  client.run(h, payload);
  CHECK(client.closedByServer);
  CHECK(client.ids() == std::vector<uint16_t>{0x0404});
  CHECK(h.service->tcpClients() == 0);
}

TEST_CASE("service: upstream latency is recorded per exchange", "[dns][service]") {
  Harness h;
  ScriptedUpstream upstream(h.base.get(), [](const Bytes& query) {
    return std::vector<Bytes>{answerTo(query, kResponse, 1, aRecord("api.example.com", 60, {192, 0, 2, 10}))};
  });
  ScriptedUpstream silent(h.base.get(), [](const Bytes&) { return std::vector<Bytes>{}; });
  h.start({silent.address(), upstream.address()});
  REQUIRE(h.ask(dnstest::query("api.example.com", 1).bytes));
  // The timed-out attempt is not a latency sample; the answered one is,
  // and it took well under the 300 ms timeout on loopback.
  const common::LatencyHistogram& latency = h.service->counters().upstreamLatency;
  CHECK(latency.count() == 1);
  CHECK(latency.sumMicros() < 300'000);
  uint64_t inBuckets = 0;
  for (size_t i = 0; i < common::LatencyHistogram::kBuckets; ++i) inBuckets += latency.bucket(i);
  CHECK(inBuckets == 1);
  // A cache hit is no upstream exchange.
  REQUIRE(h.ask(dnstest::query("api.example.com", 1).bytes));
  CHECK(latency.count() == 1);
}

TEST_CASE("service: a burst of UDP queries from many clients is answered in full", "[dns][service]") {
  Harness h;
  h.start({});
  // 100 queries from 4 sockets, sent before the loop runs: the listener
  // receives them in recvmmsg batches and answers with sendmmsg.
  std::vector<int> sockets;
  sockaddr_storage to{};
  const socklen_t length = h.service->boundAddresses().front().toSockaddr(to);
  for (int s = 0; s < 4; ++s) sockets.push_back(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0));
  for (uint16_t i = 0; i < 100; ++i) {
    const Bytes q = dnstest::query(i % 2 == 0 ? "evil.example.com" : "bad.example.org", 1, true, i).bytes;
    ::sendto(sockets[i % 4], q.data(), q.size(), 0, reinterpret_cast<sockaddr*>(&to), length);
  }
  const timeval slice{0, 200'000};
  event_base_loopexit(h.base.get(), &slice);
  event_base_dispatch(h.base.get());
  std::vector<bool> seen(100, false);
  for (size_t s = 0; s < sockets.size(); ++s) {
    Bytes buffer(4096);
    ssize_t n = 0;
    while ((n = ::recv(sockets[s], buffer.data(), buffer.size(), MSG_DONTWAIT)) > 0) {
      const uint16_t id = dns::readU16(buffer.data());
      REQUIRE(id < 100);
      CHECK(id % 4 == s);  // each answer went back to the socket that asked
      CHECK(rcodeOf(Bytes(buffer.begin(), buffer.begin() + n)) == dns::rcode::NxDomain);
      seen[id] = true;
    }
    ::close(sockets[s]);
  }
  CHECK(std::count(seen.begin(), seen.end(), true) == 100);
  CHECK(h.service->counters().denied.load() == 100);
}

// The IDs of the answers waiting on `fd`, in arrival order.
std::vector<uint16_t> answerIds(int fd) {
  std::vector<uint16_t> ids;
  Bytes buffer(4096);
  while (::recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT) >= 2)
    ids.push_back(dns::readU16(buffer.data()));
  return ids;
}

TEST_CASE("service: a UDP query that arrives while the last is answered is read in the same wake-up",
          "[dns][service]") {
  // The listener reads until the socket is empty, not just once per
  // wake-up: the second query, sent while the first is being handled (from
  // the first's event), is answered in the same pass of the event loop.
  Harness h;
  h.start({});
  sockaddr_storage to{};
  const socklen_t length = h.service->boundAddresses().front().toSockaddr(to);
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  const auto send = [&](const Bytes& q) {
    ::sendto(fd, q.data(), q.size(), 0, reinterpret_cast<sockaddr*>(&to), length);
  };
  h.afterEvent = [&] {
    if (h.outcomes.size() == 1) send(dnstest::query("second.denied.example", 1, false, 2).bytes);
  };
  send(dnstest::query("first.denied.example", 1, false, 1).bytes);
  event_base_loop(h.base.get(), EVLOOP_ONCE);
  CHECK(answerIds(fd) == std::vector<uint16_t>{1, 2});
  CHECK(h.service->counters().denied.load() == 2);
  ::close(fd);
}

TEST_CASE("service: a UDP flood is read in bounded passes, so other events get their turn",
          "[dns][service]") {
  // 160 queries queued before the loop runs: one pass of the event loop
  // takes a bounded share (whole recvmmsg batches), the next passes the rest.
  Harness h;
  h.start({});
  sockaddr_storage to{};
  const socklen_t length = h.service->boundAddresses().front().toSockaddr(to);
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  constexpr uint16_t kQueries = 160;
  for (uint16_t i = 0; i < kQueries; ++i) {
    const Bytes q = dnstest::query("n" + std::to_string(i) + ".denied.example", 1, false, i).bytes;
    REQUIRE(::sendto(fd, q.data(), q.size(), 0, reinterpret_cast<sockaddr*>(&to), length) ==
            static_cast<ssize_t>(q.size()));
  }
  event_base_loop(h.base.get(), EVLOOP_ONCE);
  const size_t firstPass = answerIds(fd).size();
  CHECK(firstPass >= 32);
  CHECK(firstPass < kQueries);
  const timeval slice{0, 200'000};
  event_base_loopexit(h.base.get(), &slice);
  event_base_dispatch(h.base.get());
  CHECK(firstPass + answerIds(fd).size() == kQueries);
  CHECK(h.service->counters().denied.load() == kQueries);
  ::close(fd);
}

TEST_CASE("service: republishing the same rules keeps the cache", "[dns][service]") {
  // The daemon republishes the policy on every periodic rescan of the
  // rules directories; only a real change may cost the cache.
  Harness h;
  ScriptedUpstream upstream(h.base.get(), [](const Bytes& query) {
    return std::vector<Bytes>{
        answerTo(query, kResponse, 1, aRecord("api.example.com", 300, {192, 0, 2, 10}))};
  });
  h.start({upstream.address()});
  REQUIRE(rcodeOf(*h.ask(dnstest::query("api.example.com", 1).bytes)) == dns::rcode::NoError);
  h.holder.publish(dnstest::makePolicy({"api.example.com:443", "app.example.com:443"}));
  REQUIRE(rcodeOf(*h.ask(dnstest::query("api.example.com", 1).bytes)) == dns::rcode::NoError);
  CHECK(h.outcomes.back() == dns::DnsOutcome::CacheHit);
  CHECK(upstream.queries == 1);
  // A different rule set (here: one more target) is a change.
  h.holder.publish(dnstest::makePolicy({"api.example.com:443", "app.example.com:443", "10.0.0.0/8:443"}));
  REQUIRE(rcodeOf(*h.ask(dnstest::query("api.example.com", 1).bytes)) == dns::rcode::NoError);
  CHECK(h.outcomes.back() == dns::DnsOutcome::Allowed);
  CHECK(upstream.queries == 2);
}

TEST_CASE("service: a cache hit brings back bindings the table evicted", "[dns][service]") {
  Harness h;
  ScriptedUpstream upstream(h.base.get(), [](const Bytes& query) {
    return std::vector<Bytes>{
        answerTo(query, kResponse, 1, aRecord("api.example.com", 300, {192, 0, 2, 10}))};
  });
  h.start({upstream.address()});
  const auto ip = *common::parseIpAddress("192.0.2.10");
  REQUIRE(h.ask(dnstest::query("api.example.com", 1).bytes));
  REQUIRE(h.bindings.isBound("api.example.com", ip, h.now));
  // A hit with nothing evicted meanwhile leaves the table alone.
  const uint64_t recorded = h.bindings.stats().recorded;
  REQUIRE(h.ask(dnstest::query("api.example.com", 1).bytes));
  CHECK(h.outcomes.back() == dns::DnsOutcome::CacheHit);
  CHECK(h.bindings.stats().recorded == recorded);
  // Push it out with later-expiring bindings of other names.
  // (Eviction samples the inserting shard, so keep going until it hit ours.)
  for (uint32_t i = 0; i < 200'000 && h.bindings.isBound("api.example.com", ip, h.now); ++i) {
    h.bindings.record("filler.example.com", common::IpAddress::v4(0x0b000000 + i), h.now + 1h);
  }
  REQUIRE(h.bindings.stats().evictions > 0);
  REQUIRE_FALSE(h.bindings.isBound("api.example.com", ip, h.now));
  REQUIRE(h.ask(dnstest::query("api.example.com", 1).bytes));
  CHECK(h.outcomes.back() == dns::DnsOutcome::CacheHit);
  CHECK(h.bindings.isBound("api.example.com", ip, h.now));
  CHECK(upstream.queries == 1);
}

TEST_CASE("service: a wildcard listener answers from the address each query was sent to", "[dns][service]") {
  // 127.0.0.0/8 is all local: a query to 127.0.0.5 must be answered from
  // 127.0.0.5, not from the address routing would pick (127.0.0.1); the
  // connected client socket drops anything else.
  Harness h;
  ScriptedUpstream answering(h.base.get(), [](const Bytes& query) {
    return std::vector<Bytes>{answerTo(query, kResponse, 1, aRecord("api.example.com", 300, {192, 0, 2, 7}))};
  });
  h.start({answering.address()}, {common::IpAddress::v4(0), 0});
  const auto via = *common::parseIpAddress("127.0.0.5");
  // Denied: answered inside the receive batch (sendmmsg).
  const auto denied = h.ask(dnstest::query("evil.example.net", 1).bytes, via);
  REQUIRE(denied.has_value());
  CHECK(rcodeOf(*denied) == dns::rcode::NxDomain);
  // Allowed: answered later, when the upstream replies (a lone sendmsg).
  const auto allowed = h.ask(dnstest::query("api.example.com", 1).bytes, via);
  REQUIRE(allowed.has_value());
  CHECK(rcodeOf(*allowed) == dns::rcode::NoError);
  CHECK(ancountOf(*allowed) == 1);
  CHECK(answering.queries == 1);
}

// Issue 12 item 9: a dead upstream gave a bare SERVFAIL.
TEST_CASE("service: upstreams that time out give SERVFAIL with EDE 22, unreachable ones EDE 23",
          "[dns][service]") {
  Harness h;
  ScriptedUpstream silent(h.base.get(), [](const Bytes&) { return std::vector<Bytes>{}; });
  h.start({silent.address()});
  auto answer = h.ask(dnstest::query("app.example.com", 1).bytes);
  REQUIRE(answer);
  CHECK(rcodeOf(*answer) == dns::rcode::ServFail);
  CHECK(edeOf(*answer) == dns::kEdeNoReachableAuthority);

  Harness refused;
  refused.start({closedPort()});
  answer = refused.ask(dnstest::query("app.example.com", 1).bytes);
  REQUIRE(answer);
  CHECK(rcodeOf(*answer) == dns::rcode::ServFail);
  CHECK(edeOf(*answer) == dns::kEdeNetworkError);
  CHECK(refused.service->counters().upstreamUnreachable.load() == 1);
}

// Issue 12 item 1.
TEST_CASE("service: audit mode answers names no rule allows, records the binding, reports would-deny",
          "[dns][service]") {
  Harness h;
  ScriptedUpstream upstream(h.base.get(), [](const Bytes& query) {
    return std::vector<Bytes>{
        answerTo(query, kResponse, 1, aRecord("evil.example.net", 60, {203, 0, 113, 66}))};
  });
  h.start({upstream.address()}, {common::IpAddress::v4(0x7f000001), 0},
          [](dns::DnsOptions& options) { options.audit = true; });
  auto answer = h.ask(dnstest::query("evil.example.net", 1).bytes);
  REQUIRE(answer);
  CHECK(rcodeOf(*answer) == dns::rcode::NoError);
  CHECK(ancountOf(*answer) == 1);
  CHECK(h.outcomes.back() == dns::DnsOutcome::Allowed);
  CHECK(h.last.audit);
  CHECK(h.last.reason == dns::DenyReason::NotAllowed);
  CHECK(h.bindings.isBound("evil.example.net", *common::parseIpAddress("203.0.113.66"), h.now));
  // From the cache: still "would deny".
  answer = h.ask(dnstest::query("evil.example.net", 1).bytes);
  REQUIRE(answer);
  CHECK(h.outcomes.back() == dns::DnsOutcome::CacheHit);
  CHECK(h.last.audit);
  CHECK(h.service->counters().wouldDeny[static_cast<size_t>(dns::DenyReason::NotAllowed)].load() == 2);
  CHECK(h.service->counters().denied.load() == 0);
  // Back to enforce (SIGHUP): denied again, cache or not.
  dns::DnsOptions enforce;
  enforce.upstreams = {upstream.address()};
  h.service->updateOptions(enforce);
  answer = h.ask(dnstest::query("evil.example.net", 1).bytes);
  REQUIRE(answer);
  CHECK(rcodeOf(*answer) == dns::rcode::NxDomain);
  CHECK_FALSE(h.last.audit);
}

TEST_CASE("service: audit mode still refuses rebinding answers", "[dns][service]") {
  Harness h;
  ScriptedUpstream upstream(h.base.get(), [](const Bytes& query) {
    return std::vector<Bytes>{
        answerTo(query, kResponse, 1, aRecord("evil.example.net", 60, {169, 254, 169, 254}))};
  });
  h.start({upstream.address()}, {common::IpAddress::v4(0x7f000001), 0},
          [](dns::DnsOptions& options) { options.audit = true; });
  const auto answer = h.ask(dnstest::query("evil.example.net", 1).bytes);
  REQUIRE(answer);
  CHECK(rcodeOf(*answer) == dns::rcode::NxDomain);
  CHECK(h.last.reason == dns::DenyReason::Rebinding);
  CHECK_FALSE(h.last.audit);
  CHECK(h.bindings.stats().entries == 0);
}

// Issue 12 item 2.
TEST_CASE("service: world access trips the tunnel guard on a burst of names under one domain",
          "[dns][service]") {
  Harness h;
  h.holder.publish(dnstest::makePolicy({"*:80", "*.wild.example.org:443"}));
  ScriptedUpstream upstream(h.base.get(), [](const Bytes& query) {
    return std::vector<Bytes>{answerTo(query, kResponse | dns::rcode::NxDomain, 0, {})};
  });
  h.start({upstream.address()}, {common::IpAddress::v4(0x7f000001), 0},
          [](dns::DnsOptions& options) { options.tunnelGuardNames = 10; });
  for (int i = 0; i < 10; ++i) {
    const auto answer = h.ask(dnstest::query("c" + std::to_string(i) + ".t.evil.example", 1).bytes);
    REQUIRE(answer);
    CHECK(edeOf(*answer) == -1);  // the upstream's own NXDOMAIN
  }
  CHECK(upstream.queries == 10);
  const auto over = h.ask(dnstest::query("c10.t.evil.example", 1).bytes);
  REQUIRE(over);
  CHECK(rcodeOf(*over) == dns::rcode::NxDomain);
  CHECK(edeOf(*over) == dns::kEdeBlocked);
  CHECK(h.last.reason == dns::DenyReason::TunnelBudget);
  CHECK(upstream.queries == 10);  // never reached the far end
  CHECK(h.service->counters().tunnelGuardTrips.load() == 1);
  // Names under a wildcard target are never budgeted.
  for (int i = 0; i < 15; ++i) {
    REQUIRE(h.ask(dnstest::query("n" + std::to_string(i) + ".wild.example.org", 1).bytes));
    CHECK(h.last.reason == dns::DenyReason::None);
  }
  // A TXT query for a world-only name: NODATA with EDE 15.
  const auto txt = h.ask(dnstest::query("x.other.example", 16).bytes);
  REQUIRE(txt);
  CHECK(rcodeOf(*txt) == dns::rcode::NoError);
  CHECK(ancountOf(*txt) == 0);
  CHECK(edeOf(*txt) == dns::kEdeBlocked);
  CHECK(h.last.reason == dns::DenyReason::WorldNonAddressQuery);
}

// Issue 12: "watch keeps the query name's case as asked (0x20 forensics)".
TEST_CASE("service: events keep the name's case as asked; matching ignores it", "[dns][service]") {
  Harness h;
  ScriptedUpstream upstream(h.base.get(), [](const Bytes& query) {
    return std::vector<Bytes>{answerTo(query, kResponse, 1, aRecord("api.example.com", 60, {192, 0, 2, 10}))};
  });
  h.start({upstream.address()});
  auto answer = h.ask(dnstest::query("ApI.eXaMpLe.CoM", 1).bytes);
  REQUIRE(answer);
  CHECK(rcodeOf(*answer) == dns::rcode::NoError);
  CHECK(h.last.qname == "ApI.eXaMpLe.CoM");
  answer = h.ask(dnstest::query("EvIl.ExAmPlE.nEt", 1).bytes);
  REQUIRE(answer);
  CHECK(h.last.qname == "EvIl.ExAmPlE.nEt");
  CHECK(h.last.reason == dns::DenyReason::NotAllowed);
}

// A UDP denial is built straight into its sendmmsg slot (and its EDE text
// looked up only for EDNS clients): the bytes must be exactly what
// buildResponse() gives for the same query, with and without EDNS, for
// one query and for a burst that fills several slots, and over TCP.
TEST_CASE("service: a denial's bytes are buildResponse()'s, over UDP alone and in bursts", "[dns][service]") {
  Harness h;
  h.start({});
  const auto expected = [](const Bytes& query) {
    dns::Query parsed;
    REQUIRE(dns::parseQuery(query, parsed) == dns::QueryStatus::Ok);
    const dns::ExtendedError ede{dns::kEdeBlocked, dns::denyReasonText(dns::DenyReason::NotAllowed)};
    Bytes out(4096);
    out.resize(dns::buildResponse(query, parsed, dns::rcode::NxDomain, &ede, out));
    REQUIRE(!out.empty());
    return out;
  };
  for (const bool edns : {true, false}) {
    const Bytes query = dnstest::query("Evil.Example.COM", dns::rrtype::A, edns, 0x4242).bytes;
    const auto answer = h.ask(query);
    REQUIRE(answer);
    CHECK(*answer == expected(query));
    CHECK((edeOf(*answer) == dns::kEdeBlocked) == edns);
  }
  // A burst: several answers queued for one sendmmsg, each in its own slot.
  sockaddr_storage to{};
  const socklen_t length = h.service->boundAddresses().front().toSockaddr(to);
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  std::vector<Bytes> queries;
  for (uint16_t i = 0; i < 40; ++i) {
    queries.push_back(dnstest::query("n" + std::to_string(i) + ".denied.example", 1, i % 2 == 0, i).bytes);
    ::sendto(fd, queries.back().data(), queries.back().size(), 0, reinterpret_cast<sockaddr*>(&to), length);
  }
  const timeval slice{0, 200'000};
  event_base_loopexit(h.base.get(), &slice);
  event_base_dispatch(h.base.get());
  size_t matched = 0;
  Bytes buffer(4096);
  ssize_t n = 0;
  while ((n = ::recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT)) > 0) {
    const Bytes answer(buffer.begin(), buffer.begin() + n);
    const uint16_t id = dns::readU16(answer.data());
    REQUIRE(id < queries.size());
    CHECK(answer == expected(queries[id]));
    ++matched;
  }
  ::close(fd);
  CHECK(matched == queries.size());
  CHECK(h.service->counters().denied.load() == 2 + queries.size());
  CHECK(h.service->counters().verdictDeny.load() == 2 + queries.size());
}

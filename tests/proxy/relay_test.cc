// The tunnel relay on real loopback TCP sockets, spliced and copying:
// bytes arrive intact and in order (queued ones first, copied ones before
// spliced ones), a FIN is passed on only after the bytes before it, the
// relay ends when both sides are done, a short tunnel takes no pipe, and a
// reset on one side reaches the other as a reset. The upstream socket
// gets TCP_NODELAY only before the relay's second write there, and its
// held-back handshake ACK goes with the client's first bytes, or alone
// after upstreamAckDelay when the server is the one to speak first.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "common/c_handle.h"
#include "proxy/relay.h"

namespace {

using proxy::UniqueFd;

// A listening socket on a loopback port the kernel picks (`address` says
// which); with lateAcks, TCP_QUICKACK off, as the proxy's listeners have
// it (the sockets it accepts start in the delayed-ACK mode).
UniqueFd loopbackListener(sockaddr_in& address, int flags = 0, bool lateAcks = false) {
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0));
  if (lateAcks) {
    const int delayAck = 0;
    REQUIRE(::setsockopt(listener.get(), IPPROTO_TCP, TCP_QUICKACK, &delayAck, sizeof delayAck) == 0);
  }
  address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(::listen(listener.get(), 1) == 0);
  REQUIRE(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&address), &length) == 0);
  return listener;
}

// A connected loopback TCP pair, both ends non-blocking; with lateAcks the
// second end comes from a loopbackListener with late ACKs.
std::pair<UniqueFd, UniqueFd> tcpPair(bool lateAcks = false) {
  sockaddr_in address{};
  const UniqueFd listener = loopbackListener(address, 0, lateAcks);
  UniqueFd a(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(::connect(a.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  UniqueFd b(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  REQUIRE(b);
  for (int fd : {a.get(), b.get()}) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return {std::move(a), std::move(b)};
}

std::string pattern(size_t size, char seed) {
  std::string text(size, '\0');
  for (size_t i = 0; i < size; ++i) text[i] = static_cast<char>(seed + static_cast<char>(i * 7 % 251));
  return text;
}

struct Harness {
  common::CHandle<event_base, event_base_free> base{event_base_new()};
  std::atomic<uint64_t> toUpstream{0};
  std::atomic<uint64_t> toClient{0};
  std::optional<proxy::RelayEnd> end;
  std::unique_ptr<proxy::PipePool> pool;
  std::unique_ptr<proxy::TunnelRelay> relay;
  UniqueFd clientPeer;    // the proxy's client
  UniqueFd upstreamPeer;  // the server
  // With upstreamNagle: a duplicate of the relay's upstream socket, for
  // getsockopt (it keeps the socket open: no FIN when the relay closes it).
  UniqueFd upstreamView;

  // With ackDelay: the relay's upstream socket connects as the proxy's do
  // (TCP_QUICKACK off first), so the server has no connection to accept
  // until the held-back ACK comes (acceptUpstream()).
  UniqueFd upstreamListener;

  // With viewClient: a duplicate of the relay's client socket, the same way.
  UniqueFd clientView;

  explicit Harness(bool splice, size_t spliceAfter = size_t{64} * 1024, bool upstreamNagle = false,
                   std::chrono::milliseconds ackDelay = std::chrono::milliseconds(0),
                   bool lateClientAcks = false, bool clientQuickAck = false, bool viewClient = false,
                   size_t kernelSendBufferMax = proxy::RelayOptions{}.kernelSendBufferMax) {
    auto [client, relayClient] = tcpPair(lateClientAcks);
    UniqueFd relayUpstream;
    if (ackDelay.count() > 0) {
      relayUpstream = heldBackConnect();
    } else {
      auto [near, far] = tcpPair();
      relayUpstream = std::move(near);
      upstreamPeer = std::move(far);
    }
    clientPeer = std::move(client);
    if (upstreamNagle) upstreamView.reset(::fcntl(relayUpstream.get(), F_DUPFD_CLOEXEC, 0));
    if (viewClient) clientView.reset(::fcntl(relayClient.get(), F_DUPFD_CLOEXEC, 0));
    if (splice) pool = std::make_unique<proxy::PipePool>(base.get(), size_t{64} * 1024);
    proxy::RelayOptions options;
    options.pipeBytes = size_t{64} * 1024;
    options.bufferBytes = size_t{16} * 1024;
    options.spliceAfter = spliceAfter;
    options.upstreamNagle = upstreamNagle;
    options.upstreamAckDelay = ackDelay;
    options.clientQuickAck = clientQuickAck;
    options.kernelSendBufferMax = kernelSendBufferMax;
    relay = std::make_unique<proxy::TunnelRelay>(
        base.get(), std::move(relayClient), std::move(relayUpstream), pool.get(), options, toUpstream,
        toClient, [](void* arg, proxy::RelayEnd e) { static_cast<Harness*>(arg)->end = e; }, this);
  }

  void spin() { event_base_loop(base.get(), EVLOOP_NONBLOCK); }

  // A connection whose handshake's last ACK the kernel holds back (for
  // data, up to 200 ms): connect() is done, the listener has nothing yet.
  UniqueFd heldBackConnect() {
    sockaddr_in address{};
    upstreamListener = loopbackListener(address, SOCK_NONBLOCK);
    UniqueFd socket(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const int delayAck = 0;
    REQUIRE(::setsockopt(socket.get(), IPPROTO_TCP, TCP_QUICKACK, &delayAck, sizeof delayAck) == 0);
    REQUIRE(::connect(socket.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    ::fcntl(socket.get(), F_SETFL, ::fcntl(socket.get(), F_GETFL) | O_NONBLOCK);
    return socket;
  }

  // The server's side of a heldBackConnect(), once the ACK came.
  bool acceptUpstream() {
    if (!upstreamPeer)
      upstreamPeer.reset(::accept4(upstreamListener.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    return static_cast<bool>(upstreamPeer);
  }

  // Writes `data` into `from` while reading `to`, the relay running in
  // between; returns what `to` received (up to `want` bytes or its EOF).
  std::string pump(int from, const std::string& data, int to, size_t want) {
    std::string got;
    size_t sent = 0;
    char buffer[65536];
    for (int idle = 0; idle < 20000 && got.size() < want; ++idle) {
      if (sent < data.size()) {
        const ssize_t n = ::send(from, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
        if (n > 0) sent += static_cast<size_t>(n);
      }
      spin();
      const ssize_t n = ::recv(to, buffer, sizeof buffer, 0);
      if (n == 0) break;
      if (n > 0) {
        got.append(buffer, static_cast<size_t>(n));
        idle = 0;
      }
    }
    return got;
  }

  // recv on `fd` after the relay ran: >0 bytes, 0 EOF, -errno.
  ssize_t settle(int fd) {
    char buffer[256];
    for (int i = 0; i < 20000; ++i) {
      spin();
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n >= 0) return n;
      if (errno != EAGAIN) return -errno;
    }
    return -EAGAIN;
  }
};

}  // namespace

TEST_CASE("the relay carries bytes both ways and passes each half-close on", "[proxy][relay]") {
  const bool splice = GENERATE(true, false);
  // 0: splicing from the first byte; else copying first, splicing after.
  const size_t spliceAfter = GENERATE(size_t{0}, size_t{64} * 1024);
  CAPTURE(splice, spliceAfter);
  Harness h(splice, spliceAfter);
  REQUIRE(h.relay->start("HTTP/1.1 200 Connection established\r\n\r\n", "early"));

  // Queued bytes go first: the CONNECT answer to the client, the early
  // bytes to the server.
  const std::string up = pattern(size_t{3} * 1024 * 1024, 'a');
  const std::string atServer = h.pump(h.clientPeer.get(), up, h.upstreamPeer.get(), 5 + up.size());
  CHECK(atServer.size() == 5 + up.size());
  CHECK(atServer == "early" + up);

  // The client's FIN reaches the server after its bytes; the other way
  // stays open.
  REQUIRE(::shutdown(h.clientPeer.get(), SHUT_WR) == 0);
  CHECK(h.settle(h.upstreamPeer.get()) == 0);
  CHECK_FALSE(h.end.has_value());

  const std::string down = pattern(size_t{2} * 1024 * 1024, 'k');
  const std::string answer = "HTTP/1.1 200 Connection established\r\n\r\n";
  const std::string atClient =
      h.pump(h.upstreamPeer.get(), down, h.clientPeer.get(), answer.size() + down.size());
  CHECK(atClient == answer + down);
  REQUIRE(::shutdown(h.upstreamPeer.get(), SHUT_WR) == 0);
  CHECK(h.settle(h.clientPeer.get()) == 0);
  REQUIRE(h.end.has_value());
  CHECK(*h.end == proxy::RelayEnd::Done);
  CHECK(h.toUpstream.load() == up.size());
  CHECK(h.toClient.load() == down.size());
  CHECK(h.relay->copied() == false);
  // The pipes went back to the pool, empty, for the next tunnel.
  if (splice) CHECK(h.pool->idle() >= 1);
}

TEST_CASE("a reset on one side reaches the other side as a reset", "[proxy][relay]") {
  const bool splice = GENERATE(true, false);
  CAPTURE(splice);
  Harness h(splice);
  REQUIRE(h.relay->start("", ""));
  CHECK(h.pump(h.clientPeer.get(), "ping", h.upstreamPeer.get(), 4) == "ping");
  const linger hard{1, 0};
  REQUIRE(::setsockopt(h.upstreamPeer.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard) == 0);
  h.upstreamPeer.reset();
  CHECK(h.settle(h.clientPeer.get()) == -ECONNRESET);
  REQUIRE(h.end.has_value());
  CHECK(*h.end == proxy::RelayEnd::Reset);
}

TEST_CASE("a short tunnel is copied: the answer and its FIN arrive, no pipe is taken", "[proxy][relay]") {
  const bool splice = GENERATE(true, false);
  CAPTURE(splice);
  Harness h(splice);
  const std::string established = "HTTP/1.1 200 Connection established\r\n\r\n";
  REQUIRE(h.relay->start(established, ""));
  const std::string request = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
  CHECK(h.pump(h.clientPeer.get(), request, h.upstreamPeer.get(), request.size()) == request);
  // The server answers and closes at once: the bytes and the FIN are both
  // in the relay's socket when it wakes.
  const std::string response = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
  REQUIRE(::send(h.upstreamPeer.get(), response.data(), response.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(response.size()));
  REQUIRE(::shutdown(h.upstreamPeer.get(), SHUT_WR) == 0);
  CHECK(h.pump(h.clientPeer.get(), "", h.clientPeer.get(), established.size() + response.size()) ==
        established + response);
  CHECK(h.settle(h.clientPeer.get()) == 0);  // then the FIN
  CHECK_FALSE(h.end.has_value());            // the client may still send
  REQUIRE(::shutdown(h.clientPeer.get(), SHUT_WR) == 0);
  CHECK(h.settle(h.upstreamPeer.get()) == 0);
  REQUIRE(h.end.has_value());
  CHECK(*h.end == proxy::RelayEnd::Done);
  CHECK(h.toUpstream.load() == request.size());
  CHECK(h.toClient.load() == response.size());
  CHECK(h.relay->copied() == false);
  if (splice) CHECK(h.pool->idle() == 0);  // a few hundred bytes: no pipe2 for them
}

TEST_CASE("a fast bulk leg gets the larger send buffer; a slow one and a short tunnel do not",
          "[proxy][relay]") {
  // Needs CAP_NET_ADMIN (SO_SNDBUFFORCE), as egressd has: the tests run as root.
  const auto sendBuffer = [](int fd) {
    int value = 0;
    socklen_t length = sizeof value;
    REQUIRE(::getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &value, &length) == 0);
    return static_cast<size_t>(value);
  };
  const size_t raised = 2 * proxy::RelayOptions{}.bulkSendBuffer;  // the kernel doubles it
  const std::string established = "HTTP/1.1 200 Connection established\r\n\r\n";
  // The server sends 4 MiB while the client, with a small receive
  // buffer, reads nothing: the relay splices until the client's socket is
  // full, then waits for it.
  const auto download = [&](Harness& h) {
    const int small = 64 * 1024;
    REQUIRE(::setsockopt(h.clientPeer.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
    // Loopback would grow the relay's own buffer far enough to take all of
    // it: a fixed one, as a leg the kernel has sized already.
    REQUIRE(::setsockopt(h.clientView.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
    const std::string body = pattern(size_t{4} * 1024 * 1024, 'b');
    size_t sent = 0;
    for (int i = 0; i < 4000; ++i) {
      const ssize_t n = ::send(h.upstreamPeer.get(), body.data() + sent, body.size() - sent, MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<size_t>(n);
      h.spin();
    }
    const std::pair<size_t, uint64_t> whileFull{sendBuffer(h.clientView.get()), h.toClient.load()};
    CHECK(h.pump(h.upstreamPeer.get(), body.substr(sent), h.clientPeer.get(),
                 established.size() + body.size()) == established + body);
    return whileFull;
  };

  SECTION("a full sink the kernel's tuning has given its most: raised") {
    // Any buffer counts as the kernel's most here: loopback would take
    // longer than a test to grow one to net.ipv4.tcp_wmem's maximum.
    Harness h(true, size_t{64} * 1024, false, std::chrono::milliseconds(0), false, false, true, 1);
    REQUIRE(sendBuffer(h.clientView.get()) < raised);
    REQUIRE(h.relay->start(established, ""));
    CHECK(download(h).first == raised);  // then the 4 MiB fit in
    CHECK(h.toUpstream.load() == 0);
  }
  SECTION("a full sink below the kernel's most (a slow reader): left to the kernel") {
    Harness h(true, size_t{64} * 1024, false, std::chrono::milliseconds(0), false, false, true,
              size_t{1} << 40);
    REQUIRE(h.relay->start(established, ""));
    const auto [buffer, moved] = download(h);
    CHECK(buffer < raised);
    CHECK(moved < size_t{1024} * 1024);  // the client's socket was full, and stayed so
    CHECK(sendBuffer(h.clientView.get()) < raised);
  }
  SECTION("a short answer is copied and leaves the buffer to the kernel") {
    Harness h(true, size_t{64} * 1024, false, std::chrono::milliseconds(0), false, false, true, 1);
    const size_t before = sendBuffer(h.clientView.get());
    REQUIRE(h.relay->start(established, ""));
    const std::string answer = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
    CHECK(h.pump(h.upstreamPeer.get(), answer, h.clientPeer.get(), established.size() + answer.size()) ==
          established + answer);
    CHECK(sendBuffer(h.clientView.get()) == before);
  }
}

TEST_CASE("the kernel's largest send buffer is read from net.ipv4.tcp_wmem", "[proxy][relay]") {
  std::FILE* file = std::fopen("/proc/sys/net/ipv4/tcp_wmem", "re");
  REQUIRE(file != nullptr);
  unsigned long low = 0;
  unsigned long initial = 0;
  unsigned long most = 0;
  REQUIRE(std::fscanf(file, "%lu %lu %lu", &low, &initial, &most) == 3);
  std::fclose(file);
  CHECK(proxy::kernelSendBufferMax(7) == most);
}

TEST_CASE("the upstream socket gets TCP_NODELAY before the relay's second write there, not its first",
          "[proxy][relay]") {
  const bool splice = GENERATE(true, false);
  CAPTURE(splice);
  Harness h(splice, size_t{64} * 1024, true);
  const auto noDelay = [&h] {
    int value = 0;
    socklen_t length = sizeof value;
    REQUIRE(::getsockopt(h.upstreamView.get(), IPPROTO_TCP, TCP_NODELAY, &value, &length) == 0);
    return value != 0;
  };
  REQUIRE_FALSE(noDelay());  // the test's socket starts as the server's does: Nagle on
  REQUIRE(h.relay->start("HTTP/1.1 200 Connection established\r\n\r\n", ""));
  CHECK_FALSE(noDelay());  // nothing written upstream yet

  // One request: one write upstream, which Nagle never holds back.
  const std::string request = "GET / HTTP/1.1\r\nHost: a.example\r\n\r\n";
  CHECK(h.pump(h.clientPeer.get(), request, h.upstreamPeer.get(), request.size()) == request);
  CHECK_FALSE(noDelay());

  // A second write: Nagle is off first.
  CHECK(h.pump(h.clientPeer.get(), "more", h.upstreamPeer.get(), 4) == "more");
  CHECK(noDelay());
}

TEST_CASE("early bytes are the upstream's first write: the next one turns Nagle off", "[proxy][relay]") {
  Harness h(false, size_t{64} * 1024, true);
  int value = 0;
  socklen_t length = sizeof value;
  REQUIRE(h.relay->start("HTTP/1.1 200 Connection established\r\n\r\n", "early"));
  REQUIRE(::getsockopt(h.upstreamView.get(), IPPROTO_TCP, TCP_NODELAY, &value, &length) == 0);
  CHECK(value == 0);
  CHECK(h.pump(h.clientPeer.get(), "late", h.upstreamPeer.get(), 9) == "earlylate");
  REQUIRE(::getsockopt(h.upstreamView.get(), IPPROTO_TCP, TCP_NODELAY, &value, &length) == 0);
  CHECK(value != 0);
}

namespace {

using Clock = std::chrono::steady_clock;

// Runs the relay (and `step`) until the server has the connection or
// `limit` passed; returns how long that took.
template <typename Step>
Clock::duration untilAccepted(Harness& h, Clock::duration limit, Step step) {
  const auto start = Clock::now();
  while (!h.acceptUpstream() && Clock::now() - start < limit) {
    step();
    h.spin();
  }
  return Clock::now() - start;
}

}  // namespace

TEST_CASE("a server that speaks first gets the held-back handshake ACK after upstreamAckDelay",
          "[proxy][relay]") {
  using std::chrono::milliseconds;
  Harness h(false, size_t{64} * 1024, true, milliseconds(20));
  // The control: the kernel holds the ACK, so the server has no connection.
  REQUIRE_FALSE(h.acceptUpstream());
  REQUIRE(h.relay->start("HTTP/1.1 200 Connection established\r\n\r\n", ""));
  const auto took = untilAccepted(h, milliseconds(1000), [] {});
  REQUIRE(h.upstreamPeer);
  CHECK(took >= milliseconds(15));  // it waited for the client's bytes first
  CHECK(took < milliseconds(150));  // and not for the kernel's 200 ms
  // The banner reaches the client, after the CONNECT answer.
  const std::string answer = "HTTP/1.1 200 Connection established\r\n\r\n";
  const std::string banner = "SSH-2.0-test\r\n";
  CHECK(h.pump(h.upstreamPeer.get(), banner, h.clientPeer.get(), answer.size() + banner.size()) ==
        answer + banner);
}

TEST_CASE("the client's first bytes carry the upstream's held-back handshake ACK", "[proxy][relay]") {
  using std::chrono::milliseconds;
  // A long delay: only the client's bytes can let the server accept soon.
  Harness h(false, size_t{64} * 1024, true, milliseconds(1000));
  REQUIRE_FALSE(h.acceptUpstream());
  REQUIRE(h.relay->start("HTTP/1.1 200 Connection established\r\n\r\n", ""));
  h.spin();
  CHECK_FALSE(h.acceptUpstream());  // nothing sent yet: still held
  const std::string hello = "\x16\x03\x01 client hello";
  REQUIRE(::send(h.clientPeer.get(), hello.data(), hello.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(hello.size()));
  const auto took = untilAccepted(h, milliseconds(1000), [] {});
  REQUIRE(h.upstreamPeer);
  CHECK(took < milliseconds(150));
  CHECK(h.pump(h.clientPeer.get(), "", h.upstreamPeer.get(), hello.size()) == hello);
}

TEST_CASE("a server's two small writes are not held back by Nagle's algorithm waiting for our ACK",
          "[proxy][relay]") {
  using std::chrono::milliseconds;
  Harness h(false, size_t{64} * 1024, true, milliseconds(1000));
  REQUIRE(h.relay->start("", ""));
  const std::string request = "GET / HTTP/1.1\r\nHost: a.example\r\n\r\n";
  REQUIRE(::send(h.clientPeer.get(), request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size()));
  untilAccepted(h, milliseconds(1000), [] {});
  REQUIRE(h.upstreamPeer);
  CHECK(h.pump(h.clientPeer.get(), "", h.upstreamPeer.get(), request.size()) == request);
  // The server answers in two small writes with Nagle's algorithm on (as
  // Python's http.server does: the head, then the body): the second
  // leaves only once the first is acknowledged.
  const auto start = Clock::now();
  REQUIRE(::send(h.upstreamPeer.get(), "HTTP/1.1 200 OK\r\n\r\n", 19, MSG_NOSIGNAL) == 19);
  REQUIRE(::send(h.upstreamPeer.get(), "body", 4, MSG_NOSIGNAL) == 4);
  CHECK(h.pump(h.upstreamPeer.get(), "", h.clientPeer.get(), 23) == "HTTP/1.1 200 OK\r\n\r\nbody");
  CHECK(Clock::now() - start < milliseconds(35));  // a delayed ACK takes 40 at least (53 measured)
}

namespace {
// How long the second of two small pieces a Nagle-bound client writes
// right after the CONNECT answer takes to reach the server through a relay
// whose client socket came from a late-ACK listener.
Clock::duration twoPiecesFromClient(bool clientQuickAck) {
  Harness h(false, size_t{64} * 1024, false, std::chrono::milliseconds(0), true, clientQuickAck);
  // The CONNECT request, answered at once (as the proxy does): an answer
  // so soon after a request puts the socket in the kernel's interactive
  // (delayed-ACK) mode, and the listener's setting let the answer carry
  // the request's ACK. The relay passes the request on as tunnel bytes
  // here; the server reads it with the rest.
  const std::string request = "CONNECT a:443 HTTP/1.1\r\n\r\n";
  REQUIRE(::send(h.clientPeer.get(), request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size()));
  std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const std::string answer = "HTTP/1.1 200 Connection established\r\n\r\n";
  REQUIRE(h.relay->start(answer, ""));
  REQUIRE(h.pump(h.upstreamPeer.get(), "", h.clientPeer.get(), answer.size()) == answer);
  REQUIRE(h.pump(h.clientPeer.get(), "", h.upstreamPeer.get(), request.size()) == request);
  // The client has Nagle's algorithm on (a socket's default): its second
  // piece leaves only once the first is acknowledged.
  const auto start = Clock::now();
  REQUIRE(::send(h.clientPeer.get(), "GET / HTTP/1.1\r\n", 16, MSG_NOSIGNAL) == 16);
  REQUIRE(::send(h.clientPeer.get(), "Host: a\r\n\r\n", 11, MSG_NOSIGNAL) == 11);
  std::string got;
  char buffer[64];
  while (got.size() < 27 && Clock::now() - start < std::chrono::milliseconds(500)) {
    h.spin();
    const ssize_t n = ::recv(h.upstreamPeer.get(), buffer, sizeof buffer, 0);
    if (n > 0) got.append(buffer, static_cast<size_t>(n));
  }
  const auto took = Clock::now() - start;
  CHECK(got == "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  return took;
}
}  // namespace

TEST_CASE("a client's two small pieces are not held back by Nagle's algorithm waiting for our ACK",
          "[proxy][relay]") {
  using std::chrono::milliseconds;
  // The control: the late-ACK socket keeps the second piece 40 ms at least.
  CHECK(twoPiecesFromClient(false) >= milliseconds(35));
  // clientQuickAck: the client's socket acknowledges at once after the answer.
  CHECK(twoPiecesFromClient(true) < milliseconds(35));
}

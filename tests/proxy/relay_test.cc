// The tunnel relay on real loopback TCP sockets, spliced and copying:
// bytes arrive intact and in order (queued ones first, copied ones before
// spliced ones), a FIN is passed on only after the bytes before it, the
// relay ends when both sides are done, a short tunnel takes no pipe, and a
// reset on one side reaches the other as a reset.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <optional>
#include <string>
#include <utility>

#include "common/c_handle.h"
#include "proxy/relay.h"

namespace {

using proxy::UniqueFd;

// A connected loopback TCP pair, both ends non-blocking.
std::pair<UniqueFd, UniqueFd> tcpPair() {
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(::listen(listener.get(), 1) == 0);
  REQUIRE(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&address), &length) == 0);
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

  explicit Harness(bool splice, size_t spliceAfter = size_t{64} * 1024) {
    auto [client, relayClient] = tcpPair();
    auto [relayUpstream, upstream] = tcpPair();
    clientPeer = std::move(client);
    upstreamPeer = std::move(upstream);
    if (splice) pool = std::make_unique<proxy::PipePool>(base.get(), size_t{64} * 1024);
    proxy::RelayOptions options;
    options.pipeBytes = size_t{64} * 1024;
    options.bufferBytes = size_t{16} * 1024;
    options.spliceAfter = spliceAfter;
    relay = std::make_unique<proxy::TunnelRelay>(
        base.get(), std::move(relayClient), std::move(relayUpstream), pool.get(), options, toUpstream,
        toClient, [](void* arg, proxy::RelayEnd e) { static_cast<Harness*>(arg)->end = e; }, this);
  }

  void spin() { event_base_loop(base.get(), EVLOOP_NONBLOCK); }

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

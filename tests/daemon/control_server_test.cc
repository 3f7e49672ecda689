// The control server and the event hub on a real event loop, without
// egressd: clients are socketpairs handed to ControlServer::addClient().
#include <catch2/catch.hpp>

#include <event2/event.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>

#include "common/c_handle.h"
#include "common/snapshot.h"
#include "daemon/control_protocol.h"
#include "daemon/control_server.h"
#include "daemon/event_hub.h"
#include "observe/format.h"
#include "policy/policy.h"

namespace {

using EventBase = common::CHandle<event_base, event_base_free>;

// A test client: our end of a socketpair, with a line reader.
struct Peer {
  int fd = -1;
  std::string buffer;
  ~Peer() {
    if (fd >= 0) ::close(fd);
  }
  void write(const std::string& text) const {
    REQUIRE(::send(fd, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size()));
  }
  // Whatever has arrived, after letting the loop run.
  void pump(event_base* base) {
    for (int i = 0; i < 20; ++i) {
      event_base_loop(base, EVLOOP_NONBLOCK);
      char chunk[65536];
      for (;;) {
        const ssize_t n = ::recv(fd, chunk, sizeof(chunk), MSG_DONTWAIT);
        if (n <= 0) break;
        buffer.append(chunk, static_cast<size_t>(n));
      }
    }
  }
  std::optional<std::string> line() {
    const size_t newline = buffer.find('\n');
    if (newline == std::string::npos) return std::nullopt;
    std::string out = buffer.substr(0, newline);
    buffer.erase(0, newline + 1);
    return out;
  }
  bool closed() const {
    char c;
    return ::recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK) == 0;
  }
};

std::unique_ptr<Peer> connectPeer(daemon_main::ControlServer& server, event_base* base) {
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
  server.addClient(fds[0]);
  auto peer = std::make_unique<Peer>();
  peer->fd = fds[1];
  peer->pump(base);
  const auto greeting = peer->line();
  REQUIRE(greeting.has_value());
  REQUIRE(std::holds_alternative<int>(control::parseGreeting(*greeting)));
  return peer;
}

observe::Event sampleEvent(uint16_t port, observe::EventVerdict verdict) {
  observe::Event event;
  event.time = std::chrono::system_clock::now();
  event.src = *common::parseIpAddress("10.0.0.2");
  event.dst = *common::parseIpAddress("203.0.113.7");
  event.srcPort = 40000;
  event.dstPort = port;
  event.protocol = 6;
  event.verdict = verdict;
  event.reason = verdict == observe::EventVerdict::Deny ? "not_allowed" : "allowed";
  const std::string_view name = "api.example.com";
  std::memcpy(event.name.data(), name.data(), name.size());
  event.nameLength = static_cast<uint8_t>(name.size());
  event.nameSource = "sni";
  return event;
}

}  // namespace

TEST_CASE("control server: requests get one answer each on the same connection", "[control]") {
  EventBase base(event_base_new());
  common::SnapshotHolder<policy::Policy> policy(policy::Policy::empty());
  daemon_main::ControlServer server(
      base.get(), {}, policy,
      [] {
        return nlohmann::json{{"answer", 42}};
      },
      nullptr);
  auto peer = connectPeer(server, base.get());
  peer->write(
      "{\"op\":\"version\"}\n{\"op\":\"stats\"}\n{\"op\":\"nope\"}\n\n{\"op\":\"explain\",\"target\":\"a."
      "example.com:443\"}\n{\"op\":\"rules\"}\n");
  peer->pump(base.get());
  auto version = nlohmann::json::parse(peer->line().value());
  CHECK(version["ok"] == true);
  CHECK(version["protocol"] == control::kProtocolVersion);
  auto stats = nlohmann::json::parse(peer->line().value());
  CHECK(stats["stats"]["answer"] == 42);
  auto bad = nlohmann::json::parse(peer->line().value());
  CHECK(bad["ok"] == false);
  CHECK(bad["error"].get<std::string>().find("unknown op") != std::string::npos);
  auto explain = nlohmann::json::parse(peer->line().value());
  CHECK(explain["explain"]["verdict"] == "deny");
  auto rules = nlohmann::json::parse(peer->line().value());
  CHECK(rules["rules"]["rule_sets"].empty());
  CHECK_FALSE(peer->closed());
  CHECK(server.counters().requests == 5);
  CHECK(server.counters().badRequests == 1);
}

TEST_CASE("control server: explain says which mode egressd runs in, as it is now", "[control]") {
  EventBase base(event_base_new());
  common::SnapshotHolder<policy::Policy> policy(policy::Policy::empty());
  bool audit = false;
  daemon_main::ControlServerOptions options;
  options.audit = [&audit] { return audit; };
  daemon_main::ControlServer server(
      base.get(), options, policy, [] { return nlohmann::json::object(); }, nullptr);
  auto peer = connectPeer(server, base.get());
  const std::string request = "{\"op\":\"explain\",\"target\":\"a.example.com:443\"}\n";
  peer->write(request);
  peer->pump(base.get());
  auto explain = nlohmann::json::parse(peer->line().value());
  CHECK(explain["explain"]["verdict"] == "deny");
  CHECK(explain["explain"]["mode"] == "enforce");
  audit = true;  // a SIGHUP to mode = "audit"
  peer->write(request);
  peer->pump(base.get());
  explain = nlohmann::json::parse(peer->line().value());
  CHECK(explain["explain"]["verdict"] == "deny");
  CHECK(explain["explain"]["mode"] == "audit");
}

TEST_CASE("control server: an oversized request line gets an error and a close", "[control]") {
  EventBase base(event_base_new());
  common::SnapshotHolder<policy::Policy> policy(policy::Policy::empty());
  daemon_main::ControlServerOptions options;
  options.maxRequestLine = 1024;
  daemon_main::ControlServer server(base.get(), options, policy, {}, nullptr);
  auto peer = connectPeer(server, base.get());
  peer->write(std::string(4096, 'x'));  // no newline: never a complete line
  peer->pump(base.get());
  const auto answer = nlohmann::json::parse(peer->line().value());
  CHECK(answer["ok"] == false);
  CHECK(answer["error"] == "request line longer than 1024 bytes");
  peer->pump(base.get());
  CHECK(peer->closed());
  CHECK(server.counters().oversizedLines == 1);
  CHECK(server.counters().clients == 0);
}

TEST_CASE("control server: watch streams matching events only", "[control]") {
  EventBase base(event_base_new());
  common::SnapshotHolder<policy::Policy> policy(policy::Policy::empty());
  daemon_main::ControlServer server(base.get(), {}, policy, {}, nullptr);
  auto peer = connectPeer(server, base.get());
  peer->write("{\"op\":\"watch\",\"filter\":\"verdict deny and port 443\"}\n");
  peer->pump(base.get());
  const auto ok = nlohmann::json::parse(peer->line().value());
  CHECK(ok["ok"] == true);
  server.publish(sampleEvent(443, observe::EventVerdict::Allow), nullptr);
  server.publish(sampleEvent(80, observe::EventVerdict::Deny), nullptr);
  server.publish(sampleEvent(443, observe::EventVerdict::Deny), nullptr);
  peer->pump(base.get());
  const auto line = nlohmann::json::parse(peer->line().value());
  REQUIRE(line.contains("event"));
  const auto event = observe::eventFromJson(line["event"]);
  REQUIRE(event.has_value());
  CHECK(event->dstPort == 443);
  CHECK(event->verdict == observe::EventVerdict::Deny);
  CHECK_FALSE(peer->line().has_value());
  CHECK(server.counters().watchEventsSent == 1);
}

TEST_CASE("control server: line-format clients get each event's line, in their style", "[control]") {
  EventBase base(event_base_new());
  common::SnapshotHolder<policy::Policy> policy(policy::Policy::empty());
  daemon_main::ControlServer server(base.get(), {}, policy, {}, nullptr);
  auto plain = connectPeer(server, base.get());
  auto colour = connectPeer(server, base.get());
  auto json = connectPeer(server, base.get());
  plain->write("{\"op\":\"watch\",\"format\":\"line\",\"filter\":\"port 443\"}\n");
  colour->write("{\"op\":\"watch\",\"format\":\"line\",\"colour\":true}\n");
  json->write("{\"op\":\"watch\"}\n");
  plain->pump(base.get());
  colour->pump(base.get());
  json->pump(base.get());
  CHECK(nlohmann::json::parse(plain->line().value())["format"] == "line");
  CHECK(nlohmann::json::parse(colour->line().value())["format"] == "line");
  CHECK(nlohmann::json::parse(json->line().value())["format"] == "json");
  const auto denied = sampleEvent(443, observe::EventVerdict::Deny);
  server.publish(denied, nullptr);
  server.publish(sampleEvent(80, observe::EventVerdict::Allow), nullptr);
  plain->pump(base.get());
  colour->pump(base.get());
  json->pump(base.get());
  control::TextEvent text;
  REQUIRE(control::parseTextEventLine(plain->line().value(), text));
  CHECK(text.body == observe::formatLineBody(denied, false));
  CHECK(text.time == std::chrono::floor<std::chrono::microseconds>(denied.time));
  CHECK_FALSE(plain->line().has_value());  // port 80 does not match its filter
  REQUIRE(control::parseTextEventLine(colour->line().value(), text));
  CHECK(text.body == observe::formatLineBody(denied, true));
  REQUIRE(control::parseTextEventLine(colour->line().value(), text));
  CHECK(text.body.find("\x1b[32mALLOW") != std::string::npos);
  CHECK(nlohmann::json::parse(json->line().value()).contains("event"));
  CHECK(server.counters().watchEventsSent == 5);  // plain 1, colour 2, json 2
}

TEST_CASE("control server: a bad filter is refused with its position", "[control]") {
  EventBase base(event_base_new());
  common::SnapshotHolder<policy::Policy> policy(policy::Policy::empty());
  daemon_main::ControlServer server(base.get(), {}, policy, {}, nullptr);
  auto peer = connectPeer(server, base.get());
  peer->write("{\"op\":\"watch\",\"filter\":\"port 99999\"}\n");
  peer->pump(base.get());
  const auto answer = nlohmann::json::parse(peer->line().value());
  CHECK(answer["ok"] == false);
  CHECK(answer["filter_error"]["offset"] == 5);
  CHECK(server.counters().watchers == 0);
}

TEST_CASE("control server: a client that never reads loses events, others do not", "[control]") {
  EventBase base(event_base_new());
  common::SnapshotHolder<policy::Policy> policy(policy::Policy::empty());
  daemon_main::ControlServerOptions options;
  options.clientOutputLimit = 64 * 1024;
  daemon_main::ControlServer server(base.get(), options, policy, {}, nullptr);
  auto stuck = connectPeer(server, base.get());
  auto reader = connectPeer(server, base.get());
  stuck->write("{\"op\":\"watch\"}\n");
  reader->write("{\"op\":\"watch\"}\n");
  stuck->pump(base.get());
  reader->pump(base.get());
  REQUIRE(nlohmann::json::parse(stuck->line().value())["ok"] == true);
  REQUIRE(nlohmann::json::parse(reader->line().value())["ok"] == true);
  // The stuck client's socket buffer and then its 64 KiB fill up; publish()
  // never blocks (this test would hang otherwise).
  constexpr size_t kEvents = 20000;
  size_t received = 0;
  for (size_t i = 0; i < kEvents; ++i) {
    server.publish(sampleEvent(static_cast<uint16_t>(1 + i % 60000), observe::EventVerdict::Allow), nullptr);
    if (i % 100 == 0) {
      event_base_loop(base.get(), EVLOOP_NONBLOCK);
      reader->pump(base.get());
      while (auto line = reader->line()) received += nlohmann::json::parse(*line).contains("event") ? 1 : 0;
    }
  }
  reader->pump(base.get());
  while (auto line = reader->line()) received += nlohmann::json::parse(*line).contains("event") ? 1 : 0;
  const auto counters = server.counters();
  CHECK(received == kEvents);
  CHECK(counters.watchEventsDropped > 0);
  CHECK(counters.watchEventsSent + counters.watchEventsDropped == 2 * kEvents);

  // Once it reads again, it learns how many it lost.
  size_t stuckEvents = 0;
  uint64_t reported = 0;
  for (int round = 0; round < 200 && stuckEvents + reported < kEvents; ++round) {
    stuck->pump(base.get());
    while (auto line = stuck->line()) {
      const auto doc = nlohmann::json::parse(*line);
      if (doc.contains("event")) ++stuckEvents;
    }
    if (round == 100) {
      server.publish(sampleEvent(1, observe::EventVerdict::Allow), nullptr);
      stuck->pump(base.get());
      while (auto line = stuck->line()) {
        const auto doc = nlohmann::json::parse(*line);
        if (doc.contains("event")) ++stuckEvents;
        if (doc.contains("dropped")) reported += doc["dropped"].get<uint64_t>();
      }
    }
  }
  CHECK(reported == counters.watchEventsDropped);
  CHECK(stuckEvents + reported == kEvents + 1);
}

TEST_CASE("control server: the socket file, its mode and a second server", "[control]") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("egressd-control-test-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const std::string path = (dir / "run" / "control.sock").string();
  EventBase base(event_base_new());
  common::SnapshotHolder<policy::Policy> policy(policy::Policy::empty());
  daemon_main::ControlServerOptions options;
  options.path = path;
  {
    daemon_main::ControlServer first(base.get(), options, policy, {}, nullptr);
    std::string error;
    REQUIRE(first.start(error));
    struct stat info {};
    REQUIRE(::stat(path.c_str(), &info) == 0);
    CHECK(S_ISSOCK(info.st_mode));
    CHECK((info.st_mode & 0777) == 0600);
    REQUIRE(::stat((dir / "run").c_str(), &info) == 0);
    CHECK((info.st_mode & 0777) == 0755);

    daemon_main::ControlServer second(base.get(), options, policy, {}, nullptr);
    CHECK_FALSE(second.start(error));
    CHECK(error.find("already listening on " + path) != std::string::npos);
    CHECK(std::filesystem::exists(path));  // the second one did not take it away
  }
  CHECK_FALSE(std::filesystem::exists(path));  // removed on stop

  // A stale socket (nobody listens) is replaced.
  {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.data(), path.size());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
    ::close(fd);
    daemon_main::ControlServer server(base.get(), options, policy, {}, nullptr);
    std::string error;
    CHECK(server.start(error));
  }
  // Something else at the path is never removed.
  {
    std::FILE* file = std::fopen(path.c_str(), "w");
    REQUIRE(file != nullptr);
    std::fclose(file);
    daemon_main::ControlServer server(base.get(), options, policy, {}, nullptr);
    std::string error;
    CHECK_FALSE(server.start(error));
    CHECK(error.find("is not a socket") != std::string::npos);
    CHECK(std::filesystem::exists(path));
  }
  std::filesystem::remove_all(dir);
}

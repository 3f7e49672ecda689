// systemd's notification protocol (daemon/service_notify.h): the
// $NOTIFY_SOCKET and $WATCHDOG_USEC parsers, the STATUS= line from a real
// /readyz verdict, and datagrams sent to a real AF_UNIX socket.
#include "daemon/service_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <string>

using daemon_main::judgeReadiness;
using daemon_main::parseNotifySocket;
using daemon_main::parseWatchdog;
using daemon_main::ReadinessInputs;
using daemon_main::readinessStatus;
using daemon_main::ServiceNotifier;

namespace {

// A datagram socket bound to ADDRESS, closed at scope exit.
struct Receiver {
  int fd = -1;
  explicit Receiver(const sockaddr_un& address, socklen_t length) {
    fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&address), length) == 0);
  }
  ~Receiver() { ::close(fd); }
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;
  std::string receive() const {
    char buffer[4096];
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
    return n < 0 ? std::string("<nothing>") : std::string(buffer, static_cast<size_t>(n));
  }
};

std::string uniqueName(const char* what) {
  return "egressd-notify-test-" + std::string(what) + "-" + std::to_string(::getpid());
}

}  // namespace

TEST_CASE("NOTIFY_SOCKET: an absolute path keeps its NUL inside sun_path") {
  std::string error;
  const auto address = parseNotifySocket("/run/systemd/notify", error);
  REQUIRE(address);
  CHECK(address->address.sun_family == AF_UNIX);
  CHECK(std::string(address->address.sun_path) == "/run/systemd/notify");
  CHECK(address->length == offsetof(sockaddr_un, sun_path) + 20);
}

TEST_CASE("NOTIFY_SOCKET: @name is the abstract namespace, without a trailing NUL") {
  std::string error;
  const auto address = parseNotifySocket("@egressd/notify", error);
  REQUIRE(address);
  CHECK(address->address.sun_path[0] == '\0');
  CHECK(std::string(address->address.sun_path + 1, 14) == "egressd/notify");
  CHECK(address->length == offsetof(sockaddr_un, sun_path) + 15);
}

TEST_CASE("NOTIFY_SOCKET: relative, empty and too long values are refused, naming the value") {
  std::string error;
  CHECK_FALSE(parseNotifySocket("run/notify", error));
  CHECK(error.find("\"run/notify\" is neither an absolute path nor @name") != std::string::npos);
  CHECK_FALSE(parseNotifySocket("", error));
  const std::string fits = "/" + std::string(sizeof(sockaddr_un::sun_path) - 2, 'a');  // 107 bytes + NUL
  CHECK(parseNotifySocket(fits, error));
  CHECK_FALSE(parseNotifySocket(fits + "a", error));
  CHECK(error.find("longer than a Unix socket address") != std::string::npos);
  const std::string abstractFits = "@" + std::string(sizeof(sockaddr_un::sun_path) - 1, 'a');
  CHECK(parseNotifySocket(abstractFits, error));
  CHECK_FALSE(parseNotifySocket(abstractFits + "a", error));
  CHECK_FALSE(parseNotifySocket(std::string_view("/a\0b", 4), error));
}

TEST_CASE("WATCHDOG_USEC: a positive number, for this pid only when WATCHDOG_PID says so") {
  using std::chrono::microseconds;
  CHECK(parseWatchdog("30000000", nullptr, 42) == microseconds(30000000));
  CHECK(parseWatchdog("30000000", "", 42) == microseconds(30000000));
  CHECK(parseWatchdog("30000000", "42", 42) == microseconds(30000000));
  CHECK(parseWatchdog("30000000", "43", 42) == microseconds(0));
  CHECK(parseWatchdog("30000000", "4x", 42) == microseconds(0));
  CHECK(parseWatchdog(nullptr, nullptr, 42) == microseconds(0));
  CHECK(parseWatchdog("", nullptr, 42) == microseconds(0));
  CHECK(parseWatchdog("0", nullptr, 42) == microseconds(0));
  CHECK(parseWatchdog("-5", nullptr, 42) == microseconds(0));
  CHECK(parseWatchdog("10s", nullptr, 42) == microseconds(0));
  CHECK(parseWatchdog("99999999999999999999999", nullptr, 42) == microseconds(0));  // overflow
  CHECK(parseWatchdog("18446744073709551615", nullptr, 42) > microseconds(0));      // capped, not negative
}

TEST_CASE("STATUS= says ready and the checks, or what is missing, from /readyz's verdict") {
  ReadinessInputs in;
  in.policyLoaded = true;
  in.dnsEnabled = true;
  in.dnsListenersWanted = 1;
  in.dnsListenersOpen = 1;
  CHECK(readinessStatus(judgeReadiness(in)) == "ready: rules, dns");
  in.unreadableDirs = {"/var/lib/egressd/rules.d"};
  CHECK(readinessStatus(judgeReadiness(in)) ==
        "not ready: rules failed: rules directory not readable (nothing from it is allowed): "
        "/var/lib/egressd/rules.d");
  in.dnsListenersOpen = 0;
  const std::string both = readinessStatus(judgeReadiness(in));
  CHECK(both.starts_with("not ready: rules failed: "));
  CHECK(both.find("; dns failed: 0 of 1 listeners open") != std::string::npos);
}

TEST_CASE("ServiceNotifier: nothing without NOTIFY_SOCKET, an error for a bad one") {
  ::unsetenv("NOTIFY_SOCKET");
  std::string error = "stale";
  CHECK(ServiceNotifier::fromEnvironment(error) == nullptr);
  CHECK(error.empty());
  ::setenv("NOTIFY_SOCKET", "relative", 1);
  CHECK(ServiceNotifier::fromEnvironment(error) == nullptr);
  CHECK(error.find("relative") != std::string::npos);
  ::unsetenv("NOTIFY_SOCKET");
}

TEST_CASE("ServiceNotifier: datagrams reach a socket bound to the path, and to an abstract name") {
  const std::string path = (std::filesystem::temp_directory_path() / uniqueName("path")).string();
  std::string error;
  for (const std::string& name : {path, "@" + uniqueName("abstract")}) {
    const auto address = parseNotifySocket(name, error);
    REQUIRE(address);
    std::filesystem::remove(path);
    Receiver receiver(address->address, address->length);
    ::setenv("NOTIFY_SOCKET", name.c_str(), 1);
    ::setenv("WATCHDOG_USEC", "2000000", 1);
    ::unsetenv("WATCHDOG_PID");
    const auto notifier = ServiceNotifier::fromEnvironment(error);
    REQUIRE(notifier);
    CHECK(notifier->watchdog() == std::chrono::seconds(2));
    REQUIRE(notifier->send("READY=1\nSTATUS=ready: rules", error));
    CHECK(receiver.receive() == "READY=1\nSTATUS=ready: rules");
    REQUIRE(notifier->send("STOPPING=1", error));
    CHECK(receiver.receive() == "STOPPING=1");
  }
  std::filesystem::remove(path);
  // Nobody listening any more: the error names the variable.
  const auto notifier = ServiceNotifier::fromEnvironment(error);
  REQUIRE(notifier);
  CHECK_FALSE(notifier->send("WATCHDOG=1", error));
  CHECK(error.find("NOTIFY_SOCKET") != std::string::npos);
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");
}

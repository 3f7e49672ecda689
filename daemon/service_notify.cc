#include "daemon/service_notify.h"

#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/errno_text.h"

namespace daemon_main {

std::optional<NotifyAddress> parseNotifySocket(std::string_view value, std::string& error) {
  NotifyAddress out;
  out.address.sun_family = AF_UNIX;
  const bool abstract = !value.empty() && value.front() == '@';
  if (value.empty() || (!abstract && value.front() != '/')) {
    error = "NOTIFY_SOCKET=\"" + std::string(value) +
            "\" is neither an absolute path nor @name (an abstract socket): start egressd from systemd "
            "(Type=notify) or unset it";
    return std::nullopt;
  }
  if (value.find('\0') != std::string_view::npos) {
    error = "NOTIFY_SOCKET holds a NUL byte";
    return std::nullopt;
  }
  // A path needs its terminating NUL inside sun_path; an abstract name
  // starts with the NUL that replaces the '@' and has none at the end.
  if (value.size() + (abstract ? 0 : 1) > sizeof out.address.sun_path) {
    error = "NOTIFY_SOCKET=\"" + std::string(value) + "\" is longer than a Unix socket address (" +
            std::to_string(sizeof out.address.sun_path - 1) + " bytes)";
    return std::nullopt;
  }
  value.copy(out.address.sun_path, value.size());
  if (abstract) out.address.sun_path[0] = '\0';
  out.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + value.size() + (abstract ? 0 : 1));
  return out;
}

namespace {

// A positive decimal number, nothing else ("", "-1", "10x", overflow: no).
std::optional<unsigned long long> positiveNumber(const char* text) {
  if (text == nullptr || *text == '\0') return std::nullopt;
  const std::string_view view(text);
  unsigned long long value = 0;
  const auto [end, ec] = std::from_chars(view.data(), view.data() + view.size(), value);
  if (ec != std::errc() || end != view.data() + view.size() || value == 0) return std::nullopt;
  return value;
}

}  // namespace

std::chrono::microseconds parseWatchdog(const char* usec, const char* pid, pid_t self) {
  const auto interval = positiveNumber(usec);
  if (!interval) return std::chrono::microseconds(0);
  if (pid != nullptr && *pid != '\0') {
    const auto owner = positiveNumber(pid);
    if (!owner || *owner != static_cast<unsigned long long>(self)) return std::chrono::microseconds(0);
  }
  // Beyond a year is no watchdog anyone waits for; it also keeps the
  // conversion to a signed count in range.
  constexpr unsigned long long kYear = 366ULL * 24 * 3600 * 1000000;
  return std::chrono::microseconds(
      static_cast<std::chrono::microseconds::rep>(*interval < kYear ? *interval : kYear));
}

std::string readinessStatus(const Readiness& readiness) {
  // The body is one "[+]name ok" / "[-]name failed: why" line per check,
  // then the verdict line.
  std::string passed;
  std::string failed;
  std::string_view body = readiness.body;
  while (!body.empty()) {
    const size_t end = body.find('\n');
    const std::string_view line = body.substr(0, end);
    body = end == std::string_view::npos ? std::string_view() : body.substr(end + 1);
    if (line.starts_with("[+]")) {
      std::string_view name = line.substr(3);
      name = name.substr(0, name.find(' '));
      passed += (passed.empty() ? "" : ", ") + std::string(name);
    } else if (line.starts_with("[-]")) {
      failed += (failed.empty() ? "" : "; ") + std::string(line.substr(3));
    }
  }
  if (readiness.ready) return "ready: " + passed;
  return "not ready: " + (failed.empty() ? std::string("readyz check failed") : failed);
}

std::unique_ptr<ServiceNotifier> ServiceNotifier::fromEnvironment(std::string& error) {
  error.clear();
  const char* socketName = std::getenv("NOTIFY_SOCKET");  // NOLINT(concurrency-mt-unsafe): before any thread
  if (socketName == nullptr) return nullptr;
  const auto address = parseNotifySocket(socketName, error);
  if (!address) return nullptr;
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = "socket(AF_UNIX) for NOTIFY_SOCKET: " + common::errnoText(errno);
    return nullptr;
  }
  const auto watchdog = parseWatchdog(std::getenv("WATCHDOG_USEC"),  // NOLINT(concurrency-mt-unsafe)
                                      std::getenv("WATCHDOG_PID"),   // NOLINT(concurrency-mt-unsafe)
                                      ::getpid());
  return std::unique_ptr<ServiceNotifier>(new ServiceNotifier(fd, *address, watchdog));
}

bool ServiceNotifier::send(std::string_view message, std::string& error) const {
  const ssize_t sent = ::sendto(fd_.get(), message.data(), message.size(), MSG_NOSIGNAL,
                                reinterpret_cast<const sockaddr*>(&address_.address), address_.length);
  if (sent < 0) {
    error = "notifying systemd (NOTIFY_SOCKET): " + common::errnoText(errno);
    return false;
  }
  return true;
}

}  // namespace daemon_main

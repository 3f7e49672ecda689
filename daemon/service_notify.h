// systemd's service notification protocol (sd_notify(3)) for a
// Type=notify unit, without libsystemd: one datagram of "KEY=value" lines
// to the AF_UNIX socket named by $NOTIFY_SOCKET.
//
// egressd sends READY=1 once start-up is complete (rules compiled, every
// listener open; a component that cannot start makes egressd exit 1
// instead), STATUS= with the /readyz verdict whenever it changes, so that
// `systemctl status egressd` says whether it serves and what is missing,
// WATCHDOG=1 from its event loop while $WATCHDOG_USEC asks for it (the
// unit's WatchdogSec=, the counterpart of the DaemonSet's liveness probe on
// /healthz), and STOPPING=1 on SIGTERM. Without $NOTIFY_SOCKET nothing is
// sent.
//
// The parsers are pure; ServiceNotifier owns the datagram socket.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/unique_fd.h"
#include "daemon/health.h"

namespace daemon_main {

struct NotifyAddress {
  sockaddr_un address{};
  socklen_t length = 0;
};

// $NOTIFY_SOCKET: an absolute path, or "@name" for the abstract namespace.
// Anything else (relative, empty, too long for sun_path, a NUL inside) is
// an error naming the value.
std::optional<NotifyAddress> parseNotifySocket(std::string_view value, std::string& error);

// $WATCHDOG_USEC, for this process only when $WATCHDOG_PID names another
// one: the interval within which systemd wants WATCHDOG=1. Zero: no
// watchdog (unset, not a positive decimal number, or meant for another pid).
std::chrono::microseconds parseWatchdog(const char* usec, const char* pid, pid_t self);

// The one-line STATUS= text of a /readyz verdict: "ready: rules, dns" or
// "not ready: rules failed: rules directory not readable ...: /var/...".
std::string readinessStatus(const Readiness& readiness);

class ServiceNotifier {
 public:
  // From $NOTIFY_SOCKET and $WATCHDOG_USEC/$WATCHDOG_PID. nullptr with an
  // empty error when the variable is unset (not started by systemd);
  // nullptr with the error when it is set but unusable.
  static std::unique_ptr<ServiceNotifier> fromEnvironment(std::string& error);
  ServiceNotifier(const ServiceNotifier&) = delete;
  ServiceNotifier& operator=(const ServiceNotifier&) = delete;

  // Sends one notification ("READY=1\nSTATUS=..."); false with the error.
  bool send(std::string_view message, std::string& error) const;
  std::chrono::microseconds watchdog() const noexcept { return watchdog_; }

 private:
  ServiceNotifier(int fd, NotifyAddress address, std::chrono::microseconds watchdog) noexcept
      : fd_(fd), address_(address), watchdog_(watchdog) {}
  common::UniqueFd fd_;
  NotifyAddress address_;
  std::chrono::microseconds watchdog_;
};

}  // namespace daemon_main

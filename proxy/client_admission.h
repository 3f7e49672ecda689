// Who may talk to the proxy, decided at accept before a byte is read
// (docs/proxy.md "Who may use the proxy"): a client in proxy.clients, or a
// load balancer in proxy.proxy_protocol_from whose PROXY header
// (common/proxy_protocol.h) names a client in proxy.clients. Plus the
// log throttle that keeps a port scan from flooding the log with the
// refusals (each is still an event and a counter).
//
// Pure: no I/O; RefusalLog takes the time from its caller. Thread-safety:
// values; a RefusalLog belongs to one thread (the proxy's event loop).
#pragma once

#include <chrono>
#include <cstdint>
#include <span>

#include "common/ip_address.h"

namespace proxy {

// Whether `ip` (an IPv4-mapped IPv6 address as its IPv4 address: a
// dual-stack listener sees ::ffff:10.0.0.1) is in one of `networks`.
bool inNetworks(std::span<const common::IpNetwork> networks, const common::IpAddress& ip) noexcept;

// At most one log line per `interval`; the refusals in between are only
// counted, and the next line says how many there were.
class RefusalLog {
 public:
  using Clock = std::chrono::steady_clock;
  explicit RefusalLog(Clock::duration interval = std::chrono::seconds(1)) noexcept : interval_(interval) {}

  // One refusal at `now`: true when it gets a line, with `suppressed` set
  // to the refusals not logged since the previous line.
  bool shouldLog(Clock::time_point now, uint64_t& suppressed) noexcept;

 private:
  Clock::duration interval_;
  Clock::time_point last_{};
  bool logged_ = false;
  uint64_t suppressed_ = 0;
};

}  // namespace proxy

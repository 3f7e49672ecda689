// "ip:port" endpoints as written in egressd.toml: "127.0.0.1:5353",
// "[::1]:53". An optional default port allows plain "192.0.2.53".
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/ip_address.h"

namespace common {

struct SocketAddress {
  IpAddress ip;
  uint16_t port = 0;

  std::string toString() const;
  // Fills a sockaddr_in/sockaddr_in6; returns its length.
  socklen_t toSockaddr(sockaddr_storage& out) const noexcept;
  static std::optional<SocketAddress> fromSockaddr(const sockaddr* addr) noexcept;
  friend bool operator==(const SocketAddress&, const SocketAddress&) = default;
};

std::optional<SocketAddress> parseSocketAddress(std::string_view text,
                                                std::optional<uint16_t> defaultPort = std::nullopt) noexcept;

}  // namespace common

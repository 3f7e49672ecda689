#include "common/socket_address.h"

#include <cstring>

#include "common/strings.h"

namespace common {

std::string SocketAddress::toString() const {
  if (ip.family == IpFamily::V6) return "[" + ip.toString() + "]:" + std::to_string(port);
  return ip.toString() + ":" + std::to_string(port);
}

socklen_t SocketAddress::toSockaddr(sockaddr_storage& out) const noexcept {
  std::memset(&out, 0, sizeof out);
  if (ip.family == IpFamily::V4) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&out);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    std::memcpy(&sin->sin_addr, ip.bytes.data(), 4);
    return sizeof(sockaddr_in);
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&out);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(port);
  std::memcpy(&sin6->sin6_addr, ip.bytes.data(), 16);
  return sizeof(sockaddr_in6);
}

std::optional<SocketAddress> SocketAddress::fromSockaddr(const sockaddr* addr) noexcept {
  if (addr == nullptr) return std::nullopt;
  if (addr->sa_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(addr);
    return SocketAddress{IpAddress::v4Bytes(reinterpret_cast<const uint8_t*>(&sin->sin_addr)),
                         ntohs(sin->sin_port)};
  }
  if (addr->sa_family == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(addr);
    return SocketAddress{IpAddress::v6Bytes(reinterpret_cast<const uint8_t*>(&sin6->sin6_addr)),
                         ntohs(sin6->sin6_port)};
  }
  return std::nullopt;
}

std::optional<SocketAddress> parseSocketAddress(std::string_view text,
                                                std::optional<uint16_t> defaultPort) noexcept {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      port = rest.substr(1);
      if (port.empty()) return std::nullopt;
    }
    if (host.find(':') == std::string_view::npos) return std::nullopt;  // brackets are for IPv6
  } else {
    const size_t colon = text.rfind(':');
    if (colon != std::string_view::npos) {
      if (text.find(':') != colon) return std::nullopt;  // bare IPv6 needs brackets
      host = text.substr(0, colon);
      port = text.substr(colon + 1);
      if (port.empty()) return std::nullopt;
    } else {
      host = text;
    }
  }
  auto ip = parseIpAddress(host);
  if (!ip) return std::nullopt;
  if (port.empty()) {
    if (!defaultPort) return std::nullopt;
    return SocketAddress{*ip, *defaultPort};
  }
  auto number = parseDecimal(port, 65535);
  if (!number) return std::nullopt;
  return SocketAddress{*ip, static_cast<uint16_t>(*number)};
}

}  // namespace common

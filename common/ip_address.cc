#include "common/ip_address.h"

#include <arpa/inet.h>

#include <cstring>

#include "common/strings.h"

namespace common {

IpAddress IpAddress::v4(uint32_t hostOrder) noexcept {
  IpAddress ip;
  ip.family = IpFamily::V4;
  ip.bytes[0] = static_cast<uint8_t>(hostOrder >> 24);
  ip.bytes[1] = static_cast<uint8_t>(hostOrder >> 16);
  ip.bytes[2] = static_cast<uint8_t>(hostOrder >> 8);
  ip.bytes[3] = static_cast<uint8_t>(hostOrder);
  return ip;
}

IpAddress IpAddress::v4Bytes(const uint8_t* networkOrder) noexcept {
  IpAddress ip;
  ip.family = IpFamily::V4;
  std::memcpy(ip.bytes.data(), networkOrder, 4);
  return ip;
}

IpAddress IpAddress::v6Bytes(const uint8_t* networkOrder) noexcept {
  IpAddress ip;
  ip.family = IpFamily::V6;
  std::memcpy(ip.bytes.data(), networkOrder, 16);
  return ip;
}

IpAddress IpAddress::unmapped() const noexcept {
  static constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (family == IpFamily::V6 && std::memcmp(bytes.data(), kMappedPrefix, 12) == 0) {
    return v4Bytes(bytes.data() + 12);
  }
  return *this;
}

std::string IpAddress::toString() const {
  if (family == IpFamily::V4) {
    // What inet_ntop writes ("%u.%u.%u.%u"), without its sprintf: two
    // addresses go into every verdict line.
    char buffer[16];
    size_t n = 0;
    for (size_t i = 0; i < 4; ++i) {
      const unsigned byte = bytes[i];
      if (i > 0) buffer[n++] = '.';
      if (byte >= 100) buffer[n++] = static_cast<char>('0' + byte / 100);
      if (byte >= 10) buffer[n++] = static_cast<char>('0' + byte / 10 % 10);
      buffer[n++] = static_cast<char>('0' + byte % 10);
    }
    return std::string(buffer, n);
  }
  char buffer[INET6_ADDRSTRLEN] = {};
  inet_ntop(AF_INET6, bytes.data(), buffer, sizeof buffer);
  return buffer;
}

std::optional<IpAddress> parseIpAddress(std::string_view text) noexcept {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buffer[INET6_ADDRSTRLEN] = {};
  std::memcpy(buffer, text.data(), text.size());
  IpAddress ip;
  if (text.find(':') == std::string_view::npos) {
    // inet_pton(AF_INET) already refuses octal/hex and short forms; refuse
    // leading zeros too ("010.0.0.1" means 8.0.0.1 to some tools).
    size_t start = 0;
    for (size_t i = 0; i <= text.size(); ++i) {
      if (i == text.size() || text[i] == '.') {
        if (!parseDecimal(text.substr(start, i - start), 255)) return std::nullopt;
        start = i + 1;
      }
    }
    ip.family = IpFamily::V4;
    if (inet_pton(AF_INET, buffer, ip.bytes.data()) != 1) return std::nullopt;
    return ip;
  }
  ip.family = IpFamily::V6;
  if (inet_pton(AF_INET6, buffer, ip.bytes.data()) != 1) return std::nullopt;
  return ip;
}

bool IpNetwork::contains(const IpAddress& ip) const noexcept {
  if (ip.family != address.family) return false;
  const unsigned full = prefixLength / 8;
  if (std::memcmp(ip.bytes.data(), address.bytes.data(), full) != 0) return false;
  const unsigned rest = prefixLength % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (ip.bytes[full] & mask) == (address.bytes[full] & mask);
}

std::string IpNetwork::toString() const {
  return address.toString() + "/" + std::to_string(prefixLength);
}

NetworkParse parseIpNetwork(std::string_view text) noexcept {
  NetworkParse result;
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    result.error = NetworkParseError::BadPrefix;
    return result;
  }
  auto ip = parseIpAddress(text.substr(0, slash));
  if (!ip) {
    result.error = NetworkParseError::BadAddress;
    return result;
  }
  auto prefix = parseDecimal(text.substr(slash + 1), ip->bitLength());
  if (!prefix) {
    result.error = NetworkParseError::BadPrefix;
    return result;
  }
  for (unsigned bit = *prefix; bit < ip->bitLength(); ++bit) {
    if (ip->bit(bit)) {
      result.error = NetworkParseError::HostBitsSet;
      return result;
    }
  }
  result.network = IpNetwork{*ip, static_cast<uint8_t>(*prefix)};
  return result;
}

}  // namespace common

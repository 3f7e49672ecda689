// IPv4/IPv6 addresses and networks as plain values (no allocation), with
// strict text parsing: dotted quads without leading zeros, RFC 4291 IPv6
// text forms (via inet_pton), no zone identifiers.
//
// Thread-safety: values; all functions are pure.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace common {

enum class IpFamily : uint8_t { V4, V6 };

struct IpAddress {
  IpFamily family = IpFamily::V4;
  // V4 uses bytes[0..3]; V6 all 16. Network byte order.
  std::array<uint8_t, 16> bytes{};

  static IpAddress v4(uint32_t hostOrder) noexcept;
  static IpAddress v4Bytes(const uint8_t* networkOrder) noexcept;
  static IpAddress v6Bytes(const uint8_t* networkOrder) noexcept;

  size_t byteLength() const noexcept { return family == IpFamily::V4 ? 4 : 16; }
  unsigned bitLength() const noexcept { return family == IpFamily::V4 ? 32 : 128; }
  bool bit(unsigned index) const noexcept { return (bytes[index / 8] >> (7 - index % 8)) & 1U; }
  // ::ffff:a.b.c.d → a.b.c.d; anything else unchanged.
  IpAddress unmapped() const noexcept;

  std::string toString() const;
  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

// Parses "203.0.113.7" or "2001:db8::1" (no brackets).
std::optional<IpAddress> parseIpAddress(std::string_view text) noexcept;

struct IpNetwork {
  IpAddress address;  // host bits are zero
  uint8_t prefixLength = 0;

  bool contains(const IpAddress& ip) const noexcept;
  std::string toString() const;
  friend bool operator==(const IpNetwork&, const IpNetwork&) = default;
};

enum class NetworkParseError : uint8_t { BadAddress, BadPrefix, HostBitsSet };

struct NetworkParse {
  std::optional<IpNetwork> network;
  NetworkParseError error = NetworkParseError::BadAddress;
};

// Parses "203.0.113.0/24" or "2001:db8::/32" (no brackets). Host bits must be
// zero: "203.0.113.7/24" is refused rather than silently widened.
NetworkParse parseIpNetwork(std::string_view text) noexcept;

}  // namespace common

// Host name checks shared by the TLS (SNI) and HTTP (Host) parsers.
// Internal to sni/; pure, constexpr-friendly, no allocation.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sni::detail {

enum class NameKind { Bad, HostName, IpLiteral };

constexpr bool isHexDigit(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// A DNS host name as it appears in SNI (RFC 6066 §3) and Host (RFC 9110
// §7.2 reg-name, restricted): letters, digits, '-', '_' (seen in real
// names) and '.', labels of 1..63 bytes, at most 253 bytes after one
// trailing dot is removed (docs/rules.md ignores a trailing dot; `name` is
// shortened in place). Percent-encoding and the other RFC 3986 sub-delims
// are refused: no resolver or policy name contains them, and decoding them
// differently from the server would be a bypass.
// A name of only digits and dots is an IPv4 literal (also the "1.2.3"
// inet_aton forms), one with ':' an IPv6 literal (hex, ':' and '.').
// Character classes for classifyHostName: one table load per byte instead
// of a chain of range tests (this loop is ~15% of a ClientHello parse).
enum CharClass : uint8_t { kBad = 0, kDigit, kNameChar, kDot, kColon };

constexpr std::array<uint8_t, 256> kCharClass = [] {
  std::array<uint8_t, 256> table{};
  for (int c = '0'; c <= '9'; ++c) table[static_cast<size_t>(c)] = kDigit;
  for (int c = 'a'; c <= 'z'; ++c) table[static_cast<size_t>(c)] = kNameChar;
  for (int c = 'A'; c <= 'Z'; ++c) table[static_cast<size_t>(c)] = kNameChar;
  table['-'] = kNameChar;
  table['_'] = kNameChar;
  table['.'] = kDot;
  table[':'] = kColon;
  return table;
}();

constexpr NameKind classifyHostName(std::string_view& name) noexcept {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 253) return NameKind::Bad;
  bool onlyDigitsAndDots = true;
  bool hasColon = false;
  size_t labelLength = 0;
  for (char c : name) {
    const uint8_t cls = kCharClass[static_cast<uint8_t>(c)];
    if (cls == kDot) {
      if (labelLength == 0) return NameKind::Bad;
      labelLength = 0;
      continue;
    }
    if (cls == kBad || ++labelLength > 63) return NameKind::Bad;
    hasColon |= cls == kColon;
    onlyDigitsAndDots &= cls == kDigit;
  }
  if (labelLength == 0) return NameKind::Bad;  // "a..": empty last label
  if (hasColon) {
    if (name.size() > 45) return NameKind::Bad;
    for (char c : name) {
      if (!isHexDigit(c) && c != ':' && c != '.') return NameKind::Bad;
    }
    return NameKind::IpLiteral;
  }
  return onlyDigitsAndDots ? NameKind::IpLiteral : NameKind::HostName;
}

}  // namespace sni::detail

// One EgressRuleSet target, "HOST:PORT", parsed and validated exactly per
// docs/rules.md. Pure: the public suffix list is passed in.
//
// Thread-safety: pure functions over values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/ip_address.h"
#include "policy/public_suffix.h"

namespace policy {

enum class TargetKind : uint8_t {
  ExactName,     // api.example.com:443
  WildcardName,  // *.example.org:80 (one or more labels in front of the suffix)
  AnyName,       // *:80 (world access on that port)
  Address,       // 203.0.113.7:443, [2001:db8::1]:443
  Network,       // 203.0.113.0/24:443, [2001:db8::/32]:443
};

struct Target {
  TargetKind kind = TargetKind::ExactName;
  // ExactName: the normalised name; WildcardName: the suffix after "*.";
  // AnyName/Address/Network: empty.
  std::string name;
  // Address: a /32 or /128; Network: the network. Otherwise unused.
  common::IpNetwork network;
  uint16_t port = 0;

  // Canonical text: lower case, no trailing dot, IPv6 in brackets.
  std::string canonical() const;
  friend bool operator==(const Target&, const Target&) = default;
};

// Why a target is refused. Every value has a human sentence (describe()).
enum class TargetError : uint8_t {
  Empty,
  Whitespace,
  MissingPort,
  PortWildcard,
  PortNotNumber,
  PortOutOfRange,
  EmptyHost,
  WildcardPlacement,
  PublicSuffixWildcard,
  EmptyLabel,
  LabelTooLong,
  NameTooLong,
  BadCharacter,
  NonAsciiName,
  HyphenPlacement,
  NumericTopLabel,
  BadIpv4,
  BadIpv6,
  Ipv6NeedsBrackets,
  BadPrefix,
  HostBitsSet,
  UnclosedBracket,
  BadALabel,
};

std::string_view describe(TargetError error) noexcept;

struct TargetParse {
  std::optional<Target> target;
  TargetError error = TargetError::Empty;
  std::string detail;  // extra context for the message, e.g. the bad label

  // "reason" text: describe(error) plus detail, for messages.
  std::string reason() const;
};

TargetParse parseTarget(std::string_view text, const PublicSuffixList& suffixes);

// An internationalised name (U-labels, UTF-8) as A-labels ("bücher.example"
// → "xn--bcher-kva.example"), IDNA2008 with the UTS #46 mapping; nullopt
// when it is not a valid name. Allocates; for messages and explain.
std::optional<std::string> toALabel(std::string_view name);

// Normalises a DNS name as seen on the wire or in SNI/Host for lookups:
// lower case, trailing dot removed. Writes into `out` (at least 254 bytes);
// returns the length, or 0 when the name cannot be a valid host name.
// Allocation-free, for the packet and query paths.
size_t normalizeLookupName(std::string_view name, char* out, size_t outSize) noexcept;
inline constexpr size_t kMaxNameLength = 253;

}  // namespace policy

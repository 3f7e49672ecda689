// Post-processing of an upstream answer for an allowed name, as pure
// functions over the wire bytes (allocation-free):
//   - analyzeAnswer: does it answer our question; the CNAME chain from the
//     asked name; the A/AAAA addresses (for the binding table and the
//     rebinding check); how long it may be cached;
//   - findRebinding: an internal address (policy/internal_ranges.h, the
//     list world access does not cover) that no IP/CIDR rule names (DNS
//     rebinding, cloud metadata);
//   - stripEch: removes the `ech` SvcParam (RFC 9460 section 14.3.1, key 5)
//     from HTTPS/SVCB answers so clients send a readable SNI.
//
// Thread-safety: pure functions.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "common/ip_address.h"
#include "dns/wire.h"
#include "policy/policy.h"

namespace dns {

inline constexpr size_t kMaxAnswerAddresses = 64;
inline constexpr size_t kMaxChainLength = 16;
// Cached answers live at most this long whatever the TTL says.
inline constexpr uint32_t kMaxCacheTtl = 86400;
// SvcParamKey "ech" (RFC 9460 section 14.3.2).
inline constexpr uint16_t kSvcParamEch = 5;

struct AnswerAddress {
  common::IpAddress ip;
  uint32_t ttl = 0;      // min over the record and the CNAMEs that led to it
  bool inChain = false;  // owner is the asked name or on its CNAME chain
};

enum class AnswerStatus : uint8_t {
  Ok,
  Malformed,         // not parseable
  NotAResponse,      // QR clear
  IdMismatch,        // another query's answer (or spoofed)
  QuestionMismatch,  // QDCOUNT != 1, or another name/type/class
};

std::string_view answerStatusName(AnswerStatus status) noexcept;

struct AnswerInfo {
  uint8_t rcode = 0;
  bool truncated = false;
  std::array<AnswerAddress, kMaxAnswerAddresses> addresses{};
  size_t addressCount = 0;
  bool addressOverflow = false;  // more A/AAAA records than kMaxAnswerAddresses
  size_t chainLength = 1;        // names on the chain, the asked name included
  bool chainTooLong = false;
  // Seconds this answer may be cached: positive answers the least TTL of
  // the answer section, negative ones min(SOA TTL, SOA MINIMUM) (RFC 2308
  // section 5); 0 = not cacheable (SERVFAIL, truncated, no SOA...).
  uint32_t cacheTtl = 0;
  bool hasEch = false;

  std::span<const AnswerAddress> addressList() const noexcept { return {addresses.data(), addressCount}; }
};

AnswerStatus analyzeAnswer(std::span<const uint8_t> answer, const Query& query, uint16_t expectedId,
                           AnswerInfo& out) noexcept;

// The first address of the answer that is internal (Policy::isInternal)
// and not named by any IP/CIDR rule, or nullptr.
const AnswerAddress* findRebinding(const AnswerInfo& info, const policy::Policy& policy) noexcept;

// Copies `in` to `out` without the ech SvcParam of any HTTPS/SVCB record.
// Names are written uncompressed (removing bytes would shift what pointers
// point at). Returns the new length, or 0 when nothing was removed, the
// message holds a record type whose rdata may hold compressed names we do
// not rewrite, or `out` is too small: the caller then keeps the original.
size_t stripEch(std::span<const uint8_t> in, std::span<uint8_t> out) noexcept;

}  // namespace dns

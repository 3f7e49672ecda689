// Responses egressd writes itself (deny, refuse, FORMERR, SERVFAIL,
// truncated), built by copying the client's header and question and
// patching bytes: no ldns, no allocation. The caller owns `out`; every
// builder returns the length written, or 0 when `out` is too small.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "dns/wire.h"

namespace dns {

// RFC 8914 section 4.16: "Blocked".
inline constexpr uint16_t kEdeBlocked = 15;
// RFC 8914 section 4.23 and 4.24: every upstream timed out; an upstream
// could not be reached at all (refused, unreachable, broken answer).
inline constexpr uint16_t kEdeNoReachableAuthority = 22;
inline constexpr uint16_t kEdeNetworkError = 23;
inline constexpr uint16_t kEdeOptionCode = 15;
inline constexpr uint16_t kEdnsOptionCodeNone = 0;
// RFC 6891 section 6.2.5; what we advertise in our own OPT records.
inline constexpr uint16_t kOurUdpSize = 1232;

struct ExtendedError {
  uint16_t infoCode = kEdeBlocked;
  std::string_view text;
};

// The client's header and question with QR and RA set, the given rcode and
// no records except, when the client sent EDNS (RFC 6891 section 7: never
// otherwise), an OPT carrying `ede` if given. Extended rcodes (>= 16) go
// into the OPT (RFC 6891 section 6.1.3). `query` must have parsed Ok.
size_t buildResponse(std::span<const uint8_t> queryWire, const Query& query, uint16_t rcode,
                     const ExtendedError* ede, std::span<uint8_t> out) noexcept;

// FORMERR for a query whose question could not be parsed: the header only.
size_t buildHeaderOnlyResponse(std::span<const uint8_t> queryWire, uint8_t rcode,
                               std::span<uint8_t> out) noexcept;

// An empty answer with TC set (RFC 1035 section 4.2.1; RFC 7766 section 5):
// the client retries over TCP. `answerFlags` are the upstream answer's flags
// (rcode, AA, AD kept).
size_t buildTruncatedResponse(std::span<const uint8_t> queryWire, const Query& query, uint16_t answerFlags,
                              std::span<uint8_t> out) noexcept;

}  // namespace dns

// One observable decision: a connection verdict from an NFQUEUE worker or a
// DNS answer/refusal. The record every consumer shares — the decision log,
// the control socket's `watch` stream, `egressctl` (after decoding JSON),
// the watch filter and the pcap writer.
//
// A plain, trivially copyable value with fixed-size text fields, so that a
// worker thread can copy it into a preallocated ring without allocating.
// Text views (reason, outcome) point to static strings.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string_view>

#include "common/ip_address.h"

namespace observe {

// Proxy: a request to egressd's explicit proxy (proxy/server.h); src = the
// client, dst = the address connected to (unspecified when refused before).
enum class EventKind : uint8_t { Verdict, Dns, Proxy };

// What the filter's `verdict allow|deny|audit` sees. Audit: a flow that
// would have been denied and was let through (mode = "audit").
enum class EventVerdict : uint8_t { Allow, Deny, Audit };

inline constexpr size_t kMaxEventName = 253;
inline constexpr size_t kMaxEventRuleSets = 256;
// Bytes of the deciding packet kept for `egressctl watch -w` (IP header
// first). Longer packets are truncated; their original length is kept.
inline constexpr size_t kMaxEventPacket = 2048;

struct Event {
  EventKind kind = EventKind::Verdict;
  std::chrono::system_clock::time_point time;
  // Verdict: the flow's endpoints. Dns: src = the client, dst = the
  // listener (egressd), protocol 17 or 6.
  common::IpAddress src;
  common::IpAddress dst;
  uint16_t srcPort = 0;
  uint16_t dstPort = 0;
  uint8_t protocol = 0;  // IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, ...
  EventVerdict verdict = EventVerdict::Deny;
  // Verdict events: nfq::reasonName(); Dns events: dns::denyReasonName()
  // or "" when allowed. Static storage.
  std::string_view reason;
  // Where the name came from: "sni", "host", "quic", "binding", "dns",
  // "connect" / "request" (proxy: CONNECT, absolute-form) or "".
  std::string_view nameSource;
  // How the rule matched: policy::matchKindName() or "".
  std::string_view match;
  uint8_t nameLength = 0;
  std::array<char, kMaxEventName> name{};  // lower case, no trailing dot
  uint16_t ruleSetsLength = 0;
  std::array<char, kMaxEventRuleSets> ruleSets{};  // "ns/name,ns/name", "..." if cut
  uint16_t queue = 0;                              // Verdict: the NFQUEUE number

  // Dns only.
  std::string_view dnsOutcome;  // dns::dnsOutcomeName(): allowed, cache_hit, denied, ...
  uint16_t qtype = 0;
  uint16_t rcode = 0;
  uint16_t answers = 0;

  std::string_view nameView() const noexcept { return {name.data(), nameLength}; }
  std::string_view ruleSetsView() const noexcept { return {ruleSets.data(), ruleSetsLength}; }
};

// The deciding packet of a verdict event, kept apart from Event (which the
// log ring holds by the thousand) and copied only while a `watch -w` client
// asks for packets.
struct CapturedPacket {
  uint16_t length = 0;          // bytes kept in `bytes`
  uint16_t originalLength = 0;  // the packet's length on the wire
  std::array<uint8_t, kMaxEventPacket> bytes{};
};

}  // namespace observe

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
#include <cstring>
#include <span>
#include <string_view>
#include <type_traits>

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
// Answer addresses a DNS event keeps (the first of its answer).
inline constexpr size_t kMaxEventAddresses = 8;
// Bytes of the deciding packet kept for `egressctl watch -w` (IP header
// first). Longer packets are truncated; their original length is kept.
inline constexpr size_t kMaxEventPacket = 2048;

// Kubernetes' own limits, so that no valid object is ever cut: a namespace
// is a DNS label (63 bytes), a pod and a service account a DNS subdomain
// (253); a workload is "Kind/name" and the longest kind is "StatefulSet".
inline constexpr size_t kMaxEventNamespace = 63;
inline constexpr size_t kMaxEventPod = 253;
inline constexpr size_t kMaxEventWorkload = 12 + 253;
inline constexpr size_t kMaxEventServiceAccount = 253;

// The pod behind an event's source address (attribution; docs/attribution.md):
// its namespace, name, workload ("Deployment/web", "StatefulSet/db",
// "DaemonSet/agent", "Job/x", "CronJob/y", a bare "Pod/name", or "") and
// service account. All empty when the address belongs to no known pod.
// Fixed size and trivially copyable: a worker copies it whole from the
// attribution snapshot into the event.
struct PodIdentity {
  uint8_t namespaceLength = 0;
  uint8_t podLength = 0;
  uint16_t workloadLength = 0;
  uint8_t serviceAccountLength = 0;
  // Not zeroed: only the first *Length bytes are ever read, and clearing
  // 834 bytes would be most of what building a DNS event costs.
  std::array<char, kMaxEventNamespace> namespaceName;
  std::array<char, kMaxEventPod> pod;
  std::array<char, kMaxEventWorkload> workload;
  std::array<char, kMaxEventServiceAccount> serviceAccount;

  std::string_view namespaceView() const noexcept { return {namespaceName.data(), namespaceLength}; }
  std::string_view podView() const noexcept { return {pod.data(), podLength}; }
  std::string_view workloadView() const noexcept { return {workload.data(), workloadLength}; }
  std::string_view serviceAccountView() const noexcept {
    return {serviceAccount.data(), serviceAccountLength};
  }
  bool known() const noexcept { return namespaceLength > 0 || podLength > 0; }

  // Copies the four texts, each cut to its bound. False when one was cut.
  bool assign(std::string_view ns, std::string_view podName, std::string_view workloadName,
              std::string_view account) noexcept {
    const bool fits = ns.size() <= namespaceName.size() && podName.size() <= pod.size() &&
                      workloadName.size() <= workload.size() && account.size() <= serviceAccount.size();
    namespaceLength = static_cast<uint8_t>(copyCut(ns, namespaceName));
    podLength = static_cast<uint8_t>(copyCut(podName, pod));
    workloadLength = static_cast<uint16_t>(copyCut(workloadName, workload));
    serviceAccountLength = static_cast<uint8_t>(copyCut(account, serviceAccount));
    return fits;
  }

 private:
  template <size_t N>
  static size_t copyCut(std::string_view text, std::array<char, N>& out) noexcept {
    const size_t n = text.size() < N ? text.size() : N;
    if (n > 0) std::memcpy(out.data(), text.data(), n);
    return n;
  }
};

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
  // The addresses the answer gave for the asked name (A/AAAA records on
  // its CNAME chain), the first kMaxEventAddresses: what lets `egressctl
  // suggest` name a later connection to one of them that carried no name.
  uint8_t addressCount = 0;
  std::array<common::IpAddress, kMaxEventAddresses> addresses{};

  // The client's pod when attribution knows its source address (verdict
  // events: src; DNS events: the client). Empty otherwise.
  PodIdentity client;

  std::string_view nameView() const noexcept { return {name.data(), nameLength}; }
  std::string_view ruleSetsView() const noexcept { return {ruleSets.data(), ruleSetsLength}; }
  std::string_view namespaceView() const noexcept { return client.namespaceView(); }
  std::string_view podView() const noexcept { return client.podView(); }
  std::string_view workloadView() const noexcept { return client.workloadView(); }
  std::string_view serviceAccountView() const noexcept { return client.serviceAccountView(); }
  std::span<const common::IpAddress> addressesView() const noexcept {
    return {addresses.data(), addressCount};
  }
};

static_assert(std::is_trivially_copyable_v<PodIdentity>);
static_assert(std::is_trivially_copyable_v<Event>);

// The deciding packet of a verdict event, kept apart from Event (which the
// log ring holds by the thousand) and copied only while a `watch -w` client
// asks for packets.
struct CapturedPacket {
  uint16_t length = 0;          // bytes kept in `bytes`
  uint16_t originalLength = 0;  // the packet's length on the wire
  std::array<uint8_t, kMaxEventPacket> bytes{};
};

}  // namespace observe

// The verdict for a packet of a not yet decided outbound flow
// (docs/architecture.md "The verdict for a new outbound flow", docs/nfq.md):
// decide() is pure — policy, DNS bindings, options and time are passed in —
// so it is table-tested without sockets or a kernel.
//
// Thread-safety: pure; the Policy and BindingLookup must be safe for
// concurrent reads (they are). Nothing here allocates or throws.
// Lifetimes: a Decision holds a copy of the name; Decision::ruleSets points
// into the Policy snapshot (keep the snapshot while using it).
#pragma once

#include <array>
#include <bitset>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "common/ip_address.h"
#include "nfq/first_payload.h"
#include "nfq/packet.h"
#include "policy/policy.h"
#include "policy/target.h"

namespace nfq {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

// What egressd's DNS handed out (dns::BindingTable, adapted by the daemon).
// nfq does not depend on dns/.
class BindingLookup {
 public:
  // Receives bound names one by one; returns true to stop.
  class Visitor {
   public:
    virtual bool visit(std::string_view name) noexcept = 0;

   protected:
    ~Visitor() = default;
  };

  virtual ~BindingLookup() = default;
  // True when egressd's DNS answered `name` (any case, optional trailing
  // dot) with `ip` and that answer has not expired (TTL + grace) at `now`.
  virtual bool isBound(std::string_view name, const common::IpAddress& ip, TimePoint now) const noexcept = 0;
  // Visits the unexpired names bound to `ip` (the view is valid during the
  // call only).
  virtual void forEachBoundName(const common::IpAddress& ip, TimePoint now,
                                Visitor& visitor) const noexcept = 0;
};

// No bindings at all (DNS off, or tests).
class NoBindings final : public BindingLookup {
 public:
  bool isBound(std::string_view, const common::IpAddress&, TimePoint) const noexcept override {
    return false;
  }
  void forEachBoundName(const common::IpAddress&, TimePoint, Visitor&) const noexcept override {}
};

#define EGRESSD_NFQ_VERDICTS(X) \
  X(Allow, "allow")             \
  X(Deny, "deny")               \
  X(Pass, "pass")               \
  X(Hold, "hold")               \
  X(AuditAllow, "audit-allow")

// Allow: accept and mark the connection (final). Deny: drop, mark, reset
// (final). Pass: accept this packet but decide later (no mark). Hold: keep
// the packet queued until more bytes arrive. AuditAllow: a final deny in
// audit mode — accept and mark as allowed, recorded as "would deny".
enum class Verdict : uint8_t {
#define EGRESSD_NFQ_ENUM(name, text) name,
  EGRESSD_NFQ_VERDICTS(EGRESSD_NFQ_ENUM)
#undef EGRESSD_NFQ_ENUM
      Count
};

#define EGRESSD_NFQ_REASONS(X)                                                   \
  X(PortNotInPolicy, "port_not_in_policy")    /* no rule uses the port */        \
  X(AddressRule, "address_rule")              /* IP/CIDR target */               \
  X(WorldAccess, "world_access")              /* *:port */                       \
  X(InternalAddress, "internal_address")      /* *:port, but not public */       \
  X(BoundAddress, "bound_address")            /* DNS-bound to an allowed name */ \
  X(AwaitPayload, "await_payload")            /* name rules: read the name */    \
  X(NoPayloadYet, "no_payload_yet")           /* handshake ACK, FIN, RST */      \
  X(NoNameRuleOnPort, "no_name_rule_on_port") /* only other IPs allowed */       \
  X(NeedMoreBytes, "need_more_bytes")         /* ClientHello incomplete */       \
  X(SniAllowed, "sni_allowed")                                                   \
  X(SniNotAllowed, "sni_not_allowed")                                            \
  X(SniNotBound, "sni_not_bound")                                                \
  X(HostAllowed, "host_allowed")                                                 \
  X(HostNotAllowed, "host_not_allowed")                                          \
  X(HostNotBound, "host_not_bound")                                              \
  X(QuicAllowed, "quic_allowed")                                                 \
  X(QuicNotAllowed, "quic_not_allowed")                                          \
  X(QuicNotBound, "quic_not_bound")                                              \
  X(NoNameNoBinding, "no_name_no_binding") /* not TLS/HTTP, IP not bound */      \
  X(MalformedHello, "malformed_hello")     /* broken TLS or QUIC */              \
  X(MalformedRequest, "malformed_request") /* broken HTTP request */             \
  X(HoldLimit, "hold_limit")               /* too many bytes held */             \
  X(HoldTimeout, "hold_timeout")           /* held too long */                   \
  X(UdpNotAllowed, "udp_not_allowed")      /* UDP other than QUIC */             \
  X(IcmpDenied, "icmp_denied")                                                   \
  X(ProtocolNotAllowed, "protocol_not_allowed") /* not TCP/UDP/ICMP */           \
  X(MalformedPacket, "malformed_packet")        /* DecodeError */                \
  X(StreamStartUnknown, "stream_start_unknown") /* no SYN-ACK seen */            \
  X(NotStreamStart, "not_stream_start")         /* judged bytes not first */     \
  X(JudgedBytesDiffer, "judged_bytes_differ")   /* insertion attempt */          \
  X(Unconfirmed, "unconfirmed")                 /* server never acked them */

enum class Reason : uint8_t {
#define EGRESSD_NFQ_ENUM(name, text) name,
  EGRESSD_NFQ_REASONS(EGRESSD_NFQ_ENUM)
#undef EGRESSD_NFQ_ENUM
      Count
};

inline constexpr size_t kVerdictCount = static_cast<size_t>(Verdict::Count);
inline constexpr size_t kReasonCount = static_cast<size_t>(Reason::Count);

std::string_view verdictName(Verdict verdict) noexcept;
std::string_view reasonName(Reason reason) noexcept;

// Ports that have at least one exact or wildcard name rule. Lets a SYN be
// denied at once when its port is used only by IP/CIDR targets that do not
// cover the destination. Computed once per policy snapshot (allocates).
using NamePorts = std::bitset<65536>;
NamePorts computeNamePorts(const policy::Policy& policy);

struct DecideOptions {
  bool audit = false;         // mode = "audit"
  bool strictBinding = true;  // rules.strict_binding
  // false (default): a SYN to an address DNS-bound to a name allowed on the
  // port is allowed at once (one packet per connection, server-speaks-first
  // protocols need nothing else). true: such flows are still inspected and
  // a TLS/HTTP name they send must itself be allowed (docs/nfq.md).
  bool inspectBoundFlows = false;
  // NeedMore with this many client bytes held denies (HoldLimit).
  size_t maxHoldBytes = 16384;
  const NamePorts* namePorts = nullptr;  // null: assume every used port has name rules
};

// What is known about the flow beyond the current packet.
struct FlowState {
  // The client's in-order payload bytes so far, including this packet's
  // (the flow table's reassembly buffer). Empty: use the packet's payload.
  std::span<const uint8_t> stream;
  // The flow's hold time ran out while NeedMore (decide for the event log).
  bool timedOut = false;
  // Room for the TLS/QUIC parsers (fragmented or encrypted hellos).
  std::span<uint8_t> scratch;
  // QUIC: the worker's parser and this flow's CRYPTO reassembly (the only
  // state decide() touches: a UDP datagram is fed to it exactly once).
  QuicContext quic;
};

struct Decision {
  Verdict verdict = Verdict::Deny;
  Reason reason = Reason::ProtocolNotAllowed;
  // The verdict enforce mode would have taken (differs only in audit mode).
  Verdict enforced = Verdict::Deny;
  // SNI/Host/QUIC name as sent, or the bound name that allowed the flow.
  std::array<char, policy::kMaxNameLength> nameBytes{};
  uint8_t nameLength = 0;
  NameSource nameSource = NameSource::None;
  policy::MatchKind matchKind = policy::MatchKind::None;
  policy::RuleSetRefs ruleSets;  // the rule sets that allowed it
  size_t needBytes = 0;          // Hold: at least this many more
  std::string_view detail;       // Malformed: the parser's reason

  bool final() const noexcept {
    return verdict == Verdict::Allow || verdict == Verdict::Deny || verdict == Verdict::AuditAllow;
  }
  std::string_view name() const noexcept { return {nameBytes.data(), nameLength}; }
  void setName(std::string_view text, NameSource source) noexcept;
  bool wouldDeny() const noexcept { return enforced == Verdict::Deny; }
};

Decision decide(const FlowState& flow, const PacketView& packet, const policy::Policy& policy,
                const BindingLookup& bindings, const DecideOptions& options, TimePoint now) noexcept;

// For packets that did not decode: deny (AuditAllow in audit mode).
Decision decideUndecodable(DecodeError error, const DecideOptions& options) noexcept;

// A deny for `reason` that needs no packet (AuditAllow in audit mode): held
// flows that time out (HoldTimeout) or are evicted / overflow (HoldLimit).
Decision denyFor(Reason reason, const DecideOptions& options) noexcept;

}  // namespace nfq

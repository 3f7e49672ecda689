#include "nfq/verdict.h"

#include <algorithm>
#include <cstring>

namespace nfq {
namespace {

constexpr std::array<std::string_view, kVerdictCount> kVerdictNames = {
#define EGRESSD_NFQ_NAME(name, text) text,
    EGRESSD_NFQ_VERDICTS(EGRESSD_NFQ_NAME)
#undef EGRESSD_NFQ_NAME
};

constexpr std::array<std::string_view, kReasonCount> kReasonNames = {
#define EGRESSD_NFQ_NAME(name, text) text,
    EGRESSD_NFQ_REASONS(EGRESSD_NFQ_NAME)
#undef EGRESSD_NFQ_NAME
};

constexpr uint16_t kQuicPort = 443;

Decision make(Verdict verdict, Reason reason) noexcept {
  Decision decision;
  decision.verdict = verdict;
  decision.reason = reason;
  return decision;
}

// The rule sets behind `*:port`. "-" can never be a rule's name (a label
// may not start with a hyphen) and has no dot, so only world access
// matches it; the Policy has no separate accessor for these refs.
policy::RuleSetRefs worldRuleSets(const policy::Policy& policy, uint16_t port) noexcept {
  return policy.matchName("-", port).ruleSets;
}

// Finds a name bound to the destination that is allowed on the port. For
// an internal destination, world access does not count: only an exact or
// wildcard name target does (its DNS answer passed the rebinding check).
class AllowedBoundName final : public BindingLookup::Visitor {
 public:
  AllowedBoundName(const policy::Policy& policy, uint16_t port, bool internal) noexcept
      : policy_(policy), port_(port), internal_(internal) {}

  bool visit(std::string_view name) noexcept override {
    const policy::NameMatch match = policy_.matchName(name, port_);
    if (!match || (internal_ && match.kind == policy::MatchKind::World)) return false;
    decision.verdict = Verdict::Allow;
    decision.reason = Reason::BoundAddress;
    decision.setName(name, NameSource::Binding);
    decision.matchKind = match.kind;
    decision.ruleSets = match.ruleSets;
    found = true;
    return true;
  }

  Decision decision;
  bool found = false;

 private:
  const policy::Policy& policy_;
  uint16_t port_;
  bool internal_;
};

struct NameReasons {
  Reason allowed, notAllowed, notBound;
};

NameReasons reasonsFor(NameSource source) noexcept {
  switch (source) {
    case NameSource::Host:
      return {Reason::HostAllowed, Reason::HostNotAllowed, Reason::HostNotBound};
    case NameSource::Quic:
      return {Reason::QuicAllowed, Reason::QuicNotAllowed, Reason::QuicNotBound};
    default:
      return {Reason::SniAllowed, Reason::SniNotAllowed, Reason::SniNotBound};
  }
}

// docs/rules.md "DNS binding": the name must be allowed on the port and, with
// strict binding, our DNS must have handed out the destination for it;
// world access (`*:port`) needs no binding, but covers public destinations
// only (policy/internal_ranges.h).
Decision judgeName(std::string_view name, NameSource source, const PacketView& packet,
                   const policy::Policy& policy, const BindingLookup& bindings, const DecideOptions& options,
                   TimePoint now) noexcept {
  const NameReasons reasons = reasonsFor(source);
  const policy::NameMatch match = policy.matchName(name, packet.dstPort);
  Decision decision = make(Verdict::Deny, reasons.notAllowed);
  decision.setName(name, source);
  if (!match) return decision;
  const bool internal = match.world && policy.isInternal(packet.dst);
  if (internal && match.kind == policy::MatchKind::World) {
    decision.reason = Reason::InternalAddress;  // allowed only by world access
    return decision;
  }
  decision.matchKind = match.kind;
  decision.ruleSets = match.ruleSets;
  const bool worldCovers = match.world && !internal;
  if (!worldCovers && options.strictBinding && !bindings.isBound(name, packet.dst, now)) {
    decision.reason = reasons.notBound;
    return decision;
  }
  decision.verdict = Verdict::Allow;
  decision.reason = reasons.allowed;
  return decision;
}

// NeedMore: hold the packet, unless the bounds are reached. Denying as soon
// as the announced size cannot fit keeps a client from parking 16 KiB per
// flow for the whole timeout.
Decision holdOrDeny(const PayloadInspection& inspection, size_t streamSize, const FlowState& flow,
                    const DecideOptions& options) noexcept {
  if (flow.timedOut) return make(Verdict::Deny, Reason::HoldTimeout);
  if (streamSize >= options.maxHoldBytes || inspection.needBytes > options.maxHoldBytes - streamSize) {
    return make(Verdict::Deny, Reason::HoldLimit);
  }
  Decision decision = make(Verdict::Hold, Reason::NeedMoreBytes);
  decision.needBytes = inspection.needBytes;
  decision.nameSource = inspection.source;
  return decision;
}

Decision malformed(const PayloadInspection& inspection) noexcept {
  Decision decision = make(Verdict::Deny, inspection.source == NameSource::Host ? Reason::MalformedRequest
                                                                                : Reason::MalformedHello);
  decision.nameSource = inspection.source;
  decision.detail = inspection.malformedName;
  return decision;
}

Decision decideTcp(const FlowState& flow, const PacketView& packet, const policy::Policy& policy,
                   const BindingLookup& bindings, const DecideOptions& options, TimePoint now) noexcept {
  const uint16_t port = packet.dstPort;
  if (!policy.portInUse(port)) return make(Verdict::Deny, Reason::PortNotInPolicy);
  if (const policy::AddressMatch match = policy.matchAddress(packet.dst, port)) {
    Decision decision = make(Verdict::Allow, Reason::AddressRule);
    decision.matchKind = match.kind;
    decision.ruleSets = match.ruleSets;
    return decision;
  }
  // World access is the public internet: an internal destination needs an
  // IP/CIDR target (above) or a name target with a binding (below).
  const bool world = policy.worldOnPort(port);
  const bool internal = world && policy.isInternal(packet.dst);
  if (world && !internal) {
    Decision decision = make(Verdict::Allow, Reason::WorldAccess);
    decision.matchKind = policy::MatchKind::World;
    decision.ruleSets = worldRuleSets(policy, port);
    return decision;
  }
  AllowedBoundName bound(policy, port, internal);
  bindings.forEachBoundName(packet.dst, now, bound);
  // A bound destination is final at the SYN unless configured otherwise:
  // server-speaks-first protocols then need nothing more, and every later
  // packet stays in the kernel (docs/nfq.md, "bound destinations").
  if (bound.found && !options.inspectBoundFlows) return bound.decision;
  if (!bound.found && options.namePorts != nullptr && !options.namePorts->test(port)) {
    return make(Verdict::Deny, internal ? Reason::InternalAddress : Reason::NoNameRuleOnPort);
  }

  const std::span<const uint8_t> stream = flow.stream.empty() ? packet.payload : flow.stream;
  if (stream.empty()) {
    // SYN (or the handshake's ACK): accept it and judge the first payload.
    return make(Verdict::Pass, packet.isSyn() ? Reason::AwaitPayload : Reason::NoPayloadYet);
  }
  const PayloadInspection inspection = inspectFirstPayload(stream, false, flow.scratch, flow.quic);
  switch (inspection.kind) {
    case PayloadKind::NeedMore:
      return holdOrDeny(inspection, stream.size(), flow, options);
    case PayloadKind::Malformed:
      return malformed(inspection);
    case PayloadKind::Name:
      return judgeName(inspection.name, inspection.source, packet, policy, bindings, options, now);
    case PayloadKind::NoName:
    case PayloadKind::Other:
      break;
  }
  // Not TLS/HTTP, or no name in it: only a DNS binding can allow it.
  if (bound.found) return bound.decision;
  Decision decision = make(Verdict::Deny, internal ? Reason::InternalAddress : Reason::NoNameNoBinding);
  decision.nameSource = inspection.source;
  return decision;
}

Decision decideUdp(const FlowState& flow, const PacketView& packet, const policy::Policy& policy,
                   const BindingLookup& bindings, const DecideOptions& options, TimePoint now) noexcept {
  // docs/rules.md "PORT": UDP only as QUIC to 443, judged by the Initial's SNI.
  if (packet.dstPort != kQuicPort) return make(Verdict::Deny, Reason::UdpNotAllowed);
  if (!policy.portInUse(kQuicPort)) return make(Verdict::Deny, Reason::PortNotInPolicy);
  // Earlier datagrams of the flow live in the QUIC reassembly, not in a stream.
  const std::span<const uint8_t> stream = packet.payload;
  const PayloadInspection inspection = inspectFirstPayload(stream, true, flow.scratch, flow.quic);
  switch (inspection.kind) {
    case PayloadKind::NeedMore:
      // The reassembly buffer bounds the bytes; the limit here is on what
      // the parser still asks for.
      return holdOrDeny(inspection, 0, flow, options);
    case PayloadKind::Malformed:
      return malformed(inspection);
    case PayloadKind::Name:
      if (const policy::AddressMatch match = policy.matchAddress(packet.dst, kQuicPort)) {
        Decision decision = make(Verdict::Allow, Reason::AddressRule);
        decision.setName(inspection.name, NameSource::Quic);
        decision.matchKind = match.kind;
        decision.ruleSets = match.ruleSets;
        return decision;
      }
      return judgeName(inspection.name, NameSource::Quic, packet, policy, bindings, options, now);
    case PayloadKind::NoName:
    case PayloadKind::Other:
      break;
  }
  return make(Verdict::Deny, Reason::UdpNotAllowed);
}

Decision finish(Decision decision, const DecideOptions& options) noexcept {
  decision.enforced = decision.verdict;
  if (options.audit && decision.verdict == Verdict::Deny) decision.verdict = Verdict::AuditAllow;
  return decision;
}

}  // namespace

void Decision::setName(std::string_view text, NameSource source) noexcept {
  nameLength = static_cast<uint8_t>(std::min(text.size(), nameBytes.size()));
  std::memcpy(nameBytes.data(), text.data(), nameLength);
  nameSource = source;
}

std::string_view verdictName(Verdict verdict) noexcept {
  const auto index = static_cast<size_t>(verdict);
  return index < kVerdictCount ? kVerdictNames[index] : std::string_view("unknown");
}

std::string_view reasonName(Reason reason) noexcept {
  const auto index = static_cast<size_t>(reason);
  return index < kReasonCount ? kReasonNames[index] : std::string_view("unknown");
}

NamePorts computeNamePorts(const policy::Policy& policy) {
  NamePorts ports;
  for (const policy::RuleSet& set : policy.sourceRuleSets()) {
    for (const policy::Target& target : set.targets) {
      if (target.kind == policy::TargetKind::ExactName || target.kind == policy::TargetKind::WildcardName) {
        ports.set(target.port);
      }
    }
  }
  return ports;
}

Decision decide(const FlowState& flow, const PacketView& packet, const policy::Policy& policy,
                const BindingLookup& bindings, const DecideOptions& options, TimePoint now) noexcept {
  if (!packet.hasTransport) return finish(make(Verdict::Deny, Reason::ProtocolNotAllowed), options);
  switch (packet.protocol) {
    case kProtoTcp:
      return finish(decideTcp(flow, packet, policy, bindings, options, now), options);
    case kProtoUdp:
      return finish(decideUdp(flow, packet, policy, bindings, options, now), options);
    case kProtoIcmp:
    case kProtoIcmpv6:
      // Echo and anything else not already RELATED to a connection (the
      // chain passes those in the kernel).
      return finish(make(Verdict::Deny, Reason::IcmpDenied), options);
    default:
      return finish(make(Verdict::Deny, Reason::ProtocolNotAllowed), options);
  }
}

Decision decideUndecodable(DecodeError, const DecideOptions& options) noexcept {
  return finish(make(Verdict::Deny, Reason::MalformedPacket), options);
}

Decision denyFor(Reason reason, const DecideOptions& options) noexcept {
  return finish(make(Verdict::Deny, reason), options);
}

}  // namespace nfq

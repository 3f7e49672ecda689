#include "policy/internal_ranges.h"

#include <algorithm>
#include <cstdlib>

namespace policy {
namespace {

using common::IpAddress;
using common::IpFamily;
using common::IpNetwork;

// IANA IPv4 Special-Purpose Address Registry and IPv6 Special-Purpose
// Address Registry (RFC 6890, updated by RFC 8190), read in 2025; plus
// multicast and the IPv6 space outside global unicast. "Globally
// Reachable: False" entries are Internal; "True" entries inside an
// Internal range are Public (they are the registry's own exceptions);
// the "N/A" ones are decided in the comments. Longest prefix wins.
constexpr SpecialRange kRanges[] = {
    // IPv4. Everything not listed is public.
    {"0.0.0.0/8", RangeKind::Internal, "\"this network\"", "RFC 791, RFC 1122 section 3.2.1.3"},
    {"10.0.0.0/8", RangeKind::Internal, "private-use", "RFC 1918"},
    {"100.64.0.0/10", RangeKind::Internal, "shared address space (carrier-grade NAT)", "RFC 6598"},
    {"127.0.0.0/8", RangeKind::Internal, "loopback", "RFC 1122 section 3.2.1.3"},
    {"169.254.0.0/16", RangeKind::Internal, "link-local (cloud metadata 169.254.169.254)", "RFC 3927"},
    {"172.16.0.0/12", RangeKind::Internal, "private-use", "RFC 1918"},
    {"192.0.0.0/24", RangeKind::Internal, "IETF protocol assignments", "RFC 6890 section 2.1"},
    {"192.0.0.9/32", RangeKind::Public, "Port Control Protocol anycast", "RFC 7723"},
    {"192.0.0.10/32", RangeKind::Public, "TURN anycast", "RFC 8155"},
    {"192.0.2.0/24", RangeKind::Internal, "documentation (TEST-NET-1)", "RFC 5737"},
    // N/A in the registry: deprecated, not to be reassigned; nothing public
    // is there for a pod to reach.
    {"192.88.99.0/24", RangeKind::Internal, "6to4 relay anycast (deprecated)", "RFC 7526"},
    {"192.168.0.0/16", RangeKind::Internal, "private-use", "RFC 1918"},
    {"198.18.0.0/15", RangeKind::Internal, "benchmarking", "RFC 2544"},
    {"198.51.100.0/24", RangeKind::Internal, "documentation (TEST-NET-2)", "RFC 5737"},
    {"203.0.113.0/24", RangeKind::Internal, "documentation (TEST-NET-3)", "RFC 5737"},
    {"224.0.0.0/4", RangeKind::Internal, "multicast", "RFC 5771"},
    {"240.0.0.0/4", RangeKind::Internal, "reserved", "RFC 1112 section 4"},
    {"255.255.255.255/32", RangeKind::Internal, "limited broadcast", "RFC 919, RFC 8190"},

    // IPv6. Only 2000::/3 is allocated as global unicast; the rest of the
    // space is reserved by the IETF, link-local, unique local or multicast.
    {"::/0", RangeKind::Internal, "outside global unicast 2000::/3 (reserved by the IETF)",
     "RFC 4291 section 2.4"},
    {"2000::/3", RangeKind::Public, "global unicast", "RFC 4291 section 2.4"},
    {"::/128", RangeKind::Internal, "unspecified", "RFC 4291 section 2.5.2"},
    {"::1/128", RangeKind::Internal, "loopback", "RFC 4291 section 2.5.3"},
    // Deprecated, but Linux still routes ::a.b.c.d to a.b.c.d through sit0
    // when the sit module is loaded: classify like the IPv4 inside (so ::
    // and ::1 agree: 0.0.0.0/8 is internal too).
    {"::/96", RangeKind::Embedded, "IPv4-compatible", "RFC 4291 section 2.5.5.1", 12},
    {"::ffff:0:0/96", RangeKind::Embedded, "IPv4-mapped", "RFC 4291 section 2.5.5.2", 12},
    // Global in the registry: a NAT64 gateway connects to the IPv4 inside.
    {"64:ff9b::/96", RangeKind::Embedded, "NAT64 well-known prefix", "RFC 6052", 12},
    // Local-use NAT64: the IPv4 may sit at any of six offsets (RFC 6052
    // section 2.2), so it cannot be read back; the registry says not global.
    {"64:ff9b:1::/48", RangeKind::Internal, "local-use NAT64", "RFC 8215"},
    {"100::/64", RangeKind::Internal, "discard-only", "RFC 6666"},
    {"2001::/23", RangeKind::Internal, "IETF protocol assignments", "RFC 2928"},
    // N/A in the registry: a Teredo address hides its IPv4 addresses
    // obfuscated, and a cluster has no use for Teredo: closed.
    {"2001::/32", RangeKind::Internal, "Teredo", "RFC 4380, RFC 8190"},
    {"2001:1::1/128", RangeKind::Public, "Port Control Protocol anycast", "RFC 7723"},
    {"2001:1::2/128", RangeKind::Public, "TURN anycast", "RFC 8155"},
    {"2001:1::3/128", RangeKind::Public, "DNS-SD service registration anycast", "RFC 9665"},
    {"2001:2::/48", RangeKind::Internal, "benchmarking", "RFC 5180"},
    {"2001:3::/32", RangeKind::Public, "Automatic Multicast Tunneling", "RFC 7450"},
    {"2001:4:112::/48", RangeKind::Public, "AS112-v6", "RFC 7535"},
    // N/A in the registry (deprecated ORCHID): closed.
    {"2001:10::/28", RangeKind::Internal, "ORCHID (deprecated)", "RFC 4843"},
    {"2001:20::/28", RangeKind::Public, "ORCHIDv2", "RFC 7343"},
    {"2001:30::/28", RangeKind::Public, "drone remote ID entity tags", "RFC 9374"},
    {"2001:db8::/32", RangeKind::Internal, "documentation", "RFC 3849"},
    // N/A in the registry: 2002:V4ADDR::/48 is sent encapsulated to V4ADDR
    // by any 6to4 router on the path: classify like that IPv4 address.
    {"2002::/16", RangeKind::Embedded, "6to4", "RFC 3056", 2},
    {"3fff::/20", RangeKind::Internal, "documentation", "RFC 9637"},
    {"5f00::/16", RangeKind::Internal, "segment routing (SRv6) SIDs", "RFC 9602"},
    {"fc00::/7", RangeKind::Internal, "unique local (cloud metadata fd00:ec2::254)", "RFC 4193"},
    {"fe80::/10", RangeKind::Internal, "link-local", "RFC 4291 section 2.5.6"},
    {"fec0::/10", RangeKind::Internal, "site-local (deprecated)", "RFC 3879"},
    {"ff00::/8", RangeKind::Internal, "multicast", "RFC 4291 section 2.7"},
};

uint32_t v4Value(const IpAddress& ip) noexcept {
  return (uint32_t{ip.bytes[0]} << 24) | (uint32_t{ip.bytes[1]} << 16) | (uint32_t{ip.bytes[2]} << 8) |
         uint32_t{ip.bytes[3]};
}

uint64_t load64(const uint8_t* p) noexcept {
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value = (value << 8) | p[i];
  return value;
}

uint64_t mask64(unsigned bits) noexcept {
  if (bits == 0) return 0;
  if (bits >= 64) return ~uint64_t{0};
  return ~uint64_t{0} << (64 - bits);
}

IpNetwork parseBuiltin(std::string_view text) {
  const auto parsed = common::parseIpNetwork(text);
  if (!parsed.network) std::abort();  // the table above is wrong: a build-time bug
  return *parsed.network;
}

}  // namespace

std::span<const SpecialRange> specialRanges() noexcept {
  return kRanges;
}

InternalRanges::InternalRanges() : InternalRanges({}, {}) {}

InternalRanges::InternalRanges(std::span<const IpNetwork> internal, std::span<const IpNetwork> publicRanges)
    : operatorInternal_(internal.begin(), internal.end()),
      operatorPublic_(publicRanges.begin(), publicRanges.end()) {
  for (const SpecialRange& range : kRanges) {
    add(parseBuiltin(range.network), range.kind, RangeOrigin::Builtin, &range);
  }
  for (const IpNetwork& network : operatorInternal_) {
    add(network, RangeKind::Internal, RangeOrigin::OperatorInternal, nullptr);
  }
  for (const IpNetwork& network : operatorPublic_) {
    add(network, RangeKind::Public, RangeOrigin::OperatorPublic, nullptr);
  }
  finish();
}

void InternalRanges::add(const IpNetwork& network, RangeKind kind, RangeOrigin origin,
                         const SpecialRange* builtin) {
  const auto ref = static_cast<uint16_t>(refs_.size());
  refs_.push_back(Ref{network, kind, origin, builtin});
  const uint8_t* b = network.address.bytes.data();
  if (network.address.family == IpFamily::V4) {
    const uint32_t mask = network.prefixLength == 0 ? 0 : ~uint32_t{0} << (32 - network.prefixLength);
    v4_.push_back(V4Entry{v4Value(network.address) & mask, mask, ref});
  } else {
    const uint64_t maskHi = mask64(network.prefixLength);
    const uint64_t maskLo = mask64(network.prefixLength > 64 ? network.prefixLength - 64U : 0U);
    v6_.push_back(V6Entry{load64(b) & maskHi, load64(b + 8) & maskLo, maskHi, maskLo, ref});
  }
}

void InternalRanges::finish() {
  // Longest prefix first, so the first match decides; at equal length an
  // operator's range before the built-in one (it was added later).
  const auto order = [this](uint16_t a, uint16_t b) {
    const Ref& x = refs_[a];
    const Ref& y = refs_[b];
    if (x.network.prefixLength != y.network.prefixLength)
      return x.network.prefixLength > y.network.prefixLength;
    return (x.origin != RangeOrigin::Builtin) && (y.origin == RangeOrigin::Builtin);
  };
  std::stable_sort(v4_.begin(), v4_.end(),
                   [&](const V4Entry& a, const V4Entry& b) { return order(a.ref, b.ref); });
  std::stable_sort(v6_.begin(), v6_.end(),
                   [&](const V6Entry& a, const V6Entry& b) { return order(a.ref, b.ref); });
}

const InternalRanges::Ref* InternalRanges::findV4(uint32_t address) const noexcept {
  for (const V4Entry& entry : v4_) {
    if ((address & entry.mask) == entry.value) return &refs_[entry.ref];
  }
  return nullptr;
}

const InternalRanges::Ref* InternalRanges::findV6(uint64_t hi, uint64_t lo) const noexcept {
  for (const V6Entry& entry : v6_) {
    if ((hi & entry.maskHi) == entry.hi && (lo & entry.maskLo) == entry.lo) return &refs_[entry.ref];
  }
  return nullptr;
}

AddressClass InternalRanges::fromRef(const Ref* ref) const noexcept {
  AddressClass out;
  if (ref == nullptr) return out;  // public by default
  out.internal = ref->kind == RangeKind::Internal;
  out.origin = ref->origin;
  out.network = ref->network;
  switch (ref->origin) {
    case RangeOrigin::OperatorInternal:
      out.name = "listed in rules.internal_cidrs";
      break;
    case RangeOrigin::OperatorPublic:
      out.name = "listed in rules.public_cidrs";
      break;
    default:
      out.name = ref->builtin->name;
      out.source = ref->builtin->source;
      break;
  }
  return out;
}

AddressClass InternalRanges::classify(const IpAddress& ip) const noexcept {
  if (ip.family == IpFamily::V4) return fromRef(findV4(v4Value(ip)));
  const Ref* ref = findV6(load64(ip.bytes.data()), load64(ip.bytes.data() + 8));
  if (ref == nullptr || ref->kind != RangeKind::Embedded) return fromRef(ref);
  // Embedded kinds are only built in (operators' ranges inside them are
  // refused by checkOperatorRange), so `builtin` is set.
  const IpAddress inside = IpAddress::v4Bytes(ip.bytes.data() + ref->builtin->embedOffset);
  AddressClass out = fromRef(findV4(v4Value(inside)));
  out.embedded = true;
  out.embeddedIpv4 = inside;
  out.embeddingName = ref->builtin->name;
  return out;
}

std::optional<std::string> checkOperatorRange(const IpNetwork& network) {
  if (network.address.family != IpFamily::V6) return std::nullopt;
  for (const SpecialRange& range : kRanges) {
    if (range.kind != RangeKind::Embedded) continue;
    const IpNetwork embedding = parseBuiltin(range.network);
    if (network.prefixLength < embedding.prefixLength || !embedding.contains(network.address)) continue;
    std::string message = network.toString() + " is inside " + std::string(range.network) + " (" +
                          std::string(range.name) + ", " + std::string(range.source) +
                          "), whose addresses are classified by the IPv4 address inside";
    const unsigned v4Bits = range.embedOffset * 8U;
    if (network.prefixLength >= v4Bits) {
      const unsigned length = std::min(32U, network.prefixLength - v4Bits);
      const IpAddress inside = IpAddress::v4Bytes(network.address.bytes.data() + range.embedOffset);
      message += ": write " + inside.toString() + "/" + std::to_string(length) + " instead";
    } else {
      message += ": write the IPv4 network instead";
    }
    return message;
  }
  return std::nullopt;
}

std::string describeClass(const AddressClass& c) {
  std::string out;
  if (c.embedded) {
    out += std::string(c.embeddingName) + " form of " + c.embeddedIpv4.toString() + ", ";
  }
  if (c.origin == RangeOrigin::None) return out + "public (in no special-purpose range)";
  out += c.network.toString();
  out += ' ';
  out += c.name;
  if (!c.source.empty()) out += " (" + std::string(c.source) + ")";
  return out;
}

std::string_view closedRangesSummary() noexcept {
  return "loopback, link-local (the cloud metadata services 169.254.169.254 and fd00:ec2::254), "
         "private-use (RFC 1918: 10/8, 172.16/12, 192.168/16), shared address space 100.64/10, "
         "IPv6 unique local fc00::/7, multicast, documentation, benchmarking, reserved and the other "
         "non-global special-purpose ranges, also when reached through IPv4-mapped, NAT64 or 6to4 addresses";
}

}  // namespace policy

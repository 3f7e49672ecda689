#include "common/proxy_protocol.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "common/ip_address.h"
#include "common/strings.h"

namespace common {

namespace {

// Spec section 2.2.
constexpr std::array<uint8_t, 12> kV2Signature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                  0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::string_view kV1Prefix = "PROXY ";
constexpr size_t kV2FixedBytes = 16;
constexpr size_t kV2Inet4Bytes = 12;  // two IPv4 addresses, two ports
constexpr size_t kV2Inet6Bytes = 36;  // two IPv6 addresses, two ports
constexpr size_t kV2UnixBytes = 216;  // two 108-byte paths
constexpr size_t kTlvHeaderBytes = 3;

// Whether `input` could still grow into `prefix` (or already starts with it).
bool prefixCompatible(std::span<const uint8_t> input, std::span<const uint8_t> prefix) noexcept {
  const size_t n = std::min(input.size(), prefix.size());
  return std::equal(input.begin(), input.begin() + static_cast<std::ptrdiff_t>(n), prefix.begin());
}

std::span<const uint8_t> bytesOf(std::string_view text) noexcept {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

ProxyHeaderStatus malformed(ProxyHeader& out, std::string_view why) noexcept {
  out.why = why;
  return ProxyHeaderStatus::Malformed;
}

uint16_t bigEndian16(const uint8_t* p) noexcept {
  return static_cast<uint16_t>((p[0] << 8) | p[1]);
}

// The next space-separated field of a v1 line; false when there is none
// (exactly one space between fields, spec 2.1).
bool nextField(std::string_view& line, std::string_view& field) noexcept {
  const size_t space = line.find(' ');
  field = line.substr(0, space);
  line = space == std::string_view::npos ? std::string_view{} : line.substr(space + 1);
  return !field.empty();
}

// Spec section 2.1: "PROXY TCP4|TCP6|UNKNOWN src dst sport dport\r\n".
ProxyHeaderStatus parseV1(std::span<const uint8_t> input, ProxyHeader& out) noexcept {
  const size_t limit = std::min(input.size(), kMaxProxyV1Bytes);
  const std::string_view text(reinterpret_cast<const char*>(input.data()), limit);
  const size_t lf = text.find('\n');
  if (lf == std::string_view::npos) {
    if (input.size() >= kMaxProxyV1Bytes) return malformed(out, "v1 header without CRLF within 107 bytes");
    return ProxyHeaderStatus::NeedMore;
  }
  if (lf == 0 || text[lf - 1] != '\r') return malformed(out, "v1 header line not ended by CRLF");
  std::string_view line = text.substr(kV1Prefix.size(), lf - 1 - kV1Prefix.size());
  out.version = 1;
  out.length = lf + 1;
  if (!line.empty() && line.back() == ' ') return malformed(out, "v1 header line ends in a space");
  std::string_view protocol;
  if (!nextField(line, protocol)) return malformed(out, "v1 header without a protocol");
  if (protocol == "UNKNOWN") {
    // The rest of the line is to be ignored (spec 2.1): the balancer's own
    // connection, or a family it cannot name.
    out.local = true;
    return ProxyHeaderStatus::Ok;
  }
  const bool v4 = protocol == "TCP4";
  if (!v4 && protocol != "TCP6") return malformed(out, "v1 protocol is not TCP4, TCP6 or UNKNOWN");
  std::string_view fields[4];
  for (std::string_view& field : fields) {
    if (!nextField(line, field)) return malformed(out, "v1 header with fewer than four address fields");
  }
  if (!line.empty()) return malformed(out, "v1 header with more than four address fields");
  const auto source = parseIpAddress(fields[0]);
  const auto destination = parseIpAddress(fields[1]);
  const IpFamily family = v4 ? IpFamily::V4 : IpFamily::V6;
  if (!source || !destination || source->family != family || destination->family != family) {
    return malformed(out, "v1 address is not of the header's protocol");
  }
  const auto sourcePort = parseDecimal(fields[2], 65535);
  const auto destinationPort = parseDecimal(fields[3], 65535);
  if (!sourcePort || !destinationPort) return malformed(out, "v1 port is not a number of 0..65535");
  out.source = {*source, static_cast<uint16_t>(*sourcePort)};
  out.destination = {*destination, static_cast<uint16_t>(*destinationPort)};
  return ProxyHeaderStatus::Ok;
}

// Spec section 2.2.7: type (1 byte), length (2), value; each within the
// header. Their contents are not used: they are only walked, so that a
// header whose TLVs overrun it is refused rather than half-believed.
bool tlvsWellFormed(std::span<const uint8_t> tlvs) noexcept {
  while (!tlvs.empty()) {
    if (tlvs.size() < kTlvHeaderBytes) return false;
    const size_t length = bigEndian16(tlvs.data() + 1);
    if (tlvs.size() - kTlvHeaderBytes < length) return false;
    tlvs = tlvs.subspan(kTlvHeaderBytes + length);
  }
  return true;
}

ProxyHeaderStatus parseV2(std::span<const uint8_t> input, ProxyHeader& out, ProxyCarrier carrier) noexcept {
  if (input.size() < kV2FixedBytes) return ProxyHeaderStatus::NeedMore;
  out.version = 2;
  const uint8_t versionCommand = input[12];
  if ((versionCommand >> 4) != 2) return malformed(out, "v2 signature with a version other than 2");
  const uint8_t command = versionCommand & 0x0F;
  if (command > 1) return malformed(out, "v2 command is neither LOCAL nor PROXY");
  const uint8_t family = input[13] >> 4;
  const uint8_t transport = input[13] & 0x0F;
  const size_t length = bigEndian16(input.data() + 14);
  if (kV2FixedBytes + length > kMaxProxyV2Bytes) return malformed(out, "v2 header longer than 1040 bytes");
  if (input.size() < kV2FixedBytes + length) return ProxyHeaderStatus::NeedMore;
  out.length = kV2FixedBytes + length;
  const std::span<const uint8_t> body = input.subspan(kV2FixedBytes, length);
  if (family > 3) return malformed(out, "v2 address family is not UNSPEC, INET, INET6 or UNIX");
  // The carrier's own transport (STREAM on a TCP connection, DGRAM before
  // a datagram) or unspecified; any other describes some other flow.
  const uint8_t expected = carrier == ProxyCarrier::Stream ? 1 : 2;
  if (transport != 0 && transport != expected) {
    return malformed(out, carrier == ProxyCarrier::Stream ? "v2 transport is not STREAM or UNSPEC"
                                                          : "v2 transport is not DGRAM or UNSPEC");
  }
  size_t addressBytes = 0;
  if (family == 1) addressBytes = kV2Inet4Bytes;
  if (family == 2) addressBytes = kV2Inet6Bytes;
  if (family == 3) addressBytes = kV2UnixBytes;
  if (body.size() < addressBytes) return malformed(out, "v2 length shorter than its address block");
  if (!tlvsWellFormed(body.subspan(addressBytes))) return malformed(out, "v2 TLV runs past the header");
  // LOCAL: the balancer speaks for itself (health checks); the address
  // block, if any, is to be ignored (spec 2.2). UNSPEC and UNIX name no
  // TCP client either.
  if (command == 0 || family == 0 || family == 3) {
    out.local = true;
    return ProxyHeaderStatus::Ok;
  }
  if (transport != expected) return malformed(out, "v2 PROXY over INET/INET6 with an unspecified transport");
  const uint8_t* p = body.data();
  if (family == 1) {
    out.source = {IpAddress::v4Bytes(p), bigEndian16(p + 8)};
    out.destination = {IpAddress::v4Bytes(p + 4), bigEndian16(p + 10)};
  } else {
    out.source = {IpAddress::v6Bytes(p), bigEndian16(p + 32)};
    out.destination = {IpAddress::v6Bytes(p + 16), bigEndian16(p + 34)};
  }
  return ProxyHeaderStatus::Ok;
}

}  // namespace

std::string_view proxyHeaderStatusName(ProxyHeaderStatus status) noexcept {
  switch (status) {
    case ProxyHeaderStatus::Ok:
      return "ok";
    case ProxyHeaderStatus::NeedMore:
      return "need_more";
    case ProxyHeaderStatus::NotThisProtocol:
      return "not_this_protocol";
    case ProxyHeaderStatus::Malformed:
      return "malformed";
  }
  return "unknown";
}

ProxyHeaderStatus parseProxyHeader(std::span<const uint8_t> input, ProxyHeader& out,
                                   ProxyCarrier carrier) noexcept {
  out = ProxyHeader{};
  if (input.empty()) return ProxyHeaderStatus::NeedMore;
  if (prefixCompatible(input, kV2Signature)) {
    return input.size() < kV2Signature.size() ? ProxyHeaderStatus::NeedMore : parseV2(input, out, carrier);
  }
  if (prefixCompatible(input, bytesOf(kV1Prefix))) {
    if (carrier == ProxyCarrier::Datagram) return malformed(out, "v1 header (TCP only) before a datagram");
    return input.size() < kV1Prefix.size() ? ProxyHeaderStatus::NeedMore : parseV1(input, out);
  }
  return ProxyHeaderStatus::NotThisProtocol;
}

}  // namespace common

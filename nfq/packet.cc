#include "nfq/packet.h"

#include <array>

namespace nfq {
namespace {

constexpr std::array<std::string_view, kDecodeErrorCount> kDecodeErrorNames = {
#define EGRESSD_NFQ_NAME(name, text) text,
    EGRESSD_NFQ_DECODE_ERRORS(EGRESSD_NFQ_NAME)
#undef EGRESSD_NFQ_NAME
};

// Callers have checked `offset + 2 <= size` (resp. 4) before each call.
uint16_t be16(const uint8_t* p) noexcept {
  return static_cast<uint16_t>((p[0] << 8) | p[1]);
}
uint32_t be32(const uint8_t* p) noexcept {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// IPv6 extension headers that share the generic "next header, length in
// 8-octet units not counting the first 8" layout (RFC 8200 section 4,
// RFC 7045 list): hop-by-hop, routing, destination options, mobility (RFC
// 6275), HIP (RFC 7401), shim6 (RFC 5533).
bool isGenericExtension(uint8_t next) noexcept {
  return next == 0 || next == 43 || next == 60 || next == 135 || next == 139 || next == 140;
}
constexpr uint8_t kIpv6Fragment = 44;
constexpr uint8_t kIpv6Ah = 51;
// More than this many extension headers is not a real packet but an attempt
// to make us loop; it is reported and denied.
constexpr int kMaxExtensionHeaders = 16;

DecodeError decodeTransport(std::span<const uint8_t> packet, size_t offset, size_t end,
                            PacketView& view) noexcept {
  const uint8_t* base = packet.data();
  const size_t available = end - offset;
  switch (view.protocol) {
    case kProtoTcp: {
      // RFC 9293 section 3.1: 20 fixed bytes, then options up to the data offset.
      if (available < 20) return DecodeError::TcpHeaderTruncated;
      const uint8_t* tcp = base + offset;
      const size_t headerLength = size_t{static_cast<uint8_t>(tcp[12] >> 4)} * 4;
      if (headerLength < 20) return DecodeError::TcpBadDataOffset;
      if (headerLength > available) return DecodeError::TcpHeaderTruncated;
      view.srcPort = be16(tcp);
      view.dstPort = be16(tcp + 2);
      view.tcpSeq = be32(tcp + 4);
      view.tcpAck = be32(tcp + 8);
      view.tcpFlags = tcp[13];
      view.transportHeaderLength = static_cast<uint16_t>(headerLength);
      view.payload = packet.subspan(offset + headerLength, available - headerLength);
      break;
    }
    case kProtoUdp: {
      // RFC 768: the length field covers header and data.
      if (available < 8) return DecodeError::UdpHeaderTruncated;
      const uint8_t* udp = base + offset;
      const size_t length = be16(udp + 4);
      if (length < 8) return DecodeError::UdpBadLength;
      size_t dataLength = length - 8;
      if (length > available) {
        // Only a cut copy or the first fragment may be shorter than the
        // UDP length says; otherwise the datagram lies about its size.
        if (!view.truncated && !view.fragment) return DecodeError::UdpBadLength;
        dataLength = available - 8;
      }
      view.srcPort = be16(udp);
      view.dstPort = be16(udp + 2);
      view.transportHeaderLength = 8;
      view.payload = packet.subspan(offset + 8, dataLength);
      break;
    }
    case kProtoIcmp:
    case kProtoIcmpv6: {
      // RFC 792 / RFC 4443 section 2.1: type, code, checksum.
      if (available < 4) return DecodeError::IcmpTruncated;
      view.icmpType = base[offset];
      view.icmpCode = base[offset + 1];
      view.transportHeaderLength = 4;
      view.payload = packet.subspan(offset + 4, available - 4);
      break;
    }
    default:
      // Another protocol (GRE, SCTP, ESP...): no transport fields; the
      // verdict denies what it does not know.
      return DecodeError::Ok;
  }
  view.hasTransport = true;
  return DecodeError::Ok;
}

DecodeResult decodeIpv4(std::span<const uint8_t> packet) noexcept {
  DecodeResult result;
  PacketView& view = result.view;
  // RFC 791 section 3.1.
  if (packet.size() < 20) {
    result.error = DecodeError::Ipv4HeaderTruncated;
    return result;
  }
  const uint8_t* ip = packet.data();
  const size_t headerLength = size_t{static_cast<uint8_t>(ip[0] & 0x0f)} * 4;
  view.src = common::IpAddress::v4Bytes(ip + 12);
  view.dst = common::IpAddress::v4Bytes(ip + 16);
  view.protocol = ip[9];
  if (headerLength < 20) {
    result.error = DecodeError::Ipv4BadHeaderLength;
    return result;
  }
  if (headerLength > packet.size()) {
    result.error = DecodeError::Ipv4HeaderTruncated;
    return result;
  }
  const size_t totalLength = be16(ip + 2);
  if (totalLength < headerLength) {
    result.error = DecodeError::Ipv4BadTotalLength;
    return result;
  }
  size_t end = totalLength;
  if (totalLength > packet.size()) {
    view.truncated = true;
    end = packet.size();
  }
  // Flags and fragment offset: only the first fragment (offset 0) carries
  // the transport header.
  const uint16_t fragmentField = be16(ip + 6);
  if ((fragmentField & 0x1fff) != 0) {
    result.error = DecodeError::NonFirstFragment;
    return result;
  }
  view.fragment = (fragmentField & 0x2000) != 0;
  view.networkHeaderLength = static_cast<uint16_t>(headerLength);
  result.error = decodeTransport(packet, headerLength, end, view);
  return result;
}

DecodeResult decodeIpv6(std::span<const uint8_t> packet) noexcept {
  DecodeResult result;
  PacketView& view = result.view;
  // RFC 8200 section 3: 40-byte fixed header.
  if (packet.size() < 40) {
    result.error = DecodeError::Ipv6HeaderTruncated;
    return result;
  }
  const uint8_t* ip = packet.data();
  view.src = common::IpAddress::v6Bytes(ip + 8);
  view.dst = common::IpAddress::v6Bytes(ip + 24);
  const size_t payloadLength = be16(ip + 4);
  uint8_t next = ip[6];
  if (payloadLength == 0 && next == 0) {
    // RFC 2675: a jumbogram; never forwarded on the links we filter.
    result.error = DecodeError::Ipv6Jumbogram;
    return result;
  }
  size_t end = 40 + payloadLength;
  if (end > packet.size()) {
    view.truncated = true;
    end = packet.size();
  }
  size_t offset = 40;
  for (int count = 0;; ++count) {
    if (isGenericExtension(next) || next == kIpv6Fragment || next == kIpv6Ah) {
      if (count == kMaxExtensionHeaders) {
        view.protocol = next;
        result.error = DecodeError::Ipv6TooManyExtensions;
        return result;
      }
      if (end - offset < 8) {  // every extension header is at least 8 bytes
        view.protocol = next;
        result.error = DecodeError::Ipv6ExtensionTruncated;
        return result;
      }
      const uint8_t* ext = ip + offset;
      size_t length = 8;
      if (isGenericExtension(next)) {
        length = (size_t{ext[1]} + 1) * 8;
      } else if (next == kIpv6Ah) {
        length = (size_t{ext[1]} + 2) * 4;  // RFC 4302 section 2.2: 4-octet units minus 2
      } else {
        // RFC 8200 section 4.5: fragment offset in 8-octet units, M flag.
        const uint16_t field = be16(ext + 2);
        if ((field & 0xfff8) != 0) {
          view.protocol = ext[0];
          result.error = DecodeError::NonFirstFragment;
          return result;
        }
        view.fragment = (field & 1) != 0;
      }
      if (length > end - offset) {
        view.protocol = next;
        result.error = DecodeError::Ipv6ExtensionTruncated;
        return result;
      }
      next = ext[0];
      offset += length;
      continue;
    }
    break;
  }
  // ESP (50) and No Next Header (59) end the chain: nothing after them can
  // be read, and decodeTransport leaves hasTransport false for them.
  view.protocol = next;
  view.networkHeaderLength = static_cast<uint16_t>(offset);
  result.error = decodeTransport(packet, offset, end, view);
  return result;
}

}  // namespace

std::string_view decodeErrorName(DecodeError error) noexcept {
  const auto index = static_cast<size_t>(error);
  return index < kDecodeErrorCount ? kDecodeErrorNames[index] : std::string_view("unknown");
}

DecodeResult decodePacket(std::span<const uint8_t> packet) noexcept {
  if (packet.empty()) return DecodeResult{DecodeError::Empty, {}};
  switch (packet[0] >> 4) {
    case 4:
      return decodeIpv4(packet);
    case 6:
      return decodeIpv6(packet);
    default:
      return DecodeResult{DecodeError::BadIpVersion, {}};
  }
}

}  // namespace nfq

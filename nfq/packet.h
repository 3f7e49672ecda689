// Decoding of one IP packet as NFQUEUE delivers it: the buffer starts at the
// IPv4 or IPv6 header (no link layer). Pure and bounds-checked: every field
// is read only after checking that it lies inside the buffer; the result
// holds views into the input, never copies.
//
// Ownership: PacketView::payload points into the caller's buffer and is
// valid as long as that buffer is. Thread-safety: pure functions.
// Failure: a DecodeError naming what was wrong (one counter per value); the
// addresses are filled in as far as they were decoded, for the event log.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "common/ip_address.h"

namespace nfq {

// X(enumerator, metric/log name). Every value is counted separately.
#define EGRESSD_NFQ_DECODE_ERRORS(X)                    \
  X(Ok, "ok")                                           \
  X(Empty, "empty")                                     \
  X(BadIpVersion, "bad_ip_version")                     \
  X(Ipv4HeaderTruncated, "ipv4_header_truncated")       \
  X(Ipv4BadHeaderLength, "ipv4_bad_header_length")      \
  X(Ipv4BadTotalLength, "ipv4_bad_total_length")        \
  X(Ipv6HeaderTruncated, "ipv6_header_truncated")       \
  X(Ipv6Jumbogram, "ipv6_jumbogram")                    \
  X(Ipv6ExtensionTruncated, "ipv6_extension_truncated") \
  X(Ipv6TooManyExtensions, "ipv6_too_many_extensions")  \
  X(NonFirstFragment, "non_first_fragment")             \
  X(TcpHeaderTruncated, "tcp_header_truncated")         \
  X(TcpBadDataOffset, "tcp_bad_data_offset")            \
  X(UdpHeaderTruncated, "udp_header_truncated")         \
  X(UdpBadLength, "udp_bad_length")                     \
  X(IcmpTruncated, "icmp_truncated")

enum class DecodeError : uint8_t {
#define EGRESSD_NFQ_ENUM(name, text) name,
  EGRESSD_NFQ_DECODE_ERRORS(EGRESSD_NFQ_ENUM)
#undef EGRESSD_NFQ_ENUM
      Count
};

inline constexpr size_t kDecodeErrorCount = static_cast<size_t>(DecodeError::Count);

std::string_view decodeErrorName(DecodeError error) noexcept;

// IANA protocol numbers of the transport headers we decode.
inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kProtoIcmpv6 = 58;

// TCP flags (RFC 9293 section 3.1).
inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpPsh = 0x08;
inline constexpr uint8_t kTcpAck = 0x10;

struct PacketView {
  common::IpAddress src;
  common::IpAddress dst;
  // Protocol of the header after the IP (and IPv6 extension) headers, e.g.
  // 6, 17, 1, 58; also 50 (ESP) or 59 (no next header), where decoding stops.
  uint8_t protocol = 0;
  // True when TCP/UDP/ICMP fields below were decoded.
  bool hasTransport = false;
  // Part of a fragmented datagram (this is the first fragment; later ones
  // are reported as DecodeError::NonFirstFragment).
  bool fragment = false;
  // The IP length says there is more than the buffer holds (NFQUEUE copy
  // range shorter than the packet): payload is what was copied.
  bool truncated = false;
  uint16_t srcPort = 0;  // TCP/UDP
  uint16_t dstPort = 0;
  uint8_t tcpFlags = 0;
  uint32_t tcpSeq = 0;
  uint32_t tcpAck = 0;   // meaningful with kTcpAck in tcpFlags
  uint8_t icmpType = 0;  // ICMP/ICMPv6
  uint8_t icmpCode = 0;
  uint16_t networkHeaderLength = 0;    // IP header plus extension headers
  uint16_t transportHeaderLength = 0;  // TCP header with options, UDP 8, ICMP 4
  std::span<const uint8_t> payload;    // bytes after the transport header

  bool isTcp() const noexcept { return hasTransport && protocol == kProtoTcp; }
  bool isUdp() const noexcept { return hasTransport && protocol == kProtoUdp; }
  bool isIcmp() const noexcept {
    return hasTransport && (protocol == kProtoIcmp || protocol == kProtoIcmpv6);
  }
  // A connection-opening SYN (not a SYN-ACK).
  bool isSyn() const noexcept { return isTcp() && (tcpFlags & (kTcpSyn | kTcpAck)) == kTcpSyn; }
  // A server's answer to a SYN: its acknowledgment number is the client's
  // ISN + 1, the sequence number of the client's first payload byte.
  bool isSynAck() const noexcept {
    return isTcp() && (tcpFlags & (kTcpSyn | kTcpAck | kTcpRst)) == (kTcpSyn | kTcpAck);
  }
};

struct DecodeResult {
  DecodeError error = DecodeError::Ok;
  PacketView view;
  bool ok() const noexcept { return error == DecodeError::Ok; }
};

// Decodes IPv4 (RFC 791) or IPv6 (RFC 8200) with its extension headers, then
// TCP (RFC 9293), UDP (RFC 768), ICMP (RFC 792) or ICMPv6 (RFC 4443).
// Any other protocol decodes as Ok with hasTransport = false.
DecodeResult decodePacket(std::span<const uint8_t> packet) noexcept;

}  // namespace nfq

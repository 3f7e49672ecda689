// A TCP reset towards the server of a denied flow, as if sent by the client
// (RFC 9293 section 3.5.2), so the server does not keep a half-open
// connection after egressd denied the client's first payload. The kernel's
// REJECT already resets the client side.
//
// buildTcpReset is pure; ResetSender owns raw sockets (one per family) and
// sends with the bypass mark so egressd's own chain lets them through.
// Thread-safety: buildTcpReset any thread; a ResetSender per worker thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "nfq/packet.h"

namespace nfq {

inline constexpr size_t kTcpResetMaxBytes = 60;  // IPv6 + TCP

// Writes an IPv4/IPv6 + TCP RST from packet.src:srcPort to packet.dst:dstPort
// with sequence number `seq` into `out`; returns its length (0 when `out`
// is smaller than kTcpResetMaxBytes). `seq` must be the first byte the
// server has not acknowledged (the first payload's sequence number):
// RFC 5961 section 3.2 makes a server accept only that exact number.
size_t buildTcpReset(const PacketView& packet, uint32_t seq, std::span<uint8_t> out) noexcept;

// The Internet checksum (RFC 1071) of the TCP segment with its pseudo-header
// (RFC 9293 section 3.1, RFC 8200 section 8.1); 0 when a received segment is
// correct.
uint16_t tcpChecksum(const PacketView& packet, std::span<const uint8_t> segment) noexcept;

class ResetSender {
 public:
  // Opens raw sockets; without CAP_NET_RAW they stay closed and send()
  // returns false (counted by the caller).
  explicit ResetSender(uint32_t bypassMark) noexcept;
  ~ResetSender();
  ResetSender(const ResetSender&) = delete;
  ResetSender& operator=(const ResetSender&) = delete;

  bool send(const PacketView& packet, uint32_t seq) noexcept;

 private:
  int v4_ = -1;
  int v6_ = -1;
};

}  // namespace nfq

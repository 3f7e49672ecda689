#include "nfq/tcp_reset.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstring>

#ifndef IPV6_HDRINCL
#define IPV6_HDRINCL 36  // linux/in6.h; glibc's netinet/in.h lacks it
#endif

namespace nfq {
namespace {

void put16(uint8_t* p, uint16_t v) noexcept {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void put32(uint8_t* p, uint32_t v) noexcept {
  put16(p, static_cast<uint16_t>(v >> 16));
  put16(p + 2, static_cast<uint16_t>(v));
}

uint32_t sum16(const uint8_t* p, size_t n, uint32_t sum) noexcept {
  for (size_t i = 0; i + 1 < n; i += 2) sum += static_cast<uint32_t>((p[i] << 8) | p[i + 1]);
  if (n % 2 != 0) sum += static_cast<uint32_t>(p[n - 1] << 8);
  return sum;
}

uint16_t fold(uint32_t sum) noexcept {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum & 0xffff);
}

}  // namespace

uint16_t tcpChecksum(const PacketView& packet, std::span<const uint8_t> segment) noexcept {
  const size_t addressBytes = packet.src.byteLength();
  uint32_t sum = sum16(packet.src.bytes.data(), addressBytes, 0);
  sum = sum16(packet.dst.bytes.data(), addressBytes, sum);
  sum += kProtoTcp;
  sum += static_cast<uint32_t>(segment.size() & 0xffff);
  sum += static_cast<uint32_t>(segment.size() >> 16);
  sum = sum16(segment.data(), segment.size(), sum);
  return fold(sum);
}

size_t buildTcpReset(const PacketView& packet, uint32_t seq, std::span<uint8_t> out) noexcept {
  if (out.size() < kTcpResetMaxBytes) return 0;
  const bool v4 = packet.src.family == common::IpFamily::V4;
  const size_t ipBytes = v4 ? 20 : 40;
  uint8_t* ip = out.data();
  std::memset(ip, 0, ipBytes + 20);
  if (v4) {
    // RFC 791 section 3.1; DF set, the kernel fills the id.
    ip[0] = 0x45;
    put16(ip + 2, 40);
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = kProtoTcp;
    std::memcpy(ip + 12, packet.src.bytes.data(), 4);
    std::memcpy(ip + 16, packet.dst.bytes.data(), 4);
    put16(ip + 10, fold(sum16(ip, 20, 0)));
  } else {
    // RFC 8200 section 3.
    ip[0] = 0x60;
    put16(ip + 4, 20);
    ip[6] = kProtoTcp;
    ip[7] = 64;
    std::memcpy(ip + 8, packet.src.bytes.data(), 16);
    std::memcpy(ip + 24, packet.dst.bytes.data(), 16);
  }
  uint8_t* tcp = ip + ipBytes;
  put16(tcp, packet.srcPort);
  put16(tcp + 2, packet.dstPort);
  put32(tcp + 4, seq);
  tcp[12] = 5 << 4;
  tcp[13] = kTcpRst;
  put16(tcp + 16, tcpChecksum(packet, std::span<const uint8_t>(tcp, 20)));
  return ipBytes + 20;
}

ResetSender::ResetSender(uint32_t bypassMark) noexcept {
  const int one = 1;
  v4_ = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);  // IPPROTO_RAW implies IP_HDRINCL
  v6_ = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  for (int fd : {v4_, v6_}) {
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_MARK, &bypassMark, sizeof bypassMark);
  }
  if (v6_ >= 0) setsockopt(v6_, IPPROTO_IPV6, IPV6_HDRINCL, &one, sizeof one);
}

ResetSender::~ResetSender() {
  if (v4_ >= 0) close(v4_);
  if (v6_ >= 0) close(v6_);
}

bool ResetSender::send(const PacketView& packet, uint32_t seq) noexcept {
  std::array<uint8_t, kTcpResetMaxBytes> buffer{};
  const size_t length = buildTcpReset(packet, seq, buffer);
  if (packet.dst.family == common::IpFamily::V4) {
    if (v4_ < 0) return false;
    sockaddr_in to{};
    to.sin_family = AF_INET;
    std::memcpy(&to.sin_addr, packet.dst.bytes.data(), 4);
    return sendto(v4_, buffer.data(), length, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to) ==
           static_cast<ssize_t>(length);
  }
  if (v6_ < 0) return false;
  sockaddr_in6 to{};
  to.sin6_family = AF_INET6;
  std::memcpy(&to.sin6_addr, packet.dst.bytes.data(), 16);
  return sendto(v6_, buffer.data(), length, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to) ==
         static_cast<ssize_t>(length);
}

}  // namespace nfq

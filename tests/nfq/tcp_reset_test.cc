// The RST towards the server: it decodes as a TCP reset of the same flow,
// with the requested sequence number and a correct checksum.
#include <catch2/catch.hpp>

#include <array>

#include "nfq/tcp_reset.h"
#include "tests/nfq/packet_builder.h"

using namespace nfqtest;

TEST_CASE("the server-side reset is a valid RST of the flow", "[nfq][tcp_reset]") {
  for (const Bytes& original :
       {ipv4("10.1.0.5", "192.0.2.10", nfq::kProtoTcp, tcp(40000, 443, nfq::kTcpAck, text("hello"))),
        ipv6("fd00::5", "2001:db8::10", nfq::kProtoTcp, tcp(40000, 443, nfq::kTcpAck, text("hello")))}) {
    const auto flow = nfq::decodePacket(original).view;
    std::array<uint8_t, nfq::kTcpResetMaxBytes> out{};
    const size_t length = nfq::buildTcpReset(flow, 0xfffffff0u, out);
    REQUIRE(length == (flow.src.family == common::IpFamily::V4 ? 40u : 60u));
    const auto reset = nfq::decodePacket(std::span<const uint8_t>(out.data(), length));
    REQUIRE(reset.ok());
    CHECK(reset.view.src == flow.src);
    CHECK(reset.view.dst == flow.dst);
    CHECK(reset.view.srcPort == 40000);
    CHECK(reset.view.dstPort == 443);
    CHECK(int(reset.view.tcpFlags) == int(nfq::kTcpRst));
    CHECK(reset.view.tcpSeq == 0xfffffff0u);
    CHECK(reset.view.payload.empty());
    const size_t ip = reset.view.networkHeaderLength;
    CHECK(nfq::tcpChecksum(reset.view, std::span<const uint8_t>(out.data() + ip, length - ip)) == 0);
    if (flow.src.family == common::IpFamily::V4) {
      // The IPv4 header checksum sums to 0xffff too.
      uint32_t sum = 0;
      for (size_t i = 0; i < 20; i += 2) sum += static_cast<uint32_t>((out[i] << 8) | out[i + 1]);
      while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
      CHECK(sum == 0xffff);
    }
  }
}

TEST_CASE("a short output buffer gets nothing", "[nfq][tcp_reset]") {
  const Bytes original = ipv4("10.1.0.5", "192.0.2.10", nfq::kProtoTcp, tcp(1, 2, nfq::kTcpAck));
  std::array<uint8_t, 59> small{};
  CHECK(nfq::buildTcpReset(nfq::decodePacket(original).view, 1, small) == 0);
}

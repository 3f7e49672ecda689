// The packet decoder, table-driven: {description, bytes, expected}. Every
// error value is produced by at least one row.
#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <vector>

#include "nfq/packet.h"
#include "tests/nfq/packet_builder.h"

using namespace nfqtest;
using nfq::DecodeError;

namespace {

struct Expected {
  DecodeError error = DecodeError::Ok;
  const char* src = nullptr;
  const char* dst = nullptr;
  uint8_t protocol = 0;
  bool hasTransport = false;
  uint16_t srcPort = 0, dstPort = 0;
  uint8_t flags = 0;
  size_t payloadSize = 0;
  bool fragment = false;
  bool truncated = false;
  uint8_t icmpType = 0;
};

struct Row {
  const char* description;
  Bytes bytes;
  Expected expected;
};

Bytes cut(Bytes b, size_t size) {
  b.resize(size);
  return b;
}

const Bytes kHello = text("GET / HTTP/1.1\r\nHost: a\r\n\r\n");

std::vector<Row> rows() {
  using nfq::kProtoTcp;
  using nfq::kProtoUdp;
  const Bytes v4syn = ipv4("10.1.0.5", "203.0.113.7", kProtoTcp, tcp(40000, 443, nfq::kTcpSyn, {}, 20));
  const Bytes v6syn = ipv6("fd00::5", "2001:db8::7", kProtoTcp, tcp(40000, 443, nfq::kTcpSyn));
  return {
      {"IPv4 TCP SYN with options",
       v4syn,
       {DecodeError::Ok, "10.1.0.5", "203.0.113.7", kProtoTcp, true, 40000, 443, nfq::kTcpSyn, 0}},
      {"IPv4 TCP data with IP options",
       ipv4("10.1.0.5", "203.0.113.7", kProtoTcp, tcp(40001, 80, nfq::kTcpAck | nfq::kTcpPsh, kHello), {8}),
       {DecodeError::Ok, "10.1.0.5", "203.0.113.7", kProtoTcp, true, 40001, 80, 0x18, kHello.size()}},
      {"IPv4 Ethernet padding after total length is ignored",
       cat({ipv4("10.1.0.5", "203.0.113.7", kProtoTcp, tcp(1, 2, nfq::kTcpAck)), Bytes(6, 0)}),
       {DecodeError::Ok, "10.1.0.5", "203.0.113.7", kProtoTcp, true, 1, 2, nfq::kTcpAck, 0}},
      {"IPv4 copy shorter than total length: truncated payload",
       cut(ipv4("10.1.0.5", "203.0.113.7", kProtoTcp, tcp(1, 443, nfq::kTcpAck, Bytes(100, 7))),
           20 + 20 + 30),
       {DecodeError::Ok, "10.1.0.5", "203.0.113.7", kProtoTcp, true, 1, 443, nfq::kTcpAck, 30, false, true}},
      {"IPv4 UDP",
       ipv4("10.1.0.5", "198.51.100.1", kProtoUdp, udp(5353, 443, Bytes(1200, 0xc3))),
       {DecodeError::Ok, "10.1.0.5", "198.51.100.1", kProtoUdp, true, 5353, 443, 0, 1200}},
      {"IPv4 ICMP echo request",
       ipv4("10.1.0.5", "198.51.100.1", nfq::kProtoIcmp, icmp(8)),
       {DecodeError::Ok, "10.1.0.5", "198.51.100.1", nfq::kProtoIcmp, true, 0, 0, 0, 4, false, false, 8}},
      {"IPv4 GRE: no transport fields",
       ipv4("10.1.0.5", "198.51.100.1", 47, Bytes(8, 0)),
       {DecodeError::Ok, "10.1.0.5", "198.51.100.1", 47, false}},
      {"IPv4 first fragment (MF set, offset 0)",
       ipv4("10.1.0.5", "198.51.100.1", kProtoUdp, cut(udp(1, 443, Bytes(2000, 1)), 8 + 1472), {0, 0x2000}),
       {DecodeError::Ok, "10.1.0.5", "198.51.100.1", kProtoUdp, true, 1, 443, 0, 1472, true}},
      {"IPv4 non-first fragment",
       ipv4("10.1.0.5", "198.51.100.1", kProtoUdp, Bytes(64, 1), {0, 185}),
       {DecodeError::NonFirstFragment, "10.1.0.5", "198.51.100.1", kProtoUdp}},
      {"empty", {}, {DecodeError::Empty}},
      {"IP version 5", Bytes{0x50, 0, 0, 20}, {DecodeError::BadIpVersion}},
      {"IPv4 shorter than 20 bytes", cut(v4syn, 19), {DecodeError::Ipv4HeaderTruncated}},
      {"IPv4 IHL 4",
       [&] {
         Bytes b = v4syn;
         b[0] = 0x44;
         return b;
       }(),
       {DecodeError::Ipv4BadHeaderLength, "10.1.0.5", "203.0.113.7", kProtoTcp}},
      {"IPv4 IHL beyond the buffer",
       [&] {
         Bytes b = cut(v4syn, 30);
         b[0] = 0x4f;
         return b;
       }(),
       {DecodeError::Ipv4HeaderTruncated, "10.1.0.5", "203.0.113.7", kProtoTcp}},
      {"IPv4 total length below IHL",
       ipv4("10.1.0.5", "203.0.113.7", kProtoTcp, tcp(1, 2, 0), {0, 0, -25}),
       {DecodeError::Ipv4BadTotalLength, "10.1.0.5", "203.0.113.7", kProtoTcp}},
      {"IPv4 TCP header cut at 19 bytes",
       ipv4("10.1.0.5", "203.0.113.7", kProtoTcp, Bytes(19, 0)),
       {DecodeError::TcpHeaderTruncated, "10.1.0.5", "203.0.113.7", kProtoTcp}},
      {"TCP data offset 4",
       [&] {
         Bytes t = tcp(1, 2, 0);
         t[12] = 0x40;
         return ipv4("10.1.0.5", "203.0.113.7", kProtoTcp, t);
       }(),
       {DecodeError::TcpBadDataOffset, "10.1.0.5", "203.0.113.7", kProtoTcp}},
      {"TCP options beyond the packet",
       [&] {
         Bytes t = tcp(1, 2, 0);
         t[12] = 0xf0;
         return ipv4("10.1.0.5", "203.0.113.7", kProtoTcp, t);
       }(),
       {DecodeError::TcpHeaderTruncated, "10.1.0.5", "203.0.113.7", kProtoTcp}},
      {"UDP header cut",
       ipv4("10.1.0.5", "203.0.113.7", kProtoUdp, Bytes(7, 0)),
       {DecodeError::UdpHeaderTruncated, "10.1.0.5", "203.0.113.7", kProtoUdp}},
      {"UDP length 7",
       [&] {
         Bytes u = udp(1, 2, Bytes(4, 0));
         put16(u, 4, 7);
         return ipv4("10.1.0.5", "203.0.113.7", kProtoUdp, u);
       }(),
       {DecodeError::UdpBadLength, "10.1.0.5", "203.0.113.7", kProtoUdp}},
      {"UDP length beyond an unfragmented datagram",
       [&] {
         Bytes u = udp(1, 2, Bytes(4, 0));
         put16(u, 4, 100);
         return ipv4("10.1.0.5", "203.0.113.7", kProtoUdp, u);
       }(),
       {DecodeError::UdpBadLength, "10.1.0.5", "203.0.113.7", kProtoUdp}},
      {"ICMP cut at 3 bytes",
       ipv4("10.1.0.5", "203.0.113.7", nfq::kProtoIcmp, Bytes{8, 0, 0}),
       {DecodeError::IcmpTruncated, "10.1.0.5", "203.0.113.7", nfq::kProtoIcmp}},
      {"IPv6 TCP SYN",
       v6syn,
       {DecodeError::Ok, "fd00::5", "2001:db8::7", kProtoTcp, true, 40000, 443, nfq::kTcpSyn, 0}},
      {"IPv6 hop-by-hop, routing, destination options, then TCP data",
       ipv6("fd00::5", "2001:db8::7", 0,
            cat({ext(43), ext(60, 2), ext(kProtoTcp), tcp(40000, 80, nfq::kTcpAck, kHello)})),
       {DecodeError::Ok, "fd00::5", "2001:db8::7", kProtoTcp, true, 40000, 80, nfq::kTcpAck, kHello.size()}},
      {"IPv6 AH then UDP",
       ipv6("fd00::5", "2001:db8::7", 51, cat({authHeader(kProtoUdp), udp(9, 443, Bytes(50, 2))})),
       {DecodeError::Ok, "fd00::5", "2001:db8::7", kProtoUdp, true, 9, 443, 0, 50}},
      {"IPv6 first fragment",
       ipv6("fd00::5", "2001:db8::7", 44,
            cat({fragmentHeader(kProtoUdp, 0, true), cut(udp(9, 443, Bytes(3000, 2)), 1000)})),
       {DecodeError::Ok, "fd00::5", "2001:db8::7", kProtoUdp, true, 9, 443, 0, 992, true}},
      {"IPv6 non-first fragment",
       ipv6("fd00::5", "2001:db8::7", 44, cat({fragmentHeader(kProtoUdp, 125, false), Bytes(64, 0)})),
       {DecodeError::NonFirstFragment, "fd00::5", "2001:db8::7", kProtoUdp}},
      {"IPv6 ESP stops decoding",
       ipv6("fd00::5", "2001:db8::7", 60, cat({ext(50), Bytes(40, 9)})),
       {DecodeError::Ok, "fd00::5", "2001:db8::7", 50, false}},
      {"IPv6 no next header",
       ipv6("fd00::5", "2001:db8::7", 59, {}),
       {DecodeError::Ok, "fd00::5", "2001:db8::7", 59, false}},
      {"IPv6 ICMPv6 echo",
       ipv6("fd00::5", "2001:db8::7", nfq::kProtoIcmpv6, icmp(128)),
       {DecodeError::Ok, "fd00::5", "2001:db8::7", nfq::kProtoIcmpv6, true, 0, 0, 0, 4, false, false, 128}},
      {"IPv6 shorter than 40 bytes", cut(v6syn, 39), {DecodeError::Ipv6HeaderTruncated}},
      {"IPv6 jumbogram",
       ipv6("fd00::5", "2001:db8::7", 0, ext(kProtoTcp), -8),
       {DecodeError::Ipv6Jumbogram, "fd00::5", "2001:db8::7"}},
      {"IPv6 extension header cut",
       ipv6("fd00::5", "2001:db8::7", 0, Bytes{6, 0, 1, 2}),
       {DecodeError::Ipv6ExtensionTruncated, "fd00::5", "2001:db8::7", 0}},
      {"IPv6 extension length beyond the payload",
       ipv6("fd00::5", "2001:db8::7", 60,
            [] {
              Bytes e = ext(6);
              e[1] = 3;
              return e;
            }()),
       {DecodeError::Ipv6ExtensionTruncated, "fd00::5", "2001:db8::7", 60}},
      {"IPv6 17 extension headers",
       [] {
         Bytes chain;
         for (int i = 0; i < 17; ++i) chain = cat({chain, ext(60)});
         chain = cat({chain, tcp(1, 2, 0)});
         return ipv6("fd00::5", "2001:db8::7", 60, chain);
       }(),
       {DecodeError::Ipv6TooManyExtensions, "fd00::5", "2001:db8::7", 60}},
      {"IPv6 payload length larger than the copy: truncated",
       cut(ipv6("fd00::5", "2001:db8::7", kProtoTcp, tcp(1, 443, nfq::kTcpAck, Bytes(500, 1))),
           40 + 20 + 100),
       {DecodeError::Ok, "fd00::5", "2001:db8::7", kProtoTcp, true, 1, 443, nfq::kTcpAck, 100, false, true}},
  };
}

}  // namespace

TEST_CASE("packets decode as the table says", "[nfq][packet]") {
  std::set<DecodeError> seen;
  for (const Row& row : rows()) {
    INFO(row.description);
    const auto result = nfq::decodePacket(row.bytes);
    seen.insert(result.error);
    CHECK(nfq::decodeErrorName(result.error) == nfq::decodeErrorName(row.expected.error));
    if (row.expected.src != nullptr) {
      CHECK(result.view.src.toString() == row.expected.src);
      CHECK(result.view.dst.toString() == row.expected.dst);
      CHECK(int(result.view.protocol) == int(row.expected.protocol));
    }
    if (result.ok()) {
      CHECK(result.view.hasTransport == row.expected.hasTransport);
      CHECK(result.view.srcPort == row.expected.srcPort);
      CHECK(result.view.dstPort == row.expected.dstPort);
      CHECK(int(result.view.tcpFlags) == int(row.expected.flags));
      CHECK(result.view.payload.size() == row.expected.payloadSize);
      CHECK(result.view.fragment == row.expected.fragment);
      CHECK(result.view.truncated == row.expected.truncated);
      CHECK(int(result.view.icmpType) == int(row.expected.icmpType));
      // The payload is a view into the input, ending inside it.
      if (!result.view.payload.empty()) {
        CHECK(result.view.payload.data() >= row.bytes.data());
        CHECK(result.view.payload.data() + result.view.payload.size() <= row.bytes.data() + row.bytes.size());
      }
    }
  }
  // Every named error is exercised by some row.
  CHECK(seen.size() == nfq::kDecodeErrorCount);
}

TEST_CASE("the payload view starts right after the TCP options", "[nfq][packet]") {
  const Bytes packet = ipv4("10.0.0.1", "192.0.2.1", nfq::kProtoTcp, tcp(1, 80, nfq::kTcpAck, kHello, 12));
  const auto result = nfq::decodePacket(packet);
  REQUIRE(result.ok());
  CHECK(result.view.networkHeaderLength == 20);
  CHECK(result.view.transportHeaderLength == 32);
  REQUIRE(result.view.payload.size() == kHello.size());
  CHECK(std::string(result.view.payload.begin(), result.view.payload.end()) ==
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
}

TEST_CASE("SYN, SYN-ACK and data are told apart", "[nfq][packet]") {
  auto decode = [](uint8_t flags) {
    return nfq::decodePacket(ipv4("10.0.0.1", "192.0.2.1", nfq::kProtoTcp, tcp(1, 80, flags))).view;
  };
  CHECK(decode(nfq::kTcpSyn).isSyn());
  CHECK_FALSE(decode(nfq::kTcpSyn | nfq::kTcpAck).isSyn());
  CHECK_FALSE(decode(nfq::kTcpAck).isSyn());
  CHECK(decode(nfq::kTcpAck).isTcp());
  // The server's answer (the insertion guard reads where the stream starts
  // from its acknowledgment number); a SYN-ACK with RST is no answer.
  CHECK(decode(nfq::kTcpSyn | nfq::kTcpAck).isSynAck());
  CHECK_FALSE(decode(nfq::kTcpSyn).isSynAck());
  CHECK_FALSE(decode(nfq::kTcpSyn | nfq::kTcpAck | nfq::kTcpRst).isSynAck());
  auto segment = tcp(1, 80, nfq::kTcpSyn | nfq::kTcpAck, {}, 0, 0x01020304);
  segment[8] = 0xde;
  segment[9] = 0xad;
  segment[10] = 0xbe;
  segment[11] = 0xef;
  const auto view = nfq::decodePacket(ipv4("192.0.2.1", "10.0.0.1", nfq::kProtoTcp, segment)).view;
  CHECK(view.tcpSeq == 0x01020304u);
  CHECK(view.tcpAck == 0xdeadbeefu);
}

TEST_CASE("every prefix of a valid packet decodes without reading past it", "[nfq][packet]") {
  // Under ASan a read past the exact-size copy aborts the test.
  for (const Row& row : rows()) {
    for (size_t size = 0; size <= row.bytes.size(); ++size) {
      std::vector<uint8_t> exact(row.bytes.begin(), row.bytes.begin() + static_cast<long>(size));
      exact.shrink_to_fit();
      const auto result = nfq::decodePacket(exact);
      if (result.ok() && !result.view.payload.empty()) {
        CHECK(result.view.payload.data() + result.view.payload.size() <= exact.data() + exact.size());
      }
    }
  }
}

TEST_CASE("decode error names are unique and stable", "[nfq][packet]") {
  std::set<std::string> names;
  for (size_t i = 0; i < nfq::kDecodeErrorCount; ++i) {
    names.insert(std::string(nfq::decodeErrorName(static_cast<DecodeError>(i))));
  }
  CHECK(names.size() == nfq::kDecodeErrorCount);
  CHECK(nfq::decodeErrorName(DecodeError::NonFirstFragment) == "non_first_fragment");
  CHECK(nfq::decodeErrorName(DecodeError::Count) == "unknown");
}

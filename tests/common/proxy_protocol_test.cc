// The PROXY protocol header parser (v1 text, v2 binary), table-driven:
// what HAProxy and an AWS NLB send (IPv4, IPv6, LOCAL health checks,
// TLVs), every way to be truncated, and the malformed headers a confused
// or hostile sender could produce; and the datagram form a DNS load
// balancer (dnsdist useProxyProtocol) puts in front of each query.
#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "common/proxy_protocol.h"

namespace {

using S = common::ProxyHeaderStatus;

std::span<const uint8_t> bytes(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

const std::string kSignature("\r\n\r\n\0\r\nQUIT\n", 12);

// A v2 header: signature, version/command, family/transport, length, body.
std::string v2(uint8_t versionCommand, uint8_t familyTransport, const std::string& body,
               std::optional<uint16_t> length = std::nullopt) {
  const uint16_t len = length.value_or(static_cast<uint16_t>(body.size()));
  std::string out = kSignature;
  out += static_cast<char>(versionCommand);
  out += static_cast<char>(familyTransport);
  out += static_cast<char>(len >> 8);
  out += static_cast<char>(len & 0xFF);
  return out + body;
}

// 192.0.2.7:40412 -> 10.80.10.10:3128
const std::string kInet4Block("\xC0\x00\x02\x07\x0A\x50\x0A\x0A\x9D\xDC\x0C\x38", 12);
// 2001:db8::7:40412 -> fd00::1:3128
const std::string kInet6Block = std::string("\x20\x01\x0D\xB8", 4) + std::string(11, '\0') + "\x07" +
                                std::string("\xFD\x00", 2) + std::string(13, '\0') + "\x01" +
                                std::string("\x9D\xDC\x0C\x38", 4);

struct Case {
  const char* description;
  std::string input;
  S status;
  std::string source = "";  // "ip:port" when Ok and not local
  bool local = false;
  size_t length = 0;  // when Ok: 0 means the whole input
  const char* whyContains = "";
};

}  // namespace

TEST_CASE("PROXY headers: v1 and v2, valid, truncated and malformed", "[common][proxy_protocol]") {
  const std::string request = "CONNECT api.example.com:443 HTTP/1.1\r\n\r\n";
  const std::string tlvs = std::string("\x04\x00\x03xyz", 6) +       // PP2_TYPE_NOOP
                           std::string("\xEA\x00\x06\x01vpce1", 9);  // PP2_TYPE_AWS
  const Case cases[] = {
      // v1, spec section 2.1
      {"v1 TCP4", "PROXY TCP4 192.0.2.7 10.80.10.10 40412 3128\r\n", S::Ok, "192.0.2.7:40412"},
      {"v1 TCP4, the request after it", "PROXY TCP4 192.0.2.7 10.80.10.10 40412 3128\r\n" + request, S::Ok,
       "192.0.2.7:40412", false, 45},
      {"v1 TCP6", "PROXY TCP6 2001:db8::7 fd00::1 40412 3128\r\n", S::Ok, "[2001:db8::7]:40412"},
      {"v1 UNKNOWN (the balancer's own connection)", "PROXY UNKNOWN\r\n", S::Ok, "", true},
      {"v1 UNKNOWN with addresses, ignored", "PROXY UNKNOWN ffff:f...f:ffff 1.2.3.4 65535 65535\r\n", S::Ok,
       "", true},
      {"v1 longest line (107 bytes)",
       "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 "
       "65535\r\n",
       S::Ok, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"},
      {"v1 empty input", "", S::NeedMore},
      {"v1 prefix only", "PRO", S::NeedMore},
      {"v1 without its CRLF yet", "PROXY TCP4 192.0.2.7 10.80.10.10 40412 31", S::NeedMore},
      {"v1 CR without LF yet", "PROXY TCP4 192.0.2.7 10.80.10.10 40412 3128\r", S::NeedMore},
      {"v1 no CRLF within 107 bytes", "PROXY TCP4 " + std::string(100, '1'), S::Malformed, "", false, 0,
       "107 bytes"},
      {"v1 bare LF", "PROXY TCP4 192.0.2.7 10.80.10.10 40412 3128\n", S::Malformed, "", false, 0, "CRLF"},
      {"v1 TCP4 with IPv6 addresses", "PROXY TCP4 2001:db8::7 fd00::1 40412 3128\r\n", S::Malformed, "",
       false, 0, "protocol"},
      {"v1 TCP6 with IPv4 addresses", "PROXY TCP6 192.0.2.7 10.80.10.10 40412 3128\r\n", S::Malformed, "",
       false, 0, "protocol"},
      {"v1 UDP4", "PROXY UDP4 192.0.2.7 10.80.10.10 40412 3128\r\n", S::Malformed, "", false, 0, "TCP4"},
      {"v1 lower case", "PROXY tcp4 192.0.2.7 10.80.10.10 40412 3128\r\n", S::Malformed},
      {"v1 port over 65535", "PROXY TCP4 192.0.2.7 10.80.10.10 65536 3128\r\n", S::Malformed, "", false, 0,
       "port"},
      {"v1 port with a leading zero", "PROXY TCP4 192.0.2.7 10.80.10.10 040412 3128\r\n", S::Malformed},
      {"v1 address with a leading zero", "PROXY TCP4 192.0.2.07 10.80.10.10 40412 3128\r\n", S::Malformed},
      {"v1 two spaces", "PROXY TCP4  192.0.2.7 10.80.10.10 40412 3128\r\n", S::Malformed},
      {"v1 a field missing", "PROXY TCP4 192.0.2.7 10.80.10.10 40412\r\n", S::Malformed, "", false, 0,
       "fewer"},
      {"v1 a field too many", "PROXY TCP4 192.0.2.7 10.80.10.10 40412 3128 9\r\n", S::Malformed, "", false, 0,
       "more"},
      {"v1 trailing space", "PROXY TCP4 192.0.2.7 10.80.10.10 40412 3128 \r\n", S::Malformed},
      {"v1 no protocol", "PROXY \r\n", S::Malformed},
      // v2, spec section 2.2
      {"v2 PROXY TCP over IPv4", v2(0x21, 0x11, kInet4Block), S::Ok, "192.0.2.7:40412"},
      {"v2 PROXY TCP over IPv6", v2(0x21, 0x21, kInet6Block), S::Ok, "[2001:db8::7]:40412"},
      {"v2 with TLVs (NOOP, AWS VPC endpoint), skipped", v2(0x21, 0x11, kInet4Block + tlvs), S::Ok,
       "192.0.2.7:40412"},
      {"v2, the request after it", v2(0x21, 0x11, kInet4Block) + request, S::Ok, "192.0.2.7:40412", false,
       16 + 12},
      {"v2 LOCAL (a health check), no addresses", v2(0x20, 0x00, ""), S::Ok, "", true},
      {"v2 LOCAL with an address block, ignored", v2(0x20, 0x11, kInet4Block), S::Ok, "", true},
      {"v2 PROXY with family UNSPEC", v2(0x21, 0x00, ""), S::Ok, "", true},
      {"v2 PROXY over UNIX sockets", v2(0x21, 0x31, std::string(216, 'u')), S::Ok, "", true},
      {"v2 signature cut short", kSignature.substr(0, 7), S::NeedMore},
      {"v2 fixed part cut short", v2(0x21, 0x11, kInet4Block).substr(0, 14), S::NeedMore},
      {"v2 address block cut short", v2(0x21, 0x11, kInet4Block).substr(0, 20), S::NeedMore},
      {"v2 TLVs cut short", v2(0x21, 0x11, kInet4Block + tlvs).substr(0, 30), S::NeedMore},
      {"v2 wrong signature byte", "\r\n\r\n" + std::string("\x01", 1) + kSignature.substr(5),
       S::NotThisProtocol},
      {"v2 version 1", v2(0x11, 0x11, kInet4Block), S::Malformed, "", false, 0, "version"},
      {"v2 command 2", v2(0x22, 0x11, kInet4Block), S::Malformed, "", false, 0, "command"},
      {"v2 family 4", v2(0x21, 0x41, kInet4Block), S::Malformed, "", false, 0, "family"},
      {"v2 DGRAM", v2(0x21, 0x12, kInet4Block), S::Malformed, "", false, 0, "transport"},
      {"v2 INET with an unspecified transport", v2(0x21, 0x10, kInet4Block), S::Malformed},
      {"v2 length shorter than the IPv4 block", v2(0x21, 0x11, kInet4Block.substr(0, 11)), S::Malformed, "",
       false, 0, "address block"},
      {"v2 length shorter than the IPv6 block", v2(0x21, 0x21, kInet4Block), S::Malformed, "", false, 0,
       "address block"},
      {"v2 length over the bound", v2(0x21, 0x11, kInet4Block, 1025), S::Malformed, "", false, 0, "1040"},
      {"v2 length 65535", v2(0x21, 0x11, kInet4Block, 65535), S::Malformed},
      {"v2 TLV running past the header", v2(0x21, 0x11, kInet4Block + std::string("\x04\x00\x09xy", 5)),
       S::Malformed, "", false, 0, "TLV"},
      {"v2 TLV header cut by the length", v2(0x21, 0x11, kInet4Block + std::string("\x04\x00", 2)),
       S::Malformed, "", false, 0, "TLV"},
      // Neither
      {"an HTTP request", request, S::NotThisProtocol},
      {"TLS ClientHello", std::string("\x16\x03\x01\x02\x00\x01", 6), S::NotThisProtocol},
      {"PROXY in lower case", "proxy TCP4 ...", S::NotThisProtocol},
  };
  for (const Case& c : cases) {
    CAPTURE(c.description);
    common::ProxyHeader header;
    const S status = common::parseProxyHeader(bytes(c.input), header);
    CHECK(common::proxyHeaderStatusName(status) == common::proxyHeaderStatusName(c.status));
    if (status == S::Malformed) {
      CHECK_FALSE(header.why.empty());
      CHECK(header.why.find(c.whyContains) != std::string_view::npos);
    }
    if (status != S::Ok) continue;
    CHECK(header.length == (c.length == 0 ? c.input.size() : c.length));
    CHECK(header.local == c.local);
    if (!c.local) CHECK(header.source.toString() == c.source);
  }
}

TEST_CASE("PROXY headers: the destination and version are read too", "[common][proxy_protocol]") {
  common::ProxyHeader header;
  REQUIRE(common::parseProxyHeader(bytes(v2(0x21, 0x21, kInet6Block)), header) == S::Ok);
  CHECK(header.version == 2);
  CHECK(header.destination.toString() == "[fd00::1]:3128");
  REQUIRE(common::parseProxyHeader(bytes("PROXY TCP4 192.0.2.7 10.80.10.10 40412 3128\r\n"), header) ==
          S::Ok);
  CHECK(header.version == 1);
  CHECK(header.destination.toString() == "10.80.10.10:3128");
}

TEST_CASE("PROXY headers: every prefix of a valid header needs more, never more than it",
          "[common][proxy_protocol]") {
  for (const std::string& whole : {std::string("PROXY TCP6 2001:db8::7 fd00::1 40412 3128\r\n"),
                                   v2(0x21, 0x21, kInet6Block + std::string("\x04\x00\x02zz", 5))}) {
    for (size_t n = 0; n < whole.size(); ++n) {
      CAPTURE(n);
      common::ProxyHeader header;
      CHECK(common::parseProxyHeader(bytes(std::string_view(whole).substr(0, n)), header) == S::NeedMore);
    }
  }
}

TEST_CASE("PROXY headers before a datagram: v2 DGRAM only, whole", "[common][proxy_protocol]") {
  const auto carrier = common::ProxyCarrier::Datagram;
  common::ProxyHeader header;
  // dnsdist's query: v2 PROXY, INET/DGRAM (0x12) or INET6/DGRAM (0x22).
  REQUIRE(common::parseProxyHeader(bytes(v2(0x21, 0x12, kInet4Block) + "dns"), header, carrier) == S::Ok);
  CHECK(header.length == 16 + 12);
  CHECK(header.source.toString() == "192.0.2.7:40412");
  REQUIRE(common::parseProxyHeader(bytes(v2(0x21, 0x22, kInet6Block)), header, carrier) == S::Ok);
  CHECK(header.source.toString() == "[2001:db8::7]:40412");
  // dnsdist's health check: LOCAL, UNSPEC, no address block.
  REQUIRE(common::parseProxyHeader(bytes(v2(0x20, 0x00, "")), header, carrier) == S::Ok);
  CHECK(header.local);
  // A STREAM header describes a TCP connection, not this datagram; and
  // the other way round.
  CHECK(common::parseProxyHeader(bytes(v2(0x21, 0x11, kInet4Block)), header, carrier) == S::Malformed);
  CHECK(std::string_view(header.why).find("DGRAM") != std::string_view::npos);
  CHECK(common::parseProxyHeader(bytes(v2(0x21, 0x12, kInet4Block)), header) == S::Malformed);
  CHECK(common::parseProxyHeader(bytes(v2(0x21, 0x10, kInet4Block)), header, carrier) == S::Malformed);
  // v1 names TCP connections only.
  CHECK(common::parseProxyHeader(bytes("PROXY TCP4 192.0.2.7 10.80.10.10 40412 53\r\n"), header, carrier) ==
        S::Malformed);
  CHECK(common::parseProxyHeader(bytes("PROXY"), header, carrier) == S::Malformed);
  // A DNS query is not a header (its ID and flags are not the signature).
  CHECK(common::parseProxyHeader(bytes(std::string("\x12\x34\x01\x00\x00\x01", 6)), header, carrier) ==
        S::NotThisProtocol);
}

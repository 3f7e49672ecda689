// Hand-built packets for the nfq tests: IPv4/IPv6 headers (with options and
// extension headers) around TCP/UDP/ICMP, byte for byte as NFQUEUE hands
// them over (starting at the IP header). Checksums are left zero: the
// decoder does not verify them (the kernel already has).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip_address.h"

namespace nfqtest {

using Bytes = std::vector<uint8_t>;

inline void put16(Bytes& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}

inline Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

inline Bytes text(std::string_view s) {
  return Bytes(s.begin(), s.end());
}

inline Bytes tcp(uint16_t sport, uint16_t dport, uint8_t flags, const Bytes& payload = {},
                 size_t optionBytes = 0, uint32_t seq = 1000) {
  Bytes b(20 + optionBytes, 0);
  put16(b, 0, sport);
  put16(b, 2, dport);
  b[4] = static_cast<uint8_t>(seq >> 24);
  b[5] = static_cast<uint8_t>(seq >> 16);
  b[6] = static_cast<uint8_t>(seq >> 8);
  b[7] = static_cast<uint8_t>(seq);
  b[12] = static_cast<uint8_t>(((20 + optionBytes) / 4) << 4);
  b[13] = flags;
  put16(b, 14, 65535);
  for (size_t i = 20; i < b.size(); ++i) b[i] = 1;  // NOP options
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

inline Bytes udp(uint16_t sport, uint16_t dport, const Bytes& payload = {}) {
  Bytes b(8, 0);
  put16(b, 0, sport);
  put16(b, 2, dport);
  put16(b, 4, static_cast<uint16_t>(8 + payload.size()));
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

inline Bytes icmp(uint8_t type, uint8_t code = 0) {
  return Bytes{type, code, 0, 0, 0, 1, 0, 1};
}

struct V4Options {
  size_t optionBytes = 0;      // multiple of 4
  uint16_t fragmentField = 0;  // flags + offset
  int totalLengthDelta = 0;    // lie about the total length
};

inline Bytes ipv4(const char* src, const char* dst, uint8_t protocol, const Bytes& l4, V4Options o = {}) {
  Bytes b(20 + o.optionBytes, 0);
  b[0] = static_cast<uint8_t>(0x40 | ((20 + o.optionBytes) / 4));
  put16(b, 2, static_cast<uint16_t>(static_cast<int>(b.size() + l4.size()) + o.totalLengthDelta));
  put16(b, 6, o.fragmentField);
  b[8] = 64;
  b[9] = protocol;
  const auto s = common::parseIpAddress(src).value();
  const auto d = common::parseIpAddress(dst).value();
  for (int i = 0; i < 4; ++i) {
    b[12 + i] = s.bytes[i];
    b[16 + i] = d.bytes[i];
  }
  for (size_t i = 20; i < b.size(); ++i) b[i] = 1;  // NOP options
  b.insert(b.end(), l4.begin(), l4.end());
  return b;
}

// `chain` is everything after the fixed header (extension headers + L4).
inline Bytes ipv6(const char* src, const char* dst, uint8_t nextHeader, const Bytes& chain,
                  int lengthDelta = 0) {
  Bytes b(40, 0);
  b[0] = 0x60;
  put16(b, 4, static_cast<uint16_t>(static_cast<int>(chain.size()) + lengthDelta));
  b[6] = nextHeader;
  b[7] = 64;
  const auto s = common::parseIpAddress(src).value();
  const auto d = common::parseIpAddress(dst).value();
  for (int i = 0; i < 16; ++i) {
    b[8 + i] = s.bytes[i];
    b[24 + i] = d.bytes[i];
  }
  b.insert(b.end(), chain.begin(), chain.end());
  return b;
}

// A generic IPv6 extension header (hop-by-hop, routing, destination options)
// of 8 * (units + 1) bytes, padded with PadN.
inline Bytes ext(uint8_t next, uint8_t units = 0) {
  Bytes b(8 * (units + 1), 0);
  b[0] = next;
  b[1] = units;
  b[2] = 1;  // PadN
  b[3] = static_cast<uint8_t>(b.size() - 4);
  return b;
}

inline Bytes fragmentHeader(uint8_t next, uint16_t offsetUnits, bool more) {
  Bytes b(8, 0);
  b[0] = next;
  put16(b, 2, static_cast<uint16_t>((offsetUnits << 3) | (more ? 1 : 0)));
  return b;
}

// Authentication header (RFC 4302) with a 12-byte ICV: (3 + 3) * 4 = 24 bytes.
inline Bytes authHeader(uint8_t next) {
  Bytes b(24, 0);
  b[0] = next;
  b[1] = 4;
  return b;
}

}  // namespace nfqtest

namespace nfqtest {

// A TLS 1.3-style ClientHello in one handshake record (RFC 8446 section
// 4.1.2), with server_name when `sni` is not empty and a padding extension
// (RFC 7685) of `padding` bytes to reach post-quantum sizes.
inline Bytes clientHello(std::string_view sni, size_t padding = 0) {
  Bytes ext;
  auto add16 = [](Bytes& b, size_t v) {
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v));
  };
  if (!sni.empty()) {
    add16(ext, 0);
    add16(ext, sni.size() + 5);
    add16(ext, sni.size() + 3);
    ext.push_back(0);
    add16(ext, sni.size());
    ext.insert(ext.end(), sni.begin(), sni.end());
  }
  // supported_versions: TLS 1.3 (RFC 8446 section 4.2.1)
  add16(ext, 43);
  add16(ext, 3);
  ext.push_back(2);
  add16(ext, 0x0304);
  if (padding > 0) {
    add16(ext, 21);
    add16(ext, padding);
    ext.insert(ext.end(), padding, 0);
  }
  Bytes body;
  add16(body, 0x0303);
  body.insert(body.end(), 32, 0x5a);  // random
  body.push_back(0);                  // legacy_session_id
  add16(body, 2);
  add16(body, 0x1301);  // TLS_AES_128_GCM_SHA256
  body.push_back(1);
  body.push_back(0);  // null compression
  add16(body, ext.size());
  body.insert(body.end(), ext.begin(), ext.end());
  Bytes hs{1, static_cast<uint8_t>(body.size() >> 16), static_cast<uint8_t>(body.size() >> 8),
           static_cast<uint8_t>(body.size())};
  hs.insert(hs.end(), body.begin(), body.end());
  Bytes record{0x16, 0x03, 0x01};
  add16(record, hs.size());
  record.insert(record.end(), hs.begin(), hs.end());
  return record;
}

inline Bytes httpGet(std::string_view host) {
  std::string request =
      "GET / HTTP/1.1\r\nHost: " + std::string(host) + "\r\nUser-Agent: test\r\nAccept: */*\r\n\r\n";
  return Bytes(request.begin(), request.end());
}

}  // namespace nfqtest

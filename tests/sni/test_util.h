// Helpers for the sni/ tests: fixture loading and a ClientHello builder for
// the cases no real client sends (GREASE everywhere, IP literals, broken
// lengths).
#pragma once

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace sni_test {

using Bytes = std::vector<uint8_t>;

inline Bytes readFixture(const std::string& name) {
  std::ifstream in(std::string(SNI_FIXTURES_DIR) + "/" + name, std::ios::binary);
  if (!in) throw std::runtime_error("missing fixture " + name);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

inline Bytes fromHex(std::string_view hex) {
  Bytes out;
  int high = -1;
  for (char c : hex) {
    int v = -1;
    if (c >= '0' && c <= '9') v = c - '0';
    if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
    if (v < 0) continue;
    if (high < 0) {
      high = v;
    } else {
      out.push_back(static_cast<uint8_t>(high << 4 | v));
      high = -1;
    }
  }
  return out;
}

inline void put16(Bytes& b, size_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}
inline void put24(Bytes& b, size_t v) {
  b.push_back(static_cast<uint8_t>(v >> 16));
  put16(b, v & 0xffff);
}
inline void append(Bytes& b, const Bytes& more) {
  b.insert(b.end(), more.begin(), more.end());
}
inline void append(Bytes& b, std::string_view more) {
  b.insert(b.end(), more.begin(), more.end());
}

struct Extension {
  uint16_t type;
  Bytes data;
};

inline Extension sniExtension(std::string_view name) {
  Bytes entry{0};
  put16(entry, name.size());
  append(entry, name);
  Bytes data;
  put16(data, entry.size());
  append(data, entry);
  return {0, data};
}

inline Extension alpnExtension(const std::vector<std::string>& names) {
  Bytes list;
  for (const auto& n : names) {
    list.push_back(static_cast<uint8_t>(n.size()));
    append(list, n);
  }
  Bytes data;
  put16(data, list.size());
  append(data, list);
  return {16, data};
}

inline Extension versionsExtension(const std::vector<uint16_t>& versions) {
  Bytes data{static_cast<uint8_t>(versions.size() * 2)};
  for (uint16_t v : versions) put16(data, v);
  return {43, data};
}

// A ClientHello handshake message (type, uint24 length, body).
struct HelloSpec {
  uint16_t legacyVersion = 0x0303;
  size_t sessionIdLength = 32;
  std::vector<uint16_t> cipherSuites{0x1301, 0x1302};
  Bytes compression{0};
  std::vector<Extension> extensions;
  bool omitExtensions = false;
};

inline Bytes helloMessage(const HelloSpec& spec) {
  Bytes body;
  put16(body, spec.legacyVersion);
  for (int i = 0; i < 32; ++i) body.push_back(static_cast<uint8_t>(i));
  body.push_back(static_cast<uint8_t>(spec.sessionIdLength));
  for (size_t i = 0; i < spec.sessionIdLength; ++i) body.push_back(0xee);
  put16(body, spec.cipherSuites.size() * 2);
  for (uint16_t c : spec.cipherSuites) put16(body, c);
  body.push_back(static_cast<uint8_t>(spec.compression.size()));
  append(body, spec.compression);
  if (!spec.omitExtensions) {
    Bytes exts;
    for (const auto& e : spec.extensions) {
      put16(exts, e.type);
      put16(exts, e.data.size());
      append(exts, e.data);
    }
    put16(body, exts.size());
    append(body, exts);
  }
  Bytes msg{1};
  put24(msg, body.size());
  append(msg, body);
  return msg;
}

// Wraps a handshake message into TLS records of at most `fragment` bytes.
inline Bytes records(const Bytes& message, size_t fragment = 16384, uint8_t minorVersion = 1) {
  Bytes out;
  for (size_t pos = 0; pos < message.size(); pos += fragment) {
    const size_t n = std::min(fragment, message.size() - pos);
    out.push_back(22);
    out.push_back(3);
    out.push_back(minorVersion);
    put16(out, n);
    out.insert(out.end(), message.begin() + static_cast<long>(pos),
               message.begin() + static_cast<long>(pos + n));
  }
  return out;
}

// The handshake message inside a single-record capture.
inline Bytes handshakeOf(const Bytes& stream) {
  Bytes msg;
  size_t pos = 0;
  while (pos + 5 <= stream.size()) {
    const size_t n = size_t{stream[pos + 3]} << 8 | stream[pos + 4];
    msg.insert(msg.end(), stream.begin() + static_cast<long>(pos + 5),
               stream.begin() + static_cast<long>(pos + 5 + n));
    pos += 5 + n;
    if (msg.size() >= 4 && msg.size() >= 4 + (size_t{msg[1]} << 16 | size_t{msg[2]} << 8 | msg[3])) break;
  }
  return msg;
}

}  // namespace sni_test

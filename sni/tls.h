// TLS ClientHello parser: the destination name (SNI), ALPN, offered versions
// and ECH presence from the first bytes a client sends, without terminating
// TLS (RFC 8446 §4.1.2 and §5.1, RFC 5246 §7.4.1.2, RFC 6066 §3, RFC 7301,
// RFC 8701 GREASE, draft-ietf-tls-esni ECH).
//
// Pure functions: no I/O, no allocation, no exceptions, no global state, so
// any thread may call them at once. Results are views into the input (or into
// the caller's scratch buffer, see below) and live as long as those bytes.
// Input is untrusted: every read is bounds-checked, every refusal is named.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "sni/status.h"

namespace sni {

// A ClientHello handshake message (4-byte header + body) larger than this is
// refused (TlsHelloTooLarge). Real ones are 0.2–2 KiB; post-quantum key
// shares (X25519MLKEM768: 1,216 bytes) bring them to ~1.8 KiB.
inline constexpr size_t kMaxClientHelloBytes = 16384 + 4;
// ALPN protocol names kept in ClientHello::alpn (the rest are counted).
inline constexpr size_t kMaxAlpnKept = 8;

inline constexpr uint16_t kTlsExtServerName = 0;
inline constexpr uint16_t kTlsExtAlpn = 16;
inline constexpr uint16_t kTlsExtPreSharedKey = 41;
inline constexpr uint16_t kTlsExtSupportedVersions = 43;
inline constexpr uint16_t kTlsExtEncryptedClientHello = 0xfe0d;

// RFC 8701 §2: GREASE code points are 0x?A?A with both bytes equal.
constexpr bool isGrease(uint16_t value) noexcept {
  return (value & 0x0f0f) == 0x0a0a && (value >> 8) == (value & 0xff);
}

struct ClientHello {
  uint16_t legacyVersion = 0;  // 0x0303 for TLS 1.2 and 1.3 (RFC 8446 §4.1.2)
  // server_name host_name (RFC 6066 §3), as sent (case kept), trailing dot
  // removed. Empty when absent and when the client sent an IP literal: an IP
  // literal is not a host name and must never match a name rule, so it is
  // only reported in serverNameIpLiteral.
  std::string_view serverName;
  std::string_view serverNameIpLiteral;
  bool hasServerNameExtension = false;
  // ALPN (RFC 7301): the first kMaxAlpnKept non-GREASE protocol names.
  std::array<std::string_view, kMaxAlpnKept> alpn{};
  uint8_t alpnCount = 0;   // entries in `alpn`
  uint16_t alpnTotal = 0;  // every non-GREASE name in the list
  bool hasAlpn = false;
  // supported_versions (RFC 8446 §4.2.1): the highest non-GREASE version
  // offered; legacyVersion when the extension is absent (TLS <= 1.2).
  uint16_t maxVersion = 0;
  bool hasSupportedVersions = false;
  // encrypted_client_hello: when present in an outer hello (echType 0), the
  // serverName above is only the ECH provider's public name.
  bool echPresent = false;
  uint8_t echType = 0;      // 0 outer, 1 inner (draft-ietf-tls-esni §5)
  bool greaseSeen = false;  // a GREASE extension, version or ALPN id (cipher suites are not scanned)
  uint16_t extensionCount = 0;
  std::span<const uint8_t> cipherSuites;  // raw, 2 bytes each
};

struct TlsHelloResult {
  ParseStatus status = ParseStatus::NeedMore;
  MalformedReason reason = MalformedReason::None;  // set when Malformed
  // NeedMore: at least this many more stream bytes are needed (exact when the
  // rest of the hello comes in one record).
  size_t needBytes = 0;
  // Ok: stream bytes taken by the records carrying the ClientHello.
  size_t consumed = 0;
  bool usedScratch = false;  // Ok: the views point into `scratch`
  ClientHello hello;
};

// Parses the client's TCP byte stream (the concatenation of its payload
// segments so far, starting at the first byte of the connection).
//
// Reassembly across records: when the ClientHello fits in its first record
// (nearly always) it is parsed in place and `scratch` is not touched. When it
// is fragmented over several records (RFC 8446 §5.1 allows any split), the
// fragments are copied into `scratch` (at least the hello's size, up to
// kMaxClientHelloBytes) and the views point there; a too small scratch gives
// Malformed/TlsScratchTooSmall. NeedMore is decided without scratch.
TlsHelloResult parseTlsClientHello(std::span<const uint8_t> stream, std::span<uint8_t> scratch = {}) noexcept;

// Parses one complete handshake message (msg_type, uint24 length, body), as
// found in QUIC CRYPTO frames (RFC 9001 §4), with no record layer. A shorter
// input gives NeedMore; bytes after the message give TlsTrailingBytes.
TlsHelloResult parseClientHelloMessage(std::span<const uint8_t> message) noexcept;

}  // namespace sni

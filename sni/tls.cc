#include "sni/tls.h"

#include <algorithm>
#include <cstring>

#include "sni/host_name.h"
#include "sni/wire_reader.h"

namespace sni {
namespace {

constexpr uint8_t kContentTypeHandshake = 22;  // RFC 8446 §5.1
constexpr uint8_t kHandshakeClientHello = 1;   // RFC 8446 §4
constexpr size_t kRecordHeaderBytes = 5;       // type, version(2), length(2)
constexpr size_t kHandshakeHeaderBytes = 4;    // msg_type, uint24 length
constexpr size_t kMaxRecordPayload = 16384;    // 2^14, RFC 8446 §5.1
constexpr size_t kMaxExtensions = 128;

TlsHelloResult malformed(MalformedReason reason) noexcept {
  TlsHelloResult r;
  r.status = ParseStatus::Malformed;
  r.reason = reason;
  return r;
}

TlsHelloResult notTls() noexcept {
  TlsHelloResult r;
  r.status = ParseStatus::NotThisProtocol;
  return r;
}

TlsHelloResult needMore(size_t bytes) noexcept {
  TlsHelloResult r;
  r.status = ParseStatus::NeedMore;
  r.needBytes = bytes == 0 ? 1 : bytes;
  return r;
}

inline std::string_view asText(std::span<const uint8_t> bytes) noexcept {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

using detail::classifyHostName;
using detail::NameKind;

// server_name extension_data, RFC 6066 §3:
//   struct { NameType name_type; select (name_type) { case host_name:
//   HostName; } name; } ServerName;   ServerName server_name_list<1..2^16-1>
MalformedReason parseServerName(std::span<const uint8_t> data, ClientHello& hello) noexcept {
  WireReader in(data);
  uint16_t listLength = 0;
  if (!in.u16(listLength) || listLength != in.remaining() || listLength == 0)
    return MalformedReason::TlsServerNameList;
  bool seenHostName = false;
  while (!in.empty()) {
    uint8_t nameType = 0;
    uint16_t nameLength = 0;
    std::span<const uint8_t> name;
    if (!in.u8(nameType) || !in.u16(nameLength) || nameLength == 0 || !in.bytes(nameLength, name))
      return MalformedReason::TlsServerNameList;
    // Only host_name(0) is defined; an unknown type cannot be skipped safely
    // by the grammar (no length in the select), OpenSSL refuses it too.
    if (nameType != 0) return MalformedReason::TlsServerNameList;
    // "The ServerNameList MUST NOT contain more than one name of the same
    // name_type."
    if (seenHostName) return MalformedReason::TlsDuplicateServerName;
    seenHostName = true;
    std::string_view text = asText(name);
    switch (classifyHostName(text)) {
      case NameKind::Bad:
        return MalformedReason::TlsBadServerName;
      case NameKind::HostName:
        hello.serverName = text;
        break;
      case NameKind::IpLiteral:
        hello.serverNameIpLiteral = text;
        break;
    }
  }
  return MalformedReason::None;
}

// application_layer_protocol_negotiation, RFC 7301 §3.1:
//   opaque ProtocolName<1..2^8-1>; ProtocolName protocol_name_list<2..2^16-1>
MalformedReason parseAlpn(std::span<const uint8_t> data, ClientHello& hello) noexcept {
  WireReader in(data);
  uint16_t listLength = 0;
  if (!in.u16(listLength) || listLength != in.remaining() || listLength < 2)
    return MalformedReason::TlsAlpnList;
  hello.hasAlpn = true;
  while (!in.empty()) {
    uint8_t length = 0;
    std::span<const uint8_t> name;
    if (!in.u8(length) || length == 0 || !in.bytes(length, name)) return MalformedReason::TlsAlpnList;
    // RFC 8701 §2 reserves 2-byte GREASE ALPN identifiers 0x?A 0x?A.
    if (name.size() == 2 && isGrease(static_cast<uint16_t>(name[0] << 8 | name[1]))) {
      hello.greaseSeen = true;
      continue;
    }
    if (hello.alpnCount < kMaxAlpnKept) hello.alpn[hello.alpnCount++] = asText(name);
    ++hello.alpnTotal;
  }
  return MalformedReason::None;
}

// supported_versions in a ClientHello, RFC 8446 §4.2.1:
//   ProtocolVersion versions<2..254>
MalformedReason parseSupportedVersions(std::span<const uint8_t> data, ClientHello& hello) noexcept {
  WireReader in(data);
  uint8_t listLength = 0;
  if (!in.u8(listLength) || listLength != in.remaining() || listLength < 2 || listLength % 2 != 0)
    return MalformedReason::TlsSupportedVersions;
  hello.hasSupportedVersions = true;
  uint16_t highest = 0;
  while (!in.empty()) {
    uint16_t version = 0;
    in.u16(version);  // cannot fail: even length checked above
    if (isGrease(version)) {
      hello.greaseSeen = true;
    } else if (version > highest) {
      highest = version;
    }
  }
  hello.maxVersion = highest;
  return MalformedReason::None;
}

// Parses a ClientHello body (after the 4-byte handshake header).
//   RFC 8446 §4.1.2 / RFC 5246 §7.4.1.2:
//   ProtocolVersion legacy_version; Random random(32);
//   opaque legacy_session_id<0..32>; CipherSuite cipher_suites<2..2^16-2>;
//   opaque legacy_compression_methods<1..2^8-1>;
//   Extension extensions<8..2^16-1>;   (absent in some TLS <= 1.2 hellos)
MalformedReason parseHelloBody(std::span<const uint8_t> body, ClientHello& hello) noexcept {
  WireReader in(body);
  uint8_t sessionIdLength = 0;
  uint16_t cipherSuitesLength = 0;
  uint8_t compressionLength = 0;
  if (!in.u16(hello.legacyVersion) || !in.skip(32) || !in.u8(sessionIdLength))
    return MalformedReason::TlsHelloTruncated;
  if (sessionIdLength > 32) return MalformedReason::TlsSessionIdTooLong;
  if (!in.skip(sessionIdLength) || !in.u16(cipherSuitesLength)) return MalformedReason::TlsHelloTruncated;
  if (cipherSuitesLength < 2 || cipherSuitesLength % 2 != 0) return MalformedReason::TlsCipherSuites;
  if (!in.bytes(cipherSuitesLength, hello.cipherSuites)) return MalformedReason::TlsHelloTruncated;
  if (!in.u8(compressionLength)) return MalformedReason::TlsHelloTruncated;
  if (compressionLength == 0) return MalformedReason::TlsCompressionMethods;
  if (!in.skip(compressionLength)) return MalformedReason::TlsHelloTruncated;
  hello.maxVersion = hello.legacyVersion;
  if (in.empty()) return MalformedReason::None;  // RFC 5246 §7.4.1.2: no extensions

  uint16_t extensionsLength = 0;
  if (!in.u16(extensionsLength) || extensionsLength != in.remaining())
    return MalformedReason::TlsExtensionsLength;

  // RFC 8446 §4.2: "There MUST NOT be more than one extension of the same
  // type in a given extension block." Duplicates are where parsers disagree
  // (which SNI wins?), so every one is refused. A 64-bit filter on the low
  // bits keeps the common case to one AND; only on a hit is the list searched.
  std::array<uint16_t, kMaxExtensions> seen;  // filled up to extensionCount
  uint64_t seenFilter = 0;
  bool pskSeen = false;
  while (!in.empty()) {
    uint16_t type = 0;
    uint16_t length = 0;
    std::span<const uint8_t> data;
    if (!in.u16(type) || !in.u16(length) || !in.bytes(length, data))
      return MalformedReason::TlsExtensionOverflow;
    // RFC 8446 §4.2.11: pre_shared_key MUST be the last extension.
    if (pskSeen) return MalformedReason::TlsPskNotLast;
    if (hello.extensionCount == kMaxExtensions) return MalformedReason::TlsExtensionOverflow;
    const uint64_t bit = uint64_t{1} << (type & 63);
    if ((seenFilter & bit) != 0) {
      for (size_t i = 0; i < hello.extensionCount; ++i) {
        if (seen[i] == type) return MalformedReason::TlsDuplicateExtension;
      }
    }
    seenFilter |= bit;
    seen[hello.extensionCount++] = type;

    MalformedReason reason = MalformedReason::None;
    switch (type) {
      case kTlsExtServerName:
        hello.hasServerNameExtension = true;
        reason = parseServerName(data, hello);
        break;
      case kTlsExtAlpn:
        reason = parseAlpn(data, hello);
        break;
      case kTlsExtSupportedVersions:
        reason = parseSupportedVersions(data, hello);
        break;
      case kTlsExtPreSharedKey:
        pskSeen = true;
        break;
      case kTlsExtEncryptedClientHello:
        // ECHClientHello starts with ECHClientHelloType: outer(0), inner(1).
        if (data.empty() || data[0] > 1) return MalformedReason::TlsEchExtension;
        hello.echPresent = true;
        hello.echType = data[0];
        break;
      default:
        if (isGrease(type)) hello.greaseSeen = true;
        break;
    }
    if (reason != MalformedReason::None) return reason;
  }
  return MalformedReason::None;
}

// Parses message = msg_type(1) length(3) body(length), exactly, into
// `result` in place: the result is a few hundred bytes, and copying it was a
// measurable share of a ~100 ns parse.
void parseMessageInto(std::span<const uint8_t> message, TlsHelloResult& result) noexcept {
  const size_t bodyLength = size_t{message[1]} << 16 | size_t{message[2]} << 8 | message[3];
  const MalformedReason reason =
      parseHelloBody(message.subspan(kHandshakeHeaderBytes, bodyLength), result.hello);
  if (reason != MalformedReason::None) {
    result.hello = ClientHello{};  // no half-parsed fields leak out
    result.status = ParseStatus::Malformed;
    result.reason = reason;
    return;
  }
  result.status = ParseStatus::Ok;
}

// Validates the handshake header once its 4 bytes are known; returns the full
// message size or 0 with `reason` set.
size_t checkHandshakeHeader(const uint8_t header[4], MalformedReason& reason) noexcept {
  if (header[0] != kHandshakeClientHello) {
    reason = MalformedReason::TlsNotClientHello;
    return 0;
  }
  const size_t total =
      kHandshakeHeaderBytes + (size_t{header[1]} << 16 | size_t{header[2]} << 8 | size_t{header[3]});
  if (total > kMaxClientHelloBytes) {
    reason = MalformedReason::TlsHelloTooLarge;
    return 0;
  }
  return total;
}

}  // namespace

TlsHelloResult parseClientHelloMessage(std::span<const uint8_t> message) noexcept {
  if (message.size() < kHandshakeHeaderBytes) {
    if (!message.empty() && message[0] != kHandshakeClientHello)
      return malformed(MalformedReason::TlsNotClientHello);
    return needMore(kHandshakeHeaderBytes - message.size());
  }
  MalformedReason reason = MalformedReason::None;
  const size_t total = checkHandshakeHeader(message.data(), reason);
  if (total == 0) return malformed(reason);
  if (message.size() < total) return needMore(total - message.size());
  if (message.size() > total) return malformed(MalformedReason::TlsTrailingBytes);
  TlsHelloResult result;
  parseMessageInto(message, result);
  if (result.status == ParseStatus::Ok) result.consumed = total;
  return result;
}

TlsHelloResult parseTlsClientHello(std::span<const uint8_t> stream, std::span<uint8_t> scratch) noexcept {
  // RFC 8446 §5.1: TLSPlaintext { ContentType type; ProtocolVersion
  // legacy_record_version; uint16 length; opaque fragment[length]; }.
  // Decide "not TLS" from the first bytes alone, so a plain-text protocol is
  // never held waiting for a record header.
  if (stream.empty()) return needMore(kRecordHeaderBytes + kHandshakeHeaderBytes);
  if (stream[0] != kContentTypeHandshake) return notTls();
  if (stream.size() >= 2 && stream[1] != 3) return notTls();

  // Pass 1: walk the records, without copying, until the handshake message
  // is complete; the 4-byte handshake header may itself be split.
  uint8_t header[kHandshakeHeaderBytes] = {};
  size_t haveHeader = 0;
  size_t messageTotal = 0;  // known once the header is complete
  size_t messageSeen = 0;   // handshake bytes present so far
  size_t pos = 0;
  size_t records = 0;
  while (true) {
    if (stream.size() - pos < kRecordHeaderBytes) {
      // Validate what is there of the next record header before waiting.
      if (records > 0 && stream.size() > pos && stream[pos] != kContentTypeHandshake)
        return malformed(MalformedReason::TlsRecordInterleaved);
      const size_t stillNeeded = (messageTotal != 0 ? messageTotal : kHandshakeHeaderBytes) - messageSeen;
      return needMore(kRecordHeaderBytes - (stream.size() - pos) + stillNeeded);
    }
    const uint8_t* rec = stream.data() + pos;
    if (rec[0] != kContentTypeHandshake) return malformed(MalformedReason::TlsRecordInterleaved);
    // legacy_record_version: 0x0301 (first ClientHello) or 0x0303; SSL 3.0
    // (0x0300) is accepted for the parse, the policy decides about it.
    if (rec[1] != 3 || rec[2] > 4) return malformed(MalformedReason::TlsRecordVersion);
    const size_t length = size_t{rec[3]} << 8 | rec[4];
    if (length == 0) return malformed(MalformedReason::TlsRecordEmpty);  // §5.1 MUST NOT
    if (length > kMaxRecordPayload) return malformed(MalformedReason::TlsRecordTooLong);
    ++records;
    const size_t present = std::min(length, stream.size() - pos - kRecordHeaderBytes);
    const uint8_t* payload = rec + kRecordHeaderBytes;
    for (size_t i = 0; i < present && haveHeader < kHandshakeHeaderBytes; ++i)
      header[haveHeader++] = payload[i];
    if (messageTotal == 0 && haveHeader == kHandshakeHeaderBytes) {
      MalformedReason reason = MalformedReason::None;
      messageTotal = checkHandshakeHeader(header, reason);
      if (messageTotal == 0) return malformed(reason);
    } else if (haveHeader > 0 && header[0] != kHandshakeClientHello) {
      return malformed(MalformedReason::TlsNotClientHello);
    }
    const size_t before = messageSeen;
    messageSeen += present;
    if (messageTotal != 0 && messageSeen >= messageTotal) {
      // The message ends in this record; anything after it in the same
      // record would be a second handshake message, which a client's first
      // flight does not have.
      if (before + length != messageTotal) return malformed(MalformedReason::TlsTrailingRecordBytes);
      break;
    }
    if (present < length) {
      const size_t target = messageTotal != 0 ? messageTotal : kHandshakeHeaderBytes;
      const size_t afterRecord = before + length;
      size_t need = length - present;
      if (afterRecord < target) need += kRecordHeaderBytes + (target - afterRecord);
      return needMore(need);
    }
    pos += kRecordHeaderBytes + length;
  }
  TlsHelloResult result;
  size_t end = 0;
  if (records == 1) {
    // Fast path: the whole message is in the first record.
    parseMessageInto(stream.subspan(kRecordHeaderBytes, messageTotal), result);
    end = kRecordHeaderBytes + messageTotal;
  } else {
    // Pass 2: copy the fragments into scratch and parse contiguously.
    if (scratch.size() < messageTotal) return malformed(MalformedReason::TlsScratchTooSmall);
    size_t copied = 0;
    size_t at = 0;
    while (copied < messageTotal) {
      const size_t length = size_t{stream[at + 3]} << 8 | stream[at + 4];
      const size_t take = std::min(length, messageTotal - copied);
      std::memcpy(scratch.data() + copied, stream.data() + at + kRecordHeaderBytes, take);
      copied += take;
      at += kRecordHeaderBytes + length;
    }
    end = at;
    parseMessageInto(std::span<const uint8_t>(scratch.data(), messageTotal), result);
    result.usedScratch = true;
  }
  if (result.status == ParseStatus::Ok) result.consumed = end;
  return result;
}

}  // namespace sni

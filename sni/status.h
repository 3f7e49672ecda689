// Result status shared by the first-packet parsers (TLS, HTTP/1, QUIC).
//
// Every refusal has a named reason so the verdict engine can count it
// (STYLE.md rule 3): EGRESSD_SNI_MALFORMED_REASONS is an X-macro list, e.g.
//   #define X(name) uint64_t name = 0;
//   struct Counters { EGRESSD_SNI_MALFORMED_REASONS(X) };
// Pure data, no state: safe from any thread.
#pragma once

#include <cstdint>
#include <string_view>

namespace sni {

enum class ParseStatus : uint8_t {
  Ok,               // the name-bearing message is complete and valid
  NeedMore,         // a valid prefix; `needBytes` more bytes at least
  NotThisProtocol,  // the first bytes cannot start this protocol
  Malformed,        // it is this protocol but violates the RFC; see reason
};

// X(name) for every MalformedReason; None is first and means "not malformed".
#define EGRESSD_SNI_MALFORMED_REASONS(X)                              \
  X(None)                                                             \
  /* TLS record layer, RFC 8446 §5.1 */                              \
  X(TlsRecordEmpty)                                                   \
  X(TlsRecordTooLong)                                                 \
  X(TlsRecordInterleaved)                                             \
  X(TlsRecordVersion)                                                 \
  /* TLS handshake, RFC 8446 §4 */                                   \
  X(TlsNotClientHello)                                                \
  X(TlsHelloTooLarge)                                                 \
  X(TlsScratchTooSmall)                                               \
  X(TlsTrailingRecordBytes)                                           \
  X(TlsHelloTruncated)                                                \
  X(TlsSessionIdTooLong)                                              \
  X(TlsCipherSuites)                                                  \
  X(TlsCompressionMethods)                                            \
  X(TlsExtensionsLength)                                              \
  X(TlsExtensionOverflow)                                             \
  X(TlsTrailingBytes)                                                 \
  X(TlsDuplicateExtension)                                            \
  X(TlsPskNotLast)                                                    \
  /* server_name, RFC 6066 §3 */                                     \
  X(TlsServerNameList)                                                \
  X(TlsDuplicateServerName)                                           \
  X(TlsBadServerName)                                                 \
  /* ALPN RFC 7301 §3.1, supported_versions RFC 8446 §4.2.1, ECH */ \
  X(TlsAlpnList)                                                      \
  X(TlsSupportedVersions)                                             \
  X(TlsEchExtension)                                                  \
  /* HTTP/1.x, RFC 9112 */                                            \
  X(HttpRequestLine)                                                  \
  X(HttpMethod)                                                       \
  X(HttpTarget)                                                       \
  X(HttpUserinfo)                                                     \
  X(HttpVersion)                                                      \
  X(HttpBareLineFeed)                                                 \
  X(HttpFieldName)                                                    \
  X(HttpWhitespaceBeforeColon)                                        \
  X(HttpObsFold)                                                      \
  X(HttpFieldValue)                                                   \
  X(HttpMissingHost)                                                  \
  X(HttpDuplicateHost)                                                \
  X(HttpBadHost)                                                      \
  X(HttpHostMismatch)                                                 \
  X(HttpHeaderTooLarge)                                               \
  /* QUIC Initial, RFC 9000 / 9001 / 9369 */                          \
  X(QuicHeader)                                                       \
  X(QuicConnectionIdLength)                                           \
  X(QuicDatagramTooSmall)                                             \
  X(QuicPacketLength)                                                 \
  X(QuicDecryptFailed)                                                \
  X(QuicReservedBits)                                                 \
  X(QuicFrame)                                                        \
  X(QuicForbiddenFrame)                                               \
  X(QuicCryptoTooLarge)                                               \
  X(QuicCryptoFragments)                                              \
  X(QuicCryptoConflict)                                               \
  X(QuicScratchTooSmall)

enum class MalformedReason : uint8_t {
#define EGRESSD_SNI_ENUM_ENTRY(name) name,
  EGRESSD_SNI_MALFORMED_REASONS(EGRESSD_SNI_ENUM_ENTRY)
#undef EGRESSD_SNI_ENUM_ENTRY
};

inline constexpr size_t kMalformedReasonCount = [] {
  size_t n = 0;
#define EGRESSD_SNI_COUNT_ENTRY(name) ++n;
  EGRESSD_SNI_MALFORMED_REASONS(EGRESSD_SNI_COUNT_ENTRY)
#undef EGRESSD_SNI_COUNT_ENTRY
  return n;
}();

// The enumerator's spelling, e.g. "TlsBadServerName" (stable: used as a
// metric label).
constexpr std::string_view malformedReasonName(MalformedReason reason) noexcept {
  switch (reason) {
#define EGRESSD_SNI_NAME_ENTRY(name) \
  case MalformedReason::name:        \
    return #name;
    EGRESSD_SNI_MALFORMED_REASONS(EGRESSD_SNI_NAME_ENTRY)
#undef EGRESSD_SNI_NAME_ENTRY
  }
  return "Unknown";
}

constexpr std::string_view parseStatusName(ParseStatus status) noexcept {
  switch (status) {
    case ParseStatus::Ok:
      return "Ok";
    case ParseStatus::NeedMore:
      return "NeedMore";
    case ParseStatus::NotThisProtocol:
      return "NotThisProtocol";
    case ParseStatus::Malformed:
      return "Malformed";
  }
  return "Unknown";
}

}  // namespace sni

// What the first client bytes of a flow say about its destination name:
// TLS ClientHello SNI, HTTP/1 Host, or the SNI inside a QUIC Initial.
//
// The one seam between the verdict and the sni/ parsers: it maps their
// results to what decide() needs.
//
// Pure, noexcept, allocation-free; any thread. `name` points into `stream`
// or into `scratch` and lives as long as they do.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace sni {
class QuicInitialParser;
class QuicCryptoReassembly;
}  // namespace sni

namespace nfq {

// QUIC Initials are decrypted and their CRYPTO frames reassembled across
// datagrams, so reading them needs state: the worker's parser (OpenSSL
// contexts, one per thread) and the flow's reassembly (in the flow table).
// Both null: QUIC cannot be read and UDP is reported as Other.
struct QuicContext {
  sni::QuicInitialParser* parser = nullptr;
  sni::QuicCryptoReassembly* flow = nullptr;
};

enum class NameSource : uint8_t { None, Sni, Host, Quic, Binding };

std::string_view nameSourceName(NameSource source) noexcept;

enum class PayloadKind : uint8_t {
  NeedMore,   // a valid prefix of TLS/HTTP/QUIC; hold and read more
  Name,       // complete: `name` is the destination host name
  NoName,     // complete TLS/HTTP without a usable name (no SNI, IP literal)
  Other,      // not TLS, HTTP or QUIC (SSH, SMTP, a database protocol...)
  Malformed,  // claims to be TLS/HTTP/QUIC but breaks its RFC
};

struct PayloadInspection {
  PayloadKind kind = PayloadKind::Other;
  NameSource source = NameSource::None;  // which protocol was recognised
  std::string_view name;
  size_t needBytes = 0;            // NeedMore: at least this many more bytes
  uint8_t malformed = 0;           // Malformed: the parser's reason code
  std::string_view malformedName;  // Malformed: the parser's reason name
};

// `stream`: the client's bytes so far (TCP: in-order payload from the first
// byte; UDP: this datagram only, earlier ones live in `quic.flow`). `udp`:
// judge as QUIC rather than TLS/HTTP. `scratch`: room for a ClientHello
// fragmented over several TLS records, or for a decrypted datagram (16 KiB
// + 4 is always enough; may be empty). With QUIC, the name points into the
// flow's reassembly buffer; each datagram must be fed exactly once.
PayloadInspection inspectFirstPayload(std::span<const uint8_t> stream, bool udp, std::span<uint8_t> scratch,
                                      const QuicContext& quic = {}) noexcept;

}  // namespace nfq

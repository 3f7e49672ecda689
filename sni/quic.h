// QUIC v1 (RFC 9000/9001) and v2 (RFC 9369) client Initial packets: derive
// the Initial keys from the Destination Connection ID, remove header
// protection, decrypt with OpenSSL, reassemble CRYPTO frames (possibly over
// several Initial packets and datagrams) and parse the ClientHello with the
// TLS parser.
//
// Ownership and threads: a QuicInitialParser holds preallocated OpenSSL
// contexts and is used by one thread at a time (one per verdict worker). The
// per-flow QuicCryptoReassembly is owned by the caller's flow table and
// points at a caller-owned buffer. Nothing here allocates per packet, OpenSSL
// included (bench/sni counts CRYPTO_malloc calls; see docs/sni.md).
// Construction fails (throws std::runtime_error) only when OpenSSL lacks
// AES-128-ECB/GCM — a start-up error.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include <openssl/evp.h>

#include "common/c_handle.h"
#include "sni/status.h"
#include "sni/tls.h"

namespace sni {

inline constexpr uint32_t kQuicVersion1 = 0x00000001;    // RFC 9000
inline constexpr uint32_t kQuicVersion2 = 0x6b3343cf;    // RFC 9369 §3.1
inline constexpr size_t kQuicMaxConnectionIdBytes = 20;  // RFC 9000 §17.2
inline constexpr size_t kQuicMinInitialDatagram = 1200;  // RFC 9000 §14.1
inline constexpr size_t kQuicMaxCryptoRanges = 32;

struct QuicInitialKeys {
  std::array<uint8_t, 32> clientSecret{};  // client_initial_secret
  std::array<uint8_t, 16> key{};           // AEAD_AES_128_GCM key
  std::array<uint8_t, 12> iv{};
  std::array<uint8_t, 16> hp{};  // header protection (AES-128-ECB)
};

// The client's Initial CRYPTO stream of one flow, reassembled into a buffer
// the caller owns (its size bounds the ClientHello; 4 KiB covers every real
// client, kMaxClientHelloBytes every legal one). Not thread-safe; reset()
// before reusing it for another flow.
class QuicCryptoReassembly {
 public:
  explicit QuicCryptoReassembly(std::span<uint8_t> buffer) noexcept : buffer_(buffer) {}
  void reset() noexcept;
  // CRYPTO bytes received without a gap from offset 0.
  size_t contiguousBytes() const noexcept;

  // The frames of one decrypted client Initial payload (RFC 9000 §19; only
  // those allowed in Initial packets), CRYPTO data stored here.
  // parseDatagram calls it after decryption; public for tests and fuzzing,
  // which cannot get past the AEAD with mutated bytes.
  MalformedReason addInitialFrames(std::span<const uint8_t> plaintext) noexcept;
  // The ClientHello once the contiguous CRYPTO prefix holds it, else
  // NeedMore; views point into the buffer.
  TlsHelloResult clientHello() const noexcept;
  // Ranges sorted, disjoint, non-adjacent and inside the buffer (for tests).
  bool invariantsHold() const noexcept;

 private:
  friend class QuicInitialParser;
  struct Range {
    uint32_t begin;
    uint32_t end;
  };
  MalformedReason add(uint64_t offset, std::span<const uint8_t> data) noexcept;

  std::span<uint8_t> buffer_;
  std::array<Range, kQuicMaxCryptoRanges> ranges_{};  // sorted, disjoint, non-adjacent
  size_t rangeCount_ = 0;
  bool haveKeys_ = false;
  uint32_t version_ = 0;
  std::array<uint8_t, kQuicMaxConnectionIdBytes> dcid_{};
  uint8_t dcidLength_ = 0;
  QuicInitialKeys keys_;
};

struct QuicInitialResult {
  ParseStatus status = ParseStatus::NeedMore;
  MalformedReason reason = MalformedReason::None;
  // NeedMore: CRYPTO stream bytes still missing (at least; exact once the
  // ClientHello's length has been seen).
  size_t needBytes = 0;
  uint32_t version = 0;
  size_t initialPackets = 0;  // Initial packets decrypted from this datagram
  // Ok: the ClientHello; its views point into the flow's reassembly buffer.
  TlsHelloResult tls;
};

class QuicInitialParser {
 public:
  QuicInitialParser();  // throws std::runtime_error (start-up only)

  // Feeds one UDP datagram from the client of `flow`. `scratch` receives the
  // decrypted payload and must hold the datagram's size (1,500 bytes for a
  // normal MTU; QuicScratchTooSmall otherwise). NotThisProtocol: not a
  // long-header v1/v2 Initial (short header, other version, 0-RTT...).
  QuicInitialResult parseDatagram(std::span<const uint8_t> datagram, QuicCryptoReassembly& flow,
                                  std::span<uint8_t> scratch) noexcept;

  // RFC 9001 §5.2 / RFC 9369 §3.3.1: the client Initial secret and packet
  // protection keys for `dcid`. False only on an OpenSSL failure.
  bool deriveClientInitialKeys(uint32_t version, std::span<const uint8_t> dcid,
                               QuicInitialKeys& out) noexcept;

 private:
  bool hmacSha256(std::span<const uint8_t> key, std::span<const uint8_t> data1,
                  std::span<const uint8_t> data2, uint8_t out[32]) noexcept;
  bool expandLabel(std::span<const uint8_t> secret, std::string_view label, std::span<uint8_t> out) noexcept;
  bool headerProtectionMask(const QuicInitialKeys& keys, const uint8_t sample[16], uint8_t mask[16]) noexcept;
  bool aeadOpen(const QuicInitialKeys& keys, uint64_t packetNumber, std::span<const uint8_t> header,
                std::span<const uint8_t> ciphertext, std::span<const uint8_t> tag, uint8_t* out) noexcept;

  common::CHandle<EVP_CIPHER, EVP_CIPHER_free> ecb_;
  common::CHandle<EVP_CIPHER, EVP_CIPHER_free> gcm_;
  common::CHandle<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free> ecbCtx_;
  common::CHandle<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free> gcmCtx_;
};

}  // namespace sni

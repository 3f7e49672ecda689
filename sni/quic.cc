// SHA256_Init/Update/Final are deprecated in OpenSSL 3.0 but are its only
// SHA-256 that does not allocate per use (EVP_MAC_init allocates 4-5 times,
// EVP_DigestInit once, measured on 3.0.19); HMAC (RFC 2104) on top of them
// keeps the Initial key derivation allocation-free.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "sni/quic.h"

#include <openssl/sha.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "sni/wire_reader.h"

namespace sni {
namespace {

// RFC 9001 §5.2 and RFC 9369 §3.3.1: initial_salt per version.
constexpr uint8_t kSaltV1[20] = {0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
                                 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a};
constexpr uint8_t kSaltV2[20] = {0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93,
                                 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9};
constexpr size_t kTagBytes = 16;     // AEAD_AES_128_GCM, RFC 9001 §5.3
constexpr size_t kSampleBytes = 16;  // RFC 9001 §5.4.2

// RFC 9000 §17.2.2 (v1: type 0b00), RFC 9369 §3.2 (v2: type 0b01).
constexpr uint8_t initialPacketType(uint32_t version) noexcept {
  return version == kQuicVersion2 ? 1 : 0;
}

QuicInitialResult fail(ParseStatus status, MalformedReason reason = MalformedReason::None) noexcept {
  QuicInitialResult r;
  r.status = status;
  r.reason = reason;
  return r;
}

// RFC 9000 §19: only PADDING, PING, ACK, CRYPTO and CONNECTION_CLOSE (0x1c)
// may appear in Initial packets (§12.4, table 3). Each CRYPTO frame's data is
// handed to `onCrypto`.
template <typename OnCrypto>
MalformedReason walkFrames(std::span<const uint8_t> payload, OnCrypto&& onCrypto) noexcept {
  if (payload.empty()) return MalformedReason::QuicFrame;  // §12.4: at least one frame
  WireReader in(payload);
  while (!in.empty()) {
    uint64_t type = 0;
    if (!in.varint(type)) return MalformedReason::QuicFrame;
    switch (type) {
      case 0x00:  // PADDING (§19.1)
      case 0x01:  // PING (§19.2)
        break;
      case 0x02:    // ACK (§19.3)
      case 0x03: {  // ACK with ECN counts
        uint64_t largest = 0, delay = 0, rangeCount = 0, firstRange = 0;
        if (!in.varint(largest) || !in.varint(delay) || !in.varint(rangeCount) || !in.varint(firstRange))
          return MalformedReason::QuicFrame;
        // Each range is at least two bytes, so the count is bounded by what is left.
        if (rangeCount > in.remaining() / 2) return MalformedReason::QuicFrame;
        for (uint64_t i = 0; i < rangeCount; ++i) {
          uint64_t gap = 0, length = 0;
          if (!in.varint(gap) || !in.varint(length)) return MalformedReason::QuicFrame;
        }
        if (type == 0x03) {
          uint64_t ect0 = 0, ect1 = 0, ce = 0;
          if (!in.varint(ect0) || !in.varint(ect1) || !in.varint(ce)) return MalformedReason::QuicFrame;
        }
        break;
      }
      case 0x06: {  // CRYPTO (§19.6)
        uint64_t offset = 0, length = 0;
        std::span<const uint8_t> data;
        if (!in.varint(offset) || !in.varint(length) || length > in.remaining() || !in.bytes(length, data))
          return MalformedReason::QuicFrame;
        const MalformedReason reason = onCrypto(offset, data);
        if (reason != MalformedReason::None) return reason;
        break;
      }
      case 0x1c: {  // CONNECTION_CLOSE, transport (§19.19)
        uint64_t code = 0, frameType = 0, reasonLength = 0;
        if (!in.varint(code) || !in.varint(frameType) || !in.varint(reasonLength) ||
            reasonLength > in.remaining() || !in.skip(reasonLength))
          return MalformedReason::QuicFrame;
        break;
      }
      default:
        return MalformedReason::QuicForbiddenFrame;
    }
  }
  return MalformedReason::None;
}

}  // namespace

void QuicCryptoReassembly::reset() noexcept {
  rangeCount_ = 0;
  haveKeys_ = false;
  version_ = 0;
  dcidLength_ = 0;
}

size_t QuicCryptoReassembly::contiguousBytes() const noexcept {
  return rangeCount_ > 0 && ranges_[0].begin == 0 ? ranges_[0].end : 0;
}

MalformedReason QuicCryptoReassembly::addInitialFrames(std::span<const uint8_t> plaintext) noexcept {
  return walkFrames(plaintext,
                    [this](uint64_t offset, std::span<const uint8_t> data) { return add(offset, data); });
}

TlsHelloResult QuicCryptoReassembly::clientHello() const noexcept {
  return parseClientHelloMessage(std::span<const uint8_t>(buffer_.data(), contiguousBytes()));
}

bool QuicCryptoReassembly::invariantsHold() const noexcept {
  for (size_t i = 0; i < rangeCount_; ++i) {
    if (ranges_[i].begin >= ranges_[i].end || ranges_[i].end > buffer_.size()) return false;
    if (i > 0 && ranges_[i - 1].end >= ranges_[i].begin) return false;
  }
  return true;
}

MalformedReason QuicCryptoReassembly::add(uint64_t offset, std::span<const uint8_t> data) noexcept {
  if (data.empty()) return MalformedReason::None;
  if (offset > buffer_.size() || data.size() > buffer_.size() - offset)
    return MalformedReason::QuicCryptoTooLarge;
  const auto begin = static_cast<uint32_t>(offset);
  const auto end = static_cast<uint32_t>(offset + data.size());
  // Retransmitted or overlapping CRYPTO data must repeat the same bytes;
  // a client that sends two versions of its hello is trying to make us read
  // a different one than the server (RFC 9000 §19.6 "MAY ... PROTOCOL_VIOLATION").
  for (size_t i = 0; i < rangeCount_; ++i) {
    const uint32_t lo = std::max(begin, ranges_[i].begin);
    const uint32_t hi = std::min(end, ranges_[i].end);
    if (lo < hi && std::memcmp(buffer_.data() + lo, data.data() + (lo - begin), hi - lo) != 0)
      return MalformedReason::QuicCryptoConflict;
  }
  // Merge [begin, end) into the sorted range list.
  size_t first = 0;
  while (first < rangeCount_ && ranges_[first].end < begin) ++first;
  size_t last = first;
  Range merged{begin, end};
  while (last < rangeCount_ && ranges_[last].begin <= end) {
    merged.begin = std::min(merged.begin, ranges_[last].begin);
    merged.end = std::max(merged.end, ranges_[last].end);
    ++last;
  }
  const size_t removed = last - first;
  if (removed == 0 && rangeCount_ == kQuicMaxCryptoRanges) return MalformedReason::QuicCryptoFragments;
  std::memcpy(buffer_.data() + begin, data.data(), data.size());
  if (removed == 0) {
    std::move_backward(ranges_.begin() + first, ranges_.begin() + rangeCount_,
                       ranges_.begin() + rangeCount_ + 1);
    ++rangeCount_;
  } else if (removed > 1) {
    std::move(ranges_.begin() + last, ranges_.begin() + rangeCount_, ranges_.begin() + first + 1);
    rangeCount_ -= removed - 1;
  }
  ranges_[first] = merged;
  return MalformedReason::None;
}

QuicInitialParser::QuicInitialParser()
    : ecb_(EVP_CIPHER_fetch(nullptr, "AES-128-ECB", nullptr)),
      gcm_(EVP_CIPHER_fetch(nullptr, "AES-128-GCM", nullptr)),
      ecbCtx_(EVP_CIPHER_CTX_new()),
      gcmCtx_(EVP_CIPHER_CTX_new()) {
  if (!ecb_ || !gcm_ || !ecbCtx_ || !gcmCtx_) throw std::runtime_error("sni: OpenSSL lacks AES-128-ECB/GCM");
  static constexpr uint8_t kZeroKey[16] = {};
  // Bind the cipher once; per packet only the key (and IV) change, which
  // reuses the provider context instead of fetching and allocating again.
  if (EVP_EncryptInit_ex2(ecbCtx_.get(), ecb_.get(), kZeroKey, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_set_padding(ecbCtx_.get(), 0) != 1 ||
      EVP_DecryptInit_ex2(gcmCtx_.get(), gcm_.get(), nullptr, nullptr, nullptr) != 1)
    throw std::runtime_error("sni: cannot set up OpenSSL contexts for QUIC Initial");
}

// RFC 2104 HMAC with SHA-256 (B = 64, L = 32), message = data1 || data2.
bool QuicInitialParser::hmacSha256(std::span<const uint8_t> key, std::span<const uint8_t> data1,
                                   std::span<const uint8_t> data2, uint8_t out[32]) noexcept {
  constexpr size_t kBlock = 64;
  uint8_t block[kBlock] = {};
  if (key.size() > kBlock) {
    SHA256(key.data(), key.size(), block);
  } else {
    std::memcpy(block, key.data(), key.size());
  }
  uint8_t pad[kBlock];
  uint8_t inner[32];
  SHA256_CTX ctx;
  for (size_t i = 0; i < kBlock; ++i) pad[i] = static_cast<uint8_t>(block[i] ^ 0x36);
  if (SHA256_Init(&ctx) != 1 || SHA256_Update(&ctx, pad, kBlock) != 1 ||
      SHA256_Update(&ctx, data1.data(), data1.size()) != 1 ||
      (!data2.empty() && SHA256_Update(&ctx, data2.data(), data2.size()) != 1) ||
      SHA256_Final(inner, &ctx) != 1)
    return false;
  for (size_t i = 0; i < kBlock; ++i) pad[i] = static_cast<uint8_t>(block[i] ^ 0x5c);
  return SHA256_Init(&ctx) == 1 && SHA256_Update(&ctx, pad, kBlock) == 1 &&
         SHA256_Update(&ctx, inner, 32) == 1 && SHA256_Final(out, &ctx) == 1;
}

// RFC 8446 §7.1 HKDF-Expand-Label(Secret, Label, "", Length) for Length <=
// 32: one HMAC block, T(1) = HMAC(Secret, HkdfLabel || 0x01).
bool QuicInitialParser::expandLabel(std::span<const uint8_t> secret, std::string_view label,
                                    std::span<uint8_t> out) noexcept {
  uint8_t info[2 + 1 + 6 + 32 + 1 + 1];
  if (out.size() > 32 || label.size() > 32) return false;
  size_t n = 0;
  info[n++] = 0;
  info[n++] = static_cast<uint8_t>(out.size());
  info[n++] = static_cast<uint8_t>(6 + label.size());
  std::memcpy(info + n, "tls13 ", 6);
  n += 6;
  std::memcpy(info + n, label.data(), label.size());
  n += label.size();
  info[n++] = 0;  // empty context
  info[n++] = 1;  // HKDF-Expand counter
  uint8_t block[32];
  if (!hmacSha256(secret, std::span<const uint8_t>(info, n), {}, block)) return false;
  std::memcpy(out.data(), block, out.size());
  return true;
}

bool QuicInitialParser::deriveClientInitialKeys(uint32_t version, std::span<const uint8_t> dcid,
                                                QuicInitialKeys& out) noexcept {
  const bool v2 = version == kQuicVersion2;
  uint8_t initialSecret[32];
  // HKDF-Extract(salt, IKM) = HMAC(salt, IKM).
  if (!hmacSha256(v2 ? std::span<const uint8_t>(kSaltV2) : std::span<const uint8_t>(kSaltV1), dcid, {},
                  initialSecret))
    return false;
  return expandLabel(initialSecret, "client in", out.clientSecret) &&
         expandLabel(out.clientSecret, v2 ? "quicv2 key" : "quic key", out.key) &&
         expandLabel(out.clientSecret, v2 ? "quicv2 iv" : "quic iv", out.iv) &&
         expandLabel(out.clientSecret, v2 ? "quicv2 hp" : "quic hp", out.hp);
}

// RFC 9001 §5.4.3: mask = AES-ECB(hp_key, sample).
bool QuicInitialParser::headerProtectionMask(const QuicInitialKeys& keys, const uint8_t sample[16],
                                             uint8_t mask[16]) noexcept {
  int length = 0;
  return EVP_EncryptInit_ex2(ecbCtx_.get(), nullptr, keys.hp.data(), nullptr, nullptr) == 1 &&
         EVP_EncryptUpdate(ecbCtx_.get(), mask, &length, sample, kSampleBytes) == 1 && length == 16;
}

// RFC 9001 §5.3: AEAD_AES_128_GCM, nonce = iv XOR packet number (left-padded),
// associated data = the unprotected header.
bool QuicInitialParser::aeadOpen(const QuicInitialKeys& keys, uint64_t packetNumber,
                                 std::span<const uint8_t> header, std::span<const uint8_t> ciphertext,
                                 std::span<const uint8_t> tag, uint8_t* out) noexcept {
  uint8_t nonce[12];
  std::memcpy(nonce, keys.iv.data(), sizeof nonce);
  for (size_t i = 0; i < 8; ++i) nonce[11 - i] ^= static_cast<uint8_t>(packetNumber >> (8 * i));
  EVP_CIPHER_CTX* ctx = gcmCtx_.get();
  int length = 0;
  if (EVP_DecryptInit_ex2(ctx, nullptr, keys.key.data(), nonce, nullptr) != 1) return false;
  if (EVP_DecryptUpdate(ctx, nullptr, &length, header.data(), static_cast<int>(header.size())) != 1)
    return false;
  if (!ciphertext.empty() &&
      EVP_DecryptUpdate(ctx, out, &length, ciphertext.data(), static_cast<int>(ciphertext.size())) != 1)
    return false;
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(tag.size()),
                          const_cast<uint8_t*>(tag.data())) != 1)
    return false;
  int finalLength = 0;
  return EVP_DecryptFinal_ex(ctx, out + length, &finalLength) == 1;
}

QuicInitialResult QuicInitialParser::parseDatagram(std::span<const uint8_t> datagram,
                                                   QuicCryptoReassembly& flow,
                                                   std::span<uint8_t> scratch) noexcept {
  if (datagram.empty()) return fail(ParseStatus::NotThisProtocol);
  QuicInitialResult result;
  size_t pos = 0;
  while (pos < datagram.size()) {
    const bool first = pos == 0;
    WireReader in(datagram.subspan(pos));
    // RFC 9000 §17.2 long header: form(1)=1, fixed(1), type(2), type-specific(4),
    // Version(32), DCID Len(8), DCID, SCID Len(8), SCID, then for Initial
    // (§17.2.2) Token Length (i), Token, Length (i), Packet Number, Payload.
    uint8_t firstByte = 0;
    uint32_t version = 0;
    if (!in.u8(firstByte) || (firstByte & 0x80) == 0 || !in.u32(version) ||
        (version != kQuicVersion1 && version != kQuicVersion2)) {
      // Not a v1/v2 long header: the whole datagram is not for us when it is
      // the first packet; a trailing short-header packet just ends it (§12.2).
      if (first) return fail(ParseStatus::NotThisProtocol);
      break;
    }
    // The fixed bit may be 0 only after the peer's grease_quic_bit (RFC
    // 9287), which a client's first flight cannot have seen from this server
    // unless it remembered it, so it is not checked.
    if (((firstByte >> 4) & 3) != initialPacketType(version)) {
      if (first) return fail(ParseStatus::NotThisProtocol);
      break;  // 0-RTT coalesced after the Initial: ends what we read
    }
    if (first && datagram.size() < kQuicMinInitialDatagram)
      return fail(ParseStatus::Malformed, MalformedReason::QuicDatagramTooSmall);
    if (!first && version != result.version) break;
    uint8_t dcidLength = 0, scidLength = 0;
    std::span<const uint8_t> dcid, scid, token;
    uint64_t tokenLength = 0, length = 0;
    if (!in.u8(dcidLength)) return fail(ParseStatus::Malformed, MalformedReason::QuicHeader);
    if (dcidLength > kQuicMaxConnectionIdBytes)
      return fail(ParseStatus::Malformed, MalformedReason::QuicConnectionIdLength);
    if (!in.bytes(dcidLength, dcid) || !in.u8(scidLength))
      return fail(ParseStatus::Malformed, MalformedReason::QuicHeader);
    if (scidLength > kQuicMaxConnectionIdBytes)
      return fail(ParseStatus::Malformed, MalformedReason::QuicConnectionIdLength);
    if (!in.bytes(scidLength, scid) || !in.varint(tokenLength) || tokenLength > in.remaining() ||
        !in.bytes(tokenLength, token) || !in.varint(length))
      return fail(ParseStatus::Malformed, MalformedReason::QuicHeader);
    const size_t pnOffset = in.position();
    // Length covers packet number and payload; the sample needs 4 + 16
    // bytes after the packet number offset (RFC 9001 §5.4.2), the tag 16.
    if (length > in.remaining() || length < 4 + kSampleBytes)
      return fail(ParseStatus::Malformed, MalformedReason::QuicPacketLength);
    const std::span<const uint8_t> packet = datagram.subspan(pos, pnOffset + length);
    if (scratch.size() < packet.size())
      return fail(ParseStatus::Malformed, MalformedReason::QuicScratchTooSmall);
    result.version = version;

    // RFC 9001 §5.2: keys come from the DCID of the client's first Initial.
    // A later Initial with another DCID is either after a Retry (new keys,
    // RFC 9001 §5.2) or bogus; try the cached keys first.
    const bool sameDcid = flow.haveKeys_ && flow.version_ == version && flow.dcidLength_ == dcid.size() &&
                          std::equal(dcid.begin(), dcid.end(), flow.dcid_.begin());
    QuicInitialKeys fresh;
    const QuicInitialKeys* keys = &flow.keys_;
    if (!sameDcid) {
      if (!deriveClientInitialKeys(version, dcid, fresh))
        return fail(ParseStatus::Malformed, MalformedReason::QuicDecryptFailed);
      keys = &fresh;
    }
    bool opened = false;
    uint8_t* header = scratch.data();
    size_t headerLength = 0;
    size_t plainLength = 0;
    for (int attempt = 0; attempt < 2 && !opened; ++attempt) {
      if (attempt == 1) {
        if (!flow.haveKeys_ || keys == &flow.keys_) break;
        keys = &flow.keys_;  // the new DCID did not work: maybe cached keys do
      }
      // RFC 9001 §5.4.1: unmask the low 4 bits of the first byte and the
      // packet number, into a copy (the input is const).
      uint8_t mask[16];
      if (!headerProtectionMask(*keys, packet.data() + pnOffset + 4, mask)) break;
      const uint8_t plainFirst = static_cast<uint8_t>(packet[0] ^ (mask[0] & 0x0f));
      const size_t pnLength = (plainFirst & 3) + 1u;
      if (length < pnLength + kTagBytes)
        return fail(ParseStatus::Malformed, MalformedReason::QuicPacketLength);
      headerLength = pnOffset + pnLength;
      std::memcpy(header, packet.data(), headerLength);
      header[0] = plainFirst;
      uint64_t packetNumber = 0;
      for (size_t i = 0; i < pnLength; ++i) {
        header[pnOffset + i] = static_cast<uint8_t>(packet[pnOffset + i] ^ mask[1 + i]);
        packetNumber = packetNumber << 8 | header[pnOffset + i];
      }
      // RFC 9000 §A.3 with no packet received yet (expected 0): the
      // truncated packet number is the packet number.
      plainLength = packet.size() - headerLength - kTagBytes;
      opened = aeadOpen(*keys, packetNumber, std::span<const uint8_t>(header, headerLength),
                        packet.subspan(headerLength, plainLength), packet.subspan(packet.size() - kTagBytes),
                        scratch.data() + headerLength);
      if (opened && (plainFirst & 0x0c) != 0)
        return fail(ParseStatus::Malformed, MalformedReason::QuicReservedBits);  // RFC 9000 §17.2
    }
    if (!opened) {
      if (first) return fail(ParseStatus::Malformed, MalformedReason::QuicDecryptFailed);
      break;  // a coalesced packet we cannot open is dropped (RFC 9000 §12.2)
    }
    if (keys == &fresh) {
      // First Initial of the flow, or one after a Retry: a new CRYPTO stream.
      flow.reset();
      flow.haveKeys_ = true;
      flow.version_ = version;
      flow.dcidLength_ = static_cast<uint8_t>(dcid.size());
      std::copy(dcid.begin(), dcid.end(), flow.dcid_.begin());
      flow.keys_ = fresh;
    }
    const MalformedReason reason =
        flow.addInitialFrames(std::span<const uint8_t>(scratch.data() + headerLength, plainLength));
    if (reason != MalformedReason::None) return fail(ParseStatus::Malformed, reason);
    ++result.initialPackets;
    pos += packet.size();
  }

  result.tls = flow.clientHello();
  result.status = result.tls.status;
  result.reason = result.tls.reason;
  result.needBytes = result.tls.needBytes;
  return result;
}

}  // namespace sni

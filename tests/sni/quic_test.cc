#include <openssl/evp.h>

#include <array>
#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "sni/quic.h"
#include "tests/sni/test_util.h"

using namespace sni_test;
using sni::ParseStatus;

namespace {

const Bytes kRfcDcid = fromHex("8394c8f03e515708");

std::string hex(std::span<const uint8_t> b) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (uint8_t c : b) {
    s += digits[c >> 4];
    s += digits[c & 15];
  }
  return s;
}

void putVarint(Bytes& b, uint64_t v) {
  if (v < 64) {
    b.push_back(static_cast<uint8_t>(v));
  } else if (v < 16384) {
    put16(b, 0x4000 | v);
  } else {
    b.push_back(static_cast<uint8_t>(0x80 | v >> 24));
    put24(b, v & 0xffffff);
  }
}

Bytes cryptoFrame(uint64_t offset, std::span<const uint8_t> data) {
  Bytes f{0x06};
  putVarint(f, offset);
  putVarint(f, data.size());
  f.insert(f.end(), data.begin(), data.end());
  return f;
}

// A test-side client: protects an Initial packet the RFC 9001 §5 way, so
// the parser is checked against an independent encryption (OpenSSL's, driven
// here) rather than against itself. Keys come from the parser's derivation,
// which the RFC test vectors pin down separately.
Bytes protectInitial(sni::QuicInitialParser& parser, uint32_t version, const Bytes& dcid,
                     uint32_t packetNumber, Bytes frames, size_t datagramSize = 1200) {
  sni::QuicInitialKeys keys;
  REQUIRE(parser.deriveClientInitialKeys(version, dcid, keys));
  const uint8_t type = version == sni::kQuicVersion2 ? 1 : 0;
  Bytes header{static_cast<uint8_t>(0xc0 | type << 4 | 3)};  // 4-byte packet number
  put16(header, version >> 16);
  put16(header, version & 0xffff);
  header.push_back(static_cast<uint8_t>(dcid.size()));
  append(header, dcid);
  header.push_back(0);  // SCID empty
  header.push_back(0);  // no token
  // Pad the frames so the datagram has datagramSize bytes.
  const size_t fixed = header.size() + 2 + 4 + 16;
  if (fixed + frames.size() < datagramSize) frames.resize(datagramSize - fixed, 0);
  put16(header, 0x4000 | (4 + frames.size() + 16));
  const size_t pnOffset = header.size();
  put16(header, packetNumber >> 16);
  put16(header, packetNumber & 0xffff);

  uint8_t nonce[12];
  std::memcpy(nonce, keys.iv.data(), 12);
  for (int i = 0; i < 4; ++i) nonce[11 - i] ^= static_cast<uint8_t>(packetNumber >> (8 * i));
  Bytes ciphertext(frames.size() + 16);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int n = 0;
  REQUIRE(EVP_EncryptInit_ex(ctx, EVP_aes_128_gcm(), nullptr, keys.key.data(), nonce) == 1);
  REQUIRE(EVP_EncryptUpdate(ctx, nullptr, &n, header.data(), static_cast<int>(header.size())) == 1);
  REQUIRE(EVP_EncryptUpdate(ctx, ciphertext.data(), &n, frames.data(), static_cast<int>(frames.size())) == 1);
  REQUIRE(EVP_EncryptFinal_ex(ctx, ciphertext.data() + n, &n) == 1);
  REQUIRE(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, ciphertext.data() + frames.size()) == 1);
  uint8_t mask[16];
  REQUIRE(EVP_EncryptInit_ex(ctx, EVP_aes_128_ecb(), nullptr, keys.hp.data(), nullptr) == 1);
  EVP_CIPHER_CTX_set_padding(ctx, 0);
  REQUIRE(EVP_EncryptUpdate(ctx, mask, &n, ciphertext.data(), 16) ==
          1);  // sample at pn_offset + 4: ciphertext start
  EVP_CIPHER_CTX_free(ctx);
  Bytes packet = header;
  append(packet, ciphertext);
  packet[0] ^= mask[0] & 0x0f;
  for (int i = 0; i < 4; ++i) packet[pnOffset + static_cast<size_t>(i)] ^= mask[1 + i];
  return packet;
}

struct Flow {
  std::array<uint8_t, 4096> stream{};
  sni::QuicCryptoReassembly state{stream};
};

std::array<uint8_t, 4096> gScratch;

}  // namespace

TEST_CASE("RFC 9001 A.1: client Initial keys from the DCID") {
  sni::QuicInitialParser parser;
  sni::QuicInitialKeys keys;
  REQUIRE(parser.deriveClientInitialKeys(sni::kQuicVersion1, kRfcDcid, keys));
  CHECK(hex(keys.clientSecret) == "c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea");
  CHECK(hex(keys.key) == "1f369613dd76d5467730efcbe3b1a22d");
  CHECK(hex(keys.iv) == "fa044b2f42a3fd3b46fb255c");
  CHECK(hex(keys.hp) == "9f50449e04a0e810283a1e9933adedd2");
}

TEST_CASE("RFC 9369 A.1: QUIC v2 client Initial keys") {
  sni::QuicInitialParser parser;
  sni::QuicInitialKeys keys;
  REQUIRE(parser.deriveClientInitialKeys(sni::kQuicVersion2, kRfcDcid, keys));
  CHECK(hex(keys.clientSecret) == "14ec9d6eb9fd7af83bf5a668bc17a7e283766aade7ecd0891f70f9ff7f4bf47b");
  CHECK(hex(keys.key) == "8b1a0bc121284290a29e0971b5cd045d");
  CHECK(hex(keys.iv) == "91f73e2351d8fa91660e909f");
  CHECK(hex(keys.hp) == "45b95e15235d6f45a6b19cbcb0294ba9");
}

TEST_CASE("RFC 9001 A.2 and RFC 9369 A.2: the sample client Initial decrypts to the published payload") {
  const Bytes payload = readFixture("rfc9001_client_initial_payload.bin");
  struct Sample {
    const char* file;
    uint32_t version;
    const char* plainHeader;
  };
  for (const Sample& s : {Sample{"rfc9001_client_initial.bin", sni::kQuicVersion1,
                                 "c300000001088394c8f03e5157080000449e00000002"},
                          Sample{"rfc9369_client_initial.bin", sni::kQuicVersion2,
                                 "d36b3343cf088394c8f03e5157080000449e00000002"}}) {
    INFO(s.file);
    const Bytes datagram = readFixture(s.file);
    REQUIRE(datagram.size() == 1200);
    sni::QuicInitialParser parser;
    Flow flow;
    const auto r = parser.parseDatagram(datagram, flow.state, gScratch);
    REQUIRE(r.status == ParseStatus::Ok);
    CHECK(r.version == s.version);
    CHECK(r.initialPackets == 1);
    // Header protection removed and payload decrypted exactly as published.
    const Bytes plainHeader = fromHex(s.plainHeader);
    CHECK(hex(std::span(gScratch).first(plainHeader.size())) == s.plainHeader);
    CHECK(hex(std::span(gScratch).subspan(plainHeader.size(), payload.size())) == hex(payload));
    CHECK(r.tls.hello.serverName == "example.com");
    REQUIRE(r.tls.hello.alpnCount == 1);
    CHECK(r.tls.hello.alpn[0] == "alpn");
    CHECK(r.tls.hello.maxVersion == 0x0304);
  }
}

TEST_CASE("QUIC: tampering, truncation and other packets") {
  sni::QuicInitialParser parser;
  const Bytes sample = readFixture("rfc9001_client_initial.bin");
  {
    Bytes b = sample;
    b[600] ^= 1;
    Flow flow;
    CHECK(sni::malformedReasonName(parser.parseDatagram(b, flow.state, gScratch).reason) ==
          "QuicDecryptFailed");
  }
  {
    Flow flow;
    const Bytes b(sample.begin(), sample.begin() + 1000);
    CHECK(sni::malformedReasonName(parser.parseDatagram(b, flow.state, gScratch).reason) ==
          "QuicDatagramTooSmall");
  }
  {
    Flow flow;
    std::array<uint8_t, 100> small{};
    CHECK(sni::malformedReasonName(parser.parseDatagram(sample, flow.state, small).reason) ==
          "QuicScratchTooSmall");
  }
  {
    Bytes b = sample;
    b[5] = 21;  // DCID length over 20
    Flow flow;
    CHECK(sni::malformedReasonName(parser.parseDatagram(b, flow.state, gScratch).reason) ==
          "QuicConnectionIdLength");
  }
  {
    Bytes b = sample;
    b[1] = 0xff;  // unknown version (version negotiation would follow)
    Flow flow;
    CHECK(parser.parseDatagram(b, flow.state, gScratch).status == ParseStatus::NotThisProtocol);
    b = sample;
    b[0] = 0x40;  // short header
    CHECK(parser.parseDatagram(b, flow.state, gScratch).status == ParseStatus::NotThisProtocol);
    b = sample;
    b[0] = 0xd0;  // v1 0-RTT
    CHECK(parser.parseDatagram(b, flow.state, gScratch).status == ParseStatus::NotThisProtocol);
    CHECK(parser.parseDatagram(Bytes{}, flow.state, gScratch).status == ParseStatus::NotThisProtocol);
  }
}

TEST_CASE("QUIC: a post-quantum ClientHello over two Initial datagrams, CRYPTO out of order") {
  sni::QuicInitialParser parser;
  const Bytes hello = handshakeOf(readFixture("go_pq.bin"));  // 1.5 KiB, does not fit one Initial
  REQUIRE(hello.size() > 1200);
  const Bytes dcid = fromHex("0011223344556677");
  for (uint32_t version : {sni::kQuicVersion1, sni::kQuicVersion2}) {
    INFO(version);
    const size_t split = 1000;
    // Datagram 1 carries the second part first (Chrome-style shuffling), then PING.
    Bytes frames1 = cryptoFrame(split, std::span(hello).subspan(split));
    frames1.push_back(0x01);
    Bytes frames2 = cryptoFrame(0, std::span(hello).first(split));
    const Bytes d1 = protectInitial(parser, version, dcid, 0, frames1);
    const Bytes d2 = protectInitial(parser, version, dcid, 1, frames2, 1250);
    Flow flow;
    auto r = parser.parseDatagram(d1, flow.state, gScratch);
    REQUIRE(r.status == ParseStatus::NeedMore);
    CHECK(flow.state.contiguousBytes() == 0);
    r = parser.parseDatagram(d2, flow.state, gScratch);
    REQUIRE(r.status == ParseStatus::Ok);
    CHECK(r.tls.hello.serverName == "api.example.com");

    // In order: NeedMore knows exactly how many CRYPTO bytes are missing.
    Flow inOrder;
    const Bytes e1 = protectInitial(parser, version, dcid, 0, cryptoFrame(0, std::span(hello).first(split)));
    const Bytes e2 =
        protectInitial(parser, version, dcid, 1, cryptoFrame(split, std::span(hello).subspan(split)));
    r = parser.parseDatagram(e1, inOrder.state, gScratch);
    REQUIRE(r.status == ParseStatus::NeedMore);
    CHECK(r.needBytes == hello.size() - split);
    // A retransmission of the same bytes is harmless.
    r = parser.parseDatagram(e1, inOrder.state, gScratch);
    REQUIRE(r.status == ParseStatus::NeedMore);
    r = parser.parseDatagram(e2, inOrder.state, gScratch);
    REQUIRE(r.status == ParseStatus::Ok);
    CHECK(r.tls.hello.serverName == "api.example.com");
  }
}

TEST_CASE("QUIC: coalesced Initials in one datagram") {
  sni::QuicInitialParser parser;
  const Bytes hello = handshakeOf(readFixture("openssl_s_client.bin"));
  const Bytes dcid = fromHex("a1a2a3a4a5a6a7a8");
  Bytes datagram =
      protectInitial(parser, sni::kQuicVersion1, dcid, 0, cryptoFrame(0, std::span(hello).first(100)), 0);
  append(datagram, protectInitial(parser, sni::kQuicVersion1, dcid, 1,
                                  cryptoFrame(100, std::span(hello).subspan(100)), 1200 - datagram.size()));
  Flow flow;
  const auto r = parser.parseDatagram(datagram, flow.state, gScratch);
  REQUIRE(r.status == ParseStatus::Ok);
  CHECK(r.initialPackets == 2);
  CHECK(r.tls.hello.serverName == "api.example.com");
}

TEST_CASE("QUIC: refusals inside the decrypted payload") {
  sni::QuicInitialParser parser;
  const Bytes hello = handshakeOf(readFixture("openssl_s_client.bin"));
  const Bytes dcid = fromHex("0102030405060708");
  const auto reasonFor = [&](std::vector<Bytes> framesPerDatagram) {
    Flow flow;
    sni::QuicInitialResult r;
    uint32_t pn = 0;
    for (const auto& frames : framesPerDatagram) {
      r = parser.parseDatagram(protectInitial(parser, sni::kQuicVersion1, dcid, pn++, frames), flow.state,
                               gScratch);
      if (r.status != ParseStatus::NeedMore) break;
    }
    return std::string(sni::malformedReasonName(r.reason));
  };
  // STREAM frame (0x08) is not allowed in Initial packets (RFC 9000 §12.4).
  CHECK(reasonFor({Bytes{0x08, 0x00, 0x01, 'x'}}) == "QuicForbiddenFrame");
  // Truncated CRYPTO frame.
  CHECK(reasonFor({Bytes{0x06, 0x00, 0x7f, 0xff}}) == "QuicFrame");
  // Two different versions of the same CRYPTO bytes.
  Bytes altered = hello;
  altered[50] ^= 0xff;
  CHECK(reasonFor({cryptoFrame(0, std::span(hello).first(100)),
                   cryptoFrame(0, std::span(altered).first(120))}) == "QuicCryptoConflict");
  // Beyond the flow's buffer.
  CHECK(reasonFor({cryptoFrame(4090, std::span(hello).first(10))}) == "QuicCryptoTooLarge");
  // Too many gaps.
  std::vector<Bytes> gaps;
  Bytes many;
  for (size_t i = 0; i < sni::kQuicMaxCryptoRanges + 1; ++i)
    append(many, cryptoFrame(10 + 3 * i, std::span(hello).subspan(10 + 3 * i, 1)));
  CHECK(reasonFor({many}) == "QuicCryptoFragments");
  // The CRYPTO stream must start with a ClientHello.
  Bytes notHello = hello;
  notHello[0] = 2;
  CHECK(reasonFor({cryptoFrame(0, notHello)}) == "TlsNotClientHello");
  // ACK, PING, PADDING and CONNECTION_CLOSE are fine around the hello.
  Bytes mixed{0x02, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x1c, 0x00, 0x00, 0x00};
  append(mixed, cryptoFrame(0, hello));
  CHECK(reasonFor({mixed}) == "None");
}

TEST_CASE("QUIC: Initials protected independently by make_corpus.py (python cryptography)") {
  sni::QuicInitialParser parser;
  for (const char* name : {"go_pq_two_initials_v1.bin", "go_pq_two_initials_v2.bin"}) {
    INFO(name);
    const Bytes framed = readFixture(std::string("../corpus/quic/") + name);
    Flow flow;
    sni::QuicInitialResult r;
    size_t datagrams = 0;
    for (size_t pos = 0; pos + 2 <= framed.size();) {
      const size_t length = size_t{framed[pos]} << 8 | framed[pos + 1];
      REQUIRE(pos + 2 + length <= framed.size());
      r = parser.parseDatagram(std::span(framed).subspan(pos + 2, length), flow.state, gScratch);
      ++datagrams;
      if (datagrams == 1) CHECK(r.status == ParseStatus::NeedMore);
      pos += 2 + length;
    }
    CHECK(datagrams == 2);
    REQUIRE(r.status == ParseStatus::Ok);
    CHECK(r.tls.hello.serverName == "api.example.com");
  }
}

TEST_CASE("QUIC: real client (golang.org/x/net/quic) with a post-quantum hello over several Initials") {
  sni::QuicInitialParser parser;
  const Bytes framed = readFixture("go_quic_initials.bin");
  Flow flow;
  sni::QuicInitialResult r;
  size_t datagrams = 0;
  for (size_t pos = 0; pos + 2 <= framed.size() && r.status != ParseStatus::Ok;) {
    const size_t length = size_t{framed[pos]} << 8 | framed[pos + 1];
    REQUIRE(pos + 2 + length <= framed.size());
    r = parser.parseDatagram(std::span(framed).subspan(pos + 2, length), flow.state, gScratch);
    REQUIRE((r.status == ParseStatus::NeedMore || r.status == ParseStatus::Ok));
    ++datagrams;
    pos += 2 + length;
  }
  REQUIRE(r.status == ParseStatus::Ok);
  CHECK(datagrams >= 2);  // the ML-KEM key share does not fit one Initial
  CHECK(r.version == sni::kQuicVersion1);
  CHECK(r.tls.hello.serverName == "quic.example.com");
  REQUIRE(r.tls.hello.alpnCount == 1);
  CHECK(r.tls.hello.alpn[0] == "h3");
  CHECK(r.tls.hello.maxVersion == 0x0304);
}

TEST_CASE("QUIC: CRYPTO reassembly from decrypted payloads (overlapping, out of order)") {
  const Bytes framed = readFixture("../corpus/quic/plaintext_go_pq_shuffled.bin");
  Flow flow;
  sni::TlsHelloResult hello;
  size_t pos = 2;  // skip the zero-length "plaintext mode" marker
  while (pos + 2 <= framed.size()) {
    const size_t length = size_t{framed[pos]} << 8 | framed[pos + 1];
    CHECK(flow.state.addInitialFrames(std::span(framed).subspan(pos + 2, length)) ==
          sni::MalformedReason::None);
    CHECK(flow.state.invariantsHold());
    hello = flow.state.clientHello();
    pos += 2 + length;
    if (pos < framed.size()) CHECK(hello.status == ParseStatus::NeedMore);
  }
  REQUIRE(hello.status == ParseStatus::Ok);
  CHECK(hello.hello.serverName == "api.example.com");
}

TEST_CASE("QUIC: after a Retry the client's new DCID brings new keys and a new CRYPTO stream") {
  sni::QuicInitialParser parser;
  const Bytes hello = handshakeOf(readFixture("openssl_s_client.bin"));
  Flow flow;
  // First Initial: half of the hello under the original DCID.
  auto r = parser.parseDatagram(protectInitial(parser, sni::kQuicVersion1, fromHex("1111111111111111"), 0,
                                               cryptoFrame(0, std::span(hello).first(100))),
                                flow.state, gScratch);
  REQUIRE(r.status == ParseStatus::NeedMore);
  // RFC 9001 §5.2: after Retry the keys come from the server-chosen DCID;
  // the client resends its whole hello from offset 0.
  r = parser.parseDatagram(
      protectInitial(parser, sni::kQuicVersion1, fromHex("2222222222222222aa"), 1, cryptoFrame(0, hello)),
      flow.state, gScratch);
  REQUIRE(r.status == ParseStatus::Ok);
  CHECK(r.tls.hello.serverName == "api.example.com");
  // A packet under neither key set is refused.
  Bytes forged =
      protectInitial(parser, sni::kQuicVersion1, fromHex("3333333333333333"), 2, cryptoFrame(0, hello));
  forged[forged.size() - 1] ^= 1;
  CHECK(sni::malformedReasonName(parser.parseDatagram(forged, flow.state, gScratch).reason) ==
        "QuicDecryptFailed");
}

// libFuzzer target for sni::QuicInitialParser and the CRYPTO reassembly.
//
// Input: one or more chunks of the same flow, each a 2-byte big-endian
// length then the bytes (tests/sni/fixtures/make_corpus.py and capture.py
// write such files). A first chunk of length 0 switches to "plaintext mode":
// every further chunk is a decrypted Initial payload fed straight to
// QuicCryptoReassembly::addInitialFrames, because mutated bytes almost never
// pass the AEAD, and frame parsing and range merging deserve the fuzzer too.
// An input that does not follow the framing is one datagram.
#include <array>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "sni/quic.h"

namespace {
bool framedOk(const uint8_t* data, size_t size) {
  size_t pos = 0;
  while (pos < size) {
    if (size - pos < 2) return false;
    const size_t length = size_t{data[pos]} << 8 | data[pos + 1];
    if (length > size - pos - 2) return false;
    pos += 2 + length;
  }
  return size > 0;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static sni::QuicInitialParser parser;
  static std::array<uint8_t, 4096> stream;
  static std::array<uint8_t, 65536> scratch;
  sni::QuicCryptoReassembly flow(stream);
  const std::span<const uint8_t> input(data, size);
  if (!framedOk(data, size)) {
    (void)parser.parseDatagram(input, flow, scratch);
    return 0;
  }
  const bool plaintextMode = data[0] == 0 && data[1] == 0;
  for (size_t pos = plaintextMode ? 2 : 0; pos < size;) {
    const size_t length = size_t{data[pos]} << 8 | data[pos + 1];
    const auto chunk = input.subspan(pos + 2, length);
    pos += 2 + length;
    if (plaintextMode) {
      const sni::MalformedReason reason = flow.addInitialFrames(chunk);
      if (!flow.invariantsHold()) std::abort();
      if (reason != sni::MalformedReason::None) break;
      const sni::TlsHelloResult hello = flow.clientHello();
      if (hello.status == sni::ParseStatus::NeedMore && hello.needBytes == 0) std::abort();
      if (hello.status != sni::ParseStatus::NeedMore) break;
    } else {
      const sni::QuicInitialResult r = parser.parseDatagram(chunk, flow, scratch);
      if (!flow.invariantsHold()) std::abort();
      if (r.status == sni::ParseStatus::NeedMore && r.needBytes == 0) std::abort();
      if (r.status != sni::ParseStatus::NeedMore) break;
    }
  }
  return 0;
}

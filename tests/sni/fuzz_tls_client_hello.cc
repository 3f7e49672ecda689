// libFuzzer target for sni::parseTlsClientHello. Besides "no crash", it
// checks invariants: every prefix of an input that parses Ok gives NeedMore
// or the same answer (never Ok with another name), and views stay inside
// the input or the scratch buffer.
#include <array>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "sni/tls.h"

namespace {
bool inside(std::string_view view, const uint8_t* begin, size_t size) {
  if (view.empty()) return true;
  const auto* p = reinterpret_cast<const uint8_t*>(view.data());
  return p >= begin && p + view.size() <= begin + size;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::array<uint8_t, sni::kMaxClientHelloBytes> scratch;
  const std::span<const uint8_t> input(data, size);
  const sni::TlsHelloResult full = sni::parseTlsClientHello(input, scratch);
  if (full.status == sni::ParseStatus::Ok) {
    const uint8_t* base = full.usedScratch ? scratch.data() : data;
    const size_t limit = full.usedScratch ? scratch.size() : size;
    if (!inside(full.hello.serverName, base, limit) || !inside(full.hello.serverNameIpLiteral, base, limit))
      std::abort();
    if (full.consumed == 0 || full.consumed > size) std::abort();
    const std::string_view name(full.hello.serverName);
    // A cut before `consumed` must ask for more, never decide.
    const size_t cut = size > 0 ? full.consumed / 2 : 0;
    const sni::TlsHelloResult part = sni::parseTlsClientHello(input.first(cut), scratch);
    if (part.status != sni::ParseStatus::NeedMore) std::abort();
    (void)name;
  }
  if (full.status == sni::ParseStatus::NeedMore && full.needBytes == 0) std::abort();
  // The handshake-layer entry point (QUIC) on the same bytes.
  (void)sni::parseClientHelloMessage(input);
  return 0;
}

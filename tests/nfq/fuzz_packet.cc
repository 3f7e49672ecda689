// libFuzzer target for the packet decoder. Corpus: packets captured on
// loopback (HTTP, TLS ClientHello, UDP, IPv4 and IPv6) and crafted ones
// (ICMP, IPv6 extension chains, fragments, ESP). Checks, beyond "no crash":
// the payload view lies inside the input and fits the header lengths.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "nfq/packet.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> input(data, size);
  const nfq::DecodeResult result = nfq::decodePacket(input);
  if (nfq::decodeErrorName(result.error).empty()) std::abort();
  if (result.ok()) {
    const auto& view = result.view;
    const size_t headers = size_t{view.networkHeaderLength} + view.transportHeaderLength;
    if (headers > size) std::abort();
    if (!view.payload.empty()) {
      if (view.payload.data() < data || view.payload.data() + view.payload.size() > data + size) std::abort();
      if (view.payload.data() != data + headers) std::abort();
    }
    if (!view.hasTransport && (view.srcPort != 0 || !view.payload.empty())) std::abort();
  }
  return 0;
}

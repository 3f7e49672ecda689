// libFuzzer target for the PROXY protocol header (common/proxy_protocol.h),
// the first bytes egressd reads from a load balancer's connection or
// datagram.
// Invariants: an Ok header's length is within the input and its bound
// (107 bytes for v1, 1040 for v2); a Malformed one says why; a header
// that parsed parses the same with more bytes after it (the client's
// request follows it in the same segment), and a strict prefix of it
// never parses as Ok.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "common/proxy_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> input(data, size);
  // Before a datagram (dnsdist): v2 only, whole, within the input.
  common::ProxyHeader datagram;
  const common::ProxyHeaderStatus overUdp =
      common::parseProxyHeader(input, datagram, common::ProxyCarrier::Datagram);
  if (overUdp == common::ProxyHeaderStatus::Malformed && datagram.why.empty()) std::abort();
  if (overUdp == common::ProxyHeaderStatus::Ok &&
      (datagram.version != 2 || datagram.length == 0 || datagram.length > size)) {
    std::abort();
  }
  common::ProxyHeader header;
  const common::ProxyHeaderStatus status = common::parseProxyHeader(input, header);
  if (status == common::ProxyHeaderStatus::Malformed && header.why.empty()) std::abort();
  if (status != common::ProxyHeaderStatus::Ok) return 0;
  if (header.length == 0 || header.length > size) std::abort();
  if (header.version == 1 && header.length > common::kMaxProxyV1Bytes) std::abort();
  if (header.version == 2 && header.length > common::kMaxProxyV2Bytes) std::abort();
  if (header.version != 1 && header.version != 2) std::abort();
  std::vector<uint8_t> longer(data, data + size);
  longer.insert(longer.end(), {'G', 'E', 'T', ' ', '/', '\r', '\n'});
  common::ProxyHeader again;
  if (common::parseProxyHeader(longer, again) != common::ProxyHeaderStatus::Ok ||
      again.length != header.length || !(again.source == header.source) || again.local != header.local) {
    std::abort();
  }
  common::ProxyHeader partial;
  if (common::parseProxyHeader(input.first(header.length - 1), partial) == common::ProxyHeaderStatus::Ok) {
    std::abort();
  }
  return 0;
}

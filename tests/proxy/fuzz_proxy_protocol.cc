// libFuzzer target for the PROXY protocol header (proxy/proxy_protocol.h),
// the first bytes egressd reads from a load balancer's connection.
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

#include "proxy/proxy_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> input(data, size);
  proxy::ProxyHeader header;
  const proxy::ProxyHeaderStatus status = proxy::parseProxyHeader(input, header);
  if (status == proxy::ProxyHeaderStatus::Malformed && header.why.empty()) std::abort();
  if (status != proxy::ProxyHeaderStatus::Ok) return 0;
  if (header.length == 0 || header.length > size) std::abort();
  if (header.version == 1 && header.length > proxy::kMaxProxyV1Bytes) std::abort();
  if (header.version == 2 && header.length > proxy::kMaxProxyV2Bytes) std::abort();
  if (header.version != 1 && header.version != 2) std::abort();
  std::vector<uint8_t> longer(data, data + size);
  longer.insert(longer.end(), {'G', 'E', 'T', ' ', '/', '\r', '\n'});
  proxy::ProxyHeader again;
  if (proxy::parseProxyHeader(longer, again) != proxy::ProxyHeaderStatus::Ok ||
      again.length != header.length || !(again.source == header.source) || again.local != header.local) {
    std::abort();
  }
  proxy::ProxyHeader partial;
  if (proxy::parseProxyHeader(input.first(header.length - 1), partial) == proxy::ProxyHeaderStatus::Ok) {
    std::abort();
  }
  return 0;
}

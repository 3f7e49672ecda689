// libFuzzer target for sni::parseHttpRequest: no crash, views inside the
// input, and a prefix of an Ok request is NeedMore.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "sni/http.h"

namespace {
bool inside(std::string_view view, const uint8_t* begin, size_t size) {
  if (view.empty()) return true;
  const auto* p = reinterpret_cast<const uint8_t*>(view.data());
  return p >= begin && p + view.size() <= begin + size;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> input(data, size);
  const sni::HttpRequestResult r = sni::parseHttpRequest(input);
  if (r.status == sni::ParseStatus::Ok) {
    if (!inside(r.host, data, size) || !inside(r.method, data, size) || !inside(r.target, data, size))
      std::abort();
    if (r.consumed == 0 || r.consumed > size) std::abort();
    const sni::HttpRequestResult part = sni::parseHttpRequest(input.first(r.consumed - 1));
    if (part.status != sni::ParseStatus::NeedMore) std::abort();
  }
  if (r.status == sni::ParseStatus::NeedMore && r.needBytes == 0) std::abort();
  return 0;
}

// libFuzzer target: kubeconfig parsing on arbitrary bytes. File references
// are resolved against a folder that does not exist, so no real file is
// read; every refusal must say why.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "controller/kubeconfig.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto result = controller::parseKubeconfig(text, "/nonexistent-fuzz-dir");
  if (result.config.has_value() == !result.errors.empty()) std::abort();
  if (result.config && result.config->server.rfind("https://", 0) != 0) std::abort();
  (void)controller::decodeBase64(text);
  return 0;
}

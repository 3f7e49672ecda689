// libFuzzer target: the manifest loader (YAML and JSON) on arbitrary bytes.
// Nothing may escape the loader, and whatever it accepts must compile.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "policy/manifest.h"
#include "policy/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto loaded = policy::loadManifest(text, "fuzz.yaml", policy::defaultPublicSuffixList());
  for (const auto& problem : loaded.problems) {
    if (problem.message.empty()) std::abort();
  }
  const auto compiled = policy::Policy::compile(loaded.valid);
  if (compiled->ruleSets().size() != loaded.valid.size()) std::abort();
  return 0;
}

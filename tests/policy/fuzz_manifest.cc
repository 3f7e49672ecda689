// libFuzzer target: the manifest loader (YAML and JSON) on arbitrary bytes.
// Nothing may escape the loader, whatever it accepts must compile, every
// refused target is reported, and reloading the same bytes against their
// own last good version changes nothing (no rule set is kept that the
// file does not hold).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "policy/manifest.h"
#include "policy/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto loaded = policy::loadManifest(text, "fuzz.yaml", policy::defaultPublicSuffixList());
  size_t targetErrors = 0;
  for (const auto& problem : loaded.problems) {
    if (problem.message.empty()) std::abort();
    if (problem.line > 0 && problem.column == 0) std::abort();
    if (problem.severity == policy::Severity::Error && problem.targetIndex) ++targetErrors;
    (void)problem.excerpt();
  }
  size_t refused = 0;
  for (const auto& ruleSet : loaded.valid) {
    if (ruleSet.targets.size() != ruleSet.targetTexts.size()) std::abort();
    refused += ruleSet.refused.size();
  }
  if (refused > targetErrors) std::abort();
  const auto compiled = policy::Policy::compile(loaded.valid);
  if (compiled->ruleSets().size() != loaded.valid.size()) std::abort();

  policy::RulesLoader first(policy::defaultPublicSuffixList());
  first.addContent(text, "fuzz.yaml");
  const auto once = std::move(first).finish();
  policy::RulesLoader second(policy::defaultPublicSuffixList(), &once.byFile);
  second.addContent(text, "fuzz.yaml");
  const auto twice = std::move(second).finish();
  if (!(once.ruleSets == twice.ruleSets)) std::abort();
  return 0;
}

// libFuzzer target for suggest's whole input path: arbitrary bytes as a
// file saved by `egressctl watch --json` (a corrupt or hostile file, or a
// stream from a peer) → suggest::readLine per line → Suggester (both
// groupings, a low wildcard threshold, a small bound on destinations) →
// finish → renderYaml. The fast path (suggest/event_scanner.h) gives
// exactly what nlohmann::json + observe::eventFromJson give, or declines.
// No crash, and whatever the input, the YAML loads
// with policy::loadManifest (what `egressctl lint` runs) without a single
// error, every target in force, none of them world access or a wildcard
// over a public suffix.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "observe/format.h"
#include "policy/manifest.h"
#include "suggest/event_scanner.h"
#include "suggest/line_reader.h"
#include "suggest/suggester.h"

namespace {

void check(const suggest::Suggestion& suggestion, const policy::PublicSuffixList& suffixes) {
  const std::string yaml = suggest::renderYaml(suggestion);
  const auto load = policy::loadManifest(yaml, "fuzz.yaml", suffixes);
  if (!load.rejected.empty()) std::abort();
  for (const auto& problem : load.problems) {
    if (problem.severity == policy::Severity::Error) std::abort();
  }
  size_t targets = 0;
  for (const auto& ruleSet : load.valid) {
    if (!ruleSet.refused.empty()) std::abort();
    for (const auto& target : ruleSet.targets) {
      if (target.kind == policy::TargetKind::AnyName || target.kind == policy::TargetKind::Network)
        std::abort();
      if (target.kind == policy::TargetKind::WildcardName && suffixes.isPublicSuffix(target.name))
        std::abort();
      ++targets;
    }
  }
  size_t suggested = 0;
  for (const auto& ruleSet : suggestion.ruleSets) suggested += ruleSet.targets.size();
  if (targets != suggested) std::abort();  // every suggested target is in the YAML, in force
}

// The fast path agrees with the general reader on every line it takes.
void checkScanner(std::string_view line) {
  const auto fast = suggest::scanFlatEvent(line);
  if (!fast) return;
  const auto json = nlohmann::json::parse(line, nullptr, false);
  if (json.is_discarded()) std::abort();
  const auto general = observe::eventFromJson(json);
  if (!general) std::abort();
  if (observe::toJson(*fast) != observe::toJson(*general)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& suffixes = policy::defaultPublicSuffixList();
  suggest::Options byNamespace;
  byNamespace.wildcardMin = 2;
  byNamespace.maxDestinations = 64;
  suggest::Options byWorkload = byNamespace;
  byWorkload.per = suggest::Per::Workload;
  suggest::Suggester first(suffixes, byNamespace);
  suggest::Suggester second(suffixes, byWorkload);
  std::string_view text(reinterpret_cast<const char*>(data), size);
  uint64_t dropped = 0;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    checkScanner(text.substr(0, end));
    const auto result = suggest::readLine(text.substr(0, end), &dropped);
    if (result.kind == suggest::LineKind::Event) {
      first.add(result.event);
      second.add(result.event);
    } else if (result.kind == suggest::LineKind::Invalid && result.error.empty()) {
      std::abort();  // an invalid line always says why
    }
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  check(first.finish(nullptr), suffixes);
  check(second.finish(nullptr), suffixes);
  return 0;
}

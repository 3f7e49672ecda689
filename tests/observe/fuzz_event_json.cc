// libFuzzer target for observe::eventFromJson: the JSON events egressctl
// reads from the control socket or from a file saved by `watch --json`
// (arbitrary bytes: a hostile peer or a corrupt file). No crash; an event
// that decodes encodes again, and that encoding decodes to the same event
// (toJson ∘ eventFromJson is a fixed point after one step: the first step
// may normalise, e.g. non-ASCII bytes become '?'), attribution fields
// included; the line form never fails either.
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "observe/format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto json = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return 0;
  const auto event = observe::eventFromJson(json);
  if (!event) return 0;
  (void)observe::formatLine(*event);
  const nlohmann::json once = observe::toJson(*event);
  const auto again = observe::eventFromJson(nlohmann::json::parse(once.dump()));
  if (!again) std::abort();
  if (observe::toJson(*again) != once) std::abort();
  if (again->namespaceView().size() > observe::kMaxEventNamespace ||
      again->podView().size() > observe::kMaxEventPod ||
      again->workloadView().size() > observe::kMaxEventWorkload ||
      again->serviceAccountView().size() > observe::kMaxEventServiceAccount) {
    std::abort();
  }
  return 0;
}

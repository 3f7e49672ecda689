// libFuzzer target: the body of a webhook call, as anyone who reaches the
// webhook's port may send it, through controller::admit(). Nothing may
// throw; a 200 answer must be an AdmissionReview that allows the pod (the
// webhook never denies), carry the request's uid, and its patch must be a
// base64 JSON array of "add" operations under /spec/.../env only.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "controller/base64.h"
#include "controller/injection.h"

namespace {
const controller::InjectionConfig& config() {
  static const controller::InjectionConfig value = [] {
    controller::InjectionConfig c;
    c.noProxy = controller::noProxyList(controller::NoProxyParts{});
    return c;
  }();
  return value;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(size > 0 ? data : nullptr), size);
  const controller::AdmissionAnswer answer = controller::admit(body, config());
  if (answer.httpStatus == 400) {
    if (answer.outcome != controller::InjectOutcome::BadReview || answer.body.empty()) std::abort();
    return 0;
  }
  if (answer.httpStatus != 200) std::abort();
  const auto review = nlohmann::json::parse(answer.body, nullptr, false);
  if (!review.is_object()) std::abort();
  const auto& response = review.at("response");
  if (response.at("allowed") != true || response.at("uid") != answer.uid || answer.uid.empty()) std::abort();
  if (!response.contains("patch")) {
    if (answer.outcome == controller::InjectOutcome::Injected) std::abort();
    return 0;
  }
  if (answer.outcome != controller::InjectOutcome::Injected || response.at("patchType") != "JSONPatch")
    std::abort();
  const auto decoded = controller::base64Decode(response.at("patch").get<std::string>());
  if (!decoded) std::abort();
  const auto patch = nlohmann::json::parse(*decoded, nullptr, false);
  if (!patch.is_array() || patch.empty()) std::abort();
  for (const auto& op : patch) {
    const std::string path = op.at("path").get<std::string>();
    if (op.at("op") != "add" || path.rfind("/spec/", 0) != 0 || path.find("/env") == std::string::npos)
      std::abort();
  }
  return 0;
}

#include "controller/world_access.h"

#include <algorithm>

#include "controller/json_util.h"
#include "policy/manifest.h"

namespace controller {

namespace {

constexpr const char* kType = "WorldAccess";

nlohmann::json currentConditions(const RuleSetObject& object) {
  if (object.status.is_object()) {
    const auto it = object.status.find("conditions");
    if (it != object.status.end() && it->is_array()) return *it;
  }
  return nlohmann::json::array();
}

const nlohmann::json* findWorldAccess(const nlohmann::json& conditions) {
  for (const auto& c : conditions) {
    if (c.is_object() && jsonString(c, "type") == kType) return &c;
  }
  return nullptr;
}

bool sameField(const nlohmann::json& a, const nlohmann::json& b, const char* key) {
  const auto ia = a.find(key);
  const auto ib = b.find(key);
  if (ia == a.end() || ib == b.end()) return ia == a.end() && ib == b.end();
  return *ia == *ib;
}

}  // namespace

WorldAccess worldAccessOf(const std::string& content, const std::string& sourceName,
                          const policy::PublicSuffixList& suffixes) {
  WorldAccess out;
  const policy::ManifestLoad load = policy::loadManifest(content, sourceName, suffixes);
  for (const auto& ruleSet : load.valid) {
    for (const auto& target : ruleSet.targets) {
      if (target.kind != policy::TargetKind::AnyName) continue;
      std::string text = target.canonical();
      if (std::find(out.targets.begin(), out.targets.end(), text) == out.targets.end()) {
        out.targets.push_back(std::move(text));
      }
    }
  }
  return out;
}

std::optional<nlohmann::json> withWorldAccessCondition(std::optional<nlohmann::json> patch,
                                                       const RuleSetObject& object, const WorldAccess& world,
                                                       std::string_view now) {
  const bool open = !world.targets.empty();
  std::string message;
  if (open) {
    for (const auto& t : world.targets) {
      if (!message.empty()) message += ", ";
      message += "\"" + t + "\"";
    }
    message += " in force: every destination on ";
    message += world.targets.size() == 1 ? "that port" : "those ports";
    message += " is allowed for the whole cluster";
  } else {
    message = "no world access target (*:PORT) in force";
  }
  nlohmann::json condition = {
      {"type", kType},
      {"status", open ? "True" : "False"},
      {"reason", open ? "WorldTargetsInForce" : "NoWorldTargets"},
      {"message", message},
      {"observedGeneration", object.generation},
      {"lastTransitionTime", std::string(now)},
  };

  const nlohmann::json stored = currentConditions(object);
  const nlohmann::json* old = findWorldAccess(stored);
  if (old != nullptr && sameField(*old, condition, "status")) {
    if (old->contains("lastTransitionTime")) condition["lastTransitionTime"] = (*old)["lastTransitionTime"];
    if (!patch && sameField(*old, condition, "reason") && sameField(*old, condition, "message") &&
        sameField(*old, condition, "observedGeneration")) {
      return std::nullopt;
    }
  }

  // Start from the conditions the patch writes (it carries the others over),
  // or from the stored ones when the Accepted part had nothing to say.
  nlohmann::json out = patch ? std::move(*patch) : nlohmann::json{{"status", nlohmann::json::object()}};
  nlohmann::json& status = out["status"];
  const nlohmann::json base =
      status.contains("conditions") && status["conditions"].is_array() ? status["conditions"] : stored;
  nlohmann::json conditions = nlohmann::json::array();
  for (const auto& c : base) {
    if (!(c.is_object() && jsonString(c, "type") == kType)) conditions.push_back(c);
  }
  conditions.push_back(std::move(condition));
  status["conditions"] = std::move(conditions);
  return out;
}

}  // namespace controller

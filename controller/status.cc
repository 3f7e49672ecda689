#include "controller/status.h"

#include <chrono>
#include <ctime>

#include "controller/json_util.h"
#include "policy/manifest.h"

namespace controller {

namespace {

// The CRD bounds condition messages (32 KiB); leave room for the rest.
constexpr size_t kMaxMessageBytes = size_t{30} * 1024;

const nlohmann::json* findCondition(const nlohmann::json& status, std::string_view type) {
  if (!status.is_object()) return nullptr;
  const auto conditions = status.find("conditions");
  if (conditions == status.end() || !conditions->is_array()) return nullptr;
  for (const auto& c : *conditions) {
    if (c.is_object() && jsonString(c, "type") == type) return &c;
  }
  return nullptr;
}

template <typename T>
bool fieldEquals(const nlohmann::json& object, const char* key, const T& want) {
  if (!object.is_object()) return false;
  const auto it = object.find(key);
  return it != object.end() && *it == nlohmann::json(want);
}

}  // namespace

Validation validateManifest(const std::string& content, const std::string& sourceName,
                            const policy::PublicSuffixList& suffixes) {
  Validation out;
  policy::RulesLoader loader(suffixes);
  loader.addContent(content, sourceName);
  const policy::RulesLoad load = std::move(loader).finish();
  const nlohmann::json doc = nlohmann::json::parse(content, nullptr, false);
  if (doc.is_object() && doc.contains("spec") && doc["spec"].is_object() && doc["spec"].contains("targets") &&
      doc["spec"]["targets"].is_array()) {
    out.targetCount = doc["spec"]["targets"].size();
  }
  std::string errors;
  std::string warnings;
  for (const auto& problem : load.problems) {
    std::string text;
    if (problem.targetIndex) {
      text = "spec.targets[" + std::to_string(*problem.targetIndex) + "] \"" + problem.target + "\": ";
    }
    text += problem.message;
    if (problem.severity == policy::Severity::Warning && !problem.targetIndex &&
        problem.message.find("will not be in force") != std::string::npos) {
      continue;  // the summary leads the message below
    }
    std::string& into = problem.severity == policy::Severity::Error ? errors : warnings;
    if (!into.empty()) into += "; ";
    into += text;
  }
  const bool readable = load.ruleSets.size() == 1 && load.rejectedRuleSets == 0;
  if (readable) {
    const policy::RuleSet& ruleSet = load.ruleSets[0];
    out.targetsInForce = ruleSet.targets.size();
    if (ruleSet.refused.empty() && errors.empty()) {
      out.accepted = true;
      out.reason = "Valid";
      const size_t count = ruleSet.targets.size();
      out.message = std::to_string(count) + (count == 1 ? " target in force" : " targets in force");
    } else {
      // Gateway API style: the parts that are valid are in force, the
      // condition names the parts that are not.
      out.reason = "InvalidTargets";
      out.message = policy::refusedTargetsSummary(ruleSet) + ": " + errors;
    }
    if (!warnings.empty()) out.message += "; warnings: " + warnings;
  } else {
    out.reason = "InvalidRuleSet";
    out.message = "not read as a rule set, egressd keeps its last good version if it had one: " +
                  (errors.empty() ? std::string("not loadable") : errors);
  }
  if (out.message.size() > kMaxMessageBytes) {
    // Cut on a UTF-8 character boundary (never before a continuation byte).
    size_t cut = kMaxMessageBytes;
    while (cut > 0 && (static_cast<unsigned char>(out.message[cut]) & 0xC0u) == 0x80u) --cut;
    out.message = out.message.substr(0, cut) + "...";
  }
  return out;
}

std::optional<nlohmann::json> statusPatch(const RuleSetObject& object, const Validation& validation,
                                          std::string_view now) {
  const std::string conditionStatus = validation.accepted ? "True" : "False";
  const nlohmann::json* old = findCondition(object.status, "Accepted");
  const nlohmann::json inForce =
      validation.targetsInForce ? nlohmann::json(*validation.targetsInForce) : nlohmann::json(nullptr);
  const bool inForceSame = validation.targetsInForce
                               ? fieldEquals(object.status, "targetsInForce", *validation.targetsInForce)
                               : !object.status.is_object() || !object.status.contains("targetsInForce");
  const bool same = fieldEquals(object.status, "observedGeneration", object.generation) &&
                    fieldEquals(object.status, "targetCount", validation.targetCount) && inForceSame &&
                    old != nullptr && fieldEquals(*old, "status", conditionStatus) &&
                    fieldEquals(*old, "reason", validation.reason) &&
                    fieldEquals(*old, "message", validation.message) &&
                    fieldEquals(*old, "observedGeneration", object.generation);
  if (same) return std::nullopt;

  nlohmann::json condition = {
      {"type", "Accepted"},
      {"status", conditionStatus},
      {"reason", validation.reason},
      {"message", validation.message},
      {"observedGeneration", object.generation},
      {"lastTransitionTime", std::string(now)},
  };
  if (old != nullptr && fieldEquals(*old, "status", conditionStatus) && old->contains("lastTransitionTime")) {
    condition["lastTransitionTime"] = (*old)["lastTransitionTime"];
  }
  // A merge patch replaces lists whole (RFC 7386): carry other conditions over.
  nlohmann::json conditions = nlohmann::json::array();
  if (object.status.is_object() && object.status.contains("conditions") &&
      object.status["conditions"].is_array()) {
    for (const auto& c : object.status["conditions"]) {
      if (c.is_object() && jsonString(c, "type") != "Accepted") conditions.push_back(c);
    }
  }
  conditions.push_back(std::move(condition));
  // null removes targetsInForce (merge patch) when the document cannot be read.
  return nlohmann::json{{"status",
                         {{"observedGeneration", object.generation},
                          {"targetCount", validation.targetCount},
                          {"targetsInForce", inForce},
                          {"conditions", std::move(conditions)}}}};
}

std::string rfc3339Now(bool micro) {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[64];
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%S", &utc);
  std::string out = buffer;
  if (micro) {
    const auto us =
        std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() % 1'000'000;
    char fraction[16];
    std::snprintf(fraction, sizeof(fraction), ".%06lld", static_cast<long long>(us));
    out += fraction;
  }
  return out + "Z";
}

}  // namespace controller

#include "controller/rule_set_object.h"

#include "controller/json_util.h"
#include "policy/manifest.h"

namespace controller {

namespace {

bool isDnsChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// RFC 1123 label / subdomain as Kubernetes validates object names.
bool isDns1123(std::string_view s, bool allowDots, size_t maxLength) {
  if (s.empty() || s.size() > maxLength) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool ok = isDnsChar(c) || c == '-' || (allowDots && c == '.');
    if (!ok) return false;
    if ((i == 0 || i + 1 == s.size()) && !isDnsChar(c)) return false;
  }
  return true;
}

}  // namespace

std::optional<RuleSetObject> ruleSetFromJson(const nlohmann::json& object, std::string& error) {
  if (!object.is_object()) {
    error = "not an object";
    return std::nullopt;
  }
  const auto metadata = object.find("metadata");
  if (metadata == object.end() || !metadata->is_object()) {
    error = "no metadata";
    return std::nullopt;
  }
  RuleSetObject out;
  out.ns = jsonString(*metadata, "namespace");
  out.name = jsonString(*metadata, "name");
  out.resourceVersion = jsonString(*metadata, "resourceVersion");
  if (!isDns1123(out.ns, false, 63) || !isDns1123(out.name, true, 253) || out.resourceVersion.empty()) {
    error =
        "metadata.namespace/name/resourceVersion missing or invalid (\"" + out.ns + "/" + out.name + "\")";
    return std::nullopt;
  }
  const auto generation = metadata->find("generation");
  if (generation != metadata->end() && generation->is_number_integer())
    out.generation = generation->get<int64_t>();
  const auto spec = object.find("spec");
  if (spec != object.end()) out.spec = *spec;
  const auto status = object.find("status");
  if (status != object.end()) out.status = *status;
  return out;
}

std::string manifestFileName(const RuleSetObject& object) {
  return object.ns + "_" + object.name + ".json";
}

bool isOwnedFileName(std::string_view fileName) {
  constexpr std::string_view suffix = ".json";
  if (fileName.size() <= suffix.size() || fileName.substr(fileName.size() - suffix.size()) != suffix)
    return false;
  const std::string_view stem = fileName.substr(0, fileName.size() - suffix.size());
  const size_t sep = stem.find('_');
  if (sep == std::string_view::npos) return false;
  return isDns1123(stem.substr(0, sep), false, 63) && isDns1123(stem.substr(sep + 1), true, 253);
}

std::string manifestContent(const RuleSetObject& object) {
  // ordered_json keeps the kubectl-like field order for people reading the dir.
  nlohmann::ordered_json doc;
  doc["apiVersion"] = std::string(policy::kApiVersion);
  doc["kind"] = std::string(policy::kKind);
  doc["metadata"]["name"] = object.name;
  doc["metadata"]["namespace"] = object.ns;
  doc["metadata"]["generation"] = object.generation;
  // No resourceVersion: it changes on every write, status included, and a
  // rewritten file makes every egressd on every node recompile its policy
  // for nothing. The generation changes exactly when the spec does.
  doc["spec"] =
      nlohmann::ordered_json::parse(object.spec.is_null() ? std::string("{}") : dumpJson(object.spec));
  return dumpJson(doc, 2) + "\n";
}

}  // namespace controller

#include "suggest/observation.h"

#include "observe/format.h"

namespace suggest {

namespace {

// Why observe::eventFromJson refused an object: the first key that is
// missing or has the wrong type or value, for the user's message.
std::string whyInvalid(const nlohmann::json& json) {
  for (const char* key : {"kind", "time", "src", "dst", "proto", "verdict"}) {
    const auto it = json.find(key);
    if (it == json.end()) return std::string("\"") + key + "\" is missing";
    if (!it->is_string()) return std::string("\"") + key + "\" is not a string";
  }
  const std::string kind = json["kind"].get<std::string>();
  if (kind != "verdict" && kind != "dns") return "\"kind\" is \"" + kind + "\", not \"verdict\" or \"dns\"";
  for (const char* key : {"sport", "dport", "queue", "answers"}) {
    const auto it = json.find(key);
    if (it != json.end() && (!it->is_number_unsigned() || it->get<uint64_t>() > 65535)) {
      return std::string("\"") + key + "\" is not a number in 0..65535";
    }
  }
  const std::string verdict = json["verdict"].get<std::string>();
  if (verdict != "allow" && verdict != "deny" && verdict != "audit") {
    return "\"verdict\" is \"" + verdict + "\", not allow, deny or audit";
  }
  return "a key has the wrong type or value (time RFC 3339, src/dst addresses, proto tcp/udp/..., "
         "qtype/rcode names; docs/watch.md)";
}

bool readAttribution(const nlohmann::json& json, const char* key, std::string& out, std::string& error) {
  const auto it = json.find(key);
  if (it == json.end() || it->is_null()) return true;
  if (!it->is_string()) {
    error = std::string("\"") + key + "\" is not a string";
    return false;
  }
  const auto& text = it->get_ref<const std::string&>();
  if (text.size() > kMaxAttributionText) {
    error = std::string("\"") + key + "\" is longer than " + std::to_string(kMaxAttributionText) + " bytes";
    return false;
  }
  out = text;
  return true;
}

}  // namespace

std::optional<Observation> observationFromJson(const nlohmann::json& json, std::string& error) {
  if (!json.is_object()) {
    error = "not a JSON object";
    return std::nullopt;
  }
  auto event = observe::eventFromJson(json);
  if (!event) {
    error = whyInvalid(json);
    return std::nullopt;
  }
  Observation observation;
  observation.event = *event;
  if (!readAttribution(json, "namespace", observation.ns, error) ||
      !readAttribution(json, "pod", observation.pod, error) ||
      !readAttribution(json, "workload", observation.workload, error) ||
      !readAttribution(json, "service_account", observation.serviceAccount, error)) {
    return std::nullopt;
  }
  return observation;
}

LineResult readLine(std::string_view line, uint64_t* dropped) {
  LineResult result;
  size_t first = line.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return result;  // blank
  auto doc = nlohmann::json::parse(line, nullptr, false);
  if (doc.is_discarded()) {
    result.kind = LineKind::Invalid;
    result.error = "not JSON (one event object per line, as egressctl watch --json writes)";
    return result;
  }
  const nlohmann::json* object = &doc;
  if (doc.is_object()) {
    if (const auto it = doc.find("event"); it != doc.end()) {
      object = &*it;
    } else if (!doc.contains("kind")) {
      // The control stream's other messages.
      if (const auto d = doc.find("dropped"); d != doc.end() && d->is_number_unsigned() && dropped) {
        *dropped += d->get<uint64_t>();
      }
      if (doc.contains("dropped") || doc.contains("packet") || doc.contains("ok") ||
          doc.contains("egressd")) {
        return result;
      }
    }
  }
  auto observation = observationFromJson(*object, result.error);
  if (!observation) {
    result.kind = LineKind::Invalid;
    return result;
  }
  result.kind = LineKind::Event;
  result.observation = std::move(*observation);
  return result;
}

}  // namespace suggest

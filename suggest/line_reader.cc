#include "suggest/line_reader.h"

#include "observe/format.h"
#include "suggest/event_scanner.h"

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
  for (const char* key : {"reason", "name", "name_from", "match", "outcome", "qtype", "rcode", "namespace",
                          "pod", "workload", "service_account"}) {
    const auto it = json.find(key);
    if (it != json.end() && !it->is_string()) return std::string("\"") + key + "\" is not a string";
  }
  if (const auto it = json.find("addresses"); it != json.end()) {
    if (!it->is_array()) return "\"addresses\" is not a list of addresses";
    for (const auto& item : *it) {
      if (!item.is_string() || !common::parseIpAddress(item.get<std::string>())) {
        return "\"addresses\" holds " + item.dump() + ", not an IPv4 or IPv6 address";
      }
    }
  }
  const std::string verdict = json["verdict"].get<std::string>();
  if (verdict != "allow" && verdict != "deny" && verdict != "audit") {
    return "\"verdict\" is \"" + verdict + "\", not allow, deny or audit";
  }
  return "a value is not what egressd writes (time RFC 3339, src and dst addresses, proto tcp/udp/..., "
         "qtype and rcode names, rulesets a list of strings; docs/watch.md)";
}

}  // namespace

std::optional<observe::Event> eventFromJson(const nlohmann::json& json, std::string& error) {
  if (!json.is_object()) {
    error = "not a JSON object";
    return std::nullopt;
  }
  auto event = observe::eventFromJson(json);
  if (!event) error = whyInvalid(json);
  return event;
}

LineResult readLine(std::string_view line, uint64_t* dropped) {
  LineResult result;
  result.kind = readLine(line, result.event, result.error, dropped);
  return result;
}

LineKind readLine(std::string_view line, observe::Event& event, std::string& error, uint64_t* dropped) {
  if (line.find_first_not_of(" \t\r\n") == std::string_view::npos) return LineKind::Skip;  // blank
  if (scanFlatEvent(line, event)) return LineKind::Event;
  const auto doc = nlohmann::json::parse(line, nullptr, false);
  if (doc.is_discarded()) {
    error = "not JSON (one event object per line, as egressctl watch --json writes)";
    return LineKind::Invalid;
  }
  const nlohmann::json* object = &doc;
  if (doc.is_object()) {
    if (const auto it = doc.find("event"); it != doc.end()) {
      object = &*it;
    } else if (!doc.contains("kind")) {
      // The control stream's other messages.
      if (const auto count = doc.find("dropped"); count != doc.end() && count->is_number_unsigned()) {
        if (dropped != nullptr) *dropped += count->get<uint64_t>();
        return LineKind::Skip;
      }
      if (doc.contains("packet") || doc.contains("ok") || doc.contains("egressd")) return LineKind::Skip;
    }
  }
  auto parsed = eventFromJson(*object, error);
  if (!parsed) return LineKind::Invalid;
  event = *parsed;
  return LineKind::Event;
}

}  // namespace suggest

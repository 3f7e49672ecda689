// libFuzzer target: a watch stream as the API server sends it, cut into
// chunks at fuzzer-chosen places, through the line splitter, the event
// parser, the object reader and the manifest writer. Nothing may throw, and
// what the controller writes for an object must parse back to the same
// name, namespace, generation and spec (the rules dir never gets a file
// egressd reads differently).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "controller/rule_set_object.h"
#include "controller/watch_event.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // First byte: chunk size, so splits land everywhere.
  const size_t chunk = static_cast<size_t>(data[0] % 64) + 1;
  const std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);
  controller::LineSplitter splitter(4096);
  const std::function<bool(std::string_view)> onLine = [](std::string_view line) {
    const auto parsed = controller::parseWatchLine(line);
    if (!parsed.event) {
      if (parsed.error.empty()) std::abort();
      return true;
    }
    std::string error;
    const auto object = controller::ruleSetFromJson(parsed.event->object, error);
    if (!object) return true;
    if (!controller::isOwnedFileName(controller::manifestFileName(*object))) std::abort();
    // The file: name, namespace, generation and spec as the object has
    // them, and no resourceVersion (a status write must not change it).
    const auto content = nlohmann::json::parse(controller::manifestContent(*object));
    const auto& metadata = content.at("metadata");
    const nlohmann::json spec = object->spec.is_null() ? nlohmann::json::object() : object->spec;
    if (metadata.at("name") != object->name || metadata.at("namespace") != object->ns ||
        metadata.at("generation") != object->generation || metadata.contains("resourceVersion") ||
        content.at("spec") != spec) {
      std::abort();
    }
    return true;
  };
  for (size_t offset = 0; offset < stream.size(); offset += chunk) {
    if (!splitter.append(stream.substr(offset, chunk), onLine)) break;
  }
  return 0;
}

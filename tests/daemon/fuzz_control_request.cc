// Fuzzes what egressd and egressctl parse from the control socket: request
// lines (incl. the watch filter), greetings, packet records, base64 and
// line-format events, whose fast parser must agree with a JSON parser.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "daemon/control_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  (void)control::parseRequest(line);
  (void)control::parseGreeting(line);
  (void)control::base64Decode(line);
  const auto doc = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
  if (!doc.is_discarded() && doc.is_object() && doc.contains("packet"))
    (void)control::packetFromJson(doc["packet"]);
  control::TextEvent text;
  if (control::parseTextEventLine(line, text)) {
    // Anything the fast parser accepts is a JSON object with the same text.
    if (doc.is_discarded() || !doc.is_object() || !doc.contains("line") || !doc["line"].is_string() ||
        doc["line"].get<std::string>() != text.body)
      std::abort();
  }
  return 0;
}

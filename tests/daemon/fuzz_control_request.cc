// Fuzzes what egressd and egressctl parse from the control socket: request
// lines (incl. the watch filter), greetings, packet records and base64.
#include <cstddef>
#include <cstdint>
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
  return 0;
}

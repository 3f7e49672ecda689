// Exception-free accessors for JSON from the API server: a field of the
// wrong type reads as absent instead of throwing nlohmann's type_error, and
// dumping never throws on invalid UTF-8 (it is replaced).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace controller {

inline std::string jsonString(const nlohmann::json& object, const char* key) {
  if (!object.is_object()) return {};
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

template <typename Json>
std::string dumpJson(const Json& value, int indent = -1) {
  return value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace controller

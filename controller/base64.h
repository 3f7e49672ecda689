// RFC 4648 base64 with padding: the webhook's JSONPatch, Secret data and
// the caBundle travel in it. Pure; decoding refuses anything but the
// standard alphabet and correct padding (no whitespace).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace controller {

std::string base64Encode(std::string_view data);
std::optional<std::string> base64Decode(std::string_view text);

}  // namespace controller

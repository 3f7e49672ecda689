// strerror() is not thread-safe (clang-tidy concurrency-mt-unsafe); this
// is, through std::error_code's message (strerror_r underneath).
#pragma once

#include <string>
#include <system_error>

namespace common {

inline std::string errnoText(int error) {
  return std::error_code(error, std::generic_category()).message();
}

}  // namespace common

// A small read-only document tree for manifests, built from libyaml's event
// stream (YAML 1.1/1.2 as kubectl writes it) or from nlohmann::json.
//
// Why not yaml-cpp: yaml-cpp 0.7 (Debian 12) loops forever on inputs as
// small as `"",` (found by our fuzzer), and a rules file must never hang
// egressd. libyaml is the reference C parser, fuzzed in OSS-Fuzz.
//
// Bounds: nesting depth and node count are limited, aliases share their
// anchored node (no expansion, so "billion laughs" costs nothing).
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace policy {

struct YamlNode {
  enum class Kind : unsigned char { Null, Scalar, Sequence, Mapping };
  Kind kind = Kind::Null;
  std::string scalar;                                  // Scalar only (numbers and booleans keep their text)
  std::vector<std::shared_ptr<const YamlNode>> items;  // Sequence
  std::vector<std::pair<std::string, std::shared_ptr<const YamlNode>>> entries;  // Mapping, in order
  size_t line = 0;  // 1-based position in the source, 0 when unknown (JSON)
  size_t column = 0;

  bool isNull() const noexcept { return kind == Kind::Null; }
  bool isScalar() const noexcept { return kind == Kind::Scalar; }
  bool isSequence() const noexcept { return kind == Kind::Sequence; }
  bool isMapping() const noexcept { return kind == Kind::Mapping; }
  // Mapping lookup; nullptr when absent or not a mapping.
  const YamlNode* get(std::string_view key) const noexcept;
};

inline constexpr size_t kMaxYamlDepth = 64;
inline constexpr size_t kMaxYamlNodes = 1'000'000;

struct YamlError {
  std::string message;
  size_t line = 0;
  size_t column = 0;
};

struct YamlStream {
  std::vector<std::shared_ptr<const YamlNode>> documents;  // a null node for an empty document
  std::optional<YamlError> error;
};

// Every document of a YAML stream. On a syntax error, `error` is set and
// `documents` holds nothing (a half-parsed file is not trusted).
YamlStream parseYamlStream(std::string_view text);

// One JSON value as a one-document stream.
YamlStream parseJsonDocument(std::string_view text);

}  // namespace policy

#include "policy/yaml_tree.h"

#include <yaml.h>

#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>

namespace policy {

const YamlNode* YamlNode::get(std::string_view key) const noexcept {
  if (kind != Kind::Mapping) return nullptr;
  for (const auto& [name, value] : entries) {
    if (name == key) return value.get();
  }
  return nullptr;
}

namespace {

// YAML 1.2 core schema nulls, for plain (unquoted) scalars only.
bool isPlainNull(std::string_view text) {
  return text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL";
}

class TreeBuilder {
 public:
  explicit TreeBuilder(std::string_view text) {
    yaml_parser_initialize(&parser_);
    // libyaml asserts on a null input pointer, which an empty view may have.
    static const unsigned char kEmpty[1] = {0};
    const auto* input = text.empty() ? kEmpty : reinterpret_cast<const unsigned char*>(text.data());
    yaml_parser_set_input_string(&parser_, input, text.size());
  }
  ~TreeBuilder() { yaml_parser_delete(&parser_); }
  TreeBuilder(const TreeBuilder&) = delete;
  TreeBuilder& operator=(const TreeBuilder&) = delete;

  YamlStream run() {
    YamlStream stream;
    while (true) {
      Event event(parser_);
      if (!event.ok) return fail(stream, parserError());
      switch (event.value.type) {
        case YAML_STREAM_END_EVENT:
          return stream;
        case YAML_DOCUMENT_START_EVENT:
          anchors_.clear();
          break;
        case YAML_DOCUMENT_END_EVENT:
        case YAML_STREAM_START_EVENT:
          break;
        default: {
          auto root = node(event.value, 0);
          if (!root) return fail(stream, error_);
          stream.documents.push_back(std::move(root));
        }
      }
    }
  }

 private:
  // Owns one libyaml event.
  struct Event {
    explicit Event(yaml_parser_t& parser) : ok(yaml_parser_parse(&parser, &value) != 0) {}
    ~Event() {
      if (ok) yaml_event_delete(&value);
    }
    Event(const Event&) = delete;
    Event& operator=(const Event&) = delete;
    // `value` is declared first: members initialise in declaration order,
    // and the parse in `ok`'s initialiser fills it.
    yaml_event_t value{};
    bool ok;
  };

  static YamlStream fail(YamlStream& stream, YamlError error) {
    stream.documents.clear();
    stream.error = std::move(error);
    return std::move(stream);
  }

  YamlError parserError() const {
    YamlError error;
    error.message = parser_.problem != nullptr ? parser_.problem : "syntax error";
    if (parser_.context != nullptr) error.message = std::string(parser_.context) + ": " + error.message;
    error.line = parser_.problem_mark.line + 1;
    error.column = parser_.problem_mark.column + 1;
    return error;
  }

  std::shared_ptr<const YamlNode> failAt(const yaml_event_t& event, std::string message) {
    error_.message = std::move(message);
    error_.line = event.start_mark.line + 1;
    error_.column = event.start_mark.column + 1;
    return nullptr;
  }

  void remember(const unsigned char* anchor, const std::shared_ptr<const YamlNode>& n) {
    if (anchor != nullptr) anchors_[reinterpret_cast<const char*>(anchor)] = n;
  }

  // Builds the node that starts with `event`, reading its children.
  std::shared_ptr<const YamlNode> node(const yaml_event_t& event, size_t depth) {
    if (++nodes_ > kMaxYamlNodes)
      return failAt(event, "too many nodes (limit " + std::to_string(kMaxYamlNodes) + ")");
    if (depth > kMaxYamlDepth)
      return failAt(event, "nested deeper than " + std::to_string(kMaxYamlDepth) + " levels");
    auto out = std::make_shared<YamlNode>();
    out->line = event.start_mark.line + 1;
    out->column = event.start_mark.column + 1;
    switch (event.type) {
      case YAML_ALIAS_EVENT: {
        const auto it = anchors_.find(reinterpret_cast<const char*>(event.data.alias.anchor));
        if (it == anchors_.end()) return failAt(event, "unknown anchor");
        return it->second;
      }
      case YAML_SCALAR_EVENT: {
        const std::string_view text(reinterpret_cast<const char*>(event.data.scalar.value),
                                    event.data.scalar.length);
        const bool plain = event.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        out->kind = plain && isPlainNull(text) ? YamlNode::Kind::Null : YamlNode::Kind::Scalar;
        out->scalar = std::string(text);
        remember(event.data.scalar.anchor, out);
        return out;
      }
      case YAML_SEQUENCE_START_EVENT: {
        out->kind = YamlNode::Kind::Sequence;
        const unsigned char* anchor = event.data.sequence_start.anchor;
        while (true) {
          Event child(parser_);
          if (!child.ok) {
            error_ = parserError();
            return nullptr;
          }
          if (child.value.type == YAML_SEQUENCE_END_EVENT) break;
          auto item = node(child.value, depth + 1);
          if (!item) return nullptr;
          out->items.push_back(std::move(item));
        }
        remember(anchor, out);
        return out;
      }
      case YAML_MAPPING_START_EVENT: {
        out->kind = YamlNode::Kind::Mapping;
        const unsigned char* anchor = event.data.mapping_start.anchor;
        while (true) {
          Event keyEvent(parser_);
          if (!keyEvent.ok) {
            error_ = parserError();
            return nullptr;
          }
          if (keyEvent.value.type == YAML_MAPPING_END_EVENT) break;
          auto key = node(keyEvent.value, depth + 1);
          if (!key) return nullptr;
          Event valueEvent(parser_);
          if (!valueEvent.ok) {
            error_ = parserError();
            return nullptr;
          }
          auto value = node(valueEvent.value, depth + 1);
          if (!value) return nullptr;
          // Complex keys cannot name a field we read; keep them visible.
          out->entries.emplace_back(key->isScalar() || key->isNull() ? key->scalar : "?", std::move(value));
        }
        remember(anchor, out);
        return out;
      }
      default:
        return failAt(event, "unexpected YAML event");
    }
  }

  yaml_parser_t parser_{};
  std::map<std::string, std::shared_ptr<const YamlNode>> anchors_;
  size_t nodes_ = 0;
  YamlError error_;
};

std::shared_ptr<const YamlNode> fromJson(const nlohmann::json& value, size_t depth, size_t& nodes,
                                         YamlError& error) {
  if (++nodes > kMaxYamlNodes || depth > kMaxYamlDepth) {
    error.message = depth > kMaxYamlDepth ? "nested deeper than " + std::to_string(kMaxYamlDepth) + " levels"
                                          : "too many nodes";
    return nullptr;
  }
  auto out = std::make_shared<YamlNode>();
  switch (value.type()) {
    case nlohmann::json::value_t::object:
      out->kind = YamlNode::Kind::Mapping;
      for (const auto& [key, child] : value.items()) {
        auto converted = fromJson(child, depth + 1, nodes, error);
        if (!converted) return nullptr;
        out->entries.emplace_back(key, std::move(converted));
      }
      break;
    case nlohmann::json::value_t::array:
      out->kind = YamlNode::Kind::Sequence;
      for (const auto& child : value) {
        auto converted = fromJson(child, depth + 1, nodes, error);
        if (!converted) return nullptr;
        out->items.push_back(std::move(converted));
      }
      break;
    case nlohmann::json::value_t::null:
      out->kind = YamlNode::Kind::Null;
      break;
    case nlohmann::json::value_t::string:
      out->kind = YamlNode::Kind::Scalar;
      out->scalar = value.get<std::string>();
      break;
    default:
      out->kind = YamlNode::Kind::Scalar;
      out->scalar = value.dump();  // numbers and booleans as their text
  }
  return out;
}

// nlohmann's text is "[json.exception.parse_error.101] parse error at line
// 1, column 16: syntax error while parsing value - unexpected end of input;
// expected ..."; users get the position as numbers and the sentence without
// the library's prefixes.
YamlError jsonError(std::string_view what, size_t byte) {
  YamlError error;
  if (what.starts_with("[json.exception.")) {
    const size_t close = what.find("] ");
    if (close != std::string_view::npos) what.remove_prefix(close + 2);
  }
  constexpr std::string_view kAt = "parse error at line ";
  if (what.starts_with(kAt)) {
    std::string_view rest = what.substr(kAt.size());
    const size_t comma = rest.find(", column ");
    const size_t colon = rest.find(": ");
    if (comma != std::string_view::npos && colon != std::string_view::npos && comma < colon) {
      error.line = static_cast<size_t>(std::strtoul(std::string(rest.substr(0, comma)).c_str(), nullptr, 10));
      error.column = static_cast<size_t>(
          std::strtoul(std::string(rest.substr(comma + 9, colon - comma - 9)).c_str(), nullptr, 10));
      rest.remove_prefix(colon + 2);
    }
    what = rest;
    // nlohmann counts a newline it has just read as the start of the next
    // line, at column 0: the offending byte is that line break. Columns are
    // 1-based everywhere else (the caret needs one).
    if (error.line > 0 && error.column == 0) error.column = 1;
  } else if (what.starts_with("parse error: ")) {
    what.remove_prefix(13);
  }
  if (what.starts_with("syntax error while parsing ")) {
    // "syntax error while parsing value - unexpected end of input; expected ..."
    const size_t dash = what.find(" - ");
    if (dash != std::string_view::npos) what.remove_prefix(dash + 3);
  }
  error.message = "invalid JSON: " + std::string(what);
  if (error.line == 0) error.message += " (at byte " + std::to_string(byte) + ")";
  return error;
}

}  // namespace

YamlStream parseYamlStream(std::string_view text) {
  return TreeBuilder(text).run();
}

YamlStream parseJsonDocument(std::string_view text) {
  YamlStream stream;
  // nlohmann's parser is iterative; its callback sees the depth and stops
  // deep nesting before the (recursive) conversion ever sees it.
  bool tooDeep = false;
  auto limitDepth = [&tooDeep](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
    if (static_cast<size_t>(depth) > kMaxYamlDepth) tooDeep = true;
    return !tooDeep;
  };
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(text, limitDepth);
  } catch (const nlohmann::json::parse_error& e) {
    stream.error = jsonError(e.what(), e.byte);
    return stream;
  }
  if (tooDeep) {
    stream.error = YamlError{"JSON nested deeper than " + std::to_string(kMaxYamlDepth) + " levels", 0, 0};
    return stream;
  }
  size_t nodes = 0;
  YamlError error;
  auto root = fromJson(value, 0, nodes, error);
  if (!root) {
    stream.error = error;
    return stream;
  }
  stream.documents.push_back(std::move(root));
  return stream;
}

}  // namespace policy

#include "controller/watch_event.h"

namespace controller {

namespace {

std::optional<WatchEventType> eventType(const std::string& text) {
  if (text == "ADDED") return WatchEventType::Added;
  if (text == "MODIFIED") return WatchEventType::Modified;
  if (text == "DELETED") return WatchEventType::Deleted;
  if (text == "BOOKMARK") return WatchEventType::Bookmark;
  if (text == "ERROR") return WatchEventType::Error;
  return std::nullopt;
}

}  // namespace

WatchParse parseWatchLine(std::string_view line) {
  WatchParse result;
  nlohmann::json doc = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    result.error = "watch line is not a JSON object";
    return result;
  }
  const auto type = doc.find("type");
  const auto object = doc.find("object");
  if (type == doc.end() || !type->is_string()) {
    result.error = "watch event without a type";
    return result;
  }
  const auto parsedType = eventType(type->get<std::string>());
  if (!parsedType) {
    result.error = "unknown watch event type \"" + type->get<std::string>() + "\"";
    return result;
  }
  if (object == doc.end() || !object->is_object()) {
    result.error = "watch event without an object";
    return result;
  }
  WatchEvent event;
  event.type = *parsedType;
  event.object = std::move(*object);
  if (event.type == WatchEventType::Error) {
    const auto code = event.object.find("code");
    if (code != event.object.end() && code->is_number_integer()) event.code = code->get<int64_t>();
    const auto message = event.object.find("message");
    if (message != event.object.end() && message->is_string()) event.message = message->get<std::string>();
  } else {
    const auto metadata = event.object.find("metadata");
    if (metadata == event.object.end() || !metadata->is_object()) {
      result.error = "watch event object without metadata";
      return result;
    }
    const auto rv = metadata->find("resourceVersion");
    if (rv == metadata->end() || !rv->is_string() || rv->get<std::string>().empty()) {
      result.error = "watch event object without metadata.resourceVersion";
      return result;
    }
    event.resourceVersion = rv->get<std::string>();
  }
  result.event = std::move(event);
  return result;
}

bool LineSplitter::append(std::string_view chunk, const std::function<bool(std::string_view)>& onLine) {
  while (!chunk.empty()) {
    const size_t newline = chunk.find('\n');
    const std::string_view part = chunk.substr(0, newline);
    if (pending_.size() + part.size() > maxLineBytes_) return false;
    if (newline == std::string_view::npos) {
      pending_.append(part);
      return true;
    }
    chunk.remove_prefix(newline + 1);
    std::string_view line = part;
    if (!pending_.empty()) {
      pending_.append(part);
      line = pending_;
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const bool keepGoing = line.empty() || onLine(line);
    pending_.clear();
    if (!keepGoing) return false;
  }
  return true;
}

}  // namespace controller

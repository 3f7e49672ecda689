// The Kubernetes watch stream: one JSON object per line,
// {"type": "ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK"|"ERROR", "object": {...}}.
// For ERROR the object is a metav1.Status whose `code` 410 means the
// requested resourceVersion is gone (compacted) and the client must relist.
//
// Pure: no I/O. LineSplitter is not thread-safe (one per stream).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace controller {

enum class WatchEventType : uint8_t { Added, Modified, Deleted, Bookmark, Error };

struct WatchEvent {
  WatchEventType type = WatchEventType::Added;
  nlohmann::json object;        // the resource (or the Status of an ERROR)
  std::string resourceVersion;  // object.metadata.resourceVersion, empty for ERROR
  int64_t code = 0;             // ERROR only: Status.code (410 = Gone)
  std::string message;          // ERROR only: Status.message
};

struct WatchParse {
  std::optional<WatchEvent> event;  // set on success
  std::string error;                // why the line was refused
};

// Parses one line of a watch stream (without the newline).
WatchParse parseWatchLine(std::string_view line);

// Cuts a byte stream (curl's chunks) into lines. A line longer than
// maxLineBytes is an error: the stream cannot be trusted past it.
class LineSplitter {
 public:
  explicit LineSplitter(size_t maxLineBytes) : maxLineBytes_(maxLineBytes) {}
  // Calls onLine for every complete non-empty line. Returns false when a
  // line is too long or onLine returned false (the caller stops the stream).
  bool append(std::string_view chunk, const std::function<bool(std::string_view)>& onLine);
  size_t pendingBytes() const noexcept { return pending_.size(); }

 private:
  size_t maxLineBytes_;
  std::string pending_;
};

}  // namespace controller

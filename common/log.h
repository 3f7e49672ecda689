// Structured logs: one line per event on stderr, logfmt (key=value) by
// default or one JSON object per line (setLogFormat, `log.format`).
//
//   common::LogLine(common::LogLevel::Info, "policy.reloaded")
//       .field("rulesets", 12).field("file", path);
//
// The line is written with a single write(2) when the LogLine is destroyed,
// so lines from several threads never interleave; or, given a BatchedLog,
// appended to its buffer and written with the rest of the batch. Not for the packet path
// (it allocates); the packet path records events into rings instead.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

namespace common {

class BatchedLog;

enum class LogLevel : uint8_t { Debug, Info, Warn, Error };
enum class LogStyle : uint8_t { Logfmt, Json };

void setLogLevel(LogLevel level) noexcept;
LogLevel logLevel() noexcept;
std::optional<LogLevel> parseLogLevel(std::string_view text) noexcept;
// Set once at start, before other threads log.
void setLogStyle(LogStyle style) noexcept;
LogStyle logStyle() noexcept;

class LogLine {
 public:
  LogLine(LogLevel level, std::string_view event);
  // Into `batch` instead of stderr (same text; `batch` must outlive it).
  LogLine(LogLevel level, std::string_view event, BatchedLog& batch);
  ~LogLine();
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;

  LogLine& field(std::string_view key, std::string_view value);
  LogLine& field(std::string_view key, const char* value) { return field(key, std::string_view(value)); }
  LogLine& field(std::string_view key, const std::string& value) {
    return field(key, std::string_view(value));
  }
  LogLine& field(std::string_view key, int64_t value);
  LogLine& field(std::string_view key, uint64_t value);
  LogLine& field(std::string_view key, int value) { return field(key, static_cast<int64_t>(value)); }
  LogLine& field(std::string_view key, unsigned value) { return field(key, static_cast<uint64_t>(value)); }
  LogLine& field(std::string_view key, bool value) { return field(key, value ? "true" : "false"); }
  // `value` known to need no quoting or escaping in either style: only
  // printable ASCII other than space, '"', '=' and '\\' (the caller
  // checked, e.g. attribution::PodNames::plain). Skips the per-byte check.
  LogLine& plainField(std::string_view key, std::string_view value);
  // Several plainField()s written with one resize of the line (the packet
  // path's pod names: one string operation instead of four per field).
  struct PlainField {
    std::string_view key;
    std::string_view value;
  };
  LogLine& plainFields(std::initializer_list<PlainField> fields);

 private:
  void begin(LogLevel level, std::string_view event);
  void appendKey(std::string_view key);

  bool enabled_;
  bool json_;
  std::string line_;
  std::string* out_ = &line_;  // line_, or the batch's buffer
  BatchedLog* batch_ = nullptr;
};

// A line with no fields.
inline void logEvent(LogLevel level, std::string_view event) {
  const LogLine line(level, event);
}

// Appends `value` to `out` in logfmt: bare when safe, otherwise quoted with
// \" \\ \n escapes.
void appendLogfmtValue(std::string& out, std::string_view value);
// Appends `value` to `out` as a JSON string, quotes included.
void appendJsonString(std::string& out, std::string_view value);

}  // namespace common

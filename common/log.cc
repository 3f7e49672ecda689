#include "common/log.h"

#include "common/batched_log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>

namespace common {

namespace {
std::atomic<LogLevel> gLevel{LogLevel::Info};

const char* levelName(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::Debug:
      return "debug";
    case LogLevel::Info:
      return "info";
    case LogLevel::Warn:
      return "warn";
    case LogLevel::Error:
      return "error";
  }
  return "info";
}

void appendTimestamp(std::string& out) {
  const auto now = std::chrono::system_clock::now();
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(micros / 1'000'000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[40];
  const size_t n = std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &utc);
  out.append(buffer, n);
  char fraction[16];
  const int m =
      std::snprintf(fraction, sizeof fraction, ".%06lldZ", static_cast<long long>(micros % 1'000'000));
  out.append(fraction, static_cast<size_t>(m));
}
}  // namespace

void setLogLevel(LogLevel level) noexcept {
  gLevel.store(level, std::memory_order_relaxed);
}
LogLevel logLevel() noexcept {
  return gLevel.load(std::memory_order_relaxed);
}

std::optional<LogLevel> parseLogLevel(std::string_view text) noexcept {
  if (text == "debug") return LogLevel::Debug;
  if (text == "info") return LogLevel::Info;
  if (text == "warn") return LogLevel::Warn;
  if (text == "error") return LogLevel::Error;
  return std::nullopt;
}

void appendLogfmtValue(std::string& out, std::string_view value) {
  bool needsQuotes = value.empty();
  for (char c : value) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) {
      needsQuotes = true;
      break;
    }
  }
  if (!needsQuotes) {
    out.append(value);
    return;
  }
  out.push_back('"');
  for (char c : value) {
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          char hex[8];
          std::snprintf(hex, sizeof hex, "\\x%02x", static_cast<unsigned char>(c));
          out.append(hex);
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

LogLine::LogLine(LogLevel level, std::string_view event) : enabled_(level >= logLevel()) {
  if (!enabled_) return;
  line_.reserve(160);
  begin(level, event);
}

LogLine::LogLine(LogLevel level, std::string_view event, BatchedLog& batch)
    : enabled_(level >= logLevel()), batch_(&batch) {
  if (!enabled_) return;
  out_ = &batch.lineBuffer();
  begin(level, event);
}

void LogLine::begin(LogLevel level, std::string_view event) {
  std::string& out = *out_;
  out.append("ts=");
  appendTimestamp(out);
  out.append(" level=");
  out.append(levelName(level));
  out.append(" event=");
  appendLogfmtValue(out, event);
}

LogLine::~LogLine() {
  if (!enabled_) return;
  if (batch_ != nullptr) {
    out_->push_back('\n');
    batch_->lineAppended();
    return;
  }
  line_.push_back('\n');
  // One write per line keeps concurrent lines whole; a failed log write has
  // nowhere to be reported, so it is ignored on purpose.
  const ssize_t ignored = ::write(STDERR_FILENO, line_.data(), line_.size());
  (void)ignored;
}

LogLine& LogLine::field(std::string_view key, std::string_view value) {
  if (!enabled_) return *this;
  std::string& out = *out_;
  out.push_back(' ');
  out.append(key);
  out.push_back('=');
  appendLogfmtValue(out, value);
  return *this;
}

LogLine& LogLine::field(std::string_view key, int64_t value) {
  return field(key, std::string_view(std::to_string(value)));
}
LogLine& LogLine::field(std::string_view key, uint64_t value) {
  return field(key, std::string_view(std::to_string(value)));
}

}  // namespace common

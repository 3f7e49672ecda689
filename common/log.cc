#include "common/log.h"

#include <cstring>

#include "common/batched_log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace common {

namespace {
std::atomic<LogLevel> gLevel{LogLevel::Info};
std::atomic<LogStyle> gStyle{LogStyle::Logfmt};

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

// RFC 3339 UTC with microseconds. Lines come many a second (a verdict per
// connection): the date and time of day are formatted once per second and
// thread, the fraction by hand (no gmtime_r, strftime, snprintf per line).
void appendTimestamp(std::string& out) {
  const auto now = std::chrono::system_clock::now();
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(micros / 1'000'000);
  thread_local std::time_t cachedSecond = -1;
  thread_local char cached[40];
  thread_local size_t cachedLength = 0;
  if (seconds != cachedSecond) {
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    cachedLength = std::strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &utc);
    cachedSecond = seconds;
  }
  out.append(cached, cachedLength);
  char fraction[8] = {'.', '0', '0', '0', '0', '0', '0', 'Z'};
  auto rest = static_cast<unsigned long long>(micros % 1'000'000);
  for (size_t i = 6; i >= 1 && rest > 0; --i, rest /= 10) fraction[i] = static_cast<char>('0' + rest % 10);
  out.append(fraction, sizeof fraction);
}
// One byte of a quoted value: quote, backslash and the usual control
// characters as \" \\ \n \r \t, other control bytes as \xHH (logfmt) or
// \u00HH (JSON), anything else as is.
void appendEscaped(std::string& out, char c, bool json) {
  switch (c) {
    case '"':
      out.append("\\\"");
      return;
    case '\\':
      out.append("\\\\");
      return;
    case '\n':
      out.append("\\n");
      return;
    case '\r':
      out.append("\\r");
      return;
    case '\t':
      out.append("\\t");
      return;
    default:
      break;
  }
  if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
    char hex[8];
    const auto byte = static_cast<unsigned>(static_cast<unsigned char>(c));
    if (json) {
      std::snprintf(hex, sizeof hex, "\\u%04x", byte);
    } else {
      std::snprintf(hex, sizeof hex, "\\x%02x", byte);
    }
    out.append(hex);
    return;
  }
  out.push_back(c);
}

// The length of the well-formed UTF-8 sequence `text` starts with (RFC 3629:
// no overlong forms, no surrogates, nothing above U+10FFFF), or 0.
size_t utf8SequenceLength(std::string_view text) noexcept {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const auto continuation = [&](size_t i) { return i < text.size() && (byte(i) & 0xC0) == 0x80; };
  const unsigned char lead = byte(0);
  if (lead >= 0xC2 && lead <= 0xDF) return continuation(1) ? 2 : 0;
  if (lead >= 0xE0 && lead <= 0xEF) {
    if (!continuation(1) || !continuation(2)) return 0;
    if (lead == 0xE0 && byte(1) < 0xA0) return 0;   // overlong
    if (lead == 0xED && byte(1) >= 0xA0) return 0;  // surrogate
    return 3;
  }
  if (lead >= 0xF0 && lead <= 0xF4) {
    if (!continuation(1) || !continuation(2) || !continuation(3)) return 0;
    if (lead == 0xF0 && byte(1) < 0x90) return 0;   // overlong
    if (lead == 0xF4 && byte(1) >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}
}  // namespace

void setLogLevel(LogLevel level) noexcept {
  gLevel.store(level, std::memory_order_relaxed);
}
void setLogStyle(LogStyle style) noexcept {
  gStyle.store(style, std::memory_order_relaxed);
}
LogStyle logStyle() noexcept {
  return gStyle.load(std::memory_order_relaxed);
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
  for (const char c : value) appendEscaped(out, c, false);
  out.push_back('"');
}

void appendJsonString(std::string& out, std::string_view value) {
  out.push_back('"');
  for (size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (static_cast<unsigned char>(c) >= 0x80) {
      // Names come from packets: a line must stay valid JSON (UTF-8), so a
      // byte that does not start a well-formed sequence becomes U+FFFD.
      const size_t length = utf8SequenceLength(value.substr(i));
      if (length == 0) {
        out.append("\\ufffd");
      } else {
        out.append(value.substr(i, length));
        i += length - 1;
      }
      continue;
    }
    appendEscaped(out, c, true);
  }
  out.push_back('"');
}

LogLine::LogLine(LogLevel level, std::string_view event)
    : enabled_(level >= logLevel()), json_(logStyle() == LogStyle::Json) {
  if (!enabled_) return;
  line_.reserve(160);
  begin(level, event);
}

LogLine::LogLine(LogLevel level, std::string_view event, BatchedLog& batch)
    : enabled_(level >= logLevel()), json_(logStyle() == LogStyle::Json), batch_(&batch) {
  if (!enabled_) return;
  out_ = &batch.lineBuffer();
  begin(level, event);
}

void LogLine::begin(LogLevel level, std::string_view event) {
  std::string& out = *out_;
  if (json_) {
    out.append("{\"ts\":\"");
    appendTimestamp(out);
    out.append("\",\"level\":\"");
    out.append(levelName(level));
    out.append("\",\"event\":");
    appendJsonString(out, event);
    return;
  }
  out.append("ts=");
  appendTimestamp(out);
  out.append(" level=");
  out.append(levelName(level));
  out.append(" event=");
  appendLogfmtValue(out, event);
}

void LogLine::appendKey(std::string_view key) {
  std::string& out = *out_;
  if (json_) {
    out.push_back(',');
    appendJsonString(out, key);
    out.push_back(':');
    return;
  }
  out.push_back(' ');
  out.append(key);
  out.push_back('=');
}

LogLine::~LogLine() {
  if (!enabled_) return;
  if (json_) out_->push_back('}');
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
  appendKey(key);
  if (json_) {
    appendJsonString(*out_, value);
  } else {
    appendLogfmtValue(*out_, value);
  }
  return *this;
}

LogLine& LogLine::plainField(std::string_view key, std::string_view value) {
  if (!enabled_) return *this;
  appendKey(key);
  std::string& out = *out_;
  if (json_ || value.empty()) {
    out.push_back('"');
    out.append(value);
    out.push_back('"');
  } else {
    out.append(value);
  }
  return *this;
}

LogLine& LogLine::plainFields(std::initializer_list<PlainField> fields) {
  if (!enabled_) return *this;
  // logfmt: ` key=value` (`""` for an empty value); JSON: `,"key":"value"`.
  size_t bytes = 0;
  for (const PlainField& f : fields) {
    bytes += f.key.size() + (json_ ? f.value.size() + 6 : 2 + (f.value.empty() ? 2 : f.value.size()));
  }
  std::string& out = *out_;
  const size_t at = out.size();
  out.resize(at + bytes);
  char* p = out.data() + at;
  const auto put = [&p](std::string_view text) {
    std::memcpy(p, text.data(), text.size());
    p += text.size();
  };
  for (const PlainField& f : fields) {
    if (json_) {
      *p++ = ',';
      *p++ = '"';
      put(f.key);
      *p++ = '"';
      *p++ = ':';
      *p++ = '"';
      put(f.value);
      *p++ = '"';
    } else {
      *p++ = ' ';
      put(f.key);
      *p++ = '=';
      if (f.value.empty()) {
        *p++ = '"';
        *p++ = '"';
      } else {
        put(f.value);
      }
    }
  }
  return *this;
}

// Numbers are bare in both styles (a JSON number, not a string).
LogLine& LogLine::field(std::string_view key, int64_t value) {
  if (!enabled_) return *this;
  appendKey(key);
  out_->append(std::to_string(value));
  return *this;
}
LogLine& LogLine::field(std::string_view key, uint64_t value) {
  if (!enabled_) return *this;
  appendKey(key);
  out_->append(std::to_string(value));
  return *this;
}

}  // namespace common

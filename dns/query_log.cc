#include "dns/query_log.h"

#include <arpa/inet.h>

#include <charconv>
#include <ctime>

namespace dns {

namespace {

std::string_view levelName(common::LogLevel level) noexcept {
  switch (level) {
    case common::LogLevel::Debug:
      return "debug";
    case common::LogLevel::Info:
      return "info";
    case common::LogLevel::Warn:
      return "warn";
    case common::LogLevel::Error:
      return "error";
  }
  return "info";
}

void appendNumber(std::string& out, uint64_t value) {
  char digits[24];
  const auto result = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, static_cast<size_t>(result.ptr - digits));
}

// "ip:port", "[ip]:port": what common::SocketAddress::toString() writes,
// without its temporary strings.
void appendEndpoint(std::string& out, const common::SocketAddress& address) {
  char text[INET6_ADDRSTRLEN] = {};
  const bool v6 = address.ip.family == common::IpFamily::V6;
  inet_ntop(v6 ? AF_INET6 : AF_INET, address.ip.bytes.data(), text, sizeof text);
  if (v6) out.push_back('[');
  out.append(text);
  if (v6) out.push_back(']');
  out.push_back(':');
  appendNumber(out, address.port);
}

// The fields after `ts`, as common::LogLine writes them: ` key=value` in
// logfmt, `,"key":value` in JSON.
struct FieldWriter {
  std::string& out;
  bool json;

  void key(std::string_view name) {
    if (json) {
      out.append(",\"");
      out.append(name);
      out.append("\":");
    } else {
      out.push_back(' ');
      out.append(name);
      out.push_back('=');
    }
  }
  void text(std::string_view name, std::string_view value) {
    key(name);
    if (json) {
      common::appendJsonString(out, value);
    } else {
      common::appendLogfmtValue(out, value);
    }
  }
  void number(std::string_view name, uint64_t value) {
    key(name);
    appendNumber(out, value);
  }
};

}  // namespace

void appendQueryLogLine(std::string& out, const QueryLogLine& line, int64_t& secondsCache,
                        std::string& secondsText) {
  const int64_t micros =
      std::chrono::duration_cast<std::chrono::microseconds>(line.time.time_since_epoch()).count();
  const int64_t seconds = micros / 1'000'000;
  if (seconds != secondsCache) {
    const std::time_t t = static_cast<std::time_t>(seconds);
    std::tm utc{};
    gmtime_r(&t, &utc);
    char text[40];
    const size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
    secondsText.assign(text, n);
    secondsCache = seconds;
  }
  const bool json = common::logStyle() == common::LogStyle::Json;
  out.append(json ? "{\"ts\":\"" : "ts=");
  out.append(secondsText);
  // ".uuuuuuZ", zero-padded like common::LogLine's "%06lld".
  char fraction[8] = {'.', '0', '0', '0', '0', '0', '0', 'Z'};
  int64_t rest = micros % 1'000'000;
  if (rest < 0) rest += 1'000'000;
  for (int i = 6; i >= 1; --i) {
    fraction[i] = static_cast<char>('0' + rest % 10);
    rest /= 10;
  }
  out.append(fraction, sizeof fraction);
  if (json) out.push_back('"');
  FieldWriter fields{out, json};
  fields.text("level", levelName(line.level));
  fields.text("event", "dns.query");
  fields.key("client");
  if (json) out.push_back('"');
  appendEndpoint(out, line.client);
  if (json) out.push_back('"');
  fields.text("name", line.name);
  fields.number("qtype", line.qtype);
  fields.text("outcome", line.outcome);
  fields.number("rcode", line.rcode);
  fields.number("answers", line.answers);
  if (!line.reason.empty()) fields.text("reason", line.reason);
  if (line.audit) {
    fields.text("verdict", "audit");
    fields.text("would", "deny");
  }
  out.append(json ? "}\n" : "\n");
}

void QueryLog::append(const QueryLogLine& line) {
  appendQueryLogLine(out_.lineBuffer(), line, secondsCache_, secondsText_);
  out_.lineAppended();
}

}  // namespace dns

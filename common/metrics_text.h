// Lines of the Prometheus text exposition format, for the small /metrics
// pages (the proxy's section of egressd's, the webhook's own) and for
// egressd's main page, whose writer adds label escaping (daemon/stats.cc).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace common {

// "# HELP name help" and "# TYPE name type"; the help text's backslashes
// and line breaks escaped as the format asks.
inline void appendMetricFamily(std::string& out, std::string_view name, std::string_view type,
                               std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  for (const char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

// "name{labels} value"; `labels` is written as given (already escaped),
// and left out with its braces when empty.
inline void appendMetricSample(std::string& out, std::string_view name, std::string_view labels,
                               uint64_t value) {
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
  out += std::to_string(value);
  out += '\n';
}

}  // namespace common

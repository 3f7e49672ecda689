// Text forms of an Event: the tcpdump-style line of `egressctl watch` and
// the JSON object of the control socket protocol (docs/control-protocol.md)
// and of `egressctl watch --json`.
//
// Pure (but for the local time zone and eventFromJson's text pool);
// allocation is fine here (control socket and CLI, not the packet path).
// Thread-safety: every function may be called from any thread.
#pragma once

#include <array>
#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "observe/event.h"

namespace observe {

struct LineStyle {
  bool colour = false;  // ANSI: green allow, red deny, yellow audit
  bool utc = false;     // time of day in UTC instead of local time
};

// "12:00:01.123456 10.0.1.2:51234 > 203.0.113.7:443 tcp sni=api.example.com ALLOW by default/my-app-targets"
// "12:00:01.200000 10.0.1.2:40000 > 10.0.1.1:53 dns A evil.example DENY not_allowed rcode=NXDOMAIN"
std::string formatLine(const Event& event, const LineStyle& style = {});
// The two halves of that line: the time of day ("12:00:01.123456") and the
// rest ("10.0.1.2:51234 > ... ALLOW by ..."). The daemon formats the body
// once per event for all `watch --format line` clients; each client adds
// the time in its own zone.
std::string formatTimeOfDay(std::chrono::system_clock::time_point time, bool utc);
std::string formatLineBody(const Event& event, bool colour);

// formatTimeOfDay for a stream of events: the zone lookup runs once per
// second, not once per line. Not thread-safe (one per stream).
class TimeOfDayFormatter {
 public:
  explicit TimeOfDayFormatter(bool utc) : utc_(utc) {}
  // Valid until the next call.
  std::string_view format(std::chrono::system_clock::time_point time);

 private:
  bool utc_;
  bool valid_ = false;
  std::chrono::system_clock::time_point second_;
  std::array<char, 15> text_{};  // "HH:MM:SS.uuuuuu"
};

nlohmann::json toJson(const Event& event);
// The inverse of toJson (what egressctl receives). Unknown keys are ignored
// (newer daemons may add fields); a missing or malformed required key gives
// nullopt. Text fields longer than the Event's arrays are truncated.
// reason/nameSource/match/dnsOutcome are mapped back to static strings:
// the known names, or for names this build does not know (a newer daemon)
// a bounded process-wide pool (thread-safe; "?" once it is full).
// Keys and formats: docs/watch.md.
std::optional<Event> eventFromJson(const nlohmann::json& json);

// eventFromJson's parsers for single fields, for readers that scan the JSON
// text themselves (egressctl suggest's fast path, suggest/event_scanner.h)
// and must accept exactly what eventFromJson accepts: `time`, `proto`,
// `verdict`, `qtype`, `rcode`; eventText maps reason, name_from, match and
// outcome to static storage as eventFromJson does.
std::optional<std::chrono::system_clock::time_point> parseEventTime(std::string_view text);
std::optional<uint8_t> parseEventProto(std::string_view text);
std::optional<EventVerdict> parseEventVerdict(std::string_view text);
std::optional<uint16_t> parseEventQtype(std::string_view text);
std::optional<uint16_t> parseEventRcode(std::string_view text);
std::string_view eventText(std::string_view text);

}  // namespace observe

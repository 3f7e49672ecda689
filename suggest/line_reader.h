// Reading the decisions `egressctl suggest` learns from: one line of a file
// saved by `egressctl watch --json`, or of the control socket's watch
// stream (docs/watch.md, docs/control-protocol.md). Each event is what
// observe::eventFromJson reads, including the client's attribution
// (namespace, pod, workload, service account) when egressd knew the pod.
//
// The common line, a flat object as egressd writes it, takes the fast path
// (suggest/event_scanner.h); everything else goes through nlohmann::json
// and observe::eventFromJson, with the same result.
//
// Pure: no I/O. Thread-safety: functions over values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "observe/event.h"

namespace suggest {

// observe::eventFromJson, plus what is wrong when it refuses: `error`
// names the first missing or malformed key ("\"time\" is missing",
// "\"dport\" is not a number in 0..65535", ...).
std::optional<observe::Event> eventFromJson(const nlohmann::json& json, std::string& error);

enum class LineKind { Event, Skip, Invalid };

struct LineResult {
  LineKind kind = LineKind::Skip;
  observe::Event event;  // kind == Event
  std::string error;     // kind == Invalid: why
};

// One line: a bare event object, or {"event":{...}} as the control socket
// streams it. Blank lines and the stream's other messages ({"dropped":N},
// {"ok":true,...}, the greeting, {"packet":...}) are Skip; `dropped`
// receives N from {"dropped":N}.
LineResult readLine(std::string_view line, uint64_t* dropped = nullptr);

// The same into caller-owned `event` and `error`, reused from line to line
// (what `egressctl suggest` does a million times): no event is built or
// copied. `event` is meaningful only for LineKind::Event, `error` only
// for LineKind::Invalid.
LineKind readLine(std::string_view line, observe::Event& event, std::string& error,
                  uint64_t* dropped = nullptr);

}  // namespace suggest

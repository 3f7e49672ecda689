// One decision as `egressctl suggest` learns from it, read from the JSON
// events of `egressctl watch --json` (a file) or of the control socket's
// watch stream (docs/watch.md): observe::eventFromJson's fields plus the
// client's attribution (namespace, pod, workload, service account) when
// egressd knows which pod the source address belongs to.
//
// Pure: no I/O; allocation is fine (a command-line tool, not the packet
// path). Thread-safety: functions over values.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "observe/event.h"

namespace suggest {

// Bounds on the attribution texts (Kubernetes: a namespace is at most 63
// bytes, a pod or workload name at most 253, plus "StatefulSet/"); longer
// values are not from egressd and make the event invalid.
inline constexpr size_t kMaxAttributionText = 300;

struct Observation {
  observe::Event event;
  // Empty when unknown (a source that is not a pod, or no attribution).
  std::string ns;
  std::string pod;
  std::string workload;  // "Deployment/web", "StatefulSet/db", ...
  std::string serviceAccount;
};

// Reads one event object. nullopt with `error` naming the first missing
// or malformed key ("\"time\" is missing", "\"dport\" is not a number in
// 0..65535", ...).
std::optional<Observation> observationFromJson(const nlohmann::json& json, std::string& error);

enum class LineKind { Event, Skip, Invalid };

struct LineResult {
  LineKind kind = LineKind::Skip;
  Observation observation;  // kind == Event
  std::string error;        // kind == Invalid: why
};

// One line of a `watch --json` file, or of the control socket's stream:
// a bare event object, or {"event":{...}}. Blank lines and the stream's
// other messages ({"dropped":N}, {"ok":true,...}, a {"packet":...}) are
// Skip; `dropped` receives N from {"dropped":N}.
LineResult readLine(std::string_view line, uint64_t* dropped = nullptr);

}  // namespace suggest

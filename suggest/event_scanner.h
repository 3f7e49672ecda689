// The fast path for reading `egressctl watch --json` lines: the flat event
// objects egressd writes (string, unsigned number and string-array values,
// no escapes, ASCII), scanned in place without building a JSON tree. About
// ten times cheaper than nlohmann::json::parse + observe::eventFromJson,
// which is what makes a million recorded decisions a matter of seconds.
//
// It accepts exactly what observe::eventFromJson accepts, with the same
// result (the same field parsers, observe/format.h), or declines: anything
// unusual (escapes, non-ASCII bytes, nested objects, other numbers, a key
// given twice, invalid JSON) is left to the general reader, which also
// names what is wrong. fuzz_suggest_input checks the equivalence.
//
// Pure, bounds-checked over the line; no allocation but the event's text
// pool (observe::eventText). Thread-safe.
#pragma once

#include <optional>
#include <string_view>

#include "observe/event.h"

namespace suggest {

// The event of one line, or nullopt: not handled here (use the general
// reader, which may still accept it).
std::optional<observe::Event> scanFlatEvent(std::string_view line);

// The same into `event`, reused from line to line without building a new
// one (an event is about 1.4 KB): true when handled, every field then
// written; false leaves `event` partly written (the general reader then
// replaces it whole).
bool scanFlatEvent(std::string_view line, observe::Event& event);

}  // namespace suggest

// The control socket's protocol (docs/control-protocol.md), both ends:
// JSON lines over a UNIX stream socket. The server greets with
//   {"egressd":"0.1.0","protocol":1}
// then answers one request line with one response line ({"ok":true,...} or
// {"ok":false,"error":"..."}); a `watch` answers {"ok":true,...} and then
// streams {"event":{...}} (or, with "format":"line", {"time_us":N,"line":"..."}),
// {"packet":{...}} and {"dropped":N} lines until the client goes away.
//
// Pure: parsing and building lines, no sockets (daemon/control_server.h
// and cli/control_client.h do the I/O). Shared by egressd and egressctl.
// Allocates (control path, not the packet path).
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "observe/event.h"
#include "observe/filter.h"
#include "policy/policy.h"

namespace control {

inline constexpr int kProtocolVersion = 1;
inline constexpr std::string_view kVersion = EGRESSD_VERSION;
// Longest request or response line either end accepts (without the '\n').
// A rules answer for a very large policy is the biggest line a server
// sends; clients accept more than requests may be.
inline constexpr size_t kMaxRequestLine = 64 * 1024;
inline constexpr size_t kMaxResponseLine = 64 * 1024 * 1024;

enum class Op : uint8_t { Version, Watch, Rules, Stats, Explain };

std::string_view opName(Op op) noexcept;

// How a watch stream carries events: the event object (every field, for
// programs), or the formatted tcpdump-style line without its time of day
// (formatted once in the daemon for every such client; the cheap path for
// `egressctl watch`, which only adds the time in its own zone).
enum class WatchFormat : uint8_t { Json, Line };

struct Request {
  Op op = Op::Version;
  std::string filter;                      // watch: tcpdump-like filter text, "" = everything
  bool packets = false;                    // watch: also stream the deciding packets
  WatchFormat format = WatchFormat::Json;  // watch
  bool colour = false;                     // watch, format line: ANSI colours
  std::string target;                      // explain: HOST:PORT
};

struct RequestError {
  std::string message;
  // Set for a watch filter that does not parse.
  std::optional<observe::FilterError> filter;
};

// One request line (without '\n'). Unknown keys are ignored (newer
// clients); a missing or wrong-typed required key is an error.
std::variant<Request, RequestError> parseRequest(std::string_view line);

// Building lines (each without the trailing '\n').
std::string greetingLine();
std::string requestLine(const Request& request);
std::string errorLine(const RequestError& error);
std::string okLine(nlohmann::json body = nlohmann::json::object());
std::string eventLine(const observe::Event& event);
// A time_us value as a time point; nullopt when system_clock cannot hold
// it (beyond about 292 years from 1970).
std::optional<std::chrono::system_clock::time_point> timeFromMicros(int64_t micros) noexcept;
// {"time_us":N,"line":"<formatLineBody>"}: the "line" format's event.
std::string textEventLine(const observe::Event& event, bool colour);
std::string droppedLine(uint64_t dropped);
std::string packetLine(std::chrono::system_clock::time_point time, std::span<const uint8_t> bytes,
                       uint32_t originalLength);

// The greeting's protocol version, or an error message for anything that
// is not an egressd greeting.
std::variant<int, std::string> parseGreeting(std::string_view line);

// A "line" format event, read back: the event time and the line body,
// unescaped. False for any other line, and for raw bytes above 0x7f (the
// daemon escapes them): the caller then parses it as JSON.
// Fast and allocation-free but for `body`'s growth; bounds-checked, fuzzed.
struct TextEvent {
  std::chrono::system_clock::time_point time;
  std::string body;
};
bool parseTextEventLine(std::string_view line, TextEvent& out);

struct PacketRecord {
  std::chrono::system_clock::time_point time;
  uint32_t originalLength = 0;
  std::vector<uint8_t> bytes;
};
// The "packet" object of a stream line; nullopt when malformed.
std::optional<PacketRecord> packetFromJson(const nlohmann::json& packet);

std::string base64Encode(std::span<const uint8_t> bytes);
// nullopt on characters outside the alphabet or bad padding.
std::optional<std::vector<uint8_t>> base64Decode(std::string_view text);

struct HostPort {
  std::string host;  // name, IPv4 or IPv6 (without brackets)
  uint16_t port = 0;
};
// "api.example.com:443", "203.0.113.7:443", "[2001:db8::1]:443"; nullopt
// with `error` saying what is wrong.
std::optional<HostPort> parseHostPort(std::string_view text, std::string& error);
// "api.example.com:443", "[2001:db8::1]:443".
std::string displayHostPort(const HostPort& query);

// The compiled policy with provenance: rule sets (id, source, system,
// targets as written) and the union (each canonical target with every rule
// set that contributes it), ports in use.
nlohmann::json rulesJson(const policy::Policy& policy, uint64_t generation);

// `egressctl explain --json` for host:port: verdict, allowing rule sets and
// targets, whether a DNS binding is needed, other allowed ports.
// `host` is a name or an IP address without brackets.
nlohmann::json explainJson(const policy::Policy& policy, std::string_view host, uint16_t port);

}  // namespace control

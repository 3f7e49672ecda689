#include "daemon/control_protocol.h"

#include <array>
#include <map>

#include "common/ip_address.h"
#include "common/strings.h"
#include "observe/format.h"

namespace control {

namespace {

using nlohmann::json;

std::string dumpLine(const json& value) {
  // Invalid UTF-8 in names or error texts must not throw: replace it.
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<Op> opFromName(std::string_view name) {
  for (Op op : {Op::Version, Op::Watch, Op::Rules, Op::Stats, Op::Explain}) {
    if (opName(op) == name) return op;
  }
  return std::nullopt;
}

constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64Value(char c) noexcept {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

int64_t microsSinceEpoch(std::chrono::system_clock::time_point time) {
  return std::chrono::duration_cast<std::chrono::microseconds>(time.time_since_epoch()).count();
}

}  // namespace

std::string_view opName(Op op) noexcept {
  switch (op) {
    case Op::Version:
      return "version";
    case Op::Watch:
      return "watch";
    case Op::Rules:
      return "rules";
    case Op::Stats:
      return "stats";
    case Op::Explain:
      return "explain";
  }
  return "?";
}

std::variant<Request, RequestError> parseRequest(std::string_view line) {
  json doc = json::parse(line.begin(), line.end(), nullptr, false);
  if (doc.is_discarded()) return RequestError{"request is not valid JSON", std::nullopt};
  if (!doc.is_object()) return RequestError{"request must be a JSON object", std::nullopt};
  const auto op = doc.find("op");
  if (op == doc.end() || !op->is_string()) {
    return RequestError{"request needs \"op\": one of version, watch, rules, stats, explain", std::nullopt};
  }
  const auto kind = opFromName(op->get_ref<const std::string&>());
  if (!kind) {
    return RequestError{"unknown op \"" + op->get<std::string>() +
                            "\": expected one of version, watch, rules, stats, explain",
                        std::nullopt};
  }
  Request request;
  request.op = *kind;
  if (*kind == Op::Watch) {
    if (const auto filter = doc.find("filter"); filter != doc.end()) {
      if (!filter->is_string()) return RequestError{"\"filter\" must be a string", std::nullopt};
      request.filter = filter->get<std::string>();
    }
    if (const auto packets = doc.find("packets"); packets != doc.end()) {
      if (!packets->is_boolean()) return RequestError{"\"packets\" must be true or false", std::nullopt};
      request.packets = packets->get<bool>();
    }
    if (const auto format = doc.find("format"); format != doc.end()) {
      if (!format->is_string()) return RequestError{"\"format\" must be \"json\" or \"line\"", std::nullopt};
      const auto& name = format->get_ref<const std::string&>();
      if (name == "json") {
        request.format = WatchFormat::Json;
      } else if (name == "line") {
        request.format = WatchFormat::Line;
      } else {
        return RequestError{"unknown format \"" + name + "\": expected \"json\" or \"line\"", std::nullopt};
      }
    }
    if (const auto colour = doc.find("colour"); colour != doc.end()) {
      if (!colour->is_boolean()) return RequestError{"\"colour\" must be true or false", std::nullopt};
      request.colour = colour->get<bool>();
    }
    // The filter is parsed here so a bad one is answered before anything
    // streams, with the position of the bad token.
    auto parsed = observe::parseFilter(request.filter);
    if (auto* error = std::get_if<observe::FilterError>(&parsed)) {
      return RequestError{"invalid filter: " + error->message, *error};
    }
  }
  if (*kind == Op::Explain) {
    const auto target = doc.find("target");
    if (target == doc.end() || !target->is_string()) {
      return RequestError{"explain needs \"target\": \"HOST:PORT\"", std::nullopt};
    }
    request.target = target->get<std::string>();
  }
  return request;
}

std::string greetingLine() {
  return dumpLine(json{{"egressd", std::string(kVersion)}, {"protocol", kProtocolVersion}});
}

std::string requestLine(const Request& request) {
  json doc{{"op", std::string(opName(request.op))}};
  if (request.op == Op::Watch) {
    doc["filter"] = request.filter;
    doc["packets"] = request.packets;
    if (request.format == WatchFormat::Line) {
      doc["format"] = "line";
      doc["colour"] = request.colour;
    }
  }
  if (request.op == Op::Explain) doc["target"] = request.target;
  return dumpLine(doc);
}

std::string errorLine(const RequestError& error) {
  json doc{{"ok", false}, {"error", error.message}};
  if (error.filter) {
    doc["filter_error"] = {{"offset", error.filter->offset},
                           {"length", error.filter->length},
                           {"message", error.filter->message}};
  }
  return dumpLine(doc);
}

std::string okLine(json body) {
  if (!body.is_object()) body = json::object();
  body["ok"] = true;
  return dumpLine(body);
}

std::string eventLine(const observe::Event& event) {
  return dumpLine(json{{"event", observe::toJson(event)}});
}

std::optional<std::chrono::system_clock::time_point> timeFromMicros(int64_t micros) noexcept {
  // system_clock counts nanoseconds here: +-292 years around 1970.
  constexpr int64_t kLimit =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::duration::max())
          .count();
  if (micros > kLimit || micros < -kLimit) return std::nullopt;
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::microseconds(micros)));
}

std::string textEventLine(const observe::Event& event, bool colour) {
  std::string line = "{\"time_us\":";
  line += std::to_string(microsSinceEpoch(event.time));
  line += ",\"line\":";
  line += json(observe::formatLineBody(event, colour)).dump(-1, ' ', false, json::error_handler_t::replace);
  line += '}';
  return line;
}

namespace {

int hexDigit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Four hex digits at text[at..at+4).
std::optional<uint32_t> hex4(std::string_view text, size_t at) noexcept {
  if (at + 4 > text.size()) return std::nullopt;
  uint32_t value = 0;
  for (size_t i = at; i < at + 4; ++i) {
    const int digit = hexDigit(text[i]);
    if (digit < 0) return std::nullopt;
    value = value * 16 + static_cast<uint32_t>(digit);
  }
  return value;
}

void appendUtf8(std::string& out, uint32_t code) {
  if (code < 0x80) {
    out += static_cast<char>(code);
  } else if (code < 0x800) {
    out += static_cast<char>(0xC0 | (code >> 6));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else if (code < 0x10000) {
    out += static_cast<char>(0xE0 | (code >> 12));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (code >> 18));
    out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  }
}

// The JSON string starting after its opening quote at text[0] (RFC 8259
// §7), unescaped into `out`; returns the length consumed including the
// closing quote, or nullopt if malformed.
std::optional<size_t> unescapeJsonString(std::string_view text, std::string& out) {
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '"') return i + 1;
    if (static_cast<unsigned char>(c) < 0x20) return std::nullopt;  // must be escaped
    // Bodies are ASCII (formatLineBody escapes every other byte); raw UTF-8
    // is left to the JSON parser, which also rejects what is not UTF-8.
    if (static_cast<unsigned char>(c) >= 0x80) return std::nullopt;
    if (c != '\\') {
      out += c;
      ++i;
      continue;
    }
    if (i + 1 >= text.size()) return std::nullopt;
    const char escape = text[i + 1];
    i += 2;
    switch (escape) {
      case '"':
        out += '"';
        break;
      case '\\':
        out += '\\';
        break;
      case '/':
        out += '/';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        auto code = hex4(text, i);
        if (!code) return std::nullopt;
        i += 4;
        if (*code >= 0xD800 && *code <= 0xDBFF) {
          // A high surrogate must be followed by \uDC00..\uDFFF.
          if (i + 2 > text.size() || text[i] != '\\' || text[i + 1] != 'u') return std::nullopt;
          const auto low = hex4(text, i + 2);
          if (!low || *low < 0xDC00 || *low > 0xDFFF) return std::nullopt;
          i += 6;
          *code = 0x10000 + ((*code - 0xD800) << 10) + (*low - 0xDC00);
        } else if (*code >= 0xDC00 && *code <= 0xDFFF) {
          return std::nullopt;  // a lone low surrogate
        }
        appendUtf8(out, *code);
        break;
      }
      default:
        return std::nullopt;
    }
  }
  return std::nullopt;  // no closing quote
}

}  // namespace

bool parseTextEventLine(std::string_view line, TextEvent& out) {
  // Exactly what textEventLine writes; anything else is for the JSON parser.
  constexpr std::string_view kTime = "{\"time_us\":";
  constexpr std::string_view kLine = ",\"line\":\"";
  if (!line.starts_with(kTime)) return false;
  size_t at = kTime.size();
  int64_t micros = 0;
  const size_t digitsStart = at;
  while (at < line.size() && line[at] >= '0' && line[at] <= '9') {
    if (at - digitsStart >= 18) return false;  // beyond int64 microseconds
    micros = micros * 10 + (line[at] - '0');
    ++at;
  }
  if (at == digitsStart || line.substr(at, kLine.size()) != kLine) return false;
  if (line[digitsStart] == '0' && at - digitsStart > 1) return false;  // RFC 8259 §6: no leading zeros
  at += kLine.size();
  out.body.clear();
  const auto used = unescapeJsonString(line.substr(at), out.body);
  if (!used || at + *used + 1 != line.size() || line.back() != '}') return false;
  const auto time = timeFromMicros(micros);
  if (!time) return false;
  out.time = *time;
  return true;
}

std::string droppedLine(uint64_t dropped) {
  return dumpLine(json{{"dropped", dropped}});
}

std::string packetLine(std::chrono::system_clock::time_point time, std::span<const uint8_t> bytes,
                       uint32_t originalLength) {
  return dumpLine(
      json{{"packet",
            {{"time_us", microsSinceEpoch(time)}, {"len", originalLength}, {"data", base64Encode(bytes)}}}});
}

std::variant<int, std::string> parseGreeting(std::string_view line) {
  json doc = json::parse(line.begin(), line.end(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("egressd") || !doc.contains("protocol") ||
      !doc["protocol"].is_number_integer()) {
    return std::string("not an egressd control socket (unexpected greeting)");
  }
  return doc["protocol"].get<int>();
}

std::optional<PacketRecord> packetFromJson(const json& packet) {
  if (!packet.is_object()) return std::nullopt;
  const auto time = packet.find("time_us");
  const auto len = packet.find("len");
  const auto data = packet.find("data");
  if (time == packet.end() || !time->is_number_integer() || len == packet.end() ||
      !len->is_number_unsigned() || data == packet.end() || !data->is_string()) {
    return std::nullopt;
  }
  auto bytes = base64Decode(data->get_ref<const std::string&>());
  if (!bytes) return std::nullopt;
  const auto when = time->is_number_unsigned() && time->get<uint64_t>() > INT64_MAX
                        ? std::nullopt
                        : timeFromMicros(time->get<int64_t>());
  if (!when) return std::nullopt;
  PacketRecord record;
  record.time = *when;
  const uint64_t original = len->get<uint64_t>();
  record.originalLength = static_cast<uint32_t>(std::min<uint64_t>(original, UINT32_MAX));
  record.bytes = std::move(*bytes);
  if (record.originalLength < record.bytes.size()) return std::nullopt;
  return record;
}

std::string base64Encode(std::span<const uint8_t> bytes) {
  // RFC 4648 section 4, with padding.
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v = (uint32_t{bytes[i]} << 16) | (uint32_t{bytes[i + 1]} << 8) | bytes[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  const size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t v = uint32_t{bytes[i]} << 16;
    if (rest == 2) v |= uint32_t{bytes[i + 1]} << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::vector<uint8_t>> base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::vector<uint8_t> out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    std::array<int, 4> v{};
    size_t padding = 0;
    for (size_t j = 0; j < 4; ++j) {
      const char c = text[i + j];
      if (c == '=' && last && j >= 2) {
        ++padding;
        v[j] = 0;
        continue;
      }
      if (padding > 0) return std::nullopt;  // data after '='
      v[j] = base64Value(c);
      if (v[j] < 0) return std::nullopt;
    }
    const uint32_t word = (static_cast<uint32_t>(v[0]) << 18) | (static_cast<uint32_t>(v[1]) << 12) |
                          (static_cast<uint32_t>(v[2]) << 6) | static_cast<uint32_t>(v[3]);
    out.push_back(static_cast<uint8_t>(word >> 16));
    if (padding < 2) out.push_back(static_cast<uint8_t>(word >> 8));
    if (padding < 1) out.push_back(static_cast<uint8_t>(word));
  }
  return out;
}

namespace {

// "https://api.example.com/x" pasted where HOST:PORT belongs: the target
// that was probably meant (the scheme's port when the URL names none).
std::string targetOfUrl(std::string_view url) {
  const size_t schemeEnd = url.find("://");
  const std::string_view scheme = url.substr(0, schemeEnd);
  std::string_view authority = url.substr(schemeEnd + 3);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  const size_t bracket = authority.rfind(']');
  const size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    return std::string(authority);
  }
  const std::string lower = common::toLowerAscii(scheme);
  const char* port = lower == "http" || lower == "ws" ? "80" : "443";
  return std::string(authority) + ":" + port;
}

}  // namespace

std::optional<HostPort> parseHostPort(std::string_view text, std::string& error) {
  HostPort result;
  std::string_view portText;
  if (text.find("://") != std::string_view::npos) {
    error = "a URL is not a target; write HOST:PORT, e.g. " + targetOfUrl(text);
    return std::nullopt;
  }
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      error = "expected [IPv6]:PORT, e.g. [2001:db8::1]:443";
      return std::nullopt;
    }
    result.host = std::string(text.substr(1, close - 1));
    portText = text.substr(close + 2);
    if (!common::parseIpAddress(result.host) && result.host.find('/') == std::string::npos) {
      error = "\"" + result.host + "\" is not an IPv6 address";
      return std::nullopt;
    }
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      error = "missing port; expected HOST:PORT, e.g. api.example.com:443";
      return std::nullopt;
    }
    result.host = std::string(text.substr(0, colon));
    portText = text.substr(colon + 1);
    if (result.host.find(':') != std::string::npos) {
      // "2001:db8::1:443" (an address and a port) or "2001:db8::1" (no port)
      error = common::parseIpAddress(result.host) || common::parseIpAddress(text)
                  ? "IPv6 addresses must be in brackets, e.g. [2001:db8::1]:443"
                  : "\"" + result.host +
                        "\" is not a host (one ':' only, before the port; IPv6 addresses in "
                        "brackets, e.g. [2001:db8::1]:443)";
      return std::nullopt;
    }
  }
  if (const size_t slash = result.host.find('/'); slash != std::string::npos) {
    const std::string address = result.host.substr(0, slash);
    const bool v6 = address.find(':') != std::string::npos;
    error = "\"" + result.host + "\" is a network; ask about one address in it, e.g. " +
            (v6 ? "[" + address + "]" : address) + ":" + std::string(portText);
    return std::nullopt;
  }
  const auto port = common::parseDecimal(portText, 65535);
  if (!port || *port == 0) {
    error = "port \"" + std::string(portText) + "\" is not a number between 1 and 65535";
    return std::nullopt;
  }
  if (result.host.empty()) {
    error = "missing host before the port";
    return std::nullopt;
  }
  result.port = static_cast<uint16_t>(*port);
  return result;
}

std::string displayHostPort(const HostPort& query) {
  const bool v6 = query.host.find(':') != std::string::npos;
  return (v6 ? "[" + query.host + "]" : query.host) + ":" + std::to_string(query.port);
}

json rulesJson(const policy::Policy& policy, uint64_t generation) {
  json sets = json::array();
  // canonical target -> contributing rule sets, in a stable (sorted) order
  std::map<std::string, std::vector<std::string>> contributors;
  for (const auto& source : policy.sourceRuleSets()) {
    json targets = json::array();
    for (size_t i = 0; i < source.targets.size(); ++i) {
      const std::string canonical = source.targets[i].canonical();
      targets.push_back(canonical);
      auto& ids = contributors[canonical];
      if (ids.empty() || ids.back() != source.id()) ids.push_back(source.id());
    }
    sets.push_back({{"id", source.id()},
                    {"source", source.source},
                    {"system", source.system},
                    {"targets", std::move(targets)}});
  }
  json merged = json::array();
  for (auto& [target, ids] : contributors) merged.push_back({{"target", target}, {"rule_sets", ids}});
  return json{{"generation", generation},
              {"rule_sets", std::move(sets)},
              {"union", std::move(merged)},
              {"targets", policy.targetCount()},
              {"ports", policy.portsInUse()}};
}

json explainJson(const policy::Policy& policy, std::string_view host, uint16_t port) {
  const auto allowances = policy.explain(host, port);
  const bool allowed = !allowances.empty();
  const bool isAddress = common::parseIpAddress(host).has_value();
  // Names allowed only by name rules still need egressd's DNS to have handed
  // out the destination address (strict binding); world access does not.
  bool needsBinding = false;
  if (allowed && !isAddress) {
    needsBinding = true;
    for (const auto& a : allowances) needsBinding = needsBinding && a.kind != policy::MatchKind::World;
  }
  std::vector<uint16_t> otherPorts;
  if (!allowed) {
    // Ports on which the host would be allowed, to make a denial actionable.
    for (uint16_t other : policy.portsInUse()) {
      if (other != port && !policy.explain(host, other).empty()) otherPorts.push_back(other);
    }
  }
  json doc;
  doc["query"] = displayHostPort(HostPort{std::string(host), port});
  doc["verdict"] = allowed ? "allow" : "deny";
  doc["allowed_by"] = json::array();
  for (const auto& a : allowances) {
    doc["allowed_by"].push_back(
        {{"rule_set", a.ruleSet}, {"target", a.target}, {"kind", policy::matchKindName(a.kind)}});
  }
  doc["needs_dns_binding"] = needsBinding;
  doc["allowed_on_other_ports"] = otherPorts;
  doc["host_is_address"] = isAddress;
  doc["port_in_use"] = policy.portInUse(port);
  // World access on the port that does not cover this address: say why
  // and which target would open it (docs/nfq.md "Internal addresses").
  std::string_view bare = host;
  if (bare.size() > 2 && bare.front() == '[' && bare.back() == ']') bare = bare.substr(1, bare.size() - 2);
  const auto ip = common::parseIpAddress(bare);
  if (!allowed && ip && policy.worldOnPort(port) && policy.isInternal(*ip)) {
    const std::string address =
        ip->family == common::IpFamily::V6 ? "[" + ip->toString() + "]" : ip->toString();
    doc["internal_address"] = {
        {"range", policy::describeClass(policy.internalRanges().classify(*ip))},
        {"open_with", address + ":" + std::to_string(port)},
    };
  }
  return doc;
}

}  // namespace control

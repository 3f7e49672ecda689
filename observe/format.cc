#include "observe/format.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <limits>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string_view>

#include "common/strings.h"

namespace observe {

namespace {

using Clock = std::chrono::system_clock;
using Micros = std::chrono::microseconds;

constexpr uint8_t kProtoIcmp = 1;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kProtoIcmp6 = 58;
constexpr uint8_t kProtoSctp = 132;

// ---------------------------------------------------------------- names

struct Code {
  uint16_t value;
  std::string_view name;
};

// RR types with a mnemonic (IANA "Resource Record (RR) TYPEs"); others are
// shown in the RFC 3597 §5 form TYPEnnn.
constexpr Code kQtypes[] = {
    {1, "A"},       {2, "NS"},     {5, "CNAME"},    {6, "SOA"},         {12, "PTR"},    {13, "HINFO"},
    {15, "MX"},     {16, "TXT"},   {17, "RP"},      {18, "AFSDB"},      {28, "AAAA"},   {29, "LOC"},
    {33, "SRV"},    {35, "NAPTR"}, {36, "KX"},      {37, "CERT"},       {39, "DNAME"},  {41, "OPT"},
    {42, "APL"},    {43, "DS"},    {44, "SSHFP"},   {45, "IPSECKEY"},   {46, "RRSIG"},  {47, "NSEC"},
    {48, "DNSKEY"}, {49, "DHCID"}, {50, "NSEC3"},   {51, "NSEC3PARAM"}, {52, "TLSA"},   {53, "SMIMEA"},
    {55, "HIP"},    {59, "CDS"},   {60, "CDNSKEY"}, {61, "OPENPGPKEY"}, {62, "CSYNC"},  {63, "ZONEMD"},
    {64, "SVCB"},   {65, "HTTPS"}, {99, "SPF"},     {108, "EUI48"},     {109, "EUI64"}, {249, "TKEY"},
    {250, "TSIG"},  {251, "IXFR"}, {252, "AXFR"},   {255, "ANY"},       {256, "URI"},   {257, "CAA"},
};

// RFC 1035 §4.1.1, RFC 2136 §2.2, RFC 6891 §9 (BADVERS needs EDNS).
constexpr Code kRcodes[] = {
    {0, "NOERROR"},  {1, "FORMERR"}, {2, "SERVFAIL"}, {3, "NXDOMAIN"}, {4, "NOTIMP"},   {5, "REFUSED"},
    {6, "YXDOMAIN"}, {7, "YXRRSET"}, {8, "NXRRSET"},  {9, "NOTAUTH"},  {10, "NOTZONE"}, {16, "BADVERS"},
};

std::string codeName(std::span<const Code> table, uint16_t value, std::string_view generic) {
  for (const Code& code : table) {
    if (code.value == value) return std::string(code.name);
  }
  return std::string(generic) + std::to_string(value);
}

std::optional<uint16_t> parseCode(std::span<const Code> table, std::string_view text,
                                  std::string_view generic) {
  for (const Code& code : table) {
    if (common::equalsIgnoreCase(code.name, text)) return code.value;
  }
  if (text.size() > generic.size() && common::equalsIgnoreCase(text.substr(0, generic.size()), generic)) {
    if (const auto value = common::parseDecimal(text.substr(generic.size()), 65535)) {
      return static_cast<uint16_t>(*value);
    }
  }
  return std::nullopt;
}

std::string protoName(uint8_t protocol) {
  switch (protocol) {
    case kProtoTcp:
      return "tcp";
    case kProtoUdp:
      return "udp";
    case kProtoIcmp:
      return "icmp";
    case kProtoIcmp6:
      return "icmp6";
    default:
      return "ip-proto-" + std::to_string(protocol);  // as tcpdump prints it
  }
}

std::optional<uint8_t> parseProto(std::string_view text) {
  if (text == "tcp") return kProtoTcp;
  if (text == "udp") return kProtoUdp;
  if (text == "icmp") return kProtoIcmp;
  if (text == "icmp6") return kProtoIcmp6;
  constexpr std::string_view kPrefix = "ip-proto-";
  if (text.substr(0, kPrefix.size()) == kPrefix) {
    if (const auto value = common::parseDecimal(text.substr(kPrefix.size()), 255)) {
      return static_cast<uint8_t>(*value);
    }
  }
  return std::nullopt;
}

constexpr std::string_view kVerdictNames[] = {"allow", "deny", "audit"};

std::string_view verdictName(EventVerdict verdict) {
  const auto index = static_cast<size_t>(verdict);
  return index < std::size(kVerdictNames) ? kVerdictNames[index] : "deny";
}

// The texts Events point to: nfq::reasonName(), dns::denyReasonName(),
// dns::dnsOutcomeName(), policy::matchKindName() and the name sources.
constexpr std::string_view kKnownTexts[] = {
    // nfq reasons
    "port_not_in_policy", "address_rule", "world_access", "internal_address", "bound_address",
    "await_payload", "no_payload_yet", "no_name_rule_on_port", "need_more_bytes", "sni_allowed",
    "sni_not_allowed", "sni_not_bound", "host_allowed", "host_not_allowed", "host_not_bound", "quic_allowed",
    "quic_not_allowed", "quic_not_bound", "no_name_no_binding", "malformed_hello", "malformed_request",
    "hold_limit", "hold_timeout", "udp_not_allowed", "icmp_denied", "protocol_not_allowed",
    "malformed_packet", "stream_start_unknown", "not_stream_start", "judged_bytes_differ", "unconfirmed",
    // dns deny reasons and outcomes
    "none", "not_allowed", "invalid_name", "rebinding", "world_non_address_query", "dns_tunnel_budget",
    "allowed", "cache_hit", "denied", "cluster", "upstream_error", "malformed", "refused",
    // proxy reasons (proxy::proxyReasonName) and name sources
    "name_allowed", "name_not_allowed", "address_not_allowed", "no_address", "upstream_unreachable",
    "upstream_timeout", "head_too_large", "header_timeout", "too_many_connections", "https_scheme",
    "not_proxy_request", "pipelining_refused", "client_not_allowed", "proxy_protocol_invalid", "connect",
    "request", "client",
    // name sources and match kinds
    "sni", "host", "quic", "binding", "dns", "world", "wildcard", "exact", "network", "address", "unknown"};

// Maps a text from JSON back to static storage (Event holds string_views).
// Texts of a newer daemon are kept in a bounded process-wide pool so that
// they still show; past the bound (a hostile peer) they become "?".
std::string_view staticText(std::string_view text) {
  if (text.empty()) return {};
  for (std::string_view known : kKnownTexts) {
    if (known == text) return known;
  }
  constexpr size_t kMaxPooled = 256;
  constexpr size_t kMaxPooledLength = 64;
  static std::mutex mutex;
  static std::set<std::string, std::less<>> pool;  // node-based: views stay valid
  if (text.size() > kMaxPooledLength) return "?";
  const std::lock_guard<std::mutex> lock(mutex);
  auto found = pool.find(text);
  if (found != pool.end()) return *found;
  if (pool.size() >= kMaxPooled) return "?";
  return *pool.emplace(text).first;
}

// ---------------------------------------------------------------- text helpers

// Names and rule sets come from the network (SNI, Host, DNS queries): never
// let their bytes reach a terminal as control sequences.
void appendSafe(std::string& out, std::string_view text) {
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte >= 0x7f || c == '\\') {
      char escaped[5];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      out += escaped;
    } else {
      out += c;
    }
  }
}

// JSON strings must be valid UTF-8 (nlohmann's dump() throws otherwise);
// valid names are ASCII, so anything else is replaced.
std::string jsonSafe(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) >= 0x80) c = '?';
  }
  return out;
}

struct Split {
  Clock::time_point seconds;
  int64_t micros;
};

Split splitMicros(Clock::time_point time) {
  const auto micros = std::chrono::floor<Micros>(time.time_since_epoch());
  const auto seconds = std::chrono::floor<std::chrono::seconds>(micros);
  return {Clock::time_point(seconds), (micros - seconds).count()};
}

std::string timeOfDay(Clock::time_point time, bool utc) {
  const Split split = splitMicros(time);
  const std::time_t seconds = Clock::to_time_t(split.seconds);
  std::tm tm{};
  if (utc) {
    gmtime_r(&seconds, &tm);
  } else {
    localtime_r(&seconds, &tm);
  }
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%02d:%02d:%02d.%06lld", tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(split.micros));
  return buffer;
}

// RFC 3339 §5.6, always UTC with microseconds: 2026-11-26T12:00:01.123456Z.
std::string rfc3339(Clock::time_point time) {
  const Split split = splitMicros(time);
  const auto days = std::chrono::floor<std::chrono::days>(split.seconds);
  const std::chrono::year_month_day date(days);
  const std::chrono::hh_mm_ss clock(split.seconds - days);
  char buffer[48];
  std::snprintf(buffer, sizeof buffer, "%04d-%02u-%02uT%02d:%02d:%02lldZ", static_cast<int>(date.year()),
                static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
                static_cast<int>(clock.hours().count()), static_cast<int>(clock.minutes().count()),
                static_cast<long long>(clock.seconds().count()));
  std::string out(buffer);
  std::snprintf(buffer, sizeof buffer, ".%06lld", static_cast<long long>(split.micros));
  out.insert(out.size() - 1, buffer);
  return out;
}

std::optional<int> fixedDigits(std::string_view text, size_t at, size_t count) {
  if (at + count > text.size()) return std::nullopt;
  int value = 0;
  for (size_t i = at; i < at + count; ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    value = value * 10 + (text[i] - '0');
  }
  return value;
}

// Accepts RFC 3339 date-times: a fraction of 1..9 digits (kept to the
// microsecond) and "Z" or a numeric offset.
std::optional<Clock::time_point> parseRfc3339(std::string_view text) {
  const auto year = fixedDigits(text, 0, 4);
  const auto month = fixedDigits(text, 5, 2);
  const auto day = fixedDigits(text, 8, 2);
  const auto hour = fixedDigits(text, 11, 2);
  const auto minute = fixedDigits(text, 14, 2);
  const auto second = fixedDigits(text, 17, 2);
  if (!year || !month || !day || !hour || !minute || !second) return std::nullopt;
  // system_clock counts nanoseconds in 64 bits: 1677-09-21 to 2262-04-11.
  // Later (or earlier) times would overflow (undefined behaviour) and were
  // never written by egressd; whole years inside that span are accepted.
  if (*year < 1678 || *year > 2261) return std::nullopt;
  if (text[4] != '-' || text[7] != '-' || (text[10] != 'T' && text[10] != 't' && text[10] != ' ') ||
      text[13] != ':' || text[16] != ':') {
    return std::nullopt;
  }
  if (*hour > 23 || *minute > 59 || *second > 60) return std::nullopt;
  const std::chrono::year_month_day date{std::chrono::year(*year),
                                         std::chrono::month(static_cast<unsigned>(*month)),
                                         std::chrono::day(static_cast<unsigned>(*day))};
  if (!date.ok()) return std::nullopt;
  size_t at = 19;
  int64_t micros = 0;
  if (at < text.size() && text[at] == '.') {
    ++at;
    size_t count = 0;
    while (at < text.size() && text[at] >= '0' && text[at] <= '9') {
      if (count < 6) micros = micros * 10 + (text[at] - '0');
      ++count;
      ++at;
    }
    if (count == 0 || count > 9) return std::nullopt;
    for (size_t i = count; i < 6; ++i) micros *= 10;
  }
  int offsetMinutes = 0;
  const std::string_view zone = text.substr(at);
  if (zone == "Z" || zone == "z") {
    offsetMinutes = 0;
  } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
    const auto offsetHours = fixedDigits(zone, 1, 2);
    const auto offsetMins = fixedDigits(zone, 4, 2);
    if (!offsetHours || !offsetMins || *offsetHours > 23 || *offsetMins > 59) return std::nullopt;
    offsetMinutes = (*offsetHours * 60 + *offsetMins) * (zone[0] == '-' ? -1 : 1);
  } else {
    return std::nullopt;
  }
  const auto seconds = std::chrono::sys_days(date).time_since_epoch() + std::chrono::hours(*hour) +
                       std::chrono::minutes(*minute - offsetMinutes) + std::chrono::seconds(*second);
  return Clock::time_point(std::chrono::duration_cast<Clock::duration>(seconds + Micros(micros)));
}

bool showsPorts(const Event& event) {
  return event.protocol == kProtoTcp || event.protocol == kProtoUdp || event.protocol == kProtoSctp ||
         event.srcPort != 0 || event.dstPort != 0;
}

void appendEndpoint(std::string& out, const common::IpAddress& ip, uint16_t port, bool withPort) {
  const bool v6 = ip.family == common::IpFamily::V6;
  if (v6 && withPort) out += '[';
  out += ip.toString();
  if (v6 && withPort) out += ']';
  if (withPort) out += ":" + std::to_string(port);
}

std::string_view nameLabel(std::string_view source) {
  if (source == "binding") return "bound";
  if (source.empty() || source == "none") return "name";
  return source;
}

}  // namespace

std::string formatTimeOfDay(std::chrono::system_clock::time_point time, bool utc) {
  return timeOfDay(time, utc);
}

std::string_view TimeOfDayFormatter::format(std::chrono::system_clock::time_point time) {
  const Split split = splitMicros(time);
  if (!valid_ || split.seconds != second_) {
    // localtime_r consults the zone rules each call; one per second is enough.
    const std::string full = timeOfDay(split.seconds, utc_);
    std::memcpy(text_.data(), full.data(), 8);  // "HH:MM:SS"
    text_[8] = '.';
    second_ = split.seconds;
    valid_ = true;
  }
  auto micros = split.micros;
  for (size_t i = 14; i >= 9; --i) {
    text_[i] = static_cast<char>('0' + micros % 10);
    micros /= 10;
  }
  return {text_.data(), text_.size()};
}

std::string formatLine(const Event& event, const LineStyle& style) {
  std::string out = timeOfDay(event.time, style.utc);
  out += ' ';
  out += formatLineBody(event, style.colour);
  return out;
}

std::string formatLineBody(const Event& event, bool colourOn) {
  const LineStyle style{.colour = colourOn, .utc = false};
  std::string out;
  const bool ports = showsPorts(event);
  if (event.client.known()) {
    // The pod instead of its address (attribution); --json keeps both.
    appendSafe(out, event.namespaceView());
    out += '/';
    appendSafe(out, event.podView());
    if (ports) out += ":" + std::to_string(event.srcPort);
  } else {
    appendEndpoint(out, event.src, event.srcPort, ports);
  }
  out += " > ";
  appendEndpoint(out, event.dst, event.dstPort, ports);

  const bool dns = event.kind == EventKind::Dns;
  if (dns) {
    out += " dns ";
    out += codeName(kQtypes, event.qtype, "TYPE");
    out += ' ';
    if (event.nameLength == 0) {
      out += '.';  // the root (or an unreadable question)
    } else {
      appendSafe(out, event.nameView());
    }
  } else {
    out += ' ';
    out += event.kind == EventKind::Proxy ? std::string_view("proxy") : protoName(event.protocol);
    if (event.nameLength > 0) {
      out += ' ';
      out += nameLabel(event.nameSource);
      out += '=';
      appendSafe(out, event.nameView());
    }
  }

  std::string_view word = "DENY";
  std::string_view colour = "\x1b[31m";
  if (event.verdict == EventVerdict::Allow) {
    word = "ALLOW";
    colour = "\x1b[32m";
  } else if (event.verdict == EventVerdict::Audit) {
    word = "AUDIT would deny";
    colour = "\x1b[33m";
  }
  out += ' ';
  if (style.colour) out += colour;
  out += word;
  if (style.colour) out += "\x1b[0m";

  if (dns) {
    if (event.verdict == EventVerdict::Allow) {
      if (!event.dnsOutcome.empty() && event.dnsOutcome != "allowed")
        out += " " + std::string(event.dnsOutcome);
    } else if (!event.reason.empty()) {
      out += " " + std::string(event.reason);
    } else if (!event.dnsOutcome.empty() && event.dnsOutcome != "denied") {
      out += " " + std::string(event.dnsOutcome);
    }
    out += " rcode=" + codeName(kRcodes, event.rcode, "RCODE");
    if (event.answers > 0 || event.rcode == 0) out += " answers=" + std::to_string(event.answers);
  } else if (event.verdict != EventVerdict::Allow && !event.reason.empty()) {
    out += ' ';
    out += event.reason;
  }
  if (event.ruleSetsLength > 0) {
    out += " by ";
    appendSafe(out, event.ruleSetsView());
  }
  return out;
}

nlohmann::json toJson(const Event& event) {
  const bool dns = event.kind == EventKind::Dns;
  nlohmann::json ruleSets = nlohmann::json::array();
  std::string_view list = event.ruleSetsView();
  while (!list.empty()) {
    const size_t comma = list.find(',');
    ruleSets.push_back(jsonSafe(list.substr(0, comma)));
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
    if (list.empty()) ruleSets.push_back("");  // "a," keeps its empty last item
  }
  // Key by key: nlohmann's initializer-list form copies every value once
  // more and is about 2.5 times slower (this runs per event and client).
  nlohmann::json json = nlohmann::json::object();
  json["kind"] = dns ? "dns" : event.kind == EventKind::Proxy ? "proxy" : "verdict";
  json["time"] = rfc3339(event.time);
  json["src"] = event.src.toString();
  json["sport"] = event.srcPort;
  json["dst"] = event.dst.toString();
  json["dport"] = event.dstPort;
  json["proto"] = protoName(event.protocol);
  json["verdict"] = verdictName(event.verdict);
  json["reason"] = event.reason;
  json["name"] = jsonSafe(event.nameView());
  json["name_from"] = event.nameSource;
  json["match"] = event.match;
  json["rulesets"] = std::move(ruleSets);
  json["namespace"] = jsonSafe(event.namespaceView());
  json["pod"] = jsonSafe(event.podView());
  json["workload"] = jsonSafe(event.workloadView());
  json["service_account"] = jsonSafe(event.serviceAccountView());
  if (dns) {
    json["qtype"] = codeName(kQtypes, event.qtype, "TYPE");
    json["rcode"] = codeName(kRcodes, event.rcode, "RCODE");
    json["outcome"] = event.dnsOutcome;
    json["answers"] = event.answers;
    if (event.addressCount > 0) {
      nlohmann::json addresses = nlohmann::json::array();
      for (const auto& address : event.addressesView()) addresses.push_back(address.toString());
      json["addresses"] = std::move(addresses);
    }
  } else {
    json["queue"] = event.queue;
  }
  return json;
}

namespace {

// Optional keys: absent → the default; present with the wrong type → error.
bool readString(const nlohmann::json& json, const char* key, std::string_view& out, bool required) {
  const auto it = json.find(key);
  if (it == json.end()) return !required;
  if (!it->is_string()) return false;
  out = it->get_ref<const std::string&>();
  return true;
}

template <typename T>
bool readNumber(const nlohmann::json& json, const char* key, T& out) {
  const auto it = json.find(key);
  if (it == json.end()) return true;
  if (!it->is_number_unsigned()) return false;
  const auto value = it->get<uint64_t>();
  if (value > std::numeric_limits<T>::max()) return false;
  out = static_cast<T>(value);
  return true;
}

template <size_t N, typename Length>
void copyText(std::string_view text, std::array<char, N>& out, Length& length) {
  length = static_cast<Length>(std::min(text.size(), N));
  std::copy_n(text.data(), length, out.data());
}

}  // namespace

std::optional<Event> eventFromJson(const nlohmann::json& json) {
  if (!json.is_object()) return std::nullopt;
  Event event;
  std::string_view kind, time, src, dst, proto, verdict;
  if (!readString(json, "kind", kind, true) || !readString(json, "time", time, true) ||
      !readString(json, "src", src, true) || !readString(json, "dst", dst, true) ||
      !readString(json, "proto", proto, true) || !readString(json, "verdict", verdict, true)) {
    return std::nullopt;
  }
  if (kind == "verdict") {
    event.kind = EventKind::Verdict;
  } else if (kind == "dns") {
    event.kind = EventKind::Dns;
  } else if (kind == "proxy") {
    event.kind = EventKind::Proxy;
  } else {
    return std::nullopt;
  }
  const auto when = parseRfc3339(time);
  const auto srcIp = common::parseIpAddress(src);
  const auto dstIp = common::parseIpAddress(dst);
  const auto protocol = parseProto(proto);
  if (!when || !srcIp || !dstIp || !protocol) return std::nullopt;
  event.time = *when;
  event.src = *srcIp;
  event.dst = *dstIp;
  event.protocol = *protocol;
  const auto* verdictIt = std::find(std::begin(kVerdictNames), std::end(kVerdictNames), verdict);
  if (verdictIt == std::end(kVerdictNames)) return std::nullopt;
  event.verdict = static_cast<EventVerdict>(verdictIt - std::begin(kVerdictNames));

  std::string_view reason, name, nameSource, match, outcome, qtype, rcode;
  if (!readNumber(json, "sport", event.srcPort) || !readNumber(json, "dport", event.dstPort) ||
      !readString(json, "reason", reason, false) || !readString(json, "name", name, false) ||
      !readString(json, "name_from", nameSource, false) || !readString(json, "match", match, false) ||
      !readNumber(json, "queue", event.queue) || !readString(json, "outcome", outcome, false) ||
      !readString(json, "qtype", qtype, false) || !readString(json, "rcode", rcode, false) ||
      !readNumber(json, "answers", event.answers)) {
    return std::nullopt;
  }
  event.reason = staticText(reason);
  event.nameSource = staticText(nameSource);
  event.match = staticText(match);
  event.dnsOutcome = staticText(outcome);
  copyText(name, event.name, event.nameLength);
  if (!qtype.empty()) {
    const auto value = parseCode(kQtypes, qtype, "TYPE");
    if (!value) return std::nullopt;
    event.qtype = *value;
  }
  if (!rcode.empty()) {
    const auto value = parseCode(kRcodes, rcode, "RCODE");
    if (!value) return std::nullopt;
    event.rcode = *value;
  }

  std::string_view ns, pod, workload, account;
  if (!readString(json, "namespace", ns, false) || !readString(json, "pod", pod, false) ||
      !readString(json, "workload", workload, false) ||
      !readString(json, "service_account", account, false)) {
    return std::nullopt;
  }
  event.client.assign(ns, pod, workload, account);  // longer than Kubernetes allows: cut

  if (const auto it = json.find("rulesets"); it != json.end()) {
    if (!it->is_array()) return std::nullopt;
    std::string joined;
    for (const auto& item : *it) {
      if (!item.is_string()) return std::nullopt;
      if (&item != &it->front()) joined += ',';
      joined += item.get_ref<const std::string&>();
      if (joined.size() > kMaxEventRuleSets) break;
    }
    copyText(joined, event.ruleSets, event.ruleSetsLength);
  }
  if (const auto it = json.find("addresses"); it != json.end()) {
    // DNS answers' addresses: a list of address strings, the first
    // kMaxEventAddresses kept (every item is still checked).
    if (!it->is_array()) return std::nullopt;
    for (const auto& item : *it) {
      if (!item.is_string()) return std::nullopt;
      const auto address = common::parseIpAddress(item.get_ref<const std::string&>());
      if (!address) return std::nullopt;
      if (event.addressCount < kMaxEventAddresses) event.addresses[event.addressCount++] = *address;
    }
  }
  return event;
}

std::optional<std::chrono::system_clock::time_point> parseEventTime(std::string_view text) {
  return parseRfc3339(text);
}

std::optional<uint8_t> parseEventProto(std::string_view text) {
  return parseProto(text);
}

std::optional<EventVerdict> parseEventVerdict(std::string_view text) {
  const auto* it = std::find(std::begin(kVerdictNames), std::end(kVerdictNames), text);
  if (it == std::end(kVerdictNames)) return std::nullopt;
  return static_cast<EventVerdict>(it - std::begin(kVerdictNames));
}

std::optional<uint16_t> parseEventQtype(std::string_view text) {
  return parseCode(kQtypes, text, "TYPE");
}

std::optional<uint16_t> parseEventRcode(std::string_view text) {
  return parseCode(kRcodes, text, "RCODE");
}

std::string_view eventText(std::string_view text) {
  return staticText(text);
}

}  // namespace observe

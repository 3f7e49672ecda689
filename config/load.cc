#include "config/load.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <map>
#include <system_error>
#include <utility>

#include <toml++/toml.h>

#include "common/strings.h"
#include "common/typo_distance.h"
#include "config/resolv_conf.h"
#include "policy/internal_ranges.h"

namespace config {
namespace {

using common::Duration;

struct Position {
  int line = 0;
  int column = 0;
};

std::optional<Position> regionPosition(const toml::source_region& region) {
  if (!region.begin) return std::nullopt;
  return Position{static_cast<int>(region.begin.line), static_cast<int>(region.begin.column)};
}

// Quotes operator-supplied text for a message: control bytes are escaped so a
// hostile or broken file cannot forge extra log lines.
std::string quote(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte == 0x7f) {
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

// Keys are shown bare when TOML would allow them bare, quoted otherwise.
std::string showKey(std::string_view key) {
  const bool bare = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
  return bare ? std::string(key) : quote(key);
}

std::string typeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return node.as_array()->is_array_of_tables() && !node.as_array()->empty() ? "an array of tables"
                                                                                : "an array";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

std::optional<std::string_view> closest(std::string_view key,
                                        const std::vector<std::string_view>& candidates) {
  std::optional<std::string_view> best;
  size_t bestDistance = 0;
  for (std::string_view candidate : candidates) {
    const size_t distance = common::typoDistance(key, candidate);
    // Close enough to be a typo, not a different word.
    if (distance > 2 || distance * 2 >= candidate.size()) continue;
    if (!best || distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

// The keys a table may hold, from config::knownKeys(): "" gives the section
// names and top-level keys, "dns" the keys of [dns].
std::vector<std::string_view> allowedKeys(std::string_view prefix) {
  std::vector<std::string_view> keys;
  for (const KeyInfo& info : knownKeys()) {
    std::string_view path = info.path;
    std::string_view name;
    if (prefix.empty()) {
      name = path.substr(0, path.find('.'));
    } else if (path.size() > prefix.size() && path.substr(0, prefix.size()) == prefix &&
               path[prefix.size()] == '.') {
      name = path.substr(prefix.size() + 1);
    } else {
      continue;
    }
    if (std::find(keys.begin(), keys.end(), name) == keys.end()) keys.push_back(name);
  }
  return keys;
}

class Loader {
 public:
  explicit Loader(std::string source) : source_(std::move(source)) {}

  void problem(std::string path, std::string message, std::optional<Position> where) {
    ConfigProblem p{source_, std::move(path), std::move(message), std::nullopt, std::nullopt};
    if (where) {
      p.line = where->line;
      p.column = where->column;
    }
    problems_.push_back(std::move(p));
  }
  void problem(std::string path, std::string message, const toml::node& node) {
    problem(std::move(path), std::move(message), regionPosition(node.source()));
  }
  void remember(const std::string& path, const toml::node& node) {
    if (auto where = regionPosition(node.source())) positions_.emplace(path, *where);
  }
  std::optional<Position> positionOf(const std::string& path) const {
    // "dns.listen[2]" falls back to "dns.listen" when the element is unknown.
    auto it = positions_.find(path);
    if (it != positions_.end()) return it->second;
    const size_t bracket = path.find('[');
    if (bracket != std::string::npos) return positionOf(path.substr(0, bracket));
    return std::nullopt;
  }
  std::vector<ConfigProblem>& problems() { return problems_; }
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::vector<ConfigProblem> problems_;
  std::map<std::string, Position> positions_;
};

// One TOML table being read; remembers nothing about keys itself, the list
// of allowed keys comes from knownKeys().
class Section {
 public:
  Section(Loader& loader, const toml::table* table, std::string prefix)
      : loader_(loader), table_(table), prefix_(std::move(prefix)) {}

  std::string path(std::string_view key) const {
    return prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key);
  }

  const toml::node* find(std::string_view key) {
    if (table_ == nullptr) return nullptr;
    const toml::node* node = table_->get(key);
    if (node != nullptr) loader_.remember(path(key), *node);
    return node;
  }

  void reportUnknownKeys() {
    if (table_ == nullptr) return;
    const std::vector<std::string_view> allowed = allowedKeys(prefix_);
    for (auto&& [key, node] : *table_) {
      const std::string_view name = key.str();
      if (std::find(allowed.begin(), allowed.end(), name) != allowed.end()) continue;
      std::string message = "unknown key";
      if (auto suggestion = closest(name, allowed))
        message += " (did you mean \"" + std::string(*suggestion) + "\"?)";
      const std::string shown = prefix_.empty() ? showKey(name) : prefix_ + "." + showKey(name);
      auto where = regionPosition(key.source());
      if (!where) where = regionPosition(node.source());
      loader_.problem(shown, std::move(message), where);
    }
  }

  Loader& loader() { return loader_; }

 private:
  Loader& loader_;
  const toml::table* table_;
  std::string prefix_;
};

void typeError(Section& section, std::string_view key, const toml::node& node, std::string_view expected) {
  section.loader().problem(section.path(key), "expected " + std::string(expected) + ", got " + typeName(node),
                           node);
}

void readBool(Section& section, std::string_view key, bool& out) {
  const toml::node* node = section.find(key);
  if (node == nullptr) return;
  if (const auto* value = node->as_boolean()) {
    out = value->get();
  } else {
    typeError(section, key, *node, "a boolean (true or false)");
  }
}

template <typename T>
void readChoice(Section& section, std::string_view key,
                std::initializer_list<std::pair<std::string_view, T>> choices, T& out) {
  const toml::node* node = section.find(key);
  if (node == nullptr) return;
  std::string list;
  for (const auto& choice : choices)
    list += (list.empty() ? "\"" : ", \"") + std::string(choice.first) + "\"";
  const auto* value = node->as_string();
  if (value == nullptr) {
    typeError(section, key, *node, "a string, one of " + list);
    return;
  }
  for (const auto& choice : choices) {
    if (value->get() == choice.first) {
      out = choice.second;
      return;
    }
  }
  // A choice in another case or one typo away is named: "nxdomain", "REFUSE".
  std::string hint;
  size_t best = value->get().size() >= 5 ? 2 : 1;
  for (const auto& choice : choices) {
    const size_t distance = common::typoDistance(value->get(), choice.first);
    if (distance <= best && (hint.empty() || distance < best)) {
      best = distance;
      hint = " (did you mean \"" + std::string(choice.first) + "\"?)";
    }
  }
  section.loader().problem(section.path(key), quote(value->get()) + " is not one of " + list + hint, *node);
}

template <typename T>
void readCount(Section& section, std::string_view key, int64_t min, int64_t max, T& out) {
  const toml::node* node = section.find(key);
  if (node == nullptr) return;
  const auto* value = node->as_integer();
  if (value == nullptr) {
    typeError(section, key, *node, "an integer");
    return;
  }
  const int64_t number = value->get();
  if (number < min || number > max) {
    section.loader().problem(section.path(key),
                             std::to_string(number) + " is out of range (" + std::to_string(min) + ".." +
                                 std::to_string(max) + ")",
                             *node);
    return;
  }
  out = static_cast<T>(number);
}

bool allDigits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

void readDuration(Section& section, std::string_view key, Duration min, Duration max, Duration& out) {
  const toml::node* node = section.find(key);
  if (node == nullptr) return;
  Loader& loader = section.loader();
  const std::string path = section.path(key);
  static constexpr std::string_view kUnits =
      " (units: ms, s, m, h, d, largest first, each once; e.g. \"250ms\", \"5s\", \"1m30s\")";
  if (const auto* integer = node->as_integer()) {
    loader.problem(path,
                   std::to_string(integer->get()) + " is missing a unit (write \"" +
                       std::to_string(integer->get()) + "s\" or \"" + std::to_string(integer->get()) +
                       "ms\")",
                   *node);
    return;
  }
  const auto* value = node->as_string();
  if (value == nullptr) {
    typeError(section, key, *node, "a duration string such as \"5s\"");
    return;
  }
  const std::string& text = value->get();
  if (allDigits(text)) {
    loader.problem(path, quote(text) + " is missing a unit (write \"" + text + "s\" or \"" + text + "ms\")",
                   *node);
    return;
  }
  if (!text.empty() && text.front() == '-') {
    loader.problem(path, quote(text) + " is negative; durations must be positive", *node);
    return;
  }
  const auto duration = common::parseDuration(text);
  if (!duration) {
    loader.problem(path, quote(text) + " is not a duration" + std::string(kUnits), *node);
    return;
  }
  if (*duration < min) {
    loader.problem(
        path,
        quote(text) + (min.count() == 1 ? std::string(" must be more than 0")
                                        : " is less than the minimum of " + common::formatDuration(min)),
        *node);
    return;
  }
  if (*duration > max) {
    loader.problem(path, quote(text) + " is more than the maximum of " + common::formatDuration(max), *node);
    return;
  }
  out = *duration;
}

// Reads an array whose elements are converted by `convert`, which returns
// the value or sets `error`. An array with a wrong element still reports every
// wrong element; `out` is replaced only when all are good.
template <typename T>
void readArray(Section& section, std::string_view key, std::string_view elementKind,
               const std::function<std::optional<T>(const toml::node&, std::string& error)>& convert,
               std::vector<T>& out) {
  const toml::node* node = section.find(key);
  if (node == nullptr) return;
  Loader& loader = section.loader();
  const auto* array = node->as_array();
  if (array == nullptr) {
    std::string message = "expected an array of " + std::string(elementKind) + ", got " + typeName(*node);
    if (const auto* single = node->as_string()) message += " (write [" + quote(single->get()) + "])";
    loader.problem(section.path(key), std::move(message), *node);
    return;
  }
  std::vector<T> values;
  bool good = true;
  for (size_t i = 0; i < array->size(); ++i) {
    const toml::node& element = *array->get(i);
    const std::string path = section.path(key) + "[" + std::to_string(i) + "]";
    loader.remember(path, element);
    std::string error;
    if (auto value = convert(element, error)) {
      values.push_back(std::move(*value));
    } else {
      loader.problem(path, std::move(error), element);
      good = false;
    }
  }
  if (good) out = std::move(values);
}

// Element converters -------------------------------------------------------

template <typename T>
std::function<std::optional<T>(const toml::node&, std::string&)> fromString(
    std::function<std::optional<T>(std::string_view, std::string&)> parse) {
  return [parse = std::move(parse)](const toml::node& node, std::string& error) -> std::optional<T> {
    const auto* value = node.as_string();
    if (value == nullptr) {
      error = "expected a string, got " + typeName(node);
      return std::nullopt;
    }
    return parse(value->get(), error);
  };
}

std::string addressHint(std::string_view text) {
  if (text.empty()) return "";
  const char first = text.front();
  if ((first >= 'a' && first <= 'z') || (first >= 'A' && first <= 'Z')) {
    if (std::count(text.begin(), text.end(), ':') < 2) return " (names are not resolved; use an IP address)";
  }
  if (first != '[' && std::count(text.begin(), text.end(), ':') >= 2) {
    return " (IPv6 needs brackets: \"[2001:db8::1]:53\")";
  }
  return "";
}

// Listeners name their port: a default would hide which port is used.
std::optional<common::SocketAddress> parseListenAddress(std::string_view text, std::string& error) {
  if (auto address = common::parseSocketAddress(text)) return address;
  if (common::parseSocketAddress(text, 53)) {
    error = quote(text) + " has no port (listen addresses need one, e.g. \"127.0.0.1:5353\")";
  } else {
    error = quote(text) + " is not an address:port" + addressHint(text);
  }
  return std::nullopt;
}

// Upstream resolvers: the port defaults to 53. A bare IPv6 address is
// refused: "2001:db8::53" could mean port 53 of 2001:db8:: to a reader.
std::optional<common::SocketAddress> parseUpstreamAddress(std::string_view text, std::string& error) {
  const std::optional<common::SocketAddress> address = common::parseSocketAddress(text, 53);
  if (!address) {
    error = quote(text) + " is not an address:port" + addressHint(text);
    return std::nullopt;
  }
  if (address->port == 0) {
    error = quote(text) + " has port 0, which no resolver listens on";
    return std::nullopt;
  }
  return address;
}

std::optional<common::IpNetwork> parseCidr(std::string_view text, std::string& error) {
  const common::NetworkParse parsed = common::parseIpNetwork(text);
  if (parsed.network) return parsed.network;
  const size_t slash = text.find('/');
  const auto ip = common::parseIpAddress(text.substr(0, slash));
  if (!ip) {
    error = quote(text) + " is not a CIDR network (address/prefix, e.g. \"10.0.0.0/8\")";
  } else if (slash == std::string_view::npos) {
    error = quote(text) + " has no /prefix (write \"" + std::string(text) +
            (ip->family == common::IpFamily::V4 ? "/32" : "/128") + "\" for one address)";
  } else if (parsed.error == common::NetworkParseError::HostBitsSet) {
    // Suggest the network the operator probably meant.
    const auto prefix = common::parseDecimal(text.substr(slash + 1), ip->bitLength());
    common::IpAddress network = *ip;
    for (unsigned bit = prefix.value_or(0); bit < network.bitLength(); ++bit) {
      network.bytes[bit / 8] = static_cast<uint8_t>(network.bytes[bit / 8] & ~(1U << (7 - bit % 8)));
    }
    error = quote(text) + " has host bits set (did you mean \"" + network.toString() + "/" +
            std::to_string(prefix.value_or(0)) + "\"?)";
  } else {
    error = quote(text) + " has a bad prefix length (0.." + std::to_string(ip->bitLength()) + ")";
  }
  return std::nullopt;
}

// RFC 1035 section 2.3.4 limits (63-byte labels, 253-byte names in text
// form); letters, digits, hyphens and underscores (service names). Lower
// cased, trailing dot removed.
std::optional<std::string> parseDomain(std::string_view text, std::string& error) {
  std::string name = common::toLowerAscii(text);
  if (!name.empty() && name.back() == '.') name.pop_back();
  if (name.empty()) {
    error = quote(text) + " is not a domain (the root would match every name)";
    return std::nullopt;
  }
  if (name.size() > 253) {
    error = quote(text) + " is longer than 253 characters";
    return std::nullopt;
  }
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('.', start);
    if (end == std::string::npos) end = name.size();
    const std::string_view label = std::string_view(name).substr(start, end - start);
    if (label.empty()) {
      error = quote(text) + " is not a domain (empty label)";
      return std::nullopt;
    }
    if (label.size() > 63) {
      error = quote(text) + " is not a domain (a label is longer than 63 characters)";
      return std::nullopt;
    }
    for (char c : label) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
        error = quote(text) + " is not a domain (only letters, digits, '-' and '_')";
        return std::nullopt;
      }
    }
    if (label.front() == '-' || label.back() == '-') {
      error = quote(text) + " is not a domain (a label starts or ends with '-')";
      return std::nullopt;
    }
    start = end + 1;
  }
  return name;
}

// Relative paths are resolved against the config file's directory.
std::string resolvePath(std::string_view text, const std::filesystem::path& base) {
  std::filesystem::path path(text);
  if (path.is_relative() && !base.empty()) path = base / path;
  std::string normal = path.lexically_normal().string();
  while (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  return normal;
}

std::optional<std::string> checkPath(std::string_view text, std::string& error) {
  if (text.empty()) {
    error = "an empty path";
    return std::nullopt;
  }
  if (text.find('\0') != std::string_view::npos) {
    error = quote(text) + " contains a NUL byte";
    return std::nullopt;
  }
  return std::string(text);
}

// Sections -----------------------------------------------------------------

const toml::table* sectionTable(Section& top, std::string_view name) {
  const toml::node* node = top.find(name);
  if (node == nullptr) return nullptr;
  if (const auto* table = node->as_table()) return table;
  typeError(top, name, *node, "a table ([" + std::string(name) + "])");
  return nullptr;
}

void readRules(Section& section, RulesConfig& rules, const std::filesystem::path& base) {
  const auto dirConverter = fromString<std::string>([&base](std::string_view text, std::string& error) {
    auto checked = checkPath(text, error);
    if (!checked) return checked;
    return std::optional<std::string>(resolvePath(*checked, base));
  });
  readArray<std::string>(section, "dirs", "strings", dirConverter, rules.dirs);
  readArray<std::string>(section, "system_dirs", "strings", dirConverter, rules.systemDirs);
  readBool(section, "strict_binding", rules.strictBinding);
  // 0 is allowed: bindings then last exactly the record's TTL.
  readDuration(section, "binding_grace", Duration(0), std::chrono::hours(24), rules.bindingGrace);
  const auto rangeConverter = fromString<common::IpNetwork>([](std::string_view text, std::string& error) {
    auto network = parseCidr(text, error);
    if (!network) return network;
    if (auto problem = policy::checkOperatorRange(*network)) {
      error = std::move(*problem);
      return std::optional<common::IpNetwork>();
    }
    return network;
  });
  readArray<common::IpNetwork>(section, "internal_cidrs", "strings", rangeConverter, rules.internalCidrs);
  readArray<common::IpNetwork>(section, "public_cidrs", "strings", rangeConverter, rules.publicCidrs);
}

// Reads a resolv.conf: a regular file of at most 64 KiB (never a FIFO or a
// device, which could block or never end); false with `error` set.
bool readSmallFile(const std::string& path, std::string& text, std::string& error) {
  constexpr size_t kMaxBytes = size_t{64} * 1024;
  const auto failed = [&](const std::string& what) {
    error = what + " " + quote(path) + ": " + std::error_code(errno, std::generic_category()).message();
    return false;
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return failed("cannot open");
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat info {};
  if (::fstat(fd, &info) != 0) return failed("cannot stat");
  if (!S_ISREG(info.st_mode)) {
    error = quote(path) + " is not a regular file";
    return false;
  }
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      return failed("cannot read");
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
    if (text.size() > kMaxBytes) {
      error = quote(path) + " is larger than 64 KiB; is it a resolv.conf?";
      return false;
    }
  }
  return true;
}

// dns.upstreams_from: the nameservers of a resolv.conf become the upstreams.
// Read now, so that a SIGHUP picks up a changed file like any other setting.
void readUpstreamsFrom(Section& section, DnsConfig& dns, const std::filesystem::path& base) {
  const toml::node* node = section.find("upstreams_from");
  if (node == nullptr) return;
  const auto* value = node->as_string();
  if (value == nullptr) {
    typeError(section, "upstreams_from", *node, "a string (the path of a resolv.conf)");
    return;
  }
  std::string error;
  const auto checked = checkPath(value->get(), error);
  if (!checked) {
    section.loader().problem("dns.upstreams_from", std::move(error), *node);
    return;
  }
  dns.upstreamsFrom = resolvePath(*checked, base);
  if (!dns.upstreams.empty()) {
    section.loader().problem("dns.upstreams_from",
                             "give either dns.upstreams or dns.upstreams_from, not both (remove one)", *node);
    return;
  }
  std::string text;
  if (!readSmallFile(dns.upstreamsFrom, text, error)) {
    section.loader().problem("dns.upstreams_from",
                             error + " (in the DaemonSet it is the node's resolv.conf, a hostPath mount)",
                             *node);
    return;
  }
  ResolvConf parsed = parseResolvConf(text);
  for (const ResolvConfProblem& problem : parsed.problems) {
    section.loader().problem("dns.upstreams_from",
                             dns.upstreamsFrom + ":" + std::to_string(problem.line) + ": " + problem.message,
                             *node);
  }
  if (parsed.problems.empty() && parsed.nameservers.empty()) {
    section.loader().problem(
        "dns.upstreams_from",
        quote(dns.upstreamsFrom) + " has no \"nameserver ADDRESS\" line; egressd would have no resolver",
        *node);
  }
  dns.upstreams = std::move(parsed.nameservers);
}

void readDns(Section& section, DnsConfig& dns, const std::filesystem::path& base) {
  readBool(section, "enabled", dns.enabled);
  readArray<common::SocketAddress>(section, "listen", "strings",
                                   fromString<common::SocketAddress>(parseListenAddress), dns.listen);
  readArray<common::SocketAddress>(section, "upstreams", "strings",
                                   fromString<common::SocketAddress>(parseUpstreamAddress), dns.upstreams);
  readUpstreamsFrom(section, dns, base);
  readArray<std::string>(section, "cluster_domains", "strings", fromString<std::string>(parseDomain),
                         dns.clusterDomains);
  readArray<common::SocketAddress>(section, "cluster_upstreams", "strings",
                                   fromString<common::SocketAddress>(parseUpstreamAddress),
                                   dns.clusterUpstreams);
  readArray<common::SocketAddress>(section, "intercept", "strings",
                                   fromString<common::SocketAddress>(parseListenAddress), dns.intercept);
  readChoice<DenyRcode>(section, "deny_rcode",
                        {{"NXDOMAIN", DenyRcode::NxDomain}, {"REFUSED", DenyRcode::Refused}}, dns.denyRcode);
  readBool(section, "strip_ech", dns.stripEch);
  readDuration(section, "upstream_timeout", Duration(1), std::chrono::seconds(60), dns.upstreamTimeout);
  readCount(section, "cache_size", 1, 10'000'000, dns.cacheSize);
  readDuration(section, "tcp_idle_timeout", Duration(1), std::chrono::minutes(10), dns.tcpIdleTimeout);
  readCount(section, "max_tcp_clients", 1, 65535, dns.maxTcpClients);
  // 0 turns the guard off; 128 is what an entry of the fixed table holds
  // (dns::TunnelGuard::kMaxBudget).
  readCount(section, "tunnel_guard_names", 0, 128, dns.tunnelGuardNames);
  readDuration(section, "tunnel_guard_window", std::chrono::seconds(1), std::chrono::hours(24),
               dns.tunnelGuardWindow);
  readArray<common::IpNetwork>(section, "proxy_protocol_from", "strings",
                               fromString<common::IpNetwork>(parseCidr), dns.proxyProtocolFrom);
}

void readNfqueue(Section& section, NfqueueConfig& nfqueue) {
  readBool(section, "enabled", nfqueue.enabled);
  readArray<uint16_t>(
      section, "queues", "integers",
      [](const toml::node& node, std::string& error) -> std::optional<uint16_t> {
        const auto* value = node.as_integer();
        if (value == nullptr) {
          error = "expected an integer, got " + typeName(node);
          return std::nullopt;
        }
        if (value->get() < 0 || value->get() > 65535) {
          error = std::to_string(value->get()) + " is out of range (0..65535)";
          return std::nullopt;
        }
        return static_cast<uint16_t>(value->get());
      },
      nfqueue.queues);
  readBool(section, "install_rules", nfqueue.installRules);
  readArray<common::IpNetwork>(section, "protected_cidrs", "strings",
                               fromString<common::IpNetwork>(parseCidr), nfqueue.protectedCidrs);
  readCount(section, "max_held_flows", 1, 10'000'000, nfqueue.maxHeldFlows);
  readDuration(section, "hold_timeout", Duration(1), std::chrono::seconds(60), nfqueue.holdTimeout);
  readCount(section, "queue_maxlen", 1, 1'000'000, nfqueue.queueMaxlen);
  readChoice<KernelGuardMode>(section, "kernel_guard",
                              {{"auto", KernelGuardMode::Auto}, {"off", KernelGuardMode::Off}},
                              nfqueue.kernelGuard);
  readChoice<KernelVerdictMode>(section, "kernel_verdict",
                                {{"auto", KernelVerdictMode::Auto}, {"off", KernelVerdictMode::Off}},
                                nfqueue.kernelVerdict);
}

// control.socket_mode: "0600", "0660", "600". Whoever can connect can read
// every decision (`egressctl watch`) and the rules, so "other" gets nothing;
// the owner (egressd's user, and egressctl run as it) needs read and write;
// execute and the setuid/setgid/sticky bits mean nothing on a socket.
std::optional<uint32_t> parseSocketMode(std::string_view text, std::string& error) {
  const std::string shown = quote(text);
  if (text.size() < 3 || text.size() > 4 ||
      std::any_of(text.begin(), text.end(), [](char c) { return c < '0' || c > '7'; })) {
    error = shown + " is not an octal file mode such as \"0600\"";
    return std::nullopt;
  }
  uint32_t mode = 0;
  for (char c : text) mode = mode * 8 + static_cast<uint32_t>(c - '0');
  if (mode > 0777) {
    error = shown + " sets setuid, setgid or sticky bits; only permission bits (at most 0770) are allowed";
  } else if ((mode & 0007) != 0) {
    error = shown + " gives access to other users; the control socket shows every decision, use 0600 or 0660";
  } else if ((mode & 0600) != 0600) {
    error = shown + " must give the owner read and write (0600)";
  } else if ((mode & 0111) != 0) {
    error = shown + " has execute bits, which mean nothing on a socket; use 0600 or 0660";
  } else {
    return mode;
  }
  return std::nullopt;
}

void readControl(Section& section, ControlConfig& control, const std::filesystem::path& base) {
  if (const toml::node* modeNode = section.find("socket_mode")) {
    if (const auto* value = modeNode->as_string()) {
      std::string error;
      if (const auto mode = parseSocketMode(value->get(), error)) {
        control.socketMode = *mode;
      } else {
        section.loader().problem("control.socket_mode", std::move(error), *modeNode);
      }
    } else {
      typeError(section, "socket_mode", *modeNode, "a string (an octal mode such as \"0600\")");
    }
  }
  const toml::node* node = section.find("socket");
  if (node == nullptr) return;
  const auto* value = node->as_string();
  if (value == nullptr) {
    typeError(section, "socket", *node, "a string (a path)");
    return;
  }
  std::string error;
  auto checked = checkPath(value->get(), error);
  if (!checked) {
    section.loader().problem("control.socket", std::move(error), *node);
    return;
  }
  std::string resolved = resolvePath(*checked, base);
  // sun_path holds the path and its terminating NUL.
  if (resolved.size() >= sizeof(sockaddr_un::sun_path)) {
    section.loader().problem("control.socket",
                             quote(resolved) + " is longer than " +
                                 std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
                                 " bytes, the limit for a Unix socket path",
                             *node);
    return;
  }
  control.socket = std::move(resolved);
}

// proxy.listen: "10.0.0.1:3128", "[fd00::1]:3128", or an address alone
// (port 3128, the port HTTP_PROXY=http://$(EGRESSD_NODE_IP):3128 names).
std::optional<common::SocketAddress> parseProxyListen(std::string_view text, std::string& error) {
  const auto address = common::parseSocketAddress(text, kDefaultProxyPort);
  if (!address) {
    error = quote(text) + " is not an address or address:port" + addressHint(text) +
            " (e.g. \"0.0.0.0:3128\"; brackets around IPv6: \"[::]:3128\")";
    return std::nullopt;
  }
  if (address->port == 0) {
    error = quote(text) + " has port 0; the injected HTTP_PROXY needs a fixed port (3128 by default)";
    return std::nullopt;
  }
  return address;
}

// proxy.threads: a count, or "auto" (kProxyThreadsAuto).
void readProxyThreads(Section& section, uint32_t& out) {
  const toml::node* node = section.find("threads");
  if (node == nullptr) return;
  const std::string range = "1.." + std::to_string(kMaxProxyThreads);
  if (const auto* text = node->as_string()) {
    if (text->get() == "auto") {
      out = kProxyThreadsAuto;
      return;
    }
    section.loader().problem(
        section.path("threads"),
        quote(text->get()) + " is not \"auto\" or a number of threads (" + range + "; e.g. threads = 2)",
        *node);
    return;
  }
  const auto* number = node->as_integer();
  if (number == nullptr) {
    typeError(section, "threads", *node, "\"auto\" or an integer (" + range + ")");
    return;
  }
  if (number->get() < 1 || number->get() > kMaxProxyThreads) {
    section.loader().problem(section.path("threads"),
                             std::to_string(number->get()) + " is out of range (" + range +
                                 "; \"auto\": one per CPU, at most " + std::to_string(kProxyThreadsAutoMax) +
                                 ")",
                             *node);
    return;
  }
  out = static_cast<uint32_t>(number->get());
}

void readProxy(Section& section, ProxyConfig& proxy) {
  readArray<common::SocketAddress>(section, "listen", "strings",
                                   fromString<common::SocketAddress>(parseProxyListen), proxy.listen);
  readCount(section, "max_head_bytes", 1024, int64_t{1024} * 1024, proxy.maxHeadBytes);
  readCount(section, "max_connections", 1, 1'000'000, proxy.maxConnections);
  readDuration(section, "header_timeout", std::chrono::milliseconds(100), std::chrono::minutes(10),
               proxy.headerTimeout);
  readDuration(section, "idle_timeout", std::chrono::seconds(1), std::chrono::hours(24), proxy.idleTimeout);
  readDuration(section, "connect_timeout", std::chrono::milliseconds(100), std::chrono::minutes(5),
               proxy.connectTimeout);
  readArray<common::IpNetwork>(section, "clients", "strings", fromString<common::IpNetwork>(parseCidr),
                               proxy.clients);
  readArray<common::IpNetwork>(section, "proxy_protocol_from", "strings",
                               fromString<common::IpNetwork>(parseCidr), proxy.proxyProtocolFrom);
  readProxyThreads(section, proxy.threads);
}

void readMetrics(Section& section, MetricsConfig& metrics) {
  readBool(section, "enabled", metrics.enabled);
  const toml::node* node = section.find("listen");
  if (node == nullptr) return;
  const auto* value = node->as_string();
  if (value == nullptr) {
    typeError(section, "listen", *node, "a string (address:port)");
    return;
  }
  std::string error;
  if (auto address = parseListenAddress(value->get(), error)) {
    metrics.listen = *address;
  } else {
    section.loader().problem("metrics.listen", std::move(error), *node);
  }
}

void readAttribution(Section& section, AttributionConfig& attribution, const std::filesystem::path& base) {
  const toml::node* node = section.find("map_file");
  if (node == nullptr) return;
  const auto* value = node->as_string();
  if (value == nullptr) {
    typeError(section, "map_file", *node, "a string (the path of the pod map file)");
    return;
  }
  if (value->get().empty()) {
    attribution.mapFile.clear();  // off
    return;
  }
  std::string error;
  const auto checked = checkPath(value->get(), error);
  if (!checked) {
    section.loader().problem("attribution.map_file", std::move(error), *node);
    return;
  }
  // A missing file is fine (the controller writes it once it has listed
  // the pods); egressd watches its folder.
  attribution.mapFile = resolvePath(*checked, base);
}

void readLog(Section& section, LogConfig& log) {
  readChoice<common::LogLevel>(section, "level",
                               {{"debug", common::LogLevel::Debug},
                                {"info", common::LogLevel::Info},
                                {"warn", common::LogLevel::Warn},
                                {"error", common::LogLevel::Error}},
                               log.level);
  readChoice<LogFormat>(section, "format", {{"logfmt", LogFormat::Logfmt}, {"json", LogFormat::Json}},
                        log.format);
}

ConfigLoad loadTable(const toml::table& root, Loader& loader, const std::filesystem::path& base) {
  Config config;
  Section top(loader, &root, "");
  readChoice<Mode>(top, "mode", {{"enforce", Mode::Enforce}, {"audit", Mode::Audit}}, config.mode);

  const auto section = [&](std::string_view name, const auto& read) {
    Section sub(loader, sectionTable(top, name), std::string(name));
    read(sub);
    sub.reportUnknownKeys();
  };
  section("rules", [&](Section& s) { readRules(s, config.rules, base); });
  section("dns", [&](Section& s) { readDns(s, config.dns, base); });
  section("nfqueue", [&](Section& s) { readNfqueue(s, config.nfqueue); });
  section("proxy", [&](Section& s) { readProxy(s, config.proxy); });
  section("control", [&](Section& s) { readControl(s, config.control, base); });
  section("metrics", [&](Section& s) { readMetrics(s, config.metrics); });
  section("attribution", [&](Section& s) { readAttribution(s, config.attribution, base); });
  section("log", [&](Section& s) { readLog(s, config.log); });
  top.reportUnknownKeys();

  // Cross-key checks only on values that parsed, so one typo is one problem.
  if (loader.problems().empty()) {
    for (ConfigProblem& problem : validate(config)) {
      loader.problem(problem.path, std::move(problem.message), loader.positionOf(problem.path));
    }
  }

  ConfigLoad result;
  result.problems = std::move(loader.problems());
  // Problems in file order, like a compiler's.
  std::stable_sort(result.problems.begin(), result.problems.end(),
                   [](const ConfigProblem& a, const ConfigProblem& b) {
                     return std::pair(a.line.value_or(0), a.column.value_or(0)) <
                            std::pair(b.line.value_or(0), b.column.value_or(0));
                   });
  if (result.problems.empty()) {
    for (ConfigProblem& warning : warnings(config)) {
      const auto where = loader.positionOf(warning.path);
      warning.source = loader.source();
      if (where) {
        warning.line = where->line;
        warning.column = where->column;
      }
      result.warnings.push_back(std::move(warning));
    }
    result.config = std::move(config);
  }
  return result;
}

}  // namespace

ConfigLoad loadConfigText(std::string_view text, const std::string& sourceName,
                          const std::string& baseDirectory) {
  Loader loader(sourceName);
  const std::filesystem::path base = baseDirectory.empty() ? std::filesystem::path(sourceName).parent_path()
                                                           : std::filesystem::path(baseDirectory);
  try {
    const toml::table root = toml::parse(text, std::string_view(sourceName));
    return loadTable(root, loader, base);
  } catch (const toml::parse_error& error) {
    loader.problem("", "syntax error: " + std::string(error.description()), regionPosition(error.source()));
  }
  ConfigLoad result;
  result.problems = std::move(loader.problems());
  return result;
}

namespace {
// strerror is not thread-safe; the error category's message is.
std::string errnoText() {
  return std::error_code(errno, std::generic_category()).message();
}
}  // namespace

ConfigLoad loadConfigFile(const std::string& path) {
  const auto fail = [&](std::string message) {
    ConfigLoad result;
    result.problems.push_back({path, "", std::move(message), std::nullopt, std::nullopt});
    return result;
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(std::string("cannot open: ") + errnoText());
  // Closes the descriptor on every return below.
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat info {};
  if (::fstat(fd, &info) != 0) return fail(std::string("cannot stat: ") + errnoText());
  if (!S_ISREG(info.st_mode)) return fail("not a regular file");
  if (static_cast<size_t>(info.st_size) > kMaxConfigBytes) {
    return fail("larger than " + std::to_string(kMaxConfigBytes) + " bytes");
  }
  std::string text;
  char buffer[16384];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(std::string("cannot read: ") + errnoText());
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
    // The file may grow between fstat and read.
    if (text.size() > kMaxConfigBytes)
      return fail("larger than " + std::to_string(kMaxConfigBytes) + " bytes");
  }
  std::error_code ec;
  std::filesystem::path absolute = std::filesystem::absolute(path, ec);
  if (ec) absolute = path;
  return loadConfigText(text, path, absolute.lexically_normal().parent_path().string());
}

}  // namespace config

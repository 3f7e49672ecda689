#include "observe/filter.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <optional>
#include <vector>

#include "common/ip_address.h"
#include "common/strings.h"
#include "common/typo_distance.h"

namespace observe {

namespace filter_detail {

enum class Op : uint8_t {
  Host,
  Net,
  Port,
  Name,
  Sni,
  Verdict,
  Proto,
  Family,
  Dns,
  Proxy,
  Qtype,
  Rcode,
  Reason,
  RuleSet,
  Namespace,  // attribution: the client pod's namespace
  Pod,        // "NS/NAME" of the client pod
  Workload,   // "Kind/NAME" of the client pod
  Not,
  And,
  Or
};
// Either: no qualifier or "src or dst"; Both: "src and dst".
enum class Dir : uint8_t { Either, Src, Dst, Both };
enum class NameKind : uint8_t { Exact, Wildcard, Any };
// Reason: the whole word, or a prefix ("sni_*"). Namespace/Pod/Workload
// patterns too ("web-*").
enum class ReasonKind : uint8_t { Exact, Prefix };

// One node of the compiled filter. Addresses live in the IPv6 space with
// IPv4 as ::ffff:a.b.c.d (prefix + 96), so that an IPv4 address and its
// IPv4-mapped form are the same host, as common::IpAddress::unmapped() says.
struct Node {
  Op op = Op::Dns;
  Dir dir = Dir::Either;
  uint8_t value =
      0;  // Verdict: EventVerdict; Proto: number; Family: 4/6; Name/Sni: NameKind; Reason: ReasonKind
  uint8_t prefix = 0;     // Host/Net: bits in the mapped IPv6 space
  bool v4 = false;        // Host/Net: written as IPv4 (for the normalized text)
  uint16_t portLow = 0;   // Port; Qtype/Rcode: the value
  uint16_t portHigh = 0;  // Port
  uint32_t first = 0;  // And/Or: index into children; Name/Sni/RuleSet/Reason: offset in strings; Not: child
  uint32_t count = 0;  // And/Or: number of children; Name/Sni/RuleSet/Reason: length
  std::array<uint8_t, 16> address{};
};

struct ProgramData {
  std::vector<Node> nodes;
  std::vector<uint32_t> children;
  std::string strings;  // name patterns (lower case), rule set ids and reasons
  uint32_t root = 0;
};

}  // namespace filter_detail

struct Filter::Program : filter_detail::ProgramData {};

namespace {

using filter_detail::Dir;
using filter_detail::NameKind;
using filter_detail::Node;
using filter_detail::Op;
using filter_detail::ReasonKind;
using Program = filter_detail::ProgramData;

constexpr uint8_t kProtoIcmp = 1;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kProtoIcmp6 = 58;
constexpr std::array<uint8_t, 12> kMappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

struct Named {
  std::string_view name;
  uint16_t value;
};

// Port names for `port NAME`, as tcpdump takes them from /etc/services
// (same names and numbers; the observe tests compare them with the
// system's file), plus "dns" for 53. Built in, so that a filter means the
// same on every machine and parsing never reads a file.
constexpr Named kPortNames[] = {
    {"ftp", 21},          {"ssh", 22},          {"telnet", 23},  {"smtp", 25},        {"domain", 53},
    {"dns", 53},          {"http", 80},         {"www", 80},     {"pop3", 110},       {"ntp", 123},
    {"imap", 143},        {"imap2", 143},       {"snmp", 161},   {"bgp", 179},        {"ldap", 389},
    {"https", 443},       {"submissions", 465}, {"syslog", 514}, {"submission", 587}, {"ldaps", 636},
    {"domain-s", 853},    {"rsync", 873},       {"imaps", 993},  {"pop3s", 995},      {"mysql", 3306},
    {"postgresql", 5432}, {"amqps", 5671},      {"amqp", 5672},  {"redis", 6379},     {"http-alt", 8080},
    {"git", 9418},
};

// DNS types by their IANA mnemonic (RFC 1035 3.2.2, RFC 3596, RFC 9460, ...).
constexpr Named kQtypeNames[] = {
    {"A", 1},       {"NS", 2},    {"CNAME", 5},  {"SOA", 6},    {"NULL", 10},  {"PTR", 12},  {"HINFO", 13},
    {"MX", 15},     {"TXT", 16},  {"AAAA", 28},  {"SRV", 33},   {"NAPTR", 35}, {"DS", 43},   {"RRSIG", 46},
    {"DNSKEY", 48}, {"SVCB", 64}, {"HTTPS", 65}, {"AXFR", 252}, {"IXFR", 251}, {"ANY", 255}, {"CAA", 257},
};

// DNS response codes (RFC 1035 4.1.1, RFC 2136 2.2, RFC 6891 9).
constexpr Named kRcodeNames[] = {
    {"NOERROR", 0},  {"FORMERR", 1}, {"SERVFAIL", 2}, {"NXDOMAIN", 3}, {"NOTIMP", 4},   {"REFUSED", 5},
    {"YXDOMAIN", 6}, {"YXRRSET", 7}, {"NXRRSET", 8},  {"NOTAUTH", 9},  {"NOTZONE", 10}, {"BADVERS", 16},
};

template <size_t N>
std::optional<uint16_t> lookupName(const Named (&table)[N], std::string_view word) noexcept {
  for (const Named& entry : table) {
    if (common::equalsIgnoreCase(entry.name, word)) return entry.value;
  }
  return std::nullopt;
}

template <size_t N>
std::string_view nameOf(const Named (&table)[N], uint16_t value) noexcept {
  for (const Named& entry : table) {
    if (entry.value == value) return entry.name;
  }
  return {};
}

// ---------------------------------------------------------------- matching

std::array<uint8_t, 16> mappedBytes(const common::IpAddress& ip) noexcept {
  if (ip.family == common::IpFamily::V6) return ip.bytes;
  std::array<uint8_t, 16> out{};
  std::memcpy(out.data(), kMappedPrefix.data(), kMappedPrefix.size());
  std::memcpy(out.data() + 12, ip.bytes.data(), 4);
  return out;
}

bool isMapped(const std::array<uint8_t, 16>& bytes) noexcept {
  return std::memcmp(bytes.data(), kMappedPrefix.data(), kMappedPrefix.size()) == 0;
}

bool prefixMatches(const std::array<uint8_t, 16>& address, const std::array<uint8_t, 16>& network,
                   unsigned bits) noexcept {
  const size_t full = bits / 8;
  if (std::memcmp(address.data(), network.data(), full) != 0) return false;
  const unsigned rest = bits % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<uint8_t>(0xffU << (8 - rest));
  return (address[full] & mask) == (network[full] & mask);
}

// The event, prepared once per matches() call.
struct Subject {
  const Event& event;
  std::array<uint8_t, 16> src;
  std::array<uint8_t, 16> dst;
  std::string_view name;  // without a trailing dot
};

bool nameEquals(std::string_view name, std::string_view pattern) noexcept {
  return common::equalsIgnoreCase(name, pattern);
}

bool ruleSetMatches(std::string_view list, std::string_view id) noexcept {
  // "ns/*" matches every rule set of the namespace.
  const bool wildcard = id.size() >= 2 && id.substr(id.size() - 2) == "/*";
  const std::string_view nsPrefix = wildcard ? id.substr(0, id.size() - 1) : std::string_view();
  while (!list.empty()) {
    const size_t comma = list.find(',');
    const std::string_view item = list.substr(0, comma);
    if (wildcard) {
      if (item.size() > nsPrefix.size() &&
          common::equalsIgnoreCase(item.substr(0, nsPrefix.size()), nsPrefix))
        return true;
    } else if (common::equalsIgnoreCase(item, id)) {
      return true;
    }
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

// Attribution patterns: the whole text, or with ReasonKind::Prefix a
// prefix (the pattern's trailing '*' dropped). Kubernetes names are lower
// case; kinds are compared without case ("deployment/web").
bool textMatches(std::string_view text, std::string_view pattern, bool prefix) noexcept {
  if (prefix) return text.size() >= pattern.size() && text.substr(0, pattern.size()) == pattern;
  return text == pattern;
}

// "NS/NAME" against the event's namespace and pod (no joined copy).
bool podMatches(const Event& event, std::string_view pattern, bool prefix) noexcept {
  if (!event.client.known()) return false;
  const size_t slash = pattern.find('/');
  if (slash == std::string_view::npos) return false;
  return event.namespaceView() == pattern.substr(0, slash) &&
         textMatches(event.podView(), pattern.substr(slash + 1), prefix);
}

// "Kind/NAME" against the event's workload.
bool workloadMatches(const Event& event, std::string_view pattern, bool prefix) noexcept {
  const std::string_view workload = event.workloadView();
  const size_t slash = pattern.find('/');
  const size_t have = workload.find('/');
  if (slash == std::string_view::npos || have == std::string_view::npos) return false;
  return common::equalsIgnoreCase(workload.substr(0, have), pattern.substr(0, slash)) &&
         textMatches(workload.substr(have + 1), pattern.substr(slash + 1), prefix);
}

bool directional(Dir dir, bool srcMatch, bool dstMatch) noexcept {
  switch (dir) {
    case Dir::Either:
      return srcMatch || dstMatch;
    case Dir::Src:
      return srcMatch;
    case Dir::Dst:
      return dstMatch;
    case Dir::Both:
      return srcMatch && dstMatch;
  }
  return false;
}

// Recursion depth is bounded by kMaxFilterDepth (the parser refuses deeper
// nesting; and/or chains are flat n-ary nodes).
bool evaluate(const Program& program, uint32_t index, const Subject& s) noexcept {
  const Node& node = program.nodes[index];
  switch (node.op) {
    case Op::Host:
    case Op::Net:
      return directional(node.dir, prefixMatches(s.src, node.address, node.prefix),
                         prefixMatches(s.dst, node.address, node.prefix));
    case Op::Port: {
      const auto in = [&](uint16_t port) { return port >= node.portLow && port <= node.portHigh; };
      return directional(node.dir, in(s.event.srcPort), in(s.event.dstPort));
    }
    case Op::Sni:
      // The name the client sent in its TLS ClientHello (or QUIC Initial),
      // not one from a Host header, a DNS binding or a query.
      if (s.event.kind != EventKind::Verdict || (s.event.nameSource != "sni" && s.event.nameSource != "quic"))
        return false;
      [[fallthrough]];
    case Op::Name: {
      if (s.name.empty()) return false;
      const std::string_view pattern(program.strings.data() + node.first, node.count);
      switch (static_cast<NameKind>(node.value)) {
        case NameKind::Any:
          return true;
        case NameKind::Exact:
          return nameEquals(s.name, pattern);
        case NameKind::Wildcard:  // pattern is ".example.com": one or more labels in front
          return s.name.size() > pattern.size() &&
                 nameEquals(s.name.substr(s.name.size() - pattern.size()), pattern);
      }
      return false;
    }
    case Op::Qtype:
      return s.event.kind == EventKind::Dns && s.event.qtype == node.portLow;
    case Op::Rcode:
      return s.event.kind == EventKind::Dns && s.event.rcode == node.portLow;
    case Op::Reason: {
      const std::string_view reason(program.strings.data() + node.first, node.count);
      if (static_cast<ReasonKind>(node.value) == ReasonKind::Prefix) {
        return s.event.reason.size() >= reason.size() &&
               common::equalsIgnoreCase(s.event.reason.substr(0, reason.size()), reason);
      }
      return common::equalsIgnoreCase(s.event.reason, reason);
    }
    case Op::Verdict:
      return static_cast<uint8_t>(s.event.verdict) == node.value;
    case Op::Proto:
      return s.event.protocol == node.value;
    case Op::Family:
      return node.value == 4 ? (isMapped(s.src) || isMapped(s.dst)) : (!isMapped(s.src) || !isMapped(s.dst));
    case Op::Dns:
      return s.event.kind == EventKind::Dns;
    case Op::Proxy:
      return s.event.kind == EventKind::Proxy;
    case Op::RuleSet:
      return ruleSetMatches(s.event.ruleSetsView(),
                            std::string_view(program.strings.data() + node.first, node.count));
    case Op::Namespace:
    case Op::Pod:
    case Op::Workload: {
      const std::string_view pattern(program.strings.data() + node.first, node.count);
      const bool prefix = static_cast<ReasonKind>(node.value) == ReasonKind::Prefix;
      if (node.op == Op::Namespace) {
        return s.event.client.known() && textMatches(s.event.namespaceView(), pattern, prefix);
      }
      return node.op == Op::Pod ? podMatches(s.event, pattern, prefix)
                                : workloadMatches(s.event, pattern, prefix);
    }
    case Op::Not:
      return !evaluate(program, node.first, s);
    case Op::And:
      for (uint32_t i = 0; i < node.count; ++i) {
        if (!evaluate(program, program.children[node.first + i], s)) return false;
      }
      return true;
    case Op::Or:
      for (uint32_t i = 0; i < node.count; ++i) {
        if (evaluate(program, program.children[node.first + i], s)) return true;
      }
      return false;
  }
  return false;
}

// ---------------------------------------------------------------- lexing

enum class Tok : uint8_t { Word, LParen, RParen, Not, And, Or, End };

struct Token {
  Tok kind = Tok::End;
  size_t offset = 0;
  size_t length = 0;
  std::string_view text;
};

struct ParseFailure {
  FilterError error;
};

[[noreturn]] void fail(size_t offset, size_t length, std::string message) {
  throw ParseFailure{FilterError{offset, length, std::move(message)}};
}

[[noreturn]] void fail(const Token& token, std::string message) {
  fail(token.offset, token.length, std::move(message));
}

// 'text' for messages: long tokens cut, anything unprintable escaped.
std::string quote(std::string_view text) {
  constexpr size_t kMaxShown = 40;
  std::string out = "'";
  const bool cut = text.size() > kMaxShown;
  if (cut) text = text.substr(0, kMaxShown - 3);
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte >= 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else {
      out += c;
    }
  }
  if (cut) out += "...";
  out += "'";
  return out;
}

std::string describe(const Token& token) {
  switch (token.kind) {
    case Tok::End:
      return "end of filter";
    default:
      return quote(token.text);
  }
}

bool isSpace(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}
bool isOperatorChar(char c) noexcept {
  return c == '(' || c == ')' || c == '!' || c == '&' || c == '|';
}

std::vector<Token> tokenize(std::string_view text) {
  std::vector<Token> tokens;
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    const auto byte = static_cast<unsigned char>(c);
    if (isSpace(c)) {
      ++i;
      continue;
    }
    if (byte >= 0x80)
      fail(i, 1, "non-ASCII byte " + quote(text.substr(i, 1)) + " (write names as A-labels, xn--...)");
    if (byte < 0x20 || byte == 0x7f) fail(i, 1, "invalid character " + quote(text.substr(i, 1)));
    Token token;
    token.offset = i;
    if (c == '(' || c == ')' || c == '!') {
      token.kind = c == '(' ? Tok::LParen : c == ')' ? Tok::RParen : Tok::Not;
      token.length = 1;
    } else if (c == '&' || c == '|') {
      if (i + 1 >= text.size() || text[i + 1] != c) {
        fail(i, 1,
             std::string("unexpected ") + quote(text.substr(i, 1)) + " (did you mean '" + c + c + "'?)");
      }
      token.kind = c == '&' ? Tok::And : Tok::Or;
      token.length = 2;
    } else {
      size_t end = i;
      while (end < text.size()) {
        const auto b = static_cast<unsigned char>(text[end]);
        if (isSpace(text[end]) || isOperatorChar(text[end]) || b < 0x20 || b >= 0x7f) break;
        ++end;
      }
      token.length = end - i;
      const std::string_view word = text.substr(i, token.length);
      token.kind = common::equalsIgnoreCase(word, "and")   ? Tok::And
                   : common::equalsIgnoreCase(word, "or")  ? Tok::Or
                   : common::equalsIgnoreCase(word, "not") ? Tok::Not
                                                           : Tok::Word;
    }
    token.text = text.substr(i, token.length);
    tokens.push_back(token);
    i += token.length;
  }
  Token end;
  end.offset = text.size();
  tokens.push_back(end);
  return tokens;
}

// ---------------------------------------------------------------- parsing

enum class Kind : uint8_t {
  None,
  Host,
  Net,
  Port,
  Name,
  Sni,
  Verdict,
  Proto,
  Qtype,
  Rcode,
  Reason,
  RuleSet,
  Namespace,
  Pod,
  Workload
};

constexpr std::string_view kKeywords[] = {
    "host", "net",   "port", "portrange", "name",    "sni",       "verdict", "proto",   "tcp",    "udp",
    "icmp", "icmp6", "ip",   "ip6",       "dns",     "proxy",     "qtype",   "rcode",   "reason", "src",
    "dst",  "and",   "or",   "not",       "ruleset", "namespace", "pod",     "workload"};

std::string_view closestKeyword(std::string_view word) {
  if (word.size() > 12) return {};
  std::string_view best;
  size_t bestDistance = word.size() <= 4 ? 2 : 3;  // must be below this
  for (std::string_view keyword : kKeywords) {
    const size_t distance = common::typoDistance(word, keyword);
    if (distance < bestDistance && distance < keyword.size()) {
      best = keyword;
      bestDistance = distance;
    }
  }
  return best;
}

std::optional<uint64_t> digits(std::string_view text) noexcept {
  if (text.empty() || text.size() > 12) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

std::string_view stripBrackets(std::string_view text) noexcept {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') return text.substr(1, text.size() - 2);
  return text;
}

bool hasLetter(std::string_view text) noexcept {
  return std::any_of(text.begin(), text.end(), [](char c) {
    const char l = common::asciiLower(c);
    return l >= 'g' && l <= 'z';  // a-f are hex digits of IPv6 addresses
  });
}

void setAddress(Node& node, const common::IpAddress& ip, unsigned prefixLength) {
  node.v4 = ip.family == common::IpFamily::V4;
  node.address = mappedBytes(ip);
  node.prefix = static_cast<uint8_t>(node.v4 ? prefixLength + 96 : prefixLength);
}

class Parser {
 public:
  Parser(std::string_view text, Program& program) : text_(text), program_(program), tokens_(tokenize(text)) {}

  bool empty() const { return tokens_.front().kind == Tok::End; }

  uint32_t parse() {
    const uint32_t root = parseOr();
    if (peek().kind != Tok::End) {
      // parseAnd() takes every word, '(' and '!' by juxtaposition, so only a
      // ')' without its '(' can be left over.
      if (peek().kind == Tok::RParen) fail(peek(), "unbalanced ')'");
      fail(peek(), "trailing input " + describe(peek()));
    }
    return root;
  }

 private:
  const Token& peek(size_t ahead = 0) const { return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)]; }
  const Token& next() {
    const Token& token = tokens_[pos_];
    if (pos_ + 1 < tokens_.size()) ++pos_;
    return token;
  }

  uint32_t add(const Node& node) {
    program_.nodes.push_back(node);
    return static_cast<uint32_t>(program_.nodes.size() - 1);
  }

  uint32_t addList(Op op, const std::vector<uint32_t>& items) {
    if (items.size() == 1) return items.front();
    Node node;
    node.op = op;
    node.first = static_cast<uint32_t>(program_.children.size());
    node.count = static_cast<uint32_t>(items.size());
    program_.children.insert(program_.children.end(), items.begin(), items.end());
    return add(node);
  }

  uint32_t addString(Node node, std::string_view text) {
    node.first = static_cast<uint32_t>(program_.strings.size());
    node.count = static_cast<uint32_t>(text.size());
    program_.strings.append(text);
    return add(node);
  }

  uint32_t parseOr() {
    std::vector<uint32_t> items{parseAnd()};
    while (peek().kind == Tok::Or) {
      previous_ = next();
      items.push_back(parseAnd());
    }
    return addList(Op::Or, items);
  }

  uint32_t parseAnd() {
    std::vector<uint32_t> items{parseUnary()};
    for (;;) {
      const Tok kind = peek().kind;
      if (kind == Tok::And) {
        previous_ = next();
      } else if (kind != Tok::Word && kind != Tok::LParen && kind != Tok::Not) {
        break;
      }
      items.push_back(parseUnary());
    }
    return addList(Op::And, items);
  }

  uint32_t parseUnary() {
    const Token& token = peek();
    // Parentheses and "not" nest; and/or chains are flat.
    if ((token.kind == Tok::Not || token.kind == Tok::LParen) && depth_ >= kMaxFilterDepth) {
      fail(token, "filter nested deeper than " + std::to_string(kMaxFilterDepth) + " levels");
    }
    switch (token.kind) {
      case Tok::Not: {
        previous_ = next();
        ++depth_;
        Node node;
        node.op = Op::Not;
        node.first = parseUnary();
        --depth_;
        return add(node);
      }
      case Tok::LParen: {
        const Token open = next();
        previous_ = open;
        ++depth_;
        ++openParens_;
        const uint32_t inner = parseOr();
        if (peek().kind != Tok::RParen) fail(open, "unbalanced '(' (no matching ')')");
        previous_ = next();
        --openParens_;
        --depth_;
        return inner;
      }
      case Tok::Word:
        return parsePrimitive();
      case Tok::RParen:
        if (openParens_ == 0) fail(token, "unbalanced ')'");
        [[fallthrough]];
      case Tok::And:
      case Tok::Or:
      case Tok::End:
        if (previous_.kind == Tok::End) {
          fail(token,
               "expected a filter primitive (host, net, port, name, verdict, ...), got " + describe(token));
        }
        fail(token,
             "expected a filter primitive after " + quote(previous_.text) + ", got " + describe(token));
    }
    fail(token, "unexpected " + describe(token));
  }

  // After an explicit and/or/not, a bare value repeats the previous
  // primitive's kind, as in tcpdump: "port 80 or 443".
  bool shorthandAllowed() const {
    return previous_.kind == Tok::And || previous_.kind == Tok::Or || previous_.kind == Tok::Not;
  }

  // Whether a bare word after and/or/not is meant as another value of the
  // previous kind ("port 80 or 443") rather than a mistyped keyword
  // ("port 80 or hots 10.0.0.1", which should say "unknown keyword").
  static bool looksLikeValueOf(Kind kind, std::string_view word) {
    const bool digit = !word.empty() && word[0] >= '0' && word[0] <= '9';
    switch (kind) {
      case Kind::None:
        return false;
      case Kind::Port:
        return digit || lookupName(kPortNames, word).has_value();
      case Kind::Qtype:
        return digit || lookupName(kQtypeNames, word).has_value() || isTypeN(word);
      case Kind::Rcode:
        return digit || lookupName(kRcodeNames, word).has_value();
      case Kind::Reason:
        // Reasons are snake_case ("sni_*"); a plain word that is close to a
        // keyword is read as a (mistyped) keyword.
        return word.find_first_of("_*") != std::string_view::npos ||
               (!isKeyword(word) && closestKeyword(word).empty());
      case Kind::Host:
      case Kind::Net:
        return digit || word.find(':') != std::string_view::npos || word.front() == '[';
      case Kind::Name:
      case Kind::Sni:
        return word.find('.') != std::string_view::npos || word.find('*') != std::string_view::npos;
      case Kind::RuleSet:
      case Kind::Pod:
      case Kind::Workload:
        return word.find('/') != std::string_view::npos;
      case Kind::Namespace:
        // A namespace looks like any word: only one that is no keyword and
        // not close to one ("namespace a or b", but "... or hots x" errs).
        return !isKeyword(word) && closestKeyword(word).empty();
      case Kind::Verdict:
      case Kind::Proto:
        // "verdict deny or mabye" says what verdict expects; "verdict deny
        // or hots 10.0.0.1" is a mistyped keyword.
        return closestKeyword(word).empty();
    }
    return false;
  }

  static bool isKeyword(std::string_view word) {
    return std::any_of(std::begin(kKeywords), std::end(kKeywords),
                       [&](std::string_view k) { return common::equalsIgnoreCase(word, k); });
  }

  uint32_t parsePrimitive() {
    const bool shorthand = shorthandAllowed();
    const Token word = next();
    previous_ = word;
    const auto is = [&](std::string_view keyword) { return common::equalsIgnoreCase(word.text, keyword); };

    if (is("src") || is("dst")) return parseQualified(word, is("src") ? Dir::Src : Dir::Dst);
    if (is("host")) return parseHost(word, Dir::Either, value(word, "an IPv4 or IPv6 address"));
    if (is("net"))
      return parseNet(word, Dir::Either, value(word, "a network like 10.0.0.0/8 or 2001:db8::/32"));
    if (is("port") || is("portrange")) {
      return parsePort(word, Dir::Either, value(word, "a port number 1..65535 or a range N-M"));
    }
    if (is("name")) return parseName(word, value(word, "a name like api.example.com or *.example.com"));
    if (is("sni")) {
      return parseName(word, value(word, "a name like api.example.com or *.example.com"), Op::Sni);
    }
    if (is("qtype")) return parseQtype(word, value(word, "a DNS type like A, AAAA, TXT or a number"));
    if (is("rcode")) return parseRcode(word, value(word, "a DNS rcode like NOERROR, NXDOMAIN or a number"));
    if (is("reason")) return parseReason(word, value(word, "a reason like not_allowed or sni_*"));
    if (is("verdict")) return parseVerdict(word, value(word, "allow, deny or audit"));
    if (is("proto")) return parseProto(word, value(word, "tcp, udp, icmp, icmp6 or a protocol number"));
    if (is("ruleset")) return parseRuleSet(word, value(word, "a rule set id NAMESPACE/NAME"));
    if (is("namespace")) {
      return parseAttribution(word, value(word, "a namespace like team-a (or team-*)"), Kind::Namespace);
    }
    if (is("pod"))
      return parseAttribution(word, value(word, "a pod NAMESPACE/NAME (or NAMESPACE/web-*)"), Kind::Pod);
    if (is("workload")) {
      return parseAttribution(word, value(word, "a workload KIND/NAME like Deployment/web"), Kind::Workload);
    }
    if (is("tcp")) return addProto(kProtoTcp);
    if (is("udp")) return addProto(kProtoUdp);
    if (is("icmp")) return addProto(kProtoIcmp);
    if (is("icmp6") || is("icmpv6")) return addProto(kProtoIcmp6);
    if (is("ip") || is("ip6")) {
      Node node;
      node.op = Op::Family;
      node.value = is("ip") ? 4 : 6;
      return add(node);
    }
    if (is("dns")) {
      Node node;
      node.op = Op::Dns;
      return add(node);
    }
    if (is("proxy")) {
      Node node;
      node.op = Op::Proxy;
      return add(node);
    }

    if (shorthand && looksLikeValueOf(last_, word.text))
      return parseValueOf(last_, lastDir_, lastKeyword_, word);
    // A bare address or network is a host or net, as in tcpdump.
    const std::string_view bare = stripBrackets(word.text);
    if (common::parseIpAddress(bare)) return parseHost(word, Dir::Either, word);
    if (bare.find('/') != std::string_view::npos && common::parseIpNetwork(bare).network) {
      return parseNet(word, Dir::Either, word);
    }
    if (digits(word.text)) {
      fail(word, "unexpected number " + quote(word.text) + " (write 'port " + std::string(word.text) + "')");
    }
    std::string message = "unknown keyword " + quote(word.text);
    const std::string_view suggestion = closestKeyword(word.text);
    if (!suggestion.empty()) message += " (did you mean '" + std::string(suggestion) + "'?)";
    fail(word, std::move(message));
  }

  // src/dst [or|and src/dst] (host|net|port|portrange) VALUE, or src/dst ADDRESS.
  uint32_t parseQualified(const Token& qualifier, Dir dir) {
    const std::string_view other = dir == Dir::Src ? "dst" : "src";
    if ((peek().kind == Tok::Or || peek().kind == Tok::And) && peek(1).kind == Tok::Word &&
        common::equalsIgnoreCase(peek(1).text, other)) {
      dir = peek().kind == Tok::Or ? Dir::Either : Dir::Both;
      next();
      previous_ = next();
    }
    const Token& token = peek();
    if (token.kind != Tok::Word) {
      fail(token, "expected host, net or port after " + quote(previous_.text) + ", got " + describe(token));
    }
    const auto is = [&](std::string_view keyword) { return common::equalsIgnoreCase(token.text, keyword); };
    if (is("host") || is("net") || is("port") || is("portrange")) {
      const Token kind = next();
      previous_ = kind;
      if (is("host")) return parseHost(kind, dir, value(kind, "an IPv4 or IPv6 address"));
      if (is("net")) return parseNet(kind, dir, value(kind, "a network like 10.0.0.0/8 or 2001:db8::/32"));
      return parsePort(kind, dir, value(kind, "a port number 1..65535 or a range N-M"));
    }
    const std::string_view bare = stripBrackets(token.text);
    if (common::parseIpAddress(bare)) return parseHost(qualifier, dir, next());
    if (bare.find('/') != std::string_view::npos && common::parseIpNetwork(bare).network) {
      return parseNet(qualifier, dir, next());
    }
    if (isKeyword(token.text)) {
      fail(token, quote(qualifier.text) + " applies to host, net and port, not " + quote(token.text));
    }
    fail(token, "expected host, net or port after " + quote(previous_.text) + ", got " + describe(token));
  }

  // The token after a keyword that needs a value.
  Token value(const Token& keyword, std::string_view expected) {
    const Token& token = peek();
    if (token.kind != Tok::Word) {
      fail(token, "expected " + std::string(expected) + " after " + quote(keyword.text) + ", got " +
                      describe(token));
    }
    previous_ = next();
    return token;
  }

  void remember(Kind kind, Dir dir, const Token& keyword) {
    last_ = kind;
    lastDir_ = dir;
    lastKeyword_ = keyword;
  }

  uint32_t parseValueOf(Kind kind, Dir dir, const Token& keyword, const Token& word) {
    switch (kind) {
      case Kind::Host:
        return parseHost(keyword, dir, word);
      case Kind::Net:
        return parseNet(keyword, dir, word);
      case Kind::Port:
        return parsePort(keyword, dir, word);
      case Kind::Name:
        return parseName(keyword, word);
      case Kind::Sni:
        return parseName(keyword, word, Op::Sni);
      case Kind::Qtype:
        return parseQtype(keyword, word);
      case Kind::Rcode:
        return parseRcode(keyword, word);
      case Kind::Reason:
        return parseReason(keyword, word);
      case Kind::Verdict:
        return parseVerdict(keyword, word);
      case Kind::Proto:
        return parseProto(keyword, word);
      case Kind::RuleSet:
        return parseRuleSet(keyword, word);
      case Kind::Namespace:
      case Kind::Pod:
      case Kind::Workload:
        return parseAttribution(keyword, word, kind);
      case Kind::None:
        break;
    }
    fail(word, "unknown keyword " + quote(word.text));
  }

  uint32_t parseHost(const Token& keyword, Dir dir, const Token& word) {
    const std::string_view text = stripBrackets(word.text);
    const auto ip = common::parseIpAddress(text);
    if (!ip) {
      if (text.find('/') != std::string_view::npos && common::parseIpNetwork(text).network) {
        fail(word, quote(word.text) + " is a network; write 'net " + std::string(word.text) + "'");
      }
      if (hasLetter(text)) {
        fail(word, quote(word.text) + " is not an IP address ('host' takes addresses; names go with 'name " +
                       std::string(word.text) + "')");
      }
      fail(word,
           "expected an IPv4 or IPv6 address after " + quote(keyword.text) + ", got " + quote(word.text));
    }
    Node node;
    node.op = Op::Host;
    node.dir = dir;
    setAddress(node, *ip, ip->bitLength());
    remember(Kind::Host, dir, keyword);
    return add(node);
  }

  uint32_t parseNet(const Token& keyword, Dir dir, const Token& word) {
    const std::string_view text = stripBrackets(word.text);
    Node node;
    node.op = Op::Net;
    node.dir = dir;
    const size_t slash = text.find('/');
    if (slash == std::string_view::npos) {
      const auto ip = common::parseIpAddress(text);
      if (!ip) {
        fail(word, "expected a network like 10.0.0.0/8 or 2001:db8::/32 after " + quote(keyword.text) +
                       ", got " + quote(word.text));
      }
      setAddress(node, *ip, ip->bitLength());
    } else {
      const common::NetworkParse parsed = common::parseIpNetwork(text);
      if (!parsed.network) {
        const auto ip = common::parseIpAddress(text.substr(0, slash));
        if (!ip) {
          fail(word, "expected a network like 10.0.0.0/8 or 2001:db8::/32 after " + quote(keyword.text) +
                         ", got " + quote(word.text));
        }
        const size_t prefixOffset = word.offset + (word.text.size() - text.size()) / 2 + slash + 1;
        const std::string_view prefixText = text.substr(slash + 1);
        const auto bits = digits(prefixText);
        if (parsed.error != common::NetworkParseError::HostBitsSet || !bits) {
          fail(prefixOffset, prefixText.size(),
               "bad prefix length " + quote(prefixText) + " in " + quote(word.text) + " (0.." +
                   std::to_string(ip->bitLength()) + " for " +
                   (ip->family == common::IpFamily::V4 ? "IPv4" : "IPv6") + ")");
        }
        // Host bits set: say which network was probably meant.
        common::IpAddress masked = *ip;
        for (unsigned bit = static_cast<unsigned>(*bits); bit < ip->bitLength(); ++bit) {
          masked.bytes[bit / 8] = static_cast<uint8_t>(masked.bytes[bit / 8] & ~(0x80U >> (bit % 8)));
        }
        fail(word, quote(word.text) + " has host bits set (did you mean '" + masked.toString() + "/" +
                       std::to_string(*bits) + "'?)");
      }
      setAddress(node, parsed.network->address, parsed.network->prefixLength);
    }
    remember(Kind::Net, dir, keyword);
    return add(node);
  }

  uint16_t portNumber(const Token& word, size_t at, std::string_view text) {
    const auto number = digits(text);
    if (!number) {
      fail(word,
           "expected a port number 1..65535, a range N-M or a service name (https, http, domain, ssh, "
           "...), got " +
               quote(word.text));
    }
    if (*number < 1 || *number > 65535) {
      fail(word.offset + at, text.size(), "port " + std::string(text) + " out of range 1..65535");
    }
    return static_cast<uint16_t>(*number);
  }

  uint32_t parsePort(const Token& keyword, Dir dir, const Token& word) {
    Node node;
    node.op = Op::Port;
    node.dir = dir;
    const size_t dash = word.text.find('-');
    if (const auto named = lookupName(kPortNames, word.text)) {
      // A service name ("https", "http-alt"), checked before the '-' of a range.
      node.portLow = node.portHigh = *named;
    } else if (dash == std::string_view::npos) {
      node.portLow = node.portHigh = portNumber(word, 0, word.text);
    } else {
      node.portLow = portNumber(word, 0, word.text.substr(0, dash));
      node.portHigh = portNumber(word, dash + 1, word.text.substr(dash + 1));
      if (node.portLow > node.portHigh) {
        fail(word, "port range " + quote(word.text) + " is reversed (write " + std::to_string(node.portHigh) +
                       "-" + std::to_string(node.portLow) + ")");
      }
    }
    remember(Kind::Port, dir, keyword);
    return add(node);
  }

  // Same rules as rule set names (docs/rules.md): case-insensitive, trailing dot
  // ignored, '*' only as the whole first label, labels 1..63 bytes.
  uint32_t parseName(const Token& keyword, const Token& word, Op op = Op::Name) {
    std::string name = common::toLowerAscii(word.text);
    if (name.size() > 1 && name.back() == '.') name.pop_back();
    Node node;
    node.op = op;
    remember(op == Op::Sni ? Kind::Sni : Kind::Name, Dir::Either, keyword);
    if (name == "*") {
      node.value = static_cast<uint8_t>(NameKind::Any);
      return addString(node, "");
    }
    std::string_view rest = name;
    node.value = static_cast<uint8_t>(NameKind::Exact);
    if (rest.size() >= 2 && rest[0] == '*' && rest[1] == '.') {
      node.value = static_cast<uint8_t>(NameKind::Wildcard);
      rest.remove_prefix(2);
    }
    if (rest.size() > kMaxEventName) {
      fail(word, "name " + quote(word.text) + " is longer than " + std::to_string(kMaxEventName) + " bytes");
    }
    size_t labelStart = 0;
    const size_t base = word.offset + (name.size() - rest.size());
    for (size_t i = 0; i <= rest.size(); ++i) {
      if (i == rest.size() || rest[i] == '.') {
        const size_t labelLength = i - labelStart;
        if (labelLength == 0)
          fail(base + i, i < rest.size() ? 1 : 0, "empty label in name " + quote(word.text));
        if (labelLength > 63) {
          fail(base + labelStart, labelLength, "label longer than 63 bytes in name " + quote(word.text));
        }
        labelStart = i + 1;
        continue;
      }
      const char c = rest[i];
      if (c == '*') {
        fail(base + i, 1,
             "'*' must be the whole first label, as in '*.example.com' (in " + quote(word.text) + ")");
      }
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
        fail(base + i, 1, "invalid character " + quote(rest.substr(i, 1)) + " in name " + quote(word.text));
      }
    }
    // Wildcards keep the dot: ".example.com" matches only whole labels.
    const std::string_view stored = node.value == static_cast<uint8_t>(NameKind::Wildcard)
                                        ? std::string_view(name).substr(1)
                                        : std::string_view(name);
    return addString(node, stored);
  }

  uint32_t parseVerdict(const Token& keyword, const Token& word) {
    Node node;
    node.op = Op::Verdict;
    const auto is = [&](std::string_view v) { return common::equalsIgnoreCase(word.text, v); };
    if (is("allow")) {
      node.value = static_cast<uint8_t>(EventVerdict::Allow);
    } else if (is("deny")) {
      node.value = static_cast<uint8_t>(EventVerdict::Deny);
    } else if (is("audit")) {
      node.value = static_cast<uint8_t>(EventVerdict::Audit);
    } else {
      fail(word, "expected allow, deny or audit after " + quote(keyword.text) + ", got " + quote(word.text));
    }
    remember(Kind::Verdict, Dir::Either, keyword);
    return add(node);
  }

  uint32_t addProto(uint8_t number) {
    Node node;
    node.op = Op::Proto;
    node.value = number;
    return add(node);
  }

  uint32_t parseProto(const Token& keyword, const Token& word) {
    const auto is = [&](std::string_view v) { return common::equalsIgnoreCase(word.text, v); };
    uint8_t number = 0;
    if (is("tcp")) {
      number = kProtoTcp;
    } else if (is("udp")) {
      number = kProtoUdp;
    } else if (is("icmp")) {
      number = kProtoIcmp;
    } else if (is("icmp6") || is("icmpv6")) {
      number = kProtoIcmp6;
    } else if (const auto n = digits(word.text); n && *n <= 255) {
      number = static_cast<uint8_t>(*n);
    } else {
      fail(word, "expected tcp, udp, icmp, icmp6 or a protocol number 0..255 after " + quote(keyword.text) +
                     ", got " + quote(word.text));
    }
    remember(Kind::Proto, Dir::Either, keyword);
    return addProto(number);
  }

  // "TYPE65" (RFC 3597 section 5), as dig prints unknown types.
  static bool isTypeN(std::string_view word) {
    return word.size() > 4 && common::equalsIgnoreCase(word.substr(0, 4), "type") && digits(word.substr(4));
  }

  uint16_t dnsNumber(const Token& keyword, const Token& word, std::string_view text, uint64_t max,
                     std::string_view expected) {
    const auto number = digits(text);
    if (!number || *number > max) {
      fail(word, "expected " + std::string(expected) + " after " + quote(keyword.text) + ", got " +
                     quote(word.text));
    }
    return static_cast<uint16_t>(*number);
  }

  uint32_t parseQtype(const Token& keyword, const Token& word) {
    constexpr std::string_view kExpected =
        "a DNS type (A, AAAA, CNAME, TXT, HTTPS, ANY, ..., TYPEn or 0..65535)";
    Node node;
    node.op = Op::Qtype;
    if (const auto named = lookupName(kQtypeNames, word.text)) {
      node.portLow = *named;
    } else if (isTypeN(word.text)) {
      node.portLow = dnsNumber(keyword, word, word.text.substr(4), 65535, kExpected);
    } else {
      node.portLow = dnsNumber(keyword, word, word.text, 65535, kExpected);
    }
    remember(Kind::Qtype, Dir::Either, keyword);
    return add(node);
  }

  uint32_t parseRcode(const Token& keyword, const Token& word) {
    Node node;
    node.op = Op::Rcode;
    if (const auto named = lookupName(kRcodeNames, word.text)) {
      node.portLow = *named;
    } else {
      // Extended rcodes (RFC 6891) are 12 bits.
      node.portLow = dnsNumber(keyword, word, word.text, 4095,
                               "a DNS rcode (NOERROR, NXDOMAIN, SERVFAIL, REFUSED, ... or 0..4095)");
    }
    remember(Kind::Rcode, Dir::Either, keyword);
    return add(node);
  }

  // Reason names are snake_case words (docs/watch.md lists them); a
  // trailing '*' matches every reason starting with the rest.
  uint32_t parseReason(const Token& keyword, const Token& word) {
    std::string reason = common::toLowerAscii(word.text);
    Node node;
    node.op = Op::Reason;
    node.value = static_cast<uint8_t>(ReasonKind::Exact);
    if (!reason.empty() && reason.back() == '*') {
      node.value = static_cast<uint8_t>(ReasonKind::Prefix);
      reason.pop_back();
    }
    const bool valid = !reason.empty() && std::all_of(reason.begin(), reason.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    });
    if (!valid) {
      fail(word,
           "expected a reason like not_allowed (letters, digits, '_', an optional trailing '*') after " +
               quote(keyword.text) + ", got " + quote(word.text));
    }
    remember(Kind::Reason, Dir::Either, keyword);
    return addString(node, reason);
  }

  uint32_t parseRuleSet(const Token& keyword, const Token& word) {
    const std::string_view text = word.text;
    const size_t slash = text.find('/');
    const auto valid = [](std::string_view part) {
      return !part.empty() && std::all_of(part.begin(), part.end(), [](char c) {
        const char l = common::asciiLower(c);
        return (l >= 'a' && l <= 'z') || (l >= '0' && l <= '9') || l == '-' || l == '.' || l == '_';
      });
    };
    const bool ok = slash != std::string_view::npos && valid(text.substr(0, slash)) &&
                    (text.substr(slash + 1) == "*" || valid(text.substr(slash + 1)));
    if (!ok) {
      fail(word, "expected a rule set id NAMESPACE/NAME (or NAMESPACE/*) after " + quote(keyword.text) +
                     ", got " + quote(word.text));
    }
    Node node;
    node.op = Op::RuleSet;
    remember(Kind::RuleSet, Dir::Either, keyword);
    return addString(node, common::toLowerAscii(text));
  }

  // namespace NAME[*] | pod NS/NAME[*] | workload KIND/NAME[*]: Kubernetes
  // names (a-z 0-9 - .), a kind of letters and digits; a trailing '*'
  // matches any rest of the (pod or workload) name.
  uint32_t parseAttribution(const Token& keyword, const Token& word, Kind kind) {
    std::string_view text = word.text;
    Node node;
    node.op = kind == Kind::Namespace ? Op::Namespace : kind == Kind::Pod ? Op::Pod : Op::Workload;
    node.value = static_cast<uint8_t>(ReasonKind::Exact);
    if (!text.empty() && text.back() == '*') {
      node.value = static_cast<uint8_t>(ReasonKind::Prefix);
      text.remove_suffix(1);
    }
    const auto nameChars = [](std::string_view part, bool allowEmpty) {
      return (allowEmpty || !part.empty()) && std::all_of(part.begin(), part.end(), [](char c) {
               return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
             });
    };
    const bool prefix = node.value == static_cast<uint8_t>(ReasonKind::Prefix);
    const size_t slash = text.find('/');
    bool ok = false;
    std::string_view expected;
    if (kind == Kind::Namespace) {
      ok = slash == std::string_view::npos && nameChars(text, prefix);
      expected = "a namespace (a-z, 0-9, '-'; a trailing '*' for a prefix)";
    } else if (kind == Kind::Pod) {
      ok = slash != std::string_view::npos && nameChars(text.substr(0, slash), false) &&
           nameChars(text.substr(slash + 1), prefix);
      expected = "a pod NAMESPACE/NAME (NAME may end in '*': team-a/web-*)";
    } else {
      const std::string_view kindText = text.substr(0, slash == std::string_view::npos ? 0 : slash);
      ok = slash != std::string_view::npos && !kindText.empty() &&
           std::all_of(kindText.begin(), kindText.end(),
                       [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }) &&
           nameChars(text.substr(slash + 1), prefix);
      expected = "a workload KIND/NAME (Deployment/web, StatefulSet/db, DaemonSet/*, ...)";
    }
    if (!ok) {
      fail(word, "expected " + std::string(expected) + " after " + quote(keyword.text) + ", got " +
                     quote(word.text));
    }
    remember(kind, Dir::Either, keyword);
    return addString(node, text);
  }

  std::string_view text_;
  Program& program_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  size_t depth_ = 0;
  size_t openParens_ = 0;
  Token previous_;  // kind End: nothing consumed yet
  Kind last_ = Kind::None;
  Dir lastDir_ = Dir::Either;
  Token lastKeyword_;
};

// ---------------------------------------------------------------- normalized text

void print(const Program& program, uint32_t index, int parentPrecedence, std::string& out) {
  const Node& node = program.nodes[index];
  const auto dir = [&] {
    switch (node.dir) {
      case Dir::Src:
        out += "src ";
        break;
      case Dir::Dst:
        out += "dst ";
        break;
      case Dir::Both:
        out += "src and dst ";
        break;
      case Dir::Either:
        break;
    }
  };
  const auto address = [&] {
    common::IpAddress ip;
    unsigned bits = node.prefix;
    if (node.v4) {
      ip = common::IpAddress::v4Bytes(node.address.data() + 12);
      bits -= 96;
    } else {
      ip = common::IpAddress::v6Bytes(node.address.data());
    }
    out += ip.toString();
    if (node.op == Op::Net && bits != ip.bitLength()) out += "/" + std::to_string(bits);
  };
  const std::string_view text(program.strings.data() + node.first, node.count);
  switch (node.op) {
    case Op::Host:
      dir();
      out += "host ";
      address();
      return;
    case Op::Net:
      dir();
      out += "net ";
      address();
      return;
    case Op::Port:
      dir();
      out += "port " + std::to_string(node.portLow);
      if (node.portHigh != node.portLow) out += "-" + std::to_string(node.portHigh);
      return;
    case Op::Name:
    case Op::Sni:
      out += node.op == Op::Sni ? "sni " : "name ";
      if (static_cast<NameKind>(node.value) != NameKind::Exact) out += "*";
      out += text;
      // A host named "and", "or" or "not" would read back as the operator;
      // its fully qualified form ("not.") reads back as the same name.
      if (text == "and" || text == "or" || text == "not") out += '.';
      return;
    case Op::Verdict: {
      static constexpr std::string_view kNames[] = {"allow", "deny", "audit"};
      out += "verdict ";
      out += kNames[node.value];
      return;
    }
    case Op::Proto:
      switch (node.value) {
        case kProtoTcp:
          out += "tcp";
          return;
        case kProtoUdp:
          out += "udp";
          return;
        case kProtoIcmp:
          out += "icmp";
          return;
        case kProtoIcmp6:
          out += "icmp6";
          return;
        default:
          out += "proto " + std::to_string(node.value);
          return;
      }
    case Op::Family:
      out += node.value == 4 ? "ip" : "ip6";
      return;
    case Op::Dns:
      out += "dns";
      return;
    case Op::Proxy:
      out += "proxy";
      return;
    case Op::Qtype: {
      const std::string_view named = nameOf(kQtypeNames, node.portLow);
      out += "qtype ";
      out += named.empty() ? std::to_string(node.portLow) : std::string(named);
      return;
    }
    case Op::Rcode: {
      const std::string_view named = nameOf(kRcodeNames, node.portLow);
      out += "rcode ";
      out += named.empty() ? std::to_string(node.portLow) : std::string(named);
      return;
    }
    case Op::Reason:
      out += "reason ";
      out += text;
      if (static_cast<ReasonKind>(node.value) == ReasonKind::Prefix) out += '*';
      return;
    case Op::RuleSet:
      out += "ruleset ";
      out += text;
      return;
    case Op::Namespace:
    case Op::Pod:
    case Op::Workload:
      out += node.op == Op::Namespace ? "namespace " : node.op == Op::Pod ? "pod " : "workload ";
      out += text;
      if (static_cast<ReasonKind>(node.value) == ReasonKind::Prefix) out += '*';
      return;
    case Op::Not:
      out += "not ";
      print(program, node.first, 3, out);
      return;
    case Op::And:
    case Op::Or: {
      const int precedence = node.op == Op::Or ? 1 : 2;
      const bool parens = precedence < parentPrecedence;
      if (parens) out += "(";
      for (uint32_t i = 0; i < node.count; ++i) {
        if (i > 0) out += node.op == Op::Or ? " or " : " and ";
        print(program, program.children[node.first + i], precedence + 1, out);
      }
      if (parens) out += ")";
      return;
    }
  }
}

}  // namespace

std::string FilterError::pointAt(std::string_view text) const {
  // Show a window of the filter around the token so that a 4 KiB filter
  // still gives two readable lines.
  constexpr size_t kBefore = 60;
  constexpr size_t kAfter = 40;
  const size_t at = std::min(offset, text.size());
  const size_t from = at > kBefore ? at - kBefore : 0;
  const size_t to = std::min(text.size(), at + std::max<size_t>(length, 1) + kAfter);
  std::string line = from > 0 ? "..." : "";
  const size_t column = line.size() + (at - from);
  for (char c : text.substr(from, to - from)) {
    const auto byte = static_cast<unsigned char>(c);
    line += (byte < 0x20 || byte >= 0x7f) ? (c == '\t' || c == '\n' || c == '\r' ? ' ' : '?') : c;
  }
  if (to < text.size()) line += "...";
  const size_t carets = std::max<size_t>(1, std::min(length, to - at));
  return line + "\n" + std::string(column, ' ') + std::string(carets, '^') + " " + message;
}

Filter::Filter() = default;
Filter::~Filter() = default;
Filter::Filter(Filter&&) noexcept = default;
Filter& Filter::operator=(Filter&&) noexcept = default;

bool Filter::matches(const Event& event) const noexcept {
  if (!program_) return true;
  std::string_view name = event.nameView();
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  const Subject subject{event, mappedBytes(event.src), mappedBytes(event.dst), name};
  return evaluate(*program_, program_->root, subject);
}

std::variant<Filter, FilterError> parseFilter(std::string_view text) {
  if (text.size() > kMaxFilterLength) {
    return FilterError{kMaxFilterLength, 0,
                       "filter too long: " + std::to_string(text.size()) + " bytes, the limit is " +
                           std::to_string(kMaxFilterLength)};
  }
  auto program = std::make_unique<Filter::Program>();
  try {
    Parser parser(text, *program);
    Filter filter;
    if (parser.empty()) return filter;  // matches everything
    program->root = parser.parse();
    print(*program, program->root, 0, filter.text_);
    filter.program_ = std::move(program);
    return filter;
  } catch (const ParseFailure& failure) {
    return failure.error;
  }
}

}  // namespace observe

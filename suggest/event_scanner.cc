#include "suggest/event_scanner.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>

#include "observe/format.h"

namespace suggest {

namespace {

// The keys eventFromJson reads, by index; others are skipped.
enum Key : uint8_t {
  kKind,
  kTime,
  kSrc,
  kDst,
  kProto,
  kVerdict,
  kSport,
  kDport,
  kReason,
  kName,
  kNameFrom,
  kMatch,
  kQueue,
  kOutcome,
  kQtype,
  kRcode,
  kAnswers,
  kNamespace,
  kPod,
  kWorkload,
  kServiceAccount,
  kRuleSets,
  kAddresses,
  kKeyCount,
  kOther = kKeyCount
};

constexpr std::array<std::string_view, kKeyCount> kKeyNames = {
    "kind",    "time",      "src",       "dst",      "proto",           "verdict",  "sport",    "dport",
    "reason",  "name",      "name_from", "match",    "queue",           "outcome",  "qtype",    "rcode",
    "answers", "namespace", "pod",       "workload", "service_account", "rulesets", "addresses"};

// By length first: most keys are told apart without comparing bytes.
Key keyOf(std::string_view text) {
  Key candidates[3] = {kOther, kOther, kOther};
  switch (text.size()) {
    case 3:  // src dst pod
      candidates[0] = kSrc, candidates[1] = kDst, candidates[2] = kPod;
      break;
    case 4:  // kind time name
      candidates[0] = kKind, candidates[1] = kTime, candidates[2] = kName;
      break;
    case 5:  // proto sport dport match queue qtype rcode
      switch (text[0]) {
        case 'p':
          return text == "proto" ? kProto : kOther;
        case 's':
          return text == "sport" ? kSport : kOther;
        case 'd':
          return text == "dport" ? kDport : kOther;
        case 'm':
          return text == "match" ? kMatch : kOther;
        case 'q':
          candidates[0] = kQueue, candidates[1] = kQtype;
          break;
        case 'r':
          return text == "rcode" ? kRcode : kOther;
        default:
          return kOther;
      }
      break;
    case 6:
      return text == "reason" ? kReason : kOther;
    case 7:  // verdict outcome answers
      candidates[0] = kVerdict, candidates[1] = kOutcome, candidates[2] = kAnswers;
      break;
    case 8:  // rulesets workload
      candidates[0] = kRuleSets, candidates[1] = kWorkload;
      break;
    case 9:  // name_from namespace addresses
      candidates[0] = kNameFrom, candidates[1] = kNamespace, candidates[2] = kAddresses;
      break;
    case 15:
      return text == "service_account" ? kServiceAccount : kOther;
    default:
      return kOther;
  }
  for (const Key key : candidates) {
    if (key != kOther && kKeyNames[key] == text) return key;
  }
  return kOther;
}

enum class ValueType : uint8_t { String, Number, Array };

struct Value {
  ValueType type = ValueType::String;
  std::string_view text;  // String: the contents; Number: the digits; Array: between the brackets
  uint64_t number = 0;
};

// Bytes a plain string may hold: printable ASCII but '"' and '\\'.
constexpr std::array<bool, 256> kPlain = [] {
  std::array<bool, 256> table{};
  for (unsigned byte = 0x20; byte < 0x80; ++byte) table[byte] = byte != '"' && byte != '\\';
  return table;
}();

// A cursor over the line; every read is checked against the end.
class Scanner {
 public:
  explicit Scanner(std::string_view text) : text_(text) {}

  void skipSpace() {
    while (at_ < text_.size() && isSpace(text_[at_])) ++at_;
  }
  bool consume(char c) {
    skipSpace();
    if (at_ < text_.size() && text_[at_] == c) {
      ++at_;
      return true;
    }
    return false;
  }
  bool peek(char c) {
    skipSpace();
    return at_ < text_.size() && text_[at_] == c;
  }
  bool atEnd() {
    skipSpace();
    return at_ == text_.size();
  }
  // A string without escapes, of printable ASCII (RFC 8259 §7: control
  // characters must be escaped; escapes and other bytes are declined).
  bool string(std::string_view& out) {
    if (!consume('"')) return false;
    const size_t start = at_;
    // One table look-up per byte for the common case (a plain character).
    while (at_ < text_.size() && kPlain[static_cast<unsigned char>(text_[at_])]) ++at_;
    while (at_ < text_.size()) {
      const auto byte = static_cast<unsigned char>(text_[at_]);
      if (byte == '"') {
        out = text_.substr(start, at_ - start);
        ++at_;
        return true;
      }
      if (byte == '\\' || byte < 0x20 || byte >= 0x80) return false;
      ++at_;
    }
    return false;
  }
  // An unsigned integer as JSON writes it (RFC 8259 §6): no sign, no
  // leading zero, no fraction or exponent (those are declined), at most 19
  // digits (so it fits in 64 bits).
  bool number(Value& out) {
    skipSpace();
    const size_t start = at_;
    uint64_t value = 0;
    while (at_ < text_.size() && text_[at_] >= '0' && text_[at_] <= '9') {
      if (at_ - start >= 19) return false;
      value = value * 10 + static_cast<uint64_t>(text_[at_] - '0');
      ++at_;
    }
    const size_t digits = at_ - start;
    if (digits == 0 || (digits > 1 && text_[start] == '0')) return false;
    if (at_ < text_.size() && (text_[at_] == '.' || text_[at_] == 'e' || text_[at_] == 'E')) return false;
    out.type = ValueType::Number;
    out.text = text_.substr(start, digits);
    out.number = value;
    return true;
  }
  // An array of strings; its text between the brackets for a second pass.
  bool stringArray(Value& out) {
    if (!consume('[')) return false;
    const size_t start = at_;
    std::string_view item;
    if (!consume(']')) {
      do {
        if (!string(item)) return false;
      } while (consume(','));
      if (!consume(']')) return false;
    }
    out.type = ValueType::Array;
    out.text = text_.substr(start, at_ - 1 - start);
    return true;
  }
  bool value(Value& out) {
    skipSpace();
    if (at_ >= text_.size()) return false;
    const char c = text_[at_];
    if (c == '"') {
      out.type = ValueType::String;
      return string(out.text);
    }
    if (c == '[') return stringArray(out);
    return number(out);  // true, false, null, objects, negative numbers: declined
  }

 private:
  static bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
  std::string_view text_;
  size_t at_ = 0;
};

// Dotted-quad IPv4 as egressd writes it ("10.42.0.7"), without the C
// library; anything else (IPv6, or a form this does not take) goes to
// common::parseIpAddress, whose result this equals.
std::optional<common::IpAddress> parseAddress(std::string_view text) {
  common::IpAddress ip;
  size_t at = 0;
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (at >= text.size() || text[at] != '.') return common::parseIpAddress(text);
      ++at;
    }
    const size_t start = at;
    unsigned value = 0;
    while (at < text.size() && at - start < 3 && text[at] >= '0' && text[at] <= '9') {
      value = value * 10 + static_cast<unsigned>(text[at] - '0');
      ++at;
    }
    const size_t digits = at - start;
    if (digits == 0 || value > 255 || (digits > 1 && text[start] == '0')) return common::parseIpAddress(text);
    ip.bytes[static_cast<size_t>(part)] = static_cast<uint8_t>(value);
  }
  if (at != text.size()) return common::parseIpAddress(text);
  ip.family = common::IpFamily::V4;
  return ip;
}

// observe::eventText, remembering the last text of each field: a recorded
// run repeats a handful of reasons and outcomes line after line, and the
// views it returns are static (valid for the program's life).
class TextMemo {
 public:
  std::string_view operator()(std::string_view text) {
    // string_view's compare and std::copy: `text` may be empty with a null
    // data pointer, which memcmp and memcpy must never be given.
    if (length_ <= last_.size() && text == std::string_view(last_.data(), length_)) return view_;
    view_ = observe::eventText(text);
    if (text.size() <= last_.size()) {
      length_ = text.size();
      std::copy(text.begin(), text.end(), last_.begin());
    } else {
      length_ = last_.size() + 1;  // never matches
    }
    return view_;
  }

 private:
  std::array<char, 64> last_{};
  size_t length_ = last_.size() + 1;  // nothing remembered yet
  std::string_view view_;
};

template <size_t N, typename Length>
void copyText(std::string_view text, std::array<char, N>& out, Length& length) {
  length = static_cast<Length>(std::min(text.size(), N));
  std::copy_n(text.data(), length, out.data());
}

}  // namespace

std::optional<observe::Event> scanFlatEvent(std::string_view line) {
  observe::Event event;
  if (!scanFlatEvent(line, event)) return std::nullopt;
  return event;
}

bool scanFlatEvent(std::string_view line, observe::Event& event) {
  std::array<Value, kKeyCount> values;  // read only where `present`
  std::array<bool, kKeyCount> present{};
  Scanner scan(line);
  if (!scan.consume('{')) return false;
  if (!scan.consume('}')) {
    do {
      std::string_view keyText;
      Value value;
      if (!scan.string(keyText) || !scan.consume(':') || !scan.value(value)) return false;
      const Key key = keyOf(keyText);
      if (key == kOther) continue;
      if (present[key]) return false;  // a key twice: the general reader decides
      present[key] = true;
      values[key] = value;
    } while (scan.consume(','));
    if (!scan.consume('}')) return false;
  }
  if (!scan.atEnd()) return false;

  // From here on eventFromJson's rules, field by field; a value it refuses
  // is declined (the general reader then says why).
  auto text = [&](Key key, std::string_view& out, bool required) {
    if (!present[key]) return !required;
    if (values[key].type != ValueType::String) return false;
    out = values[key].text;
    return true;
  };
  auto number = [&](Key key, auto& out) {
    if (!present[key]) return true;
    if (values[key].type != ValueType::Number) return false;
    if (values[key].number > std::numeric_limits<std::remove_reference_t<decltype(out)>>::max()) return false;
    out = static_cast<std::remove_reference_t<decltype(out)>>(values[key].number);
    return true;
  };
  // Every field is written below (the event may be reused line after line).
  std::string_view kind, time, src, dst, proto, verdict;
  if (!text(kKind, kind, true) || !text(kTime, time, true) || !text(kSrc, src, true) ||
      !text(kDst, dst, true) || !text(kProto, proto, true) || !text(kVerdict, verdict, true)) {
    return false;
  }
  if (kind == "verdict") {
    event.kind = observe::EventKind::Verdict;
  } else if (kind == "dns") {
    event.kind = observe::EventKind::Dns;
  } else {
    return false;
  }
  const auto when = observe::parseEventTime(time);
  const auto srcIp = parseAddress(src);
  const auto dstIp = parseAddress(dst);
  const auto protocol = observe::parseEventProto(proto);
  const auto verdictValue = observe::parseEventVerdict(verdict);
  if (!when || !srcIp || !dstIp || !protocol || !verdictValue) return false;
  event.time = *when;
  event.src = *srcIp;
  event.dst = *dstIp;
  event.protocol = *protocol;
  event.verdict = *verdictValue;

  std::string_view reason, name, nameSource, match, outcome, qtype, rcode, ns, pod, workload, account;
  event.srcPort = event.dstPort = event.queue = event.answers = 0;
  event.qtype = event.rcode = 0;
  event.ruleSetsLength = 0;
  if (!number(kSport, event.srcPort) || !number(kDport, event.dstPort) || !text(kReason, reason, false) ||
      !text(kName, name, false) || !text(kNameFrom, nameSource, false) || !text(kMatch, match, false) ||
      !number(kQueue, event.queue) || !text(kOutcome, outcome, false) || !text(kQtype, qtype, false) ||
      !text(kRcode, rcode, false) || !number(kAnswers, event.answers) || !text(kNamespace, ns, false) ||
      !text(kPod, pod, false) || !text(kWorkload, workload, false) ||
      !text(kServiceAccount, account, false)) {
    return false;
  }
  thread_local std::array<TextMemo, 4> memo;
  event.reason = memo[0](reason);
  event.nameSource = memo[1](nameSource);
  event.match = memo[2](match);
  event.dnsOutcome = memo[3](outcome);
  copyText(name, event.name, event.nameLength);
  if (!qtype.empty()) {
    const auto value = observe::parseEventQtype(qtype);
    if (!value) return false;
    event.qtype = *value;
  }
  if (!rcode.empty()) {
    const auto value = observe::parseEventRcode(rcode);
    if (!value) return false;
    event.rcode = *value;
  }
  event.client.assign(ns, pod, workload, account);

  if (present[kRuleSets]) {
    if (values[kRuleSets].type != ValueType::Array) return false;
    // The items again (the first pass checked them): joined with ',', as
    // eventFromJson does, stopping once past the event's bound.
    std::array<char, observe::kMaxEventRuleSets + 1> joined{};
    size_t length = 0;
    Scanner items(values[kRuleSets].text);
    std::string_view item;
    bool first = true;
    while (!items.atEnd() && length <= observe::kMaxEventRuleSets) {
      if (!first && !items.consume(',')) return false;
      if (!items.string(item)) return false;
      const std::string_view parts[2] = {first ? std::string_view() : std::string_view(","), item};
      for (const std::string_view part : parts) {
        const size_t room = joined.size() - length;
        const size_t n = std::min(room, part.size());
        std::copy_n(part.data(), n, joined.data() + length);
        length += n;
      }
      first = false;
    }
    copyText(std::string_view(joined.data(), std::min(length, observe::kMaxEventRuleSets)), event.ruleSets,
             event.ruleSetsLength);
  }
  event.addressCount = 0;
  if (present[kAddresses]) {
    if (values[kAddresses].type != ValueType::Array) return false;
    Scanner items(values[kAddresses].text);
    std::string_view item;
    for (bool first = true; !items.atEnd(); first = false) {
      if ((!first && !items.consume(',')) || !items.string(item)) return false;
      const auto address = parseAddress(item);
      if (!address) return false;
      if (event.addressCount < observe::kMaxEventAddresses) event.addresses[event.addressCount++] = *address;
    }
  }
  return true;
}

}  // namespace suggest

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
  kKeyCount,
  kOther = kKeyCount
};

constexpr std::array<std::string_view, kKeyCount> kKeyNames = {
    "kind",    "time",      "src",       "dst",      "proto",           "verdict", "sport", "dport",
    "reason",  "name",      "name_from", "match",    "queue",           "outcome", "qtype", "rcode",
    "answers", "namespace", "pod",       "workload", "service_account", "rulesets"};

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
    case 9:  // name_from namespace
      candidates[0] = kNameFrom, candidates[1] = kNamespace;
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

template <size_t N, typename Length>
void copyText(std::string_view text, std::array<char, N>& out, Length& length) {
  length = static_cast<Length>(std::min(text.size(), N));
  std::copy_n(text.data(), length, out.data());
}

}  // namespace

std::optional<observe::Event> scanFlatEvent(std::string_view line) {
  std::array<Value, kKeyCount> values{};
  std::array<bool, kKeyCount> present{};
  Scanner scan(line);
  if (!scan.consume('{')) return std::nullopt;
  if (!scan.consume('}')) {
    do {
      std::string_view keyText;
      Value value;
      if (!scan.string(keyText) || !scan.consume(':') || !scan.value(value)) return std::nullopt;
      const Key key = keyOf(keyText);
      if (key == kOther) continue;
      if (present[key]) return std::nullopt;  // a key twice: the general reader decides
      present[key] = true;
      values[key] = value;
    } while (scan.consume(','));
    if (!scan.consume('}')) return std::nullopt;
  }
  if (!scan.atEnd()) return std::nullopt;

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
  observe::Event event;
  std::string_view kind, time, src, dst, proto, verdict;
  if (!text(kKind, kind, true) || !text(kTime, time, true) || !text(kSrc, src, true) ||
      !text(kDst, dst, true) || !text(kProto, proto, true) || !text(kVerdict, verdict, true)) {
    return std::nullopt;
  }
  if (kind == "verdict") {
    event.kind = observe::EventKind::Verdict;
  } else if (kind == "dns") {
    event.kind = observe::EventKind::Dns;
  } else {
    return std::nullopt;
  }
  const auto when = observe::parseEventTime(time);
  const auto srcIp = common::parseIpAddress(src);
  const auto dstIp = common::parseIpAddress(dst);
  const auto protocol = observe::parseEventProto(proto);
  const auto verdictValue = observe::parseEventVerdict(verdict);
  if (!when || !srcIp || !dstIp || !protocol || !verdictValue) return std::nullopt;
  event.time = *when;
  event.src = *srcIp;
  event.dst = *dstIp;
  event.protocol = *protocol;
  event.verdict = *verdictValue;

  std::string_view reason, name, nameSource, match, outcome, qtype, rcode, ns, pod, workload, account;
  if (!number(kSport, event.srcPort) || !number(kDport, event.dstPort) || !text(kReason, reason, false) ||
      !text(kName, name, false) || !text(kNameFrom, nameSource, false) || !text(kMatch, match, false) ||
      !number(kQueue, event.queue) || !text(kOutcome, outcome, false) || !text(kQtype, qtype, false) ||
      !text(kRcode, rcode, false) || !number(kAnswers, event.answers) || !text(kNamespace, ns, false) ||
      !text(kPod, pod, false) || !text(kWorkload, workload, false) ||
      !text(kServiceAccount, account, false)) {
    return std::nullopt;
  }
  event.reason = observe::eventText(reason);
  event.nameSource = observe::eventText(nameSource);
  event.match = observe::eventText(match);
  event.dnsOutcome = observe::eventText(outcome);
  copyText(name, event.name, event.nameLength);
  if (!qtype.empty()) {
    const auto value = observe::parseEventQtype(qtype);
    if (!value) return std::nullopt;
    event.qtype = *value;
  }
  if (!rcode.empty()) {
    const auto value = observe::parseEventRcode(rcode);
    if (!value) return std::nullopt;
    event.rcode = *value;
  }
  event.client.assign(ns, pod, workload, account);

  if (present[kRuleSets]) {
    if (values[kRuleSets].type != ValueType::Array) return std::nullopt;
    // The items again (the first pass checked them): joined with ',', as
    // eventFromJson does, stopping once past the event's bound.
    std::array<char, observe::kMaxEventRuleSets + 1> joined{};
    size_t length = 0;
    Scanner items(values[kRuleSets].text);
    std::string_view item;
    bool first = true;
    while (!items.atEnd() && length <= observe::kMaxEventRuleSets) {
      if (!first && !items.consume(',')) return std::nullopt;
      if (!items.string(item)) return std::nullopt;
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
  return event;
}

}  // namespace suggest

#include "policy/suffix_table.h"

#include <idn2.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "common/tail_word.h"

namespace policy {

namespace {

bool isSpace(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool isAscii(std::string_view s) {
  for (const char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

// libpsl (0.21) keeps a rule in a 128-byte buffer and ignores longer ones.
constexpr size_t kMaxRuleLength = 126;

struct Idn2Free {
  void operator()(char* p) const noexcept { idn2_free(p); }
};

// The A-label form of a UTF-8 rule, converted as libpsl 0.21 with libidn2
// >= 2.0 converts (psl_idna_toASCII); empty when the conversion fails.
std::string toAscii(const std::string& utf8) {
  char* out = nullptr;
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): libidn2 takes uint8_t strings
  const int rc = idn2_lookup_u8(reinterpret_cast<const uint8_t*>(utf8.c_str()),
                                reinterpret_cast<uint8_t**>(&out), IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
  const std::unique_ptr<char, Idn2Free> owned(out);
  if (rc != IDN2_OK || out == nullptr) return {};
  return out;
}

}  // namespace

uint64_t SuffixTable::hashOf(std::string_view name) noexcept {
  constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;
  uint64_t h = name.size() * kGolden;
  size_t i = 0;
  for (; i + 8 <= name.size(); i += 8) {
    uint64_t word = 0;
    std::memcpy(&word, name.data() + i, 8);
    h = (h ^ word) * kGolden;
    h ^= h >> 29;
  }
  if (i < name.size()) {
    const auto* end = reinterpret_cast<const uint8_t*>(name.data() + name.size());
    h = (h ^ common::tailWord(end, name.size() - i, name.size())) * kGolden;
  }
  return h ^ (h >> 32);
}

void SuffixTable::build(const std::vector<std::pair<std::string, uint8_t>>& entries) {
  size_t capacity = 16;
  while (capacity < entries.size() * 2) capacity *= 2;
  slots_.assign(capacity, Slot{});
  mask_ = capacity - 1;
  for (const auto& [name, flags] : entries) {
    const uint64_t hash = hashOf(name);
    size_t index = hash & mask_;
    while (slots_[index].used) index = (index + 1) & mask_;
    slots_[index] =
        Slot{hash, static_cast<uint32_t>(arena_.size()), static_cast<uint16_t>(name.size()), flags, true};
    arena_.append(name);
    maxRuleLabels_ =
        std::max(maxRuleLabels_, static_cast<size_t>(std::count(name.begin(), name.end(), '.')) + 1);
  }
  size_ = entries.size();
}

const uint8_t* SuffixTable::find(std::string_view name) const noexcept {
  const uint64_t hash = hashOf(name);
  for (size_t index = hash & mask_;; index = (index + 1) & mask_) {
    const Slot& slot = slots_[index];
    if (!slot.used) return nullptr;
    if (slot.hash == hash && slot.nameLength == name.size() &&
        std::memcmp(arena_.data() + slot.nameOffset, name.data(), name.size()) == 0) {
      return &slot.flags;
    }
  }
}

std::optional<SuffixTable> SuffixTable::fromText(std::string_view text, std::string& error) {
  std::map<std::string, uint8_t, std::less<>> flags;
  size_t rules = 0;
  const auto add = [&](const std::string& rule, uint8_t kind) {
    if (rule.size() > kMaxRuleLength) return;
    flags[rule] |= kind;
  };
  while (!text.empty()) {
    const size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
    while (!line.empty() && isSpace(line.front())) line.remove_prefix(1);
    if (line.empty() || line.starts_with("//")) continue;  // sections do not matter for type 0
    size_t end = 0;
    while (end < line.size() && !isSpace(line[end])) ++end;
    std::string_view token = line.substr(0, end);
    uint8_t kind = kPlain;
    if (token.front() == '!') {
      token.remove_prefix(1);
      kind = kException;
    } else if (token.front() == '*') {
      if (!token.starts_with("*.")) continue;  // libpsl supports no other wildcard
      token.remove_prefix(2);
      kind = kWildcard | kPlain;
    }
    const std::string rule(token);
    if (rule.size() > kMaxRuleLength) continue;
    ++rules;
    add(rule, kind);
    // libpsl adds the A-label form with the rule's flags so far.
    if (!isAscii(rule)) {
      const std::string ascii = toAscii(rule);
      if (!ascii.empty() && ascii != rule) add(ascii, flags[rule]);
    }
  }
  if (rules == 0) {
    error = "the public suffix list holds no rule";
    return std::nullopt;
  }
  // Every tail of a rule ("uk" of "co.uk") is present, flagged 0 unless a
  // rule itself, so that the walk from the right can stop at a miss.
  std::vector<std::string> tails;
  for (const auto& [name, kind] : flags) {
    for (size_t dot = name.find('.'); dot != std::string::npos; dot = name.find('.', dot + 1)) {
      tails.push_back(name.substr(dot + 1));
    }
  }
  for (auto& tail : tails) flags.try_emplace(std::move(tail), 0);

  std::vector<std::pair<std::string, uint8_t>> entries(flags.begin(), flags.end());
  SuffixTable table;
  table.build(entries);
  return table;
}

bool SuffixTable::isPublicSuffixLikeLibpsl(std::string_view name) const noexcept {
  if (!name.empty() && name.front() == '.') name.remove_prefix(1);
  const size_t dot = name.find('.');
  if (dot == std::string_view::npos) return true;  // the implicit "*" rule
  const uint8_t* found = find(name);
  if (found != nullptr && *found != 0) return (*found & kException) == 0;
  const uint8_t* parent = find(name.substr(dot + 1));
  return parent != nullptr && (*parent & kWildcard) != 0;
}

size_t SuffixTable::registrableOffsetLiteral(std::string_view domain) const noexcept {
  // psl_registrable_domain as written: from the left, the first public
  // suffix ends the walk; used only for names with empty labels, where a
  // tail's leading dot makes libpsl look up a different string.
  size_t at = 0;
  size_t found = std::string_view::npos;
  while (!isPublicSuffixLikeLibpsl(domain.substr(at))) {
    const size_t dot = domain.find('.', at);
    if (dot == std::string_view::npos) break;
    found = at;
    at = dot + 1;
  }
  return found;
}

size_t SuffixTable::registrableOffsetClean(std::string_view domain) const noexcept {
  // From the right: a tail of k labels is a public suffix when it is a
  // rule other than an exception, or not a rule and its parent is a
  // wildcard rule; one label always is. libpsl's walk from the left stops
  // at the longest such tail, so this one keeps the longest it sees and
  // stops where the table has no entry (no longer rule can follow).
  size_t start = domain.rfind('.');
  start = start == std::string_view::npos ? 0 : start + 1;
  const uint8_t* entry = find(domain.substr(start));
  size_t longest = start;  // start of the longest public suffix so far
  while (start > 0 && entry != nullptr) {
    const bool parentWildcard = (*entry & kWildcard) != 0;
    const size_t dot = start >= 2 ? domain.rfind('.', start - 2) : std::string_view::npos;
    start = dot == std::string_view::npos ? 0 : dot + 1;
    entry = find(domain.substr(start));
    const bool rule = entry != nullptr && *entry != 0;
    if (rule ? (*entry & kException) == 0 : parentWildcard) longest = start;
  }
  if (longest == 0) return std::string_view::npos;  // the name is a public suffix
  const size_t dot = longest >= 2 ? domain.rfind('.', longest - 2) : std::string_view::npos;
  return dot == std::string_view::npos ? 0 : dot + 1;
}

std::string_view SuffixTable::registrableDomain(std::string_view name) const noexcept {
  // The common case, every name the DNS path asks: no empty label, no NUL,
  // a rule list no deeper than six labels. Then the walk from the right
  // stays within the last eight labels and the answer is the literal one
  // (tested against it and libpsl); anything else takes the literal route.
  // One pass eight bytes at a time finds the dots, NULs and "..".
  if (name.empty() || name.size() >= 256 || name.front() == '.' || maxRuleLabels_ > 6) {
    return registrableDomainLiteral(name);
  }
  static_assert(std::endian::native == std::endian::little, "byte i of a loaded word is bits 8i..8i+7");
  constexpr uint64_t kLow7 = 0x7f7f7f7f7f7f7f7fULL;
  constexpr uint64_t kDots = 0x2e2e2e2e2e2e2e2eULL;
  constexpr uint64_t kFiller = 0x6161616161616161ULL;  // "aaaaaaaa": neither dot nor NUL
  // 0x80 in each byte of `x` that is zero, exactly (no borrow between bytes).
  const auto zeroBytes = [](uint64_t x) { return ~(((x & kLow7) + kLow7) | x | kLow7); };
  // Written before read (count), not cleared: this runs per new name.
  std::array<uint8_t, 256> dots;  // NOLINT(cppcoreguidelines-pro-type-member-init)
  size_t count = 0;
  uint64_t previousDot = 0;  // 0x80 when the byte before this word is a dot
  for (size_t i = 0; i < name.size(); i += 8) {
    uint64_t word = 0;
    const size_t rest = name.size() - i;
    if (rest >= 8) {
      std::memcpy(&word, name.data() + i, 8);
    } else {
      const auto* end = reinterpret_cast<const uint8_t*>(name.data() + name.size());
      word = common::tailWord(end, rest, name.size()) | (kFiller << (8 * rest));
    }
    const uint64_t dot = zeroBytes(word ^ kDots);
    if ((zeroBytes(word) | (dot & ((dot << 8) | previousDot))) != 0) return registrableDomainLiteral(name);
    previousDot = dot >> 56;
    for (uint64_t bits = dot; bits != 0; bits &= bits - 1) {
      dots[count++] = static_cast<uint8_t>(i + static_cast<size_t>(std::countr_zero(bits)) / 8);
    }
  }
  // S(k), the last k labels, starts after the k-th dot from the right.
  const auto startOf = [&](size_t k) -> size_t { return k <= count ? dots[count - k] + 1U : 0U; };
  size_t longest = 1;
  const uint8_t* entry = find(name.substr(startOf(1)));
  for (size_t k = 2; k <= count + 1 && entry != nullptr; ++k) {
    const bool parentWildcard = (*entry & kWildcard) != 0;
    entry = find(name.substr(startOf(k)));
    const bool rule = entry != nullptr && *entry != 0;
    if (rule ? (*entry & kException) == 0 : parentWildcard) longest = k;
  }
  return longest > count ? name : name.substr(startOf(longest + 1));
}

std::string_view SuffixTable::registrableDomainOfHost(std::string_view name) const noexcept {
  if (name.empty() || name.size() >= 256 || name.front() == '.' || name.back() == '.' || maxRuleLabels_ > 6) {
    return registrableDomain(name);
  }
  // start(k): where the last k labels begin; found one dot at a time from
  // the right, and only as deep as the walk goes (rules have at most six
  // labels, so at most eight).
  size_t scanned = name.size();  // no dot in [scanned, size) beyond the starts found
  std::array<size_t, 10> starts{};
  size_t found = 0;   // starts[1..found] known
  bool none = false;  // no dot left of starts[found]: the name has `found` labels
  const auto startOf = [&](size_t k) -> size_t {
    while (found < k && !none) {
      size_t i = scanned;
      while (i > 0 && name[i - 1] != '.') --i;
      if (i == 0) {
        none = true;
        starts[++found] = 0;
        break;
      }
      starts[++found] = i;
      scanned = i - 1;
    }
    return k <= found ? starts[k] : 0;
  };
  size_t longest = 1;
  const uint8_t* entry = find(name.substr(startOf(1)));
  for (size_t k = 2; entry != nullptr && k < starts.size() - 1; ++k) {
    if (startOf(k - 1) == 0) break;  // the whole name was looked up
    const size_t start = startOf(k);
    if (start == startOf(k - 1) - 1) return registrableDomain(name);  // an empty label
    const bool parentWildcard = (*entry & kWildcard) != 0;
    entry = find(name.substr(start));
    const bool rule = entry != nullptr && *entry != 0;
    if (rule ? (*entry & kException) == 0 : parentWildcard) longest = k;
  }
  if (startOf(longest) == 0) return name;  // the name is a public suffix
  const size_t start = startOf(longest + 1);
  if (start == startOf(longest) - 1) return registrableDomain(name);  // an empty label
  return name.substr(start);
}

std::string_view SuffixTable::registrableDomainLiteral(std::string_view name) const noexcept {
  // The same bounds the libpsl adapter applied: no rule has more than a
  // handful of labels, so the last eight decide; libpsl reads a C string,
  // so a NUL ends the name it sees.
  constexpr size_t kLabelsThatDecide = 8;
  std::string_view tail = name;
  size_t labels = 0;
  for (size_t i = name.size(); i > 0; --i) {
    if (name[i - 1] == '.' && ++labels == kLabelsThatDecide) {
      tail = name.substr(i);
      break;
    }
  }
  if (tail.empty() || tail.size() >= 256) return name;
  std::string_view domain = tail.substr(0, tail.find('\0'));
  if (domain.empty() || domain.front() == '.') return name;
  const size_t offset = domain.find("..") == std::string_view::npos ? registrableOffsetClean(domain)
                                                                    : registrableOffsetLiteral(domain);
  if (offset == std::string_view::npos) return name;
  return name.substr(name.size() - tail.size() + offset);
}

}  // namespace policy

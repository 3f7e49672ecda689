// The public suffix list as an in-process hash table, for the one question
// the DNS query path asks: the registrable domain of a name (eTLD+1).
//
// Built once from the list's text (public_suffix_list.dat) the way libpsl
// reads that same file: normal rules, wildcard rules ("*.ck" makes "ck"
// and every "x.ck" public), exception rules ("!www.ck"), ICANN and PRIVATE
// sections alike, rules of 127 bytes or more ignored, and each non-ASCII
// rule also under its A-label (libidn2, as libpsl converts it). Answers
// exactly what libpsl's psl_registrable_domain answers (type 0: both
// sections and the implicit "*" rule), checked against libpsl by
// tests/policy/suffix_table_test.cc and fuzz_suffix_table.cc.
//
// Thread-safety: immutable after build; concurrent queries are safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace policy {

class SuffixTable {
 public:
  // Parses the list's text. Fails (nullopt, `error` set) only when the text
  // holds no rule at all: a list that is not one must not pass for empty.
  static std::optional<SuffixTable> fromText(std::string_view text, std::string& error);

  // The registrable domain of `name` as a view into `name`, `name` itself
  // when it has none (a public suffix, a single label); exactly libpsl's
  // answer, including for upper case (compared byte-wise, as libpsl does),
  // empty labels, raw UTF-8 and NUL bytes. One probe per label of the
  // public suffix plus one; no allocation.
  std::string_view registrableDomain(std::string_view name) const noexcept;

  // The same answer for a host name as a DNS query carries it (labels not
  // empty, no NUL byte, no leading or trailing dot), found from the right
  // with only the dots the walk needs: the DNS tunnel guard asks it for
  // every name it charges, and the scan of the whole name for dots, NULs
  // and empty labels was most of the cost. An empty label it meets sends
  // the name through registrableDomain(); for other input outside that
  // contract the answer is still a suffix of `name`, not necessarily
  // libpsl's. No allocation.
  std::string_view registrableDomainOfHost(std::string_view name) const noexcept;

  size_t size() const noexcept { return size_; }

 private:
  // Open addressing with linear probing, load factor <= 0.5, names in one
  // arena (as policy/name_table.h, with a cheaper hash: eight bytes at a
  // time, a multiply and a shift each, since this runs per label of every
  // new name). No seed: the table is fixed, so a client choosing colliding
  // names only slows its own lookups, by at most one probe run.
  struct Slot {
    uint64_t hash = 0;
    uint32_t nameOffset = 0;
    uint16_t nameLength = 0;
    uint8_t flags = 0;
    bool used = false;
  };
  static uint64_t hashOf(std::string_view name) noexcept;
  void build(const std::vector<std::pair<std::string, uint8_t>>& entries);
  // The flags of `name`, or nullptr when the table does not hold it.
  const uint8_t* find(std::string_view name) const noexcept;

  // Flags per name: a rule's kind, or none for a name that is only the
  // tail of a longer rule ("uk" under "co.uk"), kept so that a miss ends
  // the walk from the right.
  static constexpr uint8_t kPlain = 1;
  static constexpr uint8_t kException = 2;
  static constexpr uint8_t kWildcard = 4;

  // libpsl's is_public_suffix(name, type 0).
  bool isPublicSuffixLikeLibpsl(std::string_view name) const noexcept;
  // The offset in `domain` (no leading dot, no empty label) where the
  // registrable domain starts, or npos when there is none.
  size_t registrableOffsetClean(std::string_view domain) const noexcept;
  size_t registrableOffsetLiteral(std::string_view domain) const noexcept;
  // The whole answer as the libpsl adapter computed it, for any bytes.
  std::string_view registrableDomainLiteral(std::string_view name) const noexcept;

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
  std::string arena_;
  // Labels of the longest rule: the walk from the right visits at most one
  // more, so a name's last eight labels (all libpsl reads) decide when this
  // is at most six.
  size_t maxRuleLabels_ = 0;
};

}  // namespace policy

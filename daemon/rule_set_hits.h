// Per-rule-set decision counts for /metrics
// (egressd_ruleset_decisions_total{ruleset, kind, verdict}) with bounded
// cardinality: at most `maxRuleSets` distinct rule set ids get series of
// their own; decisions for any further id are counted under "_other", so a
// cluster with thousands of EgressRuleSets cannot blow up the scrape.
//
// Only ids of the current policy are counted: retain() (called for every
// new policy generation) forgets the counts of rule sets that disappeared
// and frees their room, and an event naming an id that is no longer in
// force (decided just before a reload) is ignored.
//
// Ownership: a plain value. Thread-safety: none; the daemon's event loop
// calls count() (from the event hub's hook), retain() and rows(). count()
// allocates only the first time an id is seen; nothing here fails.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "observe/event.h"
#include "policy/policy.h"

namespace daemon_main {

// Series label of the decisions of rule sets beyond the bound.
inline constexpr std::string_view kOtherRuleSets = "_other";

struct RuleSetHitRow {
  std::string ruleSet;  // "namespace/name", or kOtherRuleSets
  // Indexed by [kind][verdict]: kind 0 = connection (NFQUEUE verdict),
  // 1 = DNS answer; verdict as observe::EventVerdict (allow, deny, audit).
  std::array<std::array<uint64_t, 3>, 2> counts{};
  friend bool operator==(const RuleSetHitRow&, const RuleSetHitRow&) = default;
};

class RuleSetHits {
 public:
  static constexpr size_t kDefaultMaxRuleSets = 500;

  explicit RuleSetHits(size_t maxRuleSets = kDefaultMaxRuleSets) : maxRuleSets_(maxRuleSets) {}

  // Counts one decision for each rule set the event names
  // (Event::ruleSetsView(): "ns/name,ns/name", "..." at the end when cut;
  // a cut last id is not counted). Events without rule sets count nothing.
  // `times`: how many decisions the event stands for.
  void count(const observe::Event& event, uint64_t times = 1);

  // The ids in force from now on: drops the counts of every other id.
  void retain(const policy::Policy& policy);

  // Every id with at least one count, sorted by id, "_other" last (if any).
  std::vector<RuleSetHitRow> rows() const;

  size_t tracked() const noexcept { return counts_.size(); }
  size_t maxRuleSets() const noexcept { return maxRuleSets_; }

 private:
  using Counts = std::array<std::array<uint64_t, 3>, 2>;
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view text) const noexcept { return std::hash<std::string_view>{}(text); }
  };

  void countOne(std::string_view id, size_t kind, size_t verdict, uint64_t times);

  size_t maxRuleSets_;
  bool policyKnown_ = false;
  std::unordered_set<std::string, Hash, std::equal_to<>> known_;  // ids of the current policy
  std::unordered_map<std::string, Counts, Hash, std::equal_to<>> counts_;
  Counts other_{};
  bool otherUsed_ = false;
};

}  // namespace daemon_main

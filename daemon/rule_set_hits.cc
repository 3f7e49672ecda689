#include "daemon/rule_set_hits.h"

#include <algorithm>

namespace daemon_main {

void RuleSetHits::count(const observe::Event& event, uint64_t times) {
  std::string_view list = event.ruleSetsView();
  if (list.empty()) return;
  const size_t kind = event.kind == observe::EventKind::Dns ? 1 : 0;
  const auto verdict = static_cast<size_t>(event.verdict);
  if (verdict >= 3) return;
  // A list cut at the event's fixed size ends in "...": its last id is
  // incomplete (or is the marker itself) and must not become a series.
  const bool cut = list.ends_with("...");
  while (!list.empty()) {
    const size_t comma = list.find(',');
    const bool last = comma == std::string_view::npos;
    const std::string_view id = list.substr(0, comma);
    list = last ? std::string_view() : list.substr(comma + 1);
    if (last && cut) break;
    if (id.empty()) continue;
    countOne(id, kind, verdict, times);
  }
}

void RuleSetHits::countOne(std::string_view id, size_t kind, size_t verdict, uint64_t times) {
  // Decided under a policy that is gone: its rule set may have been removed,
  // and counting it would bring the series back.
  if (policyKnown_ && known_.find(id) == known_.end()) return;
  if (auto it = counts_.find(id); it != counts_.end()) {
    it->second[kind][verdict] += times;
    return;
  }
  if (counts_.size() < maxRuleSets_) {
    Counts counts{};
    counts[kind][verdict] += times;
    counts_.emplace(std::string(id), counts);
    return;
  }
  other_[kind][verdict] += times;
  otherUsed_ = true;
}

void RuleSetHits::retain(const policy::Policy& policy) {
  known_.clear();
  for (const auto& info : policy.ruleSets()) known_.insert(info.id);
  policyKnown_ = true;
  std::erase_if(counts_, [this](const auto& entry) { return known_.find(entry.first) == known_.end(); });
}

std::vector<RuleSetHitRow> RuleSetHits::rows() const {
  std::vector<RuleSetHitRow> out;
  out.reserve(counts_.size() + 1);
  for (const auto& [id, counts] : counts_) out.push_back(RuleSetHitRow{id, counts});
  std::sort(out.begin(), out.end(),
            [](const RuleSetHitRow& a, const RuleSetHitRow& b) { return a.ruleSet < b.ruleSet; });
  if (otherUsed_) out.push_back(RuleSetHitRow{std::string(kOtherRuleSets), other_});
  return out;
}

}  // namespace daemon_main

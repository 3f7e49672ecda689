#include "daemon/namespace_denials.h"

#include <algorithm>

namespace daemon_main {

void NamespaceDenials::count(const observe::Event& event, uint64_t times) {
  if (event.verdict == observe::EventVerdict::Allow) return;
  const size_t kind = event.kind == observe::EventKind::Dns ? 1 : 0;
  const size_t verdict = event.verdict == observe::EventVerdict::Audit ? 1 : 0;
  const std::string_view ns = event.namespaceView();
  if (ns.empty()) {
    none_[kind][verdict] += times;
    noneUsed_ = true;
    return;
  }
  if (auto it = counts_.find(ns); it != counts_.end()) {
    it->second[kind][verdict] += times;
    return;
  }
  if (counts_.size() < maxNamespaces_) {
    Counts counts{};
    counts[kind][verdict] += times;
    counts_.emplace(std::string(ns), counts);
    return;
  }
  other_[kind][verdict] += times;
  otherUsed_ = true;
}

std::vector<NamespaceDenialRow> NamespaceDenials::rows() const {
  std::vector<NamespaceDenialRow> out;
  out.reserve(counts_.size() + 2);
  for (const auto& [ns, counts] : counts_) out.push_back(NamespaceDenialRow{ns, counts});
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.ns < b.ns; });
  if (otherUsed_) out.push_back(NamespaceDenialRow{std::string(kOtherNamespaces), other_});
  if (noneUsed_ || unattributedDns_[0] != 0 || unattributedDns_[1] != 0) {
    Counts none = none_;
    none[1][0] += unattributedDns_[0];
    none[1][1] += unattributedDns_[1];
    out.push_back(NamespaceDenialRow{std::string(kNoNamespace), none});
  }
  return out;
}

}  // namespace daemon_main

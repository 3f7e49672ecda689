#include "daemon/namespace_denials.h"

#include <algorithm>

namespace daemon_main {

void NamespaceDenials::count(const observe::Event& event) {
  if (event.verdict == observe::EventVerdict::Allow) return;
  const size_t kind = event.kind == observe::EventKind::Dns ? 1 : 0;
  const size_t verdict = event.verdict == observe::EventVerdict::Audit ? 1 : 0;
  const std::string_view ns = event.namespaceView();
  if (ns.empty()) {
    ++none_[kind][verdict];
    noneUsed_ = true;
    return;
  }
  if (auto it = counts_.find(ns); it != counts_.end()) {
    ++it->second[kind][verdict];
    return;
  }
  if (counts_.size() < maxNamespaces_) {
    Counts counts{};
    ++counts[kind][verdict];
    counts_.emplace(std::string(ns), counts);
    return;
  }
  ++other_[kind][verdict];
  otherUsed_ = true;
}

std::vector<NamespaceDenialRow> NamespaceDenials::rows() const {
  std::vector<NamespaceDenialRow> out;
  out.reserve(counts_.size() + 2);
  for (const auto& [ns, counts] : counts_) out.push_back(NamespaceDenialRow{ns, counts});
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.ns < b.ns; });
  if (otherUsed_) out.push_back(NamespaceDenialRow{std::string(kOtherNamespaces), other_});
  if (noneUsed_) out.push_back(NamespaceDenialRow{std::string(kNoNamespace), none_});
  return out;
}

}  // namespace daemon_main

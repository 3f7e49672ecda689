// Denials per client namespace for /metrics
// (egressd_denials_by_namespace_total{namespace, kind, verdict}), from
// attribution (docs/attribution.md). Bounded cardinality as the rule-set
// series (daemon/rule_set_hits.h): at most `maxNamespaces` namespaces get
// series of their own, in the order they are first seen; denials from any
// further namespace are summed under "_other", and those from clients that
// are no known pod under "_none".
//
// Ownership: a plain value. Thread-safety: none; the daemon's event loop
// calls count() (from the event hub's hook) and rows(). count() allocates
// only the first time a namespace is seen.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "observe/event.h"

namespace daemon_main {

inline constexpr std::string_view kOtherNamespaces = "_other";
inline constexpr std::string_view kNoNamespace = "_none";

struct NamespaceDenialRow {
  std::string ns;  // a namespace, kOtherNamespaces or kNoNamespace
  // [kind][verdict]: kind 0 = connection, 1 = DNS; verdict 0 = deny, 1 = audit (would deny).
  std::array<std::array<uint64_t, 2>, 2> counts{};
  friend bool operator==(const NamespaceDenialRow&, const NamespaceDenialRow&) = default;
};

class NamespaceDenials {
 public:
  static constexpr size_t kDefaultMaxNamespaces = 100;
  explicit NamespaceDenials(size_t maxNamespaces = kDefaultMaxNamespaces) : maxNamespaces_(maxNamespaces) {}

  // Counts a deny or audit event; allowed decisions count nothing.
  // `times`: how many decisions the event stands for.
  void count(const observe::Event& event, uint64_t times = 1);
  // DNS decisions of clients no attribution names, counted elsewhere (the
  // DNS service's verdict counters, when attribution is off and no DNS
  // event is counted here): totals so far, reported in the "_none" row
  // on top of what count() put there.
  void setUnattributedDns(uint64_t denied, uint64_t audited) noexcept {
    unattributedDns_ = {denied, audited};
  }
  // Namespaces sorted, then "_other" and "_none" (when used).
  std::vector<NamespaceDenialRow> rows() const;
  size_t maxNamespaces() const noexcept { return maxNamespaces_; }

 private:
  using Counts = std::array<std::array<uint64_t, 2>, 2>;
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view text) const noexcept { return std::hash<std::string_view>{}(text); }
  };
  size_t maxNamespaces_;
  std::unordered_map<std::string, Counts, Hash, std::equal_to<>> counts_;
  Counts other_{};
  Counts none_{};
  std::array<uint64_t, 2> unattributedDns_{};  // verdict 0 = deny, 1 = audit
  bool otherUsed_ = false;
  bool noneUsed_ = false;
};

}  // namespace daemon_main

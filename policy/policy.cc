#include "policy/policy.h"

#include <algorithm>
#include <map>
#include <set>

#include "common/strings.h"

namespace policy {

std::string_view matchKindName(MatchKind kind) noexcept {
  switch (kind) {
    case MatchKind::None:
      return "none";
    case MatchKind::World:
      return "world";
    case MatchKind::Wildcard:
      return "wildcard";
    case MatchKind::Exact:
      return "exact";
    case MatchKind::Network:
      return "network";
    case MatchKind::Address:
      return "address";
  }
  return "none";
}

// Collects (key, port) → rule sets in ordered maps, then flattens them into
// the snapshot's compact arrays so that lookups touch few cache lines.
struct Policy::Builder {
  using PortMap = std::map<uint16_t, std::set<uint32_t>>;
  std::map<std::string, PortMap, std::less<>> exact;
  std::map<std::string, PortMap, std::less<>> wildcard;
  PortMap world;
  // Trie leaves: (family, network) → ports.
  std::map<std::pair<int, std::pair<std::array<uint8_t, 16>, uint8_t>>, PortMap> networks;

  static void add(PortMap& map, uint16_t port, uint32_t ruleSet) { map[port].insert(ruleSet); }
};

Policy::Policy() = default;
Policy::~Policy() = default;

std::shared_ptr<const Policy> Policy::empty() {
  return compile({});
}

std::shared_ptr<const Policy> Policy::compile(const std::vector<RuleSet>& ruleSets,
                                              const InternalRanges& internal) {
  // std::make_shared cannot reach the private constructor.
  std::shared_ptr<Policy> policy(new Policy());  // NOLINT(cppcoreguidelines-owning-memory)
  Builder builder;
  policy->internal_ = internal;

  policy->sources_ = ruleSets;
  policy->ruleSets_.reserve(ruleSets.size());
  for (uint32_t index = 0; index < ruleSets.size(); ++index) {
    const RuleSet& ruleSet = ruleSets[index];
    policy->ruleSets_.push_back(
        RuleSetInfo{ruleSet.id(), ruleSet.source, ruleSet.system, ruleSet.targets.size()});
    policy->targetCount_ += ruleSet.targets.size();
    for (const Target& target : ruleSet.targets) {
      policy->portsInUse_.set(target.port);
      switch (target.kind) {
        case TargetKind::ExactName:
          Builder::add(builder.exact[target.name], target.port, index);
          break;
        case TargetKind::WildcardName:
          Builder::add(builder.wildcard[target.name], target.port, index);
          break;
        case TargetKind::AnyName:
          Builder::add(builder.world, target.port, index);
          break;
        case TargetKind::Address:
        case TargetKind::Network: {
          const int family = target.network.address.family == common::IpFamily::V4 ? 4 : 6;
          Builder::add(
              builder.networks[{family, {target.network.address.bytes, target.network.prefixLength}}],
              target.port, index);
          break;
        }
      }
    }
  }

  auto flatten = [&policy](const Builder::PortMap& ports) {
    PortList list{static_cast<uint32_t>(policy->portRefs_.size()), static_cast<uint32_t>(ports.size())};
    for (const auto& [port, sets] : ports) {
      policy->portRefs_.push_back(
          PortRefs{port, static_cast<uint32_t>(policy->refPool_.size()), static_cast<uint32_t>(sets.size())});
      policy->refPool_.insert(policy->refPool_.end(), sets.begin(), sets.end());
    }
    return list;
  };

  auto buildTable = [&flatten](const std::map<std::string, Builder::PortMap, std::less<>>& from,
                               NameTable<PortList>& to) {
    std::vector<std::pair<std::string, PortList>> entries;
    entries.reserve(from.size());
    for (const auto& [name, ports] : from) entries.emplace_back(name, flatten(ports));
    to.build(entries);
  };
  buildTable(builder.exact, policy->exact_);
  buildTable(builder.wildcard, policy->wildcard_);
  for (const auto& [port, sets] : builder.world) {
    policy->worldPorts_.set(port);
    policy->worldRefs_.push_back(
        PortRefs{port, static_cast<uint32_t>(policy->refPool_.size()), static_cast<uint32_t>(sets.size())});
    policy->refPool_.insert(policy->refPool_.end(), sets.begin(), sets.end());
  }

  policy->anyWorld_ = policy->worldPorts_.any();

  policy->trie4_.emplace_back();
  policy->trie6_.emplace_back();
  for (const auto& [key, ports] : builder.networks) {
    auto& trie = key.first == 4 ? policy->trie4_ : policy->trie6_;
    const auto& bytes = key.second.first;
    const uint8_t prefixLength = key.second.second;
    uint32_t node = 0;
    for (unsigned bit = 0; bit < prefixLength; ++bit) {
      const unsigned branch = (bytes[bit / 8] >> (7 - bit % 8)) & 1U;
      if (trie[node].child[branch] == 0) {
        trie[node].child[branch] = static_cast<uint32_t>(trie.size());
        trie.emplace_back();
      }
      node = trie[node].child[branch];
    }
    trie[node].list = static_cast<uint32_t>(policy->trieLists_.size());
    policy->trieLists_.emplace_back(flatten(ports), prefixLength);
  }
  policy->trie4_.shrink_to_fit();
  policy->trie6_.shrink_to_fit();

  for (uint32_t port = 0; port < 65536; ++port) {
    if (policy->portsInUse_.test(port)) policy->portList_.push_back(static_cast<uint16_t>(port));
  }
  return policy;
}

const Policy::PortRefs* Policy::findPort(const PortList& list, uint16_t port) const noexcept {
  // Lists are sorted by port and almost always tiny (one or two ports).
  const PortRefs* begin = portRefs_.data() + list.offset;
  const PortRefs* end = begin + list.count;
  for (const PortRefs* entry = begin; entry != end; ++entry) {
    if (entry->port == port) return entry;
    if (entry->port > port) break;
  }
  return nullptr;
}

RuleSetRefs Policy::refs(const PortRefs& entry) const noexcept {
  return RuleSetRefs(refPool_.data() + entry.offset, entry.count);
}

// World access (`*:port`): the least specific match, which exact names and
// wildcards override.
NameMatch Policy::matchWorld(uint16_t port) const noexcept {
  NameMatch match;
  if (!worldPorts_.test(port)) return match;
  match.kind = MatchKind::World;
  match.world = true;
  const auto it = std::lower_bound(worldRefs_.begin(), worldRefs_.end(), port,
                                   [](const PortRefs& entry, uint16_t p) { return entry.port < p; });
  if (it != worldRefs_.end() && it->port == port) match.ruleSets = refs(*it);
  return match;
}

NameMatch Policy::matchNormalized(std::string_view name, uint16_t port) const noexcept {
  NameMatch match = matchWorld(port);
  if (const PortList* list = exact_.find(name)) {
    if (const PortRefs* entry = findPort(*list, port)) {
      match.kind = MatchKind::Exact;
      match.ruleSets = refs(*entry);
      return match;
    }
  }
  if (!wildcard_.empty()) {
    // "*.example.org" needs at least one label in front: try every proper
    // suffix, longest (most specific) first.
    for (size_t dot = name.find('.'); dot != std::string_view::npos; dot = name.find('.', dot + 1)) {
      const std::string_view suffix = name.substr(dot + 1);
      if (const PortList* list = wildcard_.find(suffix)) {
        if (const PortRefs* entry = findPort(*list, port)) {
          match.kind = MatchKind::Wildcard;
          match.ruleSets = refs(*entry);
          return match;
        }
      }
    }
  }
  return match;
}

NameMatch Policy::matchName(std::string_view name, uint16_t port) const noexcept {
  char buffer[kMaxNameLength + 1];
  const size_t length = normalizeLookupName(name, buffer, sizeof buffer);
  if (length == 0) return NameMatch{};
  return matchNormalized(std::string_view(buffer, length), port);
}

bool Policy::lookupNameLists(std::string_view name, NameLists& lists) const noexcept {
  char buffer[kMaxNameLength + 1];
  const size_t length = normalizeLookupName(name, buffer, sizeof buffer);
  if (length == 0) return false;
  const std::string_view normalized(buffer, length);
  lists.exact = exact_.find(normalized);
  lists.wildcardCount = 0;
  if (wildcard_.empty()) return true;
  for (size_t dot = normalized.find('.'); dot != std::string_view::npos;
       dot = normalized.find('.', dot + 1)) {
    if (const PortList* list = wildcard_.find(normalized.substr(dot + 1))) {
      // A name of at most 253 bytes has at most 127 dots.
      if (lists.wildcardCount == lists.wildcards.size()) break;
      lists.wildcards[lists.wildcardCount++] = list;
    }
  }
  return true;
}

// matchNormalized's precedence over lists found beforehand: exact, then the
// longest wildcard suffix, then world access.
NameMatch Policy::matchLists(const NameLists& lists, uint16_t port) const noexcept {
  NameMatch match = matchWorld(port);
  if (lists.exact != nullptr) {
    if (const PortRefs* entry = findPort(*lists.exact, port)) {
      match.kind = MatchKind::Exact;
      match.ruleSets = refs(*entry);
      return match;
    }
  }
  for (size_t i = 0; i < lists.wildcardCount; ++i) {
    if (const PortRefs* entry = findPort(*lists.wildcards[i], port)) {
      match.kind = MatchKind::Wildcard;
      match.ruleSets = refs(*entry);
      return match;
    }
  }
  return match;
}

bool Policy::nameAllowedOnAnyPort(std::string_view name) const noexcept {
  return anyWorld_ || nameRuleAllows(name);
}

bool Policy::nameRuleAllows(std::string_view name) const noexcept {
  char buffer[kMaxNameLength + 1];
  const size_t length = normalizeLookupName(name, buffer, sizeof buffer);
  if (length == 0) return false;
  return normalizedNameRuleAllows(std::string_view(buffer, length));
}

bool Policy::normalizedNameRuleAllows(std::string_view normalized) const noexcept {
  if (normalized.empty()) return false;
  if (exact_.find(normalized) != nullptr) return true;
  if (wildcard_.empty()) return false;  // world access alone: no per-label probes
  // Only the dots whose suffix is as long as some wildcard's domain can
  // match: those between the longest and the shortest key from the end.
  const size_t size = normalized.size();
  if (size <= wildcard_.shortestKey()) return false;
  const size_t first = size > wildcard_.longestKey() ? size - wildcard_.longestKey() - 1 : 0;
  const size_t last = size - wildcard_.shortestKey() - 1;
  const std::string_view window = normalized.substr(0, last + 1);
  for (size_t dot = window.find('.', first); dot != std::string_view::npos; dot = window.find('.', dot + 1)) {
    if (wildcard_.find(normalized.substr(dot + 1)) != nullptr) return true;
  }
  return false;
}

AddressMatch Policy::matchAddress(const common::IpAddress& rawAddress, uint16_t port) const noexcept {
  const common::IpAddress address = rawAddress.unmapped();
  const auto& trie = address.family == common::IpFamily::V4 ? trie4_ : trie6_;
  AddressMatch match;
  uint32_t node = 0;
  for (unsigned bit = 0;; ++bit) {
    const TrieNode& current = trie[node];
    if (current.list != UINT32_MAX) {
      const auto& [list, prefixLength] = trieLists_[current.list];
      if (const PortRefs* entry = findPort(list, port)) {
        match.kind = prefixLength == address.bitLength() ? MatchKind::Address : MatchKind::Network;
        match.ruleSets = refs(*entry);  // deeper nodes overwrite: longest prefix wins
      }
    }
    if (bit == address.bitLength()) break;
    const uint32_t next = current.child[address.bit(bit) ? 1 : 0];
    if (next == 0) break;
    node = next;
  }
  return match;
}

bool Policy::addressAllowedOnAnyPort(const common::IpAddress& rawAddress) const noexcept {
  const common::IpAddress address = rawAddress.unmapped();
  const auto& trie = address.family == common::IpFamily::V4 ? trie4_ : trie6_;
  uint32_t node = 0;
  for (unsigned bit = 0;; ++bit) {
    if (trie[node].list != UINT32_MAX) return true;
    if (bit == address.bitLength()) return false;
    const uint32_t next = trie[node].child[address.bit(bit) ? 1 : 0];
    if (next == 0) return false;
    node = next;
  }
}

std::vector<Allowance> Policy::explain(std::string_view host, uint16_t port) const {
  std::vector<Allowance> out;
  std::string_view bare = host;
  if (bare.size() > 2 && bare.front() == '[' && bare.back() == ']') bare = bare.substr(1, bare.size() - 2);
  const auto ip = common::parseIpAddress(bare);
  char buffer[kMaxNameLength + 1];
  const size_t length = ip ? 0 : normalizeLookupName(host, buffer, sizeof buffer);
  const std::string_view name(buffer, length);
  const bool internal = ip && isInternal(*ip);

  for (const RuleSet& ruleSet : sources_) {
    for (const Target& target : ruleSet.targets) {
      if (target.port != port) continue;
      MatchKind kind = MatchKind::None;
      switch (target.kind) {
        case TargetKind::AnyName:
          if (!internal) kind = MatchKind::World;  // world access is the public internet only
          break;
        case TargetKind::ExactName:
          if (!ip && name == target.name) kind = MatchKind::Exact;
          break;
        case TargetKind::WildcardName:
          if (!ip && name.size() > target.name.size() + 1 && name.ends_with(target.name) &&
              name[name.size() - target.name.size() - 1] == '.') {
            kind = MatchKind::Wildcard;
          }
          break;
        case TargetKind::Address:
        case TargetKind::Network:
          if (ip && target.network.contains(ip->unmapped())) {
            kind = target.kind == TargetKind::Address ? MatchKind::Address : MatchKind::Network;
          }
          break;
      }
      if (kind != MatchKind::None) out.push_back(Allowance{ruleSet.id(), target.canonical(), kind});
    }
  }
  // Most specific first, then by rule set for stable output.
  std::stable_sort(out.begin(), out.end(), [](const Allowance& a, const Allowance& b) {
    if (a.kind != b.kind) return static_cast<int>(a.kind) > static_cast<int>(b.kind);
    return a.ruleSet < b.ruleSet;
  });
  return out;
}

}  // namespace policy

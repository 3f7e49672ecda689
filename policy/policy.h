// The compiled allowlist: the union of all valid rule sets, as one
// immutable snapshot with provenance. Built off the data path (compile),
// then shared read-only by DNS and verdict threads (no locks: it never
// changes after compile; swap whole snapshots to reload).
//
// Lookups are allocation-free and noexcept:
//   exact names        hash table
//   *.suffix           one hash probe per label boundary of the query name
//   *:port             bitmap per port
//   addresses/networks binary trie per family (longest prefix first)
#pragma once

#include <array>
#include <bitset>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip_address.h"
#include "policy/internal_ranges.h"
#include "policy/name_table.h"
#include "policy/rule_set.h"

namespace policy {

// Indices into Policy::ruleSets().
using RuleSetRefs = std::span<const uint32_t>;

enum class MatchKind : uint8_t { None, World, Wildcard, Exact, Network, Address };

std::string_view matchKindName(MatchKind kind) noexcept;

struct NameMatch {
  // The most specific rule kind that allows the name on the port:
  // Exact > Wildcard > World. None when denied.
  MatchKind kind = MatchKind::None;
  // True when `*:port` allows it as well: world access needs no DNS binding.
  bool world = false;
  RuleSetRefs ruleSets;  // rule sets of the most specific kind
  explicit operator bool() const noexcept { return kind != MatchKind::None; }
};

struct AddressMatch {
  MatchKind kind = MatchKind::None;  // Address (/32, /128) or Network
  RuleSetRefs ruleSets;              // of the longest matching prefix
  explicit operator bool() const noexcept { return kind != MatchKind::None; }
};

struct RuleSetInfo {
  std::string id;  // "namespace/name"
  std::string source;
  bool system = false;
  size_t targetCount = 0;
};

// One line of an explanation: a target of a rule set that allows the query.
struct Allowance {
  std::string ruleSet;
  std::string target;  // canonical form
  MatchKind kind = MatchKind::None;
};

class Policy {
 public:
  // Compiles the union. Duplicate targets across rule sets merge, keeping
  // every rule set in the provenance. `internal`: the addresses world
  // access does not cover (built-in table plus rules.internal_cidrs and
  // rules.public_cidrs); it travels with the snapshot so every reader
  // (verdicts, DNS, explain) sees the same list.
  static std::shared_ptr<const Policy> compile(const std::vector<RuleSet>& ruleSets,
                                               const InternalRanges& internal = InternalRanges());
  static std::shared_ptr<const Policy> empty();

  // `name` as found on the wire: any case, optional trailing dot.
  NameMatch matchName(std::string_view name, uint16_t port) const noexcept;
  AddressMatch matchAddress(const common::IpAddress& address, uint16_t port) const noexcept;
  // True when the name is allowed on at least one port (DNS answers it).
  bool nameAllowedOnAnyPort(std::string_view name) const noexcept;
  // True when an exact or wildcard target allows the name on some port,
  // i.e. not only world access (DNS limits names allowed only by `*:PORT`).
  bool nameRuleAllows(std::string_view name) const noexcept;
  // The same for a name already in lookup form (lower case, no trailing
  // dot, 1..253 bytes), as the DNS parser produces it: no copy.
  bool normalizedNameRuleAllows(std::string_view name) const noexcept;
  // True when some `*:PORT` target is in force: every name is allowed on
  // that port.
  bool hasWorldAccess() const noexcept { return anyWorld_; }
  // Calls visit(port, match) for each port in use on which `name` is
  // allowed, in ascending port order, with exactly what matchName(name,
  // port) gives; but the name is normalized and looked up once (one hash
  // probe per label), not once per port. For a name's provenance across
  // ports (DNS events, the kernel fast path's entries).
  template <class Visit>
  void forEachAllowedPort(std::string_view name, Visit&& visit) const noexcept {
    NameLists lists;
    if (!lookupNameLists(name, lists)) return;
    for (const uint16_t port : portList_) {
      const NameMatch match = matchLists(lists, port);
      if (match) visit(port, match);
    }
  }
  // True when world access (`*:port`) does not cover the address
  // (policy/internal_ranges.h): only IP/CIDR targets, and name targets
  // through a DNS binding, reach it.
  bool isInternal(const common::IpAddress& address) const noexcept { return internal_.isInternal(address); }
  const InternalRanges& internalRanges() const noexcept { return internal_; }
  // True when some IP/CIDR target covers the address, on any port.
  bool addressAllowedOnAnyPort(const common::IpAddress& address) const noexcept;
  bool portInUse(uint16_t port) const noexcept { return portsInUse_.test(port); }
  const std::vector<uint16_t>& portsInUse() const noexcept { return portList_; }
  // Ports of name-only rules (wildcards and world access) and of exact names.
  bool worldOnPort(uint16_t port) const noexcept { return worldPorts_.test(port); }

  // Every target that allows host:port, with its rule set (allocates; for
  // explain and the control socket, not the data path). `host` is a name or
  // an IP address; world access is not listed for an internal address.
  std::vector<Allowance> explain(std::string_view host, uint16_t port) const;

  const std::vector<RuleSetInfo>& ruleSets() const noexcept { return ruleSets_; }
  const std::vector<RuleSet>& sourceRuleSets() const noexcept { return sources_; }
  size_t targetCount() const noexcept { return targetCount_; }

  Policy(const Policy&) = delete;
  Policy& operator=(const Policy&) = delete;
  ~Policy();

  struct PortRefs {
    uint16_t port;
    uint32_t offset;  // into refPool_
    uint32_t count;
  };
  struct PortList {
    uint32_t offset;  // into portRefs_
    uint32_t count;
  };

 private:
  Policy();
  struct Builder;

  struct TrieNode {
    uint32_t child[2] = {0, 0};  // 0 = none (the root is never a child)
    uint32_t list = UINT32_MAX;  // index into trieLists_, or none
  };

  // The name's entries in the exact and wildcard tables, found once.
  struct NameLists {
    const PortList* exact = nullptr;
    std::array<const PortList*, kMaxNameLength / 2 + 1> wildcards{};  // longest suffix first
    size_t wildcardCount = 0;
  };
  // False for a name that does not normalize (matchName matches it nowhere).
  bool lookupNameLists(std::string_view name, NameLists& lists) const noexcept;
  NameMatch matchLists(const NameLists& lists, uint16_t port) const noexcept;
  NameMatch matchWorld(uint16_t port) const noexcept;

  const PortRefs* findPort(const PortList& list, uint16_t port) const noexcept;
  RuleSetRefs refs(const PortRefs& entry) const noexcept;
  NameMatch matchNormalized(std::string_view name, uint16_t port) const noexcept;

  std::vector<RuleSetInfo> ruleSets_;
  std::vector<RuleSet> sources_;
  size_t targetCount_ = 0;
  std::vector<uint32_t> refPool_;
  std::vector<PortRefs> portRefs_;
  NameTable<PortList> exact_;
  NameTable<PortList> wildcard_;  // key: suffix after "*."
  std::bitset<65536> worldPorts_;
  bool anyWorld_ = false;            // worldPorts_.any(), which scans 8 KiB, once at compile
  std::vector<PortRefs> worldRefs_;  // sorted by port; few entries
  std::vector<TrieNode> trie4_;
  std::vector<TrieNode> trie6_;
  std::vector<std::pair<PortList, uint8_t>> trieLists_;  // ports at a trie node, prefix length
  std::bitset<65536> portsInUse_;
  std::vector<uint16_t> portList_;
  InternalRanges internal_;
};

}  // namespace policy

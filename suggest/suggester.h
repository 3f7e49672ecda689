// `egressctl suggest`'s logic: observed decisions in, proposed
// EgressRuleSets out (docs/egressctl.md "suggest", docs/rollout.md).
//
//   Suggester::add()    counts each decision under its rule set (the
//                       client's namespace, or workload with --per workload)
//                       and destination: NAME:PORT when the decision named
//                       the server (SNI, Host, QUIC, DNS binding), the
//                       address and port when it did not; DNS queries only
//                       note that a name was resolved (DNS gives no port).
//   Suggester::finish() leaves out what the rules in force already allow
//                       (unless `all`), collapses names into `*.DOMAIN:PORT`
//                       when at least `wildcardMin` distinct names under one
//                       registrable domain were seen (never over a public
//                       suffix, never `*:PORT`), and sorts everything.
//   renderYaml()        the rule sets as YAML for kubectl apply, every target
//                       with a comment (hits, first/last seen, workloads).
//
// Pure: no I/O, no clock; the same decisions give the same bytes whatever
// their order. Not thread-safe (one per run).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/ip_address.h"
#include "policy/policy.h"
#include "policy/public_suffix.h"
#include "suggest/line_reader.h"

namespace suggest {

enum class Per : uint8_t { Namespace, Workload };

struct Options {
  Per per = Per::Namespace;
  // Distinct names under one registrable domain (on one port, in one rule
  // set) that become one wildcard target.
  size_t wildcardMin = 3;
  // Include what the rules in force already allow.
  bool all = false;
  // Where decisions of clients that are not known pods go (no attribution):
  // a rule set "suggested-unattributed" in this namespace.
  std::string unattributedNamespace = "default";
  // metadata.name: PREFIX (per namespace) or PREFIX-KIND-NAME (per workload).
  std::string namePrefix = "suggested";
  // Bound on distinct destinations kept (names, addresses, DNS-only names
  // over all rule sets): memory stays bounded whatever the input; what
  // does not fit is counted in Suggestion::droppedDestinations.
  size_t maxDestinations = 200'000;
};

using TimePoint = std::chrono::system_clock::time_point;

// Counts for one destination of one rule set.
struct Usage {
  uint64_t hits = 0;
  uint64_t allowed = 0;
  uint64_t denied = 0;
  uint64_t audit = 0;
  TimePoint first = TimePoint::max();
  TimePoint last = TimePoint::min();
  // Workloads ("Deployment/web", or "Pod/NAME" without one), or source
  // addresses for unattributed clients: the kMaxKept smallest, sorted (the
  // same whatever the order of the decisions); moreThanKept when there
  // were more.
  std::vector<std::string> clients;
  bool moreThanKept = false;

  static constexpr size_t kMaxKept = 64;
  void count(const observe::Event& event, const std::string& client);
  void merge(const Usage& other);
};

struct SuggestedTarget {
  enum class Kind : uint8_t { Name, Wildcard, Address };
  Kind kind = Kind::Name;
  std::string target;              // canonical "HOST:PORT", ready for spec.targets
  Usage usage;                     // summed over the covered names for a wildcard
  std::vector<std::string> names;  // Wildcard: the names it covers (sorted)
  bool inForce = false;            // already allowed (listed only with `all`)
  // Of usage.hits: connections that carried no name (decided at the SYN)
  // but went to an address the same client had resolved this name to
  // through egressd's DNS (the DNS event's answer addresses).
  uint64_t throughDns = 0;
};

struct DnsOnlyName {
  std::string name;
  Usage usage;
};

struct SuggestedRuleSet {
  std::string ns;
  std::string name;
  bool unattributed = false;
  std::vector<SuggestedTarget> targets;  // sorted: by registrable domain, name, port; then addresses
  std::vector<DnsOnlyName> dnsOnly;      // resolved, never connected to (comments)
  // Decisions no target can allow (ICMP, UDP other than QUIC, names that
  // are no valid host name): "udp to 192.0.2.1:123" → count.
  std::map<std::string, uint64_t> unsuggestable;
};

struct Suggestion {
  std::vector<SuggestedRuleSet> ruleSets;  // sorted by namespace, name
  uint64_t decisions = 0;                  // decisions read
  uint64_t used = 0;                       // decisions that named a destination
  TimePoint first = TimePoint::max();
  TimePoint last = TimePoint::min();
  size_t leftOutInForce = 0;         // destinations the rules in force allow (without `all`)
  uint64_t droppedDestinations = 0;  // decisions for destinations past maxDestinations
  size_t wildcardMin = 0;
  bool all = false;
  bool rulesKnown = false;  // finish() had the rules in force
};

// A hash map with std::string keys that finds by std::string_view without
// building a string (C++20 heterogeneous lookup).
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view text) const noexcept { return std::hash<std::string_view>{}(text); }
};
template <class Value>
using StringMap = std::unordered_map<std::string, Value, StringHash, std::equal_to<>>;

class Suggester {
 public:
  Suggester(const policy::PublicSuffixList& suffixes, Options options);

  // One decision (its client: event.client, attribution).
  void add(const observe::Event& event);
  uint64_t decisions() const noexcept { return decisions_; }
  // Distinct names seen so far (connections and DNS), for progress output.
  size_t distinctNames() const noexcept { return distinctNames_; }

  // `inForce`: the rules in force, or nullptr (nothing is left out then;
  // with `all` it is not consulted).
  Suggestion finish(const policy::Policy* inForce) const;

 private:
  struct AddressKey {
    common::IpAddress address;
    uint16_t port;
    bool operator<(const AddressKey& other) const;
  };
  struct ClientGroup;
  struct Group {
    std::string ns;
    std::string name;
    bool unattributed = false;
    // Hash maps: looked up once per decision; finish() sorts what it emits.
    StringMap<std::map<uint16_t, Usage>> names;  // name → port → usage
    // Connections without a name, per client and address: finish() names
    // those whose client resolved the address through egressd's DNS.
    std::map<std::pair<const ClientGroup*, AddressKey>, Usage> addresses;
    StringMap<Usage> dns;
    std::map<std::string, uint64_t> unsuggestable;
  };
  // A client's rule set and how its comments name it, found once per
  // client (the decisions of one pod all land in the same place).
  struct ClientGroup {
    Group* group = nullptr;
    std::string client;  // "Deployment/web", "Pod/NAME" or a source address
    // Addresses (port 0) its DNS answers gave → the names asked, the
    // kMaxResolvedNames smallest (sorted: independent of the input order).
    std::map<AddressKey, std::vector<std::string>> resolved;
  };
  static constexpr size_t kMaxResolvedNames = 4;

  ClientGroup& groupFor(const observe::Event& event);
  void noteResolved(ClientGroup& client, const observe::Event& event);
  bool roomFor(uint64_t& dropped);

  const policy::PublicSuffixList& suffixes_;
  Options options_;
  std::map<std::string, Group> groups_;  // key: "namespace/name"; nodes never move
  StringMap<ClientGroup> clients_;       // key: clientKey_'s form
  std::string clientKey_;                // scratch, reused
  std::string nameScratch_;              // scratch, reused
  uint64_t decisions_ = 0;
  uint64_t used_ = 0;
  uint64_t dropped_ = 0;
  size_t destinations_ = 0;
  size_t distinctNames_ = 0;
  TimePoint first_ = TimePoint::max();
  TimePoint last_ = TimePoint::min();
};

// The suggestion as YAML documents (one EgressRuleSet each), ready for
// `kubectl apply -f`; comments never carry bytes from the input other than
// validated names and printable ASCII.
std::string renderYaml(const Suggestion& suggestion);

// RFC 3339 in UTC to the second ("2026-11-26T12:00:01Z"), as comments show times.
std::string formatTime(TimePoint time);

// A Kubernetes object name (RFC 1123 label characters, at most 253 bytes)
// from free text: lower case, other characters become '-'.
std::string objectName(std::string_view text);

}  // namespace suggest

#include "suggest/suggester.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <iterator>
#include <set>
#include <tuple>
#include <utility>

#include "common/strings.h"
#include "policy/target.h"

namespace suggest {

namespace {

constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;
constexpr uint16_t kQtypeA = 1;
constexpr uint16_t kQtypeAaaa = 28;
constexpr uint16_t kQtypeSvcb = 64;
constexpr uint16_t kQtypeHttps = 65;

// A Kubernetes namespace: an RFC 1123 label.
bool isNamespace(std::string_view text) {
  if (text.empty() || text.size() > 63 || text.front() == '-' || text.back() == '-') return false;
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}

// Text from the input that goes into a YAML comment: printable ASCII only,
// so that nothing can end the comment line and become YAML.
std::string printable(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte >= 0x7f) c = '?';
  }
  return out;
}

std::string protoText(uint8_t protocol) {
  if (protocol == kProtoTcp) return "tcp";
  if (protocol == kProtoUdp) return "udp";
  if (protocol == 1) return "icmp";
  if (protocol == 58) return "icmp6";
  return "ip-proto-" + std::to_string(protocol);
}

std::string endpointText(const common::IpAddress& address, uint16_t port) {
  const common::IpAddress plain = address.unmapped();
  std::string host = plain.family == common::IpFamily::V6 ? "[" + plain.toString() + "]" : plain.toString();
  return port == 0 ? plain.toString() : host + ":" + std::to_string(port);
}

// The rules in force allow this address on this port: an IP/CIDR target,
// or world access for a public address (docs/rules.md).
bool addressInForce(const policy::Policy& policy, const common::IpAddress& address, uint16_t port) {
  if (policy.matchAddress(address, port)) return true;
  return policy.worldOnPort(port) && !policy.isInternal(address);
}

struct NameKey {
  const std::string& name;
  uint16_t port;
};

// Sort key of a name target: its registrable domain first, so that names
// of one domain stay together, then the wildcard before the names, then
// name and port.
struct TargetOrder {
  int section = 0;  // 0 names, 1 addresses
  std::string domain;
  int kind = 0;  // 0 wildcard, 1 name
  std::string name;
  std::array<uint8_t, 17> address{};
  uint16_t port = 0;
  friend bool operator<(const TargetOrder& a, const TargetOrder& b) {
    return std::tie(a.section, a.domain, a.kind, a.name, a.address, a.port) <
           std::tie(b.section, b.domain, b.kind, b.name, b.address, b.port);
  }
};

// The longest parent domain (whole labels) that every name is strictly
// under; at least `domain`, which every name is strictly under.
template <class Entries>
std::string commonParent(const Entries& entries, const std::string& domain) {
  std::string_view common = entries.front()->name;
  for (const auto* entry : entries) {
    const std::string_view name = entry->name;
    size_t length = 0;  // bytes of the common tail
    while (length < common.size() && length < name.size() &&
           common[common.size() - 1 - length] == name[name.size() - 1 - length]) {
      ++length;
    }
    common = common.substr(common.size() - length);
  }
  // Whole labels only: cut at the first dot that starts a label boundary.
  auto isLabelTail = [&](std::string_view tail) {
    return std::all_of(entries.begin(), entries.end(), [&](const auto* entry) {
      const std::string_view name = entry->name;
      return name.size() > tail.size() && name[name.size() - tail.size() - 1] == '.';
    });
  };
  while (common.size() > domain.size() && !isLabelTail(common)) {
    const size_t dot = common.find('.');
    common = dot == std::string_view::npos ? std::string_view(domain) : common.substr(dot + 1);
  }
  if (common.size() < domain.size()) return domain;
  return std::string(common);
}

}  // namespace

// ---------------------------------------------------------------- Usage

void Usage::count(const observe::Event& event, const std::string& client) {
  ++hits;
  switch (event.verdict) {
    case observe::EventVerdict::Allow:
      ++allowed;
      break;
    case observe::EventVerdict::Deny:
      ++denied;
      break;
    case observe::EventVerdict::Audit:
      ++audit;
      break;
  }
  first = std::min(first, event.time);
  last = std::max(last, event.time);
  if (client.empty()) return;
  // Keep the kMaxKept smallest clients, sorted: the same set whatever the
  // order of the decisions (the output must not depend on it).
  const auto at = std::lower_bound(clients.begin(), clients.end(), client);
  if (at != clients.end() && *at == client) return;
  if (clients.size() >= kMaxKept) {
    moreThanKept = true;
    if (at == clients.end()) return;
    clients.pop_back();
  }
  clients.insert(std::lower_bound(clients.begin(), clients.end(), client), client);
}

void Usage::merge(const Usage& other) {
  hits += other.hits;
  allowed += other.allowed;
  denied += other.denied;
  audit += other.audit;
  first = std::min(first, other.first);
  last = std::max(last, other.last);
  std::vector<std::string> all;
  std::set_union(clients.begin(), clients.end(), other.clients.begin(), other.clients.end(),
                 std::back_inserter(all));
  moreThanKept = moreThanKept || other.moreThanKept || all.size() > kMaxKept;
  if (all.size() > kMaxKept) all.resize(kMaxKept);
  clients = std::move(all);
}

// ---------------------------------------------------------------- Suggester

bool Suggester::AddressKey::operator<(const AddressKey& other) const {
  return std::tie(address.family, address.bytes, port) <
         std::tie(other.address.family, other.address.bytes, other.port);
}

Suggester::Suggester(const policy::PublicSuffixList& suffixes, Options options)
    : suffixes_(suffixes), options_(std::move(options)) {}

Suggester::ClientGroup& Suggester::groupFor(const observe::Event& event) {
  const std::string_view eventNs = event.client.namespaceView();
  const bool attributed = isNamespace(eventNs);
  // The identity that decides the rule set and the client's name, without
  // allocating once it has been seen.
  clientKey_.clear();
  if (attributed) {
    clientKey_ += eventNs;
    clientKey_ += '\0';
    clientKey_ += event.client.workloadView();
    clientKey_ += '\0';
    if (event.client.workloadView().empty()) clientKey_ += event.client.podView();
  }
  clientKey_ += '\0';
  if (!attributed || (event.client.workloadView().empty() && event.client.podView().empty())) {
    const common::IpAddress src = event.src.unmapped();
    clientKey_.append(reinterpret_cast<const char*>(src.bytes.data()), src.byteLength());
  }
  if (const auto found = clients_.find(std::string_view(clientKey_)); found != clients_.end()) {
    return found->second;
  }

  ClientGroup entry;
  std::string ns;
  std::string name = options_.namePrefix;
  bool unattributed = false;
  if (attributed) {
    ns = std::string(eventNs);
    if (!event.client.workloadView().empty()) {
      entry.client = printable(event.client.workloadView());
    } else if (!event.client.podView().empty()) {
      entry.client = "Pod/" + printable(event.client.podView());
    } else {
      entry.client = endpointText(event.src, 0);
    }
    if (options_.per == Per::Workload) name = objectName(options_.namePrefix + "-" + entry.client);
  } else {
    ns = options_.unattributedNamespace;
    name = objectName(options_.namePrefix + "-unattributed");
    entry.client = endpointText(event.src, 0);
    unattributed = true;
  }
  const std::string key = ns + "/" + name;
  auto it = groups_.find(key);
  if (it == groups_.end()) {
    it = groups_.emplace(key, Group{}).first;
    it->second.ns = ns;
    it->second.name = name;
    it->second.unattributed = unattributed;
  }
  entry.group = &it->second;
  return clients_.emplace(clientKey_, std::move(entry)).first->second;
}

bool Suggester::roomFor(uint64_t& dropped) {
  if (destinations_ >= options_.maxDestinations) {
    ++dropped;
    return false;
  }
  ++destinations_;
  return true;
}

void Suggester::add(const observe::Event& event) {
  ++decisions_;
  first_ = std::min(first_, event.time);
  last_ = std::max(last_, event.time);

  // Names as rules compare them: lower case, no trailing dot.
  nameScratch_.assign(event.nameView());
  for (char& c : nameScratch_) c = common::asciiLower(c);
  if (!nameScratch_.empty() && nameScratch_.back() == '.') nameScratch_.pop_back();

  if (event.kind == observe::EventKind::Dns) {
    // Names resolved: no port, so no target on their own (docs/egressctl.md).
    // Cluster-internal names never leave through egressd.
    if (nameScratch_.empty() || event.dnsOutcome == "cluster" || event.dnsOutcome == "malformed") return;
    if (event.qtype != kQtypeA && event.qtype != kQtypeAaaa && event.qtype != kQtypeHttps &&
        event.qtype != kQtypeSvcb) {
      return;
    }
    ClientGroup& client = groupFor(event);
    noteResolved(client, event);
    auto it = client.group->dns.find(std::string_view(nameScratch_));
    if (it == client.group->dns.end()) {
      if (!roomFor(dropped_)) return;
      ++distinctNames_;
      it = client.group->dns.emplace(nameScratch_, Usage{}).first;
    }
    it->second.count(event, client.client);
    ++used_;
    return;
  }

  const ClientGroup& client = groupFor(event);
  Group& group = *client.group;
  const bool quic = event.protocol == kProtoUdp && event.nameSource == "quic" && !nameScratch_.empty();
  if ((event.protocol != kProtoTcp && !quic) || event.dstPort == 0) {
    // Rule sets allow TCP, and QUIC to UDP 443 by name: nothing else.
    std::string what = protoText(event.protocol) + " to " + endpointText(event.dst, event.dstPort);
    auto it = group.unsuggestable.find(what);
    if (it == group.unsuggestable.end()) {
      if (!roomFor(dropped_)) return;
      it = group.unsuggestable.emplace(std::move(what), 0).first;
    }
    ++it->second;
    return;
  }
  ++used_;
  if (!nameScratch_.empty()) {
    auto name = group.names.find(std::string_view(nameScratch_));
    if (name == group.names.end()) {
      if (!roomFor(dropped_)) return;
      ++distinctNames_;
      name = group.names.emplace(nameScratch_, std::map<uint16_t, Usage>{}).first;
    } else if (name->second.find(event.dstPort) == name->second.end() && !roomFor(dropped_)) {
      return;
    }
    name->second[event.dstPort].count(event, client.client);
    return;
  }
  const std::pair<const ClientGroup*, AddressKey> key{&client, {event.dst.unmapped(), event.dstPort}};
  auto it = group.addresses.find(key);
  if (it == group.addresses.end()) {
    if (!roomFor(dropped_)) return;
    it = group.addresses.emplace(key, Usage{}).first;
  }
  it->second.count(event, client.client);
}

void Suggester::noteResolved(ClientGroup& client, const observe::Event& event) {
  for (const common::IpAddress& address : event.addressesView()) {
    const AddressKey key{address.unmapped(), 0};
    auto it = client.resolved.find(key);
    if (it == client.resolved.end()) {
      if (!roomFor(dropped_)) return;
      it = client.resolved.emplace(key, std::vector<std::string>{}).first;
    }
    std::vector<std::string>& names = it->second;
    const auto at = std::lower_bound(names.begin(), names.end(), nameScratch_);
    if (at != names.end() && *at == nameScratch_) continue;
    if (names.size() >= kMaxResolvedNames) {
      if (at == names.end()) continue;
      names.pop_back();
    }
    names.insert(std::lower_bound(names.begin(), names.end(), nameScratch_), nameScratch_);
  }
}

Suggestion Suggester::finish(const policy::Policy* inForce) const {
  Suggestion out;
  out.decisions = decisions_;
  out.used = used_;
  out.first = first_;
  out.last = last_;
  out.droppedDestinations = dropped_;
  out.wildcardMin = options_.wildcardMin;
  out.all = options_.all;
  out.rulesKnown = inForce != nullptr;
  const policy::Policy* filter = options_.all ? nullptr : inForce;

  for (const auto& [groupKey, group] : groups_) {
    SuggestedRuleSet ruleSet;
    ruleSet.ns = group.ns;
    ruleSet.name = group.name;
    ruleSet.unattributed = group.unattributed;
    ruleSet.unsuggestable = group.unsuggestable;

    // Connections without a name: to a name when their client resolved
    // the address through egressd (every name it asked that gave it),
    // otherwise to the address. Merging is order-independent, so walking
    // the clients in memory order gives the same result every time.
    std::map<AddressKey, Usage> addresses;
    std::map<std::pair<std::string, uint16_t>, Usage> throughDns;
    for (const auto& [clientAddress, usage] : group.addresses) {
      const auto& [client, addressKey] = clientAddress;
      const auto resolved = client->resolved.find(AddressKey{addressKey.address, 0});
      if (resolved == client->resolved.end()) {
        addresses[addressKey].merge(usage);
        continue;
      }
      for (const std::string& name : resolved->second) throughDns[{name, addressKey.port}].merge(usage);
    }
    // Every name and port seen, with its connections' usage, named or
    // matched through DNS.
    std::map<std::pair<std::string, uint16_t>, std::pair<Usage, uint64_t>> seen;  // usage, hits through DNS
    for (const auto& [nameText, ports] : group.names) {
      for (const auto& [port, usage] : ports) seen[{nameText, port}].first = usage;
    }
    for (const auto& [nameKey, usage] : throughDns) {
      auto& entry = seen[nameKey];
      entry.first.merge(usage);
      entry.second += usage.hits;
    }
    // Names as targets; a host that is an address (an HTTP Host of
    // "203.0.113.7") counts as an address flow.
    struct Named {
      std::string name;
      uint16_t port;
      const Usage* usage;
      bool inForce;
      uint64_t throughDns;
    };
    std::vector<Named> named;
    {
      for (const auto& [nameAndPort, entry] : seen) {
        const auto& [nameText, port] = nameAndPort;
        const Usage& usage = entry.first;
        const NameKey nameKey{nameText, port};
        const std::string text = nameKey.name + ":" + std::to_string(nameKey.port);
        const auto parsed = policy::parseTarget(text, suffixes_);
        if (!parsed.target) {
          ruleSet.unsuggestable["name \"" + printable(nameKey.name) + "\" (not a valid host name: " +
                                parsed.reason() + ") on port " + std::to_string(nameKey.port)] += usage.hits;
          continue;
        }
        if (parsed.target->kind == policy::TargetKind::Address) {
          addresses[AddressKey{parsed.target->network.address, nameKey.port}].merge(usage);
          continue;
        }
        if (parsed.target->kind != policy::TargetKind::ExactName) continue;  // cannot happen: no '*' in names
        const bool allowed = inForce != nullptr && bool(inForce->matchName(nameKey.name, nameKey.port));
        if (allowed && filter != nullptr) {
          ++out.leftOutInForce;
          continue;
        }
        named.push_back({nameKey.name, nameKey.port, &usage, allowed, entry.second});
      }
    }

    // Wildcards: names strictly under one registrable domain, per port.
    std::map<std::pair<std::string, uint16_t>, std::vector<const Named*>> byDomain;
    for (const Named& entry : named) {
      const std::string domain(suffixes_.registrableDomain(entry.name));
      if (domain.size() < entry.name.size() && entry.name.ends_with("." + domain)) {
        byDomain[{domain, entry.port}].push_back(&entry);
      }
    }
    std::vector<const Named*> covered;
    for (const auto& [domainPort, entries] : byDomain) {
      const auto& [domain, port] = domainPort;
      if (options_.wildcardMin == 0 || entries.size() < options_.wildcardMin) continue;
      // Never over a public suffix (registrableDomain returns the name
      // itself when it has none) and never world access: the policy's own
      // parser must accept it as a wildcard name.
      if (suffixes_.isPublicSuffix(domain)) continue;
      // The narrowest wildcard that covers them all: their longest common
      // parent (api.shipping.example.com and rates.shipping.example.com
      // give *.shipping.example.com, not *.example.com), never above the
      // registrable domain.
      const std::string parent = commonParent(entries, domain);
      const auto parsed = policy::parseTarget("*." + parent + ":" + std::to_string(port), suffixes_);
      if (!parsed.target || parsed.target->kind != policy::TargetKind::WildcardName) continue;
      SuggestedTarget target;
      target.kind = SuggestedTarget::Kind::Wildcard;
      target.target = parsed.target->canonical();
      target.inForce = true;
      for (const Named* entry : entries) {
        target.usage.merge(*entry->usage);
        target.throughDns += entry->throughDns;
        target.names.push_back(entry->name);
        target.inForce = target.inForce && entry->inForce;
        covered.push_back(entry);
      }
      std::sort(target.names.begin(), target.names.end());
      ruleSet.targets.push_back(std::move(target));
    }
    std::sort(covered.begin(), covered.end());
    for (const Named& entry : named) {
      if (std::binary_search(covered.begin(), covered.end(), &entry)) continue;
      SuggestedTarget target;
      target.kind = SuggestedTarget::Kind::Name;
      target.target = entry.name + ":" + std::to_string(entry.port);
      target.usage = *entry.usage;
      target.inForce = entry.inForce;
      target.throughDns = entry.throughDns;
      ruleSet.targets.push_back(std::move(target));
    }

    for (const auto& [addressKey, usage] : addresses) {
      const bool allowed =
          inForce != nullptr && addressInForce(*inForce, addressKey.address, addressKey.port);
      if (allowed && filter != nullptr) {
        ++out.leftOutInForce;
        continue;
      }
      const auto parsed = policy::parseTarget(endpointText(addressKey.address, addressKey.port), suffixes_);
      if (!parsed.target) continue;  // cannot happen: an address and a port 1..65535
      SuggestedTarget target;
      target.kind = SuggestedTarget::Kind::Address;
      target.target = parsed.target->canonical();
      target.usage = usage;
      target.inForce = allowed;
      ruleSet.targets.push_back(std::move(target));
    }

    // DNS-only names: resolved but never connected to by this rule set's
    // clients (by name), and not already resolvable.
    std::set<std::string_view> connectedNames;
    for (const auto& entry : seen) connectedNames.insert(entry.first.first);
    std::set<std::string_view> wildcardParents;  // "example.com" of "*.example.com:443"
    for (const auto& target : ruleSet.targets) {
      if (target.kind == SuggestedTarget::Kind::Wildcard) {
        wildcardParents.insert(std::string_view(target.target).substr(2, target.target.rfind(':') - 2));
      }
    }
    for (const auto& [name, usage] : group.dns) {
      if (connectedNames.count(name) > 0) continue;
      const auto parsed = policy::parseTarget(name + ":443", suffixes_);
      if (!parsed.target || parsed.target->kind != policy::TargetKind::ExactName) continue;
      // Under a suggested wildcard: one lookup per parent domain.
      bool coveredByWildcard = false;
      for (size_t dot = name.find('.'); dot != std::string::npos && !coveredByWildcard;
           dot = name.find('.', dot + 1)) {
        coveredByWildcard = wildcardParents.count(std::string_view(name).substr(dot + 1)) > 0;
      }
      if (coveredByWildcard) continue;
      if (filter != nullptr && filter->nameAllowedOnAnyPort(name)) {
        ++out.leftOutInForce;
        continue;
      }
      ruleSet.dnsOnly.push_back({name, usage});
    }
    std::sort(ruleSet.dnsOnly.begin(), ruleSet.dnsOnly.end(), [](const DnsOnlyName& a, const DnsOnlyName& b) {
      return a.usage.hits != b.usage.hits ? a.usage.hits > b.usage.hits : a.name < b.name;
    });

    // Order: by registrable domain, wildcard first, name, port; then
    // addresses by family and value.
    auto order = [&](const SuggestedTarget& target) {
      TargetOrder key;
      const size_t colon = target.target.rfind(':');
      key.port = static_cast<uint16_t>(std::stoul(target.target.substr(colon + 1)));
      if (target.kind == SuggestedTarget::Kind::Address) {
        key.section = 1;
        std::string host = target.target.substr(0, colon);
        if (host.front() == '[') host = host.substr(1, host.size() - 2);
        if (const auto ip = common::parseIpAddress(host)) {
          key.address[0] = static_cast<uint8_t>(ip->family);
          std::copy(ip->bytes.begin(), ip->bytes.end(), key.address.begin() + 1);
        }
        return key;
      }
      key.name = target.target.substr(0, colon);
      key.kind = target.kind == SuggestedTarget::Kind::Wildcard ? 0 : 1;
      const std::string bare = key.kind == 0 ? key.name.substr(2) : key.name;
      key.domain = std::string(suffixes_.registrableDomain(bare));
      return key;
    };
    std::vector<std::pair<TargetOrder, SuggestedTarget>> sorted;
    sorted.reserve(ruleSet.targets.size());
    for (auto& target : ruleSet.targets) sorted.emplace_back(order(target), std::move(target));
    std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    ruleSet.targets.clear();
    for (auto& entry : sorted) ruleSet.targets.push_back(std::move(entry.second));

    out.ruleSets.push_back(std::move(ruleSet));
  }
  std::sort(out.ruleSets.begin(), out.ruleSets.end(),
            [](const SuggestedRuleSet& a, const SuggestedRuleSet& b) {
              return std::tie(a.ns, a.name) < std::tie(b.ns, b.name);
            });
  return out;
}

// ---------------------------------------------------------------- names and times

std::string objectName(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const char lower = common::asciiLower(c);
    const bool ok = (lower >= 'a' && lower <= 'z') || (lower >= '0' && lower <= '9');
    if (ok) {
      out += lower;
    } else if (!out.empty() && out.back() != '-') {
      out += '-';
    }
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  if (out.size() > 253) out.resize(253);
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out.empty() ? std::string("suggested") : out;
}

std::string formatTime(TimePoint time) {
  if (time == TimePoint::min() || time == TimePoint::max()) return "-";
  const auto seconds = std::chrono::floor<std::chrono::seconds>(time);
  const auto days = std::chrono::floor<std::chrono::days>(seconds);
  const std::chrono::year_month_day date(days);
  const std::chrono::hh_mm_ss clock(seconds - days);
  char buffer[48];
  std::snprintf(buffer, sizeof buffer, "%04d-%02u-%02uT%02d:%02d:%02lldZ", static_cast<int>(date.year()),
                static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
                static_cast<int>(clock.hours().count()), static_cast<int>(clock.minutes().count()),
                static_cast<long long>(clock.seconds().count()));
  return buffer;
}

}  // namespace suggest

// The compiled union: every lookup kind, precedence, provenance, and that
// a snapshot answers exactly what its rule sets say.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "policy/manifest.h"
#include "policy/name_table.h"
#include "policy/policy.h"
#include "tests/support/rule_sets.h"
#include "tests/support/test_internet.h"

namespace {

policy::RuleSet ruleSet(const std::string& name, const std::vector<std::string>& targets) {
  return testsupport::ruleSet("default", name, targets);
}

std::vector<std::string> ids(const policy::Policy& policy, policy::RuleSetRefs refs) {
  std::vector<std::string> out;
  for (uint32_t index : refs) out.push_back(policy.ruleSets()[index].id);
  std::sort(out.begin(), out.end());
  return out;
}

common::IpAddress ip(const char* text) {
  return *common::parseIpAddress(text);
}

}  // namespace

TEST_CASE("exact names match on their port only, case-insensitively", "[policy]") {
  const auto p = policy::Policy::compile({ruleSet("app", {"api.example.com:443"})});
  CHECK(p->matchName("api.example.com", 443).kind == policy::MatchKind::Exact);
  CHECK(p->matchName("API.EXAMPLE.COM.", 443).kind == policy::MatchKind::Exact);
  CHECK_FALSE(p->matchName("api.example.com", 80));
  CHECK_FALSE(p->matchName("example.com", 443));
  CHECK_FALSE(p->matchName("x.api.example.com", 443));
  CHECK_FALSE(p->matchName("api.example.co", 443));
}

TEST_CASE("wildcards need at least one label in front of the suffix", "[policy]") {
  const auto p = policy::Policy::compile({ruleSet("w", {"*.example.org:80"})});
  CHECK(p->matchName("a.example.org", 80).kind == policy::MatchKind::Wildcard);
  CHECK(p->matchName("a.b.c.example.org", 80).kind == policy::MatchKind::Wildcard);
  CHECK_FALSE(p->matchName("example.org", 80));
  CHECK_FALSE(p->matchName("aexample.org", 80));
  CHECK_FALSE(p->matchName("a.example.org", 443));
  CHECK_FALSE(p->matchName("a.example.org.evil.com", 80));
}

TEST_CASE("world access allows every name on that port and needs no binding", "[policy]") {
  const auto p =
      policy::Policy::compile({ruleSet("world-access", {"*:80"}), ruleSet("app", {"api.example.com:80"})});
  const auto anyName = p->matchName("anything.example.net", 80);
  CHECK(anyName.kind == policy::MatchKind::World);
  CHECK(anyName.world);
  CHECK(ids(*p, anyName.ruleSets) == std::vector<std::string>{"default/world-access"});
  // The exact rule is more specific but world access still applies.
  const auto exact = p->matchName("api.example.com", 80);
  CHECK(exact.kind == policy::MatchKind::Exact);
  CHECK(exact.world);
  CHECK_FALSE(p->matchName("anything.example.net", 443));
  CHECK(p->worldOnPort(80));
  CHECK_FALSE(p->worldOnPort(443));
}

TEST_CASE("provenance lists every rule set that allows a target", "[policy]") {
  const auto p =
      policy::Policy::compile({ruleSet("a", {"api.example.com:443", "*.example.com:443"}),
                               ruleSet("b", {"api.example.com:443"}), ruleSet("c", {"*.example.com:443"})});
  CHECK(ids(*p, p->matchName("api.example.com", 443).ruleSets) ==
        std::vector<std::string>{"default/a", "default/b"});
  CHECK(ids(*p, p->matchName("x.example.com", 443).ruleSets) ==
        std::vector<std::string>{"default/a", "default/c"});
  const auto explained = p->explain("api.example.com", 443);
  // api.example.com is also under *.example.com: two exact, two wildcard.
  REQUIRE(explained.size() == 4);
  CHECK(explained[0].kind == policy::MatchKind::Exact);
  CHECK(explained[1].kind == policy::MatchKind::Exact);
  CHECK(explained[2].kind == policy::MatchKind::Wildcard);
  CHECK(explained[2].target == "*.example.com:443");
  CHECK(explained[3].ruleSet == "default/c");
}

TEST_CASE("addresses and networks use the longest matching prefix", "[policy]") {
  const auto p = policy::Policy::compile({ruleSet("net", {"203.0.113.0/24:443", "[2001:db8::/32]:443"}),
                                          ruleSet("host", {"203.0.113.7:443", "[2001:db8::1]:22"})});
  const auto host = p->matchAddress(ip("203.0.113.7"), 443);
  CHECK(host.kind == policy::MatchKind::Address);
  CHECK(ids(*p, host.ruleSets) == std::vector<std::string>{"default/host"});
  const auto net = p->matchAddress(ip("203.0.113.9"), 443);
  CHECK(net.kind == policy::MatchKind::Network);
  CHECK(ids(*p, net.ruleSets) == std::vector<std::string>{"default/net"});
  CHECK_FALSE(p->matchAddress(ip("203.0.114.1"), 443));
  CHECK_FALSE(p->matchAddress(ip("203.0.113.9"), 80));
  CHECK(p->matchAddress(ip("2001:db8:ffff::5"), 443).kind == policy::MatchKind::Network);
  CHECK(p->matchAddress(ip("2001:db8::1"), 22).kind == policy::MatchKind::Address);
  CHECK_FALSE(p->matchAddress(ip("2001:db9::1"), 443));
  // IPv4-mapped IPv6 is the IPv4 address.
  CHECK(p->matchAddress(ip("::ffff:203.0.113.7"), 443).kind == policy::MatchKind::Address);
  CHECK(p->addressAllowedOnAnyPort(ip("203.0.113.200")));
  CHECK_FALSE(p->addressAllowedOnAnyPort(ip("198.51.100.1")));
  // A deeper prefix on another port does not hide a shorter one on this port.
  CHECK(p->matchAddress(ip("2001:db8::1"), 443).kind == policy::MatchKind::Network);
}

TEST_CASE("a /0 network allows every address of its family", "[policy]") {
  const auto p = policy::Policy::compile({ruleSet("all", {"0.0.0.0/0:443"})});
  CHECK(p->matchAddress(ip("198.51.100.1"), 443).kind == policy::MatchKind::Network);
  CHECK_FALSE(p->matchAddress(ip("2001:db8::1"), 443));
}

TEST_CASE("names allowed on any port, ports in use", "[policy]") {
  const auto p = policy::Policy::compile(
      {ruleSet("a", {"api.example.com:443", "*.example.org:8080", "10.1.0.0/16:5432"})});
  CHECK(p->nameAllowedOnAnyPort("api.example.com"));
  CHECK(p->nameAllowedOnAnyPort("x.example.org"));
  CHECK_FALSE(p->nameAllowedOnAnyPort("example.org"));
  CHECK_FALSE(p->nameAllowedOnAnyPort("evil.com"));
  CHECK(p->portsInUse() == std::vector<uint16_t>{443, 5432, 8080});
  CHECK(p->portInUse(8080));
  CHECK_FALSE(p->portInUse(80));
  const auto world = policy::Policy::compile({ruleSet("w", {"*:80"})});
  CHECK(world->nameAllowedOnAnyPort("evil.com"));
}

TEST_CASE("forEachAllowedPort gives what matchName gives on every port", "[policy]") {
  const auto p = policy::Policy::compile({
      ruleSet("exact", {"api.example.com:443", "api.example.com:8443"}),
      ruleSet("wild", {"*.example.com:443", "*.example.com:80", "*.b.example.com:80", "*.example.org:9000"}),
      ruleSet("deep", {"*.a.b.example.com:80", "x.a.b.example.com:22"}),
      ruleSet("world", {"*:8443", "*:25"}),
      ruleSet("net", {"10.0.0.0/8:5432"}),
  });
  for (const std::string_view name :
       {"api.example.com", "API.Example.COM.", "x.a.b.example.com", "y.a.b.example.com", "b.example.com",
        "example.com", "x.example.org", "evil.net", "", ".", "a..b.example.com", "10.1.2.3"}) {
    INFO(name);
    std::vector<uint16_t> visited;
    p->forEachAllowedPort(name, [&](uint16_t port, const policy::NameMatch& match) {
      visited.push_back(port);
      const auto single = p->matchName(name, port);
      CHECK(match.kind == single.kind);
      CHECK(match.world == single.world);
      CHECK(ids(*p, match.ruleSets) == ids(*p, single.ruleSets));
    });
    std::vector<uint16_t> expected;
    for (const uint16_t port : p->portsInUse()) {
      if (p->matchName(name, port)) expected.push_back(port);
    }
    CHECK(visited == expected);
  }
  // Spot checks, so that both sides agreeing on nothing cannot pass.
  std::vector<std::pair<uint16_t, policy::MatchKind>> x;
  p->forEachAllowedPort("x.a.b.example.com", [&](uint16_t port, const policy::NameMatch& match) {
    x.emplace_back(port, match.kind);
  });
  using K = policy::MatchKind;
  CHECK(x == std::vector<std::pair<uint16_t, K>>{
                 {22, K::Exact}, {25, K::World}, {80, K::Wildcard}, {443, K::Wildcard}, {8443, K::World}});
}

TEST_CASE("an empty policy denies everything", "[policy]") {
  const auto p = policy::Policy::empty();
  CHECK_FALSE(p->matchName("api.example.com", 443));
  CHECK_FALSE(p->matchAddress(ip("203.0.113.7"), 443));
  CHECK_FALSE(p->nameAllowedOnAnyPort("api.example.com"));
  CHECK(p->portsInUse().empty());
  CHECK(p->targetCount() == 0);
}

TEST_CASE("explain covers IP hosts and world access", "[policy]") {
  const auto p = testsupport::compileWithTestInternet(
      {ruleSet("net", {"203.0.113.0/24:443"}), ruleSet("world", {"*:443"})});
  const auto explained = p->explain("203.0.113.5", 443);
  REQUIRE(explained.size() == 2);
  CHECK(explained[0].ruleSet == "default/net");
  CHECK(explained[1].kind == policy::MatchKind::World);
  CHECK(p->explain("[2001:db8::1]", 443).size() == 1);
  CHECK(p->explain("203.0.113.5", 80).empty());
}

// The key-length filter skips the hash only for lengths no key has: every
// key is still found, names of a key's length but other bytes are misses.
TEST_CASE("name table: found by exact name whatever the lengths of the others", "[policy]") {
  policy::NameTable<int> table;
  std::vector<std::pair<std::string, int>> entries;
  for (int length = 1; length <= 253; length += 7) entries.emplace_back(std::string(length, 'a'), length);
  entries.emplace_back("example.com", 1000);
  entries.emplace_back(std::string(300, 'x'), 300);  // longer than any name: still stored and found
  table.build(entries);
  for (const auto& [name, value] : entries) {
    const int* found = table.find(name);
    REQUIRE(found != nullptr);
    CHECK(*found == value);
  }
  CHECK(table.find("example.org") == nullptr);        // a key's length, other bytes
  CHECK(table.find(std::string(2, 'a')) == nullptr);  // a length no key has
  CHECK(table.find("") == nullptr);
  CHECK(table.find(std::string(300, 'y')) == nullptr);
  table.build({});
  CHECK(table.find("example.com") == nullptr);
}

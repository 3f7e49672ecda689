// Proxy decisions against a real compiled policy: names by port, world
// access, IP literals only by IP/CIDR targets, internal addresses.
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "policy/policy.h"
#include "policy/public_suffix.h"
#include "policy/target.h"
#include "proxy/decision.h"

namespace {

std::shared_ptr<const policy::Policy> compile(std::initializer_list<const char*> targets) {
  policy::RuleSet set;
  set.ns = "team";
  set.name = "rules";
  for (const char* text : targets) {
    auto parsed = policy::parseTarget(text, policy::defaultPublicSuffixList());
    REQUIRE(parsed.target);
    set.targets.push_back(*parsed.target);
    set.targetTexts.emplace_back(text);
  }
  return policy::Policy::compile({set});
}

proxy::Authority authority(std::string_view text) {
  proxy::Authority out;
  std::string_view why;
  REQUIRE(proxy::parseAuthority(text, true, 0, out, why));
  return out;
}

}  // namespace

TEST_CASE("names, ports, world access and IP literals", "[proxy][decision]") {
  const auto policy =
      compile({"api.example.com:443", "*.example.org:443", "93.184.216.0/24:22", "*:80", "10.1.0.0/16:5432"});
  using R = proxy::ProxyReason;
  struct Case {
    const char* target;
    bool allowed;
    R reason;
    bool resolve;
  };
  const Case cases[] = {
      {"api.example.com:443", true, R::NameAllowed, true},
      {"API.EXAMPLE.COM.:443", true, R::NameAllowed, true},
      {"www.example.org:443", true, R::NameAllowed, true},
      {"example.org:443", false, R::NameNotAllowed, false},
      {"evil.example.net:443", false, R::NameNotAllowed, false},
      {"api.example.com:8443", false, R::PortNotInPolicy, false},
      {"anything.example:80", true, R::WorldAccess, true},
      {"93.184.216.7:22", true, R::AddressAllowed, false},
      {"93.184.216.7:443", false, R::AddressNotAllowed, false},
      {"1.1.1.1:80", true, R::WorldAccess, false},
      {"169.254.169.254:80", false, R::InternalAddress, false},
      {"10.1.2.3:5432", true, R::AddressAllowed, false},
      {"10.1.2.3:80", false, R::InternalAddress, false},
      {"[::ffff:169.254.169.254]:80", false, R::InternalAddress, false},
      {"[2606:4700::1111]:443", false, R::AddressNotAllowed, false},
      {"1.1.1.1:9999", false, R::PortNotInPolicy, false},
  };
  for (const Case& c : cases) {
    CAPTURE(c.target);
    const proxy::TargetDecision d = proxy::judgeTarget(*policy, authority(c.target));
    CHECK(d.allowed == c.allowed);
    CHECK(d.reason == c.reason);
    CHECK(d.resolve == c.resolve);
    if (d.allowed) CHECK_FALSE(d.ruleSets.empty());
  }
}

TEST_CASE("resolved addresses: internal ones only through an IP/CIDR target", "[proxy][decision]") {
  const auto policy = compile({"api.example.com:443", "10.1.0.0/16:443"});
  CHECK(proxy::resolvedAddressAllowed(*policy, *common::parseIpAddress("1.1.1.1"), 443));
  CHECK_FALSE(proxy::resolvedAddressAllowed(*policy, *common::parseIpAddress("169.254.169.254"), 443));
  CHECK_FALSE(proxy::resolvedAddressAllowed(*policy, *common::parseIpAddress("fd00:ec2::254"), 443));
  CHECK_FALSE(proxy::resolvedAddressAllowed(*policy, *common::parseIpAddress("::ffff:10.9.0.1"), 443));
  CHECK(proxy::resolvedAddressAllowed(*policy, *common::parseIpAddress("10.1.2.3"), 443));
  CHECK_FALSE(proxy::resolvedAddressAllowed(*policy, *common::parseIpAddress("10.1.2.3"), 80));
}

TEST_CASE("every reason has a distinct name", "[proxy][decision]") {
  std::set<std::string_view> names;
  for (size_t i = 0; i < proxy::kProxyReasonCount; ++i) {
    const std::string_view name = proxy::proxyReasonName(static_cast<proxy::ProxyReason>(i));
    CHECK(name != "unknown");
    names.insert(name);
  }
  CHECK(names.size() == proxy::kProxyReasonCount);
}

// The internal-address classifier (policy/internal_ranges.h) against the
// IANA IPv4 and IPv6 Special-Purpose Address Registries: each row is an
// address, whether world access must leave it closed, and the range that
// decides, typed in from the registries (not derived from the table under
// test). Then the embedding forms, the operator's widening and narrowing,
// the refusal of operator ranges inside embedding forms, and the packet
// path's promise: no allocation.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "common/ip_address.h"
#include "policy/internal_ranges.h"
#include "policy/policy.h"
#include "tests/support/alloc_counter.h"
#include "tests/support/rule_sets.h"

namespace {

common::IpAddress ip(const std::string& text) {
  const auto parsed = common::parseIpAddress(text);
  REQUIRE(parsed);
  return *parsed;
}

common::IpNetwork net(const std::string& text) {
  const auto parsed = common::parseIpNetwork(text);
  REQUIRE(parsed.network);
  return *parsed.network;
}

struct Row {
  const char* address;
  bool internal;
  const char* range;  // the deciding range; "" when none (public IPv4)
};

void checkRows(const policy::InternalRanges& ranges, const std::vector<Row>& rows) {
  for (const Row& row : rows) {
    INFO(row.address);
    const policy::AddressClass c = ranges.classify(ip(row.address));
    CHECK(c.internal == row.internal);
    CHECK(ranges.isInternal(ip(row.address)) == row.internal);
    if (std::string(row.range).empty()) {
      CHECK(c.origin == policy::RangeOrigin::None);
    } else {
      CHECK(c.network.toString() == row.range);
    }
  }
}

}  // namespace

TEST_CASE("IPv4 special-purpose registry: non-global ranges are internal, first and last address",
          "[policy][internal]") {
  const policy::InternalRanges ranges;
  checkRows(ranges, {
                        {"0.0.0.0", true, "0.0.0.0/8"},
                        {"0.255.255.255", true, "0.0.0.0/8"},
                        {"10.0.0.0", true, "10.0.0.0/8"},
                        {"10.255.255.255", true, "10.0.0.0/8"},
                        {"100.64.0.0", true, "100.64.0.0/10"},
                        {"100.127.255.255", true, "100.64.0.0/10"},
                        {"127.0.0.1", true, "127.0.0.0/8"},
                        {"169.254.169.254", true, "169.254.0.0/16"},  // AWS/GCP/Azure metadata
                        {"169.254.170.2", true, "169.254.0.0/16"},    // ECS task metadata
                        {"172.16.0.0", true, "172.16.0.0/12"},
                        {"172.31.255.255", true, "172.16.0.0/12"},
                        {"192.0.0.0", true, "192.0.0.0/24"},
                        {"192.0.0.8", true, "192.0.0.0/24"},
                        {"192.0.0.170", true, "192.0.0.0/24"},
                        {"192.0.2.1", true, "192.0.2.0/24"},
                        {"192.88.99.1", true, "192.88.99.0/24"},
                        {"192.168.0.1", true, "192.168.0.0/16"},
                        {"198.18.0.1", true, "198.18.0.0/15"},
                        {"198.19.255.255", true, "198.18.0.0/15"},
                        {"198.51.100.7", true, "198.51.100.0/24"},
                        {"203.0.113.7", true, "203.0.113.0/24"},
                        {"224.0.0.1", true, "224.0.0.0/4"},
                        {"239.255.255.250", true, "224.0.0.0/4"},
                        {"240.0.0.1", true, "240.0.0.0/4"},
                        {"255.255.255.255", true, "255.255.255.255/32"},
                    });
}

TEST_CASE("IPv4: globally reachable exceptions and public neighbours of the ranges", "[policy][internal]") {
  const policy::InternalRanges ranges;
  checkRows(ranges, {
                        {"192.0.0.9", false, "192.0.0.9/32"},    // PCP anycast, RFC 7723
                        {"192.0.0.10", false, "192.0.0.10/32"},  // TURN anycast, RFC 8155
                        {"1.0.0.1", false, ""},
                        {"8.8.8.8", false, ""},
                        {"9.255.255.255", false, ""},
                        {"11.0.0.0", false, ""},
                        {"100.63.255.255", false, ""},
                        {"100.128.0.0", false, ""},
                        {"169.253.255.255", false, ""},
                        {"169.255.0.0", false, ""},
                        {"172.15.255.255", false, ""},
                        {"172.32.0.0", false, ""},
                        {"192.31.196.1", false, ""},  // AS112-v4: global
                        {"192.52.193.1", false, ""},  // AMT: global
                        {"192.167.255.255", false, ""},
                        {"192.169.0.0", false, ""},
                        {"198.17.255.255", false, ""},
                        {"198.20.0.0", false, ""},
                        {"223.255.255.255", false, ""},
                    });
}

TEST_CASE("IPv6 special-purpose registry and the space outside 2000::/3", "[policy][internal]") {
  const policy::InternalRanges ranges;
  checkRows(ranges, {
                        {"::", true, "::/128"},
                        {"::1", true, "::1/128"},
                        {"64:ff9b:1::1", true, "64:ff9b:1::/48"},
                        {"100::1", true, "100::/64"},
                        {"2001::1", true, "2001::/32"},  // Teredo
                        {"2001:2::1", true, "2001:2::/48"},
                        {"2001:10::1", true, "2001:10::/28"},
                        {"2001:db8::1", true, "2001:db8::/32"},
                        {"2001:db8:ffff::1", true, "2001:db8::/32"},
                        {"3fff::1", true, "3fff::/20"},
                        {"5f00::1", true, "5f00::/16"},
                        {"fc00::1", true, "fc00::/7"},
                        {"fd00:ec2::254", true, "fc00::/7"},  // AWS IMDS over IPv6
                        {"fe80::1", true, "fe80::/10"},
                        {"fec0::1", true, "fec0::/10"},
                        {"ff02::1", true, "ff00::/8"},
                        {"1::1", true, "::/0"},
                        {"4000::1", true, "::/0"},
                        {"2001:1::1", false, "2001:1::1/128"},
                        {"2001:1::2", false, "2001:1::2/128"},
                        {"2001:1::3", false, "2001:1::3/128"},
                        {"2001:1::4", true, "2001::/23"},
                        {"2001:3::1", false, "2001:3::/32"},
                        {"2001:4:112::1", false, "2001:4:112::/48"},
                        {"2001:20::1", false, "2001:20::/28"},
                        {"2001:30::1", false, "2001:30::/28"},
                        {"2001:200::1", false, "2000::/3"},  // just past 2001::/23
                        {"2001:4860:4860::8888", false, "2000::/3"},
                        {"2a00:1450::1", false, "2000::/3"},
                        {"3ffe::1", false, "2000::/3"},
                    });
}

TEST_CASE("embedding forms are classified like the IPv4 address inside", "[policy][internal]") {
  const policy::InternalRanges ranges;
  struct Embed {
    const char* address;
    const char* ipv4;
    bool internal;
  };
  const std::vector<Embed> rows = {
      {"::ffff:169.254.169.254", "169.254.169.254", true},  // IPv4-mapped
      {"::ffff:10.1.2.3", "10.1.2.3", true},
      {"::ffff:8.8.8.8", "8.8.8.8", false},
      {"64:ff9b::a9fe:a9fe", "169.254.169.254", true},  // NAT64
      {"64:ff9b::192.168.1.1", "192.168.1.1", true},
      {"64:ff9b::100.64.0.1", "100.64.0.1", true},
      {"64:ff9b::808:808", "8.8.8.8", false},
      {"2002:a9fe:a9fe::1", "169.254.169.254", true},  // 6to4
      {"2002:7f00:1::", "127.0.0.1", true},
      {"2002:808:808::1", "8.8.8.8", false},
      {"::10.0.0.1", "10.0.0.1", true},  // IPv4-compatible
      {"::8.8.8.8", "8.8.8.8", false},
  };
  for (const Embed& row : rows) {
    INFO(row.address);
    const policy::AddressClass c = ranges.classify(ip(row.address));
    CHECK(c.embedded);
    CHECK(c.embeddedIpv4 == ip(row.ipv4));
    CHECK(c.internal == row.internal);
    CHECK(c.internal == ranges.isInternal(ip(row.ipv4)));
  }
  // :: and ::1 are inside ::/96 but have their own, longer entries; both
  // agree with 0.0.0.0/8 anyway.
  CHECK_FALSE(ranges.classify(ip("::1")).embedded);
  CHECK(ranges.isInternal(ip("::1")));
}

TEST_CASE("every built-in range has a source and parses, and internal ranges classify as themselves",
          "[policy][internal]") {
  const policy::InternalRanges ranges;
  for (const policy::SpecialRange& range : policy::specialRanges()) {
    INFO(range.network);
    CHECK_FALSE(range.name.empty());
    CHECK(range.source.rfind("RFC ", 0) == 0);
    const auto parsed = common::parseIpNetwork(range.network);
    REQUIRE(parsed.network);
    if (range.kind == policy::RangeKind::Embedded) {
      CHECK(parsed.network->address.family == common::IpFamily::V6);
      continue;
    }
    // The last address of the range: decided by this entry unless a longer
    // entry covers it.
    common::IpAddress last = parsed.network->address;
    for (unsigned bit = parsed.network->prefixLength; bit < last.bitLength(); ++bit) {
      last.bytes[bit / 8] = static_cast<uint8_t>(last.bytes[bit / 8] | (1U << (7 - bit % 8)));
    }
    const policy::AddressClass c = ranges.classify(last);
    if (c.network == *parsed.network) CHECK(c.internal == (range.kind == policy::RangeKind::Internal));
  }
}

TEST_CASE("rules.internal_cidrs widens and rules.public_cidrs narrows: the most specific range decides",
          "[policy][internal]") {
  const std::vector<common::IpNetwork> internal = {net("8.8.8.0/24"), net("10.5.0.0/16"),
                                                   net("2a00:1450::/32")};
  const std::vector<common::IpNetwork> publicRanges = {net("10.0.0.0/8"), net("198.51.100.0/24"),
                                                       net("169.254.0.0/16"), net("fd00:77::/64")};
  const policy::InternalRanges ranges(internal, publicRanges);
  checkRows(ranges, {
                        {"8.8.8.8", true, "8.8.8.0/24"},
                        {"8.8.4.4", false, ""},
                        {"10.1.2.3", false, "10.0.0.0/8"},  // operator wins at equal length
                        {"10.5.1.1", true, "10.5.0.0/16"},  // longer prefix wins
                        {"169.254.169.254", false, "169.254.0.0/16"},
                        {"198.51.100.7", false, "198.51.100.0/24"},
                        {"203.0.113.7", true, "203.0.113.0/24"},  // untouched
                        {"2a00:1450::1", true, "2a00:1450::/32"},
                        {"fd00:77::2", false, "fd00:77::/64"},
                        {"fd00:78::2", true, "fc00::/7"},
                        {"::ffff:10.1.2.3", false, "10.0.0.0/8"},  // embedding forms follow the IPv4
                        {"64:ff9b::a05:101", true, "10.5.0.0/16"},
                    });
  CHECK(ranges.classify(ip("10.5.1.1")).origin == policy::RangeOrigin::OperatorInternal);
  CHECK(ranges.classify(ip("10.1.2.3")).origin == policy::RangeOrigin::OperatorPublic);
  CHECK(ranges == policy::InternalRanges(internal, publicRanges));
  CHECK_FALSE(ranges == policy::InternalRanges());
}

TEST_CASE("operator ranges inside an embedding form are refused with the IPv4 network to write",
          "[policy][internal]") {
  struct Case {
    const char* network;
    const char* want;  // "" = accepted
  };
  const std::vector<Case> cases = {
      {"::ffff:10.0.0.0/104", "write 10.0.0.0/8 instead"},
      {"::ffff:169.254.169.254/128", "write 169.254.169.254/32 instead"},
      {"64:ff9b::/96", "write 0.0.0.0/0 instead"},
      {"64:ff9b::a00:0/104", "write 10.0.0.0/8 instead"},
      {"2002:a00::/24", "write 10.0.0.0/8 instead"},
      {"2002::/16", "write 0.0.0.0/0 instead"},
      {"::/96", "IPv4-compatible"},
      {"2001:db8::/32", ""},
      {"::/0", ""},  // contains the forms: the longer built-in entries still apply
      {"64:ff9b:1::/48", ""},
      {"10.0.0.0/8", ""},
  };
  for (const Case& c : cases) {
    INFO(c.network);
    const auto problem = policy::checkOperatorRange(net(c.network));
    if (std::string(c.want).empty()) {
      CHECK_FALSE(problem);
    } else {
      REQUIRE(problem);
      CHECK_THAT(*problem, Catch::Matchers::Contains(c.want));
      CHECK_THAT(*problem, Catch::Matchers::Contains(c.network));
    }
  }
}

TEST_CASE("describeClass names the range and its source", "[policy][internal]") {
  const policy::InternalRanges ranges;
  CHECK(policy::describeClass(ranges.classify(ip("169.254.169.254"))) ==
        "169.254.0.0/16 link-local (cloud metadata 169.254.169.254) (RFC 3927)");
  CHECK(policy::describeClass(ranges.classify(ip("64:ff9b::a00:1"))) ==
        "NAT64 well-known prefix form of 10.0.0.1, 10.0.0.0/8 private-use (RFC 1918)");
  CHECK(policy::describeClass(ranges.classify(ip("8.8.8.8"))) == "public (in no special-purpose range)");
  const std::vector<common::IpNetwork> extra = {net("8.8.8.0/24")};
  CHECK(policy::describeClass(policy::InternalRanges(extra, {}).classify(ip("8.8.8.8"))) ==
        "8.8.8.0/24 listed in rules.internal_cidrs");
}

TEST_CASE("classify is allocation-free (the packet and query paths call it)", "[policy][internal]") {
  const policy::InternalRanges ranges;
  const common::IpAddress addresses[] = {ip("169.254.169.254"), ip("8.8.8.8"), ip("64:ff9b::a00:1"),
                                         ip("2a00:1450::1"), ip("fd00:ec2::254")};
  size_t internal = 0;
  testsupport::AllocationCounter counter;
  for (int round = 0; round < 100; ++round) {
    for (const auto& address : addresses) internal += ranges.classify(address).internal ? 1 : 0;
  }
  CHECK(counter.count() == 0);
  CHECK(internal == 300);
}

TEST_CASE("the policy snapshot carries the ranges and explain leaves world access out for internal addresses",
          "[policy][internal]") {
  const std::vector<policy::RuleSet> sets = {testsupport::ruleSet("team", "world", {"*:80", "*:443"}),
                                             testsupport::ruleSet("team", "db", {"10.20.0.0/16:5432"})};
  const auto defaults = policy::Policy::compile(sets);
  CHECK(defaults->isInternal(ip("169.254.169.254")));
  CHECK_FALSE(defaults->isInternal(ip("8.8.8.8")));
  CHECK(defaults->explain("169.254.169.254", 80).empty());
  CHECK(defaults->explain("[fd00:ec2::254]", 80).empty());
  REQUIRE(defaults->explain("8.8.8.8", 80).size() == 1);
  CHECK(defaults->explain("8.8.8.8", 80)[0].kind == policy::MatchKind::World);
  CHECK(defaults->explain("metadata.example.com", 80).size() == 1);  // names: world access applies
  REQUIRE(defaults->explain("10.20.1.1", 5432).size() == 1);
  CHECK(defaults->explain("10.20.1.1", 5432)[0].kind == policy::MatchKind::Network);

  const std::vector<common::IpNetwork> publicRanges = {net("169.254.0.0/16")};
  const auto narrowed = policy::Policy::compile(sets, policy::InternalRanges({}, publicRanges));
  CHECK_FALSE(narrowed->isInternal(ip("169.254.169.254")));
  CHECK(narrowed->explain("169.254.169.254", 80).size() == 1);
}

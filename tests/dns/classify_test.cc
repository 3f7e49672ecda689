// classifyQuery against real compiled policies (table-driven).
#include <catch2/catch.hpp>

#include "dns/classify.h"
#include "dns_test_util.h"

using dns::DenyReason;
using dns::QueryAction;

namespace {

dns::Classification classify(const dnstest::Msg& m, const policy::Policy& p, const dns::DnsOptions& options) {
  dns::Query q;
  const auto status = dns::parseQuery(m.bytes, q);
  return dns::classifyQuery(status, q, p, options);
}

}  // namespace

TEST_CASE("allowed names forward, others are denied with the configured rcode", "[dns][classify]") {
  const auto p =
      dnstest::makePolicy({"api.example.com:443", "*.wild.example.org:8443", "203.0.113.0/24:443"});
  dns::DnsOptions options;
  struct Case {
    const char* name;
    QueryAction action;
    DenyReason reason;
  };
  const Case cases[] = {
      {"api.example.com", QueryAction::Forward, DenyReason::None},
      {"API.Example.Com", QueryAction::Forward, DenyReason::None},
      {"a.wild.example.org", QueryAction::Forward, DenyReason::None},
      {"x.y.wild.example.org", QueryAction::Forward, DenyReason::None},
      {"wild.example.org", QueryAction::Deny, DenyReason::NotAllowed},
      {"example.com", QueryAction::Deny, DenyReason::NotAllowed},
      {"evil.com", QueryAction::Deny, DenyReason::NotAllowed},
      {"api.example.com.evil.com", QueryAction::Deny, DenyReason::NotAllowed},
      {"kubernetes.default.svc.cluster.local", QueryAction::Cluster, DenyReason::None},
      {"cluster.local", QueryAction::Cluster, DenyReason::None},
      {"notcluster.local", QueryAction::Deny, DenyReason::NotAllowed},
      {"", QueryAction::Deny, DenyReason::InvalidName},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    const auto result = classify(dnstest::query(c.name, dns::rrtype::A), *p, options);
    CHECK(result.action == c.action);
    CHECK(result.reason == c.reason);
    if (c.action == QueryAction::Deny) CHECK(result.rcode == dns::rcode::NxDomain);
  }
  options.denyRcode = dns::DenyRcode::Refused;
  CHECK(classify(dnstest::query("evil.com", 1), *p, options).rcode == dns::rcode::Refused);
}

TEST_CASE("world access on one port makes every name resolve", "[dns][classify]") {
  const auto p = dnstest::makePolicy({"*:80"});
  dns::DnsOptions options;
  const auto result = classify(dnstest::query("anything.example.net", 1), *p, options);
  CHECK(result.action == QueryAction::Forward);
  CHECK(result.worldOnly);  // the tunnel guard charges it
}

// Issue 12: with only world access in force, every pod had an open DNS
// tunnel through TXT/NULL/ANY queries to any authoritative server.
TEST_CASE("world access forwards only address queries for names no other rule allows", "[dns][classify]") {
  const auto p = dnstest::makePolicy({"*:80", "api.example.com:443", "*.wild.example.org:443"});
  dns::DnsOptions options;
  struct Case {
    const char* name;
    uint16_t qtype;
    QueryAction action;
    DenyReason reason;
    bool worldOnly;
  };
  constexpr uint16_t kTxt = 16;
  constexpr uint16_t kNull = 10;
  const Case cases[] = {
      {"x.tunnel.example.net", dns::rrtype::A, QueryAction::Forward, DenyReason::None, true},
      {"x.tunnel.example.net", dns::rrtype::AAAA, QueryAction::Forward, DenyReason::None, true},
      {"x.tunnel.example.net", kTxt, QueryAction::Deny, DenyReason::WorldNonAddressQuery, true},
      {"x.tunnel.example.net", kNull, QueryAction::Deny, DenyReason::WorldNonAddressQuery, true},
      {"x.tunnel.example.net", dns::rrtype::ANY, QueryAction::Deny, DenyReason::WorldNonAddressQuery, true},
      {"x.tunnel.example.net", dns::rrtype::MX, QueryAction::Deny, DenyReason::WorldNonAddressQuery, true},
      {"x.tunnel.example.net", dns::rrtype::HTTPS, QueryAction::Deny, DenyReason::WorldNonAddressQuery, true},
      {"x.tunnel.example.net", dns::rrtype::CNAME, QueryAction::Deny, DenyReason::WorldNonAddressQuery, true},
      // Exact and wildcard names are the user's explicit choice: any type,
      // never budgeted.
      {"api.example.com", kTxt, QueryAction::Forward, DenyReason::None, false},
      {"API.example.com", dns::rrtype::A, QueryAction::Forward, DenyReason::None, false},
      {"a.wild.example.org", kTxt, QueryAction::Forward, DenyReason::None, false},
      {"a.wild.example.org", dns::rrtype::A, QueryAction::Forward, DenyReason::None, false},
  };
  for (const auto& c : cases) {
    INFO(c.name << " type " << c.qtype);
    const auto result = classify(dnstest::query(c.name, c.qtype), *p, options);
    CHECK(result.action == c.action);
    CHECK(result.reason == c.reason);
    if (c.action == QueryAction::Forward) CHECK(result.worldOnly == c.worldOnly);
    // NODATA, not NXDOMAIN: the name exists for A/AAAA (RFC 2308 section 5).
    if (c.action == QueryAction::Deny) CHECK(result.rcode == dns::rcode::NoError);
  }
  CHECK(dns::denyReasonName(DenyReason::WorldNonAddressQuery) == "world_non_address_query");
  CHECK(dns::denyReasonName(DenyReason::TunnelBudget) == "dns_tunnel_budget");
}

// Issue 12: audit mode answered NXDOMAIN for every name not yet in a rule
// set, so following docs/deploy.md broke every pod's lookups.
TEST_CASE("audit mode forwards what enforce denies and says why", "[dns][classify]") {
  const auto p = dnstest::makePolicy({"api.example.com:443"});
  dns::DnsOptions options;
  options.audit = true;
  auto result = classify(dnstest::query("evil.example.net", dns::rrtype::A), *p, options);
  CHECK(result.action == QueryAction::Forward);
  CHECK(result.audit);
  CHECK(result.reason == DenyReason::NotAllowed);
  result = classify(dnstest::query("api.example.com", dns::rrtype::A), *p, options);
  CHECK(result.action == QueryAction::Forward);
  CHECK_FALSE(result.audit);
  CHECK(result.reason == DenyReason::None);
  // World access: the non-address query would be denied, and goes through.
  const auto world = dnstest::makePolicy({"*:80"});
  result = classify(dnstest::query("x.example.net", 16), *world, options);
  CHECK(result.action == QueryAction::Forward);
  CHECK(result.audit);
  CHECK(result.reason == DenyReason::WorldNonAddressQuery);
  // Protocol refusals are not policy: unchanged in audit mode.
  CHECK(classify(dnstest::query("evil.example.net", dns::rrtype::AXFR), *p, options).action ==
        QueryAction::Refuse);
  // Rebinding is never audited (it protects the pod).
  CHECK(dns::denial(DenyReason::Rebinding, options).action == QueryAction::Deny);
}

TEST_CASE("an empty policy denies everything but cluster names", "[dns][classify]") {
  const auto p = policy::Policy::empty();
  dns::DnsOptions options;
  options.clusterDomains = {"svc.example", "cluster.local"};
  CHECK(classify(dnstest::query("a.svc.example", 1), *p, options).action == QueryAction::Cluster);
  CHECK(classify(dnstest::query("api.example.com", 1), *p, options).action == QueryAction::Deny);
  options.clusterDomains = {""};  // never means "everything"
  CHECK(classify(dnstest::query("api.example.com", 1), *p, options).action == QueryAction::Deny);
}

TEST_CASE("odd labels never match a rule even when the text would", "[dns][classify]") {
  const auto p = dnstest::makePolicy({"api.example.com:443"});
  dnstest::Msg m;
  // One label "api.example" then "com": text "api.example.com".
  m.header(1, 0, 1, 0, 0, 0)
      .raw({11, 'a', 'p', 'i', '.', 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0});
  m.u16(1).u16(1);
  const auto result = classify(m, *p, dns::DnsOptions{});
  CHECK(result.action == QueryAction::Deny);
  CHECK(result.reason == DenyReason::InvalidName);
}

TEST_CASE("opcodes, classes, transfers and EDNS versions are refused without policy lookup",
          "[dns][classify]") {
  const auto p = dnstest::makePolicy({"api.example.com:443"});
  dns::DnsOptions options;
  dnstest::Msg notify;
  notify.header(1, 4 << 11, 1, 0, 0, 0).question("api.example.com", dns::rrtype::SOA);  // NOTIFY
  auto r = classify(notify, *p, options);
  CHECK(r.action == QueryAction::Refuse);
  CHECK(r.rcode == dns::rcode::NotImp);
  dnstest::Msg update;
  update.header(1, 5 << 11, 1, 0, 0, 0).question("api.example.com", dns::rrtype::SOA);
  CHECK(classify(update, *p, options).rcode == dns::rcode::NotImp);

  dnstest::Msg chaos;
  chaos.header(1, 0, 1, 0, 0, 0).question("version.bind", 16, 3);
  r = classify(chaos, *p, options);
  CHECK(r.action == QueryAction::Refuse);
  CHECK(r.rcode == dns::rcode::Refused);

  r = classify(dnstest::query("api.example.com", dns::rrtype::AXFR), *p, options);
  CHECK(r.action == QueryAction::Refuse);

  dnstest::Msg v1;
  v1.header(1, 0, 1, 0, 0, 1).question("api.example.com", 1).opt(1232, false, 1);
  r = classify(v1, *p, options);
  CHECK(r.action == QueryAction::Refuse);
  CHECK(r.rcode == dns::kRcodeBadVers);

  CHECK(classify(dnstest::query("api.example.com", dns::rrtype::OPT), *p, options).action ==
        QueryAction::FormErr);
}

TEST_CASE("malformed queries: FORMERR with a header, dropped without one or when a response",
          "[dns][classify]") {
  const auto p = policy::Policy::empty();
  dns::DnsOptions options;
  dnstest::Msg tooShort;
  tooShort.raw({1, 2, 3});
  CHECK(classify(tooShort, *p, options).action == QueryAction::Drop);
  dnstest::Msg response;
  response.header(1, dns::flag::QR, 1, 0, 0, 0).question("a.b", 1);
  CHECK(classify(response, *p, options).action == QueryAction::Drop);
  dnstest::Msg noQuestion;
  noQuestion.header(1, 0, 0, 0, 0, 0);
  CHECK(classify(noQuestion, *p, options).action == QueryAction::FormErr);
}

TEST_CASE("isUnderDomain matches whole labels", "[dns][classify]") {
  CHECK(dns::isUnderDomain("a.cluster.local", "cluster.local"));
  CHECK(dns::isUnderDomain("cluster.local", "cluster.local"));
  CHECK_FALSE(dns::isUnderDomain("xcluster.local", "cluster.local"));
  CHECK_FALSE(dns::isUnderDomain("local", "cluster.local"));
  CHECK_FALSE(dns::isUnderDomain("a.b", ""));
}

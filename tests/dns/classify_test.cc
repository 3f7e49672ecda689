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
  CHECK(classify(dnstest::query("anything.example.net", 1), *p, options).action == QueryAction::Forward);
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

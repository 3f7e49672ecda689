// The DNS take-over rules (dns.intercept) as text: the socket-gated NOTRACK,
// the loop guard ahead of it, egressd's answers untracked, the masquerade
// for node processes, idempotent jumps, and removal of only egressd's
// chains. The kernel's view of them: tests/e2e/cluster_dns_test.sh.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "nfq/dns_intercept.h"

namespace {

nfq::DnsInterceptOptions options() {
  nfq::DnsInterceptOptions o;
  o.addresses = {common::parseSocketAddress("10.96.0.10:53").value(),
                 common::parseSocketAddress("[fd00:96::a]:53").value()};
  return o;
}

// What kube-proxy and an earlier egressd leave in the raw table.
const char* kRawSave =
    "*raw\n"
    ":PREROUTING ACCEPT [0:0]\n"
    ":OUTPUT ACCEPT [0:0]\n"
    ":EGRESSD-DNS - [0:0]\n"
    ":EGRESSD-DNS-OUT - [0:0]\n"
    ":OTHER - [0:0]\n"
    "-A PREROUTING -m comment --comment egressd -j EGRESSD-DNS\n"
    "-A PREROUTING -j OTHER\n"
    "-A OUTPUT -m comment --comment egressd -j EGRESSD-DNS-OUT\n"
    "-A EGRESSD-DNS -d 10.96.0.10/32 -p udp -m udp --dport 53 -m socket -j CT --notrack\n"
    "COMMIT\n";

}  // namespace

TEST_CASE("raw: loop guard, then the socket-gated NOTRACK, then egressd's answers", "[nfq][dns_intercept]") {
  const std::vector<std::string> rules =
      nfq::renderInterceptRules(options(), nfq::IpTablesFamily::V4, nfq::InterceptTable::Raw);
  const std::vector<std::string> want = {
      "-A EGRESSD-DNS -s 10.96.0.10/32 -d 10.96.0.10/32 -p udp -m udp --dport 53 -j DROP",
      "-A EGRESSD-DNS -s 10.96.0.10/32 -d 10.96.0.10/32 -p tcp -m tcp --dport 53 -j DROP",
      "-A EGRESSD-DNS -d 10.96.0.10/32 -p udp -m udp --dport 53 -m socket -j CT --notrack",
      "-A EGRESSD-DNS -d 10.96.0.10/32 -p tcp -m tcp --dport 53 -m socket -j CT --notrack",
      "-A EGRESSD-DNS-OUT -s 10.96.0.10/32 -p udp -m udp --sport 53 -j CT --notrack",
      "-A EGRESSD-DNS-OUT -s 10.96.0.10/32 -p tcp -m tcp --sport 53 -j CT --notrack",
  };
  CHECK(rules == want);
  // Never --nowildcard: a wildcard listener (another DNS server on the node)
  // must not take the Service address over.
  for (const std::string& rule : rules) CHECK(rule.find("nowildcard") == std::string::npos);
}

TEST_CASE("nat: node processes asking the address reach CoreDNS from the node's address",
          "[nfq][dns_intercept]") {
  CHECK(nfq::renderInterceptRules(options(), nfq::IpTablesFamily::V4, nfq::InterceptTable::Nat) ==
        std::vector<std::string>{"-A EGRESSD-DNS-SNAT -s 10.96.0.10/32 -m conntrack --ctstate DNAT "
                                 "--ctorigdst 10.96.0.10 -j MASQUERADE"});
  CHECK(nfq::renderInterceptRules(options(), nfq::IpTablesFamily::V6, nfq::InterceptTable::Nat) ==
        std::vector<std::string>{"-A EGRESSD-DNS-SNAT -s fd00:96::a/128 -m conntrack --ctstate DNAT "
                                 "--ctorigdst fd00:96::a -j MASQUERADE"});
}

TEST_CASE("each family gets only its own addresses", "[nfq][dns_intercept]") {
  const auto v6 = nfq::renderInterceptRules(options(), nfq::IpTablesFamily::V6, nfq::InterceptTable::Raw);
  REQUIRE(v6.size() == 6);
  for (const std::string& rule : v6) {
    CHECK(rule.find("fd00:96::a/128") != std::string::npos);
    CHECK(rule.find("10.96.0.10") == std::string::npos);
  }
  nfq::DnsInterceptOptions other;
  other.addresses = {common::parseSocketAddress("10.100.0.10:5353").value()};
  CHECK(nfq::renderInterceptRules(other, nfq::IpTablesFamily::V6, nfq::InterceptTable::Raw).empty());
  CHECK(nfq::renderInterceptRules(other, nfq::IpTablesFamily::V4, nfq::InterceptTable::Raw)[2] ==
        "-A EGRESSD-DNS -d 10.100.0.10/32 -p udp -m udp --dport 5353 -m socket -j CT --notrack");
}

TEST_CASE("apply refills the chains and adds only the missing jumps", "[nfq][dns_intercept]") {
  const std::string fresh = nfq::renderInterceptApply(options(), nfq::IpTablesFamily::V4,
                                                      nfq::InterceptTable::Raw, "*raw\nCOMMIT\n");
  CHECK(fresh.rfind("*raw\n:EGRESSD-DNS - [0:0]\n:EGRESSD-DNS-OUT - [0:0]\n", 0) == 0);
  CHECK(fresh.find("-I PREROUTING 1 -m comment --comment egressd -j EGRESSD-DNS\n") != std::string::npos);
  CHECK(fresh.find("-I OUTPUT 1 -m comment --comment egressd -j EGRESSD-DNS-OUT\n") != std::string::npos);
  CHECK(fresh.size() > 8);
  CHECK(fresh.substr(fresh.size() - 7) == "COMMIT\n");

  const std::string again =
      nfq::renderInterceptApply(options(), nfq::IpTablesFamily::V4, nfq::InterceptTable::Raw, kRawSave);
  CHECK(again.find("-I PREROUTING") == std::string::npos);
  CHECK(again.find("-I OUTPUT") == std::string::npos);
  CHECK(again.find(":EGRESSD-DNS - [0:0]") != std::string::npos);

  const std::string nat = nfq::renderInterceptApply(options(), nfq::IpTablesFamily::V4,
                                                    nfq::InterceptTable::Nat, "*nat\nCOMMIT\n");
  CHECK(nat.rfind("*nat\n:EGRESSD-DNS-SNAT - [0:0]\n", 0) == 0);
  CHECK(nat.find("-I POSTROUTING 1 -m comment --comment egressd -j EGRESSD-DNS-SNAT\n") != std::string::npos);
}

TEST_CASE("no address of the family: apply removes what an earlier run left", "[nfq][dns_intercept]") {
  nfq::DnsInterceptOptions none;
  const std::string input =
      nfq::renderInterceptApply(none, nfq::IpTablesFamily::V4, nfq::InterceptTable::Raw, kRawSave);
  CHECK(input ==
        "*raw\n"
        "-D PREROUTING -m comment --comment egressd -j EGRESSD-DNS\n"
        "-D OUTPUT -m comment --comment egressd -j EGRESSD-DNS-OUT\n"
        "-F EGRESSD-DNS\n"
        "-F EGRESSD-DNS-OUT\n"
        "-X EGRESSD-DNS\n"
        "-X EGRESSD-DNS-OUT\n"
        "COMMIT\n");
  // Nothing of egressd's: nothing to run; someone else's chain is not ours.
  CHECK(nfq::renderInterceptApply(none, nfq::IpTablesFamily::V4, nfq::InterceptTable::Raw,
                                  "*raw\n:OTHER - [0:0]\n-A PREROUTING -j OTHER\nCOMMIT\n")
            .empty());
  CHECK(nfq::renderInterceptRemove(none, nfq::InterceptTable::Nat, "*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n")
            .empty());
}

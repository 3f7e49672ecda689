#include "observe/filter.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <new>
#include <string>
#include <variant>
#include <vector>

#include "test_events.h"
#include "tests/support/alloc_counter.h"

using observe::Event;
using observe::Filter;
using observe::FilterError;
using observe::parseFilter;
using namespace observetest;

namespace {

Filter mustParse(const std::string& text) {
  auto result = parseFilter(text);
  if (auto* error = std::get_if<FilterError>(&result))
    FAIL("'" << text << "' failed: " << error->pointAt(text));
  return std::move(std::get<Filter>(result));
}

FilterError mustFail(const std::string& text) {
  auto result = parseFilter(text);
  if (std::holds_alternative<Filter>(result))
    FAIL("'" << text << "' parsed as " << std::get<Filter>(result).text());
  return std::get<FilterError>(result);
}

struct Row {
  std::string filter;
  Event event;
  bool expected;
};

}  // namespace

TEST_CASE("filter: table of filters, events and expected matches") {
  const Event tls = tlsAllowed();   // 10.0.1.2:51234 > 203.0.113.7:443 tcp sni=api.example.com ALLOW
  const Event http = httpDenied();  // 10.0.1.2:40000 > 198.51.100.9:80 tcp host=evil.example DENY
  const Event quic = quicAudit();   // [2001:db8::5]:5555 > [2001:db8:1::7]:443 udp AUDIT
  const Event icmp = icmpDenied();  // 10.0.1.3 > 192.0.2.8 icmp DENY
  const Event mapped =
      mappedAllowed();              // ::ffff:10.0.1.9:1000 > ::ffff:192.0.2.1:8443 tcp bound=www.example.com
  const Event dnsNo = dnsDenied();  // 10.0.1.2:40001 > 10.0.1.1:53 dns A evil.example DENY
  const Event dnsYes = dnsAllowedV6();  // [fd00::2]:3333 > [fd00::1]:53 dns AAAA api.example.com ALLOW

  const std::vector<Row> rows = {
      // empty filter
      {"", tls, true},
      {"   \t", icmp, true},
      // host: either end, src/dst, IPv6, brackets, IPv4-mapped both ways
      {"host 203.0.113.7", tls, true},
      {"host 10.0.1.2", tls, true},
      {"host 10.0.1.3", tls, false},
      {"src host 10.0.1.2", tls, true},
      {"dst host 10.0.1.2", tls, false},
      {"src or dst host 203.0.113.7", tls, true},
      {"src and dst host 10.0.1.2", tls, false},
      {"host 2001:db8::5", quic, true},
      {"host [2001:db8:1::7]", quic, true},
      {"host 2001:DB8::6", quic, false},
      {"host 10.0.1.9", mapped, true},
      {"dst host ::ffff:192.0.2.1", mapped, true},
      {"host ::ffff:10.0.1.2", tls, true},
      {"10.0.1.3", icmp, true},
      {"dst 192.0.2.8", icmp, true},
      {"src 192.0.2.8", icmp, false},
      // net
      {"net 203.0.113.0/24", tls, true},
      {"net 203.0.112.0/24", tls, false},
      {"src net 10.0.0.0/8", tls, true},
      {"dst net 10.0.0.0/8", tls, false},
      {"net 0.0.0.0/0", icmp, true},
      {"net 2001:db8::/32", quic, true},
      {"dst net 2001:db8:1::/48", quic, true},
      {"src net 2001:db8:1::/48", quic, false},
      {"net 192.0.2.0/24", mapped, true},
      {"net ::ffff:192.0.2.0/120", mapped, true},
      {"net ::ffff:0:0/96", tls, true},
      {"net 2001:db8::/32", tls, false},
      {"net 10.0.0.0/8", quic, false},
      {"net 192.0.2.1", mapped, true},
      // port and ranges
      {"port 443", tls, true},
      {"port 51234", tls, true},
      {"port 80", tls, false},
      {"dst port 443", tls, true},
      {"src port 443", tls, false},
      {"port 440-450", quic, true},
      {"portrange 1-442", quic, false},
      {"portrange 5000-6000", quic, true},
      {"dst portrange 5000-6000", quic, false},
      {"port 1-65535", icmp, false},
      {"port 53", dnsNo, true},
      // name: exact, case, trailing dot, wildcard depth, the apex, any
      {"name api.example.com", tls, true},
      {"name API.Example.COM.", tls, true},
      {"name example.com", tls, false},
      {"name *.example.com", tls, true},
      {"name *.example.com", mapped, true},
      {"name *.example.net", quic, true},  // video.cdn.example.net: two labels in front
      {"name *.cdn.example.net", quic, true},
      {"name *.video.cdn.example.net", quic, false},  // not the name itself
      {"name *.api.example.com", tls, false},
      {"name *.ample.com", tls, false},  // whole labels only
      {"name *", tls, true},
      {"name *", icmp, false},
      {"name evil.example", dnsNo, true},
      // verdict
      {"verdict allow", tls, true},
      {"verdict deny", http, true},
      {"verdict deny", quic, false},
      {"verdict audit", quic, true},
      {"VERDICT Deny", icmp, true},
      // proto and the bare protocol keywords
      {"tcp", tls, true},
      {"udp", tls, false},
      {"proto udp", quic, true},
      {"icmp", icmp, true},
      {"proto 1", icmp, true},
      {"icmp6", icmp, false},
      {"proto 17", dnsNo, true},
      {"ip", tls, true},
      {"ip", quic, false},
      {"ip6", quic, true},
      {"ip", mapped, true},
      // dns
      {"dns", dnsNo, true},
      {"dns", tls, false},
      {"dns and verdict deny", dnsNo, true},
      {"dns and name api.example.com and ip6", dnsYes, true},
      {"dns and tcp", dnsYes, true},
      {"not dns", tls, true},
      // ruleset
      {"ruleset default/my-app-targets", tls, true},
      {"ruleset team-a/web", tls, true},
      {"ruleset team-a/we", tls, false},
      {"ruleset team-a/*", tls, true},
      {"ruleset kube-system/*", tls, false},
      {"ruleset kube-system/registry", mapped, true},
      {"ruleset default/my-app-targets", dnsYes, true},
      {"ruleset default/my-app-targets", http, false},
      // attribution: namespace, pod, workload (events without a pod never match)
      {"namespace team-a", podDenied(), true},
      {"namespace team-b", podDenied(), false},
      {"namespace team-*", podDenied(), true},
      {"namespace *", podDenied(), true},
      {"namespace *", tls, false},
      {"not namespace team-a", tls, true},
      {"pod team-a/web-7d9c6b5f4-x2x9q", podDenied(), true},
      {"pod team-a/web-*", podDenied(), true},
      {"pod team-a/*", podDenied(), true},
      {"pod team-b/web-*", podDenied(), false},
      {"pod team-a/web", podDenied(), false},
      {"pod team-b/db-0", podDns(), true},
      {"pod team-a/*", tls, false},
      {"workload Deployment/web", podDenied(), true},
      {"workload deployment/web", podDenied(), true},
      {"workload Deployment/w*", podDenied(), true},
      {"workload StatefulSet/web", podDenied(), false},
      {"workload Deployment/we", podDenied(), false},
      {"workload StatefulSet/db", podDns(), true},
      {"workload StatefulSet/*", tls, false},
      {"namespace team-a or team-b", podDns(), true},
      {"dns and workload StatefulSet/db", podDns(), true},
      // boolean operators, precedence (not > and > or), parentheses
      {"port 443 and verdict allow", tls, true},
      {"port 443 && verdict deny", tls, false},
      {"port 80 || port 443", tls, true},
      {"port 443 verdict allow", tls, true},  // juxtaposition = and
      {"not port 443", tls, false},
      {"! port 443", tls, false},
      {"!port 80", tls, true},
      {"not not port 443", tls, true},
      {"port 80 or port 443 and verdict deny", tls, false},  // or(80, and(443, deny))
      {"port 80 or port 443 and verdict deny", http, true},
      {"(port 80 or port 443) and verdict deny", tls, false},
      {"(port 80 or port 443) and verdict allow", tls, true},
      {"not port 80 and verdict deny", http, false},  // (not 80) and deny
      {"not (port 443 and verdict deny)", tls, true},
      {"((((tcp))))", tls, true},
      {"verdict deny or verdict audit", quic, true},
      // tcpdump's shorthand: the previous primitive's kind repeats
      {"port 80 or 443", tls, true},
      {"port 80 or 8443", tls, false},
      {"host 10.0.9.9 or 203.0.113.7", tls, true},
      {"dst host 10.0.9.9 or 10.0.1.2", tls, false},  // dst carries over
      {"verdict deny or audit", quic, true},
      {"proto icmp or 17", quic, true},
      {"name a.example or api.example.com", tls, true},
      {"tcp and port 443 and not 51234", tls, false},
      // port names, as tcpdump reads them from /etc/services
      {"port https", tls, true},
      {"dst port https", tls, true},
      {"src port https", tls, false},
      {"port http", http, true},
      {"port http", tls, false},
      {"port domain", dnsNo, true},
      {"port dns", dnsYes, true},
      {"port HTTP-ALT", mapped, false},
      {"port 80 or https", tls, true},
      {"port ssh or http", tls, false},
      // sni: only names read from a ClientHello or QUIC Initial
      {"sni api.example.com", tls, true},
      {"sni *.example.com", tls, true},
      {"sni *.cdn.example.net", quic, true},
      {"sni evil.example", http, false},       // a Host header, not an SNI
      {"sni www.example.com", mapped, false},  // a DNS binding
      {"sni api.example.com", dnsYes, false},  // a query
      {"sni *", tls, true},
      {"sni *", http, false},
      {"sni a.example or api.example.com", tls, true},
      // qtype and rcode: DNS events only
      {"qtype A", dnsNo, true},
      {"qtype a", dnsNo, true},
      {"qtype AAAA", dnsNo, false},
      {"qtype aaaa", dnsYes, true},
      {"qtype 28", dnsYes, true},
      {"qtype TYPE28", dnsYes, true},
      {"qtype TXT or AAAA", dnsYes, true},
      {"qtype A", tls, false},
      {"rcode NXDOMAIN", dnsNo, true},
      {"rcode nxdomain", dnsYes, false},
      {"rcode NOERROR", dnsYes, true},
      {"rcode 0", dnsYes, true},
      {"rcode NOERROR", tls, false},  // a connection has no rcode
      {"rcode SERVFAIL or 3", dnsNo, true},
      // reason: the whole word or a prefix
      {"reason sni_allowed", tls, true},
      {"reason SNI_Allowed", tls, true},
      {"reason sni_", tls, false},
      {"reason sni_*", tls, true},
      {"reason not_allowed", dnsNo, true},
      {"reason host_not_allowed or quic_not_allowed", quic, true},
      {"verdict deny and reason host_*", http, true},
      // keywords are case-insensitive
      {"PORT 443 AND NOT DNS", tls, true},
      {"Src Net 10.0.0.0/8 Or Dst Port 53", dnsNo, true},
  };

  REQUIRE(rows.size() >= 40);
  for (const Row& row : rows) {
    INFO("filter: " << row.filter);
    const Filter filter = mustParse(row.filter);
    CHECK(filter.matches(row.event) == row.expected);
    // The normalized text means the same thing.
    INFO("normalized: " << filter.text());
    const Filter again = mustParse(filter.text());
    CHECK(again.text() == filter.text());
    CHECK(again.matches(row.event) == row.expected);
  }
}

TEST_CASE("filter: normalized text") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", ""},
      {"PORT 80 || Port 443 && ! Verdict DENY", "port 80 or port 443 and not verdict deny"},
      {"(port 80 or port 443) and tcp", "(port 80 or port 443) and tcp"},
      {"((port 80))", "port 80"},
      {"not (dns or tcp)", "not (dns or tcp)"},
      {"port 80 or 443", "port 80 or port 443"},
      {"src or dst host 10.0.0.1", "host 10.0.0.1"},
      {"src and dst net 10.0.0.0/8", "src and dst net 10.0.0.0/8"},
      {"host [2001:DB8::1]", "host 2001:db8::1"},
      {"net 10.1.2.3", "net 10.1.2.3"},
      {"portrange 80-80", "port 80"},
      {"name *.Example.COM.", "name *.example.com"},
      {"proto icmpv6 or proto 47", "icmp6 or proto 47"},
      {"ruleset Default/App", "ruleset default/app"},
      {"NAMESPACE team-a or team-b", "namespace team-a or namespace team-b"},
      {"pod team-a/web-* or team-b/db-0", "pod team-a/web-* or pod team-b/db-0"},
      {"workload Deployment/web or StatefulSet/*", "workload Deployment/web or workload StatefulSet/*"},
      {"10.0.0.0/8", "net 10.0.0.0/8"},
      {"tcp udp", "tcp and udp"},
      // Hosts named like an operator keep their trailing dot, or the text
      // would not read back (found by fuzz_filter).
      {"name not.", "name not."},
      {"name *.e and ! not.", "name *.e and not name not."},
      {"name OR. or name and.", "name or. or name and."},
      {"port https or domain", "port 443 or port 53"},
      {"SNI *.Example.COM", "sni *.example.com"},
      {"sni not.", "sni not."},
      {"qtype aaaa or 16 or TYPE65", "qtype AAAA or qtype TXT or qtype HTTPS"},
      {"qtype 65280", "qtype 65280"},
      {"rcode nxdomain or 2", "rcode NXDOMAIN or rcode SERVFAIL"},
      {"rcode 23", "rcode 23"},
      {"Reason Not_Allowed or SNI_*", "reason not_allowed or reason sni_*"},
  };
  for (const auto& [input, normalized] : cases) {
    INFO(input);
    CHECK(mustParse(input).text() == normalized);
    CHECK(mustParse(normalized).text() == normalized);  // and it reads back as itself
  }
}

TEST_CASE("filter: a default Filter matches everything") {
  const Filter filter;
  CHECK(filter.matches(tlsAllowed()));
  CHECK(filter.matches(dnsDenied()));
  CHECK(filter.text().empty());
}

TEST_CASE("filter: an event name with a trailing dot matches") {
  const Event event = EventBuilder("10.0.0.1", 1, "10.0.0.2", 443, 6).name("api.example.com.", "sni");
  CHECK(mustParse("name api.example.com").matches(event));
  CHECK(mustParse("name *.example.com").matches(event));
}

TEST_CASE("filter: matching does not allocate") {
  const Filter filter = mustParse(
      "(name *.example.com or host 2001:db8::1 or ruleset team-a/*) and not port 22-25 and verdict allow");
  const Event events[] = {tlsAllowed(), quicAudit(), dnsAllowedV6(), mappedAllowed()};
  size_t matched = 0;
  size_t allocations = 0;
  {
    const testsupport::AllocationCounter counter;
    for (int i = 0; i < 100; ++i) {
      for (const Event& event : events) matched += filter.matches(event) ? 1 : 0;
    }
    allocations = counter.count();
  }
  CHECK(allocations == 0);
  CHECK(matched == 300);  // tls, dns and mapped match; quic is an audit
}

namespace {
struct ErrorRow {
  std::string filter;
  size_t offset;
  size_t length;
  std::string message;  // the whole message
};
}  // namespace

TEST_CASE("filter: errors point at the bad token") {
  const std::vector<ErrorRow> rows = {
      {"verdict maybe", 8, 5, "expected allow, deny or audit after 'verdict', got 'maybe'"},
      {"hots 10.0.0.1", 0, 4, "unknown keyword 'hots' (did you mean 'host'?)"},
      {"port 443 and frobnicate", 13, 10, "unknown keyword 'frobnicate'"},
      {"port 80)", 7, 1, "unbalanced ')'"},
      {"(port 80 or (dns)", 0, 1, "unbalanced '(' (no matching ')')"},
      {"port 70000", 5, 5, "port 70000 out of range 1..65535"},
      {"port 0", 5, 1, "port 0 out of range 1..65535"},
      {"port 1000-70000", 10, 5, "port 70000 out of range 1..65535"},
      {"port 90-80", 5, 5, "port range '90-80' is reversed (write 80-90)"},
      {"port htp", 5, 3,
       "expected a port number 1..65535, a range N-M or a service name (https, http, domain, ssh, ...), got "
       "'htp'"},
      {"qtype AAA", 6, 3,
       "expected a DNS type (A, AAAA, CNAME, TXT, HTTPS, ANY, ..., TYPEn or 0..65535) after 'qtype', got "
       "'AAA'"},
      {"qtype 65536", 6, 5,
       "expected a DNS type (A, AAAA, CNAME, TXT, HTTPS, ANY, ..., TYPEn or 0..65535) after 'qtype', got "
       "'65536'"},
      {"rcode NXDOMIAN", 6, 8,
       "expected a DNS rcode (NOERROR, NXDOMAIN, SERVFAIL, REFUSED, ... or 0..4095) after 'rcode', got "
       "'NXDOMIAN'"},
      {"reason *_allowed", 7, 9,
       "expected a reason like not_allowed (letters, digits, '_', an optional trailing '*') after 'reason', "
       "got "
       "'*_allowed'"},
      {"reason", 6, 0, "expected a reason like not_allowed or sni_* after 'reason', got end of filter"},
      {"sni", 3, 0, "expected a name like api.example.com or *.example.com after 'sni', got end of filter"},
      {"src sni x.com", 4, 3, "'src' applies to host, net and port, not 'sni'"},
      {"port", 4, 0, "expected a port number 1..65535 or a range N-M after 'port', got end of filter"},
      {"net 10.0.0.1/8", 4, 10, "'10.0.0.1/8' has host bits set (did you mean '10.0.0.0/8'?)"},
      {"net 2001:db8::1/32", 4, 14, "'2001:db8::1/32' has host bits set (did you mean '2001:db8::/32'?)"},
      {"net 10.0.0.0/33", 13, 2, "bad prefix length '33' in '10.0.0.0/33' (0..32 for IPv4)"},
      {"net example", 4, 7, "expected a network like 10.0.0.0/8 or 2001:db8::/32 after 'net', got 'example'"},
      {"host example.com", 5, 11,
       "'example.com' is not an IP address ('host' takes addresses; names go with 'name example.com')"},
      {"host 10.0.0.0/8", 5, 10, "'10.0.0.0/8' is a network; write 'net 10.0.0.0/8'"},
      {"host 10.0.0.256", 5, 10, "expected an IPv4 or IPv6 address after 'host', got '10.0.0.256'"},
      {"port 80 and", 11, 0, "expected a filter primitive after 'and', got end of filter"},
      {"and port 80", 0, 3, "expected a filter primitive (host, net, port, name, verdict, ...), got 'and'"},
      {"port 80 or or port 81", 11, 2, "expected a filter primitive after 'or', got 'or'"},
      {"not", 3, 0, "expected a filter primitive after 'not', got end of filter"},
      {"()", 1, 1, "expected a filter primitive after '(', got ')'"},
      {"name a*.example.com", 6, 1,
       "'*' must be the whole first label, as in '*.example.com' (in 'a*.example.com')"},
      {"name *.*.com", 7, 1, "'*' must be the whole first label, as in '*.example.com' (in '*.*.com')"},
      {"name foo..com", 9, 1, "empty label in name 'foo..com'"},
      {"name foo/bar", 8, 1, "invalid character '/' in name 'foo/bar'"},
      {"name", 4, 0, "expected a name like api.example.com or *.example.com after 'name', got end of filter"},
      {"port 80 & port 81", 8, 1, "unexpected '&' (did you mean '&&'?)"},
      {"port 80 | port 81", 8, 1, "unexpected '|' (did you mean '||'?)"},
      {"src name x.com", 4, 4, "'src' applies to host, net and port, not 'name'"},
      {"dst", 3, 0, "expected host, net or port after 'dst', got end of filter"},
      {"proto gre", 6, 3,
       "expected tcp, udp, icmp, icmp6 or a protocol number 0..255 after 'proto', got 'gre'"},
      {"ruleset default", 8, 7,
       "expected a rule set id NAMESPACE/NAME (or NAMESPACE/*) after 'ruleset', got 'default'"},
      {"port 443 80", 9, 2, "unexpected number '80' (write 'port 80')"},
      {"namespace Team-A", 10, 6,
       "expected a namespace (a-z, 0-9, '-'; a trailing '*' for a prefix) after 'namespace', got 'Team-A'"},
      {"namespace a/b", 10, 3,
       "expected a namespace (a-z, 0-9, '-'; a trailing '*' for a prefix) after 'namespace', got 'a/b'"},
      {"pod web-1", 4, 5,
       "expected a pod NAMESPACE/NAME (NAME may end in '*': team-a/web-*) after 'pod', got 'web-1'"},
      {"pod /web", 4, 4,
       "expected a pod NAMESPACE/NAME (NAME may end in '*': team-a/web-*) after 'pod', got '/web'"},
      {"workload web", 9, 3,
       "expected a workload KIND/NAME (Deployment/web, StatefulSet/db, DaemonSet/*, ...) after 'workload', "
       "got "
       "'web'"},
      {"workload", 8, 0,
       "expected a workload KIND/NAME like Deployment/web after 'workload', got end of filter"},
      {"name caf\xc3\xa9.example", 8, 1, "non-ASCII byte '\\xc3' (write names as A-labels, xn--...)"},
      {"port 80\x01", 7, 1, "invalid character '\\x01'"},
      {"verdict allow or mabye", 17, 5, "expected allow, deny or audit after 'verdict', got 'mabye'"},
      {"verdict deny or hots 10.0.0.1", 16, 4, "unknown keyword 'hots' (did you mean 'host'?)"},
      {"proto tcp or 256", 13, 3,
       "expected tcp, udp, icmp, icmp6 or a protocol number 0..255 after 'proto', got '256'"},
      {"protoo tcp", 0, 6, "unknown keyword 'protoo' (did you mean 'proto'?)"},
  };
  REQUIRE(rows.size() >= 15);
  for (const ErrorRow& row : rows) {
    INFO("filter: " << row.filter);
    const FilterError error = mustFail(row.filter);
    CHECK(error.message == row.message);
    CHECK(error.offset == row.offset);
    CHECK(error.length == row.length);
  }
}

TEST_CASE("filter: limits on length and nesting") {
  const std::string longFilter(5000, 'a');
  const FilterError tooLong = mustFail(longFilter);
  CHECK(tooLong.message == "filter too long: 5000 bytes, the limit is 4096");
  CHECK(tooLong.offset == 4096);

  // Exactly at the limits is fine.
  std::string longest = "port 1";
  while (longest.size() + 10 <= observe::kMaxFilterLength) longest += " or port 1";
  CHECK(mustParse(longest).matches(httpDenied()) == false);
  const std::string deepest = std::string(64, '(') + "dns" + std::string(64, ')');
  CHECK(mustParse(deepest).matches(dnsDenied()));

  const std::string tooDeep = std::string(65, '(') + "dns" + std::string(65, ')');
  const FilterError deep = mustFail(tooDeep);
  CHECK(deep.message == "filter nested deeper than 64 levels");
  CHECK(deep.offset == 64);
  CHECK(deep.length == 1);

  std::string nots;
  for (int i = 0; i < 100; ++i) nots += "not ";
  CHECK(mustFail(nots + "dns").message == "filter nested deeper than 64 levels");
  CHECK(mustFail(std::string(4000, '(')).message == "filter nested deeper than 64 levels");
}

TEST_CASE("filter: pointAt draws a caret line under the token") {
  const std::string text = "verdict maybe";
  const FilterError error = mustFail(text);
  CHECK(error.pointAt(text) ==
        "verdict maybe\n"
        "        ^^^^^ expected allow, deny or audit after 'verdict', got 'maybe'");

  const std::string end = "port 80 and";
  CHECK(mustFail(end).pointAt(end) ==
        "port 80 and\n"
        "           ^ expected a filter primitive after 'and', got end of filter");

  const std::string tabs = "port\t80\tand\tx";  // tabs shown as spaces keep the column
  CHECK(mustFail(tabs).pointAt(tabs) ==
        "port 80 and x\n"
        "            ^ unknown keyword 'x'");

  // A long filter shows a window around the token.
  std::string longText;
  for (int i = 0; i < 50; ++i) longText += "port 1 or ";
  longText += "bogus or port 2";
  for (int i = 0; i < 50; ++i) longText += " or port 3";
  const FilterError far = mustFail(longText);
  const std::string drawn = far.pointAt(longText);
  const size_t newline = drawn.find('\n');
  REQUIRE(newline != std::string::npos);
  const std::string line = drawn.substr(0, newline);
  const std::string carets = drawn.substr(newline + 1);
  CHECK(line.size() < 120);
  CHECK(line.substr(0, 3) == "...");
  CHECK(line.substr(line.size() - 3) == "...");
  const size_t column = carets.find('^');
  CHECK(line.substr(column, 5) == "bogus");
  CHECK(carets.substr(column) == "^^^^^ unknown keyword 'bogus'");
}

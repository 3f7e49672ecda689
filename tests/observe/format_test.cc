#include "observe/format.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <ctime>
#include <set>
#include <string>

#include "test_events.h"

using observe::Event;
using observe::eventFromJson;
using observe::formatLine;
using observe::LineStyle;
using observe::toJson;
using namespace observetest;

namespace {
const LineStyle kUtc{false, true};

// Every field, compared one by one so that a failure names it.
void checkSame(const Event& a, const Event& b) {
  CHECK(a.kind == b.kind);
  CHECK(a.time == b.time);
  CHECK(a.src == b.src);
  CHECK(a.dst == b.dst);
  CHECK(a.srcPort == b.srcPort);
  CHECK(a.dstPort == b.dstPort);
  CHECK(a.protocol == b.protocol);
  CHECK(a.verdict == b.verdict);
  CHECK(a.reason == b.reason);
  CHECK(a.nameSource == b.nameSource);
  CHECK(a.match == b.match);
  CHECK(a.nameView() == b.nameView());
  CHECK(a.ruleSetsView() == b.ruleSetsView());
  CHECK(a.queue == b.queue);
  CHECK(a.dnsOutcome == b.dnsOutcome);
  CHECK(a.qtype == b.qtype);
  CHECK(a.rcode == b.rcode);
  CHECK(a.answers == b.answers);
  CHECK(a.namespaceView() == b.namespaceView());
  CHECK(a.podView() == b.podView());
  CHECK(a.workloadView() == b.workloadView());
  CHECK(a.serviceAccountView() == b.serviceAccountView());
  CHECK(std::equal(a.addressesView().begin(), a.addressesView().end(), b.addressesView().begin(),
                   b.addressesView().end()));
}
}  // namespace

TEST_CASE("format: verdict lines") {
  CHECK(formatLine(tlsAllowed(), kUtc) ==
        "12:00:01.123456 10.0.1.2:51234 > 203.0.113.7:443 tcp sni=api.example.com ALLOW by "
        "default/my-app-targets,team-a/web");
  CHECK(formatLine(httpDenied(), kUtc) ==
        "12:00:01.123456 10.0.1.2:40000 > 198.51.100.9:80 tcp host=evil.example DENY host_not_allowed");
  CHECK(formatLine(quicAudit(), kUtc) ==
        "12:00:01.123456 [2001:db8::5]:5555 > [2001:db8:1::7]:443 udp quic=video.cdn.example.net AUDIT would "
        "deny "
        "quic_not_allowed");
  CHECK(formatLine(icmpDenied(), kUtc) == "12:00:01.123456 10.0.1.3 > 192.0.2.8 icmp DENY icmp_denied");
  CHECK(formatLine(mappedAllowed(), kUtc) ==
        "12:00:01.123456 [::ffff:10.0.1.9]:1000 > [::ffff:192.0.2.1]:8443 tcp bound=www.example.com ALLOW by "
        "kube-system/registry");
  Event noName = EventBuilder("10.0.1.2", 40000, "192.0.2.9", 22, 6).verdict(V::Deny, "port_not_in_policy");
  CHECK(formatLine(noName, kUtc) ==
        "12:00:01.123456 10.0.1.2:40000 > 192.0.2.9:22 tcp DENY port_not_in_policy");
  Event gre = EventBuilder("10.0.1.2", 0, "192.0.2.9", 0, 47).verdict(V::Deny, "protocol_not_allowed");
  CHECK(formatLine(gre, kUtc) ==
        "12:00:01.123456 10.0.1.2 > 192.0.2.9 ip-proto-47 DENY protocol_not_allowed");
}

TEST_CASE("format: a known client shows as namespace/pod") {
  CHECK(formatLine(podDenied(), kUtc) ==
        "12:00:01.123456 team-a/web-7d9c6b5f4-x2x9q:41000 > 198.51.100.9:443 tcp sni=evil.example DENY "
        "sni_not_allowed");
  CHECK(formatLine(podDns(), kUtc) ==
        "12:00:01.123456 team-b/db-0:40002 > 10.0.1.1:53 dns A api.example.com ALLOW rcode=NOERROR answers=1 "
        "by "
        "default/my-app-targets");
  Event icmp = icmpDenied();
  REQUIRE(icmp.client.assign("team-c", "ping", "", ""));
  CHECK(formatLine(icmp, kUtc) == "12:00:01.123456 team-c/ping > 192.0.2.8 icmp DENY icmp_denied");
  // From a file or a hostile peer: never raw control bytes on a terminal.
  Event hostile = podDenied();
  REQUIRE(hostile.client.assign("a[2J", "p", "", ""));
  CHECK(formatLine(hostile, kUtc).find("a\\x1b[2J/p:41000") != std::string::npos);
}

TEST_CASE("format: DNS lines") {
  Event denied = dnsDenied();
  denied.time += std::chrono::microseconds(76544);  // 12:00:01.200000
  CHECK(formatLine(denied, kUtc) ==
        "12:00:01.200000 10.0.1.2:40001 > 10.0.1.1:53 dns A evil.example DENY not_allowed rcode=NXDOMAIN");
  CHECK(
      formatLine(dnsAllowedV6(), kUtc) ==
      "12:00:01.123456 [fd00::2]:3333 > [fd00::1]:53 dns AAAA api.example.com ALLOW cache_hit rcode=NOERROR "
      "answers=2 by default/my-app-targets");

  Event https =
      EventBuilder("10.0.1.2", 1, "10.0.1.1", 53, 17).name("svc.example", "").dns(65, "allowed", 0, 1);
  https.verdict = V::Allow;
  CHECK(formatLine(https, kUtc) ==
        "12:00:01.123456 10.0.1.2:1 > 10.0.1.1:53 dns HTTPS svc.example ALLOW rcode=NOERROR answers=1");

  Event odd =
      EventBuilder("10.0.1.2", 1, "10.0.1.1", 53, 17).name("x.example", "").dns(4242, "upstream_error", 2, 0);
  odd.verdict = V::Allow;
  CHECK(
      formatLine(odd, kUtc) ==
      "12:00:01.123456 10.0.1.2:1 > 10.0.1.1:53 dns TYPE4242 x.example ALLOW upstream_error rcode=SERVFAIL");

  Event audit = dnsDenied();
  audit.verdict = V::Audit;
  audit.rcode = 0;
  audit.answers = 1;
  CHECK(formatLine(audit, kUtc) ==
        "12:00:01.123456 10.0.1.2:40001 > 10.0.1.1:53 dns A evil.example AUDIT would deny not_allowed "
        "rcode=NOERROR "
        "answers=1");

  Event refused = EventBuilder("10.0.1.2", 1, "10.0.1.1", 53, 17).dns(255, "refused", 5, 0);
  CHECK(formatLine(refused, kUtc) ==
        "12:00:01.123456 10.0.1.2:1 > 10.0.1.1:53 dns ANY . DENY refused rcode=REFUSED");
}

TEST_CASE("format: colour marks the verdict only") {
  const LineStyle colour{true, true};
  CHECK(formatLine(tlsAllowed(), colour).find(" \x1b[32mALLOW\x1b[0m by ") != std::string::npos);
  CHECK(formatLine(httpDenied(), colour).find(" \x1b[31mDENY\x1b[0m host_not_allowed") != std::string::npos);
  CHECK(formatLine(quicAudit(), colour).find(" \x1b[33mAUDIT would deny\x1b[0m quic") != std::string::npos);
  CHECK(formatLine(tlsAllowed(), kUtc).find('\x1b') == std::string::npos);
}

TEST_CASE("format: names from the network cannot send terminal escapes") {
  const Event evil = EventBuilder("10.0.1.2", 1, "192.0.2.1", 443, 6)
                         .verdict(V::Deny, "sni_not_allowed")
                         .name("a\x1b[2Jb\\\x80", "sni")
                         .ruleSets("x/\ny");
  const std::string line = formatLine(evil, kUtc);
  CHECK(line.find('\x1b') == std::string::npos);
  CHECK(line.find('\n') == std::string::npos);
  CHECK(line.find("sni=a\\x1b[2Jb\\x5c\\x80 DENY") != std::string::npos);
  CHECK(line.find("by x/\\x0ay") != std::string::npos);
  // JSON stays valid UTF-8 (dump() would throw otherwise).
  CHECK_NOTHROW(toJson(evil).dump());
}

TEST_CASE("format: local time of day") {
  const char* saved = std::getenv("TZ");
  const std::string previous = saved ? saved : "";
  ::setenv("TZ", "XYZ-2", 1);  // POSIX: two hours east of UTC
  ::tzset();
  const std::string line = formatLine(tlsAllowed(), LineStyle{});
  if (saved) {
    ::setenv("TZ", previous.c_str(), 1);
  } else {
    ::unsetenv("TZ");
  }
  ::tzset();
  CHECK(line.substr(0, 16) == "14:00:01.123456 ");
}

TEST_CASE("format: the line is its time of day and its body") {
  for (const LineStyle style : {kUtc, LineStyle{true, true}}) {
    for (const Event& event : {tlsAllowed(), httpDenied(), quicAudit()}) {
      CHECK(formatLine(event, style) == observe::formatTimeOfDay(event.time, style.utc) + " " +
                                            observe::formatLineBody(event, style.colour));
    }
  }
}

TEST_CASE("format: the time-of-day formatter matches per line across seconds") {
  observe::TimeOfDayFormatter formatter(true);
  const auto start = std::chrono::system_clock::time_point(std::chrono::microseconds(1'700'000'000'999'998));
  for (const int64_t step :
       std::initializer_list<int64_t>{0, 1, 2, 3, 1'000'000, 59'000'000, 3'600'000'000}) {
    const auto time = start + std::chrono::microseconds(step);
    CHECK(formatter.format(time) == observe::formatTimeOfDay(time, true));
  }
  // Going back in time (a clock step) is formatted right too.
  CHECK(formatter.format(start) == observe::formatTimeOfDay(start, true));
}

TEST_CASE("format: times before the epoch and microsecond rounding") {
  Event event = tlsAllowed();
  event.time = std::chrono::system_clock::time_point(std::chrono::microseconds(-1));
  CHECK(formatLine(event, kUtc).substr(0, 15) == "23:59:59.999999");
  CHECK(toJson(event)["time"] == "1969-12-31T23:59:59.999999Z");
  event.time = std::chrono::system_clock::time_point(std::chrono::nanoseconds(1999));
  CHECK(formatLine(event, kUtc).substr(0, 15) == "00:00:00.000001");
}

TEST_CASE("format: JSON keys and values") {
  const nlohmann::json json = toJson(tlsAllowed());
  std::set<std::string> keys;
  for (const auto& item : json.items()) keys.insert(item.key());
  CHECK(keys == std::set<std::string>{"kind", "time", "src", "sport", "dst", "dport", "proto", "verdict",
                                      "reason", "name", "name_from", "match", "rulesets", "queue",
                                      "namespace", "pod", "workload", "service_account"});
  CHECK(json["kind"] == "verdict");
  CHECK(json["time"] == "2026-11-26T12:00:01.123456Z");
  CHECK(json["src"] == "10.0.1.2");
  CHECK(json["sport"] == 51234);
  CHECK(json["dst"] == "203.0.113.7");
  CHECK(json["dport"] == 443);
  CHECK(json["proto"] == "tcp");
  CHECK(json["verdict"] == "allow");
  CHECK(json["reason"] == "sni_allowed");
  CHECK(json["name"] == "api.example.com");
  CHECK(json["name_from"] == "sni");
  CHECK(json["match"] == "exact");
  CHECK(json["rulesets"] == nlohmann::json::array({"default/my-app-targets", "team-a/web"}));
  CHECK(json["queue"] == 3);
  // Unknown client: the keys are there, empty.
  CHECK(json["namespace"] == "");
  CHECK(json["pod"] == "");
  CHECK(json["workload"] == "");
  CHECK(json["service_account"] == "");
  const nlohmann::json attributed = toJson(podDenied());
  CHECK(attributed["namespace"] == "team-a");
  CHECK(attributed["pod"] == "web-7d9c6b5f4-x2x9q");
  CHECK(attributed["workload"] == "Deployment/web");
  CHECK(attributed["service_account"] == "web-sa");
  CHECK(toJson(podDns())["workload"] == "StatefulSet/db");

  const nlohmann::json dns = toJson(dnsDenied());
  keys.clear();
  for (const auto& item : dns.items()) keys.insert(item.key());
  CHECK(keys == std::set<std::string>{
                    "kind",    "time",    "src",     "sport",     "dst",   "dport",    "proto",
                    "verdict", "reason",  "name",    "name_from", "match", "rulesets", "qtype",
                    "rcode",   "outcome", "answers", "namespace", "pod",   "workload", "service_account"});
  CHECK(dns["kind"] == "dns");
  CHECK(dns["qtype"] == "A");
  CHECK(dns["rcode"] == "NXDOMAIN");
  CHECK(dns["outcome"] == "denied");
  CHECK(dns["answers"] == 0);
  CHECK(dns["rulesets"] == nlohmann::json::array());
  CHECK(toJson(quicAudit())["verdict"] == "audit");
}

TEST_CASE("format: JSON round trip is exact") {
  Event odd = EventBuilder("2001:db8::1", 65535, "::ffff:192.0.2.1", 1, 47)
                  .verdict(V::Audit, "protocol_not_allowed")
                  .ruleSets("a/b,,c/d,")  // empty items survive
                  .queue(65535);
  Event longName = tlsAllowed();
  const std::string label63(63, 'a');
  const std::string name253 = label63 + "." + label63 + "." + label63 + "." + std::string(61, 'b');
  longName.nameLength = static_cast<uint8_t>(name253.size());
  std::copy(name253.begin(), name253.end(), longName.name.begin());
  Event dnsOdd =
      EventBuilder("10.0.1.2", 1, "10.0.1.1", 53, 17).name("x.example", "").dns(4242, "malformed", 4095, 7);
  Event fullRuleSets = tlsAllowed();
  fullRuleSets.ruleSetsLength = observe::kMaxEventRuleSets;
  std::fill(fullRuleSets.ruleSets.begin(), fullRuleSets.ruleSets.end(), 'r');
  fullRuleSets.ruleSets[10] = ',';
  // Every attribution field at its Kubernetes limit.
  Event fullPod = podDenied();
  const std::string workload253 = "StatefulSet/" + std::string(253, 'w');
  REQUIRE(
      fullPod.client.assign(std::string(63, 'n'), std::string(253, 'p'), workload253, std::string(253, 's')));
  // A pod without workload or service account (a bare static pod record).
  Event podOnly = tlsAllowed();
  REQUIRE(podOnly.client.assign("kube-system", "etcd-node1", "", ""));

  // A DNS answer's addresses, both families, as many as an event keeps.
  Event dnsAddresses = dnsAllowedV6();
  for (size_t i = 0; i < observe::kMaxEventAddresses; ++i) {
    const std::string text = i % 2 ? "2001:db8::" + std::to_string(i) : "192.0.2." + std::to_string(i);
    dnsAddresses.addresses[dnsAddresses.addressCount++] = *common::parseIpAddress(text);
  }

  for (const Event& event :
       {tlsAllowed(), httpDenied(), quicAudit(), icmpDenied(), mappedAllowed(), dnsDenied(), dnsAllowedV6(),
        odd, longName, dnsOdd, fullRuleSets, podDenied(), podDns(), fullPod, podOnly, dnsAddresses}) {
    const nlohmann::json json = toJson(event);
    INFO(json.dump());
    // Through text, as on the socket.
    const auto back = eventFromJson(nlohmann::json::parse(json.dump()));
    REQUIRE(back.has_value());
    checkSame(event, *back);
    CHECK(formatLine(*back, kUtc) == formatLine(event, kUtc));
  }
}

TEST_CASE("format: JSON from a newer daemon or a broken peer") {
  nlohmann::json good = toJson(tlsAllowed());

  nlohmann::json extra = good;
  extra["future_field"] = {{"x", 1}};
  extra["reason"] = "some_new_reason";
  const auto withExtra = eventFromJson(extra);
  REQUIRE(withExtra.has_value());
  CHECK(withExtra->reason == "some_new_reason");
  // Static storage: the view outlives the JSON.
  const std::string_view reason = withExtra->reason;
  extra.clear();
  CHECK(reason == "some_new_reason");

  nlohmann::json minimal = {{"kind", "verdict"}, {"time", "2026-11-26T14:00:01.5+02:00"},
                            {"src", "10.0.0.1"}, {"dst", "10.0.0.2"},
                            {"proto", "udp"},    {"verdict", "deny"}};
  const auto parsed = eventFromJson(minimal);
  REQUIRE(parsed.has_value());
  CHECK(parsed->time == noon() - std::chrono::microseconds(123456) + std::chrono::microseconds(500000));
  CHECK(parsed->protocol == 17);
  CHECK(parsed->srcPort == 0);
  CHECK(parsed->nameLength == 0);
  CHECK(parsed->reason.empty());

  nlohmann::json longName = good;
  longName["name"] = std::string(300, 'a');
  CHECK(eventFromJson(longName)->nameLength == observe::kMaxEventName);

  // Attribution keys: absent (an older daemon) → empty; too long → cut to
  // the Kubernetes limits.
  CHECK(eventFromJson(good)->podView().empty());
  nlohmann::json longPod = toJson(podDenied());
  longPod["namespace"] = std::string(100, 'n');
  longPod["pod"] = std::string(300, 'p');
  longPod["workload"] = "Deployment/" + std::string(300, 'w');
  longPod["service_account"] = std::string(300, 's');
  const auto cut = eventFromJson(longPod);
  REQUIRE(cut.has_value());
  CHECK(cut->namespaceView() == std::string(observe::kMaxEventNamespace, 'n'));
  CHECK(cut->podView().size() == observe::kMaxEventPod);
  CHECK(cut->workloadView().size() == observe::kMaxEventWorkload);
  CHECK(cut->serviceAccountView().size() == observe::kMaxEventServiceAccount);

  const std::vector<std::pair<std::string, nlohmann::json>> broken = {
      {"kind", "flow"},
      {"kind", 1},
      {"time", "2026-11-26 12:00"},
      {"time", "2026-02-30T00:00:00Z"},
      {"time", "2026-11-26T12:00:01.Z"},
      {"src", "10.0.0.256"},
      {"dst", nullptr},
      {"proto", "sctp"},
      {"verdict", "ALLOW"},
      {"sport", 70000},
      {"sport", -1},
      {"dport", "443"},
      {"rulesets", "a/b"},
      {"rulesets", {1, 2}},
      {"name", 5},
      {"qtype", "BOGUS"},
      {"rcode", "RCODE70000"},
      {"answers", 1.5},
      {"queue", true},
      {"namespace", 1},
      {"pod", nullptr},
      {"workload", {"Deployment", "web"}},
      {"service_account", false},
  };
  for (const auto& [key, value] : broken) {
    INFO(key << " = " << value.dump());
    nlohmann::json bad = good;
    bad[key] = value;
    CHECK_FALSE(eventFromJson(bad).has_value());
  }
  for (const char* key : {"kind", "time", "src", "dst", "proto", "verdict"}) {
    INFO("without " << key);
    nlohmann::json missing = good;
    missing.erase(key);
    CHECK_FALSE(eventFromJson(missing).has_value());
  }
  CHECK_FALSE(eventFromJson(nlohmann::json::array()).has_value());
  CHECK_FALSE(eventFromJson(nlohmann::json("x")).has_value());
}

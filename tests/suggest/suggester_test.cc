// suggest/: decisions in, EgressRuleSets out, without a daemon or files.
// Every output here is also loaded back with policy::loadManifest (what
// `egressctl lint` runs) and must have no error.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "observe/format.h"
#include "policy/manifest.h"
#include "policy/policy.h"
#include "suggest/event_scanner.h"
#include "suggest/line_reader.h"
#include "suggest/suggester.h"

namespace {

const policy::PublicSuffixList& psl() {
  return policy::defaultPublicSuffixList();
}

// One decision as `egressctl watch --json` writes it.
std::string connection(std::string_view name, uint16_t port, std::string_view ns = "team-a",
                       std::string_view workload = "Deployment/web", std::string_view verdict = "audit",
                       std::string_view dst = "203.0.113.7",
                       std::string_view time = "2026-11-26T12:00:01.000000Z", std::string_view proto = "tcp",
                       std::string_view from = "sni") {
  std::string line = R"({"kind":"verdict","time":")" + std::string(time) +
                     R"(","src":"10.0.1.2","sport":40000,"dst":")" + std::string(dst) + R"(","dport":)" +
                     std::to_string(port) + R"(,"proto":")" + std::string(proto) + R"(","verdict":")" +
                     std::string(verdict) + R"(","reason":"","name":")" + std::string(name) +
                     R"(","name_from":")" + std::string(name.empty() ? "" : from) +
                     R"(","match":"","rulesets":[],"queue":0)";
  if (!ns.empty())
    line += R"(,"namespace":")" + std::string(ns) + R"(","pod":"web-1","workload":")" +
            std::string(workload) + R"(")";
  return line + "}";
}

std::string dnsQuery(std::string_view name, std::string_view ns = "team-a", std::string_view qtype = "A",
                     std::string_view outcome = "allowed") {
  std::string line =
      R"({"kind":"dns","time":"2026-11-26T12:00:02Z","src":"10.0.1.2","sport":5353,"dst":"10.0.1.1","dport":53,"proto":"udp","verdict":"audit","reason":"not_allowed","name":")" +
      std::string(name) + R"(","qtype":")" + std::string(qtype) + R"(","rcode":"NOERROR","outcome":")" +
      std::string(outcome) + R"(","answers":1)";
  if (!ns.empty()) line += R"(,"namespace":")" + std::string(ns) + R"(","workload":"Deployment/web")";
  return line + "}";
}

struct Run {
  suggest::Options options;
  std::vector<std::string> lines;
  std::shared_ptr<const policy::Policy> inForce;

  suggest::Suggestion finish() const {
    suggest::Suggester suggester(psl(), options);
    for (const auto& line : lines) {
      auto result = suggest::readLine(line);
      REQUIRE(result.kind == suggest::LineKind::Event);
      suggester.add(result.event);
    }
    return suggester.finish(inForce.get());
  }
  std::string yaml() const { return suggest::renderYaml(finish()); }
};

std::vector<std::string> targetsOf(const suggest::Suggestion& suggestion,
                                   std::string_view id = "team-a/suggested") {
  for (const auto& ruleSet : suggestion.ruleSets) {
    if (ruleSet.ns + "/" + ruleSet.name == id) {
      std::vector<std::string> out;
      for (const auto& target : ruleSet.targets) out.push_back(target.target);
      return out;
    }
  }
  return {};
}

// What `egressctl lint` says about the YAML: zero errors, and the targets
// in force per rule set.
std::map<std::string, std::vector<std::string>> lint(const std::string& yaml) {
  const auto load = policy::loadManifest(yaml, "suggested.yaml", psl());
  for (const auto& problem : load.problems) {
    INFO(problem.toString());
    CHECK(problem.severity != policy::Severity::Error);
  }
  CHECK(load.rejected.empty());
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& ruleSet : load.valid) {
    CHECK(ruleSet.refused.empty());
    for (const auto& target : ruleSet.targets) out[ruleSet.id()].push_back(target.canonical());
  }
  return out;
}

std::shared_ptr<const policy::Policy> policyOf(const std::string& yaml) {
  const auto load = policy::loadManifest(yaml, "rules.yaml", psl());
  REQUIRE(load.problems.empty());
  return policy::Policy::compile(load.valid);
}

}  // namespace

TEST_CASE("suggest: one rule set per namespace, a name and port per connection", "[suggest]") {
  Run run;
  run.lines = {connection("api.example.com", 443), connection("api.example.com", 443),
               connection("api.example.com", 8443),
               connection("db.example.net", 5432, "team-b", "StatefulSet/db")};
  const auto suggestion = run.finish();
  REQUIRE(suggestion.ruleSets.size() == 2);
  CHECK(targetsOf(suggestion) == std::vector<std::string>{"api.example.com:443", "api.example.com:8443"});
  CHECK(targetsOf(suggestion, "team-b/suggested") == std::vector<std::string>{"db.example.net:5432"});
  const auto& first = suggestion.ruleSets[0].targets[0];
  CHECK(first.usage.hits == 2);
  CHECK(first.usage.audit == 2);
  CHECK(first.usage.clients == std::vector<std::string>{"Deployment/web"});
  const auto yaml = run.yaml();
  CHECK(
      yaml.find(
          "    # 2 hits (2 audit), first 2026-11-26T12:00:01Z, last 2026-11-26T12:00:01Z; by Deployment/web\n"
          "    - \"api.example.com:443\"\n") != std::string::npos);
  const auto linted = lint(yaml);
  CHECK(linted.at("team-a/suggested") ==
        std::vector<std::string>{"api.example.com:443", "api.example.com:8443"});
  CHECK(linted.at("team-b/suggested") == std::vector<std::string>{"db.example.net:5432"});
}

TEST_CASE("suggest: the wildcard threshold, both ways", "[suggest]") {
  Run run;
  run.lines = {connection("a.example.com", 443),   connection("b.example.com", 443),
               connection("x.y.example.com", 443), connection("example.com", 443),
               connection("a.example.org", 443),   connection("b.example.org", 443)};
  SECTION("three names under example.com on 443 become *.example.com:443; two under example.org stay") {
    const auto suggestion = run.finish();
    CHECK(targetsOf(suggestion) == std::vector<std::string>{"*.example.com:443", "example.com:443",
                                                            "a.example.org:443", "b.example.org:443"});
    const auto& wildcard = suggestion.ruleSets[0].targets[0];
    CHECK(wildcard.names == std::vector<std::string>{"a.example.com", "b.example.com", "x.y.example.com"});
    CHECK(wildcard.usage.hits == 3);
    lint(run.yaml());
  }
  SECTION("--wildcard-min 4: no wildcard") {
    run.options.wildcardMin = 4;
    CHECK(targetsOf(run.finish()).size() == 6);
  }
  SECTION("--wildcard-min 2: both domains") {
    run.options.wildcardMin = 2;
    CHECK(targetsOf(run.finish()) ==
          std::vector<std::string>{"*.example.com:443", "example.com:443", "*.example.org:443"});
  }
  SECTION("the wildcard is the narrowest parent of the names, never above the registrable domain") {
    run.lines = {connection("api.shipping.example.com", 443),
                 connection("rates.shipping.example.com", 443),
                 connection("a.b.shipping.example.com", 443),
                 connection("shipping.example.com", 443),
                 connection("ledger-a.s3.eu-west-1.amazonaws.com", 443),
                 connection("ledger-b.s3.eu-west-1.amazonaws.com", 443),
                 connection("ledger-c.s3.eu-west-1.amazonaws.com", 443)};
    // shipping.example.com itself is a name under example.com: the
    // wildcard must cover it, so it is *.example.com, not *.shipping...
    CHECK(targetsOf(run.finish()) ==
          std::vector<std::string>{"*.s3.eu-west-1.amazonaws.com:443", "*.example.com:443"});
    run.lines.pop_back();
    run.lines.erase(run.lines.begin() + 3);
    CHECK(targetsOf(run.finish()) == std::vector<std::string>{"ledger-a.s3.eu-west-1.amazonaws.com:443",
                                                              "ledger-b.s3.eu-west-1.amazonaws.com:443",
                                                              "*.shipping.example.com:443"});
    lint(run.yaml());
  }
  SECTION("names on different ports do not add up") {
    run.lines = {connection("a.example.com", 443), connection("b.example.com", 443),
                 connection("c.example.com", 80)};
    CHECK(targetsOf(run.finish()) ==
          std::vector<std::string>{"a.example.com:443", "b.example.com:443", "c.example.com:80"});
  }
  SECTION("names of different namespaces do not add up") {
    run.lines = {connection("a.example.com", 443), connection("b.example.com", 443),
                 connection("c.example.com", 443, "team-b")};
    CHECK(targetsOf(run.finish()).size() == 2);
  }
}

TEST_CASE("suggest: never a wildcard over a public suffix, never world access", "[suggest]") {
  Run run;
  run.options.wildcardMin = 2;
  run.lines = {
      connection("a.co.uk", 443),       connection("b.co.uk", 443),       connection("c.co.uk", 443),
      connection("x.github.io", 443),   connection("y.github.io", 443),   connection("z.github.io", 443),
      connection("one.com", 443),       connection("two.com", 443),       connection("three.com", 443),
      connection("www.bbc.co.uk", 443), connection("news.bbc.co.uk", 443)};
  const auto suggestion = run.finish();
  const auto targets = targetsOf(suggestion);
  for (const auto& target : targets) {
    INFO(target);
    CHECK(target.find("*.co.uk") == std::string::npos);
    CHECK(target.find("*.github.io") == std::string::npos);
    CHECK(target.find("*.com") == std::string::npos);
    CHECK(target.rfind("*:", 0) == std::string::npos);
  }
  // bbc.co.uk is a registrable domain under the public suffix co.uk.
  CHECK(std::count(targets.begin(), targets.end(), "*.bbc.co.uk:443") == 1);
  CHECK(std::count(targets.begin(), targets.end(), "x.github.io:443") == 1);
  CHECK(targets.size() == 10);
  lint(run.yaml());
}

TEST_CASE("suggest: flows without a name become address targets with a warning", "[suggest]") {
  Run run;
  run.lines = {
      connection("", 80, "team-a", "Deployment/web", "audit", "203.0.113.50"),
      connection("", 443, "team-a", "Deployment/web", "allow", "2001:db8::1"),
      connection("", 8443, "team-a", "Deployment/web", "audit", "::ffff:198.51.100.9"),
      connection("", 123, "team-a", "Deployment/web", "audit", "192.0.2.1", "2026-11-26T12:00:01Z", "udp"),
      connection("", 0, "team-a", "Deployment/web", "audit", "192.0.2.1", "2026-11-26T12:00:01Z", "icmp")};
  const auto suggestion = run.finish();
  CHECK(targetsOf(suggestion) ==
        std::vector<std::string>{"198.51.100.9:8443", "203.0.113.50:80", "[2001:db8::1]:443"});
  const auto yaml = run.yaml();
  CHECK(yaml.find("WARNING: address only") != std::string::npos);
  CHECK(yaml.find("#   udp to 192.0.2.1:123: 1 decision") != std::string::npos);
  CHECK(yaml.find("#   icmp to 192.0.2.1: 1 decision") != std::string::npos);
  const auto linted = lint(yaml);
  for (const auto& target : linted.at("team-a/suggested")) {
    const auto parsed = policy::parseTarget(target, psl());
    REQUIRE(parsed.target);
    CHECK(parsed.target->kind == policy::TargetKind::Address);  // a /32 or /128
  }
}

// A DNS event as egressd writes it for an answer with addresses.
std::string resolved(std::string_view name, std::string_view addresses, std::string_view ns = "team-a") {
  std::string line = dnsQuery(name, ns);
  return line.substr(0, line.size() - 1) + R"(,"addresses":)" + std::string(addresses) + "}";
}

TEST_CASE("suggest: a flow without a name to an address its client resolved gets the name", "[suggest]") {
  Run run;
  run.lines = {// team-a resolved api.vendor.example (two addresses) and cdn.vendor.example,
               // then connected without a name (decided at the SYN) to one of them.
               resolved("api.vendor.example", R"(["203.0.113.9","2001:db8::9"])"),
               connection("", 443, "team-a", "Deployment/web", "audit", "203.0.113.9"),
               connection("", 443, "team-a", "Deployment/web", "audit", "2001:db8::9"),
               // Another address, never resolved: stays an address target.
               connection("", 443, "team-a", "Deployment/web", "audit", "203.0.113.10"),
               // team-b connects to the same address without having resolved it.
               connection("", 443, "team-b", "Deployment/api", "audit", "203.0.113.9"),
               // A name resolved by team-b only is no name for team-a's flow.
               resolved("other.vendor.example", R"(["203.0.113.10"])", "team-b")};
  const auto suggestion = run.finish();
  CHECK(targetsOf(suggestion) == std::vector<std::string>{"api.vendor.example:443", "203.0.113.10:443"});
  CHECK(targetsOf(suggestion, "team-b/suggested") == std::vector<std::string>{"203.0.113.9:443"});
  const auto yaml = run.yaml();
  CHECK(yaml.find("# 2 connections without a name matched through DNS: the client had resolved this name "
                  "(through egressd) to the address it connected to\n    # 2 hits (2 audit)") !=
        std::string::npos);
  // The warning stays for the flows that truly had no name, and only them.
  size_t warnings = 0;
  for (size_t at = yaml.find("WARNING: address only"); at != std::string::npos;
       at = yaml.find("WARNING: address only", at + 1)) {
    ++warnings;
  }
  CHECK(warnings == 2);
  // Not listed as "resolved but never connected to" either.
  CHECK(yaml.find("#   api.vendor.example:") == std::string::npos);
  // Whatever the order (the connection before its DNS answer in the file).
  Run reversed = run;
  std::reverse(reversed.lines.begin(), reversed.lines.end());
  CHECK(reversed.yaml() == yaml);
  CHECK(lint(yaml).count("team-a/suggested") == 1);
}

TEST_CASE("suggest: names the rules in force allow are left out, unless --all", "[suggest]") {
  Run run;
  run.inForce = policyOf(R"(apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: app, namespace: team-a}
spec:
  targets: ["api.example.com:443", "*.cdn.example.net:443", "203.0.113.50:80"]
)");
  run.lines = {connection("api.example.com", 443),
               connection("api.example.com", 8443),
               connection("img.cdn.example.net", 443),
               connection("new.example.org", 443),
               connection("", 80, "team-a", "Deployment/web", "audit", "203.0.113.50"),
               connection("", 80, "team-a", "Deployment/web", "audit", "203.0.113.51"),
               dnsQuery("api.example.com"),
               dnsQuery("only-dns.example.org")};
  SECTION("left out") {
    const auto suggestion = run.finish();
    CHECK(targetsOf(suggestion) ==
          std::vector<std::string>{"api.example.com:8443", "new.example.org:443", "203.0.113.51:80"});
    // Two names and one address; api.example.com was connected to, so its
    // query is not a DNS-only name either.
    CHECK(suggestion.leftOutInForce == 3);
    REQUIRE(suggestion.ruleSets[0].dnsOnly.size() == 1);
    CHECK(suggestion.ruleSets[0].dnsOnly[0].name == "only-dns.example.org");
  }
  SECTION("--all keeps them, marked") {
    run.options.all = true;
    const auto suggestion = run.finish();
    CHECK(targetsOf(suggestion).size() == 6);
    CHECK(suggestion.ruleSets[0].targets[0].target == "api.example.com:443");
    CHECK(suggestion.ruleSets[0].targets[0].inForce);
    CHECK(run.yaml().find("already allowed by the rules in force") != std::string::npos);
    lint(run.yaml());
  }
}

TEST_CASE("suggest: names only resolved are comments, not targets", "[suggest]") {
  Run run;
  run.lines = {dnsQuery("resolved.example.com"),
               dnsQuery("Resolved.Example.COM."),
               dnsQuery("api.example.com"),
               connection("api.example.com", 443),
               dnsQuery("kube-dns.kube-system.svc.cluster.local", "team-a", "A", "cluster"),
               dnsQuery("txt.example.com", "team-a", "TXT")};
  const auto suggestion = run.finish();
  CHECK(targetsOf(suggestion) == std::vector<std::string>{"api.example.com:443"});
  REQUIRE(suggestion.ruleSets[0].dnsOnly.size() == 1);
  CHECK(suggestion.ruleSets[0].dnsOnly[0].name == "resolved.example.com");
  CHECK(suggestion.ruleSets[0].dnsOnly[0].usage.hits == 2);
  CHECK(run.yaml().find("#   resolved.example.com: 2 queries") != std::string::npos);
}

TEST_CASE("suggest: clients without a namespace go to default/suggested-unattributed", "[suggest]") {
  Run run;
  run.lines = {connection("api.example.com", 443, ""), connection("api.example.com", 443, "")};
  const auto suggestion = run.finish();
  REQUIRE(suggestion.ruleSets.size() == 1);
  CHECK(suggestion.ruleSets[0].ns == "default");
  CHECK(suggestion.ruleSets[0].name == "suggested-unattributed");
  CHECK(suggestion.ruleSets[0].targets[0].usage.clients == std::vector<std::string>{"10.0.1.2"});
  const auto yaml = run.yaml();
  CHECK(yaml.find("; from 10.0.1.2\n") != std::string::npos);
  run.options.unattributedNamespace = "egress-review";
  CHECK(run.finish().ruleSets[0].ns == "egress-review");
  lint(yaml);
}

TEST_CASE("suggest: --per workload", "[suggest]") {
  Run run;
  run.options.per = suggest::Per::Workload;
  run.lines = {connection("a.example.com", 443, "team-a", "Deployment/web"),
               connection("b.example.com", 443, "team-a", "StatefulSet/Db_Primary"),
               connection("c.example.com", 443, "team-a", "")};
  const auto suggestion = run.finish();
  std::vector<std::string> ids;
  for (const auto& ruleSet : suggestion.ruleSets) ids.push_back(ruleSet.ns + "/" + ruleSet.name);
  CHECK(ids == std::vector<std::string>{"team-a/suggested-deployment-web", "team-a/suggested-pod-web-1",
                                        "team-a/suggested-statefulset-db-primary"});
  lint(run.yaml());
}

TEST_CASE("suggest: the same decisions in any order give the same bytes", "[suggest]") {
  Run run;
  for (int i = 0; i < 40; ++i) {
    const std::string time = "2026-11-26T12:00:" + std::string(i < 10 ? "0" : "") + std::to_string(i) + "Z";
    run.lines.push_back(connection("n" + std::to_string(i % 7) + ".example.com", 443,
                                   i % 3 ? "team-a" : "team-b", "Deployment/w" + std::to_string(i % 11),
                                   i % 2 ? "audit" : "allow", "203.0.113.7", time));
    run.lines.push_back(connection("", static_cast<uint16_t>(80 + i % 3), "team-a",
                                   "Deployment/w" + std::to_string(i % 13), "audit",
                                   "198.51.100." + std::to_string(i % 5), time));
    run.lines.push_back(dnsQuery("q" + std::to_string(i % 4) + ".example.org", i % 2 ? "team-a" : ""));
  }
  const std::string expected = run.yaml();
  CHECK(expected == run.yaml());
  std::mt19937 random(7);
  for (int round = 0; round < 5; ++round) {
    std::shuffle(run.lines.begin(), run.lines.end(), random);
    CHECK(run.yaml() == expected);
  }
  lint(expected);
}

TEST_CASE("suggest: input cannot inject YAML", "[suggest]") {
  Run run;
  run.lines = {connection("api.example.com", 443, "team-a", "Deployment/x\\n- \\\"evil.example:443\\\""),
               connection("evil\\u000aname.example", 443), connection("bad_name.example", 443),
               connection("api.example.com", 443, "Not A Namespace")};
  const auto yaml = run.yaml();
  const auto linted = lint(yaml);
  for (const auto& [id, targets] : linted) {
    for (const auto& target : targets) {
      INFO(target);
      CHECK(target == "api.example.com:443");
    }
  }
  CHECK(yaml.find("\n- \"evil") == std::string::npos);
  CHECK(yaml.find("not a valid host name") != std::string::npos);
}

TEST_CASE("suggest: reading lines names what is wrong", "[suggest]") {
  CHECK(suggest::readLine("").kind == suggest::LineKind::Skip);
  for (const std::string& addresses : {R"(["192.0.2.x"])", R"("192.0.2.1")", R"([1])"}) {
    const auto wrong = suggest::readLine(resolved("a.example.com", addresses));
    INFO(addresses);
    CHECK(wrong.kind == suggest::LineKind::Invalid);
    CHECK(wrong.error.find("\"addresses\"") != std::string::npos);
  }
  CHECK(suggest::readLine(R"({"dropped":3})").kind == suggest::LineKind::Skip);
  uint64_t dropped = 0;
  suggest::readLine(R"({"dropped":3})", &dropped);
  CHECK(dropped == 3);
  CHECK(suggest::readLine("{\"event\":" + connection("a.example.com", 443) + "}").kind ==
        suggest::LineKind::Event);
  auto bad = suggest::readLine("apiVersion: zalando.org/v1");
  CHECK(bad.kind == suggest::LineKind::Invalid);
  CHECK(bad.error.find("not JSON") != std::string::npos);
  bad = suggest::readLine(R"({"kind":"verdict","src":"10.0.0.1"})");
  CHECK(bad.error == "\"time\" is missing");
  bad = suggest::readLine(
      R"({"kind":"verdict","time":"2026-11-26T12:00:01Z","src":"10.0.0.1","dst":"10.0.0.2","proto":"tcp","verdict":"allow","dport":70000})");
  CHECK(bad.error == "\"dport\" is not a number in 0..65535");
  bad = suggest::readLine(
      R"({"kind":"verdict","time":"2026-11-26T12:00:01Z","src":"10.0.0.1","dst":"10.0.0.2","proto":"tcp","verdict":"allow","namespace":7})");
  CHECK(bad.error == "\"namespace\" is not a string");
  // Beyond what the system clock holds (2262): refused, not overflowed.
  bad = suggest::readLine(connection("a.example.com", 443, "team-a", "Deployment/web", "audit", "203.0.113.7",
                                     "4052-11-26T12:00:01Z"));
  CHECK(bad.kind == suggest::LineKind::Invalid);
}

TEST_CASE("suggest: distinct destinations are bounded", "[suggest]") {
  Run run;
  run.options.maxDestinations = 3;
  for (int i = 0; i < 5; ++i) run.lines.push_back(connection("n" + std::to_string(i) + ".example.com", 443));
  run.options.wildcardMin = 10;
  const auto suggestion = run.finish();
  CHECK(targetsOf(suggestion).size() == 3);
  CHECK(suggestion.droppedDestinations == 2);
  CHECK(run.yaml().find("INCOMPLETE") != std::string::npos);
}

TEST_CASE("suggest: the fast reader takes egressd's lines and agrees with eventFromJson",
          "[suggest][scanner]") {
  // What egressd writes (observe::toJson, dumped) always takes the fast path.
  for (const auto& line :
       {connection("api.example.com", 443), connection("", 80, "", "", "deny", "2001:db8::1"),
        dnsQuery("Resolved.Example.COM."), dnsQuery("x.example.com", "", "TYPE65534"),
        resolved("a.example.com", R"(["192.0.2.1","2001:db8::1","192.0.2.2"])")}) {
    const auto general = observe::eventFromJson(nlohmann::json::parse(line));
    REQUIRE(general);
    const std::string dumped = observe::toJson(*general).dump();
    for (const std::string& text : {line, dumped}) {
      INFO(text);
      const auto fast = suggest::scanFlatEvent(text);
      REQUIRE(fast);
      CHECK(observe::toJson(*fast) == observe::toJson(*general));
    }
  }
  // Unusual but valid JSON is declined, and the general reader decides.
  const std::string base = connection("a.example.com", 443);
  const std::string body = base.substr(0, base.size() - 1);
  for (const std::string& text :
       {body + R"(,"dport":80})", body + R"(,"reason":"sni\u005fallowed"})", body + R"(,"extra":{"x":1}})",
        body + R"(,"latency":4.43e2})", body + R"(,"flag":true})", "{\"event\":" + base + "}"}) {
    INFO(text);
    CHECK_FALSE(suggest::scanFlatEvent(text));
    CHECK(suggest::readLine(text).kind == suggest::LineKind::Event);
  }
  // Invalid values are declined too, and refused by both.
  for (const std::string& text : {body + R"(,"sport":0443})", body + R"(,"queue":70000})",
                                  body + R"(,"qtype":"NOPE"})", body + R"(,"rulesets":["a",5]})"}) {
    INFO(text);
    CHECK_FALSE(suggest::scanFlatEvent(text));
    CHECK(suggest::readLine(text).kind == suggest::LineKind::Invalid);
  }
}

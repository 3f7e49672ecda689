// egressctl top's window aggregation and rules/stats rendering, without a
// daemon.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>

#include "cli/rules_command.h"
#include "cli/stats_command.h"
#include "cli/top_command.h"
#include "cli/watch_command.h"

namespace {

observe::Event event(std::string_view name, std::string_view dst, uint16_t port,
                     observe::EventVerdict verdict, observe::EventKind kind = observe::EventKind::Verdict) {
  observe::Event e;
  e.kind = kind;
  e.dst = *common::parseIpAddress(dst);
  e.dstPort = port;
  e.verdict = verdict;
  std::memcpy(e.name.data(), name.data(), name.size());
  e.nameLength = static_cast<uint8_t>(name.size());
  return e;
}

}  // namespace

TEST_CASE("top: destinations by count, denied names from DNS and connections", "[top]") {
  cli::TopTable table;
  for (int i = 0; i < 3; ++i)
    table.add(event("api.example.com", "203.0.113.10", 443, observe::EventVerdict::Allow));
  table.add(event("api.example.com", "203.0.113.10", 443, observe::EventVerdict::Deny));
  table.add(event("", "203.0.113.50", 80, observe::EventVerdict::Allow));
  table.add(event("", "2001:db8::1", 80, observe::EventVerdict::Audit));
  for (int i = 0; i < 2; ++i) {
    table.add(
        event("edge.example.net", "10.77.0.1", 53, observe::EventVerdict::Deny, observe::EventKind::Dns));
  }
  table.add(event("ok.example.net", "10.77.0.1", 53, observe::EventVerdict::Allow, observe::EventKind::Dns));

  const auto destinations = table.destinations(10);
  REQUIRE(destinations.size() == 3);  // DNS answers are not destinations
  CHECK(destinations[0].key == "api.example.com:443");
  CHECK(destinations[0].total == 4);
  CHECK(destinations[0].allowed == 3);
  CHECK(destinations[0].denied == 1);
  CHECK(destinations[1].key == "203.0.113.50:80");
  CHECK(destinations[2].key == "[2001:db8::1]:80");
  CHECK(destinations[2].audit == 1);

  // DNS-only mode sees no connections: the names asked, allowed or not.
  const auto names = table.dnsNames(10);
  REQUIRE(names.size() == 2);
  CHECK(names[0].key == "edge.example.net");
  CHECK(names[0].denied == 2);
  CHECK(names[1].key == "ok.example.net");
  CHECK(names[1].allowed == 1);

  const auto denied = table.deniedNames(10);
  REQUIRE(denied.size() == 3);
  CHECK(denied[0].key == "edge.example.net");
  CHECK(denied[0].denied == 2);
  CHECK(table.deniedNames(1).size() == 1);
  CHECK(table.events() == 9);

  const auto json = table.toJson(2, 5);
  CHECK(json["destinations"].size() == 2);
  CHECK(json["dns_names"].size() == 2);
  CHECK(json["window_seconds"] == 5);
  std::ostringstream text;
  table.print(text, 10, 5);
  CHECK(text.str().find("api.example.com:443") != std::string::npos);
  CHECK(text.str().find("DENIED NAME") != std::string::npos);
  CHECK(text.str().find("DNS NAME") != std::string::npos);
  CHECK(text.str().find("ok.example.net") != std::string::npos);

  table.clear();
  CHECK(table.destinations(10).empty());
  CHECK(table.dnsNames(10).empty());
  CHECK(table.events() == 0);
}

TEST_CASE("top --by namespace|workload: decisions per client", "[top]") {
  const auto from = [](std::string_view ns, std::string_view pod, std::string_view workload,
                       observe::EventVerdict verdict) {
    observe::Event e = event("api.example.com", "203.0.113.10", 443, verdict);
    REQUIRE(e.client.assign(ns, pod, workload, ""));
    return e;
  };
  cli::TopTable byNamespace("namespace");
  cli::TopTable byWorkload("workload");
  const std::vector<observe::Event> events = {
      from("team-a", "web-1", "Deployment/web", observe::EventVerdict::Allow),
      from("team-a", "web-2", "Deployment/web", observe::EventVerdict::Deny),
      from("team-a", "db-0", "StatefulSet/db", observe::EventVerdict::Deny),
      from("team-b", "web-1", "Deployment/web", observe::EventVerdict::Audit),
      from("team-b", "static", "", observe::EventVerdict::Allow),
      event("x.example.com", "203.0.113.11", 443, observe::EventVerdict::Deny),  // no pod
  };
  for (const auto& e : events) {
    byNamespace.add(e);
    byWorkload.add(e);
  }
  const auto namespaces = byNamespace.clients(10);
  REQUIRE(namespaces.size() == 3);
  CHECK(namespaces[0].key == "team-a");
  CHECK(namespaces[0].total == 3);
  CHECK(namespaces[0].denied == 2);
  CHECK(namespaces[1].key == "team-b");
  CHECK(namespaces[1].audit == 1);
  CHECK(namespaces[2].key == "-");
  const auto workloads = byWorkload.clients(10);
  REQUIRE(workloads.size() == 5);
  CHECK(workloads[0].key == "team-a/Deployment/web");
  CHECK(workloads[0].total == 2);
  std::vector<std::string> keys;
  for (const auto& row : workloads) keys.push_back(row.key);
  CHECK(std::find(keys.begin(), keys.end(), "team-b/-") != keys.end());
  const auto json = byWorkload.toJson(10, 5);
  CHECK(json["by"] == "workload");
  CHECK(json["clients"].size() == 5);
  CHECK_FALSE(cli::TopTable().toJson(10, 5).contains("clients"));
  std::ostringstream text;
  byNamespace.print(text, 10, 5);
  CHECK(text.str().find("NAMESPACE") != std::string::npos);
}

TEST_CASE("watch: filter words are joined as tcpdump does", "[watch]") {
  CHECK(cli::joinFilter({}) == "");
  CHECK(cli::joinFilter({"port", "443", "and", "verdict", "deny"}) == "port 443 and verdict deny");
  CHECK(cli::joinFilter({"not dns"}) == "not dns");
}

TEST_CASE("rules and stats: human forms", "[rules]") {
  const auto rules = nlohmann::json::parse(R"({"generation":2,"targets":2,"ports":[443],
    "rule_sets":[{"id":"team/a","source":"/r/a.yaml#1","system":false,"targets":["api.example.com:443"]},
                 {"id":"kube-system/registry","source":"/s/r.yaml#1","system":true,"targets":["api.example.com:443"]}],
    "union":[{"target":"api.example.com:443","rule_sets":["kube-system/registry","team/a"]}]})");
  std::ostringstream out;
  cli::printRules(rules, out);
  const std::string text = out.str();
  CHECK(text.find("policy generation 2: 2 rule sets, 2 targets; ports in use: 443") != std::string::npos);
  CHECK(text.find("/s/r.yaml#1  (system)") != std::string::npos);
  CHECK(text.find("api.example.com:443  kube-system/registry, team/a") != std::string::npos);
}

TEST_CASE("stats: grouped, aligned, histograms as quantiles", "[stats]") {
  // The shape daemon/stats.cc sends (abridged).
  const auto stats = nlohmann::json::parse(R"({
    "version": 1, "time": 7500, "started_at": 100, "mode": "enforce",
    "dns": {"enabled": true, "queries": 1234,
            "outcomes": {"allowed": 1000, "denied": 34},
            "upstream_latency": {"buckets": [{"le": 0.001, "count": 50}, {"le": 0.01, "count": 90},
                                             {"le": 0.1, "count": 100}, {"le": "+Inf", "count": 100}],
                                 "sum_seconds": 0.5, "count": 100}},
    "nfqueue": {"enabled": true, "queues": [{"queue": 3, "packets": 9}]},
    "rulesets": {"limit": 100, "hits": []}
  })");
  std::ostringstream out;
  cli::printStats(stats, out);
  const std::string text = out.str();
  INFO(text);
  CHECK(text.rfind("mode enforce, up 2h03m\n", 0) == 0);
  // One block per section (keys sorted, as the JSON object holds them),
  // values aligned on the longest key of the block.
  CHECK(text.find("\ndns\n"
                  "  enabled           true\n"
                  "  outcomes.allowed  1000\n"
                  "  outcomes.denied   34\n"
                  "  queries           1234\n"
                  "  upstream_latency  count 100: p50 1.00 ms, p90 10 ms, p99 91 ms\n") != std::string::npos);
  // Lists of queues by their number, not their index.
  CHECK(text.find("  queues[3].packets  9\n") != std::string::npos);
  CHECK(text.find("  hits   (none)\n") != std::string::npos);
  // The raw numbers stay in --json only.
  CHECK(text.find("buckets") == std::string::npos);
  CHECK(text.find("started_at") == std::string::npos);
}

TEST_CASE("stats: histogram quantiles as Prometheus computes them", "[stats]") {
  const std::vector<double> bounds = {0.001, 0.01, 0.1, std::numeric_limits<double>::infinity()};
  CHECK(cli::histogramQuantile(0.5, bounds, {50, 90, 100, 100}) == Approx(0.001));
  CHECK(cli::histogramQuantile(0.25, bounds, {50, 90, 100, 100}) == Approx(0.0005));
  CHECK(cli::histogramQuantile(0.7, bounds, {50, 90, 100, 100}) == Approx(0.0055));
  CHECK(std::isinf(*cli::histogramQuantile(0.99, bounds, {0, 0, 10, 20})));
  CHECK_FALSE(cli::histogramQuantile(0.5, bounds, {0, 0, 0, 0}).has_value());
  std::ostringstream out;
  cli::printStats(nlohmann::json::parse(R"({"dns": {"upstream_latency": {"buckets": [{"le": 0.5, "count": 0},
      {"le": "+Inf", "count": 4}], "count": 4, "sum_seconds": 9}}})"),
                  out);
  CHECK(out.str().find("upstream_latency  count 4: p50 > 500 ms, p90 > 500 ms, p99 > 500 ms") !=
        std::string::npos);
}

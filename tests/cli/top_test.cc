// egressctl top's window aggregation and rules/stats rendering, without a
// daemon.
#include <catch2/catch.hpp>

#include <cstring>
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

  const auto denied = table.deniedNames(10);
  REQUIRE(denied.size() == 3);
  CHECK(denied[0].key == "edge.example.net");
  CHECK(denied[0].denied == 2);
  CHECK(table.deniedNames(1).size() == 1);
  CHECK(table.events() == 9);

  const auto json = table.toJson(2, 5);
  CHECK(json["destinations"].size() == 2);
  CHECK(json["window_seconds"] == 5);
  std::ostringstream text;
  table.print(text, 10, 5);
  CHECK(text.str().find("api.example.com:443") != std::string::npos);
  CHECK(text.str().find("DENIED NAME") != std::string::npos);

  table.clear();
  CHECK(table.destinations(10).empty());
  CHECK(table.events() == 0);
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

  std::ostringstream stats;
  cli::printStats(
      nlohmann::json::parse(R"({"dns":{"queries":3},"queues":[{"queue":0,"packets":9}],"mode":"enforce"})"),
      stats);
  CHECK(stats.str() == "dns.queries 3\nmode enforce\nqueues[0].packets 9\nqueues[0].queue 0\n");
}

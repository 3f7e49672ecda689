// deploy/grafana/egressd-dashboard.json: valid JSON, a Prometheus data
// source variable used by every panel, and every query names only metrics
// that egressd exports (renderPrometheus of a snapshot with every
// component on) — so a renamed metric breaks this test, not a dashboard
// nobody looks at until an incident.
#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "daemon/stats.h"
#include "metrics_checker.h"
#include "metrics_fixtures.h"

namespace {

nlohmann::json loadDashboard() {
  std::ifstream in(std::string(EGRESSD_SOURCE_DIR) + "/deploy/grafana/egressd-dashboard.json");
  REQUIRE(in);
  std::stringstream text;
  text << in.rdbuf();
  return nlohmann::json::parse(text.str());  // throws (fails the test) when invalid
}

// Every query text of the dashboard: panel targets' expr, and variable
// queries/definitions.
void collectQueries(const nlohmann::json& node, std::vector<std::string>& out) {
  if (node.is_object()) {
    for (const auto& [key, value] : node.items()) {
      if ((key == "expr" || key == "definition" || key == "query") && value.is_string()) {
        out.push_back(value.get<std::string>());
      }
      collectQueries(value, out);
    }
  } else if (node.is_array()) {
    for (const auto& item : node) collectQueries(item, out);
  }
}

void collectPanels(const nlohmann::json& panels, std::vector<nlohmann::json>& out) {
  for (const auto& panel : panels) {
    out.push_back(panel);
    if (panel.contains("panels")) collectPanels(panel.at("panels"), out);
  }
}

std::set<std::string> exportedSampleNames() {
  const auto exposition =
      metrics_checker::parse(daemon_main::renderPrometheus(metrics_fixtures::fullSnapshot()));
  REQUIRE(exposition.ok());
  std::set<std::string> names;
  for (const auto& [family, f] : exposition.families) {
    if (f.type == "histogram") {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) names.insert(family + suffix);
    } else {
      names.insert(family);
    }
  }
  return names;
}

}  // namespace

TEST_CASE("the Grafana dashboard parses and has a Prometheus data source variable") {
  const auto dashboard = loadDashboard();
  CHECK(dashboard.at("schemaVersion").get<int>() >= 36);
  CHECK_FALSE(dashboard.at("uid").get<std::string>().empty());
  CHECK(dashboard.at("title") == "egressd");
  bool datasourceVariable = false;
  for (const auto& variable : dashboard.at("templating").at("list")) {
    if (variable.at("type") == "datasource" && variable.at("query") == "prometheus" &&
        variable.at("name") == "datasource") {
      datasourceVariable = true;
    }
  }
  CHECK(datasourceVariable);

  std::vector<nlohmann::json> panels;
  collectPanels(dashboard.at("panels"), panels);
  std::set<int> ids;
  size_t queryPanels = 0;
  for (const auto& panel : panels) {
    INFO(panel.dump());
    CHECK(ids.insert(panel.at("id").get<int>()).second);
    if (panel.at("type") == "row") continue;
    ++queryPanels;
    CHECK(panel.at("datasource").at("uid") == "${datasource}");
    REQUIRE_FALSE(panel.at("targets").empty());
    for (const auto& target : panel.at("targets")) {
      CHECK(target.at("datasource").at("uid") == "${datasource}");
      CHECK_FALSE(target.at("expr").get<std::string>().empty());
    }
  }
  CHECK(queryPanels >= 10);
}

TEST_CASE("every dashboard query names metrics egressd exports") {
  const auto exported = exportedSampleNames();
  std::vector<std::string> queries;
  collectQueries(loadDashboard(), queries);
  REQUIRE(queries.size() >= 10);
  const std::regex metric("egressd_[a-zA-Z0-9_:]*");
  std::set<std::string> used;
  for (const auto& query : queries) {
    for (auto it = std::sregex_iterator(query.begin(), query.end(), metric); it != std::sregex_iterator();
         ++it) {
      const std::string name = it->str();
      INFO(query);
      CHECK(exported.count(name) == 1);
      used.insert(name);
    }
  }
  // The panels the issue asks for are there.
  for (const char* name :
       {"egressd_nfq_verdicts_total", "egressd_nfq_reasons_total", "egressd_ruleset_decisions_total",
        "egressd_dns_responses_total", "egressd_dns_upstream_latency_seconds_bucket",
        "egressd_nfq_held_flows", "egressd_reloads_total", "egressd_policy_age_seconds",
        "egressd_events_dropped_total"}) {
    INFO(name);
    CHECK(used.count(name) == 1);
  }
  bool quantiles = false;
  for (const auto& query : queries) {
    if (query.find("histogram_quantile(0.99") != std::string::npos) quantiles = true;
  }
  CHECK(quantiles);
}

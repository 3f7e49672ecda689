// egressd_denials_by_namespace_total: counting, the bound with "_other",
// unknown clients under "_none", and the rendered series.
#include "daemon/namespace_denials.h"

#include <catch2/catch.hpp>

#include "daemon/stats.h"
#include "metrics_checker.h"

using daemon_main::NamespaceDenials;

namespace {
observe::Event denial(std::string_view ns, observe::EventVerdict verdict = observe::EventVerdict::Deny,
                      observe::EventKind kind = observe::EventKind::Verdict) {
  observe::Event event;
  event.kind = kind;
  event.verdict = verdict;
  if (!ns.empty()) REQUIRE(event.client.assign(ns, "p", "Pod/p", ""));
  return event;
}
}  // namespace

TEST_CASE("namespace denials: per namespace, bounded, unknown clients apart") {
  NamespaceDenials denials(2);
  denials.count(denial("team-a"));
  denials.count(denial("team-a", observe::EventVerdict::Audit, observe::EventKind::Dns));
  denials.count(denial("team-a", observe::EventVerdict::Allow));  // not a denial
  denials.count(denial("team-b"));
  denials.count(denial("team-c"));  // beyond the bound
  denials.count(denial("team-d", observe::EventVerdict::Audit));
  denials.count(denial(""));
  denials.count(denial("team-b"));
  const auto rows = denials.rows();
  REQUIRE(rows.size() == 4);
  CHECK(rows[0].ns == "team-a");
  CHECK(rows[0].counts[0][0] == 1);
  CHECK(rows[0].counts[1][1] == 1);
  CHECK(rows[1].ns == "team-b");
  CHECK(rows[1].counts[0][0] == 2);
  CHECK(rows[2].ns == "_other");
  CHECK(rows[2].counts[0][0] == 1);
  CHECK(rows[2].counts[0][1] == 1);
  CHECK(rows[3].ns == "_none");
  CHECK(rows[3].counts[0][0] == 1);
}

TEST_CASE("namespace denials: the rendered series") {
  NamespaceDenials denials;
  denials.count(denial("team-a"));
  denials.count(denial("team-a"));
  denials.count(denial("", observe::EventVerdict::Audit));
  daemon_main::StatsSnapshot snapshot;
  snapshot.namespaceDenials = denials.rows();
  const auto exposition = metrics_checker::parse(daemon_main::renderPrometheus(snapshot));
  INFO(exposition.errorText());
  REQUIRE(exposition.ok());
  CHECK(exposition.value("egressd_denials_by_namespace_total",
                         {{"namespace", "team-a"}, {"kind", "connection"}, {"verdict", "deny"}}) == 2.0);
  CHECK_FALSE(exposition.value("egressd_denials_by_namespace_total",
                               {{"namespace", "team-a"}, {"kind", "dns"}, {"verdict", "deny"}}));
  CHECK(exposition.value("egressd_denials_namespace_tracked_limit") == 100.0);
  // Attribution off: no pod map gauges.
  CHECK(exposition.families.count("egressd_pod_map_pods") == 0);
  snapshot.podMap = daemon_main::PodMapCounters{3, 0, 10'000, 1, 1'040'056};
  const auto withMap = metrics_checker::parse(daemon_main::renderPrometheus(snapshot));
  REQUIRE(withMap.ok());
  CHECK(withMap.value("egressd_pod_map_pods") == 10'000.0);
  CHECK(withMap.value("egressd_pod_map_bytes") == 1'040'056.0);
}

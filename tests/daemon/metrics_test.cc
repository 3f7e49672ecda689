// daemon/stats.h renderers: the Prometheus text is read back with a strict
// checker (metrics_checker.h) and its numbers compared with the snapshot;
// the JSON form carries the same numbers; the checker itself rejects
// broken expositions (so a passing test means something).
#include <catch2/catch.hpp>

#include "common/c_handle.h"
#include "common/snapshot.h"
#include "daemon/stats.h"
#include "dns/service.h"
#include "metrics_checker.h"
#include "metrics_fixtures.h"

using metrics_checker::parse;
using metrics_fixtures::fullSnapshot;

namespace {
std::string outcome(dns::DnsOutcome o) {
  return std::string(dns::dnsOutcomeName(o));
}
}  // namespace

TEST_CASE("an empty snapshot renders every family, valid and without component samples") {
  const daemon_main::StatsSnapshot empty;
  const auto text = daemon_main::renderPrometheus(empty);
  const auto exposition = parse(text);
  INFO(exposition.errorText());
  REQUIRE(exposition.ok());
  CHECK(exposition.families.size() >= 50);
  CHECK(exposition.families.at("egressd_nfq_verdicts_total").type == "counter");
  CHECK(exposition.families.at("egressd_nfq_verdicts_total").samples.empty());
  CHECK(exposition.families.at("egressd_dns_upstream_latency_seconds").type == "histogram");
  CHECK(exposition.families.at("egressd_dns_upstream_latency_seconds").samples.empty());
  CHECK(exposition.value("egressd_reloads_total", {{"kind", "rules"}, {"outcome", "success"}}) == 0.0);
  // No policy yet: no age to report.
  CHECK(exposition.value("egressd_policy_age_seconds") == 0.0);
}

TEST_CASE("a full snapshot renders valid text with the snapshot's numbers") {
  const auto snapshot = fullSnapshot();
  const auto exposition = parse(daemon_main::renderPrometheus(snapshot));
  INFO(exposition.errorText());
  REQUIRE(exposition.ok());

  CHECK(exposition.value("egressd_start_time_seconds") == Approx(1'700'000'000.0));
  CHECK(exposition.value("egressd_audit_mode") == 1.0);
  CHECK(exposition.value("egressd_policy_generation") == 7.0);
  CHECK(exposition.value("egressd_policy_age_seconds") == Approx(10.0));
  CHECK(exposition.value("egressd_policy_loaded_timestamp_seconds") == Approx(1'700'000'090.0));
  CHECK(exposition.value("egressd_rules_problems", {{"severity", "error"}}) == 2.0);
  CHECK(exposition.value("egressd_rules_problems", {{"severity", "warning"}}) == 1.0);
  CHECK(exposition.value("egressd_reloads_total", {{"kind", "rules"}, {"outcome", "failure"}}) == 2.0);
  CHECK(exposition.value("egressd_reloads_total", {{"kind", "config"}, {"outcome", "success"}}) == 3.0);

  // Per queue, per verdict and reason, with the X-macro names.
  CHECK(exposition.value("egressd_nfq_packets_total", {{"queue", "17"}}) == 1017.0);
  const auto denyIndex = static_cast<size_t>(nfq::Verdict::Deny);
  CHECK(exposition.value("egressd_nfq_verdicts_total", {{"queue", "17"}, {"verdict", "deny"}}) ==
        static_cast<double>(10 * (denyIndex + 1) + 17));
  CHECK(exposition.value("egressd_nfq_verdicts_total", {{"queue", "0"}, {"verdict", "audit-allow"}}) ==
        static_cast<double>(10 * (static_cast<size_t>(nfq::Verdict::AuditAllow) + 1)));
  CHECK(exposition.value("egressd_nfq_reasons_total", {{"queue", "0"}, {"reason", "sni_not_bound"}}) ==
        static_cast<double>(static_cast<size_t>(nfq::Reason::SniNotBound)));
  CHECK(exposition.families.at("egressd_nfq_reasons_total").samples.size() == 2 * nfq::kReasonCount);
  // "ok" is not an error.
  CHECK(exposition.families.at("egressd_nfq_decode_errors_total").samples.size() ==
        2 * (nfq::kDecodeErrorCount - 1));
  CHECK(exposition.value("egressd_nfq_server_resets_total", {{"queue", "0"}, {"result", "failed"}}) == 6.0);
  CHECK(exposition.value("egressd_nfq_held_flows", {{"queue", "17"}}) == 9.0);
  CHECK(exposition.value("egressd_nfq_held_flows_removed_total", {{"queue", "0"}, {"cause", "evicted"}}) ==
        3.0);
  CHECK(exposition.value("egressd_nfq_held_flow_anomalies_total",
                         {{"queue", "0"}, {"anomaly", "pool_exhausted"}}) == 4.0);
  CHECK(exposition.value("egressd_nfq_held_retransmits_passed_total", {{"queue", "17"}}) == 32.0);
  CHECK(exposition.value("egressd_nfq_recent_repeats_total", {{"queue", "0"}}) == 16.0);
  CHECK(exposition.value("egressd_nfq_recent_repeats_total", {{"queue", "17"}}) == 33.0);

  // The kernel fast path; a set whose size could not be read has no sample.
  CHECK(exposition.value("egressd_nfq_fast_path_available") == 1.0);
  CHECK(exposition.value("egressd_nfq_fast_path_bindings_total") == 21.0);
  CHECK(exposition.value("egressd_nfq_fast_path_entries_written_total") == 22.0);
  CHECK(exposition.value("egressd_nfq_fast_path_failures_total", {{"cause", "set_full"}}) == 23.0);
  CHECK(exposition.value("egressd_nfq_fast_path_failures_total", {{"cause", "other"}}) == 24.0);
  CHECK(exposition.value("egressd_nfq_fast_path_resyncs_total") == 25.0);
  CHECK(exposition.value("egressd_nfq_fast_path_flushes_total") == 26.0);
  CHECK(exposition.value("egressd_nfq_fast_path_set_entries", {{"family", "ipv4"}}) == 27.0);
  CHECK_FALSE(exposition.value("egressd_nfq_fast_path_set_entries", {{"family", "ipv6"}}));

  CHECK(exposition.value("egressd_dns_queries_total") == 500.0);
  CHECK(exposition.value("egressd_dns_responses_total", {{"outcome", outcome(dns::DnsOutcome::Denied)}}) ==
        100.0 + static_cast<double>(dns::DnsOutcome::Denied));
  CHECK(exposition.value("egressd_dns_responses_total", {{"outcome", "cache_hit"}}) ==
        100.0 + static_cast<double>(dns::DnsOutcome::CacheHit));
  CHECK(exposition.value("egressd_dns_cache_lookups_total", {{"result", "miss"}}) == 20.0);
  CHECK(exposition.value("egressd_dns_bindings") == 12.0);
  CHECK(exposition.value("egressd_dns_tcp_half_closed_total") == 11.0);
  CHECK(exposition.value("egressd_dns_proxy_protocol_headers_total", {{"command", "proxy"}}) == 12.0);
  CHECK(exposition.value("egressd_dns_proxy_protocol_headers_total", {{"command", "local"}}) == 13.0);
  CHECK(exposition.value("egressd_dns_proxy_protocol_refused_total", {{"reason", "missing"}}) == 14.0);
  CHECK(exposition.value("egressd_dns_proxy_protocol_refused_total", {{"reason", "malformed"}}) == 15.0);
  CHECK(exposition.value("egressd_dns_pending_overflow_total") == 9.0);
  CHECK(exposition.value("egressd_dns_binding_evictions_total") == 5.0);
  CHECK(exposition.value("egressd_events_dropped_total") == 13.0);
  CHECK(exposition.value("egressd_control_events_dropped_total") == 14.0);

  // The histogram: cumulative buckets, +Inf == _count == every observation.
  CHECK(exposition.value("egressd_dns_upstream_latency_seconds_bucket", {{"le", "0.001"}}) == 4.0);
  CHECK(exposition.value("egressd_dns_upstream_latency_seconds_bucket", {{"le", "0.01"}}) == 7.0);
  CHECK(exposition.value("egressd_dns_upstream_latency_seconds_bucket", {{"le", "0.1"}}) == 9.0);
  CHECK(exposition.value("egressd_dns_upstream_latency_seconds_bucket", {{"le", "+Inf"}}) == 10.0);
  CHECK(exposition.value("egressd_dns_upstream_latency_seconds_count") == 10.0);
  CHECK(exposition.value("egressd_dns_upstream_latency_seconds_sum") == Approx(1.25));

  // Rule set hits: only non-zero series, label values escaped and read back.
  CHECK(exposition.value("egressd_ruleset_decisions_total",
                         {{"ruleset", "team-a/api"}, {"kind", "connection"}, {"verdict", "audit"}}) == 3.0);
  CHECK(exposition.value("egressd_ruleset_decisions_total",
                         {{"ruleset", "team-a/api"}, {"kind", "dns"}, {"verdict", "allow"}}) == 4.0);
  CHECK_FALSE(exposition.value("egressd_ruleset_decisions_total",
                               {{"ruleset", "team-a/api"}, {"kind", "dns"}, {"verdict", "deny"}}));
  CHECK(exposition.value("egressd_ruleset_decisions_total",
                         {{"ruleset", "we\"ird\\ns/x\ny"}, {"kind", "connection"}, {"verdict", "allow"}}) ==
        7.0);
  CHECK(exposition.value("egressd_ruleset_decisions_total",
                         {{"ruleset", "_other"}, {"kind", "connection"}, {"verdict", "deny"}}) == 9.0);
}

TEST_CASE("the raw text: content of HELP/TYPE lines and label escaping") {
  const auto text = daemon_main::renderPrometheus(fullSnapshot());
  CHECK(text.find("# HELP egressd_nfq_packets_total ") != std::string::npos);
  CHECK(text.find("# TYPE egressd_nfq_packets_total counter\n") != std::string::npos);
  CHECK(text.find("# TYPE egressd_dns_upstream_latency_seconds histogram\n") != std::string::npos);
  CHECK(text.find(R"(ruleset="we\"ird\\ns/x\ny")") != std::string::npos);
  CHECK(text.find("le=\"+Inf\"") != std::string::npos);
  // Every line is HELP, TYPE or a sample; no blank lines or stray spaces.
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    REQUIRE(end != std::string::npos);
    const std::string line = text.substr(start, end - start);
    CHECK_FALSE(line.empty());
    CHECK(line.back() != ' ');
    start = end + 1;
  }
  CHECK(daemon_main::escapeLabelValue("a\\b\"c\nd") == "a\\\\b\\\"c\\nd");
}

TEST_CASE("a histogram's _count is the +Inf bucket even if the reader raced a record") {
  daemon_main::StatsSnapshot s;
  s.dns.emplace();
  // count_ may be read ahead of a bucket: the renderer never uses it.
  s.dns->upstreamLatency = daemon_main::HistogramValue{{0.5}, {2, 1}, 0.75};
  const auto exposition = parse(daemon_main::renderPrometheus(s));
  INFO(exposition.errorText());
  REQUIRE(exposition.ok());
  CHECK(exposition.value("egressd_dns_upstream_latency_seconds_count") == 3.0);
}

TEST_CASE("common::LatencyHistogram converts to seconds") {
  common::LatencyHistogram histogram;
  histogram.record(std::chrono::microseconds(50));   // <= 100us
  histogram.record(std::chrono::microseconds(300));  // <= 500us
  histogram.record(std::chrono::milliseconds(3));    // <= 5ms
  histogram.record(std::chrono::seconds(10));        // +Inf
  const auto value = daemon_main::histogramValue(histogram);
  REQUIRE(value.upperBounds.size() == common::LatencyHistogram::kBoundsMicros.size());
  REQUIRE(value.counts.size() == value.upperBounds.size() + 1);
  CHECK(value.upperBounds.front() == Approx(0.0001));
  CHECK(value.upperBounds.back() == Approx(2.5));
  CHECK(value.counts[0] == 1);
  CHECK(value.counts.back() == 1);
  CHECK(value.sum == Approx(10.00335));
  daemon_main::StatsSnapshot s;
  s.dns.emplace();
  s.dns->upstreamLatency = value;
  const auto exposition = parse(daemon_main::renderPrometheus(s));
  INFO(exposition.errorText());
  REQUIRE(exposition.ok());
  CHECK(exposition.value("egressd_dns_upstream_latency_seconds_bucket", {{"le", "0.0001"}}) == 1.0);
  CHECK(exposition.value("egressd_dns_upstream_latency_seconds_bucket", {{"le", "0.0005"}}) == 2.0);
  CHECK(exposition.value("egressd_dns_upstream_latency_seconds_bucket", {{"le", "0.005"}}) == 3.0);
  CHECK(exposition.value("egressd_dns_upstream_latency_seconds_bucket", {{"le", "2.5"}}) == 3.0);
  CHECK(exposition.value("egressd_dns_upstream_latency_seconds_count") == 4.0);
}

TEST_CASE("the JSON form carries the same numbers") {
  const auto json = daemon_main::toJson(fullSnapshot());
  CHECK(json.at("version") == 1);
  CHECK(json.at("mode") == "audit");
  CHECK(json.at("policy").at("generation") == 7);
  CHECK(json.at("policy").at("age_seconds").get<double>() == Approx(10.0));
  CHECK(json.at("reloads").at("rules").at("failure") == 2);
  CHECK(json.at("reloads").at("config").at("success") == 3);
  REQUIRE(json.at("nfqueue").at("queues").size() == 2);
  const auto& q17 = json.at("nfqueue").at("queues").at(1);
  CHECK(q17.at("queue") == 17);
  CHECK(q17.at("packets") == 1017);
  CHECK(q17.at("verdicts").at("deny") == 10 * (static_cast<int>(nfq::Verdict::Deny) + 1) + 17);
  CHECK(q17.at("held_flows").at("active") == 9);
  CHECK(q17.at("held_retransmits_passed") == 32);
  CHECK(q17.at("recent_repeats") == 33);
  const auto& fast = json.at("nfqueue").at("fast_path");
  CHECK(fast.at("available") == true);
  CHECK(fast.at("set_entries").at("ipv4") == 27);
  CHECK_FALSE(fast.at("set_entries").contains("ipv6"));
  CHECK(fast.at("bindings") == 21);
  CHECK(fast.at("entries_written") == 22);
  CHECK(fast.at("set_full") == 23);
  CHECK(fast.at("failed") == 24);
  CHECK(fast.at("resyncs") == 25);
  CHECK(fast.at("flushes") == 26);
  CHECK(json.at("dns").at("enabled") == true);
  CHECK(json.at("dns").at("outcomes").at("denied") == 100 + static_cast<int>(dns::DnsOutcome::Denied));
  CHECK(json.at("dns").at("upstream_latency").at("count") == 10);
  CHECK(json.at("dns").at("proxy_protocol").at("proxy") == 12);
  CHECK(json.at("dns").at("proxy_protocol").at("malformed") == 15);
  CHECK(json.at("dns").at("upstream_latency").at("buckets").back().at("le") == "+Inf");
  CHECK(json.at("bindings").at("entries") == 12);
  CHECK(json.at("events").at("dropped") == 13);
  CHECK(json.at("events").at("control_client_dropped") == 14);
  REQUIRE(json.at("rulesets").at("hits").size() == 3);
  CHECK(json.at("rulesets").at("hits").at(0).at("ruleset") == "team-a/api");
  CHECK(json.at("rulesets").at("hits").at(0).at("connection").at("audit") == 3);
  // Components off: said so, not omitted silently.
  const auto off = daemon_main::toJson(daemon_main::StatsSnapshot{});
  CHECK(off.at("dns").at("enabled") == false);
  CHECK(off.at("nfqueue").at("enabled") == false);
  CHECK_FALSE(off.at("nfqueue").contains("fast_path"));
}

TEST_CASE("reload bookkeeping: outcome by errors, policy age restarts") {
  daemon_main::DaemonStats stats;
  daemon_main::RulesReload reload;
  reload.files = 2;
  const auto policy = policy::Policy::empty();
  stats.recordRulesReload(reload, *policy, 1, metrics_fixtures::at(100));
  CHECK(stats.rulesReloads.success == 1);
  CHECK(stats.rulesReloads.failure == 0);
  CHECK(stats.rulesFiles == 2);
  reload.problems.push_back(policy::Problem{});
  reload.problems.back().severity = policy::Severity::Warning;
  stats.recordRulesReload(reload, *policy, 2, metrics_fixtures::at(200));
  CHECK(stats.rulesReloads.success == 2);
  CHECK(stats.rulesWarnings == 1);
  reload.problems.back().severity = policy::Severity::Error;
  reload.keptLastGood.push_back("/x.yaml");
  stats.recordRulesReload(reload, *policy, 3, metrics_fixtures::at(300));
  CHECK(stats.rulesReloads.failure == 1);
  CHECK(stats.rulesErrors == 1);
  CHECK(stats.rulesWarnings == 0);
  CHECK(stats.filesKeptLastGood == 1);
  CHECK(stats.policyGeneration == 3);
  stats.recordConfigReload(false);
  stats.recordConfigReload(true);
  stats.recordConfigReload(true);
  CHECK(stats.configReloads.failure == 1);
  CHECK(stats.configReloads.success == 2);

  daemon_main::StatsSnapshot s;
  s.daemon = stats;
  s.now = metrics_fixtures::at(312.5);
  const auto exposition = parse(daemon_main::renderPrometheus(s));
  CHECK(exposition.value("egressd_policy_age_seconds") == Approx(12.5));
  CHECK(exposition.value("egressd_policy_generation") == 3.0);
}

TEST_CASE("collectStats reads the binding table, the DNS service and the rule set hits") {
  dns::BindingTable bindings(1000);
  const auto now = dns::Clock::now();
  bindings.record("api.example.com", *common::parseIpAddress("192.0.2.1"), now + std::chrono::seconds(60));
  bindings.record("api.example.com", *common::parseIpAddress("192.0.2.2"), now + std::chrono::seconds(60));
  daemon_main::DaemonStats daemonStats;
  daemonStats.policyGeneration = 4;
  daemon_main::RuleSetHits hits;
  observe::Event event;
  const std::string_view ids = "a/b";
  std::copy(ids.begin(), ids.end(), event.ruleSets.begin());
  event.ruleSetsLength = static_cast<uint16_t>(ids.size());
  event.verdict = observe::EventVerdict::Allow;
  hits.count(event);

  common::CHandle<event_base, event_base_free> base(event_base_new());
  common::SnapshotHolder<policy::Policy> policy(policy::Policy::empty());
  dns::DnsOptions options;
  options.listen = {{*common::parseIpAddress("127.0.0.1"), 0}};
  dns::DnsService service(base.get(), options, policy, bindings, nullptr);

  daemon_main::StatsSources sources;
  sources.daemon = &daemonStats;
  sources.dns = &service;
  sources.dnsCacheCapacity = 123;
  sources.bindings = &bindings;
  sources.ruleSetHits = &hits;
  sources.eventsDropped = 3;
  sources.audit = false;
  const auto snapshot = daemon_main::collectStats(sources);
  CHECK(snapshot.daemon.policyGeneration == 4);
  REQUIRE(snapshot.bindings);
  CHECK(snapshot.bindings->table.entries == 2);
  CHECK(snapshot.bindings->capacity == 1000);
  REQUIRE(snapshot.dns);
  CHECK(snapshot.dns->queries == 0);
  CHECK(snapshot.dns->cacheCapacity == 123);
  REQUIRE(snapshot.dns->upstreamLatency);
  CHECK(snapshot.dns->upstreamLatency->counts.size() == common::LatencyHistogram::kBuckets);
  CHECK(snapshot.queues.empty());
  CHECK(snapshot.eventsDropped == 3);
  REQUIRE(snapshot.ruleSetHits.size() == 1);
  CHECK(snapshot.ruleSetHits[0].counts[0][0] == 1);
  const auto exposition = parse(daemon_main::renderPrometheus(snapshot));
  INFO(exposition.errorText());
  REQUIRE(exposition.ok());
  CHECK(exposition.value("egressd_dns_bindings") == 2.0);
  CHECK(exposition.value("egressd_dns_bindings_recorded_total") == 2.0);
  CHECK(exposition.value("egressd_dns_cache_capacity") == 123.0);
  CHECK(exposition.value("egressd_dns_upstream_latency_seconds_count") == 0.0);
}

// The checker must reject what Prometheus would reject (or what breaks our
// conventions); otherwise the tests above prove nothing.
TEST_CASE("the exposition checker rejects broken text") {
  const auto rejects = [](const std::string& text) {
    const auto exposition = parse(text);
    return !exposition.ok();
  };
  const std::string head = "# HELP egressd_x_total X.\n# TYPE egressd_x_total counter\n";
  CHECK_FALSE(rejects(head + "egressd_x_total 1\n"));
  CHECK(rejects("egressd_x_total 1\n"));                                              // no TYPE/HELP
  CHECK(rejects("# TYPE egressd_x_total counter\negressd_x_total 1\n"));              // no HELP
  CHECK(rejects(head + "egressd_x_total -1\n"));                                      // negative counter
  CHECK(rejects(head + "egressd_x_total{a=\"1\"} 1\negressd_x_total{a=\"1\"} 2\n"));  // duplicate
  CHECK(rejects(head + "egressd_x_total{a=\"\\q\"} 1\n"));                            // bad escape
  CHECK(rejects(head + "egressd_x_total{a=\"1} 1\n"));                                // unterminated
  CHECK(rejects(head + "egressd_x_total{1a=\"1\"} 1\n"));                             // bad label name
  CHECK(rejects(head + "egressd_x_total one\n"));                                     // bad value
  CHECK(rejects(head + "egressd_x_total 1"));                                         // no final LF
  CHECK(rejects("# HELP egressd_y Y.\n# TYPE egressd_y counter\negressd_y 1\n"));  // counter without _total
  CHECK(rejects("# HELP other_total O.\n# TYPE other_total counter\nother_total 1\n"));  // not egressd_
  CHECK(rejects(head + "egressd_x_total 1\n# HELP egressd_z Z.\n# TYPE egressd_z gauge\negressd_z 1\n" +
                "egressd_x_total{a=\"2\"} 1\n"));                                // not contiguous
  CHECK(rejects(head + "egressd_x_total 1\n# TYPE egressd_x_total counter\n"));  // TYPE after samples
  const std::string hist = "# HELP egressd_h H.\n# TYPE egressd_h histogram\n";
  CHECK_FALSE(rejects(hist +
                      "egressd_h_bucket{le=\"1\"} 1\negressd_h_bucket{le=\"+Inf\"} 2\negressd_h_sum 3\n"
                      "egressd_h_count 2\n"));
  CHECK(rejects(hist + "egressd_h_bucket{le=\"1\"} 3\negressd_h_bucket{le=\"+Inf\"} 2\negressd_h_sum 3\n"
                       "egressd_h_count 2\n"));  // not cumulative
  CHECK(rejects(hist + "egressd_h_bucket{le=\"1\"} 1\negressd_h_bucket{le=\"2\"} 2\negressd_h_sum 3\n"
                       "egressd_h_count 2\n"));  // no +Inf
  CHECK(rejects(hist + "egressd_h_bucket{le=\"1\"} 1\negressd_h_bucket{le=\"+Inf\"} 2\negressd_h_sum 3\n"
                       "egressd_h_count 5\n"));  // _count != +Inf
  CHECK(rejects(
      hist +
      "egressd_h_bucket{le=\"1\"} 1\negressd_h_bucket{le=\"+Inf\"} 2\negressd_h_count 2\n"));  // no _sum
}

// Issue 5: a restarted verdict worker starts from zero; the totals reported
// per queue must not (Prometheus counters never go back within a process).
TEST_CASE("retired workers' counters are added to the running worker's") {
  nfq::QueueCounters first;
  first.packets = 10;
  first.verdicts[static_cast<size_t>(nfq::Verdict::Allow)] = 4;
  first.reasons[static_cast<size_t>(nfq::Reason::SniNotBound)] = 2;
  first.decodeErrors[1] = 1;
  first.heldRetransmitsPassed = 3;
  first.recentRepeats = 5;
  first.flows.inserted = 7;
  first.flows.released = 6;
  first.flows.expired = 1;
  first.flows.active = 0;  // stopped: nothing held
  nfq::QueueCounters second = first;
  second.packets = 1;

  daemon_main::RetiredCounters retired;
  retired.retire(0, first);
  retired.retire(0, second);  // two restarts
  retired.retire(1, first);

  nfq::QueueCounters live;
  live.packets = 100;
  live.verdicts[static_cast<size_t>(nfq::Verdict::Allow)] = 1;
  live.flows.active = 5;
  live.flows.inserted = 5;
  const nfq::QueueCounters total = retired.total(0, live);
  CHECK(total.packets == 111);
  CHECK(total.verdicts[static_cast<size_t>(nfq::Verdict::Allow)] == 9);
  CHECK(total.reasons[static_cast<size_t>(nfq::Reason::SniNotBound)] == 4);
  CHECK(total.decodeErrors[1] == 2);
  CHECK(total.heldRetransmitsPassed == 6);
  CHECK(total.recentRepeats == 10);
  CHECK(total.flows.inserted == 19);
  CHECK(total.flows.released == 12);
  CHECK(total.flows.expired == 2);
  CHECK(total.flows.active == 5);  // a level: the running worker's only
  // Other queues and queues without history are untouched.
  CHECK(retired.total(1, {}).packets == 10);
  CHECK(retired.total(2, live).packets == 100);

  // Rendered: the queue's counters are the totals.
  daemon_main::StatsSnapshot s;
  daemon_main::QueueStats q;
  static_cast<nfq::QueueCounters&>(q) = total;
  q.queue = 0;
  s.queues.push_back(q);
  const auto exposition = parse(daemon_main::renderPrometheus(s));
  INFO(exposition.errorText());
  REQUIRE(exposition.ok());
  CHECK(exposition.value("egressd_nfq_packets_total", {{"queue", "0"}}) == 111.0);
  CHECK(exposition.value("egressd_nfq_held_flows", {{"queue", "0"}}) == 5.0);
}

// daemon/rule_set_hits.h: counts per rule set id, bounded, following the
// policy's generations.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>

#include "daemon/rule_set_hits.h"
#include "policy/policy.h"
#include "policy/public_suffix.h"
#include "policy/target.h"

namespace {

observe::Event event(std::string_view ruleSets, observe::EventVerdict verdict,
                     observe::EventKind kind = observe::EventKind::Verdict) {
  observe::Event e;
  e.kind = kind;
  e.verdict = verdict;
  const size_t n = std::min(ruleSets.size(), e.ruleSets.size());
  std::copy_n(ruleSets.begin(), n, e.ruleSets.begin());
  e.ruleSetsLength = static_cast<uint16_t>(n);
  return e;
}

std::shared_ptr<const policy::Policy> policyWith(
    std::initializer_list<std::pair<const char*, const char*>> ids) {
  std::vector<policy::RuleSet> sets;
  for (const auto& [ns, name] : ids) {
    policy::RuleSet set;
    set.ns = ns;
    set.name = name;
    set.targets.push_back(
        *policy::parseTarget("api.example.com:443", policy::defaultPublicSuffixList()).target);
    set.targetTexts.push_back("api.example.com:443");
    sets.push_back(std::move(set));
  }
  return policy::Policy::compile(sets);
}

const daemon_main::RuleSetHitRow* row(const std::vector<daemon_main::RuleSetHitRow>& rows,
                                      std::string_view id) {
  for (const auto& r : rows) {
    if (r.ruleSet == id) return &r;
  }
  return nullptr;
}

constexpr size_t kConnection = 0;
constexpr size_t kDns = 1;
constexpr size_t kAllow = 0;
constexpr size_t kDeny = 1;
constexpr size_t kAudit = 2;

}  // namespace

TEST_CASE("rule set hits: every id of an event, by kind and verdict") {
  daemon_main::RuleSetHits hits;
  hits.count(event("team/a,team/b", observe::EventVerdict::Allow));
  hits.count(event("team/a", observe::EventVerdict::Deny));
  hits.count(event("team/b", observe::EventVerdict::Audit));
  hits.count(event("team/a", observe::EventVerdict::Allow, observe::EventKind::Dns));
  hits.count(event("", observe::EventVerdict::Deny));  // no rule set: nothing
  const auto rows = hits.rows();
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].ruleSet == "team/a");  // sorted
  CHECK(rows[0].counts[kConnection][kAllow] == 1);
  CHECK(rows[0].counts[kConnection][kDeny] == 1);
  CHECK(rows[0].counts[kDns][kAllow] == 1);
  CHECK(rows[1].ruleSet == "team/b");
  CHECK(rows[1].counts[kConnection][kAllow] == 1);
  CHECK(rows[1].counts[kConnection][kAudit] == 1);
  CHECK(rows[1].counts[kDns][kAllow] == 0);
}

TEST_CASE("rule set hits: at most N ids, the rest summed in _other") {
  daemon_main::RuleSetHits hits(3);
  for (int i = 0; i < 10; ++i) {
    hits.count(event("ns/r" + std::to_string(i), observe::EventVerdict::Allow));
    hits.count(event("ns/r" + std::to_string(i), observe::EventVerdict::Deny));
  }
  // Ids already tracked keep counting while others overflow.
  hits.count(event("ns/r0", observe::EventVerdict::Allow));
  const auto rows = hits.rows();
  REQUIRE(rows.size() == 4);
  CHECK(hits.tracked() == 3);
  CHECK(row(rows, "ns/r0")->counts[kConnection][kAllow] == 2);
  CHECK(row(rows, "ns/r3") == nullptr);
  CHECK(rows.back().ruleSet == "_other");
  CHECK(rows.back().counts[kConnection][kAllow] == 7);
  CHECK(rows.back().counts[kConnection][kDeny] == 7);

  // A flood of distinct ids never grows the table.
  for (int i = 0; i < 5000; ++i) hits.count(event("x/" + std::to_string(i), observe::EventVerdict::Allow));
  CHECK(hits.tracked() == 3);
  CHECK(hits.rows().size() == 4);
}

TEST_CASE("rule set hits: a new policy drops vanished ids and frees their room") {
  daemon_main::RuleSetHits hits(2);
  hits.retain(*policyWith({{"ns", "a"}, {"ns", "b"}, {"ns", "c"}}));
  hits.count(event("ns/a", observe::EventVerdict::Allow));
  hits.count(event("ns/b", observe::EventVerdict::Allow));
  hits.count(event("ns/c", observe::EventVerdict::Allow));    // over the bound
  hits.count(event("ns/zzz", observe::EventVerdict::Allow));  // not in the policy: ignored
  auto rows = hits.rows();
  REQUIRE(rows.size() == 3);
  CHECK(row(rows, "ns/zzz") == nullptr);
  CHECK(row(rows, "_other")->counts[kConnection][kAllow] == 1);

  hits.retain(*policyWith({{"ns", "b"}, {"ns", "c"}}));  // ns/a removed
  rows = hits.rows();
  CHECK(row(rows, "ns/a") == nullptr);
  CHECK(row(rows, "ns/b")->counts[kConnection][kAllow] == 1);
  // An event decided under the old policy does not bring ns/a back.
  hits.count(event("ns/a", observe::EventVerdict::Allow));
  CHECK(row(hits.rows(), "ns/a") == nullptr);
  // ns/c now has room of its own.
  hits.count(event("ns/c", observe::EventVerdict::Deny));
  rows = hits.rows();
  REQUIRE(row(rows, "ns/c") != nullptr);
  CHECK(row(rows, "ns/c")->counts[kConnection][kDeny] == 1);
  // _other is a counter: it keeps what it counted.
  CHECK(row(rows, "_other")->counts[kConnection][kAllow] == 1);
}

TEST_CASE("rule set hits: a cut list does not count its incomplete last id") {
  daemon_main::RuleSetHits hits;
  hits.count(event("ns/a,ns/lon...", observe::EventVerdict::Allow));
  hits.count(event("ns/a,...", observe::EventVerdict::Allow));
  hits.count(event(",ns/b,,", observe::EventVerdict::Allow));  // empty ids skipped
  const auto rows = hits.rows();
  REQUIRE(rows.size() == 2);
  CHECK(row(rows, "ns/a")->counts[kConnection][kAllow] == 2);
  CHECK(row(rows, "ns/b")->counts[kConnection][kAllow] == 1);
  CHECK(row(rows, "ns/lon...") == nullptr);
  CHECK(row(rows, "...") == nullptr);
}

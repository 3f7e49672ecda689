// Status from egressd's own loader, and writing only what changed.
#include <catch2/catch.hpp>

#include "controller/rule_set_object.h"
#include "controller/status.h"
#include "policy/public_suffix.h"
#include "tests/controller/rule_set_object_fixture.h"

using controller::statusPatch;
using controller::validateManifest;
using nlohmann::json;

namespace {

controller::RuleSetObject object(const json& targets, int64_t generation, const json& status = nullptr) {
  return controller_test::ruleSetObject("app", targets, generation, status);
}

controller::Validation validate(const controller::RuleSetObject& o) {
  return validateManifest(controller::manifestContent(o), o.key(), policy::defaultPublicSuffixList());
}

}  // namespace

TEST_CASE("status: valid, invalid (public suffix) and world access") {
  const auto valid = validate(object({"api.example.com:443", "*.example.org:80"}, 1));
  CHECK(valid.accepted);
  CHECK(valid.reason == "Valid");
  CHECK(valid.targetCount == 2);
  CHECK(valid.message == "2 targets in force");
  CHECK(validate(object({"api.example.com:443"}, 1)).message == "1 target in force");

  CHECK(valid.targetsInForce == 2u);

  // One refused target: not accepted, but the other target is in force and
  // the message says which is which.
  const auto invalid = validate(object({"ok.example.com:443", "*.github.io:443"}, 1));
  CHECK_FALSE(invalid.accepted);
  CHECK(invalid.reason == "InvalidTargets");
  CHECK(invalid.targetCount == 2);
  CHECK(invalid.targetsInForce == 1u);
  CHECK_THAT(
      invalid.message,
      Catch::StartsWith("1 of 2 targets will not be in force: target[1] \"*.github.io:443\"; the other one "
                        "will: spec.targets[1] \"*.github.io:443\": wildcard directly over a public suffix"));
  const auto invalidPatch = statusPatch(object({"ok.example.com:443", "*.github.io:443"}, 1), invalid, "t");
  REQUIRE(invalidPatch);
  CHECK((*invalidPatch)["status"]["targetsInForce"] == 1);
  CHECK((*invalidPatch)["status"]["conditions"][0]["status"] == "False");

  // Not readable as a rule set at all: no count in force (egressd keeps
  // the last good version it had).
  controller::RuleSetObject unreadable = object(json::array(), 1);
  unreadable.spec = {{"targets", "api.example.com:443"}};
  const auto notRead = validate(unreadable);
  CHECK_FALSE(notRead.accepted);
  CHECK(notRead.reason == "InvalidRuleSet");
  CHECK_FALSE(notRead.targetsInForce);
  CHECK_THAT(notRead.message, Catch::Contains("spec.targets must be a list") && Catch::Contains("last good"));
  const auto notReadPatch = statusPatch(unreadable, notRead, "t");
  REQUIRE(notReadPatch);
  CHECK((*notReadPatch)["status"]["targetsInForce"].is_null());

  const auto world = validate(object({"*:443"}, 1));
  CHECK(world.accepted);
  CHECK_THAT(world.message, Catch::Contains("warnings: ") && Catch::Contains("world access"));
}

TEST_CASE("status: patch only when something changed") {
  const auto o = object({"api.example.com:443"}, 3);
  const auto v = validate(o);
  const auto patch = statusPatch(o, v, "2026-01-01T00:00:00Z");
  REQUIRE(patch);
  const json& status = (*patch)["status"];
  CHECK(status["observedGeneration"] == 3);
  CHECK(status["targetCount"] == 1);
  REQUIRE(status["conditions"].size() == 1);
  const json& c = status["conditions"][0];
  CHECK(c["type"] == "Accepted");
  CHECK(c["status"] == "True");
  CHECK(c["reason"] == "Valid");
  CHECK(c["observedGeneration"] == 3);
  CHECK(c["lastTransitionTime"] == "2026-01-01T00:00:00Z");

  // The object now carries that status: nothing to write, whatever the time.
  auto written = object({"api.example.com:443"}, 3, status);
  CHECK_FALSE(statusPatch(written, validate(written), "2026-01-02T00:00:00Z"));

  // New generation, same verdict: patch, but the transition time stays.
  auto next = object({"api.example.com:443", "b.example.com:443"}, 4, status);
  const auto nextPatch = statusPatch(next, validate(next), "2026-01-03T00:00:00Z");
  REQUIRE(nextPatch);
  CHECK((*nextPatch)["status"]["conditions"][0]["lastTransitionTime"] == "2026-01-01T00:00:00Z");
  CHECK((*nextPatch)["status"]["observedGeneration"] == 4);

  // Verdict flips: new transition time.
  auto bad = object({"*.github.io:443"}, 5, status);
  const auto badPatch = statusPatch(bad, validate(bad), "2026-01-04T00:00:00Z");
  REQUIRE(badPatch);
  CHECK((*badPatch)["status"]["conditions"][0]["status"] == "False");
  CHECK((*badPatch)["status"]["conditions"][0]["lastTransitionTime"] == "2026-01-04T00:00:00Z");
}

TEST_CASE("status: other conditions survive the merge patch") {
  const json status = {
      {"conditions", json::array({{{"type", "Reviewed"}, {"status", "True"}},
                                  {{"type", "Accepted"}, {"status", "False"}, {"reason", "Old"}}})}};
  const auto o = object({"api.example.com:443"}, 1, status);
  const auto patch = statusPatch(o, validate(o), "2026-01-01T00:00:00Z");
  REQUIRE(patch);
  const json& conditions = (*patch)["status"]["conditions"];
  REQUIRE(conditions.size() == 2);
  CHECK(conditions[0]["type"] == "Reviewed");
  CHECK(conditions[1]["type"] == "Accepted");
  CHECK(conditions[1]["status"] == "True");
}

TEST_CASE("status: RFC 3339 times") {
  const auto seconds = controller::rfc3339Now(false);
  const auto micro = controller::rfc3339Now(true);
  CHECK(seconds.size() == 20);  // 2026-11-26T15:03:14Z
  CHECK(seconds.back() == 'Z');
  CHECK(micro.size() == 27);  // 2026-11-26T15:03:14.123456Z
  CHECK(micro[19] == '.');
}

// The WorldAccess condition: which "*:PORT" targets are in force, and a
// status patch only when the condition changed.
#include <catch2/catch.hpp>

#include "controller/rule_set_object.h"
#include "controller/status.h"
#include "controller/world_access.h"
#include "policy/public_suffix.h"
#include "tests/controller/rule_set_object_fixture.h"

using controller::statusPatch;
using controller::withWorldAccessCondition;
using controller::worldAccessOf;
using nlohmann::json;

namespace {

controller::RuleSetObject object(const json& targets, int64_t generation, const json& status = nullptr) {
  return controller_test::ruleSetObject("crawler", targets, generation, status);
}

controller::WorldAccess world(const controller::RuleSetObject& o) {
  return worldAccessOf(controller::manifestContent(o), o.key(), policy::defaultPublicSuffixList());
}

// What the controller writes: the Accepted part, then the WorldAccess part.
std::optional<json> patchFor(const controller::RuleSetObject& o, std::string_view now) {
  const auto validation = controller::validateManifest(controller::manifestContent(o), o.key(),
                                                       policy::defaultPublicSuffixList());
  return withWorldAccessCondition(statusPatch(o, validation, now), o, world(o), now);
}

const json* condition(const json& patch, const std::string& type) {
  for (const auto& c : patch["status"]["conditions"]) {
    if (c["type"] == type) return &c;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("world access: targets in force, canonical, once each") {
  CHECK(world(object({"api.example.com:443", "*.example.org:80", "203.0.113.0/24:443"}, 1)).targets.empty());
  CHECK(world(object({"*:80", "api.example.com:443", "*:443", "*:80"}, 1)).targets ==
        std::vector<std::string>{"*:80", "*:443"});
  // A document that is not a rule set (targets not a list) puts nothing in force.
  CHECK(world(object("*:80", 1)).targets.empty());
}

TEST_CASE("world access: the condition next to Accepted") {
  const auto o = object({"*:80", "*:443"}, 2);
  const auto patch = patchFor(o, "2026-01-01T00:00:00Z");
  REQUIRE(patch);
  const json* accepted = condition(*patch, "Accepted");
  const json* wa = condition(*patch, "WorldAccess");
  REQUIRE(accepted);
  REQUIRE(wa);
  CHECK((*accepted)["status"] == "True");
  CHECK((*wa)["status"] == "True");
  CHECK((*wa)["reason"] == "WorldTargetsInForce");
  CHECK_THAT((*wa)["message"].get<std::string>(),
             Catch::StartsWith("\"*:80\", \"*:443\" in force: every destination on those ports"));
  CHECK((*wa)["observedGeneration"] == 2);
  CHECK((*wa)["lastTransitionTime"] == "2026-01-01T00:00:00Z");

  // Written: nothing more to say.
  const auto written = object({"*:80", "*:443"}, 2, (*patch)["status"]);
  CHECK_FALSE(patchFor(written, "2026-01-02T00:00:00Z"));

  // World access removed: False, new transition time; Accepted keeps its own.
  const auto narrowed = object({"api.example.com:443"}, 3, (*patch)["status"]);
  const auto next = patchFor(narrowed, "2026-01-03T00:00:00Z");
  REQUIRE(next);
  REQUIRE(condition(*next, "WorldAccess"));
  CHECK((*condition(*next, "WorldAccess"))["status"] == "False");
  CHECK((*condition(*next, "WorldAccess"))["reason"] == "NoWorldTargets");
  CHECK((*condition(*next, "WorldAccess"))["lastTransitionTime"] == "2026-01-03T00:00:00Z");
  CHECK((*condition(*next, "Accepted"))["lastTransitionTime"] == "2026-01-01T00:00:00Z");
  CHECK((*next)["status"]["conditions"].size() == 2);
}

TEST_CASE("world access: an object written before the condition existed gets it alone") {
  // Status from an older controller: Accepted only, already up to date.
  const auto o = object({"*:80"}, 1);
  const auto validation = controller::validateManifest(controller::manifestContent(o), o.key(),
                                                       policy::defaultPublicSuffixList());
  auto accepted = statusPatch(o, validation, "2026-01-01T00:00:00Z");
  REQUIRE(accepted);
  json status = (*accepted)["status"];
  status["conditions"].insert(status["conditions"].begin(), json{{"type", "Reviewed"}, {"status", "True"}});
  const auto old = object({"*:80"}, 1, status);
  REQUIRE_FALSE(statusPatch(old, validation, "2026-01-02T00:00:00Z"));

  const auto patch = patchFor(old, "2026-01-02T00:00:00Z");
  REQUIRE(patch);
  // Only the conditions: observedGeneration and targetCount stay as stored.
  CHECK((*patch)["status"].size() == 1);
  const json& conditions = (*patch)["status"]["conditions"];
  REQUIRE(conditions.size() == 3);
  CHECK(conditions[0]["type"] == "Reviewed");
  CHECK(conditions[1]["type"] == "Accepted");
  CHECK(conditions[1]["lastTransitionTime"] == "2026-01-01T00:00:00Z");
  CHECK(conditions[2]["type"] == "WorldAccess");
  CHECK(conditions[2]["status"] == "True");
}

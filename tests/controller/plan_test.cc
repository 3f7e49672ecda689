// plan(): the pure diff between objects and files, as a table.
#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "controller/plan.h"
#include "controller/rule_set_object.h"

using controller::plan;
using Files = std::map<std::string, std::string>;

namespace {

struct Row {
  const char* description;
  Files desired;
  Files current;
  std::vector<std::string> writes;  // file names, sorted
  std::vector<std::string> deletes;
};

}  // namespace

TEST_CASE("plan: writes new and changed files, deletes only owned files nobody wants") {
  const std::vector<Row> rows = {
      {"empty dir, no objects", {}, {}, {}, {}},
      {"new object", {{"a_x.json", "A"}}, {}, {"a_x.json"}, {}},
      {"unchanged object writes nothing", {{"a_x.json", "A"}}, {{"a_x.json", "A"}}, {}, {}},
      {"changed content is rewritten", {{"a_x.json", "B"}}, {{"a_x.json", "A"}}, {"a_x.json"}, {}},
      {"unknown content (unreadable) is rewritten",
       {{"a_x.json", "A"}},
       {{"a_x.json", ""}},
       {"a_x.json"},
       {}},
      {"deleted object removes its file", {}, {{"a_x.json", "A"}}, {}, {"a_x.json"}},
      {"stale owned file removed, others kept",
       {{"a_x.json", "A"}},
       {{"a_x.json", "A"}, {"b_gone.json", "G"}, {"README", "r"}, {"hand.yaml", "h"}, {"team.json", "t"}},
       {},
       {"b_gone.json"}},
      {"hidden and temp files are never owned",
       {},
       {{".tmp-egress-controller-abc", "x"}, {".a_x.json", "x"}},
       {},
       {}},
      {"names with upper case or bad labels are not ours",
       {},
       {{"A_x.json", "x"}, {"a_X.json", "x"}, {"-a_x.json", "x"}, {"a_x-.json", "x"}, {"a_b_c.json", "x"}},
       {},
       {}},
      {"dotted object names are ours", {}, {{"ns_my.app.v2.json", "x"}}, {}, {"ns_my.app.v2.json"}},
      {".yaml files are not ours (we write .json)", {}, {{"ns_name.yaml", "x"}}, {}, {}},
      {"a desired name that is not owned is skipped", {{"not-owned.json", "x"}}, {}, {}, {}},
      {"mixed",
       {{"a_1.json", "1"}, {"a_2.json", "2new"}, {"b_3.json", "3"}},
       {{"a_2.json", "2old"}, {"b_3.json", "3"}, {"c_4.json", "4"}},
       {"a_1.json", "a_2.json"},
       {"c_4.json"}},
  };
  for (const auto& row : rows) {
    SECTION(row.description) {
      const auto p = plan(row.desired, row.current);
      std::vector<std::string> writes;
      for (const auto& w : p.writes) {
        writes.push_back(w.fileName);
        CHECK(w.content == row.desired.at(w.fileName));
      }
      CHECK(writes == row.writes);
      CHECK(p.deletes == row.deletes);
      CHECK(p.empty() == (row.writes.empty() && row.deletes.empty()));
    }
  }
}

TEST_CASE("plan: applying a plan and planning again gives an empty plan (idempotent)") {
  const Files desired = {{"a_1.json", "1"}, {"b_2.json", "2"}};
  Files disk = {{"a_1.json", "old"}, {"z_9.json", "9"}, {"keep.yaml", "k"}};
  const auto first = plan(desired, disk);
  for (const auto& w : first.writes) disk[w.fileName] = w.content;
  for (const auto& d : first.deletes) disk.erase(d);
  CHECK(plan(desired, disk).empty());
  CHECK(disk.count("keep.yaml") == 1);
}

TEST_CASE("rule_set_object: file names and manifest content") {
  std::string error;
  const auto object = controller::ruleSetFromJson(nlohmann::json::parse(R"({
    "apiVersion": "zalando.org/v1", "kind": "EgressRuleSet",
    "metadata": {"name": "my.app", "namespace": "team-a", "generation": 3, "resourceVersion": "77",
                 "uid": "u", "managedFields": [{"manager": "kubectl"}], "annotations": {"a": "b"}},
    "spec": {"targets": ["api.example.com:443"]},
    "status": {"observedGeneration": 2}
  })"),
                                                  error);
  REQUIRE(object);
  CHECK(object->key() == "team-a/my.app");
  CHECK(controller::manifestFileName(*object) == "team-a_my.app.json");
  CHECK(controller::isOwnedFileName(controller::manifestFileName(*object)));
  const auto content = nlohmann::json::parse(controller::manifestContent(*object));
  CHECK(content == nlohmann::json::parse(R"({
    "apiVersion": "zalando.org/v1", "kind": "EgressRuleSet",
    "metadata": {"name": "my.app", "namespace": "team-a", "generation": 3},
    "spec": {"targets": ["api.example.com:443"]}
  })"));
  // A status write changes resourceVersion and status only: same file.
  auto afterStatus = *object;
  afterStatus.resourceVersion = "78";
  afterStatus.status = nlohmann::json{{"observedGeneration", 3}};
  CHECK(controller::manifestContent(afterStatus) == controller::manifestContent(*object));
  auto newSpec = afterStatus;
  newSpec.generation = 4;
  CHECK(controller::manifestContent(newSpec) != controller::manifestContent(*object));

  CHECK_FALSE(controller::ruleSetFromJson(nlohmann::json::parse(R"({"metadata": {"name": "x"}})"), error));
  CHECK_FALSE(controller::ruleSetFromJson(
      nlohmann::json::parse(R"({"metadata": {"name": "a_b", "namespace": "n", "resourceVersion": "1"}})"),
      error));
  CHECK_FALSE(controller::ruleSetFromJson(nlohmann::json::parse("[]"), error));
}

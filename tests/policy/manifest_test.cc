// Manifests as `kubectl apply` takes them: YAML and JSON, several documents,
// Lists, wrong kinds, YAML errors; every problem names file, document,
// target and reason, and a bad rule set never takes the others down.
#include <catch2/catch.hpp>

#include <unistd.h>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "policy/manifest.h"

namespace {

policy::ManifestLoad load(const std::string& text, const std::string& name = "rules.yaml") {
  return policy::loadManifest(text, name, policy::defaultPublicSuffixList());
}

size_t countSeverity(const policy::ManifestLoad& l, policy::Severity severity) {
  return static_cast<size_t>(std::count_if(l.problems.begin(), l.problems.end(),
                                           [&](const policy::Problem& p) { return p.severity == severity; }));
}

bool anyProblemContains(const policy::ManifestLoad& l, const std::string& needle) {
  return std::any_of(l.problems.begin(), l.problems.end(), [&](const policy::Problem& p) {
    return p.toString().find(needle) != std::string::npos;
  });
}

}  // namespace

TEST_CASE("both examples of the original request are accepted as written", "[manifest]") {
  // Verbatim from MISSION.md, one stream with two documents.
  const std::string original = R"(apiVersion: "zalando.org/v1"
kind: EgressRuleSet
metadata:
   name: my-app-targets
spec:
   targets:
   - mydependency1.example.com:443
   - mydependency2.example.com:443
   - "*.example.org:80"
---
apiVersion: "zalando.org/v1"
kind: EgressRuleSet
metadata:
   name: world-access
spec:
   targets:
   - "*:80"
)";
  const auto l = load(original);
  CHECK_FALSE(l.hasErrors());
  REQUIRE(l.valid.size() == 2);
  CHECK(l.valid[0].id() == "default/my-app-targets");
  REQUIRE(l.valid[0].targets.size() == 3);
  CHECK(l.valid[0].targets[2].canonical() == "*.example.org:80");
  CHECK(l.valid[1].id() == "default/world-access");
  CHECK(l.valid[1].targets[0].kind == policy::TargetKind::AnyName);
  // World access is allowed but visible, and what it means for DNS is said
  // on its own line (issue 12): every name resolves, and which guard applies.
  CHECK(countSeverity(l, policy::Severity::Warning) == 2);
  CHECK(anyProblemContains(l, "world access"));
  CHECK(anyProblemContains(l, "world access makes every name resolvable"));
  CHECK(anyProblemContains(l, "dns.tunnel_guard_names"));
}

TEST_CASE("the example files in examples/rules are valid", "[manifest]") {
  const auto l = policy::loadRulesDirectories({std::string(EGRESSD_SOURCE_DIR) + "/examples/rules"},
                                              policy::defaultPublicSuffixList());
  for (const auto& p : l.problems) INFO(p.toString());
  CHECK_FALSE(l.hasErrors());
  CHECK(l.valid.size() >= 4);
}

TEST_CASE("the unquoted '*' of the original issue text gets a hint", "[manifest]") {
  const auto l = load(
      "apiVersion: zalando.org/v1\nkind: EgressRuleSet\nmetadata:\n  name: x\nspec:\n  targets:\n"
      "  - *.example.org:80\n");
  REQUIRE(l.hasErrors());
  CHECK(l.valid.empty());
  CHECK(anyProblemContains(l, "invalid YAML at line"));
  CHECK(anyProblemContains(l, "quote targets that begin with '*'"));
}

TEST_CASE("an invalid rule set is rejected whole and the others stay", "[manifest]") {
  const auto l = load(R"(apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: good, namespace: team-a}
spec: {targets: ["api.example.com:443"]}
---
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: bad, namespace: team-b}
spec:
  targets:
  - ok.example.com:443
  - "api.example.com:*"
  - "*.com:443"
)");
  REQUIRE(l.valid.size() == 1);
  CHECK(l.valid[0].id() == "team-a/good");
  REQUIRE(l.rejected.size() == 1);
  CHECK(l.rejected[0].id() == "team-b/bad");
  REQUIRE(countSeverity(l, policy::Severity::Error) == 2);
  const auto& first = l.problems[0];
  CHECK(first.file == "rules.yaml");
  CHECK(first.document == 2);
  CHECK(first.ruleSet == "team-b/bad");
  CHECK(first.targetIndex == 1u);
  CHECK(first.target == "api.example.com:*");
  CHECK(first.toString() ==
        "rules.yaml: document 2 (team-b/bad): target[1] \"api.example.com:*\": error: port wildcards are not "
        "allowed; "
        "name one port (1-65535)");
  CHECK(l.problems[1].targetIndex == 2u);
  CHECK(l.problems[1].message.find("public suffix") != std::string::npos);
}

TEST_CASE("other kinds are skipped with a warning, a wrong apiVersion is an error", "[manifest]") {
  const auto l = load(R"(apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
data: {a: b}
---
apiVersion: zalando.org/v2
kind: EgressRuleSet
metadata: {name: future}
spec: {targets: ["a.example.com:443"]}
---
---
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: ok}
spec: {targets: ["a.example.com:443"]}
)");
  CHECK(l.valid.size() == 1);
  CHECK(anyProblemContains(l, "document 1: warning: skipped: kind \"ConfigMap\""));
  CHECK(anyProblemContains(l, "document 2: error: apiVersion \"zalando.org/v2\" is not zalando.org/v1"));
  CHECK(countSeverity(l, policy::Severity::Error) == 1);
}

TEST_CASE("structural errors are named", "[manifest]") {
  struct Case {
    const char* yaml;
    const char* expected;
  };
  const Case cases[] = {
      {"apiVersion: zalando.org/v1\nkind: EgressRuleSet\nspec: {targets: []}\n", "metadata is missing"},
      {"apiVersion: zalando.org/v1\nkind: EgressRuleSet\nmetadata: {namespace: x}\nspec: {targets: []}\n",
       "metadata.name is missing"},
      {"apiVersion: zalando.org/v1\nkind: EgressRuleSet\nmetadata: {name: Bad_Name}\nspec: {targets: []}\n",
       "is not a valid name"},
      {"apiVersion: zalando.org/v1\nkind: EgressRuleSet\nmetadata: {name: a, namespace: \"x.y\"}\nspec: "
       "{targets: []}\n",
       "is not a valid namespace"},
      {"apiVersion: zalando.org/v1\nkind: EgressRuleSet\nmetadata: {name: a}\n", "spec is missing"},
      {"apiVersion: zalando.org/v1\nkind: EgressRuleSet\nmetadata: {name: a}\nspec: [1]\n",
       "spec must be a mapping"},
      {"apiVersion: zalando.org/v1\nkind: EgressRuleSet\nmetadata: {name: a}\nspec: {}\n",
       "spec.targets is missing"},
      {"apiVersion: zalando.org/v1\nkind: EgressRuleSet\nmetadata: {name: a}\nspec: {targets: x}\n",
       "spec.targets must be a list"},
      {"apiVersion: zalando.org/v1\nkind: EgressRuleSet\nmetadata: {name: a}\nspec: {targets: [[a]]}\n",
       "target[0]: error: target must be a string"},
      {"- just\n- a list\n", "document is not a mapping"},
      {"apiVersion: v1\nkind: List\n", "kind List without an items list"},
      {"key: [unclosed\n", "invalid YAML at line"},
  };
  for (const auto& c : cases) {
    INFO(c.yaml);
    const auto l = load(c.yaml);
    CHECK(l.hasErrors());
    CHECK(l.valid.empty());
    CHECK(anyProblemContains(l, c.expected));
  }
}

TEST_CASE("warnings: empty targets, duplicates, unknown spec fields", "[manifest]") {
  const auto l = load(R"(apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: a}
spec:
  targets: ["a.example.com:443", "A.example.com.:443"]
  ports: [443]
---
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: b}
spec: {targets: []}
)");
  CHECK_FALSE(l.hasErrors());
  CHECK(l.valid.size() == 2);
  CHECK(l.valid[0].targets.size() == 1);
  CHECK(anyProblemContains(l, "duplicate target"));
  CHECK(anyProblemContains(l, "unknown field spec.ports"));
  CHECK(anyProblemContains(l, "allows nothing"));
}

TEST_CASE("JSON manifests and kubectl Lists", "[manifest]") {
  const auto json = load(R"({"apiVersion":"zalando.org/v1","kind":"EgressRuleSet",
	"metadata":{"name":"j","namespace":"ns"},"spec":{"targets":["[2001:db8::1]:443","203.0.113.0/24:443"]}})",
                         "rules.json");
  CHECK_FALSE(json.hasErrors());
  REQUIRE(json.valid.size() == 1);
  CHECK(json.valid[0].id() == "ns/j");
  CHECK(json.valid[0].targets.size() == 2);

  const auto badJson = load("{\"apiVersion\": ", "bad.json");
  CHECK(badJson.hasErrors());
  CHECK(anyProblemContains(badJson, "invalid JSON at byte"));

  const auto list = load(R"(apiVersion: v1
kind: List
items:
- apiVersion: zalando.org/v1
  kind: EgressRuleSet
  metadata: {name: one}
  spec: {targets: ["a.example.com:443"]}
- apiVersion: zalando.org/v1
  kind: EgressRuleSet
  metadata: {name: two}
  spec: {targets: ["b.example.com:443"]}
)");
  CHECK_FALSE(list.hasErrors());
  CHECK(list.valid.size() == 2);
}

TEST_CASE("size bound and file errors", "[manifest]") {
  const std::string huge(policy::kMaxManifestBytes + 1, '#');
  const auto l = load(huge);
  CHECK(anyProblemContains(l, "file too large"));
  const auto missing =
      policy::loadManifestFile("/nonexistent/egressd/rules.yaml", policy::defaultPublicSuffixList());
  CHECK(missing.hasErrors());
  CHECK(anyProblemContains(missing, "/nonexistent/egressd/rules.yaml: error: cannot read"));
}

TEST_CASE("rules directories: only manifest files, sorted, broken ones skipped", "[manifest]") {
  const auto dir = std::filesystem::temp_directory_path() / ("egressd-rules-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) { std::ofstream(dir / name) << text; };
  write("b.yaml",
        "apiVersion: zalando.org/v1\nkind: EgressRuleSet\nmetadata: {name: b}\nspec: {targets: "
        "[\"b.example.com:443\"]}\n");
  write("a.yml",
        "apiVersion: zalando.org/v1\nkind: EgressRuleSet\nmetadata: {name: a}\nspec: {targets: "
        "[\"a.example.com:443\"]}\n");
  write("broken.yaml", "spec: [\n");
  write(
      "c.json",
      R"({"apiVersion":"zalando.org/v1","kind":"EgressRuleSet","metadata":{"name":"a"},"spec":{"targets":["c.example.com:443"]}})");
  write(".hidden.yaml",
        "apiVersion: zalando.org/v1\nkind: EgressRuleSet\nmetadata: {name: h}\nspec: {targets: "
        "[\"h.example.com:443\"]}\n");
  write("notes.txt", "not a manifest");
  const auto l = policy::loadRulesDirectories({dir.string(), (dir / "missing").string()},
                                              policy::defaultPublicSuffixList(), {dir.string()});
  REQUIRE(l.valid.size() == 3);
  CHECK(l.valid[0].name == "a");
  CHECK(l.valid[0].system);
  CHECK(l.valid[1].name == "b");
  CHECK(anyProblemContains(l, "broken.yaml"));
  CHECK(anyProblemContains(l, "rule set default/a is also defined in"));
  CHECK(anyProblemContains(l, "rules directory does not exist (yet)"));
  std::filesystem::remove_all(dir);
}

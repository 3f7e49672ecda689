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

#include <vector>
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
  CHECK(anyProblemContains(l, "World access covers public destinations only: loopback, link-local"));
  CHECK(anyProblemContains(l, "world access makes every name resolvable"));
  CHECK(anyProblemContains(l, "dns.tunnel_guard_names"));
}

TEST_CASE("the example files in examples/rules are valid", "[manifest]") {
  const auto l = policy::loadRulesDirectories({std::string(EGRESSD_SOURCE_DIR) + "/examples/rules"},
                                              policy::defaultPublicSuffixList());
  for (const auto& p : l.problems) INFO(p.toString());
  CHECK(l.errors() == 0);
  CHECK(l.ruleSets.size() >= 4);
}

TEST_CASE("every unquoted '*' is named at its line and column, the other documents load", "[manifest]") {
  const std::string text =
      "apiVersion: zalando.org/v1\nkind: EgressRuleSet\nmetadata:\n  name: x\nspec:\n  targets:\n"
      "  - api.example.com:443\n"
      "  - *.example.org:80\n"
      "  - *:80\n"
      "---\n"
      "apiVersion: zalando.org/v1\nkind: EgressRuleSet\nmetadata: {name: ok}\nspec:\n  targets: "
      "[\"a.example.com:443\"]\n"
      "---\n"
      "apiVersion: zalando.org/v1\nkind: EgressRuleSet\nmetadata: {name: flow}\nspec: {targets: "
      "[*.example.net:443]}\n";
  const auto l = load(text);
  REQUIRE(l.hasErrors());
  // The valid document in the middle stays in force.
  REQUIRE(l.valid.size() == 1);
  CHECK(l.valid[0].id() == "default/ok");
  CHECK(l.rejected.size() == 2);
  std::vector<std::string> lines;
  for (const auto& p : l.problems) lines.push_back(p.toString());
  INFO(lines.size());
  REQUIRE(l.problems.size() == 3);
  CHECK(l.problems[0].toString() ==
        "rules.yaml:8:5: error: an unquoted '*' starts a YAML alias, so this document cannot be read; quote "
        "the target: \"*.example.org:80\"");
  CHECK(l.problems[0].excerpt() == "      - *.example.org:80\n        ^\n");
  CHECK(l.problems[1].toString().starts_with("rules.yaml:9:5: error:"));
  CHECK_THAT(l.problems[1].message, Catch::Contains("\"*:80\""));
  CHECK(l.problems[2].toString().starts_with("rules.yaml:20:18: error:"));
  CHECK_THAT(l.problems[2].message, Catch::Contains("\"*.example.net:443\""));
  CHECK(l.problems[2].document == 3);
}

TEST_CASE("a refused target costs only itself, the rule set's other targets stay in force", "[manifest]") {
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
  REQUIRE(l.valid.size() == 2);
  CHECK(l.valid[0].id() == "team-a/good");
  const auto& bad = l.valid[1];
  CHECK(bad.id() == "team-b/bad");
  REQUIRE(bad.targets.size() == 1);
  CHECK(bad.targets[0].canonical() == "ok.example.com:443");
  REQUIRE(bad.refused.size() == 2);
  CHECK(bad.refused[0].index == 1);
  CHECK(bad.refused[0].text == "api.example.com:*");
  CHECK(bad.refused[1].index == 2);
  CHECK_THAT(bad.refused[1].reason, Catch::Contains("public suffix"));
  CHECK(l.rejected.empty());
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
  CHECK(l.problems[2].toString() ==
        "rules.yaml: document 2 (team-b/bad): warning: 2 of 3 targets will not be in force: target[1] "
        "\"api.example.com:*\", target[2] \"*.com:443\"; the other one will");
}

TEST_CASE("a kind near-miss is an error with a suggestion", "[manifest]") {
  for (const char* kind : {"EgressRuleset", "EgressRuleSets", "egressruleset", "EgresRuleSet"}) {
    INFO(kind);
    const auto l = load(std::string("apiVersion: zalando.org/v1\nkind: ") + kind +
                        "\nmetadata: {name: a}\nspec: {targets: [\"a.example.com:443\"]}\n");
    CHECK(l.hasErrors());
    CHECK(l.valid.empty());
    REQUIRE(l.rejected.size() == 1);
    CHECK(l.rejected[0].id() == "default/a");
    CHECK(anyProblemContains(
        l, "error: kind \"" + std::string(kind) + "\" is not EgressRuleSet; did you mean EgressRuleSet?"));
  }
  // Other kinds of the same group (skipper's RouteGroup) are not mistakes.
  const auto other = load("apiVersion: zalando.org/v1\nkind: RouteGroup\nmetadata: {name: r}\nspec: {}\n");
  CHECK_FALSE(other.hasErrors());
  CHECK(anyProblemContains(other, "warning: skipped: kind \"RouteGroup\""));
}

TEST_CASE("a field near-miss is an error with a suggestion, said once", "[manifest]") {
  struct Case {
    const char* description;
    const char* document;
    const char* message;
  };
  const Case cases[] = {
      {"spec.target", "metadata: {name: a}\nspec: {target: [\"a.example.com:443\"]}\n",
       "(default/a): error: unknown field spec.target; did you mean spec.targets?"},
      {"spec.Targets", "metadata: {name: a}\nspec: {Targets: [\"a.example.com:443\"]}\n",
       "(default/a): error: unknown field spec.Targets; did you mean spec.targets?"},
      {"spec.tragets next to targets",
       "metadata: {name: a}\nspec: {targets: [\"a.example.com:443\"], tragets: [\"b.example.com:443\"]}\n",
       "(default/a): error: unknown field spec.tragets; did you mean spec.targets?"},
      {"sepc", "metadata: {name: a}\nsepc: {targets: [\"a.example.com:443\"]}\n",
       "(default/a): error: unknown field sepc; did you mean spec?"},
      {"metdata", "metdata: {name: a}\nspec: {targets: [\"a.example.com:443\"]}\n",
       "error: unknown field metdata; did you mean metadata?"},
      {"metadata.nmae", "metadata: {nmae: a}\nspec: {targets: [\"a.example.com:443\"]}\n",
       "document 1: error: unknown field metadata.nmae; did you mean metadata.name?"},
      {"metadata.namespce", "metadata: {name: a, namespce: team}\nspec: {targets: [\"a.example.com:443\"]}\n",
       "(default/a): error: unknown field metadata.namespce; did you mean metadata.namespace?"},
  };
  for (const Case& c : cases) {
    INFO(c.description);
    const auto l = load(std::string("apiVersion: zalando.org/v1\nkind: EgressRuleSet\n") + c.document);
    CHECK(l.valid.empty());
    CHECK(l.rejected.size() == 1);
    CHECK(anyProblemContains(l, c.message));
    // The suggestion is the one error: no "spec.targets is missing" on top.
    CHECK(countSeverity(l, policy::Severity::Error) == 1);
  }
  // A misspelt label or annotation field changes no rule: a warning, and
  // the rule set stays in force.
  {
    const auto typo = load(R"(apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: a, lables: {app: x}, anotations: {a: b}}
spec: {targets: ["a.example.com:443"]}
)");
    CHECK(typo.valid.size() == 1);
    CHECK(countSeverity(typo, policy::Severity::Error) == 0);
    CHECK(anyProblemContains(typo, "unknown field metadata.lables is ignored"));
    CHECK(anyProblemContains(typo, "unknown field metadata.anotations is ignored"));
  }
  // Fields that are not near misses of a rule set's fields stay warnings;
  // ObjectMeta's own fields and status are not reported at all.
  const auto l = load(R"(apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: a, labels: {app: x}, annotations: {a: b}, uid: u, resourceVersion: "1", finalizers: []}
spec: {targets: ["a.example.com:443"], comment: hello}
status: {accepted: true}
owner: team-a
)");
  CHECK_FALSE(l.hasErrors());
  CHECK(l.valid.size() == 1);
  CHECK(anyProblemContains(l, "warning: unknown field spec.comment is ignored"));
  CHECK(anyProblemContains(l, "warning: unknown field owner is ignored"));
  CHECK(countSeverity(l, policy::Severity::Warning) == 2);
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
  CHECK(anyProblemContains(
      l, "document 2 (default/future): error: apiVersion \"zalando.org/v2\" is not zalando.org/v1"));
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
      {"- just\n- a list\n", "document is not a mapping"},
      {"apiVersion: v1\nkind: List\n", "kind List without an items list"},
      {"key: [unclosed\n", "rules.yaml:2:1: error: invalid YAML: "},
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
  CHECK(anyProblemContains(l,
                           "target[1] \"A.example.com.:443\": warning: duplicate target: same as target[0] "
                           "\"a.example.com:443\""));
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
  CHECK(anyProblemContains(badJson, "bad.json:1:16: error: invalid JSON: unexpected end of input"));
  CHECK_FALSE(anyProblemContains(badJson, "json.exception"));
  CHECK_FALSE(anyProblemContains(badJson, "syntax error while parsing"));

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
  std::filesystem::create_directories(dir / "sub.yaml");
  std::filesystem::create_symlink(dir / "gone.yaml", dir / "link.yaml");
  const auto l =
      policy::loadRulesDirectories({dir.string(), (dir / "missing").string(), (dir / "notes.txt").string()},
                                   policy::defaultPublicSuffixList(), {dir.string()});
  auto contains = [&](const std::string& needle) {
    return std::any_of(l.problems.begin(), l.problems.end(), [&](const policy::Problem& p) {
      return p.toString().find(needle) != std::string::npos;
    });
  };
  REQUIRE(l.ruleSets.size() == 3);
  CHECK(l.ruleSets[0].name == "a");
  CHECK(l.ruleSets[0].system);
  CHECK(l.ruleSets[1].name == "b");
  CHECK(contains("broken.yaml"));
  CHECK(contains("rule set default/a is also defined in"));
  CHECK(contains("rules directory does not exist (yet)"));
  CHECK(contains("notes.txt: error: rules directory is not a directory"));
  // Skipped entries are listed (wrong extension, a subdirectory, a dangling
  // link), hidden ones are not; those named as rule files are warned about.
  REQUIRE(l.skipped.size() == 3);
  CHECK(l.skipped[0] == (dir / "link.yaml").string());
  CHECK(l.skipped[1] == (dir / "notes.txt").string());
  CHECK(l.skipped[2] == (dir / "sub.yaml").string());
  CHECK(contains("link.yaml: warning: not read: a symbolic link to a file that does not exist"));
  CHECK(contains("sub.yaml: warning: not read: not a regular file (a directory?)"));
  CHECK_FALSE(contains("notes.txt: warning"));
  std::filesystem::remove_all(dir);
}

namespace {

const char* kTwoRuleSets = R"(apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: one, namespace: team}
spec: {targets: ["one.example.com:443"]}
---
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: two, namespace: team}
spec: {targets: ["two.example.com:443"]}
)";

policy::RulesLoad pass(const std::string& text,
                       const std::map<std::string, std::vector<policy::RuleSet>>* last,
                       std::function<bool(const std::string&)> writing = {}) {
  policy::RulesLoader loader(policy::defaultPublicSuffixList(), last, std::move(writing));
  loader.addContent(text, "f.yaml");
  return std::move(loader).finish();
}

std::vector<std::string> ids(const policy::RulesLoad& l) {
  std::vector<std::string> out;
  for (const auto& r : l.ruleSets) out.push_back(r.id() + "=" + std::to_string(r.targets.size()));
  return out;
}

bool mentions(const policy::RulesLoad& l, const std::string& needle) {
  return std::any_of(l.problems.begin(), l.problems.end(), [&](const policy::Problem& p) {
    return p.toString().find(needle) != std::string::npos;
  });
}

}  // namespace

TEST_CASE("last good: a document that cannot be read keeps its own last good version", "[manifest]") {
  const auto first = pass(kTwoRuleSets, nullptr);
  REQUIRE(ids(first) == std::vector<std::string>{"team/one=1", "team/two=1"});

  // Document 2 breaks (YAML alias): team/two keeps its last good version,
  // team/one takes its new targets.
  std::string broken = kTwoRuleSets;
  broken.replace(broken.find("one.example.com:443"), 19, "one.example.com:443\", \"uno.example.com:443");
  broken.replace(broken.find("[\"two.example.com:443\"]"), 23, "[*.two.example.com:443]");
  const auto second = pass(broken, &first.byFile);
  CHECK(ids(second) == std::vector<std::string>{"team/one=2", "team/two=1"});
  CHECK(second.keptLastGood == std::vector<std::string>{"f.yaml"});
  CHECK(mentions(second, "keeping the last good version of team/two"));

  // A near-miss kind names itself: only that rule set keeps its version.
  std::string nearMiss = kTwoRuleSets;
  nearMiss.replace(nearMiss.rfind("kind: EgressRuleSet"), 19, "kind: EgressRuleset");
  const auto third = pass(nearMiss, &first.byFile);
  CHECK(ids(third) == std::vector<std::string>{"team/one=1", "team/two=1"});
  CHECK(mentions(third, "did you mean EgressRuleSet?"));

  // Without a last good version (lint, --check-config) nothing is kept.
  CHECK(ids(pass(broken, nullptr)) == std::vector<std::string>{"team/one=2"});
}

TEST_CASE("last good: never keeps what the user removed", "[manifest]") {
  const auto first = pass(kTwoRuleSets, nullptr);
  // Document 2 deleted, document 1 changed: exactly the new version.
  const std::string one = std::string(kTwoRuleSets).substr(0, std::string(kTwoRuleSets).find("---"));
  CHECK(ids(pass(one, &first.byFile)) == std::vector<std::string>{"team/one=1"});
  // A refused target of a readable rule set is not replaced by its old version.
  std::string refused = kTwoRuleSets;
  refused.replace(refused.find("two.example.com:443"), 19, "*.github.io:443");
  const auto l = pass(refused, &first.byFile);
  CHECK(ids(l) == std::vector<std::string>{"team/one=1", "team/two=0"});
  CHECK(l.refusedTargets == 1);
  CHECK(l.keptLastGood.empty());
  CHECK(
      mentions(l, "1 of 1 target will not be in force: target[0] \"*.github.io:443\"; none of its targets"));
}

TEST_CASE("last good: an emptied file removes its rule sets and says which", "[manifest]") {
  const auto first = pass(kTwoRuleSets, nullptr);
  const auto emptied = pass("", &first.byFile);
  CHECK(emptied.ruleSets.empty());
  CHECK(mentions(
      emptied,
      "f.yaml: warning: the file holds no documents any more: its rule sets team/one, team/two are removed"));
  // A comment-only file is just as empty.
  CHECK(pass("# nothing yet\n", &first.byFile).ruleSets.empty());
}

TEST_CASE("rules directory: a file being written keeps its last good version", "[manifest]") {
  const auto dir = std::filesystem::temp_directory_path() / ("egressd-writing-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string file = (dir / "app.yaml").string();
  std::ofstream(file) << kTwoRuleSets;
  policy::RulesLoader firstLoader(policy::defaultPublicSuffixList());
  firstLoader.addDirectory(dir.string());
  const auto first = std::move(firstLoader).finish();
  REQUIRE(first.ruleSets.size() == 2);

  std::ofstream(file, std::ios::trunc) << "apiVersion: zalando.org/v1\nkind: EgressRuleSet\n";  // cut short
  bool writing = true;
  policy::RulesLoader during(policy::defaultPublicSuffixList(), &first.byFile,
                             [&](const std::string& path) { return writing && path == file; });
  during.addDirectory(dir.string());
  const auto second = std::move(during).finish();
  CHECK(second.ruleSets.size() == 2);
  CHECK(second.deferred == std::vector<std::string>{file});
  CHECK(second.problems.empty());

  writing = false;  // closed: now it counts (and this one is broken: it says so)
  policy::RulesLoader after(policy::defaultPublicSuffixList(), &second.byFile);
  after.addDirectory(dir.string());
  const auto third = std::move(after).finish();
  CHECK(third.deferred.empty());
  CHECK(third.errors() > 0);
  std::filesystem::remove_all(dir);
}

TEST_CASE("last good: a file that cannot be read at all keeps all of it", "[manifest]") {
  const std::string json =
      R"({"apiVersion":"zalando.org/v1","kind":"EgressRuleSet","metadata":{"name":"j","namespace":"team"},)"
      R"("spec":{"targets":["j.example.com:443"]}})";
  policy::RulesLoader firstLoader(policy::defaultPublicSuffixList());
  firstLoader.addContent(json, "f.json");
  const auto first = std::move(firstLoader).finish();
  REQUIRE(first.ruleSets.size() == 1);
  policy::RulesLoader brokenLoader(policy::defaultPublicSuffixList(), &first.byFile);
  brokenLoader.addContent(json.substr(0, 40), "f.json");  // cut short
  const auto broken = std::move(brokenLoader).finish();
  CHECK(broken.ruleSets == first.ruleSets);
  CHECK(mentions(broken, "f.json: warning: keeping the last good version of this file (1 rule set: team/j)"));
  // A file that never loaded has nothing to keep, and does not say it keeps it.
  policy::RulesLoader neverLoader(policy::defaultPublicSuffixList(), &broken.byFile);
  neverLoader.addContent("{", "g.json");
  const auto never = std::move(neverLoader).finish();
  CHECK_FALSE(mentions(never, "keeping"));
}

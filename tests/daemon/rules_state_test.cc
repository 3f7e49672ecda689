// egressd's passes over the rules directories (daemon/rules_state.h): what
// changed between two passes, by name, and problems logged once, not on
// every rescan.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "daemon/rules_state.h"

namespace {

std::string manifest(const std::string& name, const std::string& targets) {
  return "apiVersion: zalando.org/v1\nkind: EgressRuleSet\nmetadata: {name: " + name +
         ", namespace: team}\nspec: {targets: [" + targets + "]}\n";
}

struct TempDir {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("egressd-rules-state-" + std::to_string(::getpid()));
  TempDir() { std::filesystem::create_directories(path); }
  ~TempDir() { std::filesystem::remove_all(path); }
  void write(const std::string& name, const std::string& text) const { std::ofstream(path / name) << text; }
};

}  // namespace

TEST_CASE("rules state: added, removed, changed by name; problems logged once") {
  TempDir dir;
  dir.write("a.yaml", manifest("a", "\"a.example.com:443\""));
  dir.write("b.yaml", manifest("b", "\"b.example.com:443\""));
  daemon_main::RulesState state;
  const auto& psl = policy::defaultPublicSuffixList();
  const std::vector<std::string> dirs{dir.path.string()};

  const auto first = state.reload(dirs, {}, psl);
  CHECK(first.changes.added == std::vector<std::string>{"team/a", "team/b"});
  CHECK(first.changes.removed.empty());

  // b gets a refused target, c appears, a is deleted.
  dir.write("b.yaml", manifest("b", "\"b.example.com:443\", \"*.github.io:443\""));
  dir.write("c.yaml", manifest("c", "\"c.example.com:443\""));
  std::filesystem::remove(dir.path / "a.yaml");
  const auto second = state.reload(dirs, {}, psl);
  CHECK(second.changes.added == std::vector<std::string>{"team/c"});
  CHECK(second.changes.removed == std::vector<std::string>{"team/a"});
  CHECK(second.changes.changed == std::vector<std::string>{"team/b"});
  REQUIRE(second.removedFiles.size() == 1);
  CHECK(second.removedFiles[0].second == std::vector<std::string>{"team/a"});
  CHECK(second.refusedTargets == 1);
  REQUIRE(second.ruleSets.size() == 2);
  CHECK(second.ruleSets[0].targets.size() == 1);  // b's valid target stays in force
  CHECK_FALSE(second.newProblems.empty());

  // The same files again: the same problems, none of them new.
  const auto third = state.reload(dirs, {}, psl);
  CHECK(third.changes.empty());
  CHECK(third.problems.size() == second.problems.size());
  CHECK(third.newProblems.empty());
  CHECK(third.removedFiles.empty());
}

TEST_CASE("rules state: a file being written is not read until it is closed") {
  TempDir dir;
  dir.write("a.yaml", manifest("a", "\"a.example.com:443\""));
  daemon_main::RulesState state;
  const auto& psl = policy::defaultPublicSuffixList();
  const std::vector<std::string> dirs{dir.path.string()};
  REQUIRE(state.reload(dirs, {}, psl).ruleSets.size() == 1);
  dir.write("a.yaml", "");  // truncated by a writer that has not written yet
  const std::string file = (dir.path / "a.yaml").string();
  const auto during = state.reload(dirs, {}, psl, [&](const std::string& path) { return path == file; });
  CHECK(during.ruleSets.size() == 1);
  CHECK(during.changes.empty());
  CHECK(during.deferred == std::vector<std::string>{file});
  const auto closed = state.reload(dirs, {}, psl);  // closed empty: an intended removal
  CHECK(closed.ruleSets.empty());
  CHECK(closed.changes.removed == std::vector<std::string>{"team/a"});
}

TEST_CASE("rules state: bounded lists for log lines") {
  CHECK(daemon_main::boundedList({}) == "");
  CHECK(daemon_main::boundedList({"a", "b"}) == "a,b");
  std::vector<std::string> many;
  for (int i = 0; i < 13; ++i) many.push_back("n" + std::to_string(i));
  CHECK(daemon_main::boundedList(many) == "n0,n1,n2,n3,n4,n5,n6,n7,n8,n9 and 3 more");
}

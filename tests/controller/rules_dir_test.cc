// RulesDir: applying plans to a real temp directory.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "controller/plan.h"
#include "controller/rules_dir.h"

namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    char pattern[] = "/tmp/controller-rules.XXXXXX";
    path = mkdtemp(pattern);
  }
  ~TempDir() { fs::remove_all(path); }
  void write(const std::string& name, const std::string& content) const {
    std::ofstream(path / name) << content;
  }
  std::string read(const std::string& name) const {
    std::ifstream in(path / name);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
  }
};

}  // namespace

TEST_CASE("rules_dir: scan sees only owned files and clears our leftover temp files") {
  TempDir dir;
  dir.write("a_x.json", "AX");
  dir.write("hand.yaml", "H");
  dir.write("README", "R");
  dir.write(".tmp-egress-controller-abc", "half");
  dir.write(".tmp-someone-else", "theirs");
  std::vector<std::string> errors;
  const controller::RulesDir rules(dir.path.string());
  const auto files = rules.scan(errors);
  CHECK(errors.empty());
  CHECK(files == std::map<std::string, std::string>{{"a_x.json", "AX"}});
  CHECK_FALSE(fs::exists(dir.path / ".tmp-egress-controller-abc"));
  CHECK(fs::exists(dir.path / ".tmp-someone-else"));
  CHECK(fs::exists(dir.path / "hand.yaml"));
}

TEST_CASE("rules_dir: apply writes, replaces and deletes, never others' files") {
  TempDir dir;
  dir.write("a_old.json", "OLD");
  dir.write("b_keep.json", "v1");
  dir.write("hand.yaml", "H");
  const controller::RulesDir rules(dir.path.string());
  std::vector<std::string> errors;
  const auto plan = controller::plan({{"b_keep.json", "v2"}, {"c_new.json", "NEW"}}, rules.scan(errors));
  CHECK(plan.deletes == std::vector<std::string>{"a_old.json"});
  const auto applyErrors = rules.apply(plan);
  CHECK(applyErrors.empty());
  CHECK_FALSE(fs::exists(dir.path / "a_old.json"));
  CHECK(dir.read("b_keep.json") == "v2");
  CHECK(dir.read("c_new.json") == "NEW");
  CHECK(dir.read("hand.yaml") == "H");
  struct stat st {};
  REQUIRE(::stat((dir.path / "c_new.json").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0644);
  // No temp files remain.
  for (const auto& entry : fs::directory_iterator(dir.path)) {
    CHECK(entry.path().filename().string().rfind(".tmp-", 0) != 0);
  }
  // Two writes above went through one syncfs; a lone write is fsynced.
  controller::Plan one;
  one.writes = {{"d_one.json", "ONE"}};
  CHECK(rules.apply(one).empty());
  CHECK(dir.read("d_one.json") == "ONE");
  // A plan that names a foreign file for deletion is not obeyed.
  controller::Plan foreign;
  foreign.deletes = {"hand.yaml"};
  CHECK(rules.apply(foreign).empty());
  CHECK(fs::exists(dir.path / "hand.yaml"));
}

TEST_CASE("rules_dir: a missing directory is reported, not fatal") {
  const controller::RulesDir rules("/nonexistent/controller-test-dir");
  std::vector<std::string> errors;
  CHECK(rules.scan(errors).empty());
  CHECK(errors.size() == 1);
  controller::Plan plan;
  plan.writes = {{"a_x.json", "X"}};
  const auto applyErrors = rules.apply(plan);
  REQUIRE(applyErrors.size() == 1);
  CHECK_THAT(applyErrors[0], Catch::Contains("/nonexistent/controller-test-dir"));
}

// Loading from files: relative paths against the file's directory, I/O
// problems, and the shipped examples and docs staying in step with the code.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "config/load.h"

namespace fs = std::filesystem;

namespace {

// A fresh directory under the system temp dir, removed at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "egressd-config-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void writeFile(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  REQUIRE(out.good());
}

std::string readFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string describe(const config::ConfigLoad& result) {
  std::string out;
  for (const config::ConfigProblem& p : result.problems) out += "\n  " + p.toString();
  return out;
}

fs::path sourceDir() {
  return EGRESSD_SOURCE_DIR;
}

}  // namespace

TEST_CASE("relative paths are resolved against the config file's directory") {
  TempDir dir;
  fs::create_directories(dir.path() / "etc");
  const fs::path file = dir.path() / "etc" / "egressd.toml";
  writeFile(file, R"(
[rules]
dirs = ["rules", "./sys/", "../shared/rules.d", "/abs/dir"]
system_dirs = ["sys"]
[dns]
upstreams = ["192.0.2.1"]
[control]
socket = "run/control.sock"
)");
  const config::ConfigLoad result = config::loadConfigFile(file.string());
  INFO(describe(result));
  REQUIRE(result.ok());
  const std::string base = dir.path().string();
  CHECK(result.config->rules.dirs == std::vector<std::string>{base + "/etc/rules", base + "/etc/sys",
                                                              base + "/shared/rules.d", "/abs/dir"});
  CHECK(result.config->rules.systemDirs == std::vector<std::string>{base + "/etc/sys"});
  CHECK(result.config->control.socket == base + "/etc/run/control.sock");

  // A relative config path is made absolute first, so the result does not
  // depend on the daemon's later working directory.
  const fs::path previous = fs::current_path();
  fs::current_path(dir.path());
  const config::ConfigLoad relative = config::loadConfigFile("etc/egressd.toml");
  fs::current_path(previous);
  REQUIRE(relative.ok());
  CHECK(relative.config->rules.dirs == result.config->rules.dirs);

  // loadConfigText: explicit base, else the source name's directory.
  const std::string text = "[rules]\ndirs = [\"r\"]\n[dns]\nupstreams = [\"192.0.2.1\"]\n";
  CHECK(config::loadConfigText(text, "x.toml", "/base").config->rules.dirs ==
        std::vector<std::string>{"/base/r"});
  CHECK(config::loadConfigText(text, "/srv/e/x.toml").config->rules.dirs ==
        std::vector<std::string>{"/srv/e/r"});
  CHECK(config::loadConfigText(text, "x.toml").config->rules.dirs == std::vector<std::string>{"r"});
}

TEST_CASE("file problems name the file and never throw") {
  TempDir dir;
  const auto single = [](const config::ConfigLoad& result) {
    INFO(describe(result));
    REQUIRE(result.problems.size() == 1);
    CHECK_FALSE(result.ok());
    return result.problems.front();
  };

  const std::string missing = (dir.path() / "missing.toml").string();
  auto problem = single(config::loadConfigFile(missing));
  CHECK(problem.source == missing);
  CHECK(problem.message == "cannot open: No such file or directory");
  CHECK(problem.toString() == missing + ": cannot open: No such file or directory");

  CHECK(single(config::loadConfigFile(dir.path().string())).message == "not a regular file");

  const fs::path big = dir.path() / "big.toml";
  writeFile(big, "# " + std::string(config::kMaxConfigBytes, 'x') + "\n");
  CHECK(single(config::loadConfigFile(big.string())).message == "larger than 1048576 bytes");

  const fs::path broken = dir.path() / "broken.toml";
  writeFile(broken, "[dns]\nupstreams = [\"192.0.2.1\"]\n\nmode = \n");
  problem = single(config::loadConfigFile(broken.string()));
  CHECK(problem.line == 4);
  CHECK(problem.toString().rfind(broken.string() + ":4:", 0) == 0);

  const fs::path good = dir.path() / "good.toml";
  writeFile(good, "[dns]\nupstreams = [\"192.0.2.1\"]\n");
  CHECK(config::loadConfigFile(good.string()).ok());
}

TEST_CASE("the shipped examples load") {
  for (const char* name : {"examples/egressd.toml", "examples/egressd-local.toml"}) {
    CAPTURE(name);
    const config::ConfigLoad result = config::loadConfigFile((sourceDir() / name).string());
    INFO(describe(result));
    CHECK(result.ok());
  }
  const config::ConfigLoad local =
      config::loadConfigFile((sourceDir() / "examples/egressd-local.toml").string());
  REQUIRE(local.ok());
  // Run from the repository root: rules next to the example, no NFQUEUE.
  CHECK(local.config->rules.dirs ==
        std::vector<std::string>{(sourceDir() / "examples/rules").lexically_normal().string()});
  CHECK_FALSE(local.config->nfqueue.enabled);
  CHECK(local.config->control.socket == "/tmp/egressd.sock");
  CHECK(local.config->dns.listen == std::vector{*common::parseSocketAddress("127.0.0.1:5353")});
  // The host's own resolvers (systemd-resolved's 127.0.0.53 stub, or
  // whatever the host's resolv.conf names).
  CHECK(local.config->dns.upstreamsFrom == "/etc/resolv.conf");
  CHECK_FALSE(local.config->dns.upstreams.empty());
  // No shipped example names a documentation address as a resolver.
  const config::ConfigLoad complete =
      config::loadConfigFile((sourceDir() / "examples/egressd.toml").string());
  INFO(describe(complete));
  CHECK(local.warnings.empty());
  CHECK(complete.warnings.empty());
}

TEST_CASE("every key appears in the complete example and in the docs") {
  const std::string example = readFile(sourceDir() / "examples/egressd.toml");
  const std::string docs = readFile(sourceDir() / "docs/configuration.md");
  REQUIRE_FALSE(example.empty());
  REQUIRE_FALSE(docs.empty());
  for (const config::KeyInfo& key : config::knownKeys()) {
    const std::string path(key.path);
    CAPTURE(path);
    const size_t dot = path.find('.');
    const std::string name = dot == std::string::npos ? path : path.substr(dot + 1);
    CHECK(example.find("\n" + name + " = ") != std::string::npos);
    // The docs table row names the full path and its reload class.
    const std::string row = "| `" + path + "` |";
    const size_t at = docs.find(row);
    REQUIRE(at != std::string::npos);
    const std::string line = docs.substr(at, docs.find('\n', at) - at);
    CHECK(line.find(key.reload == config::Reload::Live ? "| live |" : "| restart |") != std::string::npos);
  }
}

TEST_CASE("the example in docs/configuration.md loads") {
  const std::string docs = readFile(sourceDir() / "docs/configuration.md");
  const std::string open = "## Example\n\n```toml\n";
  const size_t start = docs.find(open);
  REQUIRE(start != std::string::npos);
  const size_t end = docs.find("```", start + open.size());
  REQUIRE(end != std::string::npos);
  const std::string text = docs.substr(start + open.size(), end - start - open.size());
  const config::ConfigLoad result = config::loadConfigText(text, "docs/configuration.md", "/");
  INFO(describe(result));
  REQUIRE(result.ok());
  CHECK(result.config->rules.isSystemDir("/etc/egressd/system.d"));
  CHECK(result.config->nfqueue.queues == std::vector<uint16_t>{0});
  CHECK(result.config->log.format == config::LogFormat::Json);
}

#include "common/command_line.h"

#include <CLI/CLI.hpp>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

namespace {

struct Parsed {
  std::string name = "default";
  std::string other = "default";
  std::vector<std::string> rest;
};

// Parses `words` (program name first) the way the three programs do.
Parsed parse(std::vector<std::string> words) {
  std::vector<char*> argv;
  for (std::string& word : words) argv.push_back(word.data());
  argv.push_back(nullptr);
  common::CommandLine line(static_cast<int>(words.size()), argv.data());
  Parsed parsed;
  CLI::App app;
  app.add_option("--name", parsed.name);
  app.add_option("--other", parsed.other);
  app.add_option("rest", parsed.rest);
  app.parse(line.argc(), line.argv());
  return parsed;
}

}  // namespace

TEST_CASE("an empty --name= is the empty value, not the next argument") {
  const Parsed parsed = parse({"prog", "--name=", "--other", "x"});
  CHECK(parsed.name.empty());
  CHECK(parsed.other == "x");
}

TEST_CASE("an empty --name= as the last argument is the empty value") {
  const Parsed parsed = parse({"prog", "--other=y", "--name="});
  CHECK(parsed.name.empty());
  CHECK(parsed.other == "y");
}

TEST_CASE("values with '=' and ordinary forms are passed unchanged") {
  const Parsed parsed = parse({"prog", "--name=a=", "--other", "b"});
  CHECK(parsed.name == "a=");
  CHECK(parsed.other == "b");
  CHECK(parse({"prog", "--name", ""}).name.empty());
  CHECK(parse({"prog", "--name=v"}).name == "v");
}

TEST_CASE("after -- a word ending in '=' is a positional argument") {
  const Parsed parsed = parse({"prog", "--", "--name="});
  CHECK(parsed.name == "default");
  REQUIRE(parsed.rest.size() == 1);
  CHECK(parsed.rest[0] == "--name=");
}

TEST_CASE("the program name is never split and argv ends with a null") {
  std::vector<std::string> words = {"--name=", "--name="};
  std::vector<char*> argv = {words[0].data(), words[1].data(), nullptr};
  common::CommandLine line(2, argv.data());
  REQUIRE(line.argc() == 3);
  CHECK(std::string(line.argv()[0]) == "--name=");
  CHECK(std::string(line.argv()[1]) == "--name");
  CHECK(std::string(line.argv()[2]).empty());
  CHECK(line.argv()[3] == nullptr);
}

#include "attribution/pod_map_file.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

using attribution::formatPodMap;
using attribution::parsePodMap;
using attribution::PodRecord;

namespace {
common::IpAddress ip(std::string_view text) {
  return *common::parseIpAddress(text);
}
}  // namespace

TEST_CASE("pod map: good lines, comments, blanks, dashes") {
  const auto parsed = parsePodMap(
      "# IP NAMESPACE POD WORKLOAD SERVICE_ACCOUNT\n"
      "\n"
      "10.244.1.7 team-a web-7d9c6b5f4-x2x9q Deployment/web web-sa\n"
      "  fd00:10:244::7\tteam-a  web-7d9c6b5f4-x2x9q Deployment/web web-sa  \r\n"
      "::ffff:10.244.1.9 team-b db-0 StatefulSet/db -\n"
      "10.244.1.10 kube-system etcd-node1 - -");
  CHECK(parsed.problems.empty());
  REQUIRE(parsed.records.size() == 4);
  CHECK(parsed.records[0] ==
        PodRecord{ip("10.244.1.7"), "team-a", "web-7d9c6b5f4-x2x9q", "Deployment/web", "web-sa"});
  CHECK(parsed.records[1].ip == ip("fd00:10:244::7"));
  // The ::ffff: form is the IPv4 address: one address, one spelling.
  CHECK(parsed.records[2] == PodRecord{ip("10.244.1.9"), "team-b", "db-0", "StatefulSet/db", ""});
  CHECK(parsed.records[3] == PodRecord{ip("10.244.1.10"), "kube-system", "etcd-node1", "", ""});
}

TEST_CASE("pod map: a bad line is skipped and named, the others stay") {
  const auto parsed = parsePodMap(
      "10.0.0.1 ns a - -\n"
      "10.0.0.2 ns b\n"                   // 2: too few fields
      "10.0.0.3 ns c - - extra\n"         // 3: too many
      "10.0.0.300 ns d - -\n"             // 4: address
      "10.0.0.5 NS e - -\n"               // 5: namespace case
      "10.0.0.6 ns f_g - -\n"             // 6: pod name
      "10.0.0.7 ns h web -\n"             // 7: workload without kind
      "10.0.0.8 ns i Deployment/Web -\n"  // 8: workload name case
      "10.0.0.9 ns j - bad@sa\n"          // 9: service account
      "10.0.0.1 other k - -\n"            // 10: address again
      "::ffff:10.0.0.1 other l - -\n"     // 11: the same address, mapped
      "10.0.0.12 " +
      std::string(64, 'n') +
      " m - -\n"                    // 12: namespace > 63
      "10.0.0.13 ns n 1Kind/x -\n"  // 13: kind must start with a letter
      "10.0.0.14 ns o - -\n");
  REQUIRE(parsed.records.size() == 2);
  CHECK(parsed.records[0].pod == "a");
  CHECK(parsed.records[1].pod == "o");
  std::vector<size_t> lines;
  for (const auto& problem : parsed.problems) lines.push_back(problem.line);
  CHECK(lines == std::vector<size_t>{2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13});
  CHECK(parsed.problems[0].toString() ==
        "line 2: expected 5 fields (IP NAMESPACE POD WORKLOAD SERVICE_ACCOUNT, \"-\" for none), found 3");
  CHECK(parsed.problems[2].message == "\"10.0.0.300\" is not an IPv4 or IPv6 address");
  CHECK(parsed.problems[8].message == "address 10.0.0.1 is mapped by an earlier line; one address, one pod");
}

TEST_CASE("pod map: format then parse gives the records back") {
  const std::vector<PodRecord> records = {
      {ip("10.244.1.7"), "team-a", "web-7d9c6b5f4-x2x9q", "Deployment/web", "web-sa"},
      {ip("2001:db8::7"), "team-b", "db-0", "StatefulSet/db", ""},
      {ip("10.244.1.8"), "jobs", "nightly-29012345-abcde", "CronJob/nightly", "default"},
      {ip("10.244.1.9"), "default", "bare", "Pod/bare", ""},
      {ip("10.244.1.10"), "default", "orphan", "", ""},
  };
  const std::string text = formatPodMap(records);
  CHECK(text.rfind("# egressd pod map", 0) == 0);
  const auto parsed = parsePodMap(text);
  CHECK(parsed.problems.empty());
  CHECK(parsed.records == records);
}

TEST_CASE("pod map: names at Kubernetes' limits") {
  using attribution::isDnsLabel;
  using attribution::isDnsSubdomain;
  using attribution::isWorkload;
  CHECK(isDnsLabel(std::string(63, 'a')));
  CHECK_FALSE(isDnsLabel(std::string(64, 'a')));
  CHECK_FALSE(isDnsLabel("-a"));
  CHECK_FALSE(isDnsLabel("a-"));
  CHECK_FALSE(isDnsLabel(""));
  CHECK(isDnsSubdomain("a.b-c.d"));
  CHECK_FALSE(isDnsSubdomain("a..b"));
  CHECK_FALSE(isDnsSubdomain(".a"));
  CHECK_FALSE(isDnsSubdomain("a."));
  const std::string label63(63, 'a');
  const std::string name253 = label63 + "." + label63 + "." + label63 + "." + std::string(61, 'b');
  CHECK(isDnsSubdomain(name253));
  CHECK_FALSE(isDnsSubdomain(name253 + "b"));
  CHECK(isWorkload("StatefulSet/" + name253));
  CHECK_FALSE(isWorkload("StatefulSetX/" + name253));  // would not fit an event
  CHECK_FALSE(isWorkload("/web"));
  CHECK_FALSE(isWorkload("Deployment/"));
  CHECK_FALSE(isWorkload("Deployment"));
  CHECK(isWorkload("Rollout/web"));  // any controller kind
}

TEST_CASE("pod map: the file is replaced atomically") {
  const auto dir = std::filesystem::temp_directory_path() / ("podmap-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "pods.map").string();
  std::string error;
  REQUIRE(attribution::writePodMapFile(path, "10.0.0.1 a b - -\n", error));
  REQUIRE(attribution::writePodMapFile(path, "10.0.0.2 c d - -\n", error));
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  CHECK(content.str() == "10.0.0.2 c d - -\n");
  // Only the file: no temporary left behind.
  size_t entries = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir)) ++entries;
  CHECK(entries == 1);
  CHECK_FALSE(attribution::writePodMapFile((dir / "missing" / "pods.map").string(), "x", error));
  CHECK(error.find("missing") != std::string::npos);
  std::filesystem::remove_all(dir);
}

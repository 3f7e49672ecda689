// SIGHUP support: which settings need a restart, and keeping their running
// values while the live ones change.
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "config/config.h"

namespace {
common::SocketAddress addr(const char* text) {
  return *common::parseSocketAddress(text);
}
}  // namespace

TEST_CASE("restartOnlyChanges names each changed restart-only key") {
  const config::Config before;
  struct Case {
    const char* description;
    void (*change)(config::Config&);
    std::vector<std::string> expected;
  };
  const Case cases[] = {
      {"nothing", [](config::Config&) {}, {}},
      {"mode is live", [](config::Config& c) { c.mode = config::Mode::Audit; }, {}},
      {"rules are live",
       [](config::Config& c) {
         c.rules.dirs = {"/x"};
         c.rules.systemDirs = {"/x"};
         c.rules.strictBinding = false;
         c.rules.bindingGrace = std::chrono::seconds(1);
       },
       {}},
      {"upstreams and DNS policy are live",
       [](config::Config& c) {
         c.dns.upstreams = {addr("192.0.2.9:53")};
         c.dns.clusterDomains = {"x.local"};
         c.dns.clusterUpstreams = {addr("192.0.2.10:53")};
         c.dns.denyRcode = config::DenyRcode::Refused;
         c.dns.stripEch = false;
         c.dns.upstreamTimeout = std::chrono::seconds(1);
         c.dns.tcpIdleTimeout = std::chrono::seconds(1);
         c.dns.maxTcpClients = 1;
       },
       {}},
      {"hold timeout and log level are live",
       [](config::Config& c) {
         c.nfqueue.holdTimeout = std::chrono::seconds(1);
         c.log.level = common::LogLevel::Debug;
       },
       {}},
      {"dns listen", [](config::Config& c) { c.dns.listen.push_back(addr("[::1]:5353")); }, {"dns.listen"}},
      {"dns off", [](config::Config& c) { c.dns.enabled = false; }, {"dns.enabled"}},
      {"cache size", [](config::Config& c) { c.dns.cacheSize = 1; }, {"dns.cache_size"}},
      {"queues and rules",
       [](config::Config& c) {
         c.nfqueue.queues = {0, 1};
         c.nfqueue.installRules = false;
       },
       {"nfqueue.queues", "nfqueue.install_rules"}},
      {"nfqueue tables",
       [](config::Config& c) {
         c.nfqueue.enabled = false;
         c.nfqueue.protectedCidrs = {*common::parseIpNetwork("10.0.0.0/8").network};
         c.nfqueue.maxHeldFlows = 1;
         c.nfqueue.queueMaxlen = 1;
       },
       {"nfqueue.enabled", "nfqueue.protected_cidrs", "nfqueue.max_held_flows", "nfqueue.queue_maxlen"}},
      {"sockets",
       [](config::Config& c) {
         c.control.socket = "/tmp/x.sock";
         c.control.socketMode = 0660;
         c.metrics.enabled = false;
         c.metrics.listen = addr("127.0.0.1:1");
         c.log.format = config::LogFormat::Json;
       },
       {"control.socket", "control.socket_mode", "metrics.enabled", "metrics.listen", "log.format"}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.description);
    config::Config after = before;
    c.change(after);
    CHECK(config::restartOnlyChanges(before, after) == c.expected);
    CHECK(config::restartOnlyChanges(after, before) == c.expected);

    // What SIGHUP applies: the live part of `after`, the restart part of `before`.
    const config::Config applied = config::withRestartOnlyFrom(after, before);
    CHECK(config::restartOnlyChanges(before, applied).empty());
    if (c.expected.empty()) CHECK(applied == after);
  }
}

TEST_CASE("withRestartOnlyFrom keeps live values from the new config") {
  config::Config running;
  running.dns.listen = {addr("127.0.0.1:53")};
  config::Config loaded;
  loaded.dns.listen = {addr("127.0.0.1:54")};
  loaded.mode = config::Mode::Audit;
  loaded.dns.upstreams = {addr("192.0.2.1:53")};
  const config::Config applied = config::withRestartOnlyFrom(loaded, running);
  CHECK(applied.dns.listen == running.dns.listen);
  CHECK(applied.mode == config::Mode::Audit);
  CHECK(applied.dns.upstreams == loaded.dns.upstreams);
}

TEST_CASE("knownKeys lists each key once, sections first-level only") {
  std::set<std::string_view> seen;
  for (const config::KeyInfo& key : config::knownKeys()) {
    CAPTURE(key.path);
    CHECK(seen.insert(key.path).second);
    CHECK(std::count(key.path.begin(), key.path.end(), '.') <= 1);
  }
  CHECK(seen.size() == 48);
}

TEST_CASE("validate on a default config only asks for upstreams") {
  config::Config c;
  auto problems = config::validate(c);
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].path == "dns.upstreams");
  CHECK_FALSE(problems[0].line.has_value());
  c.dns.upstreams = {addr("192.0.2.1:53")};
  CHECK(config::validate(c).empty());
}

// egressd.toml loading: values, defaults, and every class of problem with its
// key path and position. Tables are {description, input, expected}.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/load.h"

using config::ConfigLoad;
using config::ConfigProblem;

namespace {

using namespace std::chrono_literals;

common::SocketAddress addr(const char* text) {
  return *common::parseSocketAddress(text);
}
common::IpNetwork net(const char* text) {
  return *common::parseIpNetwork(text).network;
}

ConfigLoad load(std::string_view text) {
  return config::loadConfigText(text, "egressd.toml", "/etc/egressd");
}

std::string describe(const ConfigLoad& result) {
  std::string out;
  for (const ConfigProblem& p : result.problems) out += "\n  " + p.toString();
  return out;
}

std::vector<std::string> paths(const ConfigLoad& result) {
  std::vector<std::string> out;
  for (const ConfigProblem& p : result.problems) out.push_back(p.path);
  return out;
}

// The one problem of `text`, failing the test when there is not exactly one.
ConfigProblem onlyProblem(std::string_view text) {
  const ConfigLoad result = load(text);
  INFO("input:\n" << text << "\nproblems:" << describe(result));
  REQUIRE_FALSE(result.ok());
  REQUIRE(result.problems.size() == 1);
  return result.problems.front();
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// The example from CONTRACT.md, verbatim.
constexpr std::string_view kContractExample = R"(mode = "enforce"                      # or "audit"

[rules]
dirs = ["/etc/egressd/system.d", "/var/lib/egressd/rules.d"]
strict_binding = true
binding_grace = "5m"

[dns]
listen = ["127.0.0.1:5353"]           # UDP and TCP
upstreams = ["192.0.2.53:53"]
cluster_domains = ["cluster.local"]
cluster_upstreams = ["10.96.0.10:53"]
deny_rcode = "NXDOMAIN"               # or "REFUSED"

[nfqueue]
enabled = true
queues = [0, 1]
install_rules = true                  # egressd owns its iptables chain
protected_cidrs = ["10.0.0.0/8"]      # never diverted (cluster networks)

[control]
socket = "/run/egressd/control.sock"

[metrics]
listen = "127.0.0.1:9153"             # Prometheus text format at /metrics
)";

}  // namespace

TEST_CASE("the CONTRACT.md example loads to its values") {
  const ConfigLoad result = load(kContractExample);
  INFO(describe(result));
  REQUIRE(result.ok());
  REQUIRE(result.problems.empty());
  const config::Config& c = *result.config;
  CHECK(c.mode == config::Mode::Enforce);
  CHECK(c.rules.dirs == std::vector<std::string>{"/etc/egressd/system.d", "/var/lib/egressd/rules.d"});
  CHECK(c.rules.systemDirs.empty());
  CHECK(c.rules.strictBinding);
  CHECK(c.rules.bindingGrace == 5min);
  CHECK(c.dns.enabled);
  CHECK(c.dns.listen == std::vector{addr("127.0.0.1:5353")});
  CHECK(c.dns.upstreams == std::vector{addr("192.0.2.53:53")});
  CHECK(c.dns.clusterDomains == std::vector<std::string>{"cluster.local"});
  CHECK(c.dns.clusterUpstreams == std::vector{addr("10.96.0.10:53")});
  CHECK(c.dns.denyRcode == config::DenyRcode::NxDomain);
  CHECK(c.nfqueue.enabled);
  CHECK(c.nfqueue.queues == std::vector<uint16_t>{0, 1});
  CHECK(c.nfqueue.installRules);
  CHECK(c.nfqueue.protectedCidrs == std::vector{net("10.0.0.0/8")});
  CHECK(c.control.socket == "/run/egressd/control.sock");
  CHECK(c.metrics.enabled);
  CHECK(c.metrics.listen == addr("127.0.0.1:9153"));
}

TEST_CASE("every key set to a non-default value is read") {
  const ConfigLoad result = load(R"(
mode = "audit"
[rules]
dirs = ["/a", "/b/"]
system_dirs = ["/a"]
strict_binding = false
binding_grace = "1m30s"
[dns]
enabled = false
listen = ["127.0.0.1:53", "[::1]:53"]
intercept = ["[::1]:53"]
upstreams = ["192.0.2.1", "[2001:db8::1]:5300", "[2001:db8::2]"]
cluster_domains = ["Cluster.Local.", "svc.example"]
cluster_upstreams = ["10.96.0.10"]
deny_rcode = "REFUSED"
strip_ech = false
upstream_timeout = "750ms"
cache_size = 5
tcp_idle_timeout = "30s"
max_tcp_clients = 7
proxy_protocol_from = ["10.80.10.10/32", "fd00:80::/64"]
[nfqueue]
enabled = false
queues = [3, 65535]
install_rules = false
protected_cidrs = ["10.0.0.0/8", "fd00::/8"]
max_held_flows = 9
hold_timeout = "500ms"
queue_maxlen = 11
kernel_guard = "off"
kernel_verdict = "off"
[proxy]
listen = ["10.0.0.1", "[::1]:8080"]
max_head_bytes = 2048
max_connections = 10
header_timeout = "3s"
idle_timeout = "1m"
connect_timeout = "2s"
clients = ["10.244.0.0/16", "fd00:10:244::/48"]
proxy_protocol_from = ["10.80.10.10/32"]
threads = 3
[control]
socket = "run/ctl.sock"
socket_mode = "0660"
[metrics]
enabled = false
listen = "[::1]:9999"
[attribution]
map_file = "pods/pods.map"
[log]
level = "debug"
format = "json"
)");
  INFO(describe(result));
  REQUIRE(result.ok());
  const config::Config& c = *result.config;
  CHECK(c.mode == config::Mode::Audit);
  CHECK(c.rules.dirs == std::vector<std::string>{"/a", "/b"});
  CHECK(c.rules.systemDirs == std::vector<std::string>{"/a"});
  CHECK(c.rules.isSystemDir("/a"));
  CHECK_FALSE(c.rules.isSystemDir("/b"));
  CHECK_FALSE(c.rules.strictBinding);
  CHECK(c.rules.bindingGrace == 90s);
  CHECK(c.dns.listen == std::vector{addr("127.0.0.1:53"), addr("[::1]:53")});
  CHECK(c.dns.upstreams ==
        std::vector{addr("192.0.2.1:53"), addr("[2001:db8::1]:5300"), addr("[2001:db8::2]:53")});
  CHECK(c.dns.clusterDomains == std::vector<std::string>{"cluster.local", "svc.example"});
  CHECK(c.dns.clusterUpstreams == std::vector{addr("10.96.0.10:53")});
  CHECK(c.dns.intercept == std::vector{addr("[::1]:53")});
  CHECK(c.dns.denyRcode == config::DenyRcode::Refused);
  CHECK_FALSE(c.dns.stripEch);
  CHECK(c.dns.upstreamTimeout == 750ms);
  CHECK(c.dns.cacheSize == 5);
  CHECK(c.dns.tcpIdleTimeout == 30s);
  CHECK(c.dns.maxTcpClients == 7);
  CHECK_FALSE(c.nfqueue.enabled);
  CHECK(c.nfqueue.queues == std::vector<uint16_t>{3, 65535});
  CHECK_FALSE(c.nfqueue.installRules);
  CHECK(c.nfqueue.protectedCidrs == std::vector{net("10.0.0.0/8"), net("fd00::/8")});
  CHECK(c.nfqueue.maxHeldFlows == 9);
  CHECK(c.nfqueue.holdTimeout == 500ms);
  CHECK(c.nfqueue.queueMaxlen == 11);
  CHECK(c.nfqueue.kernelGuard == config::KernelGuardMode::Off);
  CHECK(c.nfqueue.kernelVerdict == config::KernelVerdictMode::Off);
  CHECK(c.proxy.listen == std::vector{addr("10.0.0.1:3128"), addr("[::1]:8080")});
  CHECK(c.proxy.maxHeadBytes == 2048);
  CHECK(c.proxy.maxConnections == 10);
  CHECK(c.proxy.headerTimeout == 3s);
  CHECK(c.proxy.idleTimeout == 60s);
  CHECK(c.proxy.connectTimeout == 2s);
  CHECK(c.proxy.clients == std::vector{net("10.244.0.0/16"), net("fd00:10:244::/48")});
  CHECK(c.proxy.proxyProtocolFrom == std::vector{net("10.80.10.10/32")});
  CHECK(c.dns.proxyProtocolFrom == std::vector{net("10.80.10.10/32"), net("fd00:80::/64")});
  CHECK(c.proxy.threads == 3);
  CHECK(c.control.socket == "/etc/egressd/run/ctl.sock");
  CHECK(c.control.socketMode == 0660);
  CHECK_FALSE(c.metrics.enabled);
  CHECK(c.metrics.listen == addr("[::1]:9999"));
  CHECK(c.attribution.mapFile == "/etc/egressd/pods/pods.map");
  CHECK(c.log.level == common::LogLevel::Debug);
  CHECK(c.log.format == config::LogFormat::Json);
  // Every field differs from its default, so no key was silently ignored.
  CHECK(config::restartOnlyChanges(config::Config{}, c).size() ==
        static_cast<size_t>(
            std::count_if(config::knownKeys().begin(), config::knownKeys().end(),
                          [](const config::KeyInfo& k) { return k.reload == config::Reload::Restart; })));
}

TEST_CASE("defaults: an empty file only lacks the upstream resolvers") {
  const ConfigProblem problem = onlyProblem("");
  CHECK(problem.path == "dns.upstreams");
  CHECK(contains(problem.message, "at least one resolver"));

  const ConfigLoad result = load("[dns]\nupstreams = [\"192.0.2.53\"]\n");
  INFO(describe(result));
  REQUIRE(result.ok());
  config::Config expected;
  expected.dns.upstreams = {addr("192.0.2.53:53")};
  CHECK(*result.config == expected);
  const config::Config& c = *result.config;
  CHECK(c.mode == config::Mode::Enforce);
  CHECK(c.rules.dirs == std::vector<std::string>{"/etc/egressd/system.d", "/var/lib/egressd/rules.d"});
  CHECK(c.rules.systemDirs.empty());
  CHECK(c.rules.strictBinding);
  CHECK(c.rules.bindingGrace == 5min);
  CHECK(c.dns.enabled);
  CHECK(c.dns.listen == std::vector{addr("127.0.0.1:5353")});
  CHECK(c.dns.clusterDomains == std::vector<std::string>{"cluster.local"});
  CHECK(c.dns.clusterUpstreams.empty());
  CHECK(c.dns.denyRcode == config::DenyRcode::NxDomain);
  CHECK(c.dns.stripEch);
  CHECK(c.dns.upstreamTimeout == 2s);
  CHECK(c.dns.cacheSize == 10000);
  CHECK(c.dns.tcpIdleTimeout == 10s);
  CHECK(c.dns.maxTcpClients == 256);
  CHECK(c.nfqueue.enabled);
  CHECK(c.nfqueue.queues == std::vector<uint16_t>{0});
  CHECK(c.nfqueue.installRules);
  CHECK(c.nfqueue.protectedCidrs.empty());
  CHECK(c.nfqueue.maxHeldFlows == 65536);
  CHECK(c.nfqueue.holdTimeout == 2s);
  CHECK(c.nfqueue.queueMaxlen == 4096);
  CHECK(c.control.socket == "/run/egressd/control.sock");
  CHECK(c.metrics.enabled);
  CHECK(c.metrics.listen == addr("127.0.0.1:9153"));
  CHECK(c.log.level == common::LogLevel::Info);
  CHECK(c.log.format == config::LogFormat::Logfmt);

  // With DNS off nothing at all is required.
  CHECK(load("[dns]\nenabled = false\n").ok());
}

TEST_CASE("every key with a value of the wrong type is one problem at its path") {
  // Generic: no key accepts a date or a table, so each must be refused with
  // its own path; a key the loader forgot to read would show up as unknown.
  for (const config::KeyInfo& key : config::knownKeys()) {
    const std::string path(key.path);
    const size_t dot = path.find('.');
    const std::string prefix = dot == std::string::npos ? "" : "[" + path.substr(0, dot) + "]\n";
    const std::string name = dot == std::string::npos ? path : path.substr(dot + 1);
    for (const char* wrong : {"1979-05-27", "{ a = 1 }", "07:32:00"}) {
      const ConfigProblem problem = onlyProblem(prefix + name + " = " + wrong + "\n");
      CAPTURE(path, wrong, problem.toString());
      CHECK(problem.path == path);
      CHECK(contains(problem.message, "expected "));
      CHECK(problem.line == (prefix.empty() ? 1 : 2));
    }
  }

  struct Case {
    const char* input;
    const char* path;
    const char* message;
  };
  const Case cases[] = {
      {"mode = 1", "mode", "expected a string, one of \"enforce\", \"audit\", got an integer"},
      {"mode = \"Enforce\"", "mode",
       "\"Enforce\" is not one of \"enforce\", \"audit\" (did you mean \"enforce\"?)"},
      {"rules = 1", "rules", "expected a table ([rules]), got an integer"},
      {"[[dns]]\nenabled = true", "dns", "expected a table ([dns]), got an array of tables"},
      {"[rules]\ndirs = \"/etc\"", "rules.dirs",
       "expected an array of strings, got a string (write [\"/etc\"])"},
      {"[rules]\ndirs = [1]", "rules.dirs[0]", "expected a string, got an integer"},
      {"[rules]\nstrict_binding = \"yes\"", "rules.strict_binding",
       "expected a boolean (true or false), got a string"},
      {"[rules]\nbinding_grace = 1.5", "rules.binding_grace",
       "expected a duration string such as \"5s\", got a float"},
      {"[dns]\nenabled = 1", "dns.enabled", "expected a boolean (true or false), got an integer"},
      {"[dns]\nlisten = [\"127.0.0.1:53\", 53]", "dns.listen[1]", "expected a string, got an integer"},
      {"[dns]\nupstreams = [[\"192.0.2.1\"]]", "dns.upstreams[0]", "expected a string, got an array"},
      {"[dns]\ndeny_rcode = 3", "dns.deny_rcode",
       "expected a string, one of \"NXDOMAIN\", \"REFUSED\", got an integer"},
      {"[dns]\ndeny_rcode = \"SERVFAIL\"", "dns.deny_rcode",
       "\"SERVFAIL\" is not one of \"NXDOMAIN\", \"REFUSED\""},
      {"[dns]\ndeny_rcode = \"nxdomain\"", "dns.deny_rcode",
       "\"nxdomain\" is not one of \"NXDOMAIN\", \"REFUSED\" (did you mean \"NXDOMAIN\"?)"},
      {"[dns]\ndeny_rcode = \"REFUSE\"", "dns.deny_rcode",
       "\"REFUSE\" is not one of \"NXDOMAIN\", \"REFUSED\" (did you mean \"REFUSED\"?)"},
      {"[dns]\ncache_size = \"10000\"", "dns.cache_size", "expected an integer, got a string"},
      {"[dns]\ncache_size = 1e4", "dns.cache_size", "expected an integer, got a float"},
      {"[nfqueue]\nkernel_guard = \"on\"", "nfqueue.kernel_guard", "\"on\" is not one of \"auto\", \"off\""},
      {"[nfqueue]\nkernel_guard = true", "nfqueue.kernel_guard",
       "expected a string, one of \"auto\", \"off\", got a boolean"},
      {"[nfqueue]\nkernel_verdict = \"on\"", "nfqueue.kernel_verdict",
       "\"on\" is not one of \"auto\", \"off\""},
      {"[nfqueue]\nqueues = 0", "nfqueue.queues", "expected an array of integers, got an integer"},
      {"[nfqueue]\nqueues = [\"0\"]", "nfqueue.queues[0]", "expected an integer, got a string"},
      {"[control]\nsocket = 1", "control.socket", "expected a string (a path), got an integer"},
      // An integer would be read in decimal (600 = 0o1130): only strings.
      {"[control]\nsocket_mode = 600", "control.socket_mode",
       "expected a string (an octal mode such as \"0600\"), got an integer"},
      {"[metrics]\nlisten = [\"127.0.0.1:9153\"]", "metrics.listen",
       "expected a string (address:port), got an array"},
      {"[log]\nlevel = \"verbose\"", "log.level",
       "\"verbose\" is not one of \"debug\", \"info\", \"warn\", \"error\""},
      {"[log]\nformat = \"text\"", "log.format", "\"text\" is not one of \"logfmt\", \"json\""},
  };
  for (const Case& c : cases) {
    const ConfigProblem problem = onlyProblem(c.input);
    CAPTURE(c.input);
    CHECK(problem.path == c.path);
    CHECK(problem.message == c.message);
  }
}

TEST_CASE("unknown keys are reported with their path and a suggestion") {
  struct Case {
    const char* input;
    const char* path;
    const char* message;
    int line;
  };
  const Case cases[] = {
      {"modee = \"audit\"", "modee", "unknown key (did you mean \"mode\"?)", 1},
      {"[dnss]\nlisten = []", "dnss", "unknown key (did you mean \"dns\"?)", 1},
      {"[firewall]\nx = 1", "firewall", "unknown key", 1},
      {"\n[dns]\nlistn = [\"127.0.0.1:53\"]", "dns.listn", "unknown key (did you mean \"listen\"?)", 3},
      {"[dns]\nupstream = [\"192.0.2.1\"]", "dns.upstream", "unknown key (did you mean \"upstreams\"?)", 2},
      {"[rules]\nsystem_dir = []", "rules.system_dir", "unknown key (did you mean \"system_dirs\"?)", 2},
      {"[rules]\nStrict_Binding = true", "rules.Strict_Binding",
       "unknown key (did you mean \"strict_binding\"?)", 2},
      {"[nfqueue]\nqueue = [1]", "nfqueue.queue", "unknown key (did you mean \"queues\"?)", 2},
      {"[control]\npath = \"/x\"", "control.path", "unknown key", 2},
      {"[metrics]\nport = 9153", "metrics.port", "unknown key", 2},
      {"[log]\nlevels = \"info\"", "log.levels", "unknown key (did you mean \"level\"?)", 2},
      {"[dns.extra]\nx = 1", "dns.extra", "unknown key", 1},
      {"[dns]\n\"odd key\" = 1", "dns.\"odd key\"", "unknown key", 2},
      {"\"bad\\nkey\" = 1", "\"bad\\x0akey\"", "unknown key", 1},
  };
  for (const Case& c : cases) {
    const ConfigProblem problem = onlyProblem(c.input);
    CAPTURE(c.input);
    CHECK(problem.path == c.path);
    CHECK(problem.message == c.message);
    CHECK(problem.line == c.line);
  }
}

TEST_CASE("bad durations say what is wrong") {
  struct Case {
    const char* value;
    const char* message;
  };
  const Case cases[] = {
      {"\"5\"", "\"5\" is missing a unit (write \"5s\" or \"5ms\")"},
      {"5", "5 is missing a unit (write \"5s\" or \"5ms\")"},
      {"\"5x\"",
       "\"5x\" is not a duration (units: ms, s, m, h, d, largest first, each once; e.g. \"250ms\", \"5s\", "
       "\"1m30s\")"},
      {"\"-1s\"", "\"-1s\" is negative; durations must be positive"},
      {"\"\"",
       "\"\" is not a duration (units: ms, s, m, h, d, largest first, each once; e.g. \"250ms\", \"5s\", "
       "\"1m30s\")"},
      {"\"5 s\"",
       "\"5 s\" is not a duration (units: ms, s, m, h, d, largest first, each once; e.g. \"250ms\", \"5s\", "
       "\"1m30s\")"},
      {"\"0s\"", "\"0s\" must be more than 0"},
      {"\"2m\"", "\"2m\" is more than the maximum of 1m"},
      {"\"5m5m\"",
       "\"5m5m\" is not a duration (units: ms, s, m, h, d, largest first, each once; e.g. \"250ms\", \"5s\", "
       "\"1m30s\")"},
      {"\"30s1m\"",
       "\"30s1m\" is not a duration (units: ms, s, m, h, d, largest first, each once; e.g. \"250ms\", "
       "\"5s\", \"1m30s\")"},
      {"\"400d\"",
       "\"400d\" is not a duration (units: ms, s, m, h, d, largest first, each once; e.g. \"250ms\", \"5s\", "
       "\"1m30s\")"},
  };
  for (const Case& c : cases) {
    const ConfigProblem problem = onlyProblem(std::string("[dns]\nupstream_timeout = ") + c.value);
    CAPTURE(c.value);
    CHECK(problem.path == "dns.upstream_timeout");
    CHECK(problem.message == c.message);
    CHECK(problem.line == 2);
    CHECK(problem.column == 20);
  }
  // Each duration key has its own bounds.
  CHECK(onlyProblem("[rules]\nbinding_grace = \"2d\"").message == "\"2d\" is more than the maximum of 24h");
  CHECK(onlyProblem("[nfqueue]\nhold_timeout = \"0ms\"").path == "nfqueue.hold_timeout");
  CHECK(onlyProblem("[dns]\ntcp_idle_timeout = \"11m\"").path == "dns.tcp_idle_timeout");
  // Zero grace is meaningful: bindings last exactly the TTL.
  const ConfigLoad zero = load("[rules]\nbinding_grace = \"0s\"\n[dns]\nupstreams = [\"192.0.2.1\"]");
  REQUIRE(zero.ok());
  CHECK(zero.config->rules.bindingGrace == 0ms);
}

TEST_CASE("bad addresses, networks, names and numbers") {
  struct Case {
    const char* input;
    const char* path;
    const char* message;
  };
  const Case cases[] = {
      {"[dns]\nupstreams = [\"192.0.2.1\", \"192.0.2.53:99999\"]", "dns.upstreams[1]",
       "\"192.0.2.53:99999\" is not an address:port"},
      {"[dns]\nupstreams = [\"dns.google\"]", "dns.upstreams[0]",
       "\"dns.google\" is not an address:port (names are not resolved; use an IP address)"},
      {"[dns]\nupstreams = [\"192.0.2.1:0\"]", "dns.upstreams[0]",
       "\"192.0.2.1:0\" has port 0, which no resolver listens on"},
      {"[dns]\nupstreams = [\"192.0.2.01\"]", "dns.upstreams[0]", "\"192.0.2.01\" is not an address:port"},
      {"[dns]\ncluster_upstreams = [\"\"]", "dns.cluster_upstreams[0]", "\"\" is not an address:port"},
      {"[dns]\nlisten = [\"127.0.0.1\"]", "dns.listen[0]",
       "\"127.0.0.1\" has no port (listen addresses need one, e.g. \"127.0.0.1:5353\")"},
      {"[dns]\nlisten = [\"::1:53\"]", "dns.listen[0]",
       "\"::1:53\" is not an address:port (IPv6 needs brackets: \"[2001:db8::1]:53\")"},
      {"[dns]\nupstreams = [\"2001:db8::53\"]", "dns.upstreams[0]",
       "\"2001:db8::53\" is not an address:port (IPv6 needs brackets: \"[2001:db8::1]:53\")"},
      {"[metrics]\nlisten = \"localhost:9153\"", "metrics.listen",
       "\"localhost:9153\" is not an address:port (names are not resolved; use an IP address)"},
      {"[nfqueue]\nprotected_cidrs = [\"10.0.0.1/8\"]", "nfqueue.protected_cidrs[0]",
       "\"10.0.0.1/8\" has host bits set (did you mean \"10.0.0.0/8\"?)"},
      {"[nfqueue]\nprotected_cidrs = [\"2001:db8::1/32\"]", "nfqueue.protected_cidrs[0]",
       "\"2001:db8::1/32\" has host bits set (did you mean \"2001:db8::/32\"?)"},
      {"[nfqueue]\nprotected_cidrs = [\"10.1.2.3\"]", "nfqueue.protected_cidrs[0]",
       "\"10.1.2.3\" has no /prefix (write \"10.1.2.3/32\" for one address)"},
      {"[nfqueue]\nprotected_cidrs = [\"10.0.0.0/33\"]", "nfqueue.protected_cidrs[0]",
       "\"10.0.0.0/33\" has a bad prefix length (0..32)"},
      {"[nfqueue]\nprotected_cidrs = [\"cluster\"]", "nfqueue.protected_cidrs[0]",
       "\"cluster\" is not a CIDR network (address/prefix, e.g. \"10.0.0.0/8\")"},
      {"[nfqueue]\nqueues = [0, 65536]", "nfqueue.queues[1]", "65536 is out of range (0..65535)"},
      {"[nfqueue]\nqueues = [-1]", "nfqueue.queues[0]", "-1 is out of range (0..65535)"},
      {"[nfqueue]\nmax_held_flows = 0", "nfqueue.max_held_flows", "0 is out of range (1..10000000)"},
      {"[nfqueue]\nqueue_maxlen = 1000001", "nfqueue.queue_maxlen", "1000001 is out of range (1..1000000)"},
      {"[dns]\ncache_size = -5", "dns.cache_size", "-5 is out of range (1..10000000)"},
      {"[dns]\nmax_tcp_clients = 0", "dns.max_tcp_clients", "0 is out of range (1..65535)"},
      {"[dns]\ncluster_domains = [\"\"]", "dns.cluster_domains[0]",
       "\"\" is not a domain (the root would match every name)"},
      {"[dns]\ncluster_domains = [\".\"]", "dns.cluster_domains[0]",
       "\".\" is not a domain (the root would match every name)"},
      {"[dns]\ncluster_domains = [\"a..b\"]", "dns.cluster_domains[0]",
       "\"a..b\" is not a domain (empty label)"},
      {"[dns]\ncluster_domains = [\"-a.b\"]", "dns.cluster_domains[0]",
       "\"-a.b\" is not a domain (a label starts or ends with '-')"},
      {"[dns]\ncluster_domains = [\"a b\"]", "dns.cluster_domains[0]",
       "\"a b\" is not a domain (only letters, digits, '-' and '_')"},
      {"[rules]\ndirs = [\"\"]", "rules.dirs[0]", "an empty path"},
      {"[rules]\ndirs = [\"/a\\u0000b\"]", "rules.dirs[0]", "\"/a\\x00b\" contains a NUL byte"},
  };
  for (const Case& c : cases) {
    const ConfigProblem problem = onlyProblem(c.input);
    CAPTURE(c.input);
    CHECK(problem.path == c.path);
    CHECK(problem.message == c.message);
  }
  const std::string longSocket = "[control]\nsocket = \"/" + std::string(120, 's') + "\"";
  const ConfigProblem problem = onlyProblem(longSocket);
  CHECK(problem.path == "control.socket");
  CHECK(contains(problem.message, "is longer than 107 bytes"));
  // 63-byte labels are fine, 64 are not.
  CHECK(load("[dns]\nupstreams = [\"192.0.2.1\"]\ncluster_domains = [\"" + std::string(63, 'a') + ".local\"]")
            .ok());
  CHECK(onlyProblem("[dns]\ncluster_domains = [\"" + std::string(64, 'a') + ".local\"]").path ==
        "dns.cluster_domains[0]");
}

TEST_CASE("cross-key checks point at the offending entry") {
  struct Case {
    const char* input;
    const char* path;
    const char* message;
    int line;
  };
  const Case cases[] = {
      {"[dns]\nupstreams = [\"192.0.2.1\", \"192.0.2.1:53\"]", "dns.upstreams[1]",
       "192.0.2.1:53 is listed twice (also dns.upstreams[0])", 2},
      {"[dns]\nupstreams = [\"192.0.2.1\"]\nlisten = [\"127.0.0.1:5353\", \"0.0.0.0:5353\"]", "dns.listen[1]",
       "0.0.0.0:5353 overlaps 127.0.0.1:5353 (dns.listen[0]); both cannot be bound", 3},
      {"[dns]\nupstreams = [\"127.0.0.1:5353\"]", "dns.upstreams[0]",
       "127.0.0.1:5353 is egressd's own listener (dns.listen[0]); queries would loop", 2},
      {"[dns]\nupstreams = [\"192.0.2.1\"]\nlisten = [\"0.0.0.0:53\"]\ncluster_upstreams = [\"127.0.0.1\"]",
       "dns.cluster_upstreams[0]",
       "127.0.0.1:53 is egressd's own listener (dns.listen[0]); queries would loop", 4},
      // dns.intercept: a Service address egressd listens on exactly.
      {"[dns]\nupstreams = [\"192.0.2.1\"]\nlisten = [\"10.96.0.10:53\"]\nintercept = [\"10.96.0.11:53\"]",
       "dns.intercept[0]",
       "10.96.0.11:53 is not in dns.listen; list it there too (egressd must listen on it)", 4},
      {"[dns]\nupstreams = [\"192.0.2.1\"]\nlisten = [\"0.0.0.0:53\"]\nintercept = [\"0.0.0.0:53\"]",
       "dns.intercept[0]",
       "0.0.0.0:53 is not a Service address; give the kube-dns ClusterIP and port, e.g. \"10.96.0.10:53\"",
       4},
      {"[dns]\nupstreams = [\"192.0.2.1\"]\nlisten = [\"10.96.0.10:53\"]\nintercept = [\"10.96.0.10:53\", "
       "\"10.96.0.10:53\"]",
       "dns.intercept[1]", "10.96.0.10:53 is listed twice (also dns.intercept[0])", 4},
      // Not intercepted: the upstream is egressd's own listener.
      {"[dns]\nupstreams = [\"192.0.2.1\"]\nlisten = [\"10.96.0.10:53\"]\ncluster_upstreams = "
       "[\"10.96.0.10\"]",
       "dns.cluster_upstreams[0]",
       "10.96.0.10:53 is egressd's own listener (dns.listen[0]); queries would loop", 4},
      {"[dns]\nupstreams = [\"192.0.2.1\"]\ncluster_domains = [\"cluster.local\", \"Cluster.Local.\"]",
       "dns.cluster_domains[1]", "\"cluster.local\" is listed twice (also dns.cluster_domains[0])", 3},
      {"[dns]\nupstreams = [\"192.0.2.1\"]\nlisten = []", "dns.listen",
       "at least one address is required when dns.enabled = true", 3},
      {"[dns]\nupstreams = [\"192.0.2.1\"]\n[nfqueue]\nqueues = []", "nfqueue.queues",
       "at least one queue number is required when nfqueue.enabled = true", 4},
      {"[dns]\nupstreams = [\"192.0.2.1\"]\n[nfqueue]\nqueues = [1, 2, 1]", "nfqueue.queues[2]",
       "1 is listed twice (also nfqueue.queues[0])", 4},
      {"[dns]\nupstreams = [\"192.0.2.1\"]\n[nfqueue]\nprotected_cidrs = [\"10.0.0.0/8\", \"10.0.0.0/8\"]",
       "nfqueue.protected_cidrs[1]", "10.0.0.0/8 is listed twice (also nfqueue.protected_cidrs[0])", 4},
      {"[dns]\nupstreams = [\"192.0.2.1\"]\n[rules]\ndirs = []", "rules.dirs",
       "at least one directory is required", 4},
      {"[dns]\nupstreams = [\"192.0.2.1\"]\n[rules]\ndirs = [\"/a\", \"/a/\"]", "rules.dirs[1]",
       "\"/a\" is listed twice (also rules.dirs[0])", 4},
      {"[dns]\nupstreams = [\"192.0.2.1\"]\n[rules]\ndirs = [\"/a\"]\nsystem_dirs = [\"/b\"]",
       "rules.system_dirs[0]", "\"/b\" is not one of rules.dirs (list it there too)", 5},
      {"[dns]\nupstreams = [\"192.0.2.1\"]\n[metrics]\nlisten = \"127.0.0.1:5353\"", "metrics.listen",
       "127.0.0.1:5353 collides with dns.listen[0] 127.0.0.1:5353", 4},
  };
  for (const Case& c : cases) {
    const ConfigProblem problem = onlyProblem(c.input);
    CAPTURE(c.input);
    CHECK(problem.path == c.path);
    CHECK(problem.message == c.message);
    CHECK(problem.line == c.line);
  }
  // The same address in the two sections is no collision when one is off.
  CHECK(load("[dns]\nupstreams = [\"192.0.2.1\"]\n[metrics]\nenabled = false\nlisten = \"127.0.0.1:5353\"")
            .ok());
  // Port 0 listeners (tests) never collide.
  CHECK(load("[dns]\nupstreams = [\"192.0.2.1\"]\nlisten = [\"127.0.0.1:0\", \"[::1]:0\"]\n[metrics]\n"
             "listen = \"127.0.0.1:0\"")
            .ok());
}

TEST_CASE("several problems are reported at once, in file order, each with its path") {
  const ConfigLoad result = load(R"(mode = "block"
[rules]
dirs = ["/etc/egressd/system.d", 7]
binding_grace = "5"
[dns]
listn = ["127.0.0.1:53"]
upstreams = ["192.0.2.53:53", "192.0.2.53:99999"]
upstream_timeout = "-1s"
[nfqueue]
queues = [0, 70000]
protected_cidrs = ["10.0.0.1/8"]
[metrics]
listen = "127.0.0.1"
)");
  INFO(describe(result));
  REQUIRE_FALSE(result.ok());
  CHECK(paths(result) == std::vector<std::string>{"mode", "rules.dirs[1]", "rules.binding_grace", "dns.listn",
                                                  "dns.upstreams[1]", "dns.upstream_timeout",
                                                  "nfqueue.queues[1]", "nfqueue.protected_cidrs[0]",
                                                  "metrics.listen"});
  std::vector<int> lines;
  for (const ConfigProblem& p : result.problems) lines.push_back(p.line.value_or(0));
  CHECK(lines == std::vector<int>{1, 3, 4, 6, 7, 8, 10, 11, 13});
  CHECK(result.problems[4].toString() ==
        "egressd.toml:7:31: dns.upstreams[1]: \"192.0.2.53:99999\" is not an address:port");
  CHECK(result.problems[3].toString() ==
        "egressd.toml:6:1: dns.listn: unknown key (did you mean \"listen\"?)");
}

TEST_CASE("TOML syntax errors carry line and column") {
  struct Case {
    const char* input;
    int line;
  };
  const Case cases[] = {
      {"mode = \"enforce\"\n[dns]\nlisten = [\"127.0.0.1:53\"\n", 3},
      {"mode = enforce\n", 1},
      {"[dns]\nenabled = true\nenabled = false\n", 3},
      {"\n\n[rules\n", 3},
      {"mode = \"\xff\"\n", 1},
  };
  for (const Case& c : cases) {
    const ConfigLoad result = load(c.input);
    CAPTURE(c.input, describe(result));
    REQUIRE(result.problems.size() == 1);
    const ConfigProblem& p = result.problems.front();
    CHECK(p.path.empty());
    CHECK(contains(p.message, "syntax error: "));
    CHECK(p.line == c.line);
    CHECK(p.column.value_or(0) > 0);
    CHECK(contains(p.toString(), "egressd.toml:" + std::to_string(c.line) + ":"));
  }
}

TEST_CASE("problem text without a source or position") {
  ConfigProblem p;
  p.path = "dns.listen";
  p.message = "m";
  CHECK(p.toString() == "dns.listen: m");
  p.line = 3;
  p.column = 4;
  CHECK(p.toString() == "line 3, column 4: dns.listen: m");
  p.source = "f.toml";
  p.path.clear();
  CHECK(p.toString() == "f.toml:3:4: m");
}

TEST_CASE("control.socket_mode is an octal string that gives others nothing and the owner read and write") {
  CHECK(load("[dns]\nupstreams = [\"192.0.2.1\"]").config->control.socketMode == 0600);  // the default
  struct Good {
    const char* text;
    uint32_t mode;
  };
  for (const Good& g :
       {Good{"0600", 0600}, Good{"600", 0600}, Good{"0660", 0660}, Good{"0620", 0620}, Good{"0640", 0640}}) {
    const ConfigLoad result =
        load(std::string("[dns]\nupstreams = [\"192.0.2.1\"]\n[control]\nsocket_mode = \"") + g.text + "\"");
    CAPTURE(g.text);
    INFO(describe(result));
    REQUIRE(result.ok());
    CHECK(result.config->control.socketMode == g.mode);
  }
  struct Bad {
    const char* text;
    const char* message;
  };
  const Bad cases[] = {
      {"0666",
       "\"0666\" gives access to other users; the control socket shows every decision, use 0600 or 0660"},
      {"0602",
       "\"0602\" gives access to other users; the control socket shows every decision, use 0600 or 0660"},
      {"0400", "\"0400\" must give the owner read and write (0600)"},
      {"0060", "\"0060\" must give the owner read and write (0600)"},
      {"0700", "\"0700\" has execute bits, which mean nothing on a socket; use 0600 or 0660"},
      {"4600",
       "\"4600\" sets setuid, setgid or sticky bits; only permission bits (at most 0770) are allowed"},
      {"0680", "\"0680\" is not an octal file mode such as \"0600\""},
      {"0o600", "\"0o600\" is not an octal file mode such as \"0600\""},
      {"60", "\"60\" is not an octal file mode such as \"0600\""},
      {"", "\"\" is not an octal file mode such as \"0600\""},
      {"u=rw", "\"u=rw\" is not an octal file mode such as \"0600\""},
  };
  for (const Bad& c : cases) {
    const ConfigProblem problem = onlyProblem(std::string("[control]\nsocket_mode = \"") + c.text + "\"");
    CAPTURE(c.text);
    CHECK(problem.path == "control.socket_mode");
    CHECK(problem.message == c.message);
    CHECK(problem.line == 2);
  }
  // Restart-only: the socket is created once.
  config::Config changed;
  changed.control.socketMode = 0660;
  CHECK(config::restartOnlyChanges(config::Config{}, changed) ==
        std::vector<std::string>{"control.socket_mode"});
}

TEST_CASE("rules.internal_cidrs and rules.public_cidrs: values and refusals") {
  const ConfigLoad ok = load(
      "[dns]\nupstreams = [\"192.0.2.1\"]\n[rules]\ninternal_cidrs = [\"93.184.215.0/24\", "
      "\"2a00:1450::/32\"]\n"
      "public_cidrs = [\"10.20.0.0/16\", \"fd00:20::/64\", \"10.20.5.0/24\"]");
  INFO(describe(ok));
  REQUIRE(ok.ok());
  CHECK(ok.config->rules.internalCidrs ==
        std::vector<common::IpNetwork>{net("93.184.215.0/24"), net("2a00:1450::/32")});
  CHECK(ok.config->rules.publicCidrs.size() == 3);
  CHECK(load("[dns]\nupstreams = [\"192.0.2.1\"]").config->rules.internalCidrs.empty());

  struct Case {
    const char* input;
    const char* path;
    const char* message;  // a part of it
  };
  const Case cases[] = {
      {"[dns]\nupstreams = [\"192.0.2.1\"]\n[rules]\npublic_cidrs = [\"::ffff:10.0.0.0/104\"]",
       "rules.public_cidrs[0]", "classified by the IPv4 address inside: write 10.0.0.0/8 instead"},
      {"[dns]\nupstreams = [\"192.0.2.1\"]\n[rules]\ninternal_cidrs = [\"64:ff9b::/96\"]",
       "rules.internal_cidrs[0]", "64:ff9b::/96 is inside 64:ff9b::/96 (NAT64 well-known prefix, RFC 6052)"},
      {"[dns]\nupstreams = [\"192.0.2.1\"]\n[rules]\ninternal_cidrs = [\"10.0.0.1/8\"]",
       "rules.internal_cidrs[0]", "has host bits set (did you mean \"10.0.0.0/8\"?)"},
      {"[dns]\nupstreams = [\"192.0.2.1\"]\n[rules]\ninternal_cidrs = [\"10.0.0.0/8\"]\npublic_cidrs = "
       "[\"10.0.0.0/8\"]",
       "rules.public_cidrs[0]",
       "10.0.0.0/8 is also in rules.internal_cidrs[0]; a range is either internal or public"},
      {"[dns]\nupstreams = [\"192.0.2.1\"]\n[rules]\npublic_cidrs = [\"10.0.0.0/8\", \"10.0.0.0/8\"]",
       "rules.public_cidrs[1]", "10.0.0.0/8 is listed twice (also rules.public_cidrs[0])"},
  };
  for (const Case& c : cases) {
    const ConfigProblem problem = onlyProblem(c.input);
    CAPTURE(c.input);
    CHECK(problem.path == c.path);
    CHECK_THAT(problem.message, Catch::Matchers::Contains(c.message));
  }
}

TEST_CASE("dns.intercept: the kube-dns ClusterIP, also egressd's cluster upstream") {
  // The shipped node-local configuration: egressd listens on the Service
  // address it takes over and forwards cluster names to the same address,
  // which from the node itself still reaches CoreDNS (no loop).
  const ConfigLoad result = load(
      "[dns]\nupstreams = [\"192.0.2.1\"]\nlisten = [\"10.96.0.10:53\", \"169.254.20.11:53\"]\n"
      "intercept = [\"10.96.0.10:53\"]\ncluster_upstreams = [\"10.96.0.10:53\"]");
  REQUIRE(result.ok());
  REQUIRE(result.config->dns.intercept.size() == 1);
  CHECK(result.config->dns.intercept[0].toString() == "10.96.0.10:53");
  // Listening on the link-local address is not taking it over.
  CHECK(onlyProblem("[dns]\nupstreams = [\"192.0.2.1\"]\nlisten = [\"169.254.20.11:53\"]\n"
                    "cluster_upstreams = [\"169.254.20.11:53\"]")
            .path == "dns.cluster_upstreams[0]");
  // A restart-only key: a SIGHUP cannot move the take-over.
  config::Config before = *result.config;
  config::Config after = before;
  after.dns.intercept.clear();
  CHECK(config::restartOnlyChanges(before, after) == std::vector<std::string>{"dns.intercept"});
}

TEST_CASE("[proxy]: off by default, port 3128 by default, errors name the key and the fix") {
  CHECK_FALSE(config::Config{}.proxy.enabled());
  const ConfigLoad ok = load("[dns]\nupstreams = [\"192.0.2.1\"]\n[proxy]\nlisten = [\"0.0.0.0\"]\n");
  INFO(describe(ok));
  REQUIRE(ok.ok());
  CHECK(ok.config->proxy.listen == std::vector{addr("0.0.0.0:3128")});

  const ConfigLoad bad = load(R"([dns]
upstreams = ["192.0.2.1"]
listen = ["127.0.0.1:5353"]
[proxy]
listen = ["not-an-address", "10.0.0.1:0"]
max_head_bytes = 10
header_timeout = 5
)");
  const std::string text = describe(bad);
  CHECK(text.find("proxy.listen[0]") != std::string::npos);
  CHECK(text.find("e.g. \"0.0.0.0:3128\"") != std::string::npos);
  CHECK(text.find("proxy.listen[1]") != std::string::npos);
  CHECK(text.find("port 0") != std::string::npos);
  CHECK(text.find("proxy.max_head_bytes") != std::string::npos);
  CHECK(text.find("proxy.header_timeout") != std::string::npos);

  const ConfigLoad collide = load(R"([dns]
upstreams = ["192.0.2.1"]
listen = ["127.0.0.1:5353"]
[proxy]
listen = ["127.0.0.1:5353", "127.0.0.1:9153"]
)");
  const std::string collisions = describe(collide);
  CHECK(collisions.find("proxy.listen[0]: 127.0.0.1:5353 collides with dns.listen[0]") != std::string::npos);
  CHECK(collisions.find("proxy.listen[1]: 127.0.0.1:9153 collides with metrics.listen") != std::string::npos);

  const ConfigLoad typo = load("[dns]\nupstreams = [\"192.0.2.1\"]\n[proxy]\nlisten_on = []\n");
  CHECK(describe(typo).find("listen") != std::string::npos);
  CHECK_FALSE(typo.ok());
}

TEST_CASE("[proxy] threads: \"auto\" by default (one per CPU, at most 4), or 1..64") {
  CHECK(config::Config{}.proxy.threads == config::kProxyThreadsAuto);
  CHECK(config::proxyThreadCount(config::kProxyThreadsAuto, 1) == 1);
  CHECK(config::proxyThreadCount(config::kProxyThreadsAuto, 2) == 2);
  CHECK(config::proxyThreadCount(config::kProxyThreadsAuto, 64) == 4);
  CHECK(config::proxyThreadCount(config::kProxyThreadsAuto, 0) == 1);
  CHECK(config::proxyThreadCount(1, 64) == 1);
  CHECK(config::proxyThreadCount(8, 2) == 8);  // an explicit count is taken as given
  // A pod's CPU limit (cgroup v2 cpu.max), rounded up.
  CHECK(config::cpusFromCpuMax("max 100000\n") == std::nullopt);
  CHECK(config::cpusFromCpuMax("50000 100000\n") == 1);
  CHECK(config::cpusFromCpuMax("200000 100000") == 2);
  CHECK(config::cpusFromCpuMax("250000 100000\n") == 3);
  for (const char* bad : {"", "100000", "x 100000", "100000 0", "100000 y", "-1 100000"}) {
    CAPTURE(bad);
    CHECK(config::cpusFromCpuMax(bad) == std::nullopt);
  }

  const auto threads = [](const std::string& value) {
    return load("[dns]\nupstreams = [\"192.0.2.1\"]\n[proxy]\nlisten = [\"0.0.0.0\"]\nthreads = " + value +
                "\n");
  };
  REQUIRE(threads("\"auto\"").ok());
  CHECK(threads("\"auto\"").config->proxy.threads == config::kProxyThreadsAuto);
  REQUIRE(threads("1").ok());
  CHECK(threads("1").config->proxy.threads == 1);
  REQUIRE(threads("64").ok());
  CHECK(threads("64").config->proxy.threads == 64);

  // Each mistake names the key, what was wrong and what to write.
  for (const auto& [value, expected] : std::vector<std::pair<std::string, std::string>>{
           {"0", "0 is out of range (1..64; \"auto\": one per CPU, at most 4)"},
           {"65", "65 is out of range (1..64"},
           {"-2", "-2 is out of range (1..64"},
           {"\"four\"", "\"four\" is not \"auto\" or a number of threads (1..64; e.g. threads = 2)"},
           {"\"2\"", "\"2\" is not \"auto\" or a number of threads"},
           {"true", "expected \"auto\" or an integer (1..64), got"},
           {"1.5", "expected \"auto\" or an integer (1..64), got"}}) {
    CAPTURE(value);
    const ConfigLoad bad = threads(value);
    CHECK_FALSE(bad.ok());
    const std::string text = describe(bad);
    CHECK(contains(text, "proxy.threads"));
    CHECK(contains(text, expected));
  }
  // A reload cannot change it: the running loops stay until a restart.
  config::Config two;
  two.proxy.threads = 2;
  CHECK(config::restartOnlyChanges(config::Config{}, two) == std::vector<std::string>{"proxy.threads"});
}

TEST_CASE("[proxy] clients: private ranges by default, an empty list is an error, CIDRs are checked") {
  // The default serves the ranges pod networks come from, not the world.
  const auto& clients = config::Config{}.proxy.clients;
  const auto covered = [&](const char* text) {
    const auto ip = *common::parseIpAddress(text);
    return std::any_of(clients.begin(), clients.end(), [&](const auto& n) { return n.contains(ip); });
  };
  for (const char* inside :
       {"10.244.1.2", "172.20.0.5", "192.168.1.1", "100.64.3.4", "127.0.0.1", "fd00:77::2"}) {
    CAPTURE(inside);
    CHECK(covered(inside));
  }
  for (const char* outside : {"203.0.113.9", "8.8.8.8", "2001:db8::1", "169.254.169.254"}) {
    CAPTURE(outside);
    CHECK_FALSE(covered(outside));
  }
  CHECK(config::Config{}.proxy.proxyProtocolFrom.empty());

  // An explicit [] is not "everybody": it names the key and the ways out.
  const ConfigProblem empty =
      onlyProblem("[dns]\nupstreams = [\"192.0.2.1\"]\n[proxy]\nlisten = [\"0.0.0.0\"]\nclients = []\n");
  CHECK(empty.path == "proxy.clients");
  CHECK(contains(empty.message, "refuses every client"));
  CHECK(contains(empty.message, "[\"0.0.0.0/0\", \"::/0\"]"));
  // ...but with the proxy off it does not matter.
  CHECK(load("[dns]\nupstreams = [\"192.0.2.1\"]\n[proxy]\nclients = []\n").ok());

  const ConfigLoad bad = load(R"([dns]
upstreams = ["192.0.2.1"]
[proxy]
listen = ["0.0.0.0"]
clients = ["10.0.0.0/8", "pods", "10.244.1.0/16", "10.0.0.0/8"]
proxy_protocol_from = ["10.80.10.10"]
)");
  const std::string text = describe(bad);
  CHECK(contains(text, "proxy.clients[1]: \"pods\" is not a CIDR network"));
  CHECK(contains(text,
                 "proxy.clients[2]: \"10.244.1.0/16\" has host bits set (did you mean \"10.244.0.0/16\""));
  CHECK(contains(text,
                 "proxy.proxy_protocol_from[0]: \"10.80.10.10\" has no /prefix (write \"10.80.10.10/32\""));
  const ConfigLoad duplicate = load(R"([dns]
upstreams = ["192.0.2.1"]
[proxy]
listen = ["0.0.0.0"]
clients = ["10.0.0.0/8", "10.0.0.0/8"]
)");
  CHECK(contains(describe(duplicate), "proxy.clients[1]"));

  // Trusting every address with the client's name is allowed, and warned about.
  const ConfigLoad everyone = load(R"([dns]
upstreams = ["127.0.0.1:5300"]
[proxy]
listen = ["0.0.0.0"]
proxy_protocol_from = ["0.0.0.0/0"]
)");
  REQUIRE(everyone.ok());
  REQUIRE(everyone.warnings.size() == 1);
  CHECK(everyone.warnings[0].path == "proxy.proxy_protocol_from[0]");
  CHECK(contains(everyone.warnings[0].message, "trusts every address"));
}

TEST_CASE("[dns] proxy_protocol_from: off by default, CIDRs checked like the proxy's, /0 warned about") {
  CHECK(config::Config{}.dns.proxyProtocolFrom.empty());
  const ConfigLoad bad = load(R"([dns]
upstreams = ["192.0.2.1"]
proxy_protocol_from = ["10.80.10.10", "dnsdist", "10.80.10.0/16", "10.80.10.10/32", "10.80.10.10/32"]
)");
  const std::string text = describe(bad);
  CHECK(
      contains(text, "dns.proxy_protocol_from[0]: \"10.80.10.10\" has no /prefix (write \"10.80.10.10/32\""));
  CHECK(contains(text, "dns.proxy_protocol_from[1]: \"dnsdist\" is not a CIDR network"));
  CHECK(contains(text, "dns.proxy_protocol_from[2]: \"10.80.10.0/16\" has host bits set"));
  const ConfigLoad duplicate = load(R"([dns]
upstreams = ["192.0.2.1"]
proxy_protocol_from = ["10.80.10.10/32", "10.80.10.10/32"]
)");
  CHECK(contains(describe(duplicate), "dns.proxy_protocol_from[1]: 10.80.10.10/32 is listed twice"));
  const ConfigLoad everyone = load(R"([dns]
upstreams = ["127.0.0.1:5300"]
proxy_protocol_from = ["::/0"]
)");
  REQUIRE(everyone.ok());
  REQUIRE(everyone.warnings.size() == 1);
  CHECK(everyone.warnings[0].path == "dns.proxy_protocol_from[0]");
  CHECK(contains(everyone.warnings[0].message, "trusts every address"));
}

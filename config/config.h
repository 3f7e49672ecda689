// egressd.toml as plain values (docs/configuration.md lists every key).
//
// A Config is an immutable snapshot once loaded (config/load.h builds it);
// the daemon publishes it whole through common::Snapshot. Settings are either
// live (applied on SIGHUP) or restart-only (sockets, queues, preallocated
// tables): restartOnlyChanges() names the restart-only settings a reload
// tried to change, and withRestartOnlyFrom() keeps their running values.
//
// Thread-safety: plain values; every function here is pure.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/duration.h"
#include "common/ip_address.h"
#include "common/log.h"
#include "common/socket_address.h"

namespace config {

enum class Mode : uint8_t { Enforce, Audit };
enum class DenyRcode : uint8_t { NxDomain, Refused };
enum class LogFormat : uint8_t { Logfmt, Json };
// nfqueue.kernel_guard: the insertion guard's SYN-ACK and confirmation
// checks in eBPF (docs/nfq.md "Kernel guard"); auto falls back to user
// space when the kernel or the capabilities do not allow it.
enum class KernelGuardMode : uint8_t { Auto, Off };
// nfqueue.kernel_verdict: the first payload of a connection to a DNS-bound
// allowed name judged by eBPF (docs/nfq.md "Kernel verdict"); auto needs
// the kernel guard, install_rules and one queue, else user space judges.
enum class KernelVerdictMode : uint8_t { Auto, Off };

std::string_view toString(Mode mode) noexcept;
std::string_view toString(DenyRcode rcode) noexcept;
std::string_view toString(LogFormat format) noexcept;

struct RulesConfig {
  // Absolute after loading (relative entries are resolved against the
  // directory of the config file), lexically normalised, no trailing slash.
  std::vector<std::string> dirs{"/etc/egressd/system.d", "/var/lib/egressd/rules.d"};
  // Entries of `dirs` whose rule sets are system (bootstrap) rule sets. Each
  // must also appear in `dirs`; empty by default (docs/rules.md "System rules").
  std::vector<std::string> systemDirs;
  bool strictBinding = true;
  common::Duration bindingGrace = std::chrono::minutes(5);
  // Widen / narrow the internal ranges world access does not cover and a
  // public name may not resolve to (policy/internal_ranges.h); empty by
  // default: the built-in table of special-purpose ranges alone.
  std::vector<common::IpNetwork> internalCidrs;
  std::vector<common::IpNetwork> publicCidrs;

  bool isSystemDir(std::string_view dir) const;
  friend bool operator==(const RulesConfig&, const RulesConfig&) = default;
};

struct DnsConfig {
  bool enabled = true;
  std::vector<common::SocketAddress> listen{{common::IpAddress::v4(0x7f000001), 5353}};
  std::vector<common::SocketAddress> upstreams;  // required when enabled (given or from upstreamsFrom)
  // A resolv.conf whose nameservers are the upstreams (absolute path; empty:
  // none). The loader reads it (at start and on SIGHUP) into `upstreams`.
  std::string upstreamsFrom;
  // Names at or under these go unfiltered to clusterUpstreams. Lower case, no
  // trailing dot.
  std::vector<std::string> clusterDomains{"cluster.local"};
  // Empty: cluster names go to `upstreams` too.
  std::vector<common::SocketAddress> clusterUpstreams;
  // Service addresses (the kube-dns ClusterIP) that egressd takes over for
  // pods on this node while it listens there: each is also in `listen`;
  // egressd installs the raw-table rules of nfq/dns_intercept.h for them.
  // A cluster_upstreams entry may name one of them (it leaves through the
  // node's OUTPUT path, where kube-proxy sends it to CoreDNS).
  std::vector<common::SocketAddress> intercept;
  DenyRcode denyRcode = DenyRcode::NxDomain;
  bool stripEch = true;
  common::Duration upstreamTimeout = std::chrono::seconds(2);
  uint32_t cacheSize = 10000;
  common::Duration tcpIdleTimeout = std::chrono::seconds(10);
  uint32_t maxTcpClients = 256;
  // The DNS tunnel guard for names allowed only by world access: distinct
  // names per client and registrable domain per window; 0 names: off.
  uint32_t tunnelGuardNames = 100;
  common::Duration tunnelGuardWindow = std::chrono::minutes(10);
  // Load balancers (dnsdist useProxyProtocol) whose datagrams and TCP
  // connections start with a PROXY protocol header naming the real client;
  // empty: no header is ever read.
  std::vector<common::IpNetwork> proxyProtocolFrom;

  friend bool operator==(const DnsConfig&, const DnsConfig&) = default;
};

struct NfqueueConfig {
  bool enabled = true;
  std::vector<uint16_t> queues{0};
  bool installRules = true;
  std::vector<common::IpNetwork> protectedCidrs;              // never diverted
  uint32_t maxHeldFlows = 65536;                              // flows awaiting their first payload
  common::Duration holdTimeout = std::chrono::seconds(2);     // ...and for how long at most
  uint32_t queueMaxlen = 4096;                                // kernel queue length, packets
  KernelGuardMode kernelGuard = KernelGuardMode::Auto;        // with install_rules
  KernelVerdictMode kernelVerdict = KernelVerdictMode::Auto;  // with the kernel guard, one queue

  friend bool operator==(const NfqueueConfig&, const NfqueueConfig&) = default;
};

// The networks the proxy serves by default (proxy.clients): the private
// and shared ranges pod networks are drawn from (RFC 1918, RFC 6598's
// 100.64.0.0/10, which EKS custom networking uses), loopback and
// unique-local IPv6 (RFC 4193). Never the internet at large.
std::vector<common::IpNetwork> defaultProxyClients();

inline constexpr uint32_t kProxyThreadsAuto = 0;
inline constexpr uint32_t kMaxProxyThreads = 64;
// "auto": one proxy loop per CPU egressd may use, at most 4 (past that
// the DNS listener and the main loop, on one core, become the limit).
inline constexpr uint32_t kProxyThreadsAutoMax = 4;

// proxy.threads resolved: `configured`, or for "auto" min(cpus, 4) (at
// least 1). `cpus`: the CPUs egressd may run on (sched_getaffinity).
uint32_t proxyThreadCount(uint32_t configured, uint32_t cpus) noexcept;

// The CPUs a cgroup v2 `cpu.max` ("QUOTA PERIOD", e.g. "150000 100000")
// grants, rounded up; nullopt for "max" (no limit) or a text it cannot
// read. A pod's CPU limit, which the affinity mask does not show.
std::optional<uint32_t> cpusFromCpuMax(std::string_view text) noexcept;

// The explicit proxy (docs/proxy.md): off while `listen` is empty.
struct ProxyConfig {
  std::vector<common::SocketAddress> listen;  // "ADDRESS" or "ADDRESS:PORT"; the port defaults to 3128
  uint32_t maxHeadBytes = 16 * 1024;          // a request head over this: 431
  uint32_t maxConnections = 4096;             // client connections open at once; more: 503
  common::Duration headerTimeout = std::chrono::seconds(10);   // a request head must arrive within it: 408
  common::Duration idleTimeout = std::chrono::minutes(5);      // a tunnel with no byte either way is closed
  common::Duration connectTimeout = std::chrono::seconds(10);  // every address of a target tried: 504
  // Who may use the proxy: a connection from elsewhere is closed at accept.
  // Never empty once validated (an explicit [] is an error, not "everybody").
  std::vector<common::IpNetwork> clients = defaultProxyClients();
  // Load balancers whose connections start with a PROXY protocol header
  // (v1 or v2) naming the real client; empty: no header is ever read.
  std::vector<common::IpNetwork> proxyProtocolFrom;
  // Event loops (threads) serving the proxy, each with its own listeners on
  // every `listen` address (SO_REUSEPORT: the kernel spreads connections).
  // kProxyThreadsAuto ("auto"): proxyThreadCount() picks. 1: the proxy runs
  // on egressd's main loop, as before there was a choice.
  uint32_t threads = kProxyThreadsAuto;

  bool enabled() const noexcept { return !listen.empty(); }
  friend bool operator==(const ProxyConfig&, const ProxyConfig&) = default;
};

inline constexpr uint16_t kDefaultProxyPort = 3128;

struct ControlConfig {
  std::string socket = "/run/egressd/control.sock";
  // Permission bits of the socket file (connecting needs write permission):
  // owner read+write required, group optional, nothing for others.
  uint32_t socketMode = 0600;
  friend bool operator==(const ControlConfig&, const ControlConfig&) = default;
};

struct MetricsConfig {
  bool enabled = true;
  common::SocketAddress listen{common::IpAddress::v4(0x7f000001), 9153};
  friend bool operator==(const MetricsConfig&, const MetricsConfig&) = default;
};

// Attribution (docs/attribution.md): the pod map file naming the pod of
// each client address; written by egress-controller or by hand. Empty: off.
struct AttributionConfig {
  std::string mapFile;
  friend bool operator==(const AttributionConfig&, const AttributionConfig&) = default;
};

struct LogConfig {
  common::LogLevel level = common::LogLevel::Info;
  LogFormat format = LogFormat::Logfmt;
  friend bool operator==(const LogConfig&, const LogConfig&) = default;
};

struct Config {
  Mode mode = Mode::Enforce;
  RulesConfig rules;
  DnsConfig dns;
  NfqueueConfig nfqueue;
  ProxyConfig proxy;
  ControlConfig control;
  MetricsConfig metrics;
  AttributionConfig attribution;
  LogConfig log;

  friend bool operator==(const Config&, const Config&) = default;
};

// One problem with the configuration, e.g.
//   egressd.toml:7:15: dns.upstreams[1]: "192.0.2.53:99999" is not an address:port
struct ConfigProblem {
  std::string source;  // file name, may be empty
  std::string path;    // key path ("dns.upstreams[1]"); empty for syntax and I/O errors
  std::string message;
  std::optional<int> line, column;  // 1-based, when known

  std::string toString() const;
  friend bool operator==(const ConfigProblem&, const ConfigProblem&) = default;
};

// Checks that only make sense across keys (a required list is empty while
// its section is enabled, system_dirs not in dirs, listeners that collide).
// Per-value checks (types, formats, ranges) happen while loading. Problems
// carry paths but no positions; the loader adds them.
std::vector<ConfigProblem> validate(const Config& config);

// Settings that are valid but almost certainly not what a real deployment
// wants, e.g. a documentation address (RFC 5737, RFC 3849) as a resolver:
// reported by `--check-config` and logged at start and reload, never fatal
// (the tests' fake internet uses documentation addresses). Each names the
// key and the fix.
std::vector<ConfigProblem> warnings(const Config& config);

// Whether a key takes effect on SIGHUP or needs a restart.
enum class Reload : uint8_t { Live, Restart };

struct KeyInfo {
  std::string_view path;  // "dns.listen"
  Reload reload;
};

// Every key egressd.toml accepts, in documentation order.
std::span<const KeyInfo> knownKeys() noexcept;

// The restart-only keys whose values differ, in knownKeys() order, e.g.
// {"dns.listen", "nfqueue.queues"}.
std::vector<std::string> restartOnlyChanges(const Config& before, const Config& after);

// `loaded` with every restart-only setting taken from `running`: what a
// SIGHUP applies while the old listeners and queues stay in place.
Config withRestartOnlyFrom(const Config& loaded, const Config& running);

}  // namespace config

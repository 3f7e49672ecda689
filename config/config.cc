#include "config/config.h"

#include <algorithm>
#include <array>

namespace config {

std::string_view toString(Mode mode) noexcept {
  return mode == Mode::Audit ? "audit" : "enforce";
}
std::string_view toString(DenyRcode rcode) noexcept {
  return rcode == DenyRcode::Refused ? "REFUSED" : "NXDOMAIN";
}
std::string_view toString(LogFormat format) noexcept {
  return format == LogFormat::Json ? "json" : "logfmt";
}

bool RulesConfig::isSystemDir(std::string_view dir) const {
  return std::find(systemDirs.begin(), systemDirs.end(), dir) != systemDirs.end();
}

std::vector<common::IpNetwork> defaultProxyClients() {
  std::vector<common::IpNetwork> out;
  for (const char* text : {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8",
                           "fc00::/7", "::1/128"}) {
    out.push_back(*common::parseIpNetwork(text).network);
  }
  return out;
}

uint32_t proxyThreadCount(uint32_t configured, uint32_t cpus) noexcept {
  if (configured != kProxyThreadsAuto) return configured;
  return std::clamp<uint32_t>(cpus, 1, kProxyThreadsAutoMax);
}

std::optional<uint32_t> cpusFromCpuMax(std::string_view text) noexcept {
  const auto number = [](std::string_view digits) -> std::optional<uint64_t> {
    if (digits.empty() || digits.size() > 18) return std::nullopt;
    uint64_t value = 0;
    for (const char c : digits) {
      if (c < '0' || c > '9') return std::nullopt;
      value = value * 10 + static_cast<uint64_t>(c - '0');
    }
    return value;
  };
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  const size_t space = text.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  const auto quota = number(text.substr(0, space));  // "max": no limit, nullopt too
  const auto period = number(text.substr(space + 1));
  if (!quota || !period || *period == 0) return std::nullopt;
  return static_cast<uint32_t>(std::min<uint64_t>((*quota + *period - 1) / *period, UINT32_MAX));
}

std::string ConfigProblem::toString() const {
  // Compiler style, so editors and CI annotate the right line.
  std::string out;
  if (!source.empty()) {
    out += source;
    if (line) {
      out += ':' + std::to_string(*line);
      if (column) out += ':' + std::to_string(*column);
    }
    out += ": ";
  } else if (line) {
    out += "line " + std::to_string(*line);
    if (column) out += ", column " + std::to_string(*column);
    out += ": ";
  }
  if (!path.empty()) out += path + ": ";
  out += message;
  return out;
}

namespace {

// One row per key: its reload class and how to compare and copy it. The rows
// are the single source of truth for knownKeys(), unknown-key detection in the
// loader and the SIGHUP split, so a key cannot be added to one and not the
// others.
struct KeyAccess {
  KeyInfo info;
  bool (*same)(const Config&, const Config&);
  void (*copy)(Config& to, const Config& from);
};

#define EGRESSD_KEY(PATH, RELOAD, FIELD)                                                         \
  KeyAccess {                                                                                    \
    {PATH, Reload::RELOAD}, [](const Config& a, const Config& b) { return a.FIELD == b.FIELD; }, \
        [](Config& to, const Config& from) { to.FIELD = from.FIELD; }                            \
  }

constexpr std::array kKeys{
    EGRESSD_KEY("mode", Live, mode),
    EGRESSD_KEY("rules.dirs", Live, rules.dirs),
    EGRESSD_KEY("rules.system_dirs", Live, rules.systemDirs),
    EGRESSD_KEY("rules.strict_binding", Live, rules.strictBinding),
    EGRESSD_KEY("rules.binding_grace", Live, rules.bindingGrace),
    EGRESSD_KEY("rules.internal_cidrs", Live, rules.internalCidrs),
    EGRESSD_KEY("rules.public_cidrs", Live, rules.publicCidrs),
    EGRESSD_KEY("dns.enabled", Restart, dns.enabled),
    EGRESSD_KEY("dns.listen", Restart, dns.listen),
    EGRESSD_KEY("dns.upstreams", Live, dns.upstreams),
    EGRESSD_KEY("dns.upstreams_from", Live, dns.upstreamsFrom),
    EGRESSD_KEY("dns.cluster_domains", Live, dns.clusterDomains),
    EGRESSD_KEY("dns.cluster_upstreams", Live, dns.clusterUpstreams),
    EGRESSD_KEY("dns.intercept", Restart, dns.intercept),
    EGRESSD_KEY("dns.deny_rcode", Live, dns.denyRcode),
    EGRESSD_KEY("dns.strip_ech", Live, dns.stripEch),
    EGRESSD_KEY("dns.upstream_timeout", Live, dns.upstreamTimeout),
    EGRESSD_KEY("dns.cache_size", Restart, dns.cacheSize),
    EGRESSD_KEY("dns.tcp_idle_timeout", Live, dns.tcpIdleTimeout),
    EGRESSD_KEY("dns.max_tcp_clients", Live, dns.maxTcpClients),
    EGRESSD_KEY("dns.tunnel_guard_names", Live, dns.tunnelGuardNames),
    EGRESSD_KEY("dns.tunnel_guard_window", Live, dns.tunnelGuardWindow),
    EGRESSD_KEY("dns.proxy_protocol_from", Restart, dns.proxyProtocolFrom),
    EGRESSD_KEY("nfqueue.enabled", Restart, nfqueue.enabled),
    EGRESSD_KEY("nfqueue.queues", Restart, nfqueue.queues),
    EGRESSD_KEY("nfqueue.install_rules", Restart, nfqueue.installRules),
    EGRESSD_KEY("nfqueue.protected_cidrs", Restart, nfqueue.protectedCidrs),
    EGRESSD_KEY("nfqueue.max_held_flows", Restart, nfqueue.maxHeldFlows),
    EGRESSD_KEY("nfqueue.hold_timeout", Live, nfqueue.holdTimeout),
    EGRESSD_KEY("nfqueue.queue_maxlen", Restart, nfqueue.queueMaxlen),
    EGRESSD_KEY("nfqueue.kernel_guard", Restart, nfqueue.kernelGuard),
    EGRESSD_KEY("nfqueue.kernel_verdict", Restart, nfqueue.kernelVerdict),
    EGRESSD_KEY("proxy.listen", Restart, proxy.listen),
    EGRESSD_KEY("proxy.max_head_bytes", Restart, proxy.maxHeadBytes),
    EGRESSD_KEY("proxy.max_connections", Restart, proxy.maxConnections),
    EGRESSD_KEY("proxy.header_timeout", Restart, proxy.headerTimeout),
    EGRESSD_KEY("proxy.idle_timeout", Restart, proxy.idleTimeout),
    EGRESSD_KEY("proxy.connect_timeout", Restart, proxy.connectTimeout),
    EGRESSD_KEY("proxy.clients", Restart, proxy.clients),
    EGRESSD_KEY("proxy.proxy_protocol_from", Restart, proxy.proxyProtocolFrom),
    EGRESSD_KEY("proxy.threads", Restart, proxy.threads),
    EGRESSD_KEY("control.socket", Restart, control.socket),
    EGRESSD_KEY("control.socket_mode", Restart, control.socketMode),
    EGRESSD_KEY("metrics.enabled", Restart, metrics.enabled),
    EGRESSD_KEY("metrics.listen", Restart, metrics.listen),
    EGRESSD_KEY("attribution.map_file", Restart, attribution.mapFile),
    EGRESSD_KEY("log.level", Live, log.level),
    EGRESSD_KEY("log.format", Restart, log.format),
};

#undef EGRESSD_KEY

constexpr auto kInfos = [] {
  std::array<KeyInfo, kKeys.size()> infos{};
  for (size_t i = 0; i < kKeys.size(); ++i) infos[i] = kKeys[i].info;
  return infos;
}();

ConfigProblem pathProblem(std::string path, std::string message) {
  ConfigProblem problem;
  problem.path = std::move(path);
  problem.message = std::move(message);
  return problem;
}

std::string indexed(std::string_view key, size_t index) {
  return std::string(key) + "[" + std::to_string(index) + "]";
}

// Reports every later copy of an entry, pointing at the copy and the first.
template <typename T, typename Show>
void checkDuplicates(const std::vector<T>& values, std::string_view key, Show show,
                     std::vector<ConfigProblem>& problems) {
  for (size_t i = 0; i < values.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (values[j] == values[i]) {
        problems.push_back(pathProblem(indexed(key, i),
                                       show(values[i]) + " is listed twice (also " + indexed(key, j) + ")"));
        break;
      }
    }
  }
}

std::string quoted(std::string_view text) {
  return "\"" + std::string(text) + "\"";
}

bool isWildcard(const common::IpAddress& ip) {
  return std::all_of(ip.bytes.begin(), ip.bytes.begin() + static_cast<long>(ip.byteLength()),
                     [](uint8_t b) { return b == 0; });
}

// Two TCP listeners that cannot both bind: same port and the same address, or
// a wildcard of the same family (Linux refuses 0.0.0.0:53 next to 127.0.0.1:53
// without SO_REUSEADDR games we do not play).
bool listenersCollide(const common::SocketAddress& a, const common::SocketAddress& b) {
  if (a.port != b.port || a.port == 0) return false;
  if (a.ip == b.ip) return true;
  return a.ip.family == b.ip.family && (isWildcard(a.ip) || isWildcard(b.ip));
}

// An upstream that is one of our own listeners makes every query loop.
bool reachesListener(const common::SocketAddress& upstream, const common::SocketAddress& listener) {
  if (upstream.port != listener.port) return false;
  if (upstream.ip == listener.ip) return true;
  return upstream.ip.family == listener.ip.family && isWildcard(listener.ip) &&
         (upstream.ip.family == common::IpFamily::V4 ? upstream.ip.bytes[0] == 127
                                                     : upstream.ip == *common::parseIpAddress("::1"));
}

}  // namespace

std::span<const KeyInfo> knownKeys() noexcept {
  return kInfos;
}

std::vector<ConfigProblem> validate(const Config& config) {
  std::vector<ConfigProblem> problems;
  const auto add = [&](std::string path, std::string message) {
    problems.push_back(pathProblem(std::move(path), std::move(message)));
  };
  const auto showString = [](const std::string& s) { return quoted(s); };
  const auto showAddress = [](const common::SocketAddress& a) { return a.toString(); };

  // rules
  if (config.rules.dirs.empty()) add("rules.dirs", "at least one directory is required");
  checkDuplicates(config.rules.dirs, "rules.dirs", showString, problems);
  checkDuplicates(config.rules.systemDirs, "rules.system_dirs", showString, problems);
  for (size_t i = 0; i < config.rules.systemDirs.size(); ++i) {
    const std::string& dir = config.rules.systemDirs[i];
    if (std::find(config.rules.dirs.begin(), config.rules.dirs.end(), dir) == config.rules.dirs.end()) {
      add(indexed("rules.system_dirs", i), quoted(dir) + " is not one of rules.dirs (list it there too)");
    }
  }

  const auto showNetwork = [](const common::IpNetwork& n) { return n.toString(); };
  checkDuplicates(config.rules.internalCidrs, "rules.internal_cidrs", showNetwork, problems);
  checkDuplicates(config.rules.publicCidrs, "rules.public_cidrs", showNetwork, problems);
  for (size_t i = 0; i < config.rules.publicCidrs.size(); ++i) {
    const auto& internal = config.rules.internalCidrs;
    const auto same = std::find(internal.begin(), internal.end(), config.rules.publicCidrs[i]);
    if (same != internal.end()) {
      add(indexed("rules.public_cidrs", i),
          config.rules.publicCidrs[i].toString() + " is also in rules.internal_cidrs[" +
              std::to_string(same - internal.begin()) +
              "]; a range is either internal or public (remove one; a longer prefix in the other list "
              "carves an exception)");
    }
  }

  // dns
  const DnsConfig& dns = config.dns;
  if (dns.enabled) {
    if (dns.listen.empty()) add("dns.listen", "at least one address is required when dns.enabled = true");
    if (dns.upstreams.empty() && dns.upstreamsFrom.empty()) {
      add("dns.upstreams",
          "at least one resolver is required when dns.enabled = true (or dns.upstreams_from = a "
          "resolv.conf)");
    }
  }
  checkDuplicates(dns.listen, "dns.listen", showAddress, problems);
  checkDuplicates(dns.upstreams, "dns.upstreams", showAddress, problems);
  checkDuplicates(dns.clusterDomains, "dns.cluster_domains", showString, problems);
  checkDuplicates(dns.clusterUpstreams, "dns.cluster_upstreams", showAddress, problems);
  checkDuplicates(dns.intercept, "dns.intercept", showAddress, problems);
  checkDuplicates(dns.proxyProtocolFrom, "dns.proxy_protocol_from", showNetwork, problems);
  for (size_t i = 0; i < dns.intercept.size(); ++i) {
    const common::SocketAddress& address = dns.intercept[i];
    if (isWildcard(address.ip) || address.port == 0) {
      add(indexed("dns.intercept", i), address.toString() +
                                           " is not a Service address; give the kube-dns ClusterIP and port, "
                                           "e.g. \"10.96.0.10:53\"");
    } else if (std::find(dns.listen.begin(), dns.listen.end(), address) == dns.listen.end()) {
      // The interception only takes effect while a socket is bound to
      // exactly this address (xt_socket ignores wildcard listeners).
      add(indexed("dns.intercept", i),
          address.toString() + " is not in dns.listen; list it there too (egressd must listen on it)");
    }
  }
  for (size_t i = 0; i < dns.listen.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (dns.listen[i] != dns.listen[j] && listenersCollide(dns.listen[i], dns.listen[j])) {
        add(indexed("dns.listen", i), dns.listen[i].toString() + " overlaps " + dns.listen[j].toString() +
                                          " (dns.listen[" + std::to_string(j) + "]); both cannot be bound");
        break;
      }
    }
  }
  if (dns.enabled) {
    const auto checkLoop = [&](const std::vector<common::SocketAddress>& upstreams, std::string_view key,
                               bool interceptedIsUpstream) {
      for (size_t i = 0; i < upstreams.size(); ++i) {
        // An intercepted Service address is only taken over for queries
        // that arrive from pods (PREROUTING); egressd's own queries to it
        // leave through OUTPUT, where kube-proxy sends them to CoreDNS
        // (and the raw-table loop guard drops them if nothing does).
        if (interceptedIsUpstream &&
            std::find(dns.intercept.begin(), dns.intercept.end(), upstreams[i]) != dns.intercept.end()) {
          continue;
        }
        for (size_t j = 0; j < dns.listen.size(); ++j) {
          if (reachesListener(upstreams[i], dns.listen[j])) {
            add(indexed(key, i), upstreams[i].toString() + " is egressd's own listener (dns.listen[" +
                                     std::to_string(j) + "]); queries would loop");
            break;
          }
        }
      }
    };
    checkLoop(dns.upstreams, dns.upstreamsFrom.empty() ? "dns.upstreams" : "dns.upstreams_from", false);
    checkLoop(dns.clusterUpstreams, "dns.cluster_upstreams", true);
  }

  // nfqueue
  if (config.nfqueue.enabled && config.nfqueue.queues.empty()) {
    add("nfqueue.queues", "at least one queue number is required when nfqueue.enabled = true");
  }
  checkDuplicates(
      config.nfqueue.queues, "nfqueue.queues", [](uint16_t q) { return std::to_string(q); }, problems);
  checkDuplicates(
      config.nfqueue.protectedCidrs, "nfqueue.protected_cidrs",
      [](const common::IpNetwork& n) { return n.toString(); }, problems);

  // proxy: its listeners must not take the DNS or metrics ports.
  checkDuplicates(config.proxy.listen, "proxy.listen", showAddress, problems);
  for (size_t i = 0; i < config.proxy.listen.size(); ++i) {
    const common::SocketAddress& proxy = config.proxy.listen[i];
    for (size_t j = 0; dns.enabled && j < dns.listen.size(); ++j) {
      // DNS listens on TCP too: the same address and port cannot be both.
      if (listenersCollide(proxy, dns.listen[j])) {
        add(indexed("proxy.listen", i), proxy.toString() + " collides with dns.listen[" + std::to_string(j) +
                                            "] " + dns.listen[j].toString() +
                                            " (use another port, e.g. 3128)");
      }
    }
    if (config.metrics.enabled && listenersCollide(proxy, config.metrics.listen)) {
      add(indexed("proxy.listen", i), proxy.toString() + " collides with metrics.listen " +
                                          config.metrics.listen.toString() +
                                          " (use another port, e.g. 3128)");
    }
  }

  // proxy.clients: an empty list would refuse every client; "everybody"
  // must be written out, so that nobody gets it by deleting the defaults.
  if (config.proxy.enabled() && config.proxy.clients.empty()) {
    add("proxy.clients",
        "an empty list refuses every client; list the networks of your pods (e.g. the cluster's "
        "pod CIDR \"10.244.0.0/16\"), leave the key out for the private ranges, or write "
        "[\"0.0.0.0/0\", \"::/0\"] to serve every address that reaches proxy.listen");
  }
  checkDuplicates(config.proxy.clients, "proxy.clients", showNetwork, problems);
  checkDuplicates(config.proxy.proxyProtocolFrom, "proxy.proxy_protocol_from", showNetwork, problems);

  // control
  if (config.control.socket.empty()) add("control.socket", "a path is required");

  // metrics: the only other TCP listener we open.
  if (config.metrics.enabled && dns.enabled) {
    for (size_t j = 0; j < dns.listen.size(); ++j) {
      if (listenersCollide(config.metrics.listen, dns.listen[j])) {
        add("metrics.listen", config.metrics.listen.toString() + " collides with dns.listen[" +
                                  std::to_string(j) + "] " + dns.listen[j].toString());
        break;
      }
    }
  }
  return problems;
}

namespace {

// RFC 5737 (TEST-NET-1..3) and RFC 3849: addresses for documentation only,
// never routed; the tests use them as their fake internet.
bool isDocumentationAddress(const common::IpAddress& ip) {
  static const common::IpNetwork kNetworks[] = {
      *common::parseIpNetwork("192.0.2.0/24").network,
      *common::parseIpNetwork("198.51.100.0/24").network,
      *common::parseIpNetwork("203.0.113.0/24").network,
      *common::parseIpNetwork("2001:db8::/32").network,
  };
  const common::IpAddress plain = ip.unmapped();
  return std::any_of(std::begin(kNetworks), std::end(kNetworks),
                     [&](const common::IpNetwork& network) { return network.contains(plain); });
}

}  // namespace

std::vector<ConfigProblem> warnings(const Config& config) {
  std::vector<ConfigProblem> out;
  // Every address in proxy.proxy_protocol_from (dns.proxy_protocol_from)
  // may name any client it likes: a whole address family there lets
  // anybody pass as a pod.
  const auto everyone = [&out](const std::vector<common::IpNetwork>& networks, std::string_view key) {
    for (size_t i = 0; i < networks.size(); ++i) {
      if (networks[i].prefixLength == 0) {
        out.push_back(pathProblem(indexed(key, i),
                                  "warning: " + networks[i].toString() +
                                      " trusts every address to name its client (a PROXY header is "
                                      "believed from anyone); list only your load balancers' addresses "
                                      "or subnets"));
      }
    }
  };
  everyone(config.proxy.proxyProtocolFrom, "proxy.proxy_protocol_from");
  const DnsConfig& dns = config.dns;
  if (!dns.enabled) return out;
  everyone(dns.proxyProtocolFrom, "dns.proxy_protocol_from");
  const std::string upstreamsKey = dns.upstreamsFrom.empty() ? "dns.upstreams" : "dns.upstreams_from";
  for (size_t i = 0; i < dns.upstreams.size(); ++i) {
    const common::SocketAddress& upstream = dns.upstreams[i];
    if (isDocumentationAddress(upstream.ip)) {
      out.push_back(pathProblem(
          indexed(upstreamsKey, i),
          "warning: " + upstream.toString() +
              " is a documentation address (RFC 5737/3849) that reaches no resolver on a real network; "
              "set the resolver for external names (your VPC or node resolver), or dns.upstreams_from = "
              "\"/etc/resolv.conf\" to use the node's own (docs/deploy.md)"));
    }
    for (size_t j = 0; j < dns.clusterUpstreams.size(); ++j) {
      if (dns.clusterUpstreams[j] == upstream) {
        out.push_back(pathProblem(
            indexed(upstreamsKey, i),
            "warning: " + upstream.toString() + " is also dns.cluster_upstreams[" + std::to_string(j) +
                "] (the cluster resolver): if it forwards external names to egressd (CoreDNS `forward . "
                "egressd`), queries loop; use the resolver CoreDNS itself forwards to"));
        break;
      }
    }
  }
  for (size_t i = 0; i < dns.clusterUpstreams.size(); ++i) {
    const common::SocketAddress& upstream = dns.clusterUpstreams[i];
    if (isDocumentationAddress(upstream.ip)) {
      out.push_back(pathProblem(indexed("dns.cluster_upstreams", i),
                                "warning: " + upstream.toString() +
                                    " is a documentation address (RFC 5737/3849) that reaches no resolver on "
                                    "a real network; set the kube-dns Service IP (kubectl -n kube-system get "
                                    "svc kube-dns)"));
    }
  }
  return out;
}

std::vector<std::string> restartOnlyChanges(const Config& before, const Config& after) {
  std::vector<std::string> changed;
  for (const KeyAccess& key : kKeys) {
    if (key.info.reload == Reload::Restart && !key.same(before, after)) changed.emplace_back(key.info.path);
  }
  return changed;
}

Config withRestartOnlyFrom(const Config& loaded, const Config& running) {
  Config result = loaded;
  for (const KeyAccess& key : kKeys) {
    if (key.info.reload == Reload::Restart) key.copy(result, running);
  }
  return result;
}

}  // namespace config

// Settings of the DNS service. The daemon fills them from egressd.toml
// ([dns] and rules.binding_grace); tests build them directly.
//
// Restart-only: listen, proxyProtocolFrom. Everything else may change through
// DnsService::updateOptions() and applies to the next query.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/ip_address.h"
#include "common/socket_address.h"

namespace dns {

enum class DenyRcode : uint8_t { NxDomain, Refused };

struct DnsOptions {
  // UDP and TCP on each; port 0 picks a free port (the same for both).
  std::vector<common::SocketAddress> listen;
  std::vector<common::SocketAddress> upstreams;
  // Lower case, no trailing dot; the names themselves and everything below.
  std::vector<std::string> clusterDomains{"cluster.local"};
  std::vector<common::SocketAddress> clusterUpstreams;
  DenyRcode denyRcode = DenyRcode::NxDomain;
  bool stripEch = true;
  // Per upstream attempt; the next upstream is tried after it.
  std::chrono::milliseconds upstreamTimeout{2000};
  // Cached answers (entries); 0 disables the cache.
  uint32_t cacheSize = 10000;
  std::chrono::milliseconds tcpIdleTimeout{10000};
  uint32_t maxTcpClients = 256;
  // Added to the TTL of every binding (rules.binding_grace).
  std::chrono::milliseconds bindingGrace{std::chrono::minutes(5)};
  // Queries waiting for an upstream at once; more get SERVFAIL.
  uint32_t maxPendingQueries = 4096;
  // mode = "audit": what enforce mode denies is answered as if allowed and
  // reported as "would deny" (rebinding refusal and ECH stripping stay).
  bool audit = false;
  // The DNS tunnel guard (dns/tunnel_guard.h): distinct names per client and
  // registrable domain per window, for names allowed only by world access.
  // 0 turns it off.
  uint32_t tunnelGuardNames = 100;
  std::chrono::milliseconds tunnelGuardWindow{std::chrono::minutes(10)};
  // Load balancers (dns.proxy_protocol_from; dnsdist useProxyProtocol):
  // each of their datagrams, and each of their TCP connections, must start
  // with a PROXY protocol header, whose client is then the query's client
  // (decision, event, log, attribution, tunnel guard); answers go back to
  // the balancer. From anyone else a header is never read. Empty: off.
  std::vector<common::IpNetwork> proxyProtocolFrom;
};

}  // namespace dns

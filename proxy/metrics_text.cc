#include "proxy/metrics_text.h"

#include "common/metrics_text.h"
#include "proxy/response.h"

namespace proxy {

namespace {
uint64_t load(const std::atomic<uint64_t>& value) {
  return value.load(std::memory_order_relaxed);
}

void family(std::string& out, const char* name, const char* type, const char* help) {
  common::appendMetricFamily(out, name, type, help);
}

void sample(std::string& out, const char* name, uint64_t value) {
  common::appendMetricSample(out, name, {}, value);
}
}  // namespace

std::string renderPrometheus(const ProxyCounters& c, std::span<const uint64_t> perLoop) {
  std::string out;
  family(out, "egressd_proxy_connections_total", "counter", "Client connections accepted by the proxy.");
  sample(out, "egressd_proxy_connections_total", load(c.connectionsAccepted));
  if (!perLoop.empty()) {
    family(out, "egressd_proxy_loop_connections_total", "counter",
           "Client connections accepted, by proxy event loop (proxy.threads; the kernel spreads them).");
    for (size_t i = 0; i < perLoop.size(); ++i) {
      out += "egressd_proxy_loop_connections_total{loop=\"" + std::to_string(i) + "\"} " +
             std::to_string(perLoop[i]) + "\n";
    }
  }
  family(out, "egressd_proxy_connections", "gauge", "Client connections open now.");
  sample(out, "egressd_proxy_connections", load(c.connectionsActive));
  family(out, "egressd_proxy_tunnels", "gauge", "CONNECT tunnels open now.");
  sample(out, "egressd_proxy_tunnels", load(c.tunnelsActive));
  family(out, "egressd_proxy_tunnels_unspliced_total", "counter",
         "Tunnels relayed through user space because no pipe could be had (descriptor limit).");
  sample(out, "egressd_proxy_tunnels_unspliced_total", load(c.tunnelsUnspliced));
  family(out, "egressd_proxy_tunnel_resets_total", "counter",
         "Tunnels ended by a reset or error on one side, passed on to the other as a reset.");
  sample(out, "egressd_proxy_tunnel_resets_total", load(c.tunnelResets));
  family(out, "egressd_proxy_requests_total", "counter", "Requests read, by method kind.");
  out += "egressd_proxy_requests_total{kind=\"connect\"} " + std::to_string(load(c.connectRequests)) + "\n";
  out += "egressd_proxy_requests_total{kind=\"http\"} " + std::to_string(load(c.httpRequests)) + "\n";
  family(out, "egressd_proxy_responses_total", "counter",
         "Requests by outcome: allowed (name_allowed, world_access, address_rule) or the reason for "
         "the refusal (its HTTP status in the status label).");
  for (size_t i = 0; i < kProxyReasonCount; ++i) {
    const auto reason = static_cast<ProxyReason>(i);
    if (reason == ProxyReason::ClientNotAllowed) continue;  // no response: clients_refused_total
    out += "egressd_proxy_responses_total{reason=\"" + std::string(proxyReasonName(reason)) + "\",status=\"" +
           std::to_string(statusFor(reason)) + "\"} " + std::to_string(load(c.outcomes[i])) + "\n";
  }
  family(out, "egressd_proxy_would_deny_total", "counter",
         "Audit mode: requests let through that enforce mode would have refused, by reason.");
  for (size_t i = 0; i < kProxyReasonCount; ++i) {
    if (load(c.wouldDeny[i]) == 0) continue;
    out += "egressd_proxy_would_deny_total{reason=\"" +
           std::string(proxyReasonName(static_cast<ProxyReason>(i))) + "\"} " +
           std::to_string(load(c.wouldDeny[i])) + "\n";
  }
  family(out, "egressd_proxy_resolver_cache_hits_total", "counter",
         "Names resolved from the proxy's copy of egressd's DNS answers, within their TTL.");
  sample(out, "egressd_proxy_resolver_cache_hits_total", load(c.resolverCacheHits));
  family(out, "egressd_proxy_idle_timeouts_total", "counter",
         "Connections closed after proxy.idle_timeout (tunnels) or idle between requests.");
  sample(out, "egressd_proxy_idle_timeouts_total", load(c.idleTimeouts));
  family(out, "egressd_proxy_bytes_total", "counter", "Bytes relayed, by direction.");
  out +=
      "egressd_proxy_bytes_total{direction=\"upstream\"} " + std::to_string(load(c.bytesToUpstream)) + "\n";
  out += "egressd_proxy_bytes_total{direction=\"client\"} " + std::to_string(load(c.bytesToClient)) + "\n";
  family(out, "egressd_proxy_clients_refused_total", "counter",
         "Connections closed at accept, unread: the client is not in proxy.clients.");
  sample(out, "egressd_proxy_clients_refused_total", load(c.clientsRefused));
  family(out, "egressd_proxy_protocol_headers_total", "counter",
         "PROXY protocol headers honoured from proxy.proxy_protocol_from, by command (proxy: a client "
         "named; local: the balancer's own connection).");
  out += "egressd_proxy_protocol_headers_total{command=\"proxy\"} " + std::to_string(load(c.proxyHeaders)) +
         "\n";
  out += "egressd_proxy_protocol_headers_total{command=\"local\"} " +
         std::to_string(load(c.proxyHeadersLocal)) + "\n";
  family(out, "egressd_proxy_bindings_recorded_total", "counter",
         "Addresses the proxy connected to for a name, recorded as DNS bindings.");
  sample(out, "egressd_proxy_bindings_recorded_total", load(c.bindingsRecorded));
  return out;
}

}  // namespace proxy

// dns_testd: runs dns::DnsService on loopback for the end-to-end test (and
// the benchmark) until the real egressd binary wires it in. Kept small on
// purpose: flags → DnsOptions, a rules dir → Policy, events → stdout.
//
//   dns_testd --rules-dir DIR --upstream 127.0.0.1:5300 [--listen 127.0.0.1:0] ...
//
// Prints "port=N" once listening; one logfmt line per DNS event (unless
// --quiet). SIGHUP reloads the rules dir; SIGUSR1 prints the binding table
// and the counters; SIGTERM/SIGINT stop.
#include <event2/event.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "common/c_handle.h"
#include "common/log.h"
#include "common/snapshot.h"
#include "dns/binding_table.h"
#include "dns/service.h"
#include "policy/manifest.h"
#include "policy/policy.h"

namespace {

class PrintSink : public dns::DnsEventSink {
 public:
  explicit PrintSink(bool quiet) : quiet_(quiet) {}
  void onDnsEvent(const dns::DnsEvent& event) override {
    if (quiet_) return;
    std::string line = "event=dns";
    line += " outcome=" + std::string(dns::dnsOutcomeName(event.outcome));
    line += " qname=";
    common::appendLogfmtValue(line, event.qname);
    line += " qtype=" + std::to_string(event.qtype);
    line += " rcode=" + std::to_string(event.rcode);
    line += " reason=" + std::string(dns::denyReasonName(event.reason));
    line += " answers=" + std::to_string(event.answers);
    line += " client=" + event.client.toString();
    line += event.tcp ? " transport=tcp" : " transport=udp";
    line += event.upstreamTcp ? " upstream_tcp=true" : " upstream_tcp=false";
    line += event.echStripped ? " ech_stripped=true" : " ech_stripped=false";
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fflush(stdout);
  }

 private:
  bool quiet_;
};

std::shared_ptr<const policy::Policy> loadPolicy(const std::string& dir) {
  const auto load = policy::loadRulesDirectories({dir}, policy::defaultPublicSuffixList());
  for (const auto& problem : load.problems) std::fprintf(stderr, "rules: %s\n", problem.toString().c_str());
  return policy::Policy::compile(load.valid);
}

struct Context {
  std::string rulesDir;
  common::SnapshotHolder<policy::Policy>* holder = nullptr;
  dns::BindingTable* bindings = nullptr;
  dns::DnsService* service = nullptr;
  event_base* base = nullptr;
};

void onSignal(evutil_socket_t signal, short, void* arg) {
  auto* context = static_cast<Context*>(arg);
  if (signal == SIGHUP) {
    auto next = loadPolicy(context->rulesDir);
    const size_t count = next->ruleSets().size();
    context->holder->publish(std::move(next));
    std::printf("reloaded rulesets=%zu\n", count);
  } else if (signal == SIGUSR1) {
    const auto now = dns::Clock::now();
    context->bindings->forEach(
        [&](std::string_view name, const common::IpAddress& ip, dns::TimePoint expiry) {
          const auto left = std::chrono::duration_cast<std::chrono::seconds>(expiry - now).count();
          std::printf("binding name=%.*s ip=%s expires_in=%lld\n", static_cast<int>(name.size()), name.data(),
                      ip.toString().c_str(), static_cast<long long>(left));
        });
    const auto& c = context->service->counters();
    std::printf(
        "counters queries=%lu allowed=%lu denied=%lu cluster=%lu cache_hit=%lu upstream_error=%lu "
        "malformed=%lu "
        "refused=%lu rebinding=%lu ech_stripped=%lu upstream_timeouts=%lu upstream_tcp_retries=%lu "
        "truncated_to_client=%lu tcp_rejected=%lu tcp_timeouts=%lu\n",
        c.queries.load(), c.allowed.load(), c.denied.load(), c.cluster.load(), c.cacheHit.load(),
        c.upstreamError.load(), c.malformed.load(), c.refused.load(), c.rebindingBlocked.load(),
        c.echStripped.load(), c.upstreamTimeouts.load(), c.upstreamTcpRetries.load(),
        c.truncatedToClient.load(), c.tcpRejected.load(), c.tcpTimeouts.load());
    std::printf("dump-end\n");
  } else {
    event_base_loopbreak(context->base);
  }
  std::fflush(stdout);
}

std::optional<common::SocketAddress> address(const std::string& text) {
  return common::parseSocketAddress(text, 53);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dns_testd: egressd's DNS service on its own, for tests and benchmarks"};
  std::string rulesDir;
  std::vector<std::string> listen{"127.0.0.1:0"};
  std::vector<std::string> upstreams;
  std::vector<std::string> clusterDomains{"cluster.local"};
  std::vector<std::string> clusterUpstreams;
  std::string denyRcode = "NXDOMAIN";
  int timeoutMs = 2000;
  int tcpIdleMs = 10000;
  unsigned maxTcp = 256;
  unsigned cacheSize = 10000;
  int graceSeconds = 300;
  bool noStripEch = false;
  bool quiet = false;
  app.add_option("--rules-dir", rulesDir, "EgressRuleSet manifests")->required();
  app.add_option("--listen", listen, "address:port (port 0: any free port)");
  app.add_option("--upstream", upstreams, "upstream resolver address:port");
  app.add_option("--cluster-domain", clusterDomains, "cluster domain (forwarded unfiltered)");
  app.add_option("--cluster-upstream", clusterUpstreams, "cluster resolver address:port");
  app.add_option("--deny-rcode", denyRcode, "NXDOMAIN or REFUSED");
  app.add_option("--timeout-ms", timeoutMs, "upstream timeout per attempt");
  app.add_option("--tcp-idle-ms", tcpIdleMs, "TCP idle/read timeout");
  app.add_option("--max-tcp", maxTcp, "maximum concurrent TCP clients");
  app.add_option("--cache-size", cacheSize, "cached answers (0: no cache)");
  app.add_option("--grace-seconds", graceSeconds, "binding grace");
  app.add_flag("--no-strip-ech", noStripEch, "relay ECH parameters");
  app.add_flag("--quiet", quiet, "no event lines");
  CLI11_PARSE(app, argc, argv);

  dns::DnsOptions options;
  auto parseList = [](const std::vector<std::string>& texts, std::vector<common::SocketAddress>& out) {
    for (const auto& text : texts) {
      auto parsed = address(text);
      if (!parsed) {
        std::fprintf(stderr, "dns_testd: bad address %s\n", text.c_str());
        return false;
      }
      out.push_back(*parsed);
    }
    return true;
  };
  if (!parseList(listen, options.listen) || !parseList(upstreams, options.upstreams) ||
      !parseList(clusterUpstreams, options.clusterUpstreams)) {
    return 2;
  }
  options.clusterDomains = clusterDomains;
  if (denyRcode == "REFUSED") {
    options.denyRcode = dns::DenyRcode::Refused;
  } else if (denyRcode != "NXDOMAIN") {
    std::fprintf(stderr, "dns_testd: --deny-rcode must be NXDOMAIN or REFUSED\n");
    return 2;
  }
  options.upstreamTimeout = std::chrono::milliseconds(timeoutMs);
  options.tcpIdleTimeout = std::chrono::milliseconds(tcpIdleMs);
  options.maxTcpClients = maxTcp;
  options.cacheSize = cacheSize;
  options.bindingGrace = std::chrono::seconds(graceSeconds);
  options.stripEch = !noStripEch;

  std::signal(SIGPIPE, SIG_IGN);
  common::SnapshotHolder<policy::Policy> holder(loadPolicy(rulesDir));
  dns::BindingTable bindings(1 << 20);
  PrintSink sink(quiet);
  common::CHandle<event_base, event_base_free> base(event_base_new());
  dns::DnsService service(base.get(), options, holder, bindings, &sink);
  std::string error;
  if (!service.start(error)) {
    std::fprintf(stderr, "dns_testd: %s\n", error.c_str());
    return 1;
  }
  Context context{rulesDir, &holder, &bindings, &service, base.get()};
  std::vector<common::CHandle<event, event_free>> signals;
  for (int signal : {SIGHUP, SIGUSR1, SIGTERM, SIGINT}) {
    signals.emplace_back(evsignal_new(base.get(), signal, &onSignal, &context));
    event_add(signals.back().get(), nullptr);
  }
  std::printf("port=%u\n", static_cast<unsigned>(service.boundAddresses().front().port));
  std::fflush(stdout);
  event_base_dispatch(base.get());
  return 0;
}

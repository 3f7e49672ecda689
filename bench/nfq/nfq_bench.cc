// nfq benchmark: the per-packet user-space work of a verdict worker, without
// the kernel round trip: decoding, decide() for the common first packets
// (SYN on a world/bound/unused port, TLS ClientHello, HTTP request) and a
// held-flow cycle of the flow table. Median ns per operation over several
// runs; writes JSON to argv[1] and a table to stdout.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "nfq/flow_table.h"
#include "nfq/packet.h"
#include "nfq/verdict.h"
#include "policy/policy.h"
#include "tests/nfq/packet_builder.h"

namespace {

using Clock = std::chrono::steady_clock;
using namespace nfqtest;

// A binding table of the shape dns::BindingTable has: address -> names.
class MapBindings final : public nfq::BindingLookup {
 public:
  std::unordered_map<std::string, std::vector<std::string>> names;
  void bind(const std::string& name, const std::string& ip) { names[ip].push_back(name); }
  bool isBound(std::string_view name, const common::IpAddress& ip, nfq::TimePoint) const noexcept override {
    const auto it = names.find(key(ip));
    if (it == names.end()) return false;
    return std::find(it->second.begin(), it->second.end(), name) != it->second.end();
  }
  void forEachBoundName(const common::IpAddress& ip, nfq::TimePoint,
                        Visitor& visitor) const noexcept override {
    const auto it = names.find(key(ip));
    if (it == names.end()) return;
    for (const auto& name : it->second) {
      if (visitor.visit(name)) return;
    }
  }

 private:
  static std::string key(const common::IpAddress& ip) {
    return std::string(reinterpret_cast<const char*>(ip.bytes.data()), ip.byteLength());
  }
};

policy::RuleSet ruleSet(const std::string& name, const std::vector<std::string>& targets) {
  policy::RuleSet set;
  set.ns = "bench";
  set.name = name;
  for (const auto& text : targets) {
    auto parsed = policy::parseTarget(text, policy::defaultPublicSuffixList());
    if (!parsed.target) throw std::runtime_error("bad target " + text);
    set.targets.push_back(*parsed.target);
    set.targetTexts.push_back(text);
  }
  return set;
}

double medianNs(size_t iterations, const std::function<void()>& body) {
  std::vector<double> runs;
  for (int run = 0; run < 7; ++run) {
    const auto start = Clock::now();
    for (size_t i = 0; i < iterations; ++i) body();
    const auto ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
    runs.push_back(ns / static_cast<double>(iterations));
  }
  std::sort(runs.begin(), runs.end());
  return runs[runs.size() / 2];
}

volatile size_t gSink = 0;

}  // namespace

int main(int argc, char** argv) {
  const char* out = argc > 1 ? argv[1] : "nfq.json";
  // 1,000 rule sets of 10 names each, a world port, a network.
  std::vector<policy::RuleSet> sets;
  MapBindings bindings;
  for (int i = 0; i < 1000; ++i) {
    std::vector<std::string> targets;
    for (int j = 0; j < 10; ++j) {
      targets.push_back("svc" + std::to_string(j) + ".team" + std::to_string(i) + ".example.com:443");
    }
    sets.push_back(ruleSet("set" + std::to_string(i), targets));
  }
  sets.push_back(ruleSet("world", {"*:8080", "*.example.org:80"}));
  // 198.51.100.7 stands for a public server (documentation space is
  // internal by default: world access would not cover it).
  const std::vector<common::IpNetwork> benchInternet = {*common::parseIpNetwork("198.51.100.0/24").network};
  const auto policy = policy::Policy::compile(sets, policy::InternalRanges({}, benchInternet));
  for (int i = 0; i < 5000; ++i) {
    bindings.bind("svc1.team" + std::to_string(i % 1000) + ".example.com",
                  std::string{char(192), char(0), char(i >> 8), char(i)});
  }
  const nfq::NamePorts namePorts = nfq::computeNamePorts(*policy);
  nfq::DecideOptions options;
  options.namePorts = &namePorts;
  nfq::DecideOptions inspect = options;
  inspect.inspectBoundFlows = true;
  inspect.strictBinding = false;
  std::vector<uint8_t> scratch(16384 + 4);
  const nfq::TimePoint now = nfq::TimePoint{} + std::chrono::hours(1);

  const Bytes synWorld =
      ipv4("10.1.0.5", "198.51.100.7", nfq::kProtoTcp, tcp(40000, 8080, nfq::kTcpSyn, {}, 20));
  const Bytes synBound = ipv4("10.1.0.5", "192.0.0.9", nfq::kProtoTcp, tcp(40000, 443, nfq::kTcpSyn, {}, 20));
  const Bytes synUnused = ipv4("10.1.0.5", "192.0.0.9", nfq::kProtoTcp, tcp(40000, 25, nfq::kTcpSyn, {}, 20));
  const Bytes v6 = ipv6("fd00::5", "2001:db8::7", 0,
                        cat({ext(60), ext(nfq::kProtoTcp), tcp(40000, 443, nfq::kTcpSyn, {}, 20)}));
  const Bytes hello =
      ipv4("10.1.0.5", "192.0.0.9", nfq::kProtoTcp,
           tcp(40000, 443, nfq::kTcpAck | nfq::kTcpPsh, clientHello("svc1.team9.example.com", 300)));
  const Bytes http = ipv4("10.1.0.5", "198.51.100.7", nfq::kProtoTcp,
                          tcp(40000, 80, nfq::kTcpAck | nfq::kTcpPsh, httpGet("www.example.org")));

  auto decideOn = [&](const Bytes& packet, const nfq::DecideOptions& o) {
    return [&, o] {
      nfq::FlowState flow;
      flow.scratch = scratch;
      const auto decoded = nfq::decodePacket(packet);
      gSink = gSink + static_cast<size_t>(nfq::decide(flow, decoded.view, *policy, bindings, o, now).reason);
    };
  };
  nlohmann::json results = nlohmann::json::array();
  auto record = [&](const char* name, double ns, const char* what) {
    std::printf("%-28s %9.1f ns  %8.2f M/s  %s\n", name, ns, 1000.0 / ns, what);
    results.push_back({{"name", name}, {"ns_per_op", ns}, {"mops", 1000.0 / ns}, {"what", what}});
  };

  record("decode_ipv4_syn",
         medianNs(2'000'000, [&] { gSink = gSink + nfq::decodePacket(synWorld).view.dstPort; }),
         "IPv4 TCP SYN with options");
  record("decode_ipv6_ext_syn",
         medianNs(2'000'000, [&] { gSink = gSink + nfq::decodePacket(v6).view.dstPort; }),
         "IPv6 with two extension headers, TCP SYN");
  record("decide_syn_unused_port", medianNs(1'000'000, decideOn(synUnused, options)),
         "deny: port in no rule");
  record("decide_syn_world", medianNs(1'000'000, decideOn(synWorld, options)), "allow: *:8080");
  const Bytes synMetadata =
      ipv4("10.1.0.5", "169.254.169.254", nfq::kProtoTcp, tcp(40000, 8080, nfq::kTcpSyn, {}, 20));
  record("decide_syn_world_internal", medianNs(1'000'000, decideOn(synMetadata, options)),
         "deny: *:8080 to 169.254.169.254 (internal_address)");
  record("decide_syn_bound", medianNs(500'000, decideOn(synBound, options)),
         "allow: address bound to an allowed name (5,000 bindings)");
  record("decide_client_hello", medianNs(200'000, decideOn(hello, inspect)),
         "TLS ClientHello with SNI, decode + parse + match (10,000 names)");
  record("decide_http_request", medianNs(200'000, decideOn(http, inspect)), "HTTP/1.1 Host, wildcard match");

  nfq::FlowTableOptions tableOptions;
  tableOptions.maxFlows = 4096;
  nfq::FlowTable table(tableOptions);
  const Bytes part(1400, 0x42);
  uint16_t port = 0;
  record("flow_table_hold_cycle",
         medianNs(500'000,
                  [&] {
                    nfq::FlowKey key;
                    key.src = common::IpAddress::v4(0x0a010005);
                    key.dst = common::IpAddress::v4(0xc0000009);
                    key.srcPort = ++port;
                    key.dstPort = 443;
                    key.protocol = 6;
                    auto& flow = table.insert(key, now, [](const nfq::FlowTable::Flow&) {});
                    (void)table.append(flow, 1, part, 1);
                    (void)table.append(flow, 1401, part, 2);
                    gSink = gSink + table.stream(flow, scratch).size();
                    table.release(*table.find(key));
                  }),
         "insert, 2 segments of 1400 B, reassemble, release");

  std::ofstream(out) << nlohmann::json{{"benchmark", "nfq"}, {"results", results}}.dump(2) << "\n";
  return 0;
}

// World access is the public internet only (policy/internal_ranges.h):
// decide() on SYNs, first payloads and QUIC Initials to internal
// destinations, with public controls in the same tables; then the kernel
// fast path's plan compared with decide() on every address class, port
// and binding (no internal address may reach the bound set through world
// access, and every pair it holds is one decide() would pass at the SYN).
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "nfq/bound_set.h"
#include "nfq/verdict.h"
#include "policy/policy.h"
#include "sni/quic.h"
#include "tests/nfq/packet_builder.h"
#include "tests/support/rule_sets.h"

using namespace nfqtest;
using namespace std::chrono_literals;
using nfq::Reason;
using nfq::Verdict;

namespace {

const nfq::TimePoint kNow = nfq::TimePoint{} + 1000h;
constexpr const char* kPublic4 = "93.184.215.14";
constexpr const char* kPublic6 = "2a00:1450:4001::1";

common::IpAddress ip(const std::string& text) {
  return *common::parseIpAddress(text);
}

class Bindings final : public nfq::BindingLookup {
 public:
  std::vector<std::pair<std::string, common::IpAddress>> entries;
  void bind(const std::string& name, const std::string& address) { entries.emplace_back(name, ip(address)); }
  bool isBound(std::string_view name, const common::IpAddress& address,
               nfq::TimePoint) const noexcept override {
    return std::any_of(entries.begin(), entries.end(),
                       [&](const auto& e) { return e.first == name && e.second == address; });
  }
  void forEachBoundName(const common::IpAddress& address, nfq::TimePoint,
                        Visitor& visitor) const noexcept override {
    for (const auto& e : entries) {
      if (e.second == address && visitor.visit(e.first)) return;
    }
  }
};

std::vector<policy::RuleSet> ruleSets() {
  return {
      testsupport::ruleSet("team", "world", {"*:80", "*:443", "*:8080"}),
      testsupport::ruleSet("team", "names",
                           {"api.example.com:443", "*.example.org:80", "api.example.com:22"}),
      testsupport::ruleSet("team", "vpc-db",
                           {"10.20.0.0/16:443", "[fd00:20::/64]:443", "169.254.169.254:8080"}),
  };
}

struct Env {
  std::shared_ptr<const policy::Policy> policy;
  nfq::NamePorts namePorts;
  Bindings bindings;
  nfq::DecideOptions options;

  explicit Env(const policy::InternalRanges& ranges = policy::InternalRanges())
      : policy(policy::Policy::compile(ruleSets(), ranges)), namePorts(nfq::computeNamePorts(*policy)) {
    options.namePorts = &namePorts;
    // Names whose DNS answers an explicit CIDR target covers pass the
    // rebinding check, so they can be bound to internal addresses.
    bindings.bind("api.example.com", "10.20.1.1");
    bindings.bind("www.example.org", "10.20.1.2");
    // Reachable only if some rule made the answer acceptable; world access
    // must still not count for it.
    bindings.bind("anything.example.net", "10.20.1.3");
  }

  nfq::Decision decideBytes(const Bytes& packet, nfq::FlowState flow = {}) const {
    const auto decoded = nfq::decodePacket(packet);
    REQUIRE(decoded.ok());
    return nfq::decide(flow, decoded.view, *policy, bindings, options, kNow);
  }
};

bool isV6(const std::string& address) {
  return address.find(':') != std::string::npos;
}

Bytes tcpTo(const std::string& dst, uint16_t port, uint8_t flags, const Bytes& payload = {}) {
  const Bytes segment = tcp(40000, port, flags, payload);
  return isV6(dst) ? ipv6("fd00::5", dst.c_str(), nfq::kProtoTcp, segment)
                   : ipv4("10.1.0.5", dst.c_str(), nfq::kProtoTcp, segment);
}
Bytes synTo(const std::string& dst, uint16_t port) {
  return tcpTo(dst, port, nfq::kTcpSyn);
}
Bytes dataTo(const std::string& dst, uint16_t port, const Bytes& payload) {
  return tcpTo(dst, port, nfq::kTcpAck | nfq::kTcpPsh, payload);
}

// One address per class the issue names, IPv4 and IPv6, and the
// embedding forms.
const std::vector<std::string> kInternal = {
    "169.254.169.254",
    "10.1.2.3",
    "192.168.1.1",
    "100.64.0.1",
    "127.0.0.1",
    "172.16.0.1",
    "0.1.2.3",
    "198.18.0.1",
    "192.0.2.1",
    "198.51.100.1",
    "203.0.113.1",
    "240.0.0.1",
    "fd00:ec2::254",
    "fc00::1",
    "fe80::1",
    "::1",
    "2001:db8::1",
    "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b::a01:203",
    "2002:a9fe:a9fe::1",
    "64:ff9b:1::a01:203",
};

}  // namespace

TEST_CASE("world access SYN: public passes, every internal class is refused by address",
          "[nfq][verdict][internal]") {
  const Env env;
  for (const char* address : {kPublic4, kPublic6, "::ffff:93.184.215.14", "64:ff9b::5db8:d70e"}) {
    INFO(address);
    const auto d = env.decideBytes(synTo(address, 8080));
    CHECK(d.verdict == Verdict::Allow);
    CHECK(d.reason == Reason::WorldAccess);
  }
  for (const std::string& address : kInternal) {
    INFO(address);
    // 8080: world access and no name rule: final at the SYN.
    auto d = env.decideBytes(synTo(address, 8080));
    if (address == "169.254.169.254" || address == "::ffff:169.254.169.254") {
      CHECK(d.reason == Reason::AddressRule);  // the explicit target opens exactly this one
      continue;
    }
    CHECK(d.verdict == Verdict::Deny);
    CHECK(d.reason == Reason::InternalAddress);
    CHECK(d.ruleSets.empty());
    // 443: name rules on the port too: the first payload decides, and a
    // name allowed only by world access is refused there.
    d = env.decideBytes(synTo(address, 443));
    CHECK(d.verdict == Verdict::Pass);
    d = env.decideBytes(dataTo(address, 443, clientHello("anything.example.com")));
    CHECK(d.verdict == Verdict::Deny);
    CHECK(d.reason == Reason::InternalAddress);
    CHECK(d.name() == "anything.example.com");
    d = env.decideBytes(dataTo(address, 80, httpGet("anything.example.com")));
    CHECK(d.reason == Reason::InternalAddress);
    d = env.decideBytes(dataTo(address, 80, text("SSH-2.0-x\r\n")));
    CHECK(d.reason == Reason::InternalAddress);
    // A name target still needs its binding (which the rebinding check
    // only lets through for CIDR-covered answers).
    d = env.decideBytes(dataTo(address, 443, clientHello("api.example.com")));
    CHECK(d.reason == Reason::SniNotBound);
  }
}

TEST_CASE("first payloads under world access: public names pass, internal destinations do not",
          "[nfq][verdict][internal]") {
  const Env env;
  // A public destination on a world port is decided by address, whatever
  // the payload says.
  auto d = env.decideBytes(dataTo(kPublic4, 443, clientHello("anything.example.com")));
  CHECK(d.verdict == Verdict::Allow);
  CHECK(d.reason == Reason::WorldAccess);
  CHECK(d.matchKind == policy::MatchKind::World);
  d = env.decideBytes(dataTo(kPublic6, 80, httpGet("anything.example.com")));
  CHECK(d.reason == Reason::WorldAccess);
  // Exact name + world on the same port: public needs no binding, internal does.
  CHECK(env.decideBytes(dataTo(kPublic4, 443, clientHello("api.example.com"))).reason == Reason::WorldAccess);
  CHECK(env.decideBytes(dataTo("10.9.9.9", 443, clientHello("api.example.com"))).reason ==
        Reason::SniNotBound);
  // Without strict binding world access still never covers an internal address.
  Env lax;
  lax.options.strictBinding = false;
  CHECK(lax.decideBytes(dataTo("10.9.9.9", 80, httpGet("evil.example.com"))).reason ==
        Reason::InternalAddress);
  CHECK(lax.decideBytes(dataTo("10.9.9.9", 80, httpGet("www.example.org"))).reason == Reason::HostAllowed);
}

TEST_CASE("explicit targets open internal addresses on purpose: CIDR, and names bound inside it",
          "[nfq][verdict][internal]") {
  const Env env;
  auto d = env.decideBytes(synTo("10.20.1.1", 443));
  CHECK(d.verdict == Verdict::Allow);
  CHECK(d.reason == Reason::AddressRule);
  CHECK(env.decideBytes(synTo("fd00:20::7", 443)).reason == Reason::AddressRule);
  // The CIDR target is for 443 only.
  CHECK(env.decideBytes(synTo("10.20.1.1", 8080)).reason == Reason::InternalAddress);
  // An exact name bound to a CIDR-covered address, on another port.
  d = env.decideBytes(synTo("10.20.1.1", 22));
  CHECK(d.verdict == Verdict::Allow);
  CHECK(d.reason == Reason::BoundAddress);
  // A wildcard name bound there, on a world port.
  d = env.decideBytes(synTo("10.20.1.2", 80));
  CHECK(d.reason == Reason::BoundAddress);
  CHECK(d.name() == "www.example.org");
  // A name that only world access allows: its binding does not count.
  d = env.decideBytes(synTo("10.20.1.3", 8080));
  CHECK(d.verdict == Verdict::Deny);
  CHECK(d.reason == Reason::InternalAddress);
  d = env.decideBytes(dataTo("10.20.1.3", 80, httpGet("anything.example.net")));
  CHECK(d.reason == Reason::InternalAddress);
}

TEST_CASE("audit mode reports internal_address as would-deny", "[nfq][verdict][internal]") {
  Env env;
  env.options.audit = true;
  const auto d = env.decideBytes(synTo("169.254.169.253", 8080));
  CHECK(d.verdict == Verdict::AuditAllow);
  CHECK(d.enforced == Verdict::Deny);
  CHECK(d.reason == Reason::InternalAddress);
}

TEST_CASE("rules.public_cidrs narrows and rules.internal_cidrs widens what world access covers",
          "[nfq][verdict][internal]") {
  const std::vector<common::IpNetwork> internal = {*common::parseIpNetwork("93.184.215.0/24").network};
  const std::vector<common::IpNetwork> publicRanges = {*common::parseIpNetwork("10.1.0.0/16").network};
  const Env env(policy::InternalRanges(internal, publicRanges));
  CHECK(env.decideBytes(synTo("10.1.2.3", 8080)).reason == Reason::WorldAccess);
  CHECK(env.decideBytes(synTo("::ffff:10.1.2.3", 8080)).reason == Reason::WorldAccess);
  CHECK(env.decideBytes(synTo("10.2.2.3", 8080)).reason == Reason::InternalAddress);
  CHECK(env.decideBytes(synTo(kPublic4, 8080)).reason == Reason::InternalAddress);
}

TEST_CASE("QUIC Initial under world access: internal destinations are refused",
          "[nfq][verdict][internal][quic]") {
  std::ifstream in(std::string(EGRESSD_SOURCE_DIR) + "/tests/nfq/fixtures/rfc9001_client_initial.bin",
                   std::ios::binary);
  REQUIRE(in);
  const Bytes initial((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const Env env;
  const auto quic = [&](const std::string& dst) {
    static sni::QuicInitialParser parser;
    std::vector<uint8_t> crypto(4096);
    sni::QuicCryptoReassembly reassembly(crypto);
    std::vector<uint8_t> scratch(16384 + 4);
    nfq::FlowState flow;
    flow.scratch = scratch;
    flow.quic = {&parser, &reassembly};
    const Bytes l4 = udp(50000, 443, initial);
    return env.decideBytes(isV6(dst) ? ipv6("fd00::5", dst.c_str(), nfq::kProtoUdp, l4)
                                     : ipv4("10.1.0.5", dst.c_str(), nfq::kProtoUdp, l4),
                           flow);
  };
  auto d = quic(kPublic4);  // SNI example.com: world access
  CHECK(d.verdict == Verdict::Allow);
  CHECK(d.reason == Reason::QuicAllowed);
  CHECK(quic(kPublic6).reason == Reason::QuicAllowed);
  for (const char* address :
       {"169.254.169.254", "10.1.2.3", "100.64.0.1", "fd00:ec2::254", "64:ff9b::a9fe:a9fe"}) {
    INFO(address);
    d = quic(address);
    CHECK(d.verdict == Verdict::Deny);
    CHECK(d.reason == Reason::InternalAddress);
    CHECK(d.name() == "example.com");
  }
  CHECK(quic("10.20.1.1").reason == Reason::AddressRule);
}

TEST_CASE("kernel fast path agrees with decide() on every address class, port and binding",
          "[nfq][fastpath][internal]") {
  std::vector<std::string> addresses = kInternal;
  addresses.insert(addresses.end(),
                   {kPublic4, kPublic6, "10.20.1.1", "10.20.1.2", "10.20.1.3", "fd00:20::7"});
  const std::vector<std::vector<std::string>> nameSets = {
      {},
      {"api.example.com"},
      {"www.example.org"},
      {"anything.example.net"},
      {"api.example.com", "www.example.org", "anything.example.net"}};
  for (const bool narrowed : {false, true}) {
    const std::vector<common::IpNetwork> publicRanges = {*common::parseIpNetwork("10.1.0.0/16").network};
    Env env(narrowed ? policy::InternalRanges({}, publicRanges) : policy::InternalRanges());
    for (const std::string& address : addresses) {
      for (const auto& names : nameSets) {
        env.bindings.entries.clear();
        std::vector<nfq::BoundNameExpiry> expiries;
        for (const auto& name : names) {
          env.bindings.bind(name, address);
          expiries.push_back({name, kNow + 60s});
        }
        std::vector<nfq::SetEntry> plan(64);
        plan.resize(
            nfq::planBoundEntries(ip(address), expiries, *env.policy, env.namePorts, kNow, plan).count);
        for (const uint16_t port : env.policy->portsInUse()) {
          INFO(address << " port " << port << " names " << names.size() << " narrowed " << narrowed);
          const bool inKernel = std::any_of(plan.begin(), plan.end(), [&](const nfq::SetEntry& e) {
            return e.port == port && e.ip == ip(address);
          });
          const nfq::Decision d = env.decideBytes(synTo(address, port));
          if (inKernel) {
            // The kernel passes the SYN (and later payload-less segments);
            // user space would have let it through as well, to judge the
            // first payload, and never by world access.
            const bool passes = (d.verdict == Verdict::Allow && d.reason == Reason::BoundAddress) ||
                                (d.verdict == Verdict::Pass && d.reason == Reason::AwaitPayload);
            CHECK(passes);
            CHECK_FALSE(env.policy->worldOnPort(port));
          }
          if (d.reason == Reason::BoundAddress && !env.policy->worldOnPort(port)) CHECK(inKernel);
          if (d.reason == Reason::InternalAddress) CHECK_FALSE(inKernel);
          // What the kernel sends on to user space is judged the same way
          // whether or not it saw the SYN: decide() keeps no per-flow
          // state beyond the stream, so the first payload's verdict is the
          // one user space gives.
          const auto first = env.decideBytes(dataTo(address, port, httpGet("anything.example.com")));
          if (env.policy->isInternal(ip(address)) && !env.policy->matchAddress(ip(address), port)) {
            CHECK(first.matchKind != policy::MatchKind::World);
            CHECK((first.verdict != Verdict::Allow || first.reason == Reason::BoundAddress));
          }
        }
      }
    }
  }
}

TEST_CASE("kernel verdict names agree with decide() on every address class, port and binding",
          "[nfq][fastpath][internal][kernel_verdict]") {
  // The names map lets the kernel allow a first payload naming a listed
  // name: user space must answer exactly sni_allowed / host_allowed there
  // (egressd inspects bound flows; with and without strict binding).
  std::vector<std::string> addresses = kInternal;
  addresses.insert(addresses.end(),
                   {kPublic4, kPublic6, "10.20.1.1", "10.20.1.2", "10.20.1.3", "fd00:20::7"});
  const std::vector<std::string> names = {"api.example.com", "www.example.org", "anything.example.net",
                                          "example.org"};
  size_t listed = 0;
  for (const bool strict : {false, true}) {
    Env env;
    env.options.inspectBoundFlows = true;
    env.options.strictBinding = strict;
    for (const std::string& address : addresses) {
      env.bindings.entries.clear();
      std::vector<nfq::BoundNameExpiry> expiries;
      for (const auto& name : names) {
        env.bindings.bind(name, address);
        expiries.push_back({name, kNow + 60s});
      }
      std::vector<nfq::KernelNameEntry> plan(256);
      plan.resize(nfq::planKernelNames(ip(address), expiries, *env.policy, env.namePorts, kNow, plan).count);
      for (const uint16_t port : env.policy->portsInUse()) {
        for (const auto& name : names) {
          INFO(address << " port " << port << " name " << name << " strict " << strict);
          const bool inKernel = std::any_of(plan.begin(), plan.end(), [&](const nfq::KernelNameEntry& e) {
            return e.port == port && e.name == name;
          });
          if (!inKernel) continue;
          ++listed;
          const nfq::Decision tls = env.decideBytes(dataTo(address, port, clientHello(name)));
          CHECK(tls.verdict == Verdict::Allow);
          CHECK(tls.reason == Reason::SniAllowed);
          const nfq::Decision http = env.decideBytes(dataTo(address, port, httpGet(name)));
          CHECK(http.verdict == Verdict::Allow);
          CHECK(http.reason == Reason::HostAllowed);
          CHECK(http.matchKind != policy::MatchKind::World);
        }
      }
    }
  }
  CHECK(listed > 20);  // the table is not vacuous
}

// decide(), table-driven: one policy, one binding table, one clock; each row
// is a packet (and the flow's bytes so far), options, and the expected
// verdict, reason, name, name source and rule sets. No sockets.
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <functional>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "common/strings.h"
#include "nfq/verdict.h"
#include "policy/manifest.h"
#include "policy/policy.h"
#include "tests/nfq/packet_builder.h"
#include "tests/support/alloc_counter.h"
#include "tests/support/rule_sets.h"
#include "tests/support/test_internet.h"

using namespace nfqtest;
using nfq::Reason;
using nfq::Verdict;
using namespace std::chrono_literals;

namespace {

policy::RuleSet ruleSet(const std::string& name, const std::vector<std::string>& targets) {
  return testsupport::ruleSet("team", name, targets);
}

const nfq::TimePoint kNow = nfq::TimePoint{} + 1000h;

// The dns::BindingTable stand-in: (name, address, expiry) triples.
class FakeBindings final : public nfq::BindingLookup {
 public:
  struct Entry {
    std::string name;
    common::IpAddress ip;
    nfq::TimePoint expiry;
  };
  std::vector<Entry> entries;

  void bind(const std::string& name, const char* ip, nfq::TimePoint expiry = kNow + 60s) {
    entries.push_back({name, *common::parseIpAddress(ip), expiry});
  }
  bool isBound(std::string_view name, const common::IpAddress& ip,
               nfq::TimePoint now) const noexcept override {
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    return std::any_of(entries.begin(), entries.end(), [&](const Entry& e) {
      return e.ip == ip && now < e.expiry && common::equalsIgnoreCase(e.name, name);
    });
  }
  void forEachBoundName(const common::IpAddress& ip, nfq::TimePoint now,
                        Visitor& visitor) const noexcept override {
    for (const Entry& e : entries) {
      if (e.ip == ip && now < e.expiry && visitor.visit(e.name)) return;
    }
  }
};

struct Fixture {
  std::shared_ptr<const policy::Policy> policy = testsupport::compileWithTestInternet({
      ruleSet("app", {"api.example.com:443", "api.example.com:22", "db.example.com:3306"}),
      ruleSet("web", {"*.example.org:443", "*.example.org:80"}),
      ruleSet("world", {"*:8080"}),
      ruleSet("net", {"203.0.113.0/24:443", "[2001:db8:1::/48]:443", "198.51.100.9:9000"}),
      ruleSet("app2", {"api.example.com:443"}),
  });
  nfq::NamePorts namePorts = nfq::computeNamePorts(*policy);
  FakeBindings bindings;

  Fixture() {
    bindings.bind("api.example.com", "192.0.2.10");
    bindings.bind("api.example.com", "2001:db8::10");
    bindings.bind("www.example.org", "192.0.2.20");
    bindings.bind("db.example.com", "192.0.2.30");
    bindings.bind("evil.com", "192.0.2.66");
    bindings.bind("old.example.org", "192.0.2.40", kNow - 1s);
  }
};

constexpr const char* kPod = "10.1.0.5";
constexpr const char* kPod6 = "fd00::5";

Bytes syn(const char* dst, uint16_t port, const Bytes& payload = {}) {
  const bool v6 = std::string(dst).find(':') != std::string::npos;
  const Bytes segment = tcp(40000, port, nfq::kTcpSyn, payload);
  return v6 ? ipv6(kPod6, dst, nfq::kProtoTcp, segment) : ipv4(kPod, dst, nfq::kProtoTcp, segment);
}
Bytes data(const char* dst, uint16_t port, const Bytes& payload) {
  return ipv4(kPod, dst, nfq::kProtoTcp, tcp(40000, port, nfq::kTcpAck | nfq::kTcpPsh, payload));
}
Bytes udpTo(const char* dst, uint16_t port, const Bytes& payload) {
  return ipv4(kPod, dst, nfq::kProtoUdp, udp(40000, port, payload));
}
Bytes head(Bytes b, size_t n) {
  b.resize(n);
  return b;
}

struct Expected {
  Verdict verdict;
  Reason reason;
  std::string name = "";
  nfq::NameSource source = nfq::NameSource::None;
  std::vector<std::string> ruleSets = {};
};

struct Row {
  const char* description;
  Bytes packet;
  Expected expected;
  std::function<void(nfq::DecideOptions&, nfq::FlowState&)> setup = {};
  Bytes stream = {};  // the flow's bytes so far, when more than this packet
};

const Bytes kSsh = text("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");

auto inspectBound = [](nfq::DecideOptions& o, nfq::FlowState&) { o.inspectBoundFlows = true; };
auto lax = [](nfq::DecideOptions& o, nfq::FlowState&) { o.strictBinding = false; };
auto audit = [](nfq::DecideOptions& o, nfq::FlowState&) { o.audit = true; };
auto noNamePorts = [](nfq::DecideOptions& o, nfq::FlowState&) { o.namePorts = nullptr; };
auto timedOut = [](nfq::DecideOptions&, nfq::FlowState& f) { f.timedOut = true; };
auto smallHold = [](nfq::DecideOptions& o, nfq::FlowState&) { o.maxHoldBytes = 4096; };

using NS = nfq::NameSource;

std::vector<Row> rows() {
  const Bytes hello = clientHello("api.example.com", 1500);  // post-quantum size
  return {
      // SYN: the kernel-side facts
      {"SYN to a port no rule uses", syn("192.0.2.10", 25), {Verdict::Deny, Reason::PortNotInPolicy}},
      {"SYN into an allowed network",
       syn("203.0.113.7", 443),
       {Verdict::Allow, Reason::AddressRule, "", NS::None, {"team/net"}}},
      {"SYN into an allowed IPv6 network",
       syn("2001:db8:1::5", 443),
       {Verdict::Allow, Reason::AddressRule, "", NS::None, {"team/net"}}},
      {"SYN to an allowed address on its port",
       syn("198.51.100.9", 9000),
       {Verdict::Allow, Reason::AddressRule, "", NS::None, {"team/net"}}},
      {"SYN to an allowed network on another port (name rules there)",
       syn("203.0.113.7", 80),
       {Verdict::Pass, Reason::AwaitPayload}},
      {"SYN to a port used only by another address",
       syn("198.51.100.1", 9000),
       {Verdict::Deny, Reason::NoNameRuleOnPort}},
      {"same, without the name-port table: read the payload",
       syn("198.51.100.1", 9000),
       {Verdict::Pass, Reason::AwaitPayload},
       noNamePorts},
      {"SYN on a world-access port to an internal address",
       syn("10.9.9.9", 8080),
       {Verdict::Deny, Reason::InternalAddress}},
      {"SYN on a world-access port",
       syn("192.0.2.99", 8080),
       {Verdict::Allow, Reason::WorldAccess, "", NS::None, {"team/world"}}},
      {"SYN to an address bound to an allowed name",
       syn("192.0.2.10", 443),
       {Verdict::Allow, Reason::BoundAddress, "api.example.com", NS::Binding, {"team/app", "team/app2"}}},
      {"SYN to a bound IPv6 address",
       syn("2001:db8::10", 443),
       {Verdict::Allow, Reason::BoundAddress, "api.example.com", NS::Binding, {"team/app", "team/app2"}}},
      {"SYN to a bound address, server speaks first (SSH)",
       syn("192.0.2.10", 22),
       {Verdict::Allow, Reason::BoundAddress, "api.example.com", NS::Binding, {"team/app"}}},
      {"SYN to a bound wildcard name",
       syn("192.0.2.20", 80),
       {Verdict::Allow, Reason::BoundAddress, "www.example.org", NS::Binding, {"team/web"}}},
      {"SYN to an address bound to a name allowed on another port",
       syn("192.0.2.30", 22),
       {Verdict::Pass, Reason::AwaitPayload}},
      {"SYN to an address bound to a denied name",
       syn("192.0.2.66", 443),
       {Verdict::Pass, Reason::AwaitPayload}},
      {"SYN to an address whose binding expired",
       syn("192.0.2.40", 443),
       {Verdict::Pass, Reason::AwaitPayload}},
      {"SYN to an unbound address, name rules on the port",
       syn("192.0.2.99", 443),
       {Verdict::Pass, Reason::AwaitPayload}},
      {"SYN to a bound address when bound flows are inspected",
       syn("192.0.2.10", 443),
       {Verdict::Pass, Reason::AwaitPayload},
       inspectBound},
      {"handshake ACK without payload", data("192.0.2.99", 443, {}), {Verdict::Pass, Reason::NoPayloadYet}},
      // First payload: TLS
      {"SNI allowed and bound",
       data("192.0.2.10", 443, hello),
       {Verdict::Allow, Reason::SniAllowed, "api.example.com", NS::Sni, {"team/app", "team/app2"}},
       inspectBound},
      {"SNI allowed but the address was never handed out for it",
       data("192.0.2.99", 443, hello),
       {Verdict::Deny, Reason::SniNotBound, "api.example.com", NS::Sni, {"team/app", "team/app2"}}},
      {"SNI allowed, unbound, strict binding off",
       data("192.0.2.99", 443, hello),
       {Verdict::Allow, Reason::SniAllowed, "api.example.com", NS::Sni, {"team/app", "team/app2"}},
       lax},
      {"SNI of a denied name",
       data("192.0.2.99", 443, clientHello("evil.com")),
       {Verdict::Deny, Reason::SniNotAllowed, "evil.com", NS::Sni}},
      {"SNI of a denied name to a bound address (inspected)",
       data("192.0.2.10", 443, clientHello("evil.com")),
       {Verdict::Deny, Reason::SniNotAllowed, "evil.com", NS::Sni},
       inspectBound},
      {"SNI under a wildcard, bound",
       data("192.0.2.20", 443, clientHello("www.example.org")),
       {Verdict::Allow, Reason::SniAllowed, "www.example.org", NS::Sni, {"team/web"}},
       inspectBound},
      {"SNI of the wildcard's apex",
       data("192.0.2.99", 443, clientHello("example.org")),
       {Verdict::Deny, Reason::SniNotAllowed, "example.org", NS::Sni},
       lax},
      {"SNI allowed on another port only",
       data("192.0.2.30", 22, clientHello("db.example.com")),
       {Verdict::Deny, Reason::SniNotAllowed, "db.example.com", NS::Sni}},
      {"SNI with a binding for another name only",
       data("192.0.2.66", 443, clientHello("api.example.com")),
       {Verdict::Deny, Reason::SniNotBound, "api.example.com", NS::Sni, {"team/app", "team/app2"}}},
      {"TLS without SNI to an unbound address",
       data("192.0.2.99", 443, clientHello("")),
       {Verdict::Deny, Reason::NoNameNoBinding, "", NS::Sni}},
      {"TLS without SNI to a bound address (inspected)",
       data("192.0.2.10", 443, clientHello("")),
       {Verdict::Allow, Reason::BoundAddress, "api.example.com", NS::Binding, {"team/app", "team/app2"}},
       inspectBound},
      {"TCP Fast Open: SYN carrying the ClientHello",
       syn("192.0.2.99", 443, hello),
       {Verdict::Deny, Reason::SniNotBound, "api.example.com", NS::Sni, {"team/app", "team/app2"}}},
      {"first half of a ClientHello: hold",
       data("192.0.2.99", 443, head(hello, 700)),
       {Verdict::Hold, Reason::NeedMoreBytes, "", NS::Sni}},
      {"ClientHello completed from the flow buffer",
       data("192.0.2.99", 443, Bytes(hello.begin() + 700, hello.end())),
       {Verdict::Allow, Reason::SniAllowed, "api.example.com", NS::Sni, {"team/app", "team/app2"}},
       lax,
       hello},
      {"held ClientHello that timed out",
       data("192.0.2.99", 443, head(hello, 700)),
       {Verdict::Deny, Reason::HoldTimeout},
       timedOut},
      {"ClientHello larger than the hold limit",
       data("192.0.2.99", 443, head(clientHello("api.example.com", 6000), 700)),
       {Verdict::Deny, Reason::HoldLimit},
       smallHold},
      {"record header announcing 16000 bytes, limit 4096",
       data("192.0.2.99", 443, Bytes{0x16, 0x03, 0x01, 0x3e, 0x80, 0x01}),
       {Verdict::Deny, Reason::HoldLimit},
       smallHold},
      {"handshake record that is not a ClientHello",
       data("192.0.2.99", 443, Bytes{0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0, 0, 0}),
       {Verdict::Deny, Reason::MalformedHello, "", NS::Sni}},
      // First payload: HTTP
      {"Host allowed by a wildcard, strict binding off",
       data("192.0.2.99", 80, httpGet("www.example.org")),
       {Verdict::Allow, Reason::HostAllowed, "www.example.org", NS::Host, {"team/web"}},
       lax},
      {"Host in upper case with a trailing dot and a port",
       data("192.0.2.99", 80, httpGet("WWW.Example.ORG.:80")),
       {Verdict::Allow, Reason::HostAllowed, "WWW.Example.ORG", NS::Host, {"team/web"}},
       lax},
      {"Host allowed but not bound",
       data("192.0.2.99", 80, httpGet("www.example.org")),
       {Verdict::Deny, Reason::HostNotBound, "www.example.org", NS::Host, {"team/web"}}},
      {"Host of a denied name",
       data("192.0.2.99", 80, httpGet("evil.com")),
       {Verdict::Deny, Reason::HostNotAllowed, "evil.com", NS::Host}},
      {"Host is an IP literal",
       data("192.0.2.99", 80, httpGet("192.0.2.99")),
       {Verdict::Deny, Reason::NoNameNoBinding, "", NS::Host}},
      {"request line still incomplete",
       data("192.0.2.99", 80, text("GE")),
       {Verdict::Hold, Reason::NeedMoreBytes}},
      // First payload: neither TLS nor HTTP
      {"SSH banner to an unbound address",
       data("192.0.2.99", 22, kSsh),
       {Verdict::Deny, Reason::NoNameNoBinding}},
      {"SSH banner to a bound address (inspected)",
       data("192.0.2.10", 22, kSsh),
       {Verdict::Allow, Reason::BoundAddress, "api.example.com", NS::Binding, {"team/app"}},
       inspectBound},
      {"SMTP command to an unbound address",
       data("192.0.2.99", 80, text("EHLO pod\r\n")),
       {Verdict::Deny, Reason::NoNameNoBinding}},
      // UDP, ICMP, others
      {"UDP to port 53 (DNS must go to egressd)",
       udpTo("192.0.2.53", 53, Bytes(30, 1)),
       {Verdict::Deny, Reason::UdpNotAllowed}},
      {"UDP 443 that is not a QUIC Initial",
       udpTo("192.0.2.10", 443, Bytes(30, 0)),
       {Verdict::Deny, Reason::UdpNotAllowed}},
      {"UDP 443 into an allowed network, unreadable",
       udpTo("203.0.113.7", 443, Bytes(30, 0)),
       {Verdict::Deny, Reason::UdpNotAllowed}},
      {"ICMP echo", ipv4(kPod, "192.0.2.10", nfq::kProtoIcmp, icmp(8)), {Verdict::Deny, Reason::IcmpDenied}},
      {"ICMPv6 echo",
       ipv6(kPod6, "2001:db8::10", nfq::kProtoIcmpv6, icmp(128)),
       {Verdict::Deny, Reason::IcmpDenied}},
      {"GRE", ipv4(kPod, "192.0.2.10", 47, Bytes(8, 0)), {Verdict::Deny, Reason::ProtocolNotAllowed}},
      {"IPv6 ESP",
       ipv6(kPod6, "2001:db8::10", 50, Bytes(16, 0)),
       {Verdict::Deny, Reason::ProtocolNotAllowed}},
      // Audit mode
      {"audit: a denied SYN is let through",
       syn("192.0.2.10", 25),
       {Verdict::AuditAllow, Reason::PortNotInPolicy},
       audit},
      {"audit: a denied SNI is let through",
       data("192.0.2.99", 443, clientHello("evil.com")),
       {Verdict::AuditAllow, Reason::SniNotAllowed, "evil.com", NS::Sni},
       audit},
      {"audit: an allowed flow stays allowed",
       syn("192.0.2.99", 8080),
       {Verdict::Allow, Reason::WorldAccess, "", NS::None, {"team/world"}},
       audit},
      {"audit: a hold is still a hold",
       data("192.0.2.99", 443, head(hello, 100)),
       {Verdict::Hold, Reason::NeedMoreBytes, "", NS::Sni},
       audit},
  };
}

std::vector<std::string> ids(const policy::Policy& p, policy::RuleSetRefs refs) {
  std::vector<std::string> out;
  for (uint32_t index : refs) out.push_back(p.ruleSets()[index].id);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("decide() follows the verdict procedure", "[nfq][verdict]") {
  Fixture fixture;
  std::set<Reason> reasons;
  const auto table = rows();
  CHECK(table.size() >= 30);
  std::array<uint8_t, 16384 + 4> scratch{};
  for (const Row& row : table) {
    INFO(row.description);
    const auto decoded = nfq::decodePacket(row.packet);
    REQUIRE(decoded.ok());
    nfq::DecideOptions options;
    options.namePorts = &fixture.namePorts;
    nfq::FlowState flow;
    flow.stream = row.stream;
    flow.scratch = scratch;
    if (row.setup) row.setup(options, flow);
    const nfq::Decision d = nfq::decide(flow, decoded.view, *fixture.policy, fixture.bindings, options, kNow);
    reasons.insert(d.reason);
    CHECK(nfq::verdictName(d.verdict) == nfq::verdictName(row.expected.verdict));
    CHECK(nfq::reasonName(d.reason) == nfq::reasonName(row.expected.reason));
    CHECK(std::string(d.name()) == row.expected.name);
    CHECK(nfq::nameSourceName(d.nameSource) == nfq::nameSourceName(row.expected.source));
    CHECK(ids(*fixture.policy, d.ruleSets) == row.expected.ruleSets);
    if (options.audit && d.verdict == Verdict::AuditAllow) CHECK(d.wouldDeny());
    if (!options.audit) CHECK(d.enforced == d.verdict);
  }
  // Every reason shows up but MalformedPacket (decideUndecodable, below),
  // MalformedRequest (depends on the HTTP parser's strictness) and the three
  // Quic* ones (need the QUIC Initial parser; see the sni-linked tests),
  // and the insertion guard's four, which the queue worker gives
  // (nfq/insertion_guard.h, tests/e2e/insertion_test.sh).
  CHECK(reasons.size() + 9 >= nfq::kReasonCount);
}

TEST_CASE("undecodable packets are denied, or let through in audit mode", "[nfq][verdict]") {
  nfq::DecideOptions options;
  auto d = nfq::decideUndecodable(nfq::DecodeError::TcpBadDataOffset, options);
  CHECK(d.verdict == Verdict::Deny);
  CHECK(d.reason == Reason::MalformedPacket);
  options.audit = true;
  d = nfq::decideUndecodable(nfq::DecodeError::NonFirstFragment, options);
  CHECK(d.verdict == Verdict::AuditAllow);
  CHECK(d.wouldDeny());
}

TEST_CASE("the binding's expiry is judged at the time passed in", "[nfq][verdict]") {
  Fixture fixture;
  nfq::DecideOptions options;
  options.namePorts = &fixture.namePorts;
  const Bytes packet = syn("192.0.2.10", 443);
  const auto view = nfq::decodePacket(packet).view;
  CHECK(nfq::decide({}, view, *fixture.policy, fixture.bindings, options, kNow + 59s).verdict ==
        Verdict::Allow);
  const auto late = nfq::decide({}, view, *fixture.policy, fixture.bindings, options, kNow + 61s);
  CHECK(late.verdict == Verdict::Pass);
  CHECK(late.reason == Reason::AwaitPayload);
}

TEST_CASE("a policy snapshot without the port denies what an older one allowed", "[nfq][verdict]") {
  const auto before = testsupport::compileWithTestInternet({ruleSet("world", {"*:8080"})});
  const auto after = policy::Policy::compile({ruleSet("other", {"*:8443"})});
  const Bytes packet = syn("192.0.2.99", 8080);
  const auto view = nfq::decodePacket(packet).view;
  nfq::NoBindings none;
  CHECK(nfq::decide({}, view, *before, none, {}, kNow).verdict == Verdict::Allow);
  CHECK(nfq::decide({}, view, *after, none, {}, kNow).reason == Reason::PortNotInPolicy);
}

TEST_CASE("verdict and reason names are unique", "[nfq][verdict]") {
  std::set<std::string_view> names;
  for (size_t i = 0; i < nfq::kReasonCount; ++i) names.insert(nfq::reasonName(static_cast<Reason>(i)));
  CHECK(names.size() == nfq::kReasonCount);
  CHECK(nfq::verdictName(Verdict::AuditAllow) == "audit-allow");
  CHECK(nfq::reasonName(Reason::SniNotBound) == "sni_not_bound");
}

TEST_CASE("a real curl ClientHello split over two segments: hold, then one verdict", "[nfq][verdict]") {
  std::ifstream in(std::string(EGRESSD_SOURCE_DIR) + "/tests/nfq/fixtures/curl.bin", std::ios::binary);
  REQUIRE(in);
  const Bytes hello((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Fixture fixture;
  nfq::DecideOptions options;
  options.namePorts = &fixture.namePorts;
  options.inspectBoundFlows = true;
  std::array<uint8_t, 16384 + 4> scratch{};
  const Bytes first = data("192.0.2.10", 443, head(hello, 100));
  nfq::FlowState flow;
  flow.scratch = scratch;
  auto d = nfq::decide(flow, nfq::decodePacket(first).view, *fixture.policy, fixture.bindings, options, kNow);
  CHECK(d.verdict == Verdict::Hold);
  CHECK(d.needBytes > 0);
  const Bytes second = data("192.0.2.10", 443, Bytes(hello.begin() + 100, hello.end()));
  flow.stream = hello;  // the flow table's reassembly of both segments
  d = nfq::decide(flow, nfq::decodePacket(second).view, *fixture.policy, fixture.bindings, options, kNow);
  CHECK(d.verdict == Verdict::Allow);
  CHECK(d.reason == Reason::SniAllowed);
  CHECK(d.name() == "api.example.com");
}

TEST_CASE("decide() does not allocate", "[nfq][verdict]") {
  Fixture fixture;
  std::array<uint8_t, 16384 + 4> scratch{};
  std::vector<std::pair<Bytes, nfq::DecideOptions>> packets;
  for (const Row& row : rows()) {
    nfq::DecideOptions options;
    options.namePorts = &fixture.namePorts;
    nfq::FlowState unused;
    if (row.setup) row.setup(options, unused);
    packets.emplace_back(row.packet, options);
  }
  size_t allocations = 0;
  {
    testsupport::AllocationCounter counter;
    for (const auto& [packet, options] : packets) {
      nfq::FlowState flow;
      flow.scratch = scratch;
      (void)nfq::decide(flow, nfq::decodePacket(packet).view, *fixture.policy, fixture.bindings, options,
                        kNow);
    }
    allocations = counter.count();
  }
  CHECK(allocations == 0);
}

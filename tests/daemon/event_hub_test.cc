// The event hub: conversions into observe::Event, the bounded rings and
// their drop counter, packet capture on demand, delivery on drain().
#include <catch2/catch.hpp>

#include <event2/event.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/c_handle.h"
#include "common/log.h"
#include "daemon/event_hub.h"
#include "daemon/rule_set_hits.h"
#include "dns/binding_table.h"
#include "observe/format.h"
#include "policy/manifest.h"

namespace {

using EventBase = common::CHandle<event_base, event_base_free>;

std::shared_ptr<const policy::Policy> twoRuleSets() {
  const auto load = policy::loadManifest(R"(apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: a, namespace: team}
spec: {targets: ["api.example.com:443"]}
---
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: b, namespace: team}
spec: {targets: ["api.example.com:443"]}
)",
                                         "t.yaml", policy::defaultPublicSuffixList());
  return policy::Policy::compile(load.valid);
}

nfq::DecisionEvent decision(const policy::Policy& policy, const std::vector<uint32_t>& sets,
                            std::span<const uint8_t> packet = {}) {
  nfq::DecisionEvent event;
  event.time = std::chrono::system_clock::now();
  event.queue = 3;
  event.src = *common::parseIpAddress("10.77.0.2");
  event.dst = *common::parseIpAddress("203.0.113.10");
  event.srcPort = 40000;
  event.dstPort = 443;
  event.protocol = 6;
  event.decision.verdict = nfq::Verdict::Allow;
  event.decision.enforced = nfq::Verdict::Allow;
  event.decision.reason = nfq::Reason::SniAllowed;
  event.decision.setName("api.example.com", nfq::NameSource::Sni);
  event.decision.matchKind = policy::MatchKind::Exact;
  event.decision.ruleSets = sets;
  event.policy = &policy;
  event.packet = packet;
  return event;
}

struct Collected {
  std::vector<observe::Event> events;
  std::vector<size_t> packetLengths;  // 0 = none
};

}  // namespace

TEST_CASE("event hub: a verdict becomes an event with its rule sets", "[events]") {
  const auto policy = twoRuleSets();
  const std::vector<uint32_t> sets = {0, 1};
  observe::Event out;
  daemon_main::EventHub::fromDecision(decision(*policy, sets), out);
  CHECK(out.kind == observe::EventKind::Verdict);
  CHECK(out.verdict == observe::EventVerdict::Allow);
  CHECK(out.nameView() == "api.example.com");
  CHECK(out.nameSource == "sni");
  CHECK(out.match == "exact");
  CHECK(out.ruleSetsView() == "team/a,team/b");
  CHECK(out.queue == 3);
  CHECK(out.dstPort == 443);
  CHECK(out.reason == nfq::reasonName(nfq::Reason::SniAllowed));

  auto audit = decision(*policy, {});
  audit.decision.verdict = nfq::Verdict::AuditAllow;
  audit.decision.enforced = nfq::Verdict::Deny;
  daemon_main::EventHub::fromDecision(audit, out);
  CHECK(out.verdict == observe::EventVerdict::Audit);
  CHECK(out.ruleSetsLength == 0);
}

TEST_CASE("event hub: a DNS answer becomes an event towards the listener", "[events]") {
  dns::DnsEvent in;
  in.client = {*common::parseIpAddress("10.77.0.2"), 5353};
  in.qname = "Evil.Example.";
  in.qtype = 1;
  in.outcome = dns::DnsOutcome::Denied;
  in.reason = dns::DenyReason::NotAllowed;
  in.rcode = 3;
  const common::SocketAddress listener{*common::parseIpAddress("10.77.0.1"), 53};
  observe::Event out;
  daemon_main::EventHub::fromDns(in, &listener, out);
  CHECK(out.kind == observe::EventKind::Dns);
  CHECK(out.verdict == observe::EventVerdict::Deny);
  // The case as asked (0x20 forensics); filters match ignoring case.
  CHECK(out.nameView() == "Evil.Example");
  CHECK(out.dst == listener.ip);
  CHECK(out.dstPort == 53);
  CHECK(out.protocol == 17);
  CHECK(out.dnsOutcome == "denied");
  CHECK(out.rcode == 3);
  in.outcome = dns::DnsOutcome::Refused;
  in.reason = dns::DenyReason::None;
  in.tcp = true;
  daemon_main::EventHub::fromDns(in, nullptr, out);
  CHECK(out.verdict == observe::EventVerdict::Allow);  // a protocol refusal, not a policy decision
  CHECK(out.protocol == 6);
  CHECK(out.reason.empty());
}

// Issue 12: audit mode's DNS answers were reported as DENY.
TEST_CASE("event hub: an audited DNS answer is an audit verdict with its reason", "[events]") {
  dns::DnsEvent in;
  in.client = {*common::parseIpAddress("10.77.0.2"), 5353};
  in.qname = "evil.example";
  in.qtype = 1;
  in.outcome = dns::DnsOutcome::Allowed;
  in.reason = dns::DenyReason::NotAllowed;
  in.audit = true;
  observe::Event out;
  daemon_main::EventHub::fromDns(in, nullptr, out);
  CHECK(out.verdict == observe::EventVerdict::Audit);
  CHECK(out.reason == "not_allowed");
  CHECK(out.dnsOutcome == "allowed");
  const std::string line = observe::formatLine(out, {});
  CHECK(line.find("AUDIT would deny not_allowed") != std::string::npos);
}

TEST_CASE("event hub: events reach the hook and the fan-out on drain, in order", "[events]") {
  EventBase base(event_base_new());
  daemon_main::EventHubOptions options;
  options.logEvents = false;
  daemon_main::EventHub hub(base.get(), options);
  const auto policy = twoRuleSets();
  Collected fanout;
  size_t hooked = 0;
  hub.setCounterHook([&](const observe::Event&, uint64_t) { ++hooked; });
  hub.setFanout([&](const observe::Event& event, const observe::CapturedPacket* packet) {
    fanout.events.push_back(event);
    fanout.packetLengths.push_back(packet != nullptr ? packet->length : 0);
  });
  for (uint16_t port = 1; port <= 5; ++port) {
    auto event = decision(*policy, {});
    event.dstPort = port;
    hub.onDecision(event);
  }
  CHECK(fanout.events.empty());  // nothing before the loop drains
  hub.drain();
  REQUIRE(fanout.events.size() == 5);
  for (size_t i = 0; i < 5; ++i) CHECK(fanout.events[i].dstPort == i + 1);
  CHECK(hooked == 5);
  CHECK(hub.counters().verdictEvents == 5);
  CHECK(hub.counters().dropped == 0);
}

TEST_CASE("event hub: a full ring drops and counts, never blocks", "[events]") {
  EventBase base(event_base_new());
  daemon_main::EventHubOptions options;
  options.capacity = 8 * 32;  // 32 per stripe
  options.logEvents = false;
  daemon_main::EventHub hub(base.get(), options);
  const auto policy = twoRuleSets();
  size_t delivered = 0;
  hub.setFanout([&](const observe::Event&, const observe::CapturedPacket*) { ++delivered; });
  const auto event = decision(*policy, {});  // queue 3: one stripe
  for (int i = 0; i < 100; ++i) hub.onDecision(event);
  hub.drain();
  CHECK(delivered == 32);
  CHECK(hub.counters().dropped == 68);
  // After a drain there is room again.
  for (int i = 0; i < 10; ++i) hub.onDecision(event);
  hub.drain();
  CHECK(delivered == 42);
  CHECK(hub.counters().dropped == 68);
}

TEST_CASE("event hub: workers on several queues at once lose nothing below capacity", "[events]") {
  EventBase base(event_base_new());
  daemon_main::EventHubOptions options;
  options.logEvents = false;
  options.capacity = 8 * 4096;
  daemon_main::EventHub hub(base.get(), options);
  const auto policy = twoRuleSets();
  size_t delivered = 0;
  hub.setFanout([&](const observe::Event&, const observe::CapturedPacket*) { ++delivered; });
  std::vector<std::thread> workers;
  for (uint16_t queue = 0; queue < 4; ++queue) {
    workers.emplace_back([&, queue] {
      auto event = decision(*policy, {});
      event.queue = queue;
      for (int i = 0; i < 4000; ++i) hub.onDecision(event);
    });
  }
  for (int i = 0; i < 50; ++i) hub.drain();  // concurrently with the workers
  for (auto& worker : workers) worker.join();
  hub.drain();
  CHECK(delivered + hub.counters().dropped == 16000);
  CHECK(hub.counters().dropped == 0);
}

TEST_CASE("event hub: packets are copied only while capture is on", "[events]") {
  EventBase base(event_base_new());
  daemon_main::EventHubOptions options;
  options.logEvents = false;
  options.packetCapacity = 8 * 4;  // 4 per stripe
  daemon_main::EventHub hub(base.get(), options);
  const auto policy = twoRuleSets();
  Collected fanout;
  hub.setFanout([&](const observe::Event& event, const observe::CapturedPacket* packet) {
    fanout.events.push_back(event);
    fanout.packetLengths.push_back(packet != nullptr ? packet->length : 0);
    if (packet != nullptr) CHECK(packet->bytes[0] == 0x45);
  });
  std::vector<uint8_t> bytes(60, 0);
  bytes[0] = 0x45;
  std::vector<uint8_t> jumbo(9000, 0x45);
  hub.onDecision(decision(*policy, {}, bytes));
  hub.drain();
  REQUIRE(fanout.packetLengths.size() == 1);
  CHECK(fanout.packetLengths[0] == 0);  // capture off

  hub.setCapturePackets(true);
  for (int i = 0; i < 6; ++i)
    hub.onDecision(decision(*policy, {}, i == 0 ? std::span<const uint8_t>(jumbo) : bytes));
  hub.drain();
  REQUIRE(fanout.packetLengths.size() == 7);
  CHECK(fanout.packetLengths[1] == observe::kMaxEventPacket);  // truncated
  CHECK(fanout.packetLengths[2] == 60);
  CHECK(fanout.packetLengths[4] == 60);
  CHECK(fanout.packetLengths[5] == 0);  // packet ring full: the event still goes
  CHECK(fanout.packetLengths[6] == 0);
  CHECK(hub.counters().packetsCaptured == 4);
  CHECK(hub.counters().packetsDropped == 2);

  hub.setCapturePackets(false);
  hub.onDecision(decision(*policy, {}, bytes));
  hub.drain();
  CHECK(fanout.packetLengths.back() == 0);
}

namespace {

std::shared_ptr<const policy::Policy> provenancePolicy() {
  const auto load = policy::loadManifest(R"(apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: app, namespace: team-a}
spec: {targets: ["api.example.com:443"]}
---
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: web, namespace: team-b}
spec: {targets: ["*.example.com:443", "api.example.com:8443"]}
---
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: other, namespace: team-c}
spec: {targets: ["other.org:443", "203.0.113.0/24:8443"]}
)",
                                         "t.yaml", policy::defaultPublicSuffixList());
  REQUIRE(load.valid.size() == 3);
  return policy::Policy::compile(load.valid);
}

dns::DnsEvent dnsAnswer(const policy::Policy* policy, dns::DnsOutcome outcome,
                        dns::DenyReason reason = dns::DenyReason::None) {
  dns::DnsEvent in;
  in.client = {*common::parseIpAddress("10.77.0.2"), 5353};
  in.qname = "API.example.com.";
  in.qtype = 1;
  in.outcome = outcome;
  in.reason = reason;
  in.policy = policy;
  return in;
}

}  // namespace

// Issue 5: kind="dns" per-rule-set series stayed empty because DNS events
// named no rule set.
TEST_CASE("event hub: a DNS answer names the rule sets that allow the name", "[events]") {
  const auto policy = provenancePolicy();
  observe::Event out;
  // Port 443: team-a's exact name wins over team-b's wildcard (the most
  // specific kind, as connection events); port 8443: team-b's exact name.
  daemon_main::EventHub::fromDns(dnsAnswer(policy.get(), dns::DnsOutcome::Allowed), nullptr, out);
  CHECK(out.ruleSetsView() == "team-a/app,team-b/web");
  CHECK(out.verdict == observe::EventVerdict::Allow);
  daemon_main::EventHub::fromDns(dnsAnswer(policy.get(), dns::DnsOutcome::CacheHit), nullptr, out);
  CHECK(out.ruleSetsView() == "team-a/app,team-b/web");
  // The name was allowed; the answer pointed into private space.
  daemon_main::EventHub::fromDns(dnsAnswer(policy.get(), dns::DnsOutcome::Denied, dns::DenyReason::Rebinding),
                                 nullptr, out);
  CHECK(out.ruleSetsView() == "team-a/app,team-b/web");
  CHECK(out.verdict == observe::EventVerdict::Deny);
  // Only the wildcard allows this one.
  dns::DnsEvent www = dnsAnswer(policy.get(), dns::DnsOutcome::Allowed);
  www.qname = "www.example.com";
  daemon_main::EventHub::fromDns(www, nullptr, out);
  CHECK(out.ruleSetsView() == "team-b/web");
  // Nothing allowed it, or no policy decided: no rule set.
  dns::DnsEvent denied = dnsAnswer(policy.get(), dns::DnsOutcome::Denied, dns::DenyReason::NotAllowed);
  denied.qname = "evil.example.net";
  daemon_main::EventHub::fromDns(denied, nullptr, out);
  CHECK(out.ruleSetsLength == 0);
  daemon_main::EventHub::fromDns(dnsAnswer(policy.get(), dns::DnsOutcome::Cluster), nullptr, out);
  CHECK(out.ruleSetsLength == 0);
  daemon_main::EventHub::fromDns(dnsAnswer(nullptr, dns::DnsOutcome::Allowed), nullptr, out);
  CHECK(out.ruleSetsLength == 0);

  // Through the hub into the per-rule-set counters: kind "dns".
  EventBase base(event_base_new());
  daemon_main::EventHub hub(base.get());
  daemon_main::RuleSetHits hits;
  hits.retain(*policy);
  hub.setCounterHook([&](const observe::Event& event, uint64_t times) { hits.count(event, times); });
  hub.onDnsEvent(dnsAnswer(policy.get(), dns::DnsOutcome::Allowed));
  hub.onDnsEvent(dnsAnswer(policy.get(), dns::DnsOutcome::CacheHit));
  hub.onDnsEvent(dnsAnswer(policy.get(), dns::DnsOutcome::Denied, dns::DenyReason::Rebinding));
  hub.drain();
  const auto rows = hits.rows();
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].ruleSet == "team-a/app");
  CHECK(rows[0].counts[1][0] == 2);  // dns, allow
  CHECK(rows[0].counts[1][1] == 1);  // dns, deny
  CHECK(rows[0].counts[0][0] == 0);  // no connection counted
  CHECK(rows[1].ruleSet == "team-b/web");
  CHECK(rows[1].counts[1][0] == 2);
}

// Cache hits nobody wanted as events arrive counted (onDnsCacheHits): the
// hook gets one event standing for all of them, naming the same rule sets
// an event per hit would have named, and nothing is logged or watched.
TEST_CASE("event hub: lazily counted cache hits reach the per-rule-set counts", "[events]") {
  const auto policy = provenancePolicy();
  EventBase base(event_base_new());
  daemon_main::EventHub hub(base.get());
  daemon_main::RuleSetHits hits;
  hits.retain(*policy);
  hub.setCounterHook([&](const observe::Event& event, uint64_t times) { hits.count(event, times); });
  size_t watched = 0;
  hub.setFanout([&](const observe::Event&, const observe::CapturedPacket*) { ++watched; });
  hub.onDnsEvent(dnsAnswer(policy.get(), dns::DnsOutcome::CacheHit));  // one hit as an event
  hub.onDnsCacheHits("api.example.com", *policy, 41);                  // 41 counted on the cache entry
  hub.onDnsCacheHits("www.example.com", *policy, 5);                   // only team-b's wildcard
  hub.onDnsCacheHits("api.example.com", *policy, 0);                   // nothing
  hub.drain();
  CHECK(watched == 1);
  const auto rows = hits.rows();
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].ruleSet == "team-a/app");
  CHECK(rows[0].counts[1][0] == 42);  // dns, allow
  CHECK(rows[0].counts[1][1] == 0);
  CHECK(rows[0].counts[0][0] == 0);
  CHECK(rows[1].ruleSet == "team-b/web");
  CHECK(rows[1].counts[1][0] == 47);
}

TEST_CASE("event hub: a DNS event's rule set list is cut with a marker, never mid-id", "[events]") {
  std::string yaml;
  for (int i = 0; i < 40; ++i) {
    yaml += "apiVersion: zalando.org/v1\nkind: EgressRuleSet\nmetadata: {name: rule-set-with-a-long-name-" +
            std::to_string(i) + ", namespace: team}\nspec: {targets: [\"api.example.com:443\"]}\n---\n";
  }
  const auto load = policy::loadManifest(yaml, "t.yaml", policy::defaultPublicSuffixList());
  REQUIRE(load.valid.size() == 40);
  const auto policy = policy::Policy::compile(load.valid);
  observe::Event out;
  daemon_main::EventHub::fromDns(dnsAnswer(policy.get(), dns::DnsOutcome::Allowed), nullptr, out);
  const std::string_view list = out.ruleSetsView();
  CHECK(list.size() <= out.ruleSets.size());
  CHECK(list.ends_with(",..."));
  // Every id before the marker is whole.
  std::string_view rest = list.substr(0, list.size() - 4);
  size_t ids = 0;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    CHECK(rest.substr(0, comma).starts_with("team/rule-set-with-a-long-name-"));
    ++ids;
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  }
  CHECK(ids >= 5);
  daemon_main::RuleSetHits hits;
  hits.retain(*policy);
  hits.count(out);
  CHECK(hits.rows().size() == ids);  // the marker is not a rule set
}

TEST_CASE("event hub: a DNS event goes to the address that received it", "[events]") {
  EventBase base(event_base_new());
  daemon_main::EventHub hub(base.get());
  hub.setDnsListeners(
      {{*common::parseIpAddress("10.77.0.1"), 53}, {*common::parseIpAddress("10.77.0.9"), 5353}});
  std::vector<observe::Event> seen;
  hub.setCounterHook([&](const observe::Event& event, uint64_t) { seen.push_back(event); });
  dns::DnsEvent in = dnsAnswer(nullptr, dns::DnsOutcome::Allowed);
  in.server = {*common::parseIpAddress("10.77.0.9"), 5353};
  hub.onDnsEvent(in);
  in.server = {};  // unknown: the first listener of the client's family, as before
  hub.onDnsEvent(in);
  hub.drain();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].dst == *common::parseIpAddress("10.77.0.9"));
  CHECK(seen[0].dstPort == 5353);
  CHECK(seen[1].dst == *common::parseIpAddress("10.77.0.1"));
  CHECK(seen[1].dstPort == 53);
}

namespace {

struct CapturingSink final : dns::DnsEventSink {
  std::vector<common::SocketAddress> servers;
  std::vector<const policy::Policy*> policies;
  void onDnsEvent(const dns::DnsEvent& event) override {
    servers.push_back(event.server);
    policies.push_back(event.policy);
  }
};

// A query for `name` (A, IN), RFC 1035 section 4.1.
std::vector<uint8_t> queryFor(std::string_view name) {
  std::vector<uint8_t> wire = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
  size_t start = 0;
  while (start < name.size()) {
    const size_t dot = std::min(name.find('.', start), name.size());
    wire.push_back(static_cast<uint8_t>(dot - start));
    wire.insert(wire.end(), name.begin() + static_cast<std::ptrdiff_t>(start),
                name.begin() + static_cast<std::ptrdiff_t>(dot));
    start = dot + 1;
  }
  wire.insert(wire.end(), {0, 0, 1, 0, 1});
  return wire;
}

}  // namespace

// The service reports the listener that received each query (two UDP
// listeners on loopback) and the policy snapshot that decided it.
TEST_CASE("DNS service: events carry the receiving listener and the deciding policy", "[events]") {
  EventBase base(event_base_new());
  common::SnapshotHolder<policy::Policy> policy(provenancePolicy());
  dns::BindingTable bindings(64);
  CapturingSink sink;
  dns::DnsOptions options;
  options.listen = {{*common::parseIpAddress("127.0.0.1"), 0}, {*common::parseIpAddress("127.0.0.2"), 0}};
  dns::DnsService service(base.get(), options, policy, bindings, &sink);
  std::string error;
  REQUIRE(service.start(error));
  const auto& bound = service.boundAddresses();
  REQUIRE(bound.size() == 2);
  const auto wire = queryFor("evil.example.net");  // denied: no upstream needed
  for (size_t target : {size_t{1}, size_t{0}, size_t{1}}) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_storage to{};
    const socklen_t length = bound[target].toSockaddr(to);
    REQUIRE(::sendto(fd, wire.data(), wire.size(), 0, reinterpret_cast<sockaddr*>(&to), length) ==
            static_cast<ssize_t>(wire.size()));
    const size_t before = sink.servers.size();
    for (int i = 0; i < 200 && sink.servers.size() == before; ++i) {
      event_base_loop(base.get(), EVLOOP_NONBLOCK);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ::close(fd);
    REQUIRE(sink.servers.size() == before + 1);
    CHECK(sink.servers.back() == bound[target]);
    CHECK(sink.policies.back() == policy.load().get());
  }
  // Over TCP: the address the client connected to (the second listener),
  // not the first listener of its family.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  REQUIRE(fd >= 0);
  sockaddr_storage to{};
  const socklen_t length = bound[1].toSockaddr(to);
  const int connected = ::connect(fd, reinterpret_cast<sockaddr*>(&to), length);
  REQUIRE((connected == 0 || errno == EINPROGRESS));
  std::vector<uint8_t> framed = {static_cast<uint8_t>(wire.size() >> 8),
                                 static_cast<uint8_t>(wire.size() & 0xff)};
  framed.insert(framed.end(), wire.begin(), wire.end());
  const size_t before = sink.servers.size();
  bool sent = false;
  for (int i = 0; i < 200 && sink.servers.size() == before; ++i) {
    event_base_loop(base.get(), EVLOOP_NONBLOCK);
    if (!sent)
      sent = ::send(fd, framed.data(), framed.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(framed.size());
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::close(fd);
  REQUIRE(sink.servers.size() == before + 1);
  CHECK(sink.servers.back() == bound[1]);
}

TEST_CASE("event hub: a DNS event is wanted only by a log line, a counter or a watcher", "[events]") {
  using dns::DenyReason;
  using dns::DnsOutcome;
  EventBase base(event_base_new());
  daemon_main::EventHub hub(base.get());
  const common::LogLevel before = common::logLevel();
  common::setLogLevel(common::LogLevel::Warn);
  bool listening = false;
  hub.setFanout([](const observe::Event&, const observe::CapturedPacket*) {}, [&] { return listening; });
  // At warn, with no watcher and no counter: nobody.
  CHECK_FALSE(hub.wantsDnsEvent(DnsOutcome::Denied, DenyReason::NotAllowed, false));
  CHECK_FALSE(hub.wantsDnsEvent(DnsOutcome::CacheHit, DenyReason::None, false));
  // A counter without a filter wants every event; with the per-rule-set
  // filter, the events that name rule sets: answers and rebinding.
  hub.setCounterHook([](const observe::Event&, uint64_t) {});
  CHECK(hub.wantsDnsEvent(DnsOutcome::Denied, DenyReason::NotAllowed, false));
  hub.setCounterHook([](const observe::Event&, uint64_t) {},
                     [](DnsOutcome outcome, DenyReason reason, bool) {
                       return daemon_main::EventHub::namesRuleSets(outcome, reason);
                     });
  CHECK(hub.wantsDnsEvent(DnsOutcome::CacheHit, DenyReason::None, false));
  CHECK(hub.wantsDnsEvent(DnsOutcome::Allowed, DenyReason::None, false));
  CHECK(hub.wantsDnsEvent(DnsOutcome::Denied, DenyReason::Rebinding, false));
  CHECK_FALSE(hub.wantsDnsEvent(DnsOutcome::Denied, DenyReason::NotAllowed, false));
  // A watcher wants everything.
  listening = true;
  CHECK(hub.wantsDnsEvent(DnsOutcome::Denied, DenyReason::NotAllowed, false));
  CHECK(hub.wantsDnsEvent(DnsOutcome::Refused, DenyReason::None, false));
  listening = false;
  // Info logs denials and would-deny answers; debug everything.
  common::setLogLevel(common::LogLevel::Info);
  CHECK(hub.wantsDnsEvent(DnsOutcome::Denied, DenyReason::NotAllowed, false));
  CHECK(hub.wantsDnsEvent(DnsOutcome::Allowed, DenyReason::NotAllowed, true));
  CHECK_FALSE(hub.wantsDnsEvent(DnsOutcome::Refused, DenyReason::None, false));
  common::setLogLevel(common::LogLevel::Debug);
  CHECK(hub.wantsDnsEvent(DnsOutcome::Refused, DenyReason::None, false));
  common::setLogLevel(before);
}

namespace {

std::shared_ptr<const attribution::PodTable> podsOf(std::string_view pod) {
  return std::make_shared<const attribution::PodTable>(attribution::PodTable::build({
      {*common::parseIpAddress("10.77.0.2"), "team", std::string(pod), "Deployment/web", "web"},
      {*common::parseIpAddress("10.77.0.3"), "other", "db-0", "StatefulSet/db", ""},
  }));
}

}  // namespace

// Verdict events hold a reference into the stripe's table snapshot until
// they are drained: a map published in between (the address now another
// pod's) must not rename the events decided before it, nor leave them
// pointing into a freed table; events decided after it name the new pod.
TEST_CASE("event hub: a verdict names the pod of the map it was decided under", "[events][attribution]") {
  EventBase base(event_base_new());
  daemon_main::EventHubOptions options;
  options.logEvents = false;
  daemon_main::EventHub hub(base.get(), options);
  const auto policy = twoRuleSets();
  common::SnapshotHolder<attribution::PodTable> pods(podsOf("web-old"));
  hub.setPodTable(&pods);
  Collected fanout;
  std::vector<std::string> deniedNamespaces;
  hub.setCounterHook([&](const observe::Event& event, uint64_t) {
    if (event.verdict != observe::EventVerdict::Allow) deniedNamespaces.emplace_back(event.namespaceView());
  });
  bool listening = true;
  hub.setFanout(
      [&](const observe::Event& event, const observe::CapturedPacket*) { fanout.events.push_back(event); },
      [&] { return listening; });

  hub.onDecision(decision(*policy, {}));  // 10.77.0.2 under the old map
  pods.publish(podsOf("web-new"));        // the address went to a new pod
  hub.onDecision(decision(*policy, {}));
  auto unknown = decision(*policy, {});
  unknown.src = *common::parseIpAddress("10.77.0.9");
  hub.onDecision(unknown);
  hub.drain();
  pods.publish(podsOf("web-newer"));  // published after the drain: named at the next one
  auto denied = decision(*policy, {});
  denied.src = *common::parseIpAddress("::ffff:10.77.0.3");
  denied.decision.verdict = nfq::Verdict::Deny;
  hub.onDecision(denied);
  hub.onDecision(decision(*policy, {}));
  pods.publish(podsOf("web-newest"));  // twice between two drains
  hub.onDecision(decision(*policy, {}));
  hub.drain();

  REQUIRE(fanout.events.size() == 6);
  CHECK(fanout.events[0].podView() == "web-old");
  CHECK(fanout.events[0].namespaceView() == "team");
  CHECK(fanout.events[0].workloadView() == "Deployment/web");
  CHECK(fanout.events[0].serviceAccountView() == "web");
  CHECK(fanout.events[1].podView() == "web-new");
  CHECK_FALSE(fanout.events[2].client.known());
  CHECK(fanout.events[3].podView() == "db-0");
  CHECK(fanout.events[4].podView() == "web-newer");
  CHECK(fanout.events[5].podView() == "web-newest");
  // The counter hook gets the namespace of a denial without a watcher too.
  listening = false;
  hub.onDecision(denied);
  hub.drain();
  CHECK(deniedNamespaces == std::vector<std::string>{"other", "other"});
}

TEST_CASE("event hub: DNS and proxy events name the client's pod for their consumers",
          "[events][attribution]") {
  EventBase base(event_base_new());
  daemon_main::EventHubOptions options;
  options.logEvents = false;
  daemon_main::EventHub hub(base.get(), options);
  common::SnapshotHolder<attribution::PodTable> pods(podsOf("web-1"));
  hub.setPodTable(&pods);
  Collected fanout;
  hub.setFanout(
      [&](const observe::Event& event, const observe::CapturedPacket*) { fanout.events.push_back(event); });
  dns::DnsEvent query;
  query.client = {*common::parseIpAddress("10.77.0.2"), 5353};
  query.qname = "api.example.com.";
  query.outcome = dns::DnsOutcome::Allowed;
  hub.onDnsEvent(query);
  observe::Event proxy;
  proxy.kind = observe::EventKind::Proxy;
  proxy.src = *common::parseIpAddress("10.77.0.3");
  hub.onProxyEvent(proxy);
  proxy.src = *common::parseIpAddress("10.77.0.4");
  hub.onProxyEvent(proxy);
  REQUIRE(fanout.events.size() == 3);
  CHECK(fanout.events[0].podView() == "web-1");
  CHECK(fanout.events[1].podView() == "db-0");
  CHECK(fanout.events[1].namespaceView() == "other");
  CHECK_FALSE(fanout.events[2].client.known());
}

TEST_CASE("event hub: proxy events from the proxy's own loops arrive on drain, counted, with their pod",
          "[events][attribution]") {
  EventBase base(event_base_new());
  daemon_main::EventHubOptions options;
  options.logEvents = false;
  // A stripe per publishing thread (by its id, so two may share one): room
  // for all 9000 in any stripe, however late the first drain comes.
  options.capacity = 8 * 9000;
  daemon_main::EventHub hub(base.get(), options);
  common::SnapshotHolder<attribution::PodTable> pods(podsOf("web-1"));
  hub.setPodTable(&pods);
  size_t named = 0;
  size_t proxyKind = 0;
  hub.setFanout([&](const observe::Event& event, const observe::CapturedPacket*) {
    proxyKind += event.kind == observe::EventKind::Proxy ? 1 : 0;
    named += event.podView() == "web-1" ? 1 : 0;
  });
  // Three loops publishing at once, the loop draining meanwhile.
  std::vector<std::thread> loops;
  for (int loop = 0; loop < 3; ++loop) {
    loops.emplace_back([&] {
      observe::Event proxy;
      proxy.kind = observe::EventKind::Proxy;
      proxy.src = *common::parseIpAddress("10.77.0.2");
      for (int i = 0; i < 3000; ++i) hub.publishProxyEvent(proxy);
    });
  }
  for (int i = 0; i < 50; ++i) hub.drain();
  for (auto& loop : loops) loop.join();
  hub.drain();
  CHECK(hub.counters().dropped == 0);
  CHECK(proxyKind == 9000);
  CHECK(named == 9000);  // looked up on the publishing thread, as a worker's verdict
  CHECK(hub.counters().proxyEvents == 9000);
  CHECK(hub.counters().verdictEvents == 0);
}

// The verdict line's pod fields, from the table's texts in place (plain:
// no quoting check) or from the event, in both log styles.
TEST_CASE("event hub: a verdict's log line names the pod, from the table or the event",
          "[events][attribution]") {
  const auto policy = twoRuleSets();
  observe::Event event;
  daemon_main::EventHub::fromDecision(decision(*policy, {0}), event);
  const auto table = attribution::PodTable::build({
      {*common::parseIpAddress("10.77.0.2"), "team", "web-1", "Deployment/web", "web"},
      {*common::parseIpAddress("10.77.0.3"), "odd ns", "p", "", ""},
  });
  const attribution::PodNames plain = table.names(table.find(event.src));
  const attribution::PodNames odd = table.names(table.find(*common::parseIpAddress("10.77.0.3")));
  REQUIRE(plain.plain);
  REQUIRE_FALSE(odd.plain);
  common::BatchedLog batch(-1);
  const auto line = [&](const attribution::PodNames* pod) {
    daemon_main::EventHub::writeLogLine(event, &batch, pod);
    std::string text(batch.pending());
    batch.flush();
    return text;
  };
  const std::string fromTable = line(&plain);
  CHECK(fromTable.find(" namespace=team pod=web-1 workload=Deployment/web\n") != std::string::npos);
  CHECK(line(&odd).find(" namespace=\"odd ns\" pod=p\n") != std::string::npos);
  REQUIRE(event.client.assign("team", "web-1", "Deployment/web", "web"));
  const std::string fromEvent = line(nullptr);
  CHECK(fromEvent.substr(fromEvent.find(" src=")) == fromTable.substr(fromTable.find(" src=")));
  event.client = {};
  CHECK(line(nullptr).find("namespace=") == std::string::npos);
  common::setLogStyle(common::LogStyle::Json);
  const std::string json = line(&plain);
  common::setLogStyle(common::LogStyle::Logfmt);
  CHECK(json.find(R"("namespace":"team","pod":"web-1","workload":"Deployment/web"})") != std::string::npos);
}

// The event hub: conversions into observe::Event, the bounded rings and
// their drop counter, packet capture on demand, delivery on drain().
#include <catch2/catch.hpp>

#include <event2/event.h>

#include <cstring>
#include <thread>
#include <vector>

#include "common/c_handle.h"
#include "daemon/event_hub.h"
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
  CHECK(out.nameView() == "evil.example");
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

TEST_CASE("event hub: events reach the hook and the fan-out on drain, in order", "[events]") {
  EventBase base(event_base_new());
  daemon_main::EventHubOptions options;
  options.logEvents = false;
  daemon_main::EventHub hub(base.get(), options);
  const auto policy = twoRuleSets();
  Collected fanout;
  size_t hooked = 0;
  hub.setCounterHook([&](const observe::Event&) { ++hooked; });
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

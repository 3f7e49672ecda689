#include "daemon/event_hub.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <thread>

#include "common/log.h"
#include "common/strings.h"

namespace daemon_main {

namespace {

std::string endpoint(const common::IpAddress& ip, uint16_t port) {
  if (ip.family == common::IpFamily::V6) return "[" + ip.toString() + "]:" + std::to_string(port);
  return ip.toString() + ":" + std::to_string(port);
}

void appendBounded(observe::Event& event, std::string_view text) noexcept {
  const size_t room = event.ruleSets.size() - event.ruleSetsLength;
  const size_t n = std::min(room, text.size());
  std::memcpy(event.ruleSets.data() + event.ruleSetsLength, text.data(), n);
  event.ruleSetsLength = static_cast<uint16_t>(event.ruleSetsLength + n);
}

void copyName(observe::Event& event, std::string_view name) noexcept {
  const size_t n = std::min(name.size(), event.name.size());
  std::memcpy(event.name.data(), name.data(), n);
  event.nameLength = static_cast<uint8_t>(n);
}

// DNS provenance: the rule sets whose targets allow `name` on some port in
// use (on each port, those of the most specific rule kind, as connection
// events name them), each once, into event.ruleSets. Only for answers the
// policy allowed and a rebinding denial (the name was allowed; docs/rules.md
// "Every decision reports which rule set(s) allowed it"). One hash probe
// per label of the name, whatever the number of ports; no allocation.
void appendDnsRuleSets(observe::Event& out, const policy::Policy& policy, std::string_view name) noexcept {
  constexpr size_t kMaxDistinct = 64;
  std::array<uint32_t, kMaxDistinct> seen{};
  size_t seenCount = 0;
  bool full = false;
  const auto& sets = policy.ruleSets();
  policy.forEachAllowedPort(name, [&](uint16_t, const policy::NameMatch& match) noexcept {
    for (uint32_t index : match.ruleSets) {
      if (full || index >= sets.size() ||
          std::find(seen.begin(), seen.begin() + seenCount, index) != seen.begin() + seenCount)
        continue;
      // Room for this id and, after it, ",..." should the next not fit.
      const size_t separator = seenCount > 0 ? 1 : 0;
      if (seenCount == seen.size() ||
          out.ruleSetsLength + separator + sets[index].id.size() + 4 > out.ruleSets.size()) {
        appendBounded(out, separator != 0 ? ",..." : "...");
        full = true;
        return;
      }
      if (separator != 0) appendBounded(out, ",");
      seen[seenCount++] = index;
      appendBounded(out, sets[index].id);
    }
  });
}

timeval drainTimeval(std::chrono::milliseconds interval) noexcept {
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(interval).count();
  return timeval{static_cast<time_t>(micros / 1'000'000), static_cast<suseconds_t>(micros % 1'000'000)};
}

// The level of a DNS event's log line: denials (and audit's would-deny) at
// info, the rest at debug.
common::LogLevel dnsLogLevel(bool denied, bool audit) noexcept {
  return denied || audit ? common::LogLevel::Info : common::LogLevel::Debug;
}

}  // namespace

bool EventHub::namesRuleSets(dns::DnsOutcome outcome, dns::DenyReason reason) noexcept {
  return outcome == dns::DnsOutcome::Allowed || outcome == dns::DnsOutcome::CacheHit ||
         (outcome == dns::DnsOutcome::Denied && reason == dns::DenyReason::Rebinding);
}

std::string protocolName(uint8_t protocol) {
  switch (protocol) {
    case 6:
      return "tcp";
    case 17:
      return "udp";
    case 1:
      return "icmp";
    case 58:
      return "icmpv6";
    default:
      return std::to_string(protocol);
  }
}

EventHub::EventHub(event_base* base, EventHubOptions options)
    : options_(options), stripeCapacity_(std::max<size_t>(options.capacity / kStripes, 16)) {
  for (auto& stripe : stripes_) {
    stripe = std::make_unique<Stripe>();
    // Both buffers at full size now: the worker path only ever appends
    // within the reserved capacity.
    stripe->filling.reserve(stripeCapacity_);
    stripe->draining.reserve(stripeCapacity_);
  }
  timer_.reset(event_new(base, -1, options_.periodicDrain ? EV_PERSIST : 0, &EventHub::onTimer, this));
  if (timer_ && options_.periodicDrain) {
    const timeval interval = drainTimeval(options_.drainInterval);
    event_add(timer_.get(), &interval);
  }
}

void EventHub::scheduleDrain() {
  if (options_.periodicDrain || !timer_ || event_pending(timer_.get(), EV_TIMEOUT, nullptr) != 0) return;
  const timeval interval = drainTimeval(options_.drainInterval);
  event_add(timer_.get(), &interval);
}

EventHub::~EventHub() {
  drain();
}

void EventHub::fromDecision(const nfq::DecisionEvent& in, observe::Event& out) noexcept {
  out.kind = observe::EventKind::Verdict;
  out.time = in.time;
  out.src = in.src;
  out.dst = in.dst;
  out.srcPort = in.srcPort;
  out.dstPort = in.dstPort;
  out.protocol = in.protocol;
  out.queue = in.queue;
  const nfq::Decision& d = in.decision;
  switch (d.verdict) {
    case nfq::Verdict::Deny:
      out.verdict = observe::EventVerdict::Deny;
      break;
    case nfq::Verdict::AuditAllow:
      out.verdict = observe::EventVerdict::Audit;
      break;
    default:
      out.verdict = observe::EventVerdict::Allow;
      break;
  }
  out.reason = nfq::reasonName(d.reason);
  out.nameSource = d.nameLength > 0 ? nfq::nameSourceName(d.nameSource) : std::string_view();
  out.match =
      d.matchKind == policy::MatchKind::None ? std::string_view() : policy::matchKindName(d.matchKind);
  copyName(out, d.name());
  out.ruleSetsLength = 0;
  if (in.policy != nullptr) {
    const auto& sets = in.policy->ruleSets();
    bool first = true;
    for (uint32_t index : d.ruleSets) {
      if (index >= sets.size()) continue;
      if (!first) appendBounded(out, ",");
      first = false;
      if (out.ruleSetsLength + sets[index].id.size() + 4 > out.ruleSets.size()) {
        appendBounded(out, "...");
        break;
      }
      appendBounded(out, sets[index].id);
    }
  }
  out.dnsOutcome = {};
  out.qtype = out.rcode = out.answers = 0;
  out.addressCount = 0;
}

void EventHub::fromDns(const dns::DnsEvent& in, const common::SocketAddress* listener,
                       observe::Event& out) noexcept {
  out.kind = observe::EventKind::Dns;
  out.time = in.time;
  out.src = in.client.ip;
  out.srcPort = in.client.port;
  if (listener != nullptr) {
    out.dst = listener->ip;
    out.dstPort = listener->port;
  } else {
    out.dst = common::IpAddress{};
    out.dst.family = in.client.ip.family;
    out.dstPort = 53;
  }
  out.protocol = in.tcp ? 6 : 17;
  out.queue = 0;
  // Only a policy denial is a "deny"; protocol-level refusals (REFUSED,
  // NOTIMP, FORMERR) keep their outcome and rcode but are not decisions.
  // Audit mode: answered, but enforce mode would have denied it.
  if (in.audit) {
    out.verdict = observe::EventVerdict::Audit;
  } else {
    out.verdict =
        in.outcome == dns::DnsOutcome::Denied ? observe::EventVerdict::Deny : observe::EventVerdict::Allow;
  }
  out.reason = in.reason == dns::DenyReason::None ? std::string_view() : dns::denyReasonName(in.reason);
  out.nameSource = "dns";
  out.match = {};
  std::string_view name = in.qname;
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  copyName(out, name);  // as asked: 0x20 case kept (matching ignores case)
  out.ruleSetsLength = 0;
  if (in.policy != nullptr && EventHub::namesRuleSets(in.outcome, in.reason))
    appendDnsRuleSets(out, *in.policy, name);
  out.dnsOutcome = dns::dnsOutcomeName(in.outcome);
  out.qtype = in.qtype;
  out.rcode = in.rcode;
  out.answers = in.answers;
  out.addressCount = 0;
  for (const dns::CachedBinding& binding : in.addresses) {
    if (out.addressCount == out.addresses.size()) break;
    out.addresses[out.addressCount++] = binding.ip;
  }
}

EventHub::Slot* EventHub::takeSlot(Stripe& stripe, const common::IpAddress& src) noexcept {
  if (stripe.filling.size() >= stripeCapacity_) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  if (stripe.filling.empty()) stripe.pending.store(true, std::memory_order_relaxed);
  Slot& slot = stripe.filling.emplace_back();  // within the reserved capacity: no allocation
  slot.pod = {};
  if (podHolder_ != nullptr) {
    if (podHolder_->generation() != stripe.podsGeneration) refreshPods(stripe);
    slot.pod = stripe.pods->find(src);
  }
  slot.hasPacket = false;
  return &slot;
}

void EventHub::publishProxyEvent(const observe::Event& in) noexcept {
  // Each proxy loop keeps to one stripe (its thread's), as a worker does.
  Stripe& stripe = stripeOf(std::hash<std::thread::id>{}(std::this_thread::get_id()));
  const std::lock_guard lock(stripe.mutex);
  Slot* slot = takeSlot(stripe, in.src);
  if (slot != nullptr) slot->event = in;
}

void EventHub::onDecision(const nfq::DecisionEvent& in) noexcept {
  Stripe& stripe = stripeOf(in.queue);
  const std::lock_guard lock(stripe.mutex);
  Slot* slot = takeSlot(stripe, in.src);
  if (slot == nullptr) return;
  fromDecision(in, slot->event);
  if (!capture_.load(std::memory_order_relaxed) || in.packet.empty()) return;
  if (stripe.fillingPackets.size() >= stripe.packetCapacity) {
    packetsDropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  observe::CapturedPacket& packet = stripe.fillingPackets.emplace_back();
  const size_t kept = std::min(in.packet.size(), packet.bytes.size());
  std::memcpy(packet.bytes.data(), in.packet.data(), kept);
  packet.length = static_cast<uint16_t>(kept);
  packet.originalLength = static_cast<uint16_t>(std::min<size_t>(in.packet.size(), UINT16_MAX));
  slot->hasPacket = true;
}

void EventHub::refreshPods(Stripe& stripe) noexcept {
  for (Slot& slot : stripe.filling) {
    if (!slot.pod) continue;
    stripe.pods->copyTo(slot.pod, slot.event.client);
    slot.pod = {};
  }
  stripe.podsGeneration = podHolder_->generation();
  stripe.pods = podHolder_->load();
}

bool EventHub::clientWanted(const observe::Event& event) const {
  return (counterHook_ && event.verdict != observe::EventVerdict::Allow) ||
         (fanout_ && (!fanoutListening_ || fanoutListening_()));
}

void EventHub::onDnsEvent(const dns::DnsEvent& in) {
  // The address that received it when the service says (port 0: unknown).
  const common::SocketAddress* listener = in.server.port != 0 ? &in.server : nullptr;
  for (const auto& address : dnsListeners_) {
    if (listener != nullptr) break;
    if (address.ip.family == in.client.ip.family) {
      listener = &address;
      break;
    }
  }
  observe::Event event;
  fromDns(in, listener, event);
  // The DNS log line names no pod: only the counter and watchers need it.
  if (loopPods_ && clientWanted(event)) loopPods_->get().lookup(event.src, event.client);
  ++dnsEvents_;
  deliver(event, nullptr);
}

void EventHub::onDnsCacheHits(std::string_view name, const policy::Policy& policy, uint64_t hits) {
  if (!counterHook_ || hits == 0) return;
  dns::DnsEvent in;
  in.time = std::chrono::system_clock::now();
  in.qname = name;
  in.outcome = dns::DnsOutcome::CacheHit;
  in.policy = &policy;
  observe::Event event;
  fromDns(in, nullptr, event);
  counterHook_(event, hits);
}

void EventHub::setPodTable(const common::SnapshotHolder<attribution::PodTable>* pods) {
  podHolder_ = pods;
  for (auto& stripe : stripes_) {
    const std::lock_guard lock(stripe->mutex);
    stripe->podsGeneration = pods != nullptr ? pods->generation() : 0;
    stripe->pods = pods != nullptr ? pods->load() : nullptr;
  }
  loopPods_ =
      pods != nullptr ? std::make_unique<common::SnapshotReader<attribution::PodTable>>(*pods) : nullptr;
}

void EventHub::setCounterHook(CounterHook hook, const DnsEventFilter& counts) {
  counterHook_ = std::move(hook);
  for (size_t outcome = 0; outcome < kDnsOutcomes; ++outcome) {
    for (size_t reason = 0; reason < dns::kDenyReasonCount; ++reason) {
      for (const bool audit : {false, true}) {
        const auto o = static_cast<dns::DnsOutcome>(outcome);
        const auto r = static_cast<dns::DenyReason>(reason);
        counterWants_[counterIndex(o, r, audit)] = counterHook_ && (!counts || counts(o, r, audit));
      }
    }
  }
}

bool EventHub::wantsDnsEvent(dns::DnsOutcome outcome, dns::DenyReason reason, bool audit) const noexcept {
  // The counter first: it wants most answers when it wants any.
  const size_t index = counterIndex(outcome, reason, audit);
  if (counterHook_ && (index >= counterWants_.size() || counterWants_[index])) return true;
  if (options_.logEvents && dnsLogLevel(outcome == dns::DnsOutcome::Denied, audit) >= common::logLevel()) {
    return true;
  }
  return fanout_ && (!fanoutListening_ || fanoutListening_());
}

void EventHub::onProxyEvent(const observe::Event& in) {
  ++proxyEvents_;
  // The client pod, as for DNS events (the proxy knows only the address).
  const attribution::PodTable* pods = loopPods_ ? &loopPods_->get() : nullptr;
  const attribution::PodRef pod = pods != nullptr ? pods->find(in.src) : attribution::PodRef{};
  if (!pod) {
    deliver(in, nullptr);
    return;
  }
  const attribution::PodNames names = pods->names(pod);
  if (!clientWanted(in)) {
    deliver(in, nullptr, &names);
    return;
  }
  observe::Event event = in;  // a consumer reads event.client
  pods->copyTo(pod, event.client);
  deliver(event, nullptr, &names);
}

void EventHub::setCapturePackets(bool on) {
  if (on) {
    const size_t perStripe = std::max<size_t>(options_.packetCapacity / kStripes, 4);
    for (auto& stripe : stripes_) {
      if (stripe->packetCapacity != 0) continue;
      // Allocated here, on the loop; the worker only appends within it.
      std::vector<observe::CapturedPacket> filling;
      filling.reserve(perStripe);
      stripe->drainingPackets.reserve(perStripe);
      const std::lock_guard lock(stripe->mutex);
      filling.swap(stripe->fillingPackets);
      stripe->packetCapacity = perStripe;
    }
  }
  capture_.store(on, std::memory_order_relaxed);
}

void EventHub::onTimer(evutil_socket_t, short, void* arg) {
  static_cast<EventHub*>(arg)->drain();
}

void EventHub::drain() {
  for (auto& stripePtr : stripes_) {
    Stripe& stripe = *stripePtr;
    // A stale false only delays the stripe's events to the next drain.
    if (!stripe.pending.load(std::memory_order_relaxed)) continue;
    {
      const std::lock_guard lock(stripe.mutex);
      stripe.pending.store(false, std::memory_order_relaxed);
      if (stripe.filling.empty()) continue;
      // Both keep their capacity: swapping never allocates.
      stripe.filling.swap(stripe.draining);
      stripe.fillingPackets.swap(stripe.drainingPackets);
      if (stripe.drainingPods != stripe.pods) stripe.drainingPods = stripe.pods;
    }
    size_t nextPacket = 0;
    for (Slot& slot : stripe.draining) {
      const observe::CapturedPacket* packet = nullptr;
      if (slot.hasPacket && nextPacket < stripe.drainingPackets.size()) {
        packet = &stripe.drainingPackets[nextPacket++];
        ++packetsCaptured_;
      }
      // Verdicts, and the proxy's decisions from its own loops.
      ++(slot.event.kind == observe::EventKind::Proxy ? proxyEvents_ : verdictEvents_);
      if (!slot.pod) {
        deliver(slot.event, packet);
        continue;
      }
      const attribution::PodNames names = stripe.drainingPods->names(slot.pod);
      if (clientWanted(slot.event)) stripe.drainingPods->copyTo(slot.pod, slot.event.client);
      deliver(slot.event, packet, &names);
    }
    stripe.draining.clear();
    stripe.drainingPackets.clear();
  }
  const uint64_t dropped = dropped_.load(std::memory_order_relaxed);
  if (dropped > droppedLogged_) {
    common::LogLine(common::LogLevel::Warn, "verdict.events_dropped")
        .field("count", dropped - droppedLogged_);
    droppedLogged_ = dropped;
  }
  eventLog_.flush();
}

void EventHub::deliver(const observe::Event& event, const observe::CapturedPacket* packet,
                       const attribution::PodNames* pod) {
  if (options_.logEvents) {
    if (event.kind == observe::EventKind::Dns) {
      logDns(event);
    } else {
      writeLogLine(event, &eventLog_, pod);
      scheduleDrain();
    }
  }
  if (counterHook_) counterHook_(event, 1);
  if (fanout_) fanout_(event, packet);
}

void EventHub::logDns(const observe::Event& event) {
  // The levels of writeLogLine: denials (and audit's would-deny) at info,
  // the rest at debug.
  const common::LogLevel level = dnsLogLevel(event.dnsOutcome == dns::dnsOutcomeName(dns::DnsOutcome::Denied),
                                             event.verdict == observe::EventVerdict::Audit);
  if (level < common::logLevel()) return;
  dns::QueryLogLine line;
  line.time = event.time;
  line.level = level;
  line.client = common::SocketAddress{event.src, event.srcPort};
  line.name = event.nameView();
  line.qtype = event.qtype;
  line.outcome = event.dnsOutcome;
  line.rcode = event.rcode;
  line.answers = event.answers;
  line.reason = event.reason;
  line.audit = event.verdict == observe::EventVerdict::Audit;
  queryLog_.append(line);
  scheduleDrain();
}

EventHubCounters EventHub::counters() const noexcept {
  EventHubCounters c;
  c.verdictEvents = verdictEvents_;
  c.dnsEvents = dnsEvents_;
  c.proxyEvents = proxyEvents_;
  c.dropped = dropped_.load(std::memory_order_relaxed);
  c.packetsCaptured = packetsCaptured_;
  c.packetsDropped = packetsDropped_.load(std::memory_order_relaxed);
  return c;
}

void EventHub::writeLogLine(const observe::Event& event, common::BatchedLog* batch,
                            const attribution::PodNames* pod) {
  if (event.kind == observe::EventKind::Proxy) {
    // One line per proxy request (the access log): which client, which
    // target, the verdict and why.
    if (common::LogLevel::Info < common::logLevel()) return;
    // Refused at accept (proxy.clients, a bad PROXY header): no request,
    // and a port scan makes thousands; the proxy logs those itself, a
    // line a second at most (proxy.client_refused).
    if (event.nameSource == "client") return;
    const bool audit = event.verdict == observe::EventVerdict::Audit;
    common::LogLine line = batch != nullptr ? common::LogLine(common::LogLevel::Info, "proxy.request", *batch)
                                            : common::LogLine(common::LogLevel::Info, "proxy.request");
    line.field("client", endpoint(event.src, event.srcPort))
        .field("target", event.nameLength > 0
                             ? std::string(event.nameView()) + ":" + std::to_string(event.dstPort)
                             : endpoint(event.dst, event.dstPort))
        .field("dst", endpoint(event.dst, event.dstPort))
        .field("method", event.nameSource == "connect" ? "CONNECT" : "http")
        .field("verdict", audit                                           ? std::string_view("audit")
                          : event.verdict == observe::EventVerdict::Allow ? std::string_view("allow")
                                                                          : std::string_view("deny"));
    if (audit) line.field("would", "deny");
    line.field("reason", event.reason);
    if (event.ruleSetsLength > 0) line.field("rulesets", event.ruleSetsView()).field("match", event.match);
    return;
  }
  if (event.kind == observe::EventKind::Dns) {
    // Denials are what operators look for; everything else is debug noise
    // at thousands of queries per second (the control socket streams them
    // all).
    const bool audit = event.verdict == observe::EventVerdict::Audit;
    const bool denied = event.dnsOutcome == dns::dnsOutcomeName(dns::DnsOutcome::Denied) || audit;
    const common::LogLevel level = denied ? common::LogLevel::Info : common::LogLevel::Debug;
    if (level < common::logLevel()) return;
    common::LogLine line(level, "dns.query");
    line.field("client", common::SocketAddress{event.src, event.srcPort}.toString())
        .field("name", event.nameView())
        .field("qtype", static_cast<unsigned>(event.qtype))
        .field("outcome", event.dnsOutcome)
        .field("rcode", static_cast<unsigned>(event.rcode))
        .field("answers", static_cast<unsigned>(event.answers));
    if (!event.reason.empty()) line.field("reason", event.reason);
    if (audit) line.field("verdict", "audit").field("would", "deny");
    return;
  }
  if (common::LogLevel::Info < common::logLevel()) return;
  const bool audit = event.verdict == observe::EventVerdict::Audit;
  std::string_view verdict = "audit";
  if (!audit) {
    verdict = nfq::verdictName(event.verdict == observe::EventVerdict::Allow ? nfq::Verdict::Allow
                                                                             : nfq::Verdict::Deny);
  }
  common::LogLine line = batch != nullptr ? common::LogLine(common::LogLevel::Info, "verdict", *batch)
                                          : common::LogLine(common::LogLevel::Info, "verdict");
  line.field("src", endpoint(event.src, event.srcPort))
      .field("dst", endpoint(event.dst, event.dstPort))
      .field("proto", protocolName(event.protocol))
      .field("verdict", verdict);
  // An audit verdict is a flow enforce mode would have denied.
  if (audit) line.field("would", nfq::verdictName(nfq::Verdict::Deny));
  line.field("reason", event.reason);
  if (event.nameLength > 0) {
    line.field("name", event.nameView())
        .field("name_from", event.nameSource.empty() ? std::string_view("none") : event.nameSource);
  }
  if (event.ruleSetsLength > 0) {
    line.field("rulesets", event.ruleSetsView()).field("match", event.match.empty() ? "none" : event.match);
  }
  // Last, so that the fields above keep their places for whoever parses them.
  attribution::PodNames names;
  if (pod != nullptr) {
    names = *pod;
  } else {
    names.ns = event.namespaceView();
    names.pod = event.podView();
    names.workload = event.workloadView();
  }
  if (!names.ns.empty() || !names.pod.empty()) {
    // Names the table found plain need no quoting check.
    if (names.plain) {
      if (names.workload.empty()) {
        line.plainFields({{"namespace", names.ns}, {"pod", names.pod}});
      } else {
        line.plainFields({{"namespace", names.ns}, {"pod", names.pod}, {"workload", names.workload}});
      }
    } else {
      line.field("namespace", names.ns).field("pod", names.pod);
      if (!names.workload.empty()) line.field("workload", names.workload);
    }
  }
}

}  // namespace daemon_main

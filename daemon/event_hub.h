// Every decision is an event (docs/architecture.md). The hub collects them from
// the NFQUEUE workers (onDecision, worker threads), the DNS service
// (onDnsEvent, event loop) and the proxy (onProxyEvent on the event loop, or
// publishProxyEvent from the proxy's own loop threads) as observe::Event
// values and, on the event loop,
// hands each one to its consumers:
//   1. the structured log (event=verdict / event=dns.query lines, the keys
//      tests and operators grep);
//   2. a counter hook (per-rule-set hit counts for /metrics), which also
//      gets the DNS service's lazily counted cache hits (onDnsCacheHits:
//      one event standing for many answers);
//   3. a fan-out (the control socket's `watch` clients).
//
// Attribution (setPodTable): a verdict event is looked up on its worker and
// carries a reference into the pod table snapshot of its stripe (no text
// copied on the worker); DNS and proxy events look up on the loop. The log
// line reads the pod's texts in place; they are copied into the event's
// `client` only for a consumer that reads it (a listening fan-out, the
// counter hook for a decision that is not an allow). A stripe's snapshot
// is kept alive while its drained events are delivered; when a new map is
// published, the stripe's pending references are copied out of the old
// one first, so no event is ever named from another snapshot than the one
// its worker looked up in.
//
// The worker path copies the decision into a preallocated ring and never
// waits for the loop or allocates: a full ring drops the event and counts
// it. Each worker writes into its own stripe (chosen by queue number), so
// workers do not contend with each other; the loop swaps a stripe's filled
// buffer for an empty one under that stripe's lock (a pointer swap), then
// processes the events without any lock held.
//
// The deciding packet (for `egressctl watch -w`) is copied only while
// setCapturePackets(true), into a separate, smaller ring: the event still
// goes through when that ring is full, without its packet.
//
// Thread-safety: onDecision() and publishProxyEvent() from any thread;
// everything else on the event-loop thread. Ownership: borrows the event_base (must outlive it).
#pragma once

#include <event2/event.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "attribution/pod_table.h"
#include "common/batched_log.h"
#include "common/c_handle.h"
#include "common/snapshot.h"
#include "common/socket_address.h"
#include "dns/query_log.h"
#include "dns/service.h"
#include "nfq/queue_worker.h"
#include "observe/event.h"

namespace daemon_main {

struct EventHubOptions {
  size_t capacity = 16384;       // events buffered between two drains, all stripes together
  size_t packetCapacity = 2048;  // captured packets buffered, all stripes together
  std::chrono::milliseconds drainInterval{5};
  bool logEvents = true;  // write the structured log lines
  // true: drain every drainInterval (the NFQUEUE workers' rings need it).
  // false (no worker publishes, e.g. NFQUEUE off): the timer is armed only
  // when a log line waits in the batch, so an idle daemon does not wake
  // up 200 times a second for nothing; onDecision() must then not be used.
  bool periodicDrain = true;
};

struct EventHubCounters {
  uint64_t verdictEvents = 0;  // delivered to consumers
  uint64_t dnsEvents = 0;      // delivered to consumers
  uint64_t proxyEvents = 0;    // delivered to consumers
  uint64_t dropped = 0;        // verdict (and threaded proxy) events lost to a full ring
  uint64_t packetsCaptured = 0;
  uint64_t packetsDropped = 0;  // events that went out without their packet (ring full)
};

class EventHub final : public nfq::EventSink, public dns::DnsEventSink {
 public:
  using Consumer = std::function<void(const observe::Event& event, const observe::CapturedPacket* packet)>;

  explicit EventHub(event_base* base, EventHubOptions options = {});
  ~EventHub() override;
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;

  // Worker threads.
  void onDecision(const nfq::DecisionEvent& event) noexcept override;
  // Event loop (the DNS service's thread).
  void onDnsEvent(const dns::DnsEvent& event) override;
  // True when the event would be logged at the current level, counted (it
  // names rule sets and a counter hook is set) or sent to a listening
  // fan-out.
  bool wantsDnsEvent(dns::DnsOutcome outcome, dns::DenyReason reason, bool audit) const noexcept override;
  // Event loop: `hits` cache hits for `name` that were not events; the
  // counter hook gets one cache-hit event (no client, no pod; the rule sets
  // allowing `name` under `policy`) with times = hits. Nothing is logged
  // or sent to watchers (they would have wanted the events one by one).
  void onDnsCacheHits(std::string_view name, const policy::Policy& policy, uint64_t hits) override;

  // Event loop: a proxy request's decision (proxy/server.h), already an
  // observe::Event of kind Proxy.
  void onProxyEvent(const observe::Event& event);
  // Any thread (the proxy's own loops, proxy.threads > 1): the same
  // decision, taken into a stripe's ring as the workers' are (no
  // allocation, never waits for the loop; a full ring drops it and counts
  // it in `dropped`). Needs periodicDrain.
  void publishProxyEvent(const observe::Event& event) noexcept;

  // Event loop, before or while running.
  // The hook reads the event's client pod only for decisions that are not
  // an allow (per-namespace denials); for an allow it may be empty.
  // `counts` tells which DNS events the hook counts anything for (outcome,
  // reason, audit), so that wantsDnsEvent() can skip the others; not given:
  // every event. Every counter the hook feeds must be reflected in it,
  // except cache hits that are not audit: those the hook also gets from
  // onDnsCacheHits(), so the filter may leave them out.
  // The hook's `times`: how many decisions the event stands for (1, or
  // the count of onDnsCacheHits()).
  using DnsEventFilter = std::function<bool(dns::DnsOutcome, dns::DenyReason, bool)>;
  using CounterHook = std::function<void(const observe::Event& event, uint64_t times)>;
  void setCounterHook(CounterHook hook, const DnsEventFilter& counts = {});
  // The DNS events that name the rule sets allowing their name (answers and
  // a rebinding denial): those the per-rule-set counter counts.
  static bool namesRuleSets(dns::DnsOutcome outcome, dns::DenyReason reason) noexcept;
  // `listening` tells whether the fan-out has anyone to send to now; not
  // given: always (wantsDnsEvent() then never skips an event).
  void setFanout(Consumer fanout, std::function<bool()> listening = {}) {
    fanout_ = std::move(fanout);
    fanoutListening_ = std::move(listening);
  }
  // The DNS listen addresses: a DNS event's destination is the first one of
  // the client's family.
  void setDnsListeners(std::vector<common::SocketAddress> listeners) { dnsListeners_ = std::move(listeners); }
  // Attribution: every event then names the pod of its client address
  // (src of a verdict, the client of a DNS query). Before the workers start;
  // the holder must outlive the hub.
  void setPodTable(const common::SnapshotHolder<attribution::PodTable>* pods);
  // Starts or stops copying the deciding packets (allocates the packet
  // rings on first use, off the worker path).
  void setCapturePackets(bool on);

  // Delivers whatever is queued now (the timer calls it; also on shutdown).
  void drain();
  EventHubCounters counters() const noexcept;

  // Pure conversions (tested on their own).
  static void fromDecision(const nfq::DecisionEvent& in, observe::Event& out) noexcept;
  static void fromDns(const dns::DnsEvent& in, const common::SocketAddress* listener,
                      observe::Event& out) noexcept;
  // The structured log line of an event, as egressd has always written it.
  // Into `batch` when given (written with the rest of its batch), else
  // straight to stderr. The pod's texts from `pod` when given, else from
  // event.client.
  static void writeLogLine(const observe::Event& event, common::BatchedLog* batch = nullptr,
                           const attribution::PodNames* pod = nullptr);

 private:
  struct Slot {
    observe::Event event;
    attribution::PodRef pod;  // into the stripe's `pods` (filling) or `drainingPods`
    bool hasPacket = false;
  };
  // One per worker (queue number modulo the stripe count). `filling` is
  // what workers append to; drain() swaps it with `draining`.
  struct Stripe {
    std::mutex mutex;
    std::vector<Slot> filling;
    // Set under `mutex` with the first event after a drain; drain() reads
    // it without the lock and skips a stripe that has nothing, so an idle
    // drain costs eight loads instead of eight lock/unlock pairs (the timer
    // runs every drainInterval, also while no flow is judged).
    std::atomic<bool> pending{false};
    std::vector<observe::CapturedPacket> fillingPackets;
    size_t packetCapacity = 0;  // 0 until capture was first enabled
    // The pod table as this stripe's workers see it (read under `mutex`,
    // which they hold anyway): a generation check per event, the holder's
    // lock only after a new map was published.
    std::shared_ptr<const attribution::PodTable> pods;
    uint64_t podsGeneration = 0;
    // Event loop only.
    std::vector<Slot> draining;
    std::shared_ptr<const attribution::PodTable> drainingPods;  // what `draining`'s references point into
    std::vector<observe::CapturedPacket> drainingPackets;
  };
  static constexpr size_t kStripes = 8;

  static void onTimer(evutil_socket_t, short, void* arg);
  // Any thread: the stripe a publishing thread writes into (its queue
  // number for a worker).
  Stripe& stripeOf(size_t key) noexcept { return *stripes_[key % kStripes]; }
  // Under the stripe's lock: a slot within the reserved capacity (its pod
  // looked up), or null when the ring is full (dropped and counted).
  Slot* takeSlot(Stripe& stripe, const common::IpAddress& src) noexcept;
  // Worker, under the stripe's lock: a new map was published. Copies the
  // texts of the references `filling` holds out of the old table, then
  // takes the new one.
  void refreshPods(Stripe& stripe) noexcept;
  // Whether a consumer other than the log line reads event.client.
  bool clientWanted(const observe::Event& event) const;
  // `pod`: the texts the log line writes (event.client when null); the
  // caller has filled event.client if clientWanted().
  void deliver(const observe::Event& event, const observe::CapturedPacket* packet,
               const attribution::PodNames* pod = nullptr);
  // DNS events' log lines: queued into eventLog_ through queryLog_ (same
  // format as writeLogLine, without its temporary strings).
  void logDns(const observe::Event& event);
  // Without periodicDrain: arms the timer once for the line just batched.
  void scheduleDrain();

  EventHubOptions options_;
  size_t stripeCapacity_;
  std::array<std::unique_ptr<Stripe>, kStripes> stripes_;
  std::atomic<bool> capture_{false};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> packetsDropped_{0};
  uint64_t droppedLogged_ = 0;
  uint64_t verdictEvents_ = 0;
  uint64_t dnsEvents_ = 0;
  uint64_t proxyEvents_ = 0;
  uint64_t packetsCaptured_ = 0;
  CounterHook counterHook_;
  // The filter's answer for every (outcome, reason, audit), asked once in
  // setCounterHook(): wantsDnsEvent() runs for every query.
  static constexpr size_t kDnsOutcomes = static_cast<size_t>(dns::DnsOutcome::Refused) + 1;
  static size_t counterIndex(dns::DnsOutcome outcome, dns::DenyReason reason, bool audit) noexcept {
    return (static_cast<size_t>(outcome) * dns::kDenyReasonCount + static_cast<size_t>(reason)) * 2 +
           (audit ? 1 : 0);
  }
  std::array<bool, kDnsOutcomes * dns::kDenyReasonCount * 2> counterWants_{};
  Consumer fanout_;
  std::function<bool()> fanoutListening_;
  std::vector<common::SocketAddress> dnsListeners_;
  const common::SnapshotHolder<attribution::PodTable>* podHolder_ = nullptr;  // workers read it
  std::unique_ptr<common::SnapshotReader<attribution::PodTable>> loopPods_;   // DNS events
  common::CHandle<event, event_free> timer_;
  // Every event's log line goes into this batch (stderr, where
  // common::LogLine writes) and out with one write(2) per drain(), instead
  // of one per verdict or query.
  common::BatchedLog eventLog_{STDERR_FILENO};
  dns::QueryLog queryLog_{eventLog_};
};

// "tcp", "udp", "icmp", "icmpv6" or the number.
std::string protocolName(uint8_t protocol);

}  // namespace daemon_main

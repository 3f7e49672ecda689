// One NFQUEUE reader: a thread that receives the packets the EGRESSD chain
// queues, decides them with decide(), holds incomplete first payloads in
// its FlowTable, and sends verdicts back in batches (several verdict
// messages per sendmsg).
//
// Verdicts (with the chain of nfq/ruleset.h, `repeatVerdicts`): every final
// verdict is NF_REPEAT with the packet mark set to ALLOW or DENY (bits
// outside MarkScheme::mask kept), so the chain saves it into the connection
// mark — later packets never leave the kernel — and rejects denied TCP with
// a reset (the client fails at once); a connection denied after its
// handshake is also reset towards the server (raw socket, nfq/tcp_reset.h).
// Pass: NF_REPEAT with PASS. Without
// the chain (`repeatVerdicts = false`): NF_ACCEPT with the ALLOW mark, and
// NF_DROP.
// Held flows (nfq/flow_table.h): a client's retransmission of bytes
// already held, byte for byte, is passed without a connection mark (the
// server acknowledges them and the client sends the rest, which is still
// queued and judged); anything else while held is dropped. Packets queued
// behind a final decision, before the chain saved the connection mark, get
// the same verdict again from a small table of recent verdicts
// (nfq/recent_verdicts.h; TCP: denials only), without a second event.
// Fail-closed: the queue is bound without NFQA_CFG_F_FAIL_OPEN, and the
// chain has no --queue-bypass; when this process dies the kernel drops
// what it would have queued.
//
// Ownership: the worker owns its netlink socket (std::unique_ptr with
// mnl_socket_close) and its thread; policy and bindings are borrowed and
// must outlive it. Thread-safety: start/stop from one controlling thread;
// stats(), flowStats() and counters() from any thread (relaxed atomics).
// Failure: start() throws std::runtime_error when the queue cannot be bound
// (a start-up error); receive errors are counted and the loop continues.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "common/lazy_array.h"
#include "common/snapshot.h"
#include "nfq/flow_table.h"
#include "nfq/insertion_guard.h"
#include "nfq/kernel_guard.h"
#include "nfq/kernel_verdict.h"
#include "nfq/packet.h"
#include "nfq/recent_verdicts.h"
#include "nfq/ruleset.h"
#include "nfq/tcp_reset.h"
#include "nfq/verdict.h"
#include "policy/policy.h"

struct mnl_socket;

namespace nfq {

// A final decision, for the event log and the control socket's ring.
struct DecisionEvent {
  std::chrono::system_clock::time_point time;
  uint16_t queue = 0;
  common::IpAddress src;
  common::IpAddress dst;
  uint16_t srcPort = 0;
  uint16_t dstPort = 0;
  uint8_t protocol = 0;
  Decision decision;                       // name, source, verdict, reason, rule sets
  const policy::Policy* policy = nullptr;  // resolves decision.ruleSets; valid during the call
  DecodeError decodeError = DecodeError::Ok;
  // The deciding packet, IP header first (empty when no packet decided it,
  // e.g. a hold timeout); valid during the call (watch -w captures it).
  std::span<const uint8_t> packet;
};

class EventSink {
 public:
  // Called on the worker thread; must not block (copy into a ring).
  virtual void onDecision(const DecisionEvent& event) noexcept = 0;

 protected:
  ~EventSink() = default;
};

struct QueueWorkerOptions {
  uint16_t queue = 0;
  uint32_t queueMaxlen = 4096;
  // Bytes of each packet copied to user space. Segments are at most one MTU
  // (GSO packets are segmented before queueing: NFQA_CFG_F_GSO is not set);
  // the parsers need whole first-payload segments, so copy all of it.
  uint32_t copyRange = 0xffff;
  FlowTableOptions flows;
  DecideOptions decide;  // audit, strictBinding...; namePorts is filled in
  MarkScheme marks;
  bool repeatVerdicts = true;    // egressd's chain is installed (see above)
  size_t recentVerdicts = 4096;  // entries of the recent-verdict table
  std::chrono::nanoseconds recentLifetime = std::chrono::seconds(3);
  // The insertion guard (nfq/insertion_guard.h, docs/nfq.md "Insertion"):
  // an allow decided on a TCP first payload becomes final only when the
  // server acknowledges the judged bytes, which must start at the
  // connection's first byte. Needs the chain's reply rules
  // (RulesetOptions::confirmFirstPayload) and repeatVerdicts.
  bool confirmFirstPayload = false;
  // An allow the server has not confirmed by then is withdrawn (deny
  // `unconfirmed`, both ends reset).
  std::chrono::nanoseconds confirmTimeout = std::chrono::seconds(5);
  size_t streamStarts = 65536;  // connections between SYN-ACK and first payload
  // A client that waits longer than this after the handshake before its
  // first byte is denied (`stream_start_unknown`).
  std::chrono::nanoseconds streamStartLifetime = std::chrono::seconds(300);
  // The kernel guard (nfq/kernel_guard.h; borrowed, must outlive the
  // worker; null: off): where the chain's programs recorded stream starts
  // and server confirmations. Its rules must be in the chain
  // (RulesetOptions::kernelGuardDir). The worker reads a start when it
  // judges a first payload, writes what the server must acknowledge when
  // it allows provisionally, and looks for the kernel's confirmation every
  // kernelCheckInterval (and before it would withdraw the allow).
  const KernelGuard* kernelGuard = nullptr;
  std::chrono::nanoseconds kernelCheckInterval = std::chrono::milliseconds(10);
  // The kernel verdict (nfq/kernel_verdict.h; borrowed, must outlive the
  // worker; null: off; needs kernelGuard): first payloads the chain's
  // program allowed. The worker drains its ring before every queued
  // packet with payload and when the ring is readable (then not again
  // before kernelCheckInterval: batched, and no timer while idle), and
  // adopts each record as its own provisional allow: the same decide() and
  // event, the judged bytes in the confirm table (check 2), the kernel
  // confirm check. A record user space would not allow is withdrawn (both
  // ends reset) and counted. It renews the program's consumer deadline
  // (consumerLease ahead) while it runs.
  KernelVerdict* kernelVerdict = nullptr;
  std::chrono::nanoseconds consumerLease = std::chrono::seconds(2);
};

struct QueueWorkerStats {
  std::atomic<uint64_t> packets{0};
  std::atomic<uint64_t> batches{0};        // sendmsg calls carrying verdicts
  std::atomic<uint64_t> receiveErrors{0};  // incl. ENOBUFS (queue overrun)
  std::array<std::atomic<uint64_t>, kVerdictCount> verdicts{};
  std::array<std::atomic<uint64_t>, kReasonCount> reasons{};
  std::array<std::atomic<uint64_t>, kDecodeErrorCount> decodeErrors{};
  std::atomic<uint64_t> droppedSegments{0};  // retransmitted/out-of-order while held
  // Retransmissions of held bytes let through (accept, no connection mark).
  std::atomic<uint64_t> heldRetransmitsPassed{0};
  // Packets given the verdict of their flow's recent final decision (not in
  // verdicts/reasons: those count decisions).
  std::atomic<uint64_t> recentRepeats{0};
  std::atomic<uint64_t> serverResets{0};  // RSTs sent to servers of denied connections
  std::atomic<uint64_t> serverResetErrors{0};
  // Insertion guard: allows the server confirmed; client segments passed
  // while waiting (compared with the judged bytes); server packets dropped
  // because no allow waited for them (withdrawn, or the worker restarted)
  // or because they came in on the client's interface (spoofed).
  std::atomic<uint64_t> confirmed{0};
  std::atomic<uint64_t> confirmSegmentsPassed{0};
  std::atomic<uint64_t> repliesDropped{0};
  // Server packets the chain queued for the guard (replies, SYN-ACKs
  // included), and of those the SYN-ACKs: with `packets`, where a
  // connection's queued packets come from (bench/gateway prints them).
  std::atomic<uint64_t> replies{0};
  std::atomic<uint64_t> replySynAcks{0};
  // Kernel guard: first payloads whose stream start the kernel recorded;
  // allows the kernel confirmed (also in `confirmed`); provisional allows
  // it could not take (map full: the server's packets are queued).
  std::atomic<uint64_t> kernelStarts{0};
  std::atomic<uint64_t> kernelConfirmed{0};
  std::atomic<uint64_t> kernelConfirmMissed{0};
  // Kernel verdict: first payloads the program allowed that this worker
  // adopted (its decision agreed: also in verdicts/reasons), and those it
  // did not agree with (a policy change or an expiry raced the program, or
  // the parsers differ): withdrawn, both ends reset.
  std::atomic<uint64_t> kernelVerdicts{0};
  std::atomic<uint64_t> kernelVerdictDisagreements{0};
};

// A worker's counters as plain numbers (QueueWorker::counters(), one
// relaxed read each). Summable, so an owner that replaces its workers can
// keep totals that never go back (Prometheus counters).
struct QueueCounters {
  uint64_t packets = 0;
  uint64_t batches = 0;
  uint64_t receiveErrors = 0;
  uint64_t droppedSegments = 0;
  uint64_t heldRetransmitsPassed = 0;
  uint64_t recentRepeats = 0;
  uint64_t serverResets = 0;
  uint64_t serverResetErrors = 0;
  uint64_t confirmed = 0;
  uint64_t confirmSegmentsPassed = 0;
  uint64_t repliesDropped = 0;
  uint64_t replies = 0;
  uint64_t replySynAcks = 0;
  uint64_t kernelStarts = 0;
  uint64_t kernelConfirmed = 0;
  uint64_t kernelConfirmMissed = 0;
  uint64_t kernelVerdicts = 0;
  uint64_t kernelVerdictDisagreements = 0;
  std::array<uint64_t, kVerdictCount> verdicts{};
  std::array<uint64_t, kReasonCount> reasons{};
  std::array<uint64_t, kDecodeErrorCount> decodeErrors{};
  FlowTableStats flows;

  // Adds every counter of `other`; flows.active is a level, not a count,
  // and keeps this side's value (a stopped worker holds nothing).
  QueueCounters& operator+=(const QueueCounters& other) noexcept;
};

class QueueWorker {
 public:
  QueueWorker(QueueWorkerOptions options, const common::SnapshotHolder<policy::Policy>& policy,
              const BindingLookup& bindings, EventSink* events);
  ~QueueWorker();
  QueueWorker(const QueueWorker&) = delete;
  QueueWorker& operator=(const QueueWorker&) = delete;

  // Binds the queue and starts the thread. Throws std::runtime_error.
  void start();
  // Stops the thread and unbinds; held packets get a deny verdict first.
  void stop();

  const QueueWorkerStats& stats() const noexcept { return stats_; }
  FlowTableStats flowStats() const noexcept { return flows_.stats(); }
  QueueCounters counters() const noexcept;

  // Live settings (SIGHUP: mode, rules.strict_binding) without a restart:
  // any thread may call it; the worker takes them before the next packet
  // it handles (one atomic load per wake-up), so the queue stays bound.
  void setLiveOptions(bool audit, bool strictBinding) noexcept;

 private:
  struct SocketClose {
    void operator()(mnl_socket* socket) const noexcept;
  };
  struct QuicSlot;

  void run() noexcept;
  void handlePacket(uint32_t id, uint32_t mark, uint32_t indev, std::span<const uint8_t> packet) noexcept;
  void finish(const FlowTable::Flow& flow, const Decision& decision, uint32_t mark,
              bool provisional = false) noexcept;
  void expireHeld(bool all) noexcept;
  void queueVerdict(uint32_t id, uint32_t verdict, std::optional<uint32_t> mark) noexcept;
  void applyDecision(uint32_t id, const Decision& decision, uint32_t mark, bool provisional = false) noexcept;
  void sendVerdict(uint32_t id, Verdict verdict, uint32_t mark, bool provisional = false) noexcept;
  // Insertion guard (nfq/insertion_guard.h).
  // `recordedStart`: the kernel's start as a kernel verdict record carries
  // it (null: read the kernel guard's map).
  Decision guard(const FlowKey& key, const Decision& decision, uint32_t start, bool hadPayload,
                 uint32_t indev, TimePoint now, bool& provisional,
                 const KernelStart* recordedStart = nullptr) noexcept;
  // `kernelWrote`: when the kernel verdict's program wrote the guard's
  // confirm entry (the map write is skipped, the check scheduled, the allow
  // began then).
  bool beginConfirm(const FlowKey& key, const Decision& decision, uint32_t start,
                    std::span<const uint8_t> judged, uint32_t indev, TimePoint now,
                    std::optional<TimePoint> kernelWrote = std::nullopt) noexcept;
  void handleReply(uint32_t id, uint32_t mark, uint32_t indev, const PacketView& packet,
                   TimePoint now) noexcept;
  bool handleConfirming(FlowTable::Flow& entry, uint32_t id, uint32_t mark, const PacketView& packet,
                        std::span<const uint8_t> bytes, TimePoint now) noexcept;
  void withdraw(const FlowTable::Flow& entry, const Decision& decision, TimePoint now) noexcept;
  // Kernel guard.
  std::optional<StreamStarts::Start> streamStart(const FlowKey& key, TimePoint now,
                                                 const KernelStart* recorded) noexcept;
  bool recentlyConfirmed(const FlowKey& key, TimePoint now) noexcept;
  void releaseConfirm(FlowTable::Flow& entry) noexcept;
  bool kernelTookConfirm(const FlowTable::Flow& entry) noexcept;
  void kernelConfirmedAllow(const FlowTable::Flow& entry, const KernelConfirm& confirm) noexcept;
  void checkKernelConfirms(TimePoint now) noexcept;
  bool walkKernelConfirms(TimePoint now) noexcept;
  void releaseKernelConfirmed(FlowTable::Flow& entry, const KernelConfirm& confirm) noexcept;
  void flushConfirmDeletes() noexcept;
  void scheduleKernelCheck(const FlowKey& key, uint32_t judgedEnd, TimePoint due) noexcept;
  // Kernel verdict.
  size_t drainKernelVerdicts(TimePoint now) noexcept;
  void adoptKernelVerdict(const KernelVerdictRecord& record, std::span<const uint8_t> packet,
                          TimePoint now) noexcept;
  void disagreeWithKernel(const PacketView& packet, const FlowKey& key, const Decision& deny,
                          std::span<const uint8_t> bytes, TimePoint now) noexcept;
  void renewConsumer(TimePoint now) noexcept;
  void remember(const FlowKey& key, const Decision& decision, std::optional<RecentVerdicts::TcpPosition> tcp,
                size_t length, TimePoint now) noexcept;
  bool passRetransmit(const FlowTable::Flow& flow, const PacketView& packet, uint32_t id,
                      uint32_t mark) noexcept;
  void flushVerdicts() noexcept;
  size_t receiveQueued(int fd) noexcept;
  void emit(const PacketView& packet, const Decision& decision, DecodeError error = DecodeError::Ok,
            std::span<const uint8_t> bytes = {}) noexcept;
  void refreshPolicy() noexcept;
  void refreshLiveOptions() noexcept;
  void resetServer(const PacketView& packet, uint32_t seq, const Decision& decision) noexcept;
  void resetClient(const PacketView& packet, const Decision& decision) noexcept;
  bool sendConfig(bool bind);

  QueueWorkerOptions options_;
  common::SnapshotReader<policy::Policy> policyReader_;
  std::shared_ptr<const policy::Policy> policy_;
  NamePorts namePorts_;
  const BindingLookup& bindings_;
  EventSink* events_;
  std::unique_ptr<mnl_socket, SocketClose> socket_;
  unsigned portId_ = 0;
  int stopFd_ = -1;
  std::thread thread_;
  FlowTable flows_;
  // The receive side's buffers: several netlink messages per recvmmsg.
  struct ReceiveBatch;
  std::unique_ptr<ReceiveBatch> receive_;
  std::vector<uint8_t> verdictBuffer_;
  size_t verdictBytes_ = 0;
  std::vector<uint8_t> streamScratch_;
  std::vector<uint8_t> parserScratch_;
  common::LazyArray<uint32_t> markOfSlot_;  // the packet mark of each held flow's first packet
  // Per held flow: how many of its first bytes the server has (passed
  // retransmissions), so a server reset carries the sequence number the
  // server expects (RFC 5961 section 3.2: any other is only challenged).
  common::LazyArray<uint32_t> passedOfSlot_;
  RecentVerdicts recent_;
  // Insertion guard: allows waiting for the server's acknowledgment, with
  // their judged bytes (holdTimeout = confirmTimeout) and per slot: the
  // client's interface, the end of the client bytes passed so far, the
  // allow itself (for the event of a withdrawal); where each connection's
  // stream starts; connections confirmed a moment ago (their segments
  // queued before the connection mark changed pass).
  FlowTable confirming_;
  common::LazyArray<uint32_t> confirmIndevOfSlot_;
  common::LazyArray<uint32_t> confirmPassedEndOfSlot_;
  common::LazyArray<Decision> confirmDecisionOfSlot_;
  StreamStarts starts_;
  StreamStarts confirmedRecently_;
  // Kernel guard: per confirming slot, whether the kernel has its entry and
  // when the allow began; a FIFO of entries to look up (all due one
  // interval after they were queued, so the FIFO is in due order).
  common::LazyArray<uint8_t> confirmInKernelOfSlot_;
  common::LazyArray<TimePoint> confirmBeganOfSlot_;
  struct KernelCheck {
    FlowKey key;
    uint32_t judgedEnd = 0;
    TimePoint due{};
  };
  common::LazyArray<KernelCheck> kernelChecks_;  // a ring: committed as far as it has gone round
  common::LazyArray<KernelCheck> dueChecks_;     // one round's checks still waiting (checkKernelConfirms)
  size_t kernelCheckHead_ = 0;
  size_t kernelCheckCount_ = 0;
  // The batched round (checkKernelConfirms): per confirming slot, the walk
  // that last saw its kernel entry unconfirmed; the walk's buffers; the
  // keys of confirmed entries to delete at the end of the round; what the
  // last walk read and when to walk again regardless; whether the kernel
  // refused batch reads (per key from then on).
  common::LazyArray<uint32_t> confirmSeenOfSlot_;
  uint32_t confirmWalkRound_ = 0;
  std::vector<KernelFlowKey> walkKeys_;
  std::vector<KernelConfirm> walkValues_;
  std::vector<KernelFlowKey> confirmDeletes_;
  size_t confirmDeleteCount_ = 0;
  size_t confirmWalkEntries_ = 0;
  TimePoint confirmWalkProbe_{};
  bool confirmWalkRefused_ = false;
  // Kernel verdict: when the consumer deadline was last renewed; while the
  // ring is not polled (drained a moment ago), when to look again.
  TimePoint consumerRenewed_{};
  std::optional<TimePoint> ringPause_;
  std::unique_ptr<QuicSlot> quic_;
  ResetSender resets_;
  QueueWorkerStats stats_;
  // kLiveSet | audit | strictBinding bits, 0 while nothing was set.
  std::atomic<uint8_t> liveOptions_{0};
};

}  // namespace nfq

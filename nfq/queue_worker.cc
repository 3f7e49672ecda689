#include "nfq/queue_worker.h"
#include "common/errno_text.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

// libnetfilter_queue's headers need these first.
#include <libmnl/libmnl.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

#include "sni/quic.h"

namespace nfq {
namespace {

constexpr size_t kQuicBufferBytes = 4096;  // covers every real client's Initial CRYPTO data
constexpr size_t kVerdictBufferBytes = 16384;
constexpr size_t kVerdictMessageMax = 64;  // header + verdict + mark attributes, aligned
// Netlink messages read per recvmmsg, each into a slot that holds the
// largest one (a packet of copyRange bytes and its attributes), and at most
// per wake-up before the verdicts go out.
constexpr size_t kReceiveSlots = 8;
constexpr size_t kReceiveSlotBytes = 0xffff + 8192;
constexpr size_t kReceiveMaxPerWakeup = 64;
constexpr uint8_t kLiveSet = 1;
constexpr uint8_t kLiveAudit = 2;
constexpr uint8_t kLiveStrict = 4;
// Connections confirmed a moment ago: their segments queued before the
// connection mark became ALLOW still pass (a few round trips at most).
constexpr auto kConfirmedMemory = std::chrono::seconds(3);
// Kernel confirm checks (checkKernelConfirms): entries read per
// BPF_MAP_LOOKUP_BATCH call; the walk instead of per-key lookups from this
// many checks due, while the last walk read at most kConfirmWalkEntriesPerDue
// entries per check due; the map's size looked at again after this long.
constexpr size_t kConfirmWalkBatch = 256;
constexpr size_t kConfirmWalkMinDue = 8;
constexpr size_t kConfirmWalkEntriesPerDue = 4;
constexpr auto kConfirmWalkProbe = std::chrono::seconds(1);

FlowTableOptions confirmTableOptions(const QueueWorkerOptions& options) {
  FlowTableOptions out = options.flows;
  out.holdTimeout = options.confirmTimeout;
  return out;
}

}  // namespace

// QUIC Initial state: the thread's parser, one CRYPTO reassembly per flow
// table slot (committed as the slots are used, common/lazy_array.h), and a
// spare one for datagrams of flows not held yet.
struct QueueWorker::QuicSlot {
  // The reassembly of slot i works in the i-th buffer of `buffers`.
  struct InBuffer {
    uint8_t* buffers;
    sni::QuicCryptoReassembly operator()(size_t slot) const noexcept {
      return sni::QuicCryptoReassembly(
          std::span<uint8_t>(buffers + slot * kQuicBufferBytes, kQuicBufferBytes));
    }
  };

  sni::QuicInitialParser parser;
  std::array<uint8_t, kQuicBufferBytes> spareBuffer{};
  sni::QuicCryptoReassembly spare{spareBuffer};
  common::LazyArray<uint8_t> buffers;
  common::LazyArray<sni::QuicCryptoReassembly, InBuffer> flows;

  explicit QuicSlot(size_t slots)
      : buffers(slots * kQuicBufferBytes), flows(slots, InBuffer{buffers.data()}) {}
  QuicContext context(size_t slot) noexcept {
    flows[slot].reset();
    return {&parser, &flows[slot]};
  }
  QuicContext held(size_t slot) noexcept { return {&parser, &flows[slot]}; }
  QuicContext spareContext() noexcept {
    spare.reset();
    return {&parser, &spare};
  }
};

// One recvmmsg fills up to kReceiveSlots slots; the headers point into the
// buffer once (recvmmsg only writes msg_len and the flags).
struct QueueWorker::ReceiveBatch {
  std::vector<uint8_t> buffer = std::vector<uint8_t>(kReceiveSlots * kReceiveSlotBytes);
  std::array<iovec, kReceiveSlots> vectors{};
  std::array<mmsghdr, kReceiveSlots> messages{};

  ReceiveBatch() {
    for (size_t i = 0; i < kReceiveSlots; ++i) {
      vectors[i] = {buffer.data() + i * kReceiveSlotBytes, kReceiveSlotBytes};
      messages[i].msg_hdr.msg_iov = &vectors[i];
      messages[i].msg_hdr.msg_iovlen = 1;
    }
  }
  std::span<const uint8_t> message(size_t i) const noexcept {
    return {buffer.data() + i * kReceiveSlotBytes, messages[i].msg_len};
  }
};

void QueueWorker::SocketClose::operator()(mnl_socket* socket) const noexcept {
  if (socket != nullptr) mnl_socket_close(socket);
}

QueueWorker::QueueWorker(QueueWorkerOptions options, const common::SnapshotHolder<policy::Policy>& policy,
                         const BindingLookup& bindings, EventSink* events)
    : options_(options),
      policyReader_(policy),
      bindings_(bindings),
      events_(events),
      flows_(options_.flows),
      receive_(std::make_unique<ReceiveBatch>()),
      verdictBuffer_(kVerdictBufferBytes),
      streamScratch_(options_.flows.maxFlowBytes),
      parserScratch_(16384 + 4),
      markOfSlot_(options_.flows.maxFlows),
      passedOfSlot_(options_.flows.maxFlows),
      recent_(options_.recentVerdicts, options_.recentLifetime),
      confirming_(confirmTableOptions(options_)),
      confirmIndevOfSlot_(options_.flows.maxFlows),
      confirmPassedEndOfSlot_(options_.flows.maxFlows),
      confirmDecisionOfSlot_(options_.flows.maxFlows),
      starts_(options_.streamStarts, options_.streamStartLifetime),
      confirmedRecently_(options_.flows.maxFlows, kConfirmedMemory),
      confirmInKernelOfSlot_(options_.flows.maxFlows),
      confirmBeganOfSlot_(options_.flows.maxFlows),
      kernelChecks_(options_.flows.maxFlows),
      dueChecks_(options_.flows.maxFlows),
      confirmSeenOfSlot_(options_.flows.maxFlows),
      walkKeys_(kConfirmWalkBatch),
      walkValues_(kConfirmWalkBatch),
      confirmDeletes_(kConfirmWalkBatch),
      quic_(std::make_unique<QuicSlot>(options_.flows.maxFlows)),
      resets_(options_.marks.bypass) {
  // The guard reads the server's packets through the chain's reply rules
  // and saves its verdicts with NF_REPEAT.
  if (!options_.repeatVerdicts) options_.confirmFirstPayload = false;
  if (!options_.confirmFirstPayload || (options_.kernelGuard != nullptr && !options_.kernelGuard->active())) {
    options_.kernelGuard = nullptr;
  }
  // The kernel verdict writes the guard's confirm entries: without the
  // guard (or its ring) there is nothing to adopt.
  if (options_.kernelGuard == nullptr ||
      (options_.kernelVerdict != nullptr && !options_.kernelVerdict->active())) {
    options_.kernelVerdict = nullptr;
  }
  options_.decide.maxHoldBytes = options_.flows.maxFlowBytes;
  refreshPolicy();
}

QueueWorker::~QueueWorker() {
  stop();
}

QueueCounters& QueueCounters::operator+=(const QueueCounters& other) noexcept {
  packets += other.packets;
  batches += other.batches;
  receiveErrors += other.receiveErrors;
  droppedSegments += other.droppedSegments;
  heldRetransmitsPassed += other.heldRetransmitsPassed;
  recentRepeats += other.recentRepeats;
  serverResets += other.serverResets;
  serverResetErrors += other.serverResetErrors;
  confirmed += other.confirmed;
  confirmSegmentsPassed += other.confirmSegmentsPassed;
  repliesDropped += other.repliesDropped;
  replies += other.replies;
  replySynAcks += other.replySynAcks;
  kernelStarts += other.kernelStarts;
  kernelConfirmed += other.kernelConfirmed;
  kernelConfirmMissed += other.kernelConfirmMissed;
  kernelVerdicts += other.kernelVerdicts;
  kernelVerdictDisagreements += other.kernelVerdictDisagreements;
  for (size_t i = 0; i < verdicts.size(); ++i) verdicts[i] += other.verdicts[i];
  for (size_t i = 0; i < reasons.size(); ++i) reasons[i] += other.reasons[i];
  for (size_t i = 0; i < decodeErrors.size(); ++i) decodeErrors[i] += other.decodeErrors[i];
  flows.inserted += other.flows.inserted;
  flows.released += other.flows.released;
  flows.expired += other.flows.expired;
  flows.evicted += other.flows.evicted;
  flows.duplicates += other.flows.duplicates;
  flows.outOfOrder += other.flows.outOfOrder;
  flows.bufferFull += other.flows.bufferFull;
  flows.poolExhausted += other.flows.poolExhausted;
  return *this;
}

QueueCounters QueueWorker::counters() const noexcept {
  const auto load = [](const std::atomic<uint64_t>& counter) {
    return counter.load(std::memory_order_relaxed);
  };
  QueueCounters out;
  out.packets = load(stats_.packets);
  out.batches = load(stats_.batches);
  out.receiveErrors = load(stats_.receiveErrors);
  out.droppedSegments = load(stats_.droppedSegments);
  out.heldRetransmitsPassed = load(stats_.heldRetransmitsPassed);
  out.recentRepeats = load(stats_.recentRepeats);
  out.serverResets = load(stats_.serverResets);
  out.serverResetErrors = load(stats_.serverResetErrors);
  out.confirmed = load(stats_.confirmed);
  out.confirmSegmentsPassed = load(stats_.confirmSegmentsPassed);
  out.repliesDropped = load(stats_.repliesDropped);
  out.replies = load(stats_.replies);
  out.replySynAcks = load(stats_.replySynAcks);
  out.kernelStarts = load(stats_.kernelStarts);
  out.kernelConfirmed = load(stats_.kernelConfirmed);
  out.kernelConfirmMissed = load(stats_.kernelConfirmMissed);
  out.kernelVerdicts = load(stats_.kernelVerdicts);
  out.kernelVerdictDisagreements = load(stats_.kernelVerdictDisagreements);
  for (size_t i = 0; i < out.verdicts.size(); ++i) out.verdicts[i] = load(stats_.verdicts[i]);
  for (size_t i = 0; i < out.reasons.size(); ++i) out.reasons[i] = load(stats_.reasons[i]);
  for (size_t i = 0; i < out.decodeErrors.size(); ++i) out.decodeErrors[i] = load(stats_.decodeErrors[i]);
  out.flows = flows_.stats();
  return out;
}

void QueueWorker::refreshPolicy() noexcept {
  const auto& current = policyReader_.shared();
  if (current != policy_) {
    policy_ = current;
    recent_.clear();  // decided under the old rules: decide again
    // Once per snapshot: ports with name rules, for denying SYNs at once.
    namePorts_ = computeNamePorts(*policy_);
    options_.decide.namePorts = &namePorts_;
  }
}

void QueueWorker::setLiveOptions(bool audit, bool strictBinding) noexcept {
  const auto flags =
      static_cast<uint8_t>(kLiveSet | (audit ? kLiveAudit : 0) | (strictBinding ? kLiveStrict : 0));
  liveOptions_.store(flags, std::memory_order_release);
}

void QueueWorker::refreshLiveOptions() noexcept {
  const uint8_t flags = liveOptions_.load(std::memory_order_acquire);
  if ((flags & kLiveSet) == 0) return;
  const bool audit = (flags & kLiveAudit) != 0;
  const bool strict = (flags & kLiveStrict) != 0;
  if (audit == options_.decide.audit && strict == options_.decide.strictBinding) return;
  options_.decide.audit = audit;
  options_.decide.strictBinding = strict;
  recent_.clear();
}

bool QueueWorker::sendConfig(bool bind) {
  std::array<char, 8192> buffer{};  // config messages are tiny
  nlmsghdr* header = nfq_nlmsg_put(buffer.data(), NFQNL_MSG_CONFIG, options_.queue);
  nfq_nlmsg_cfg_put_cmd(header, AF_UNSPEC, bind ? NFQNL_CFG_CMD_BIND : NFQNL_CFG_CMD_UNBIND);
  if (!bind) return mnl_socket_sendto(socket_.get(), header, header->nlmsg_len) >= 0;
  // Ask for an acknowledgement of the bind: a queue another process holds
  // answers EPERM/EBUSY, which must fail start-up, not pass silently. No
  // packet can arrive before the bind, so the next message is the answer.
  header->nlmsg_flags |= NLM_F_ACK;
  header->nlmsg_seq = 1;
  if (mnl_socket_sendto(socket_.get(), header, header->nlmsg_len) < 0) return false;
  const ssize_t n = mnl_socket_recvfrom(socket_.get(), buffer.data(), buffer.size());
  if (n < 0 || mnl_cb_run(buffer.data(), static_cast<size_t>(n), 1, portId_, nullptr, nullptr) < 0)
    return false;
  header = nfq_nlmsg_put(buffer.data(), NFQNL_MSG_CONFIG, options_.queue);
  nfq_nlmsg_cfg_put_params(header, NFQNL_COPY_PACKET, static_cast<int>(options_.copyRange));
  nfq_nlmsg_cfg_put_qmaxlen(header, options_.queueMaxlen);
  // Fail-closed: explicitly clear FAIL_OPEN (a full queue drops rather
  // than accepts); GSO off so each queued packet is one segment.
  mnl_attr_put_u32(header, NFQA_CFG_FLAGS, htonl(0));
  mnl_attr_put_u32(header, NFQA_CFG_MASK, htonl(NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO));
  return mnl_socket_sendto(socket_.get(), header, header->nlmsg_len) >= 0;
}

void QueueWorker::start() {
  socket_.reset(mnl_socket_open(NETLINK_NETFILTER));
  if (!socket_) throw std::runtime_error(std::string("nfqueue: netlink socket: ") + common::errnoText(errno));
  if (mnl_socket_bind(socket_.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    throw std::runtime_error(std::string("nfqueue: bind: ") + common::errnoText(errno));
  }
  portId_ = mnl_socket_get_portid(socket_.get());
  // Overruns are counted by the kernel and seen as ENOBUFS; the queued
  // packets themselves are dropped (fail-closed), so just keep reading.
  const int one = 1;
  setsockopt(mnl_socket_get_fd(socket_.get()), SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);
  const int receiveBuffer = 8 << 20;
  setsockopt(mnl_socket_get_fd(socket_.get()), SOL_SOCKET, SO_RCVBUFFORCE, &receiveBuffer,
             sizeof receiveBuffer);
  if (!sendConfig(true)) {
    throw std::runtime_error("nfqueue: cannot bind queue " + std::to_string(options_.queue) + ": " +
                             common::errnoText(errno));
  }
  stopFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stopFd_ < 0) throw std::runtime_error(std::string("nfqueue: eventfd: ") + common::errnoText(errno));
  thread_ = std::thread([this] { run(); });
}

void QueueWorker::stop() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = write(stopFd_, &one, sizeof one);
    thread_.join();
  }
  if (socket_) {
    sendConfig(false);
    socket_.reset();
  }
  if (stopFd_ >= 0) {
    close(stopFd_);
    stopFd_ = -1;
  }
}

void QueueWorker::queueVerdict(uint32_t id, uint32_t verdict, std::optional<uint32_t> mark) noexcept {
  if (verdictBytes_ + kVerdictMessageMax > verdictBuffer_.size()) flushVerdicts();
  char* at = reinterpret_cast<char*>(verdictBuffer_.data() + verdictBytes_);
  nlmsghdr* header = nfq_nlmsg_put(at, NFQNL_MSG_VERDICT, options_.queue);
  nfq_nlmsg_verdict_put(header, static_cast<int>(id), static_cast<int>(verdict));
  if (mark) nfq_nlmsg_verdict_put_mark(header, *mark);
  verdictBytes_ += MNL_ALIGN(header->nlmsg_len);
}

void QueueWorker::flushVerdicts() noexcept {
  if (verdictBytes_ == 0) return;
  // Several netlink messages in one datagram: one syscall per batch.
  if (mnl_socket_sendto(socket_.get(), verdictBuffer_.data(), verdictBytes_) >= 0) {
    stats_.batches.fetch_add(1, std::memory_order_relaxed);
  }
  verdictBytes_ = 0;
}

void QueueWorker::applyDecision(uint32_t id, const Decision& decision, uint32_t mark,
                                bool provisional) noexcept {
  sendVerdict(id, decision.verdict, mark, provisional);
  stats_.verdicts[static_cast<size_t>(decision.verdict)].fetch_add(1, std::memory_order_relaxed);
  stats_.reasons[static_cast<size_t>(decision.reason)].fetch_add(1, std::memory_order_relaxed);
}

void QueueWorker::sendVerdict(uint32_t id, Verdict verdict, uint32_t mark, bool provisional) noexcept {
  const MarkScheme& m = options_.marks;
  const auto marked = [&](uint32_t value) { return (mark & ~m.mask) | value; };
  switch (verdict) {
    case Verdict::Allow:
    case Verdict::AuditAllow:
      // provisional: CONFIRM until the server acknowledges the judged bytes.
      queueVerdict(id, options_.repeatVerdicts ? NF_REPEAT : NF_ACCEPT,
                   marked(provisional ? m.confirm : m.allow));
      break;
    case Verdict::Deny:
      if (options_.repeatVerdicts) {
        queueVerdict(id, NF_REPEAT, marked(m.deny));  // the chain saves it and resets TCP
      } else {
        queueVerdict(id, NF_DROP, std::nullopt);
      }
      break;
    case Verdict::Pass:
      queueVerdict(id, options_.repeatVerdicts ? NF_REPEAT : NF_ACCEPT, marked(m.pass));
      break;
    case Verdict::Hold:
    case Verdict::Count:
      break;
  }
}

void QueueWorker::remember(const FlowKey& key, const Decision& decision,
                           std::optional<RecentVerdicts::TcpPosition> tcp, size_t length,
                           TimePoint now) noexcept {
  if (decision.final()) recent_.record(key, decision.verdict, decision.reason, tcp, length, now);
}

void QueueWorker::emit(const PacketView& packet, const Decision& decision, DecodeError error,
                       std::span<const uint8_t> bytes) noexcept {
  if (events_ == nullptr || !decision.final()) return;
  DecisionEvent event;
  event.time = std::chrono::system_clock::now();
  event.queue = options_.queue;
  event.src = packet.src;
  event.dst = packet.dst;
  event.srcPort = packet.srcPort;
  event.dstPort = packet.dstPort;
  event.protocol = packet.protocol;
  event.decision = decision;
  event.policy = policy_.get();
  event.decodeError = error;
  event.packet = bytes;
  events_->onDecision(event);
}

namespace {

PacketView viewOf(const FlowKey& key) noexcept {
  PacketView view;
  view.src = key.src;
  view.dst = key.dst;
  view.srcPort = key.srcPort;
  view.dstPort = key.dstPort;
  view.protocol = key.protocol;
  view.hasTransport = true;
  view.tcpFlags = kTcpAck;
  return view;
}

}  // namespace

void QueueWorker::resetServer(const PacketView& packet, uint32_t seq, const Decision& decision) noexcept {
  // Only when the server has a connection to lose: a denied SYN never
  // reached it. Audit mode lets everything through.
  if (decision.verdict != Verdict::Deny || !packet.isTcp() || packet.isSyn()) return;
  if (resets_.send(packet, seq)) {
    stats_.serverResets.fetch_add(1, std::memory_order_relaxed);
  } else {
    stats_.serverResetErrors.fetch_add(1, std::memory_order_relaxed);
  }
}

void QueueWorker::resetClient(const PacketView& packet, const Decision& decision) noexcept {
  if (decision.verdict != Verdict::Deny || !packet.isTcp() || (packet.tcpFlags & kTcpAck) == 0) return;
  // From the server's address, at the first byte the client expects: what
  // its packet acknowledged (if the server sent more since, the client
  // answers with a challenge ACK, which the reset server answers with a
  // reset of its own).
  PacketView towardClient = packet;
  std::swap(towardClient.src, towardClient.dst);
  std::swap(towardClient.srcPort, towardClient.dstPort);
  // Counted with the server resets: same socket, same failure causes.
  if (resets_.send(towardClient, packet.tcpAck)) {
    stats_.serverResets.fetch_add(1, std::memory_order_relaxed);
  } else {
    stats_.serverResetErrors.fetch_add(1, std::memory_order_relaxed);
  }
}

namespace {
// The sequence number of the first held byte: what the server expects next.
uint32_t firstSeq(const FlowTable::Flow& flow) noexcept {
  return flow.nextSeq - static_cast<uint32_t>(flow.length);
}
}  // namespace

void QueueWorker::finish(const FlowTable::Flow& flow, const Decision& decision, uint32_t mark,
                         bool provisional) noexcept {
  for (uint32_t held : flow.heldPackets()) applyDecision(held, decision, mark, provisional);
  // The server has the passed bytes (if any): reset at the first one it
  // has not seen, the only sequence number it accepts a reset at.
  const uint32_t passed = passedOfSlot_[flows_.slotIndex(flow)];
  const bool tcp = flow.key.protocol == kProtoTcp;
  if (tcp) resetServer(viewOf(flow.key), firstSeq(flow) + passed, decision);
  remember(flow.key, decision,
           tcp ? std::optional<RecentVerdicts::TcpPosition>({firstSeq(flow), false}) : std::nullopt,
           flow.length, Clock::now());
}

bool QueueWorker::passRetransmit(const FlowTable::Flow& flow, const PacketView& packet, uint32_t id,
                                 uint32_t mark) noexcept {
  // The first segment was held, so the server never acknowledged it; after
  // its RTO the client retransmits only that (its window collapsed) and
  // would send nothing new until it is acknowledged: dropping the
  // retransmission stalls the connection until the hold timeout. Let it
  // through, without a connection mark (the next packet is queued again),
  // when every byte of it is a byte already held and parsed, identical, and
  // it starts no later than what the server has (so the server's next
  // expected number stays known). The held packets keep waiting for the
  // final verdict; an allow then repeats bytes the server has (TCP drops
  // duplicates, RFC 9293 section 3.10.7.4), a deny resets both ends.
  if (!packet.isTcp() || !flows_.holdsCopy(flow, packet.tcpSeq, packet.payload)) return false;
  const size_t slot = flows_.slotIndex(flow);
  const uint32_t offset = packet.tcpSeq - firstSeq(flow);
  if (offset > passedOfSlot_[slot]) return false;
  passedOfSlot_[slot] = std::max(passedOfSlot_[slot], offset + static_cast<uint32_t>(packet.payload.size()));
  sendVerdict(id, Verdict::Pass, mark);
  stats_.heldRetransmitsPassed.fetch_add(1, std::memory_order_relaxed);
  return true;
}

namespace {
// A deny for `reason` that keeps the name of the decision it replaces (the
// event says which name the connection tried).
Decision denyKeepingName(Reason reason, const Decision& replaced, const DecideOptions& options) noexcept {
  Decision deny = denyFor(reason, options);
  deny.setName(replaced.name(), replaced.nameSource);
  deny.matchKind = replaced.matchKind;
  return deny;
}
}  // namespace

Decision QueueWorker::guard(const FlowKey& key, const Decision& decision, uint32_t start, bool hadPayload,
                            uint32_t indev, TimePoint now, bool& provisional,
                            const KernelStart* recordedStart) noexcept {
  provisional = false;
  if (!options_.confirmFirstPayload || key.protocol != kProtoTcp ||
      !needsConfirmation(decision, options_.decide, hadPayload)) {
    return decision;
  }
  // The judged bytes must be the first of the connection: a segment placed
  // before the real start (old data the server discards) or straddling it
  // (the server keeps only its tail) would show the server other bytes.
  // A SYN-ACK that came in on the client's own interface was forged there.
  const std::optional<Reason> refused = checkStreamStart(streamStart(key, now, recordedStart), start, indev);
  if (refused) return denyKeepingName(*refused, decision, options_.decide);
  provisional = true;
  return decision;
}

bool QueueWorker::beginConfirm(const FlowKey& key, const Decision& decision, uint32_t start,
                               std::span<const uint8_t> judged, uint32_t indev, TimePoint now,
                               std::optional<TimePoint> kernelWrote) noexcept {
  if (FlowTable::Flow* stale = confirming_.find(key)) releaseConfirm(*stale);
  FlowTable::Flow& entry = confirming_.insert(key, now, [&](const FlowTable::Flow& evicted) {
    // Full: the oldest unconfirmed allow is withdrawn (fail-closed), unless
    // the kernel has confirmed it meanwhile.
    if (kernelTookConfirm(evicted)) return;
    withdraw(evicted,
             denyKeepingName(Reason::Unconfirmed, confirmDecisionOfSlot_[confirming_.slotIndex(evicted)],
                             options_.decide),
             now);
  });
  if (confirming_.append(entry, start, judged, 0) != FlowTable::Append::Appended) {
    confirming_.release(entry);
    return false;
  }
  const size_t slot = confirming_.slotIndex(entry);
  confirmIndevOfSlot_[slot] = indev;
  confirmPassedEndOfSlot_[slot] = entry.nextSeq;
  confirmDecisionOfSlot_[slot] = decision;
  confirmedRecently_.erase(key);
  confirmBeganOfSlot_[slot] = now;
  confirmInKernelOfSlot_[slot] = 0;
  if (kernelWrote) {
    // The kernel verdict's program wrote the entry before it let the
    // payload go: the kernel may confirm it already. The allow began when
    // the program ran: a SYN-ACK the kernel records after that is a new
    // connection on the 5-tuple (handleConfirming).
    confirmBeganOfSlot_[slot] = *kernelWrote;
    confirmInKernelOfSlot_[slot] = 1;
    scheduleKernelCheck(key, entry.nextSeq, now + options_.kernelCheckInterval);
  } else if (options_.kernelGuard != nullptr) {
    // Written before the provisional verdict leaves (verdicts are sent at
    // the end of the wake-up): the server cannot answer before the kernel
    // knows what to compare. passedEnd = judged end: bytes the client is
    // let send later are confirmed in user space (stricter, never looser).
    const KernelConfirm expected{entry.nextSeq, entry.nextSeq, indev, 0, 0};
    if (options_.kernelGuard->expectConfirm(key, expected)) {
      confirmInKernelOfSlot_[slot] = 1;
      scheduleKernelCheck(key, entry.nextSeq, now + options_.kernelCheckInterval);
    } else {
      stats_.kernelConfirmMissed.fetch_add(1, std::memory_order_relaxed);
    }
  }
  return true;
}

std::optional<StreamStarts::Start> QueueWorker::streamStart(const FlowKey& key, TimePoint now,
                                                            const KernelStart* recorded) noexcept {
  std::optional<StreamStarts::Start> known = starts_.find(key, now);
  if (options_.kernelGuard == nullptr) return known;
  // The newest of the two counts, as when both came through the queue: a
  // SYN-ACK the kernel recorded, or a SYN/SYN-ACK this worker read. A
  // kernel verdict's record brings the kernel's entry as its program read
  // it (the start it allowed with): no second map read.
  const std::optional<KernelStart> kernel =
      recorded != nullptr ? std::optional<KernelStart>(*recorded) : options_.kernelGuard->findStart(key);
  if (!kernel) return known;
  bool fromKernel = false;
  const std::optional<StreamStarts::Start> newest =
      newestStart(known, streamStartOf(*kernel), options_.streamStartLifetime, now, fromKernel);
  if (fromKernel) stats_.kernelStarts.fetch_add(1, std::memory_order_relaxed);
  return newest;
}

bool QueueWorker::recentlyConfirmed(const FlowKey& key, TimePoint now) noexcept {
  const std::optional<StreamStarts::Start> confirmed = confirmedRecently_.find(key, now);
  if (!confirmed) return false;
  if (options_.kernelGuard != nullptr) {
    // The kernel passes SYN-ACKs without this worker seeing them: a start
    // recorded after the confirmation is a new connection on the 5-tuple,
    // whose first payload must be judged.
    const std::optional<KernelStart> start = options_.kernelGuard->findStart(key);
    if (start && kernelTime(start->timeNs) > confirmed->at) {
      confirmedRecently_.erase(key);
      return false;
    }
  }
  return true;
}

void QueueWorker::releaseConfirm(FlowTable::Flow& entry) noexcept {
  const size_t slot = confirming_.slotIndex(entry);
  if (confirmInKernelOfSlot_[slot] != 0) {
    options_.kernelGuard->forgetConfirm(entry.key);
    confirmInKernelOfSlot_[slot] = 0;
  }
  confirming_.release(entry);
}

bool QueueWorker::kernelTookConfirm(const FlowTable::Flow& entry) noexcept {
  const size_t slot = confirming_.slotIndex(entry);
  if (confirmInKernelOfSlot_[slot] == 0) return false;
  confirmInKernelOfSlot_[slot] = 0;
  // Read and delete at once: from here on the kernel cannot confirm, so a
  // withdrawal that follows is not overtaken by a late confirmation.
  const std::optional<KernelConfirm> taken = options_.kernelGuard->takeConfirm(entry.key);
  if (!taken || taken->confirmed == 0 || taken->judgedEnd != entry.nextSeq) return false;
  kernelConfirmedAllow(entry, *taken);
  return true;
}

void QueueWorker::kernelConfirmedAllow(const FlowTable::Flow& entry, const KernelConfirm& confirm) noexcept {
  // The chain saved ALLOW on the confirming server packet already; segments
  // queued before that still pass (confirmedRecently_), as after a
  // confirmation read here.
  stats_.confirmed.fetch_add(1, std::memory_order_relaxed);
  stats_.kernelConfirmed.fetch_add(1, std::memory_order_relaxed);
  const size_t slot = confirming_.slotIndex(entry);
  confirmedRecently_.record(
      entry.key, {entry.nextSeq, confirmIndevOfSlot_[slot], kernelTime(confirm.confirmedNs)}, Clock::now());
}

void QueueWorker::scheduleKernelCheck(const FlowKey& key, uint32_t judgedEnd, TimePoint due) noexcept {
  // Full: the entry is still looked at before it would be withdrawn.
  if (kernelCheckCount_ == kernelChecks_.size()) return;
  kernelChecks_[(kernelCheckHead_ + kernelCheckCount_) % kernelChecks_.size()] = {key, judgedEnd, due};
  ++kernelCheckCount_;
}

void QueueWorker::checkKernelConfirms(TimePoint now) noexcept {
  // The checks due whose allow still waits for the kernel; the others were
  // released since (confirmed here or by an earlier walk, denied, replaced
  // by a new connection) and cost nothing more.
  size_t due = 0;
  while (kernelCheckCount_ > 0 && kernelChecks_[kernelCheckHead_].due <= now) {
    const KernelCheck check = kernelChecks_[kernelCheckHead_];
    kernelCheckHead_ = (kernelCheckHead_ + 1) % kernelChecks_.size();
    --kernelCheckCount_;
    const FlowTable::Flow* entry = confirming_.find(check.key);
    if (entry == nullptr || entry->nextSeq != check.judgedEnd) continue;
    if (confirmInKernelOfSlot_[confirming_.slotIndex(*entry)] == 0) continue;
    dueChecks_[due++] = check;
  }
  if (due == 0) return;
  // One walk of the whole map reads every entry at about a quarter of a
  // lookup's cost each, after a fixed cost of about seven lookups (the
  // empty buckets): worth it with enough checks due and a map not mostly
  // other entries (docs/nfq.md "Kernel guard: the confirm checks"). The
  // map's size is known from the last walk, looked at again every second.
  const bool walk = !confirmWalkRefused_ && due >= kConfirmWalkMinDue &&
                    (confirmWalkEntries_ <= kConfirmWalkEntriesPerDue * due || now >= confirmWalkProbe_);
  const bool walked = walk && walkKernelConfirms(now);
  for (size_t i = 0; i < due; ++i) {
    const KernelCheck& check = dueChecks_[i];
    FlowTable::Flow* entry = confirming_.find(check.key);
    if (entry == nullptr || entry->nextSeq != check.judgedEnd) continue;  // released by the walk
    const size_t slot = confirming_.slotIndex(*entry);
    if (walked) {
      // In the map but not confirmed (else the walk released it): later.
      if (confirmSeenOfSlot_[slot] == confirmWalkRound_) {
        scheduleKernelCheck(check.key, check.judgedEnd, now + options_.kernelCheckInterval);
      } else {
        confirmInKernelOfSlot_[slot] = 0;  // gone: only this worker can confirm now
      }
      continue;
    }
    const std::optional<KernelConfirm> found = options_.kernelGuard->findConfirm(check.key);
    if (found && found->confirmed != 0 && found->judgedEnd == check.judgedEnd) {
      releaseKernelConfirmed(*entry, *found);
      continue;
    }
    if (!found) {
      confirmInKernelOfSlot_[slot] = 0;  // gone: only this worker can confirm now
      continue;
    }
    scheduleKernelCheck(check.key, check.judgedEnd, now + options_.kernelCheckInterval);
  }
  flushConfirmDeletes();
}

bool QueueWorker::walkKernelConfirms(TimePoint now) noexcept {
  // Every entry of the map goes by; this worker's own are those of its
  // confirming allows that wait for the kernel, with their judged end:
  // confirmed ones are released (their keys deleted in one batch), the
  // others marked as seen this round. Everything else (other workers',
  // an earlier connection's) is left alone.
  if (++confirmWalkRound_ == 0) ++confirmWalkRound_;  // 0: never seen
  KernelGuard::ConfirmWalk cursor;
  size_t entries = 0;
  while (!cursor.done) {
    const std::optional<size_t> read = options_.kernelGuard->readConfirms(cursor, walkKeys_, walkValues_);
    if (!read) {
      // A kernel without batch operations on hash maps refuses the first
      // call (then never again); a bucket larger than the buffer (ENOSPC)
      // any call. Either way the rest of this round is read per key (what
      // the walk released so far stays released).
      if (!cursor.started && errno != ENOSPC) confirmWalkRefused_ = true;
      return false;
    }
    entries += *read;
    for (size_t i = 0; i < *read; ++i) {
      FlowTable::Flow* entry = confirming_.find(flowKeyOf(walkKeys_[i]));
      if (entry == nullptr) continue;
      const size_t slot = confirming_.slotIndex(*entry);
      if (confirmInKernelOfSlot_[slot] == 0) continue;
      const KernelConfirm& value = walkValues_[i];
      if (value.confirmed != 0 && value.judgedEnd == entry->nextSeq) {
        releaseKernelConfirmed(*entry, value);
      } else {
        confirmSeenOfSlot_[slot] = confirmWalkRound_;
      }
    }
  }
  confirmWalkEntries_ = entries;
  confirmWalkProbe_ = now + kConfirmWalkProbe;
  return true;
}

void QueueWorker::releaseKernelConfirmed(FlowTable::Flow& entry, const KernelConfirm& confirm) noexcept {
  kernelConfirmedAllow(entry, confirm);
  // Its kernel entry goes with the round's other confirmed ones.
  const size_t slot = confirming_.slotIndex(entry);
  confirmInKernelOfSlot_[slot] = 0;
  if (confirmDeleteCount_ == confirmDeletes_.size()) flushConfirmDeletes();
  confirmDeletes_[confirmDeleteCount_++] = kernelKey(entry.key);
  confirming_.release(entry);
}

void QueueWorker::flushConfirmDeletes() noexcept {
  if (confirmDeleteCount_ == 0) return;
  options_.kernelGuard->forgetConfirms(
      std::span<const KernelFlowKey>(confirmDeletes_.data(), confirmDeleteCount_));
  confirmDeleteCount_ = 0;
}

void QueueWorker::renewConsumer(TimePoint now) noexcept {
  // A quarter of the lease between renewals: one map write per half second
  // at most, and the program never sees a lapse while this thread runs.
  if (options_.kernelVerdict == nullptr || now < consumerRenewed_ + options_.consumerLease / 4) return;
  consumerRenewed_ = now;
  options_.kernelVerdict->keepConsumerAlive(now + options_.consumerLease);
}

size_t QueueWorker::drainKernelVerdicts(TimePoint now) noexcept {
  if (options_.kernelVerdict == nullptr) return 0;
  const size_t drained =
      options_.kernelVerdict->drain([&](const KernelVerdictRecord& record, std::span<const uint8_t> packet) {
        adoptKernelVerdict(record, packet, now);
      });
  if (drained > 0) renewConsumer(now);
  return drained;
}

void QueueWorker::adoptKernelVerdict(const KernelVerdictRecord& record, std::span<const uint8_t> bytes,
                                     TimePoint now) noexcept {
  // The program allowed this packet and marked its connection CONFIRM: the
  // same as a provisional allow from here, minus the verdict (the packet
  // is gone) and the confirm entry (the program wrote it). So it is judged
  // here exactly as if it had been queued, and the event, counters and
  // check 2 follow from that judgement.
  const DecodeResult decoded = decodePacket(bytes);
  if (!decoded.ok() || !decoded.view.isTcp()) {
    // Cannot happen: the program parsed it. No connection to withdraw
    // without a key; say so.
    stats_.kernelVerdictDisagreements.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const PacketView& packet = decoded.view;
  const FlowKey key = FlowKey::of(packet);
  if (FlowTable::Flow* stale = confirming_.find(key)) {
    // An earlier connection of the 5-tuple: its kernel entry was replaced
    // by this one's, which must stay.
    confirmInKernelOfSlot_[confirming_.slotIndex(*stale)] = 0;
    releaseConfirm(*stale);
  }
  FlowState state;
  state.scratch = parserScratch_;
  state.quic = quic_->spareContext();
  Decision decision = decide(state, packet, *policy_, bindings_, options_.decide, now);
  bool provisional = false;
  if (decision.final()) {
    decision = guard(key, decision, packet.tcpSeq, !packet.payload.empty(), record.ifindex, now, provisional,
                     &record.start);
  }
  if (decision.verdict == Verdict::AuditAllow) {
    // Audit mode: user space would let it through too, saying "would
    // deny". Nothing waits for the kernel's confirmation here, so its
    // entry goes (else nothing ever deletes it); the server's answer is
    // then queued and allowed, as audit mode answers every reply.
    stats_.kernelVerdictDisagreements.fetch_add(1, std::memory_order_relaxed);
    options_.kernelGuard->forgetConfirm(key);
  } else if (decision.verdict != Verdict::Allow) {
    // A policy change or an expiry raced the program (or its parser was
    // laxer than sni/): the connection is withdrawn.
    const Decision deny = decision.verdict == Verdict::Deny
                              ? decision
                              : denyKeepingName(Reason::Unconfirmed, decision, options_.decide);
    disagreeWithKernel(packet, key, deny, bytes, now);
    return;
  } else if (provisional && !beginConfirm(key, decision, packet.tcpSeq, packet.payload, record.ifindex, now,
                                          kernelTime(record.timeNs))) {
    // No room to compare later segments with (user space denies its own
    // allows then too).
    disagreeWithKernel(packet, key, denyKeepingName(Reason::HoldLimit, decision, options_.decide), bytes,
                       now);
    return;
  }
  stats_.kernelVerdicts.fetch_add(1, std::memory_order_relaxed);
  stats_.verdicts[static_cast<size_t>(decision.verdict)].fetch_add(1, std::memory_order_relaxed);
  stats_.reasons[static_cast<size_t>(decision.reason)].fetch_add(1, std::memory_order_relaxed);
  emit(packet, decision, DecodeError::Ok, bytes);
}

void QueueWorker::disagreeWithKernel(const PacketView& packet, const FlowKey& key, const Decision& deny,
                                     std::span<const uint8_t> bytes, TimePoint now) noexcept {
  stats_.kernelVerdictDisagreements.fetch_add(1, std::memory_order_relaxed);
  // Deleted first: from here the kernel cannot confirm, so the connection
  // stays CONFIRM and its next client segments are queued and denied
  // (remembered below). If the server confirmed already (ALLOW), the
  // server resets still end it.
  options_.kernelGuard->forgetConfirm(key);
  // The server may have the judged bytes or not: reset at both places
  // (RFC 5961 accepts only the exact next number).
  const uint32_t start = packet.tcpSeq;
  const uint32_t end = start + static_cast<uint32_t>(packet.payload.size());
  resetServer(packet, start, deny);
  if (end != start) resetServer(packet, end, deny);
  // The server's acknowledgment may have confirmed the connection in the
  // kernel already (ALLOW, its later packets no longer reach the worker):
  // the client would then wait for an answer the reset server never
  // sends. It is reset too.
  resetClient(packet, deny);
  stats_.verdicts[static_cast<size_t>(deny.verdict)].fetch_add(1, std::memory_order_relaxed);
  stats_.reasons[static_cast<size_t>(deny.reason)].fetch_add(1, std::memory_order_relaxed);
  remember(key, deny, RecentVerdicts::TcpPosition{start, false}, packet.payload.size(), now);
  emit(packet, deny, DecodeError::Ok, bytes);
}

void QueueWorker::withdraw(const FlowTable::Flow& entry, const Decision& decision, TimePoint now) noexcept {
  // No packet to give a verdict to: reset the server (at the judged start,
  // where it waits if it dropped the judged bytes, and after what passed,
  // where it waits if it took them: RFC 5961 accepts only the exact
  // number) and remember the deny, so the connection's next segments are
  // denied and the client reset.
  const uint32_t start = entry.nextSeq - static_cast<uint32_t>(entry.length);
  const uint32_t passedEnd = confirmPassedEndOfSlot_[confirming_.slotIndex(entry)];
  const PacketView view = viewOf(entry.key);
  resetServer(view, start, decision);
  if (passedEnd != start) resetServer(view, passedEnd, decision);
  stats_.verdicts[static_cast<size_t>(decision.verdict)].fetch_add(1, std::memory_order_relaxed);
  stats_.reasons[static_cast<size_t>(decision.reason)].fetch_add(1, std::memory_order_relaxed);
  remember(entry.key, decision, RecentVerdicts::TcpPosition{start, false}, passedEnd - start, now);
  emit(view, decision);
}

void QueueWorker::handleReply(uint32_t id, uint32_t mark, uint32_t indev, const PacketView& packet,
                              TimePoint now) noexcept {
  stats_.replies.fetch_add(1, std::memory_order_relaxed);
  if (!packet.isTcp()) {
    sendVerdict(id, Verdict::Pass, mark);
    return;
  }
  const FlowKey key = replyKey(packet);
  if (packet.isSynAck()) {
    // RFC 9293 section 3.5: the SYN-ACK acknowledges ISN + 1, the client's
    // first payload byte. A new connection on the 5-tuple starts over.
    stats_.replySynAcks.fetch_add(1, std::memory_order_relaxed);
    starts_.record(key, {packet.tcpAck, indev, now}, now);
    confirmedRecently_.erase(key);
    sendVerdict(id, Verdict::Pass, mark);
    return;
  }
  FlowTable::Flow* entry = confirming_.find(key);
  if (entry == nullptr || (indev != 0 && indev == confirmIndevOfSlot_[confirming_.slotIndex(*entry)])) {
    // Queued behind the confirming one; or audit mode, which lets
    // everything through (a withdrawn allow was only a "would deny").
    if (entry == nullptr && (confirmedRecently_.find(key, now) || options_.decide.audit)) {
      sendVerdict(id, Verdict::Allow, mark);
      return;
    }
    // Nothing waits for this answer (the allow was withdrawn, or this
    // worker restarted), or a client forged it on its own interface.
    stats_.repliesDropped.fetch_add(1, std::memory_order_relaxed);
    queueVerdict(id, NF_DROP, std::nullopt);
    return;
  }
  const size_t slot = confirming_.slotIndex(*entry);
  if ((packet.tcpFlags & kTcpAck) != 0 &&
      acknowledges(packet.tcpAck, entry->nextSeq, confirmPassedEndOfSlot_[slot])) {
    // The server has every judged byte, and each one it can have got
    // passed the comparison: the allow is final (the chain saves it).
    sendVerdict(id, Verdict::Allow, mark);
    stats_.confirmed.fetch_add(1, std::memory_order_relaxed);
    confirmedRecently_.record(key, {entry->nextSeq, indev, now}, now);
    releaseConfirm(*entry);
    return;
  }
  sendVerdict(id, Verdict::Pass, mark);
}

bool QueueWorker::handleConfirming(FlowTable::Flow& entry, uint32_t id, uint32_t mark,
                                   const PacketView& packet, std::span<const uint8_t> bytes,
                                   TimePoint now) noexcept {
  if (packet.isSyn()) {
    releaseConfirm(entry);  // a new connection on the 5-tuple
    return false;
  }
  if (confirmInKernelOfSlot_[confirming_.slotIndex(entry)] != 0) {
    // A SYN-ACK the kernel recorded after this allow began: the 5-tuple
    // carries a new connection (a new conntrack entry), judged afresh.
    const std::optional<KernelStart> start = options_.kernelGuard->findStart(entry.key);
    if (start && kernelTime(start->timeNs) > confirmBeganOfSlot_[confirming_.slotIndex(entry)]) {
      releaseConfirm(entry);
      return false;
    }
  }
  const size_t slot = confirming_.slotIndex(entry);
  const uint32_t start = entry.nextSeq - static_cast<uint32_t>(entry.length);
  const SegmentCheck check = classifySegment(start, entry.length, packet.tcpSeq, packet.payload.size());
  const bool agrees = check.place == SegmentPlace::After ||
                      (check.place == SegmentPlace::Overlap &&
                       confirming_.holdsCopy(entry, packet.tcpSeq, packet.payload.first(check.overlap)));
  if (agrees) {
    const uint32_t end = packet.tcpSeq + static_cast<uint32_t>(packet.payload.size());
    uint32_t& passedEnd = confirmPassedEndOfSlot_[slot];
    if (end - passedEnd < (1U << 31)) passedEnd = end;
    sendVerdict(id, Verdict::Pass, mark);
    stats_.confirmSegmentsPassed.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  // Other bytes where the judged ones were (the server may have dropped
  // those), or bytes before them: an insertion attempt.
  const Decision deny =
      denyKeepingName(Reason::JudgedBytesDiffer, confirmDecisionOfSlot_[slot], options_.decide);
  const uint32_t passedEnd = confirmPassedEndOfSlot_[slot];
  applyDecision(id, deny, mark);
  resetServer(packet, start, deny);
  if (passedEnd != start) resetServer(packet, passedEnd, deny);
  remember(entry.key, deny, RecentVerdicts::TcpPosition{start, false}, passedEnd - start, now);
  emit(packet, deny, DecodeError::Ok, bytes);
  releaseConfirm(entry);
  return true;
}

void QueueWorker::handlePacket(uint32_t id, uint32_t mark, uint32_t indev,
                               std::span<const uint8_t> bytes) noexcept {
  stats_.packets.fetch_add(1, std::memory_order_relaxed);
  const DecodeResult decoded = decodePacket(bytes);
  if (!decoded.ok()) {
    stats_.decodeErrors[static_cast<size_t>(decoded.error)].fetch_add(1, std::memory_order_relaxed);
    const Decision decision = decideUndecodable(decoded.error, options_.decide);
    applyDecision(id, decision, mark);
    emit(decoded.view, decision, decoded.error, bytes);
    return;
  }
  const PacketView& packet = decoded.view;
  const TimePoint now = Clock::now();
  const std::optional<uint32_t> seq = packet.isTcp() ? std::optional<uint32_t>(packet.tcpSeq) : std::nullopt;
  const FlowKey key = FlowKey::of(packet);
  const std::optional<RecentVerdicts::TcpPosition> position =
      packet.isTcp() ? std::optional<RecentVerdicts::TcpPosition>({packet.tcpSeq, packet.isSyn()})
                     : std::nullopt;

  // A client segment may follow a first payload the kernel allowed: its
  // record must be adopted first (check 2 compares with its bytes).
  if (options_.kernelVerdict != nullptr && packet.isTcp() && !packet.payload.empty())
    drainKernelVerdicts(now);
  // A first payload queued because the lease had lapsed renews it here.
  renewConsumer(now);

  // A server packet the chain queued for the insertion guard.
  if (options_.confirmFirstPayload && (mark & options_.marks.mask) == options_.marks.reply) {
    handleReply(id, mark, indev, packet, now);
    return;
  }

  // Queued behind a final decision of its flow, before the chain saved the
  // connection mark: the same verdict, no second decision or event.
  if (const RecentVerdicts::Entry* recent = recent_.find(key, position, now)) {
    sendVerdict(id, recent->verdict, mark);
    stats_.recentRepeats.fetch_add(1, std::memory_order_relaxed);
    return;
  }

  if (options_.confirmFirstPayload && packet.isTcp()) {
    if (FlowTable::Flow* entry = confirming_.find(key)) {
      if (handleConfirming(*entry, id, mark, packet, bytes, now)) return;
    } else if (!packet.isSyn() && recentlyConfirmed(key, now)) {
      // Queued before the server's confirmation reached the kernel.
      sendVerdict(id, Verdict::Pass, mark);
      return;
    }
    if (packet.isSyn()) {
      // A SYN the kernel queued (unbound destination, TCP Fast Open): the
      // stream starts right after it.
      starts_.record(key, {packet.tcpSeq + 1, 0, now}, now);
      confirmedRecently_.erase(key);
    }
  }

  if (FlowTable::Flow* flow = flows_.find(key)) {
    const size_t slot = flows_.slotIndex(*flow);
    const FlowTable::Append appended = flows_.append(*flow, seq, packet.payload, id);
    Decision decision;
    switch (appended) {
      case FlowTable::Append::Duplicate:
        if (passRetransmit(*flow, packet, id, mark)) return;
        [[fallthrough]];
      case FlowTable::Append::OutOfOrder:
        // The held original (or the client's retransmission) brings these
        // bytes again; this copy goes.
        stats_.droppedSegments.fetch_add(1, std::memory_order_relaxed);
        queueVerdict(id, NF_DROP, std::nullopt);
        return;
      case FlowTable::Append::BufferFull:
      case FlowTable::Append::PoolExhausted: {
        decision = denyFor(Reason::HoldLimit, options_.decide);
        finish(*flow, decision, markOfSlot_[slot]);
        applyDecision(id, decision, mark);
        emit(packet, decision, DecodeError::Ok, bytes);
        flows_.release(*flow);
        return;
      }
      case FlowTable::Append::Appended:
        break;
    }
    FlowState state;
    state.stream = packet.isTcp() ? flows_.stream(*flow, streamScratch_) : std::span<const uint8_t>{};
    state.scratch = parserScratch_;
    state.quic = quic_->held(slot);
    decision = decide(state, packet, *policy_, bindings_, options_.decide, now);
    if (decision.verdict == Verdict::Hold) return;
    bool provisional = false;
    decision = guard(key, decision, firstSeq(*flow), true, indev, now, provisional);
    if (provisional && !beginConfirm(key, decision, firstSeq(*flow), state.stream, indev, now)) {
      decision = denyKeepingName(Reason::HoldLimit, decision, options_.decide);
      provisional = false;
    }
    finish(*flow, decision, markOfSlot_[slot], provisional);
    emit(packet, decision, DecodeError::Ok, bytes);
    flows_.release(*flow);
    return;
  }

  FlowState state;
  state.scratch = parserScratch_;
  state.quic = quic_->spareContext();
  Decision decision = decide(state, packet, *policy_, bindings_, options_.decide, now);
  if (decision.verdict != Verdict::Hold) {
    bool provisional = false;
    // TCP Fast Open: the SYN takes one sequence number before the data.
    const uint32_t start = packet.isSyn() ? packet.tcpSeq + 1 : packet.tcpSeq;
    decision = guard(key, decision, start, !packet.payload.empty(), indev, now, provisional);
    if (provisional && !beginConfirm(key, decision, start, packet.payload, indev, now)) {
      decision = denyKeepingName(Reason::HoldLimit, decision, options_.decide);
      provisional = false;
    }
    applyDecision(id, decision, mark, provisional);
    resetServer(packet, packet.tcpSeq, decision);
    remember(key, decision, position, packet.payload.size(), now);
    emit(packet, decision, DecodeError::Ok, bytes);
    return;
  }
  // Incomplete first payload: hold this packet until the rest arrives.
  FlowTable::Flow& flow = flows_.insert(key, now, [&](const FlowTable::Flow& evicted) {
    const Decision evict = denyFor(Reason::HoldLimit, options_.decide);
    finish(evicted, evict, markOfSlot_[flows_.slotIndex(evicted)]);
    emit(viewOf(evicted.key), evict);
  });
  const size_t slot = flows_.slotIndex(flow);
  markOfSlot_[slot] = mark;
  passedOfSlot_[slot] = 0;
  if (flows_.append(flow, seq, packet.payload, id) != FlowTable::Append::Appended) {
    const Decision limit = denyFor(Reason::HoldLimit, options_.decide);
    applyDecision(id, limit, mark);
    resetServer(packet, packet.tcpSeq, limit);
    remember(key, limit, position, packet.payload.size(), now);
    emit(packet, limit, DecodeError::Ok, bytes);
    flows_.release(flow);
    return;
  }
  if (packet.isUdp()) {
    // Replay the datagram into the flow's own QUIC reassembly so the next
    // datagram continues from it.
    FlowState held;
    held.scratch = parserScratch_;
    held.quic = quic_->context(slot);
    (void)decide(held, packet, *policy_, bindings_, options_.decide, now);
  }
}

void QueueWorker::expireHeld(bool all) noexcept {
  const TimePoint now = all ? TimePoint::max() : Clock::now();
  // Allows the server never confirmed are withdrawn.
  confirming_.expire(now, [&](const FlowTable::Flow& entry) {
    if (kernelTookConfirm(entry)) return;
    const Decision& allowed = confirmDecisionOfSlot_[confirming_.slotIndex(entry)];
    withdraw(entry, denyKeepingName(Reason::Unconfirmed, allowed, options_.decide), Clock::now());
  });
  flows_.expire(now, [&](const FlowTable::Flow& flow) {
    const PacketView view = viewOf(flow.key);
    const Decision decision = denyFor(Reason::HoldTimeout, options_.decide);
    finish(flow, decision, markOfSlot_[flows_.slotIndex(flow)]);
    emit(view, decision);
  });
}

size_t QueueWorker::receiveQueued(int fd) noexcept {
  const int n = recvmmsg(fd, receive_->messages.data(), kReceiveSlots, MSG_DONTWAIT, nullptr);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      stats_.receiveErrors.fetch_add(1, std::memory_order_relaxed);
    }
    return 0;
  }
  const auto callback = [](const nlmsghdr* header, void* data) -> int {
    auto* self = static_cast<QueueWorker*>(data);
    nlattr* attributes[NFQA_MAX + 1] = {};
    if (nfq_nlmsg_parse(header, attributes) < 0 || attributes[NFQA_PACKET_HDR] == nullptr) return MNL_CB_OK;
    const auto* packetHeader =
        static_cast<const nfqnl_msg_packet_hdr*>(mnl_attr_get_payload(attributes[NFQA_PACKET_HDR]));
    const uint32_t id = ntohl(packetHeader->packet_id);
    const uint32_t mark = attributes[NFQA_MARK] ? ntohl(mnl_attr_get_u32(attributes[NFQA_MARK])) : 0;
    const uint32_t indev =
        attributes[NFQA_IFINDEX_INDEV] ? ntohl(mnl_attr_get_u32(attributes[NFQA_IFINDEX_INDEV])) : 0;
    std::span<const uint8_t> payload;
    if (attributes[NFQA_PAYLOAD] != nullptr) {
      payload = {static_cast<const uint8_t*>(mnl_attr_get_payload(attributes[NFQA_PAYLOAD])),
                 mnl_attr_get_payload_len(attributes[NFQA_PAYLOAD])};
    }
    self->handlePacket(id, mark, indev, payload);
    return MNL_CB_OK;
  };
  for (int i = 0; i < n; ++i) {
    const std::span<const uint8_t> message = receive_->message(static_cast<size_t>(i));
    if (mnl_cb_run(message.data(), message.size(), 0, portId_, callback, this) < 0) {
      stats_.receiveErrors.fetch_add(1, std::memory_order_relaxed);
    }
  }
  return static_cast<size_t>(n);
}

void QueueWorker::run() noexcept {
  const int fd = mnl_socket_get_fd(socket_.get());
  // The kernel verdict's ring: polled while idle; after a drain, looked at
  // again only after kernelCheckInterval (ringPause_), so a busy ring is
  // read in batches and an idle one costs no timer.
  const int ringFd = options_.kernelVerdict != nullptr ? options_.kernelVerdict->ringFd() : -1;
  renewConsumer(Clock::now());
  for (;;) {
    int timeout = -1;
    std::optional<TimePoint> check;
    if (kernelCheckCount_ > 0) check = kernelChecks_[kernelCheckHead_].due;
    for (const auto expiry : {flows_.nextExpiry(), confirming_.nextExpiry(), check, ringPause_}) {
      if (!expiry) continue;
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(*expiry - Clock::now()).count();
      const int ms = static_cast<int>(std::max<int64_t>(0, wait) + 1);
      timeout = timeout < 0 ? ms : std::min(timeout, ms);
    }
    pollfd fds[3] = {{fd, POLLIN, 0}, {stopFd_, POLLIN, 0}, {ringPause_ ? -1 : ringFd, POLLIN, 0}};
    if (poll(fds, ringFd >= 0 ? 3 : 2, timeout) < 0 && errno != EINTR)
      stats_.receiveErrors.fetch_add(1, std::memory_order_relaxed);
    if (fds[1].revents & POLLIN) break;
    refreshPolicy();
    refreshLiveOptions();
    if (ringFd >= 0) {
      const TimePoint now = Clock::now();
      const bool readable = (fds[2].revents & POLLIN) != 0;
      if (readable || (ringPause_ && *ringPause_ <= now)) {
        // Woken by the ring, or records found: not polled for an interval
        // (more gather, read in one go); nothing found when the pause ends
        // (idle again): polled, without a timer.
        const size_t drained = drainKernelVerdicts(now);
        ringPause_.reset();
        if (readable || drained > 0) ringPause_ = now + options_.kernelCheckInterval;
      }
    }
    // Drain what is there (a batch), then send all verdicts at once.
    if (fds[0].revents & POLLIN) {
      for (size_t read = 0; read < kReceiveMaxPerWakeup;) {
        const size_t n = receiveQueued(fd);
        read += n;
        // Fewer than a full batch: the queue is empty (no extra recv to hear
        // EAGAIN); what comes later wakes the next poll.
        if (n < kReceiveSlots) break;
      }
    }
    if (options_.kernelGuard != nullptr) checkKernelConfirms(Clock::now());
    expireHeld(false);
    flushVerdicts();
  }
  // Stopping: what the kernel allowed before the names were invalidated is
  // adopted (its event logged); nothing stays held (each gets its timeout
  // deny, unconfirmed allows are withdrawn).
  drainKernelVerdicts(Clock::now());
  expireHeld(true);
  flushVerdicts();
}

}  // namespace nfq

// Every verdict is an event (ARCHITECTURE.md): the NFQUEUE workers hand
// each final decision to DecisionLog::onDecision(), which copies it into a
// bounded ring without allocating; the event loop drains the ring every
// 50 ms into one structured log line per decision. A full ring drops the
// oldest-unwritten events and counts them: the data path never waits for
// the log.
//
// Thread-safety: onDecision() from any worker thread (a short mutex);
// everything else on the event loop.
#pragma once

#include <event2/event.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <vector>

#include "common/c_handle.h"
#include "nfq/queue_worker.h"

namespace daemon_main {

struct DecisionRecord {
  std::chrono::system_clock::time_point time;
  common::IpAddress src;
  common::IpAddress dst;
  uint16_t srcPort = 0;
  uint16_t dstPort = 0;
  uint8_t protocol = 0;
  uint16_t queue = 0;
  nfq::Verdict verdict = nfq::Verdict::Deny;
  nfq::Verdict enforced = nfq::Verdict::Deny;
  nfq::Reason reason = nfq::Reason::ProtocolNotAllowed;
  nfq::NameSource nameSource = nfq::NameSource::None;
  policy::MatchKind matchKind = policy::MatchKind::None;
  uint8_t nameLength = 0;
  std::array<char, policy::kMaxNameLength> name{};
  uint16_t ruleSetsLength = 0;
  std::array<char, 256> ruleSets{};  // comma-separated ids, truncated with "..."
};

class DecisionLog final : public nfq::EventSink {
 public:
  explicit DecisionLog(event_base* base, size_t capacity = 16384);
  ~DecisionLog();
  DecisionLog(const DecisionLog&) = delete;
  DecisionLog& operator=(const DecisionLog&) = delete;

  void onDecision(const nfq::DecisionEvent& event) noexcept override;

  // Writes whatever is queued now (also called on shutdown).
  void drain();
  uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }

 private:
  static void onTimer(evutil_socket_t, short, void* arg);
  static void writeLine(const DecisionRecord& record);

  std::mutex mutex_;
  std::vector<DecisionRecord> ring_;
  size_t head_ = 0;  // next to write
  size_t size_ = 0;
  std::vector<DecisionRecord> batch_;  // drained copies, reused
  std::atomic<uint64_t> dropped_{0};
  common::CHandle<event, event_free> timer_;
};

// "tcp", "udp", "icmp", "icmpv6" or the number.
std::string protocolName(uint8_t protocol);

}  // namespace daemon_main

#include "daemon/decision_log.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "common/log.h"

namespace daemon_main {

namespace {
std::string endpoint(const common::IpAddress& ip, uint16_t port) {
  if (ip.family == common::IpFamily::V6) return "[" + ip.toString() + "]:" + std::to_string(port);
  return ip.toString() + ":" + std::to_string(port);
}

void appendBounded(DecisionRecord& record, std::string_view text) {
  const size_t room = record.ruleSets.size() - record.ruleSetsLength;
  const size_t n = std::min(room, text.size());
  std::memcpy(record.ruleSets.data() + record.ruleSetsLength, text.data(), n);
  record.ruleSetsLength = static_cast<uint16_t>(record.ruleSetsLength + n);
}
}  // namespace

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

DecisionLog::DecisionLog(event_base* base, size_t capacity) : ring_(capacity) {
  batch_.reserve(capacity);
  timer_.reset(event_new(base, -1, EV_PERSIST, &DecisionLog::onTimer, this));
  const timeval interval{0, 50'000};
  if (timer_) event_add(timer_.get(), &interval);
}

DecisionLog::~DecisionLog() {
  drain();
}

void DecisionLog::onDecision(const nfq::DecisionEvent& event) noexcept {
  const std::lock_guard lock(mutex_);
  if (size_ == ring_.size()) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  DecisionRecord& record = ring_[(head_ + size_) % ring_.size()];
  ++size_;
  record.time = event.time;
  record.src = event.src;
  record.dst = event.dst;
  record.srcPort = event.srcPort;
  record.dstPort = event.dstPort;
  record.protocol = event.protocol;
  record.queue = event.queue;
  record.verdict = event.decision.verdict;
  record.enforced = event.decision.enforced;
  record.reason = event.decision.reason;
  record.nameSource = event.decision.nameSource;
  record.matchKind = event.decision.matchKind;
  record.nameLength = event.decision.nameLength;
  std::memcpy(record.name.data(), event.decision.nameBytes.data(), event.decision.nameLength);
  record.ruleSetsLength = 0;
  if (event.policy != nullptr) {
    const auto& sets = event.policy->ruleSets();
    bool first = true;
    for (uint32_t index : event.decision.ruleSets) {
      if (index >= sets.size()) continue;
      if (!first) appendBounded(record, ",");
      first = false;
      if (record.ruleSetsLength + sets[index].id.size() + 4 > record.ruleSets.size()) {
        appendBounded(record, "...");
        break;
      }
      appendBounded(record, sets[index].id);
    }
  }
}

void DecisionLog::onTimer(evutil_socket_t, short, void* arg) {
  static_cast<DecisionLog*>(arg)->drain();
}

void DecisionLog::drain() {
  batch_.clear();
  {
    const std::lock_guard lock(mutex_);
    for (; size_ > 0; --size_) {
      batch_.push_back(ring_[head_]);
      head_ = (head_ + 1) % ring_.size();
    }
  }
  for (const DecisionRecord& record : batch_) writeLine(record);
  const uint64_t lost = dropped_.exchange(0, std::memory_order_relaxed);
  if (lost > 0) {
    common::LogLine(common::LogLevel::Warn, "verdict.events_dropped").field("count", lost);
  }
}

void DecisionLog::writeLine(const DecisionRecord& record) {
  const bool audit = record.verdict == nfq::Verdict::AuditAllow;
  common::LogLine line(common::LogLevel::Info, "verdict");
  line.field("src", endpoint(record.src, record.srcPort))
      .field("dst", endpoint(record.dst, record.dstPort))
      .field("proto", protocolName(record.protocol))
      .field("verdict", audit ? std::string_view("audit") : nfq::verdictName(record.verdict));
  if (audit) line.field("would", nfq::verdictName(record.enforced));
  line.field("reason", nfq::reasonName(record.reason));
  if (record.nameLength > 0) {
    line.field("name", std::string_view(record.name.data(), record.nameLength))
        .field("name_from", nfq::nameSourceName(record.nameSource));
  }
  if (record.ruleSetsLength > 0) {
    line.field("rulesets", std::string_view(record.ruleSets.data(), record.ruleSetsLength))
        .field("match", policy::matchKindName(record.matchKind));
  }
}

}  // namespace daemon_main

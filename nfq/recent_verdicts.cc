#include "nfq/recent_verdicts.h"

#include <algorithm>
#include <bit>
#include <random>
#include <stdexcept>

namespace nfq {

RecentVerdicts::RecentVerdicts(size_t capacity, std::chrono::nanoseconds lifetime) : lifetime_(lifetime) {
  if (capacity == 0) throw std::invalid_argument("recent verdicts: capacity must be positive");
  const size_t sets = std::bit_ceil((capacity + kWays - 1) / kWays);
  entries_.resize(sets * kWays);
  setMask_ = sets - 1;
  std::random_device random;
  seed_ = (uint64_t{random()} << 32) ^ random();
}

void RecentVerdicts::record(const FlowKey& key, Verdict verdict, Reason reason,
                            std::optional<TcpPosition> tcp, size_t length, TimePoint now) noexcept {
  Entry* ways = set(key);
  if (tcp && verdict != Verdict::Deny) {
    // See the header: never carry an allow over. A deny of an older
    // connection on the 5-tuple is over too.
    for (size_t i = 0; i < kWays; ++i) {
      if (ways[i].inUse && ways[i].key == key) ways[i].inUse = false;
    }
    return;
  }
  Entry* target = nullptr;
  for (size_t i = 0; i < kWays; ++i) {
    if (ways[i].inUse && ways[i].key == key) {
      target = &ways[i];  // the same 5-tuple decided again: replace
      break;
    }
  }
  if (target == nullptr) {
    // An unused or expired way, else the oldest (earliest expiry).
    target = &ways[0];
    for (size_t i = 0; i < kWays; ++i) {
      Entry& way = ways[i];
      if (!way.inUse || way.expires <= now) {
        target = &way;
        break;
      }
      if (way.expires < target->expires) target = &way;
    }
    if (target->inUse && target->expires > now) ++stats_.overwritten;
  }
  target->key = key;
  target->expires = now + lifetime_;
  target->hasSeq = tcp.has_value();
  target->seq = tcp ? tcp->seq : 0;
  target->syn = tcp && tcp->syn;
  target->length = static_cast<uint32_t>(std::min<size_t>(length, UINT32_MAX - kTcpWindow));
  target->inUse = true;
  target->verdict = verdict;
  target->reason = reason;
  ++stats_.recorded;
}

const RecentVerdicts::Entry* RecentVerdicts::find(const FlowKey& key, std::optional<TcpPosition> tcp,
                                                  TimePoint now) noexcept {
  Entry* ways = set(key);
  for (size_t i = 0; i < kWays; ++i) {
    Entry& way = ways[i];
    if (!way.inUse || !(way.key == key)) continue;
    if (way.expires <= now) {
      way.inUse = false;
      return nullptr;
    }
    if (way.hasSeq && tcp) {
      // RFC 9293 section 3.4: distances modulo 2^32. A segment of this
      // connection starts at or after the first decided byte, at most a
      // window beyond the last one; a SYN is the decided one again or
      // another connection.
      const uint32_t ahead = tcp->seq - way.seq;
      const bool covered = tcp->syn ? (way.syn && ahead == 0) : ahead <= way.length + kTcpWindow;
      if (!covered) {
        way.inUse = false;
        ++stats_.outOfWindow;
        return nullptr;
      }
    }
    ++stats_.hits;
    return &way;
  }
  return nullptr;
}

void RecentVerdicts::clear() noexcept {
  for (Entry& entry : entries_) entry.inUse = false;
}

}  // namespace nfq

#include "nfq/insertion_guard.h"

#include <bit>
#include <random>
#include <stdexcept>

namespace nfq {

bool needsConfirmation(const Decision& decision, const DecideOptions& options, bool hadPayload) noexcept {
  if (decision.verdict != Verdict::Allow || !hadPayload) return false;
  switch (decision.reason) {
    case Reason::SniAllowed:
    case Reason::HostAllowed:
      return true;
    case Reason::BoundAddress:
      // Inspected bound flows: these bytes carried no TLS/HTTP name; other
      // bytes at the same place could have carried a denied one.
      return options.inspectBoundFlows;
    default:
      return false;
  }
}

SegmentCheck classifySegment(uint32_t judgedStart, size_t judgedLength, uint32_t seq,
                             size_t payloadLength) noexcept {
  // RFC 9293 section 3.4: distances modulo 2^32; "before" is a distance of
  // 2^31 or more.
  const uint32_t offset = seq - judgedStart;
  if (offset >= (1U << 31)) return {SegmentPlace::Before, 0};
  if (offset >= judgedLength || payloadLength == 0) return {SegmentPlace::After, 0};
  return {SegmentPlace::Overlap, std::min(payloadLength, judgedLength - offset)};
}

bool acknowledges(uint32_t ack, uint32_t judgedEnd, uint32_t passedEnd) noexcept {
  // The client's FIN takes one sequence number after its last byte.
  const uint32_t beyond = ack - judgedEnd;
  return beyond <= passedEnd - judgedEnd + 1 && beyond < (1U << 31);
}

std::optional<StreamStarts::Start> newestStart(const std::optional<StreamStarts::Start>& known,
                                               const std::optional<StreamStarts::Start>& kernel,
                                               std::chrono::nanoseconds lifetime, TimePoint now,
                                               bool& fromKernel) noexcept {
  fromKernel = false;
  if (!kernel || kernel->at + lifetime <= now || (known && known->at > kernel->at)) return known;
  fromKernel = true;
  return kernel;
}

std::optional<Reason> checkStreamStart(const std::optional<StreamStarts::Start>& known, uint32_t start,
                                       uint32_t indev) noexcept {
  if (!known || (known->replyIndev != 0 && known->replyIndev == indev)) return Reason::StreamStartUnknown;
  if (known->seq != start) return Reason::NotStreamStart;
  return std::nullopt;
}

FlowKey replyKey(const PacketView& packet) noexcept {
  FlowKey key;
  key.src = packet.dst;
  key.dst = packet.src;
  key.srcPort = packet.dstPort;
  key.dstPort = packet.srcPort;
  key.protocol = packet.protocol;
  return key;
}

StreamStarts::StreamStarts(size_t capacity, std::chrono::nanoseconds lifetime) : lifetime_(lifetime) {
  if (capacity == 0) throw std::invalid_argument("stream starts: capacity must be positive");
  const size_t sets = std::bit_ceil((capacity + kWays - 1) / kWays);
  sets_.resize(sets);
  setMask_ = sets - 1;
  std::random_device random;
  seed_ = (uint64_t{random()} << 32) ^ random();
}

void StreamStarts::record(const FlowKey& key, Start start, TimePoint now) noexcept {
  const size_t hash = key.hash(seed_);
  const uint32_t tag = tagOf(hash);
  Set& set = setOf(hash);
  size_t target = kWays;
  for (size_t i = 0; i < kWays && target == kWays; ++i) {
    if (set.tags[i] == tag && set.ways[i].key == key) target = i;
  }
  if (target == kWays) {
    // A free or expired way, else the one that expires first.
    target = 0;
    for (size_t i = 0; i < kWays; ++i) {
      if (set.tags[i] == 0 || set.expires[i] <= now) {
        target = i;
        break;
      }
      if (set.expires[i] < set.expires[target]) target = i;
    }
    if (set.tags[target] != 0 && set.expires[target] > now) ++overwritten_;
  }
  set.tags[target] = tag;
  set.expires[target] = now + lifetime_;
  set.ways[target] = {key, start};
}

std::optional<StreamStarts::Start> StreamStarts::find(const FlowKey& key, TimePoint now) const noexcept {
  const size_t hash = key.hash(seed_);
  const uint32_t tag = tagOf(hash);
  const Set& set = setOf(hash);
  for (size_t i = 0; i < kWays; ++i) {
    if (set.tags[i] == tag && set.expires[i] > now && set.ways[i].key == key) return set.ways[i].start;
  }
  return std::nullopt;
}

void StreamStarts::erase(const FlowKey& key) noexcept {
  const size_t hash = key.hash(seed_);
  const uint32_t tag = tagOf(hash);
  Set& set = setOf(hash);
  for (size_t i = 0; i < kWays; ++i) {
    if (set.tags[i] == tag && set.ways[i].key == key) set.tags[i] = 0;
  }
}

}  // namespace nfq

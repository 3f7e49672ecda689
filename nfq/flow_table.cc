#include "nfq/flow_table.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <random>
#include <stdexcept>

namespace nfq {
namespace {

// SipHash would be stronger; a seeded multiply-xorshift over the whole key
// is enough against precomputed collisions (the seed is not observable).
uint64_t mix(uint64_t h, uint64_t v) noexcept {
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  h *= 0xbf58476d1ce4e5b9ULL;
  return h ^ (h >> 31);
}

uint64_t load64(const uint8_t* p) noexcept {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

FlowKey FlowKey::of(const PacketView& packet) noexcept {
  FlowKey key;
  key.src = packet.src;
  key.dst = packet.dst;
  key.srcPort = packet.srcPort;
  key.dstPort = packet.dstPort;
  key.protocol = packet.protocol;
  return key;
}

size_t FlowKey::hash(uint64_t seed) const noexcept {
  uint64_t h = seed;
  h = mix(h, load64(src.bytes.data()));
  h = mix(h, load64(src.bytes.data() + 8));
  h = mix(h, load64(dst.bytes.data()));
  h = mix(h, load64(dst.bytes.data() + 8));
  h = mix(h, (uint64_t{srcPort} << 32) | (uint64_t{dstPort} << 16) | (uint64_t{protocol} << 8) |
                 static_cast<uint64_t>(src.family));
  return static_cast<size_t>(h);
}

FlowTable::FlowTable(const FlowTableOptions& options)
    : options_(options),
      slots_(validated(options).maxFlows),
      index_(std::bit_ceil(options.maxFlows * 2)),
      pool_(options.poolBytes / options.chunkBytes * options.chunkBytes) {
  freeSlots_.reserve(options.maxFlows);
  indexMask_ = index_.size() - 1;
  const size_t chunks = options.poolBytes / options.chunkBytes;
  freeChunks_.reserve(chunks);
  // Lowest chunk on top: like the slots, the pool's pages are committed as
  // far as the most chunks ever in use at once reach.
  for (size_t i = chunks; i-- > 0;) freeChunks_.push_back(static_cast<uint32_t>(i));
  std::random_device random;
  seed_ = (uint64_t{random()} << 32) ^ random();
}

const FlowTableOptions& FlowTable::validated(const FlowTableOptions& options) {
  if (options.maxFlows == 0 || options.maxFlows >= kNone / 2 || options.chunkBytes == 0 ||
      options.maxFlowBytes == 0 || options.poolBytes < options.chunkBytes) {
    throw std::invalid_argument("flow table: sizes must be positive and the pool hold at least one chunk");
  }
  if ((options.maxFlowBytes + options.chunkBytes - 1) / options.chunkBytes > kMaxChunksPerFlow) {
    throw std::invalid_argument("flow table: max_flow_bytes needs more than 64 chunks; use larger chunks");
  }
  return options;
}

FlowTable::Flow* FlowTable::find(const FlowKey& key) noexcept {
  for (size_t i = bucketOf(key);; i = (i + 1) & indexMask_) {
    const uint32_t entry = index_[i];
    if (entry == 0) return nullptr;
    if (slots_[entry - 1].key == key) return &slots_[entry - 1];
  }
}

FlowTable::Flow& FlowTable::insertUnchecked(const FlowKey& key, TimePoint now) noexcept {
  uint32_t slot = 0;
  if (!freeSlots_.empty()) {
    slot = freeSlots_.back();
    freeSlots_.pop_back();
  } else {
    slot = static_cast<uint32_t>(unusedFrom_++);  // the caller evicted when full()
  }
  Flow& flow = slots_[slot];
  flow = Flow{};
  flow.key = key;
  flow.firstSeen = now;
  flow.inUse = true;
  // Newest at the tail: with one hold timeout for all, insertion order is
  // expiry order, so expire() and eviction only ever look at the head.
  flow.prev = tail_;
  if (tail_ != kNone) slots_[tail_].next = slot;
  tail_ = slot;
  if (head_ == kNone) head_ = slot;
  size_t i = bucketOf(key);
  while (index_[i] != 0) i = (i + 1) & indexMask_;  // never full: twice the slots
  index_[i] = slot + 1;
  counters_.active.add();
  counters_.inserted.add();
  return flow;
}

void FlowTable::indexRemove(uint32_t slot) noexcept {
  size_t i = bucketOf(slots_[slot].key);
  while (index_[i] != slot + 1) i = (i + 1) & indexMask_;
  index_[i] = 0;
  // Backward-shift deletion: move later entries of the probe run into the
  // hole unless their home bucket lies cyclically in (hole, position].
  for (size_t j = (i + 1) & indexMask_; index_[j] != 0; j = (j + 1) & indexMask_) {
    const size_t home = bucketOf(slots_[index_[j] - 1].key);
    const bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (stays) continue;
    index_[i] = index_[j];
    index_[j] = 0;
    i = j;
  }
}

FlowTable::Append FlowTable::append(Flow& flow, std::optional<uint32_t> seq, std::span<const uint8_t> payload,
                                    uint32_t packetId) noexcept {
  if (seq) {
    if (!flow.seqKnown) {
      flow.nextSeq = *seq;
      flow.seqKnown = true;
    } else if (*seq != flow.nextSeq) {
      // RFC 9293 section 3.4: sequence numbers compare modulo 2^32.
      const uint32_t behind = flow.nextSeq - *seq;
      if (behind < (1U << 31) && behind >= payload.size()) {
        counters_.duplicates.add();
        return Append::Duplicate;
      }
      counters_.outOfOrder.add();
      return Append::OutOfOrder;
    }
  }
  if (flow.heldCount == kMaxHeldPackets || payload.size() > options_.maxFlowBytes - flow.length) {
    counters_.bufferFull.add();
    return Append::BufferFull;
  }
  const size_t chunkBytes = options_.chunkBytes;
  const size_t needed = (flow.length + payload.size() + chunkBytes - 1) / chunkBytes;
  if (needed > flow.chunkCount && needed - flow.chunkCount > freeChunks_.size()) {
    counters_.poolExhausted.add();
    return Append::PoolExhausted;
  }
  while (flow.chunkCount < needed) {
    flow.chunks[flow.chunkCount++] = freeChunks_.back();
    freeChunks_.pop_back();
  }
  size_t copied = 0;
  while (copied < payload.size()) {
    const size_t at = flow.length + copied;
    const size_t room = chunkBytes - at % chunkBytes;
    const size_t n = std::min(room, payload.size() - copied);
    std::memcpy(chunk(flow.chunks[at / chunkBytes]) + at % chunkBytes, payload.data() + copied, n);
    copied += n;
  }
  flow.length += payload.size();
  flow.packetIds[flow.heldCount++] = packetId;
  if (seq) flow.nextSeq += static_cast<uint32_t>(payload.size());
  return Append::Appended;
}

std::span<const uint8_t> FlowTable::stream(const Flow& flow, std::span<uint8_t> scratch) const noexcept {
  if (flow.chunkCount == 0) return {};
  if (flow.chunkCount == 1) return {chunk(flow.chunks[0]), flow.length};
  const size_t total = std::min(flow.length, scratch.size());
  for (size_t at = 0; at < total;) {
    const size_t n = std::min(options_.chunkBytes, total - at);
    std::memcpy(scratch.data() + at, chunk(flow.chunks[at / options_.chunkBytes]), n);
    at += n;
  }
  return scratch.first(total);
}

bool FlowTable::holdsCopy(const Flow& flow, uint32_t seq, std::span<const uint8_t> payload) const noexcept {
  if (!flow.seqKnown || payload.empty()) return false;
  // RFC 9293 section 3.4: offsets from the first held byte, modulo 2^32.
  const uint32_t first = flow.nextSeq - static_cast<uint32_t>(flow.length);
  const size_t offset = seq - first;
  if (offset >= flow.length || payload.size() > flow.length - offset) return false;
  const size_t chunkBytes = options_.chunkBytes;
  for (size_t done = 0; done < payload.size();) {
    const size_t at = offset + done;
    const size_t n = std::min(chunkBytes - at % chunkBytes, payload.size() - done);
    if (std::memcmp(chunk(flow.chunks[at / chunkBytes]) + at % chunkBytes, payload.data() + done, n) != 0) {
      return false;
    }
    done += n;
  }
  return true;
}

void FlowTable::release(Flow& flow) noexcept {
  unlink(flow);
  counters_.released.add();
}

FlowTableStats FlowTable::stats() const noexcept {
  FlowTableStats out;
  out.active = static_cast<size_t>(counters_.active.load());
  out.inserted = counters_.inserted.load();
  out.released = counters_.released.load();
  out.expired = counters_.expired.load();
  out.evicted = counters_.evicted.load();
  out.duplicates = counters_.duplicates.load();
  out.outOfOrder = counters_.outOfOrder.load();
  out.bufferFull = counters_.bufferFull.load();
  out.poolExhausted = counters_.poolExhausted.load();
  return out;
}

void FlowTable::unlink(Flow& flow) noexcept {
  const auto slot = static_cast<uint32_t>(slotIndex(flow));
  indexRemove(slot);
  if (flow.prev != kNone) {
    slots_[flow.prev].next = flow.next;
  } else {
    head_ = flow.next;
  }
  if (flow.next != kNone) {
    slots_[flow.next].prev = flow.prev;
  } else {
    tail_ = flow.prev;
  }
  for (uint32_t i = 0; i < flow.chunkCount; ++i) freeChunks_.push_back(flow.chunks[i]);
  flow = Flow{};
  freeSlots_.push_back(slot);
  counters_.active.sub();
}

std::optional<FlowTable::TimePoint> FlowTable::nextExpiry() const noexcept {
  if (head_ == kNone) return std::nullopt;
  return slots_[head_].firstSeen + options_.holdTimeout;
}

}  // namespace nfq

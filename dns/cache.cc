#include "dns/cache.h"

#include <algorithm>
#include <cstring>

namespace dns {

AnswerCache::AnswerCache(size_t maxEntries) : maxEntries_(maxEntries) {
  index_.reserve(std::min(maxEntries_, kMaxReserved));
}

size_t AnswerCache::buildKey(const Query& query, char* out) noexcept {
  out[0] = static_cast<char>(query.qtype >> 8);
  out[1] = static_cast<char>(query.qtype);
  out[2] = static_cast<char>(query.qclass >> 8);
  out[3] = static_cast<char>(query.qclass);
  // The answer depends on EDNS presence (OPT or not), DO (DNSSEC records)
  // and CD (validation) of the query.
  out[4] = static_cast<char>((query.hasEdns ? 1 : 0) | (query.dnssecOk ? 2 : 0) |
                             ((query.header.flags & flag::CD) != 0 ? 4 : 0));
  std::memcpy(out + kKeyPrefix, query.qname.text.data(), query.qname.length);
  return kKeyPrefix + size_t{query.qname.length};
}

AnswerCache::Hit AnswerCache::lookup(const Query& query, std::span<const uint8_t> queryWire,
                                     uint64_t policyGeneration, TimePoint now, std::span<uint8_t> out,
                                     bool countHit) noexcept {
  Hit hit;
  if (maxEntries_ == 0) return hit;
  char key[kKeyPrefix + kMaxWireNameLength];
  const size_t keyLength = buildKey(query, key);
  const auto found = index_.find(IndexKey::of(std::string_view(key, keyLength)));
  if (found == index_.end()) {
    ++misses_;
    return hit;
  }
  const Lru::iterator it = found->second;
  Entry& entry = *it;
  if (entry.expiry <= now || entry.generation != policyGeneration) {
    erase(it);
    ++misses_;
    return hit;
  }
  const size_t length = entry.answer.size();
  if (length > out.size() || query.questionEnd > length || query.questionEnd > queryWire.size()) {
    ++misses_;
    return hit;
  }
  std::memcpy(out.data(), entry.answer.data(), length);
  // The client's ID, and its question bytes as sent (0x20 case
  // randomisation survives; same name, so same length).
  std::memcpy(out.data(), queryWire.data(), 2);
  std::memcpy(out.data() + kHeaderSize, queryWire.data() + kHeaderSize, query.questionEnd - kHeaderSize);
  // RD comes from this query, the rest from the stored answer.
  uint16_t flags = readU16(out.data() + 2);
  flags = static_cast<uint16_t>((flags & ~flag::RD) | (query.header.flags & flag::RD));
  writeU16(out.data() + 2, flags);
  const auto elapsed = std::chrono::duration_cast<std::chrono::seconds>(now - entry.stored).count();
  const uint32_t age = elapsed <= 0 ? 0 : static_cast<uint32_t>(std::min<int64_t>(elapsed, UINT32_MAX));
  for (const uint16_t offset : entry.ttlOffsets) {
    const uint32_t ttl = readU32(entry.answer.data() + offset);
    writeU32(out.data() + offset, ttl > age ? ttl - age : 0);
  }
  lru_.splice(lru_.begin(), lru_, it);
  ++hits_;
  if (countHit && entry.untakenHits++ == 0) {
    entry.hitsNext = hitsHead_;
    if (hitsHead_ != nullptr) hitsHead_->hitsPrev = &entry;
    hitsHead_ = &entry;
  }
  hit.length = length;
  hit.bindings = entry.bindings;
  hit.answerFlags = flags;
  hit.answerCount = readU16(out.data() + 6);
  hit.bindingsStamp = &entry.bindingsStamp;
  return hit;
}

void AnswerCache::insert(const Query& query, std::span<const uint8_t> answer, uint32_t ttlSeconds,
                         uint64_t policyGeneration, TimePoint now, std::span<const CachedBinding> bindings,
                         uint64_t bindingsStamp) {
  if (maxEntries_ == 0 || ttlSeconds == 0 || answer.size() < query.questionEnd) return;
  MessageReader reader;
  // The stored question must have the layout of every later query for the
  // same key, so that the client's question bytes can be copied over it.
  if (!reader.start(answer) || reader.questionEnd() != query.questionEnd) return;
  Entry entry;
  ResourceRecord rr;
  while (reader.next(rr)) {
    if (rr.type == rrtype::OPT) continue;  // its "TTL" is EDNS flags
    if (rr.ttlOffset > UINT16_MAX) return;
    entry.ttlOffsets.push_back(static_cast<uint16_t>(rr.ttlOffset));
  }
  if (reader.failed()) return;
  char key[kKeyPrefix + kMaxWireNameLength];
  entry.key.assign(key, buildKey(query, key));
  entry.answer.assign(answer.begin(), answer.end());
  entry.bindings.assign(bindings.begin(), bindings.end());
  entry.stored = now;
  entry.expiry = now + std::chrono::seconds(ttlSeconds);
  entry.generation = policyGeneration;
  entry.bindingsStamp = bindingsStamp;

  const auto existing = index_.find(IndexKey::of(entry.key));
  if (existing != index_.end()) erase(existing->second);
  while (lru_.size() >= maxEntries_ && !lru_.empty()) {
    erase(std::prev(lru_.end()));
    ++evictions_;
  }
  bytes_ += entry.answer.size();
  lru_.push_front(std::move(entry));
  index_.emplace(IndexKey::of(lru_.front().key), lru_.begin());
}

void AnswerCache::unlinkHits(Entry& entry) noexcept {
  if (entry.hitsPrev != nullptr) {
    entry.hitsPrev->hitsNext = entry.hitsNext;
  } else {
    hitsHead_ = entry.hitsNext;
  }
  if (entry.hitsNext != nullptr) entry.hitsNext->hitsPrev = entry.hitsPrev;
  entry.hitsPrev = nullptr;
  entry.hitsNext = nullptr;
  entry.untakenHits = 0;
}

void AnswerCache::takeHits(const HitSink& take) {
  while (hitsHead_ != nullptr) {
    Entry& entry = *hitsHead_;
    const uint64_t hits = entry.untakenHits;
    unlinkHits(entry);
    if (take) take(entry.name(), hits);
  }
}

void AnswerCache::erase(Lru::iterator it) noexcept {
  if (it->untakenHits != 0) {
    // Reported before the entry (and the name it counts) is gone.
    const uint64_t hits = it->untakenHits;
    unlinkHits(*it);
    if (hitSink_) hitSink_(it->name(), hits);
  }
  bytes_ -= it->answer.size();
  index_.erase(IndexKey::of(it->key));
  lru_.erase(it);
}

void AnswerCache::setMaxEntries(size_t maxEntries) {
  maxEntries_ = maxEntries;
  // reserve() never shrinks: a smaller bound keeps the buckets it has.
  index_.reserve(std::min(maxEntries_, kMaxReserved));
  while (lru_.size() > maxEntries_) {
    erase(std::prev(lru_.end()));
    ++evictions_;
  }
}

void AnswerCache::clear() {
  takeHits(hitSink_);
  index_.clear();
  lru_.clear();
  bytes_ = 0;
}

CacheStats AnswerCache::stats() const noexcept {
  return CacheStats{lru_.size(), bytes_, hits_, misses_, evictions_};
}

}  // namespace dns

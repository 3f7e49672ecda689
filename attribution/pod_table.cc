#include "attribution/pod_table.h"

#include <algorithm>
#include <cstring>

namespace attribution {

namespace {

constexpr uint64_t kMix = 0x9e3779b97f4a7c15ULL;  // 2^64 / golden ratio (Fibonacci hashing)
constexpr uint64_t kMix2 = 0xbf58476d1ce4e5b9ULL;
constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

std::string_view cut(std::string_view text, size_t limit) noexcept {
  return text.substr(0, std::min(text.size(), limit));
}

// One multiply: the product's top bits depend on every bit of the address,
// and pod addresses (which differ in their last bytes) spread evenly.
uint64_t hashV4(uint32_t address) noexcept {
  return static_cast<uint64_t>(address) * kMix;
}

uint64_t hashV6(const std::array<uint8_t, 16>& address) noexcept {
  uint64_t high = 0;
  uint64_t low = 0;
  std::memcpy(&high, address.data(), 8);
  std::memcpy(&low, address.data() + 8, 8);
  return (low ^ (high * kMix)) * kMix2;
}

// What a log line (logfmt or JSON) writes without quotes or escapes.
bool plainText(std::string_view text) noexcept {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return c > ' ' && c < 0x7f && c != '"' && c != '=' && c != '\\'; });
}

// A power of two at least twice `count` (at least 16), and the shift that
// takes a 64-bit hash to a bucket of it.
size_t bucketCount(size_t count, unsigned& shift) noexcept {
  size_t buckets = 16;
  shift = 60;
  while (buckets < count * 2) {
    buckets *= 2;
    --shift;
  }
  return buckets;
}

}  // namespace

PodTable PodTable::build(const std::vector<PodRecord>& records) {
  PodTable table;
  size_t v4Count = 0;
  size_t textBytes = 0;
  for (const PodRecord& record : records) {
    if (record.ip.unmapped().family == common::IpFamily::V4) ++v4Count;
    textBytes += record.ns.size() + record.pod.size() + record.workload.size() + record.serviceAccount.size();
  }
  const size_t v6Count = records.size() - v4Count;
  if (v4Count > 0) table.v4_.assign(bucketCount(v4Count, table.v4Shift_), V4Bucket{});
  if (v6Count > 0) table.v6_.assign(bucketCount(v6Count, table.v6Shift_), V6Bucket{});
  table.arena_.reserve(textBytes);
  table.entries_.reserve(records.size());
  for (const PodRecord& record : records) {
    // The bucket this address goes to, or nothing when an earlier record
    // has it (the first one stays).
    uint32_t* bucketEntry = nullptr;
    const common::IpAddress ip = record.ip.unmapped();
    if (ip.family == common::IpFamily::V4) {
      uint32_t address = 0;
      std::memcpy(&address, ip.bytes.data(), 4);
      if (table.findV4(address) != 0) continue;
      const size_t mask = table.v4_.size() - 1;
      size_t at = hashV4(address) >> table.v4Shift_;
      while (table.v4_[at].entry != 0) at = (at + 1) & mask;
      table.v4_[at].address = address;
      bucketEntry = &table.v4_[at].entry;
    } else {
      if (table.findV6(ip.bytes) != 0) continue;
      const size_t mask = table.v6_.size() - 1;
      size_t at = hashV6(ip.bytes) >> table.v6Shift_;
      while (table.v6_[at].entry != 0) at = (at + 1) & mask;
      table.v6_[at].address = ip.bytes;
      bucketEntry = &table.v6_[at].entry;
    }
    const std::string_view ns = cut(record.ns, observe::kMaxEventNamespace);
    const std::string_view pod = cut(record.pod, observe::kMaxEventPod);
    const std::string_view workload = cut(record.workload, observe::kMaxEventWorkload);
    const std::string_view account = cut(record.serviceAccount, observe::kMaxEventServiceAccount);
    Entry entry;
    entry.offset = static_cast<uint32_t>(table.arena_.size());
    entry.namespaceLength = static_cast<uint8_t>(ns.size());
    entry.podLength = static_cast<uint8_t>(pod.size());
    entry.workloadLength = static_cast<uint16_t>(workload.size());
    entry.serviceAccountLength = static_cast<uint8_t>(account.size());
    entry.plain = plainText(ns) && plainText(pod) && plainText(workload) && plainText(account);
    table.arena_.append(ns).append(pod).append(workload).append(account);
    table.entries_.push_back(entry);
    *bucketEntry = static_cast<uint32_t>(table.entries_.size());
  }
  table.entries_.shrink_to_fit();
  table.arena_.shrink_to_fit();
  return table;
}

// At most half full: an empty bucket ends every probe sequence.
uint32_t PodTable::findV4(uint32_t address) const noexcept {
  if (v4_.empty()) return 0;
  const size_t mask = v4_.size() - 1;
  for (size_t at = hashV4(address) >> v4Shift_;; at = (at + 1) & mask) {
    const V4Bucket& bucket = v4_[at];
    if (bucket.entry == 0 || bucket.address == address) return bucket.entry;
  }
}

uint32_t PodTable::findV6(const std::array<uint8_t, 16>& address) const noexcept {
  if (v6_.empty()) return 0;
  const size_t mask = v6_.size() - 1;
  for (size_t at = hashV6(address) >> v6Shift_;; at = (at + 1) & mask) {
    const V6Bucket& bucket = v6_[at];
    if (bucket.entry == 0 || bucket.address == address) return bucket.entry;
  }
}

PodRef PodTable::find(const common::IpAddress& ip) const noexcept {
  uint32_t entry = 0;
  if (ip.family == common::IpFamily::V4) {
    uint32_t address = 0;
    std::memcpy(&address, ip.bytes.data(), 4);
    entry = findV4(address);
  } else if (std::memcmp(ip.bytes.data(), kMappedPrefix, sizeof kMappedPrefix) == 0) {
    uint32_t address = 0;
    std::memcpy(&address, ip.bytes.data() + 12, 4);
    entry = findV4(address);
  } else {
    entry = findV6(ip.bytes);
  }
  return entry == 0 ? PodRef{} : PodRef{entry - 1};
}

PodNames PodTable::names(PodRef pod) const noexcept {
  const Entry& entry = entries_[pod.index];
  const char* text = arena_.data() + entry.offset;
  PodNames out;
  out.ns = {text, entry.namespaceLength};
  text += entry.namespaceLength;
  out.pod = {text, entry.podLength};
  text += entry.podLength;
  out.workload = {text, entry.workloadLength};
  text += entry.workloadLength;
  out.serviceAccount = {text, entry.serviceAccountLength};
  out.plain = entry.plain;
  return out;
}

void PodTable::copyTo(PodRef pod, observe::PodIdentity& out) const noexcept {
  const PodNames names = this->names(pod);
  out.assign(names.ns, names.pod, names.workload, names.serviceAccount);
}

}  // namespace attribution

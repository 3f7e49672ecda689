#include "attribution/pod_table.h"

#include <algorithm>
#include <cstring>
#include <string_view>

namespace attribution {

namespace {

std::string_view cut(std::string_view text, size_t limit) noexcept {
  return text.substr(0, std::min(text.size(), limit));
}

}  // namespace

PodTable::Key PodTable::keyOf(const common::IpAddress& ip) noexcept {
  const common::IpAddress plain = ip.unmapped();
  Key key{};
  if (plain.family == common::IpFamily::V4) {
    key[10] = 0xff;
    key[11] = 0xff;
    std::memcpy(key.data() + 12, plain.bytes.data(), 4);
  } else {
    key = plain.bytes;
  }
  return key;
}

size_t PodTable::hashOf(const Key& key) noexcept {
  uint64_t high = 0;
  uint64_t low = 0;
  std::memcpy(&high, key.data(), 8);
  std::memcpy(&low, key.data() + 8, 8);
  // A multiplicative mix (the constants of splitmix64): pod addresses
  // differ in their last bytes, which must reach the bucket bits.
  uint64_t x = low ^ (high * 0x9e3779b97f4a7c15ULL);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return static_cast<size_t>(x ^ (x >> 31));
}

PodTable PodTable::build(const std::vector<PodRecord>& records) {
  PodTable table;
  size_t textBytes = 0;
  for (const PodRecord& record : records) {
    textBytes += record.ns.size() + record.pod.size() + record.workload.size() + record.serviceAccount.size();
  }
  table.arena_.reserve(textBytes);
  table.slots_.reserve(records.size());
  for (const PodRecord& record : records) {
    const std::string_view ns = cut(record.ns, observe::kMaxEventNamespace);
    const std::string_view pod = cut(record.pod, observe::kMaxEventPod);
    const std::string_view workload = cut(record.workload, observe::kMaxEventWorkload);
    const std::string_view account = cut(record.serviceAccount, observe::kMaxEventServiceAccount);
    Slot slot{};
    slot.key = keyOf(record.ip);
    slot.offset = static_cast<uint32_t>(table.arena_.size());
    slot.namespaceLength = static_cast<uint8_t>(ns.size());
    slot.podLength = static_cast<uint8_t>(pod.size());
    slot.workloadLength = static_cast<uint16_t>(workload.size());
    slot.serviceAccountLength = static_cast<uint8_t>(account.size());
    table.arena_.append(ns).append(pod).append(workload).append(account);
    table.slots_.push_back(slot);
  }
  // Stable: of two records for one address, the first stays in front and
  // unique() keeps it.
  std::stable_sort(table.slots_.begin(), table.slots_.end(),
                   [](const Slot& a, const Slot& b) { return a.key < b.key; });
  table.slots_.erase(std::unique(table.slots_.begin(), table.slots_.end(),
                                 [](const Slot& a, const Slot& b) { return a.key == b.key; }),
                     table.slots_.end());
  table.slots_.shrink_to_fit();
  size_t buckets = 16;
  while (buckets < table.slots_.size() * 2) buckets *= 2;
  table.buckets_.assign(buckets, 0);
  const size_t mask = buckets - 1;
  for (size_t i = 0; i < table.slots_.size(); ++i) {
    size_t at = hashOf(table.slots_[i].key) & mask;
    while (table.buckets_[at] != 0) at = (at + 1) & mask;
    table.buckets_[at] = static_cast<uint32_t>(i + 1);
  }
  return table;
}

bool PodTable::lookup(const common::IpAddress& ip, observe::PodIdentity& out) const noexcept {
  if (slots_.empty()) return false;
  const Key key = keyOf(ip);
  const size_t mask = buckets_.size() - 1;
  const Slot* it = nullptr;
  // At most half full: an empty bucket ends every probe sequence.
  for (size_t at = hashOf(key) & mask; buckets_[at] != 0; at = (at + 1) & mask) {
    const Slot& slot = slots_[buckets_[at] - 1];
    if (slot.key == key) {
      it = &slot;
      break;
    }
  }
  if (it == nullptr) return false;
  const char* text = arena_.data() + it->offset;
  const std::string_view ns(text, it->namespaceLength);
  text += it->namespaceLength;
  const std::string_view pod(text, it->podLength);
  text += it->podLength;
  const std::string_view workload(text, it->workloadLength);
  text += it->workloadLength;
  const std::string_view account(text, it->serviceAccountLength);
  out.assign(ns, pod, workload, account);
  return true;
}

}  // namespace attribution

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
  return table;
}

bool PodTable::lookup(const common::IpAddress& ip, observe::PodIdentity& out) const noexcept {
  if (slots_.empty()) return false;
  const Key key = keyOf(ip);
  const auto it = std::lower_bound(slots_.begin(), slots_.end(), key,
                                   [](const Slot& slot, const Key& k) { return slot.key < k; });
  if (it == slots_.end() || it->key != key) return false;
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

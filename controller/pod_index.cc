#include "controller/pod_index.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace controller {

void PodIndex::upsert(PodObject pod) {
  const std::string key = pod.key();
  auto it = pods_.find(key);
  if (it == pods_.end()) {
    const uint64_t claim = nextClaim_++;
    pods_.emplace(key, Entry{std::move(pod), claim});
    return;
  }
  // A pod recreated under the same name (a StatefulSet's db-0) is a new
  // claim even when its address is the same; so are new addresses.
  const bool newClaim = it->second.pod.uid != pod.uid || it->second.pod.ips != pod.ips;
  it->second.pod = std::move(pod);
  if (newClaim) it->second.claim = nextClaim_++;
}

void PodIndex::erase(const std::string& key) {
  pods_.erase(key);
}

void PodIndex::replaceAll(std::vector<PodObject> pods) {
  // Claims in the order the pods started: of two holders of one address
  // the later one is the current holder.
  std::stable_sort(pods.begin(), pods.end(),
                   [](const PodObject& a, const PodObject& b) { return a.startTime < b.startTime; });
  pods_.clear();
  for (PodObject& pod : pods) {
    const std::string key = pod.key();
    pods_[key] = Entry{std::move(pod), nextClaim_++};
  }
}

std::vector<attribution::PodRecord> PodIndex::records() const {
  using Key = std::array<uint8_t, 17>;  // family, then the bytes
  struct Holder {
    const Entry* entry;
    common::IpAddress ip;
  };
  std::map<Key, Holder> byAddress;
  const auto rank = [](const Entry& entry) {
    return std::pair<int, uint64_t>(entry.pod.deleting ? 0 : 1, entry.claim);
  };
  for (const auto& [key, entry] : pods_) {
    if (!entry.pod.holdsAddresses()) continue;
    for (const common::IpAddress& ip : entry.pod.ips) {
      Key address{};
      address[0] = static_cast<uint8_t>(ip.family);
      std::memcpy(address.data() + 1, ip.bytes.data(), ip.bytes.size());
      auto [it, inserted] = byAddress.emplace(address, Holder{&entry, ip});
      if (!inserted && rank(entry) > rank(*it->second.entry)) it->second.entry = &entry;
    }
  }
  std::vector<attribution::PodRecord> out;
  out.reserve(byAddress.size());
  for (const auto& [address, holder] : byAddress) {
    const PodObject& pod = holder.entry->pod;
    out.push_back({holder.ip, pod.ns, pod.name, pod.workload, pod.serviceAccount});
  }
  return out;
}

}  // namespace controller

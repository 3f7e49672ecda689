// The controller's pods, keyed by namespace/name, and the pod map they
// give (source -> plan: the map file is a pure function of this index).
//
// One address, one pod: when two pods claim an address (a deleted pod's
// address handed to a new pod while the old object still exists, or
// events arriving in an order where the new pod's IP is seen first), the
// pod that is not being deleted wins, then the one whose claim was seen
// last. Watch events arrive in the API server's order, so the later claim
// is the newer truth; after a (re)list, claims are ordered by the pods'
// start times. Pods that are finished (Succeeded, Failed), use the host's
// network, or have no address yet name no address.
//
// Thread-safety: none (one watch thread owns it).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "attribution/pod_map_file.h"
#include "controller/pod_object.h"

namespace controller {

class PodIndex {
 public:
  // ADDED / MODIFIED.
  void upsert(PodObject pod);
  // DELETED.
  void erase(const std::string& key);
  // After a (re)list: the whole set.
  void replaceAll(std::vector<PodObject> pods);

  size_t size() const noexcept { return pods_.size(); }
  // One record per address held, sorted by address (the file is
  // deterministic: the same pods give the same bytes).
  std::vector<attribution::PodRecord> records() const;

 private:
  struct Entry {
    PodObject pod;
    uint64_t claim = 0;  // when its current addresses were first seen
  };
  std::map<std::string, Entry> pods_;
  uint64_t nextClaim_ = 1;
};

}  // namespace controller

// A Pod object from the API server, reduced to what attribution needs
// (docs/attribution.md): its addresses, namespace, name, workload and
// service account, and whether it holds its addresses at all.
//
// The workload comes from the pod's controller ownerReference alone, so
// that the controller needs get/list/watch on pods and nothing else:
//   ReplicaSet N, pod label pod-template-hash=H, N = D-H  -> Deployment/D
//     (the Deployment controller names its ReplicaSets so and labels
//     their pods; a ReplicaSet without that convention is ReplicaSet/N)
//   Job N, N = C-M with M the scheduled time in minutes since the epoch
//     (8 or more digits, 2017..2160)                      -> CronJob/C
//     (the CronJob controller's naming); other Jobs        -> Job/N
//   StatefulSet, DaemonSet, any other controller kind K  -> K/N
//   Node (a static pod's mirror) or no controller        -> Pod/<pod name>
// Limits: a Job named like a CronJob's (web-29000000) reads as CronJob/web;
// a ReplicaSet created by hand whose pods carry a matching
// pod-template-hash reads as a Deployment. Reading the owners themselves
// would need get on replicasets and jobs.
//
// Pure: no I/O. Thread-safety: reentrant.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/ip_address.h"

namespace controller {

struct PodObject {
  std::string uid;
  std::string ns;
  std::string name;
  std::string workload;  // "Deployment/web", ... (never "")
  std::string serviceAccount;
  std::string startTime;               // status.startTime (RFC 3339) or ""
  std::vector<common::IpAddress> ips;  // status.podIPs (or podIP), IPv4 unmapped
  bool hostNetwork = false;            // its addresses are the node's: never attributed
  bool terminal = false;               // phase Succeeded or Failed: its addresses are released
  bool deleting = false;               // metadata.deletionTimestamp set
  std::string key() const { return ns + "/" + name; }
  // Whether its addresses name it: it has some, they are its own (not the
  // node's) and it is not finished.
  bool holdsAddresses() const noexcept { return !ips.empty() && !hostNetwork && !terminal; }
};

// nullopt with `error` when the object is no usable Pod (no namespace or
// name, names that are no Kubernetes names). Malformed addresses are
// skipped.
std::optional<PodObject> podFromJson(const nlohmann::json& object, std::string& error);

// The workload of a pod from its metadata (ownerReferences, labels) and
// name, as described above.
std::string workloadOf(const nlohmann::json& metadata, const std::string& podName);

}  // namespace controller

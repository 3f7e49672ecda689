#include "controller/pod_object.h"

#include <cstdint>

#include "attribution/pod_map_file.h"
#include "controller/json_util.h"

namespace controller {

namespace {

using nlohmann::json;

// The controller ownerReference (at most one has controller: true).
const json* controllerOwner(const json& metadata) {
  const auto it = metadata.find("ownerReferences");
  if (it == metadata.end() || !it->is_array()) return nullptr;
  for (const json& owner : *it) {
    const auto flag = owner.find("controller");
    if (owner.is_object() && flag != owner.end() && flag->is_boolean() && flag->get<bool>()) return &owner;
  }
  return nullptr;
}

std::string label(const json& metadata, const char* key) {
  const auto labels = metadata.find("labels");
  return labels != metadata.end() ? jsonString(*labels, key) : std::string();
}

// "web-29012345" -> "web" when the suffix is a CronJob's scheduled time in
// minutes since the epoch (cronjob_controllerv2 getJobName): 8 to 9 digits,
// between 2017 (24,720,000) and 2160 (100,000,000).
std::optional<std::string> cronJobOf(const std::string& job) {
  const size_t dash = job.rfind('-');
  if (dash == std::string::npos || dash == 0) return std::nullopt;
  const std::string digits = job.substr(dash + 1);
  if (digits.size() < 8 || digits.size() > 9) return std::nullopt;
  uint64_t minutes = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    minutes = minutes * 10 + static_cast<uint64_t>(c - '0');
  }
  if (minutes < 24'720'000 || minutes >= 100'000'000) return std::nullopt;
  return job.substr(0, dash);
}

}  // namespace

std::string workloadOf(const json& metadata, const std::string& podName) {
  const json* owner = controllerOwner(metadata);
  if (owner == nullptr) return "Pod/" + podName;
  const std::string kind = jsonString(*owner, "kind");
  const std::string name = jsonString(*owner, "name");
  if (kind.empty() || name.empty() || kind == "Node") return "Pod/" + podName;
  std::string workload = kind + "/" + name;
  if (kind == "ReplicaSet") {
    const std::string hash = label(metadata, "pod-template-hash");
    if (!hash.empty() && name.size() > hash.size() + 1 &&
        name.compare(name.size() - hash.size(), hash.size(), hash) == 0 &&
        name[name.size() - hash.size() - 1] == '-') {
      workload = "Deployment/" + name.substr(0, name.size() - hash.size() - 1);
    }
  } else if (kind == "Job") {
    if (const auto cron = cronJobOf(name)) workload = "CronJob/" + *cron;
  }
  // A custom kind too long for an event's field: the pod stands for itself.
  return attribution::isWorkload(workload) ? workload : "Pod/" + podName;
}

std::optional<PodObject> podFromJson(const json& object, std::string& error) {
  if (!object.is_object()) {
    error = "not an object";
    return std::nullopt;
  }
  const auto metaIt = object.find("metadata");
  if (metaIt == object.end() || !metaIt->is_object()) {
    error = "no metadata";
    return std::nullopt;
  }
  const json& metadata = *metaIt;
  PodObject pod;
  pod.ns = jsonString(metadata, "namespace");
  pod.name = jsonString(metadata, "name");
  pod.uid = jsonString(metadata, "uid");
  if (!attribution::isDnsLabel(pod.ns) || !attribution::isDnsSubdomain(pod.name)) {
    error = "pod \"" + pod.ns + "/" + pod.name + "\" has no valid namespace and name";
    return std::nullopt;
  }
  pod.deleting = metadata.contains("deletionTimestamp") && !metadata["deletionTimestamp"].is_null();
  pod.workload = workloadOf(metadata, pod.name);
  static const json kEmpty = json::object();
  const auto specIt = object.find("spec");
  const json& spec = specIt != object.end() && specIt->is_object() ? *specIt : kEmpty;
  pod.serviceAccount = jsonString(spec, "serviceAccountName");
  if (!attribution::isDnsSubdomain(pod.serviceAccount)) pod.serviceAccount.clear();
  const auto hostIt = spec.find("hostNetwork");
  pod.hostNetwork = hostIt != spec.end() && hostIt->is_boolean() && hostIt->get<bool>();
  const auto statusIt = object.find("status");
  const json& status = statusIt != object.end() && statusIt->is_object() ? *statusIt : kEmpty;
  const std::string phase = jsonString(status, "phase");
  pod.terminal = phase == "Succeeded" || phase == "Failed";
  pod.startTime = jsonString(status, "startTime");
  const auto addIp = [&pod](const std::string& text) {
    const auto ip = common::parseIpAddress(text);
    if (!ip) return;
    const common::IpAddress plain = ip->unmapped();
    for (const auto& have : pod.ips) {
      if (have == plain) return;
    }
    pod.ips.push_back(plain);
  };
  const auto ipsIt = status.find("podIPs");
  if (ipsIt != status.end() && ipsIt->is_array()) {
    for (const json& entry : *ipsIt) addIp(jsonString(entry, "ip"));
  }
  addIp(jsonString(status, "podIP"));
  return pod;
}

}  // namespace controller

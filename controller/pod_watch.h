// The pod half of egress-controller (attribution, docs/attribution.md):
// through the watch loop (controller/watch_loop.h), lists Pods (the node's
// own with --node-name, else all), watches from the list's
// resourceVersion, relists after 410 Gone, and after every change
// rewrites the pod map file egressd reads (atomically, and only when its
// text changes). The file is complete after each (re)list, so it survives
// restarts of either side: a restarted controller relists and rewrites it,
// a restarted egressd reads what is there.
//
// Needs get/list/watch on pods, nothing else. run() blocks until the
// Stopper fires; errors talking to the API server are logged and retried.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "controller/kube_client.h"
#include "controller/kubeconfig.h"

namespace controller {

struct PodWatchOptions {
  std::string mapFile;   // where to write the pod map
  std::string nodeName;  // node-local shape: only pods with spec.nodeName = this; "" = all
  std::chrono::milliseconds backoffInitial{200};
  std::chrono::milliseconds backoffMax{30000};
  int64_t watchTimeoutSeconds = 300;
  unsigned listPageSize = 500;
};

void runPodWatch(const ClusterConfig& cluster, const PodWatchOptions& options, Stopper& stopper);

}  // namespace controller

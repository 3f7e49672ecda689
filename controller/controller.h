// egress-controller's reconcile loop (source -> plan -> apply):
//   source: the watch loop (controller/watch_loop.h) over EgressRuleSets in
//           all namespaces: paged list, watch with bookmarks, relist on 410
//           Gone, backoff; a failed file write also forces a relist.
//   plan:   controller::plan() between the objects and the owned files.
//   apply:  RulesDir::apply() (atomic writes, removes).
// A second thread writes status (validated with egressd's loader) when
// this instance leads (Lease), or always when no lease is configured.
//
// run() blocks until the Stopper fires; it returns 0 then. Errors talking to
// the API server are logged and retried, never fatal.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "controller/kube_client.h"
#include "controller/kubeconfig.h"

namespace controller {

struct ControllerOptions {
  std::string rulesDir;
  std::string leaseNamespace;  // both empty: no election, this instance writes status
  std::string leaseName;
  std::string identity;
  int64_t leaseDurationSeconds = 15;
  std::chrono::milliseconds leaseRetry{2000};
  std::chrono::milliseconds backoffInitial{200};
  std::chrono::milliseconds backoffMax{30000};
  int64_t watchTimeoutSeconds = 300;  // the server ends each watch after this
  unsigned listPageSize = 500;
};

int runController(const ClusterConfig& cluster, const ControllerOptions& options, Stopper& stopper);

}  // namespace controller

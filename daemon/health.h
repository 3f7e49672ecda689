// What /healthz and /readyz on the metrics listener answer (docs/metrics.md
// "Health and readiness"), for the kubelet's probes and load balancers.
//
// /healthz: egressd's event loop serves it, so any answer at all means the
// process is alive and its loop turns; it is always 200.
// /readyz: 200 only while egressd does its job: a policy compiled from the
// rules directories, every configured rules directory readable, every DNS
// listener open and (with nfqueue.enabled) one verdict worker bound per
// configured queue behind the installed chain. Otherwise 503, naming what
// is missing. The body lists each check in kube-apiserver's verbose style
// ("[+]rules ok", "[-]dns failed: ...").
//
// Pure: the daemon gathers ReadinessInputs on its event loop; no I/O here.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace daemon_main {

struct ReadinessInputs {
  bool policyLoaded = false;                // a pass over the rules directories was compiled
  std::vector<std::string> unreadableDirs;  // configured rules dirs the last pass could not read
  bool dnsEnabled = false;
  size_t dnsListenersWanted = 0;  // dns.listen entries
  size_t dnsListenersOpen = 0;
  bool nfqueueEnabled = false;
  size_t queuesWanted = 0;  // nfqueue.queues entries
  size_t workersRunning = 0;
};

struct Readiness {
  bool ready = false;
  std::string body;  // one line per check, then "readyz check passed|failed"
};

Readiness judgeReadiness(const ReadinessInputs& inputs);

}  // namespace daemon_main

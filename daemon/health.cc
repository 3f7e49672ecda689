#include "daemon/health.h"

namespace daemon_main {

namespace {

struct Check {
  const char* name;
  std::string failure;  // empty: passed
};

std::string count(size_t have, size_t want, const char* what) {
  return std::to_string(have) + " of " + std::to_string(want) + " " + what;
}

}  // namespace

Readiness judgeReadiness(const ReadinessInputs& in) {
  std::vector<Check> checks;
  std::string rules;
  if (!in.policyLoaded) {
    rules = "no policy compiled yet";
  } else if (!in.unreadableDirs.empty()) {
    rules = "rules directory not readable (nothing from it is allowed):";
    for (const auto& dir : in.unreadableDirs) rules += " " + dir;
  }
  checks.push_back({"rules", rules});
  if (in.dnsEnabled) {
    checks.push_back({"dns", in.dnsListenersOpen == in.dnsListenersWanted && in.dnsListenersWanted > 0
                                 ? std::string()
                                 : count(in.dnsListenersOpen, in.dnsListenersWanted, "listeners open")});
  }
  if (in.nfqueueEnabled) {
    checks.push_back({"enforcement", in.workersRunning == in.queuesWanted && in.queuesWanted > 0
                                         ? std::string()
                                         : count(in.workersRunning, in.queuesWanted, "queue workers bound")});
  }
  Readiness out;
  out.ready = true;
  for (const auto& check : checks) {
    if (check.failure.empty()) {
      out.body += std::string("[+]") + check.name + " ok\n";
    } else {
      out.ready = false;
      out.body += std::string("[-]") + check.name + " failed: " + check.failure + "\n";
    }
  }
  out.body += out.ready ? "readyz check passed\n" : "readyz check failed\n";
  return out;
}

}  // namespace daemon_main

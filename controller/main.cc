// egress-controller: mirrors EgressRuleSets into egressd's rules dir and
// reports their status. Wiring only; the loop is controller/controller.cc.
#include <curl/curl.h>
#include <signal.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <cstdlib>
#include <filesystem>
#include <thread>

#include "common/log.h"
#include "controller/controller.h"
#include "controller/kubeconfig.h"
#include "controller/pod_watch.h"

int main(int argc, char** argv) {
  CLI::App app{
      "egress-controller: mirrors every EgressRuleSet (zalando.org/v1) of the cluster into a rules\n"
      "directory for egressd, one <namespace>_<name>.json file per object, and writes each object's\n"
      "status (observedGeneration, targetCount, condition Accepted) as egressd's loader judges it."};
  app.set_version_flag("--version", "egress-controller 0.1.0");
  std::string kubeconfig;
  std::string context;
  bool inCluster = false;
  controller::ControllerOptions options;
  std::string logLevel = "info";
  auto* kubeconfigOption =
      app.add_option("--kubeconfig", kubeconfig, "kubeconfig file (token or client certificate; https only)");
  auto* inClusterFlag =
      app.add_flag("--in-cluster", inCluster,
                   "Use the pod's service account (" + std::string(controller::kServiceAccountDir) +
                       ", KUBERNETES_SERVICE_HOST/PORT)");
  kubeconfigOption->excludes(inClusterFlag);
  std::string serviceAccountDir = controller::kServiceAccountDir;
  app.add_option("--service-account-dir", serviceAccountDir,
                 "With --in-cluster: folder holding ca.crt and token (tests, unusual mounts)")
      ->capture_default_str()
      ->needs(inClusterFlag);
  app.add_option("--context", context, "kubeconfig context (default: current-context)")
      ->needs(kubeconfigOption);
  app.add_option(
         "--rules-dir", options.rulesDir,
         "Directory to mirror into (egressd's rules dir); only files named <ns>_<name>.json are managed")
      ->required()
      ->check(CLI::ExistingDirectory);
  auto* leaseNamespace = app.add_option("--lease-namespace", options.leaseNamespace,
                                        "Namespace of the Lease electing the one status writer");
  auto* leaseName = app.add_option("--lease-name", options.leaseName,
                                   "Name of that Lease; without it this instance always writes status");
  leaseName->needs(leaseNamespace);
  leaseNamespace->needs(leaseName);
  app.add_option("--identity", options.identity, "Holder identity in the Lease (default: hostname_pid)");
  app.add_option("--lease-duration", options.leaseDurationSeconds, "Lease duration in seconds")
      ->capture_default_str()
      ->check(CLI::Range(2, 3600));
  controller::PodWatchOptions pods;
  app.add_option("--pod-map", pods.mapFile,
                 "Also watch Pods and keep this pod map file for egressd's attribution "
                 "([attribution] map_file; docs/attribution.md)");
  app.add_option("--node-name", pods.nodeName,
                 "With --pod-map: only the pods of this node (the node-local shape; default: $NODE_NAME, "
                 "from the downward API); empty: all pods (the central shape)");
  app.add_option("--log-level", logLevel, "debug, info, warn or error")->capture_default_str();
  app.footer(
      "RBAC: get/list/watch egressrulesets.zalando.org, patch egressrulesets/status,\n"
      "get/create/update leases.coordination.k8s.io (in --lease-namespace); with --pod-map\n"
      "get/list/watch pods. See docs/controller.md.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 exits 0 for --help and --version; usage errors are 2, as for
    // egressctl and egressd (CLI11's own codes are 100 and up).
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  if (kubeconfig.empty() && !inCluster) {
    std::cerr << "egress-controller: give --kubeconfig FILE or --in-cluster (see --help)\n";
    return 2;
  }
  const auto level = common::parseLogLevel(logLevel);
  if (!level) {
    std::cerr << "egress-controller: unknown --log-level " << logLevel << "\n";
    return 2;
  }
  common::setLogLevel(*level);
  if (options.identity.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    options.identity = std::string(host) + "_" + std::to_string(::getpid());
  }

  // Read once at start-up, before any other thread exists.
  if (!pods.mapFile.empty() && pods.nodeName.empty()) {
    if (const char* node = std::getenv("NODE_NAME")) pods.nodeName = node;  // NOLINT(concurrency-mt-unsafe)
  }
  const char* serviceHost = std::getenv("KUBERNETES_SERVICE_HOST");  // NOLINT(concurrency-mt-unsafe)
  const char* servicePort = std::getenv("KUBERNETES_SERVICE_PORT");  // NOLINT(concurrency-mt-unsafe)
  const controller::ConfigResult config =
      inCluster ? controller::inClusterConfig(serviceAccountDir, serviceHost, servicePort)
                : controller::loadKubeconfigFile(kubeconfig, context);
  if (!config.config) {
    for (const auto& error : config.errors)
      common::LogLine(common::LogLevel::Error, "config.invalid").field("error", error);
    return 1;
  }

  // Signals go to one thread via sigwait, which can safely wake the others.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    common::logEvent(common::LogLevel::Error, "curl.init.failed");
    return 1;
  }
  controller::Stopper stopper;
  std::thread signalThread([&] {
    int signal = 0;
    sigwait(&signals, &signal);
    common::LogLine(common::LogLevel::Info, "signal.received")
        .field("signal", signal == SIGTERM ? "TERM" : "INT");
    stopper.request();
  });
  common::LogLine(common::LogLevel::Info, "controller.starting")
      .field("server", config.config->server)
      .field("rules_dir", options.rulesDir)
      .field("identity", options.identity)
      .field("lease",
             options.leaseName.empty() ? std::string("-") : options.leaseNamespace + "/" + options.leaseName);
  std::thread podThread;
  if (!pods.mapFile.empty()) {
    common::LogLine(common::LogLevel::Info, "pods.watch.starting")
        .field("map_file", pods.mapFile)
        .field("node", pods.nodeName.empty() ? std::string("*") : pods.nodeName);
    podThread = std::thread([&] { controller::runPodWatch(*config.config, pods, stopper); });
  }
  const int code = controller::runController(*config.config, options, stopper);
  stopper.request();
  if (podThread.joinable()) podThread.join();
  // runController only returns after a stop; wake the signal thread if the
  // stop did not come from a signal.
  if (signalThread.joinable()) {
    ::kill(::getpid(), SIGTERM);
    signalThread.join();
  }
  curl_global_cleanup();
  return code;
}

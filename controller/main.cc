// egress-controller: mirrors EgressRuleSets into egressd's rules dir and
// reports their status. Wiring only; the loop is controller/controller.cc.
#include <curl/curl.h>
#include <signal.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <thread>
#include <vector>

#include "common/command_line.h"
#include "common/duration.h"
#include "common/log.h"
#include "common/socket_address.h"
#include "controller/controller.h"
#include "controller/injection.h"
#include "controller/kubeconfig.h"
#include "controller/pod_watch.h"
#include "controller/webhook_cert_keeper.h"
#include "controller/webhook_server.h"

namespace {

// The API server refuses a pod whose env entry is not a C identifier, so a
// bad name here would make every admitted pod fail to create: refused at
// start instead, naming the value.
CLI::Validator environmentVariableName() {
  return CLI::Validator(
      [](const std::string& name) -> std::string {
        if (name.empty()) return {};
        const auto isStart = [](char c) {
          return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
        };
        const auto isRest = [&](char c) { return isStart(c) || (c >= '0' && c <= '9'); };
        bool valid = isStart(name.front());
        for (const char c : name) valid = valid && isRest(c);
        if (valid) return {};
        return "\"" + name +
               "\" is not an environment variable name (letters, digits and '_', not starting with a digit); "
               "give an empty value (--inject-node-ip-env=) to inject none";
      },
      "NAME");
}

// The webhook's flags (docs/injection.md): what is injected, and where the
// certificates live.
struct WebhookFlags {
  std::string listen;
  controller::InjectionConfig inject;
  controller::NoProxyParts noProxy;
  controller::CertKeeperOptions certs;
  std::string service = "egressd-webhook";
  std::vector<std::string> extraNames;
  std::string certMode = "self-signed";
  std::string caValidity = "365d";
  std::string certValidity = "90d";
  std::string poll = "10s";
};

void addWebhookFlags(CLI::App& app, WebhookFlags& flags) {
  const char* group = "Injection webhook (docs/injection.md)";
  app.add_option("--webhook-listen", flags.listen,
                 "Serve the proxy-variable injection webhook on ADDR:PORT (HTTPS); without it, no webhook")
      ->group(group);
  app.add_option("--webhook-namespace", flags.certs.ns,
                 "Namespace of the webhook's Service, Secret and Lease")
      ->capture_default_str()
      ->group(group);
  app.add_option("--webhook-service", flags.service,
                 "Service name: the serving certificate is for SERVICE.NAMESPACE.svc (and .cluster.local)")
      ->capture_default_str()
      ->group(group);
  app.add_option("--webhook-secret", flags.certs.secretName, "Secret holding the CA and serving certificate")
      ->capture_default_str()
      ->group(group);
  app.add_option("--webhook-config", flags.certs.webhookConfigName,
                 "MutatingWebhookConfiguration whose caBundle is kept current")
      ->capture_default_str()
      ->group(group);
  app.add_option(
         "--webhook-lease-name", flags.certs.leaseName,
         "Lease electing the one replica that writes the Secret and caBundle (empty: this one always)")
      ->capture_default_str()
      ->group(group);
  app.add_option("--webhook-cert-san", flags.extraNames,
                 "Extra DNS name or IP address in the serving certificate (repeatable)")
      ->group(group);
  app.add_option("--webhook-certs", flags.certMode,
                 "self-signed: create and rotate the CA and certificate; external: only read the Secret "
                 "(cert-manager)")
      ->capture_default_str()
      ->check(CLI::IsMember({"self-signed", "external"}))
      ->group(group);
  app.add_option("--webhook-ca-validity", flags.caValidity, "Lifetime of the CA (renewed at two thirds)")
      ->capture_default_str()
      ->group(group);
  app.add_option("--webhook-cert-validity", flags.certValidity,
                 "Lifetime of the serving certificate (renewed at two thirds)")
      ->capture_default_str()
      ->group(group);
  app.add_option("--webhook-cert-poll", flags.poll, "How often the Secret is read (reload, rotation)")
      ->capture_default_str()
      ->group(group);
  app.add_option("--inject-proxy-url", flags.inject.proxyUrl,
                 "Value of HTTP_PROXY, HTTPS_PROXY, http_proxy, https_proxy")
      ->capture_default_str()
      ->group(group);
  app.add_option("--inject-node-ip-env", flags.inject.nodeIpVariable,
                 "Variable set from status.hostIP before the proxy variables (empty: none)")
      ->capture_default_str()
      ->check(environmentVariableName())
      ->group(group);
  app.add_option("--inject-cluster-domain", flags.noProxy.clusterDomains,
                 "Cluster DNS domain for NO_PROXY (repeatable; .cluster.local is always in)")
      ->capture_default_str()
      ->group(group);
  app.add_option("--inject-service-cidr", flags.noProxy.serviceCidrs,
                 "Service network for NO_PROXY (repeatable)")
      ->capture_default_str()
      ->group(group);
  app.add_option("--inject-pod-cidr", flags.noProxy.podCidrs, "Pod network for NO_PROXY (repeatable)")
      ->capture_default_str()
      ->group(group);
  app.add_option("--inject-node-local-dns", flags.noProxy.nodeLocalDns,
                 "Node-local DNS address for NO_PROXY (repeatable)")
      ->capture_default_str()
      ->group(group);
  app.add_option("--inject-apiserver", flags.noProxy.apiServer,
                 "API server names and addresses for NO_PROXY (repeatable; with --in-cluster "
                 "KUBERNETES_SERVICE_HOST is added)")
      ->capture_default_str()
      ->group(group);
  app.add_option("--inject-no-proxy", flags.noProxy.extra, "Further NO_PROXY entries (repeatable)")
      ->group(group);
  app.add_option("--inject-exclude-namespace", flags.inject.excludedNamespaces,
                 "Namespaces never injected (repeatable; also the webhook's namespaceSelector)")
      ->capture_default_str()
      ->group(group);
}

// Flags into options; false with a message on stderr.
bool finishWebhookFlags(WebhookFlags& flags, const std::string& identity, const char* serviceHost) {
  const auto caValidity = common::parseDuration(flags.caValidity);
  const auto certValidity = common::parseDuration(flags.certValidity);
  const auto poll = common::parseDuration(flags.poll);
  if (!caValidity || !certValidity || !poll || caValidity->count() < 3000 || certValidity->count() < 3000 ||
      poll->count() < 100) {
    std::cerr << "egress-controller: --webhook-ca-validity, --webhook-cert-validity (at least 3s) and "
                 "--webhook-cert-poll (at least 100ms) take durations such as 90d, 90s, 10s (at most 365d)\n";
    return false;
  }
  if (*certValidity > *caValidity) {
    std::cerr << "egress-controller: --webhook-cert-validity must not exceed --webhook-ca-validity\n";
    return false;
  }
  flags.certs.cert.caValidity = std::chrono::duration_cast<std::chrono::seconds>(*caValidity);
  flags.certs.cert.servingValidity = std::chrono::duration_cast<std::chrono::seconds>(*certValidity);
  flags.certs.poll = *poll;
  flags.certs.manage = flags.certMode == "self-signed";
  flags.certs.identity = identity;
  const std::string base = flags.service + "." + flags.certs.ns;
  flags.certs.cert.subjectAltNames = {base + ".svc", base + ".svc.cluster.local"};
  for (const auto& name : flags.extraNames) flags.certs.cert.subjectAltNames.push_back(name);
  if (serviceHost != nullptr && *serviceHost != '\0') flags.noProxy.apiServer.emplace_back(serviceHost);
  flags.inject.noProxy = controller::noProxyList(flags.noProxy);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "egress-controller: mirrors every EgressRuleSet (zalando.org/v1) of the cluster into a rules\n"
      "directory for egressd, one <namespace>_<name>.json file per object, and writes each object's\n"
      "status (observedGeneration, targetCount, condition Accepted) as egressd's loader judges it."};
  app.set_version_flag("--version", std::string("egress-controller ") + EGRESSD_VERSION);
  std::string kubeconfig;
  std::string context;
  bool inCluster = false;
  controller::ControllerOptions options;
  std::string logLevel = "info";
  std::string logFormat = "logfmt";
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
         "Directory to mirror into (egressd's rules dir); only files named <ns>_<name>.json are managed. "
         "Without it (only with --webhook-listen) nothing is mirrored")
      ->check(CLI::ExistingDirectory);
  WebhookFlags webhook;
  addWebhookFlags(app, webhook);
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
  app.add_option("--log-format", logFormat,
                 "logfmt (key=value) or json (one object per line), as egressd's log.format")
      ->check(CLI::IsMember({"logfmt", "json"}))
      ->capture_default_str();
  app.footer(
      "RBAC: get/list/watch egressrulesets.zalando.org, patch egressrulesets/status,\n"
      "get/create/update leases.coordination.k8s.io (in --lease-namespace); with --pod-map\n"
      "get/list/watch pods. See docs/controller.md; the webhook's own RBAC is in docs/injection.md.");
  try {
    common::CommandLine line(argc, argv);
    app.parse(line.argc(), line.argv());
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
  if (options.rulesDir.empty() && webhook.listen.empty()) {
    std::cerr << "egress-controller: give --rules-dir DIR (mirror rule sets), --webhook-listen ADDR:PORT "
                 "(injection webhook), or both\n";
    return 2;
  }
  const auto level = common::parseLogLevel(logLevel);
  if (!level) {
    std::cerr << "egress-controller: unknown --log-level " << logLevel << "\n";
    return 2;
  }
  common::setLogLevel(*level);
  common::setLogStyle(logFormat == "json" ? common::LogStyle::Json : common::LogStyle::Logfmt);
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
  if (!webhook.listen.empty() &&
      !finishWebhookFlags(webhook, options.identity, inCluster ? serviceHost : nullptr))
    return 2;
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
  // The webhook: its server on one thread, the certificate keeper on another.
  std::optional<controller::WebhookServer> server;
  std::thread serverThread;
  std::thread keeperThread;
  if (!webhook.listen.empty()) {
    const auto address = common::parseSocketAddress(webhook.listen);
    std::string error;
    server.emplace(webhook.inject);
    if (!address || !server->bind(*address, error)) {
      common::LogLine(common::LogLevel::Error, "webhook.listen.failed")
          .field("error", address ? error : "--webhook-listen " + webhook.listen + ": not ADDR:PORT");
      stopper.request();
      ::kill(::getpid(), SIGTERM);
      signalThread.join();
      curl_global_cleanup();
      return 1;
    }
    common::LogLine(common::LogLevel::Info, "webhook.starting")
        .field("address", server->boundAddress().toString())
        .field("certs", webhook.certMode)
        .field("secret", webhook.certs.ns + "/" + webhook.certs.secretName)
        .field("no_proxy", [&] {
          std::string joined;
          for (const auto& entry : webhook.inject.noProxy) joined += (joined.empty() ? "" : ",") + entry;
          return joined;
        }());
    serverThread = std::thread([&] { server->run(stopper); });
    keeperThread = std::thread([&] {
      controller::runCertKeeper(
          *config.config, webhook.certs, stopper,
          [&](const std::string& cert, const std::string& key) { server->setCertificate(cert, key); });
    });
  }
  std::thread podThread;
  if (!pods.mapFile.empty()) {
    common::LogLine(common::LogLevel::Info, "pods.watch.starting")
        .field("map_file", pods.mapFile)
        .field("node", pods.nodeName.empty() ? std::string("*") : pods.nodeName);
    podThread = std::thread([&] { controller::runPodWatch(*config.config, pods, stopper); });
  }
  int code = 0;
  if (!options.rulesDir.empty()) {
    code = controller::runController(*config.config, options, stopper);
  } else {
    while (!stopper.waitFor(std::chrono::seconds(3600))) {
    }
  }
  stopper.request();
  if (podThread.joinable()) podThread.join();
  if (keeperThread.joinable()) keeperThread.join();
  if (serverThread.joinable()) serverThread.join();
  // runController only returns after a stop; wake the signal thread if the
  // stop did not come from a signal.
  if (signalThread.joinable()) {
    ::kill(::getpid(), SIGTERM);
    signalThread.join();
  }
  curl_global_cleanup();
  return code;
}

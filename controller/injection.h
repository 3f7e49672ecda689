// The proxy-variable injection of the mutating admission webhook
// (docs/injection.md), pure: an AdmissionReview (admission.k8s.io/v1) in,
// the AdmissionReview answer with a JSONPatch out. No I/O; the HTTPS server
// is controller/webhook_server.cc.
//
// On a Pod CREATE every container and init container gets HTTP_PROXY,
// HTTPS_PROXY, http_proxy, https_proxy, NO_PROXY and no_proxy (after the
// node-IP variable they refer to), unless it already sets one of them: then
// the user wins and all six are left alone. Pods are never denied: anything
// this code does not understand is answered "allowed, no patch".
//
// Thread-safe (no shared state); admit() never throws.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace controller {

// What is injected and who is skipped. Every field has the documented
// default of docs/injection.md; main.cc sets them from flags.
struct InjectionConfig {
  // Value of HTTP_PROXY, HTTPS_PROXY, http_proxy, https_proxy.
  std::string proxyUrl = "http://$(EGRESSD_NODE_IP):3128";
  // Injected first, from the downward API (status.hostIP), so that
  // $(EGRESSD_NODE_IP) in proxyUrl expands. Empty: not injected.
  std::string nodeIpVariable = "EGRESSD_NODE_IP";
  // The NO_PROXY list, in order (noProxyList() builds it from the parts).
  std::vector<std::string> noProxy;
  // Pods in these namespaces are never touched (also excluded by the
  // webhook's namespaceSelector; this is the second line).
  std::vector<std::string> excludedNamespaces = {"kube-system", "egressd-system"};
  // Label or annotation key whose value "disabled" or "false" opts a pod out.
  std::string optOutKey = "egressd.io/inject";
  // Annotation with extra NO_PROXY entries for one pod (comma-separated).
  std::string extraNoProxyAnnotation = "egressd.io/no-proxy";
};

// The parts of NO_PROXY (docs/injection.md "NO_PROXY"), each configurable.
struct NoProxyParts {
  std::vector<std::string> clusterDomains = {"cluster.local"};
  std::vector<std::string> serviceCidrs = {"10.96.0.0/12"};
  std::vector<std::string> podCidrs = {"10.244.0.0/16"};
  std::vector<std::string> nodeLocalDns = {"169.254.20.11"};
  std::vector<std::string> apiServer = {"kubernetes.default.svc",
                                        "kubernetes.default"};  // plus its IP, when known
  std::vector<std::string> extra;
};

// localhost, 127.0.0.1, ::1, then ".DOMAIN" for every cluster domain
// (always including .cluster.local), .svc, the service and pod networks,
// the node-local DNS address, the API server and the extras; duplicates
// and empty entries dropped, order kept.
std::vector<std::string> noProxyList(const NoProxyParts& parts);

// Why a pod was (not) patched; one per review, for logs and counters.
enum class InjectOutcome : uint8_t {
  Injected,           // at least one container patched
  AlreadySet,         // every container sets a proxy variable itself
  NotPodCreate,       // another resource or operation (the webhook rules should not send these)
  HostNetwork,        // hostNetwork: true
  OptedOut,           // the opt-out label or annotation
  ExcludedNamespace,  // kube-system, egressd-system, ...
  NotUnderstood,      // a review or pod this code cannot read: allowed, no patch
  BadReview,          // not an AdmissionReview at all: HTTP 400
};
std::string_view outcomeName(InjectOutcome outcome) noexcept;

struct AdmissionAnswer {
  int httpStatus = 200;  // 400 for BadReview, else 200
  std::string body;      // the AdmissionReview answer (JSON), or a one-line error for 400
  InjectOutcome outcome = InjectOutcome::NotUnderstood;
  std::string detail;                 // why, for the log (which field, which container)
  std::string uid;                    // request.uid, when read
  std::string pod;                    // namespace/name (generateName... when no name yet)
  unsigned containersPatched = 0;     // containers and init containers that got the variables
  std::vector<std::string> warnings;  // also in response.warnings (kubectl shows them)
};

struct PodPatch {
  nlohmann::json operations = nlohmann::json::array();  // RFC 6902; empty: nothing injected
  InjectOutcome outcome = InjectOutcome::NotUnderstood;
  std::string detail;
  unsigned containersPatched = 0;
  std::vector<std::string> warnings;
};

// The JSONPatch for one pod object (request.object). Exposed for the tests.
PodPatch podPatch(const nlohmann::json& pod, const InjectionConfig& config);

// The whole webhook call: the request body as the API server POSTs it.
AdmissionAnswer admit(std::string_view requestBody, const InjectionConfig& config);

}  // namespace controller

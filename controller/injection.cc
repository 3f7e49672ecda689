#include "controller/injection.h"

#include <algorithm>
#include <array>
#include <optional>
#include <set>

#include "controller/base64.h"
#include "controller/json_util.h"

namespace controller {

namespace {

using nlohmann::json;

// The six variables, in the order they are appended. The upper-case forms
// are what Go, Java tooling and most libraries read; curl and Python read
// the lower-case ones first (curl ignores upper-case HTTP_PROXY, CGI
// "httpoxy"), so both are set.
constexpr std::array<std::string_view, 6> kProxyVariables = {"HTTP_PROXY",  "HTTPS_PROXY", "http_proxy",
                                                             "https_proxy", "NO_PROXY",    "no_proxy"};

// Bounds on the per-pod NO_PROXY annotation: a typo must not make an env
// value of megabytes.
constexpr size_t kMaxExtraEntries = 64;
constexpr size_t kMaxEntryBytes = 253;

bool optsOut(const json& metadata, const char* field, const std::string& key) {
  if (!metadata.is_object()) return false;
  const auto map = metadata.find(field);
  if (map == metadata.end() || !map->is_object()) return false;
  const std::string value = jsonString(*map, key.c_str());
  return value == "disabled" || value == "false";
}

// An entry curl, Go, Python and Java all read the same way: a name, an
// address or a CIDR; no spaces, no quotes, no '$' ($(VAR) would expand).
bool validNoProxyEntry(std::string_view entry) {
  if (entry.empty() || entry.size() > kMaxEntryBytes) return false;
  return std::all_of(entry.begin(), entry.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_' || c == ':' || c == '/' || c == '*' || c == '[' || c == ']';
  });
}

std::string trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t");
  return std::string(text.substr(first, last - first + 1));
}

// The annotation's entries after the configured list; bad ones are named
// in a warning (kubectl prints it) and left out.
std::vector<std::string> extraNoProxy(const json& metadata, const InjectionConfig& config,
                                      std::vector<std::string>& warnings) {
  std::vector<std::string> out;
  if (!metadata.is_object() || !metadata.contains("annotations")) return out;
  const json& annotations = metadata["annotations"];
  if (!annotations.is_object() || !annotations.contains(config.extraNoProxyAnnotation)) return out;
  const json& value = annotations[config.extraNoProxyAnnotation];
  if (!value.is_string()) return out;
  const std::string text = value.get<std::string>();
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string entry = trim(std::string_view(text).substr(start, comma - start));
    start = comma + 1;
    if (entry.empty()) continue;
    if (out.size() == kMaxExtraEntries) {
      warnings.push_back("egressd: annotation " + config.extraNoProxyAnnotation + ": more than " +
                         std::to_string(kMaxExtraEntries) + " entries; the rest are ignored");
      break;
    }
    if (!validNoProxyEntry(entry)) {
      warnings.push_back("egressd: annotation " + config.extraNoProxyAnnotation + ": entry \"" +
                         entry.substr(0, 64) +
                         "\" ignored (a host name, address or CIDR of letters, digits and . - _ : / * [ ])");
      continue;
    }
    out.push_back(entry);
  }
  return out;
}

std::string joinComma(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += ',';
    out += item;
  }
  return out;
}

json envEntries(const InjectionConfig& config, const std::string& noProxy, bool withNodeIp) {
  json entries = json::array();
  if (withNodeIp) {
    entries.push_back(
        {{"name", config.nodeIpVariable},
         {"valueFrom", {{"fieldRef", {{"apiVersion", "v1"}, {"fieldPath", "status.hostIP"}}}}}});
  }
  for (size_t i = 0; i < kProxyVariables.size(); ++i) {
    const bool isNoProxy = i >= 4;
    entries.push_back(
        {{"name", std::string(kProxyVariables[i])}, {"value", isNoProxy ? noProxy : config.proxyUrl}});
  }
  return entries;
}

// {"op": "add", "path": path, "value": value}, `value` copied once.
json addOperation(std::string path, const json& value) {
  json operation = json::object();
  operation.emplace("op", "add");
  operation.emplace("path", std::move(path));
  operation.emplace("value", value);
  return operation;
}

// The AdmissionReview answer, written out directly: the patch is base64
// (nothing to escape) and several KiB for a pod of a few containers, and
// building a JSON tree around it only to dump it again cost a third of
// admit() (callgrind, bench/webhook).
std::string answerBody(const std::string& uid, const std::string& patchBase64,
                       const std::vector<std::string>& warnings) {
  std::string body = R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":)";
  body.reserve(body.size() + uid.size() + patchBase64.size() + 96);
  body += dumpJson(json(uid));
  body += R"(,"allowed":true)";
  if (!patchBase64.empty()) {
    body += R"(,"patchType":"JSONPatch","patch":")";
    body += patchBase64;
    body += '"';
  }
  if (!warnings.empty()) {
    body += R"(,"warnings":)";
    body += dumpJson(json(warnings));
  }
  body += "}}";
  return body;
}

}  // namespace

std::vector<std::string> noProxyList(const NoProxyParts& parts) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  const auto add = [&](std::string entry) {
    entry = trim(entry);
    if (entry.empty() || !seen.insert(entry).second) return;
    out.push_back(std::move(entry));
  };
  add("localhost");
  add("127.0.0.1");
  add("::1");
  // ".cluster.local" whatever the configured domain: the name most
  // injectors forget (AKS issue 3174), and the one every cluster answers.
  add(".cluster.local");
  for (const auto& domain : parts.clusterDomains) {
    std::string d = trim(domain);
    while (!d.empty() && d.back() == '.') d.pop_back();
    while (!d.empty() && d.front() == '.') d.erase(d.begin());
    if (!d.empty()) add("." + d);
  }
  add(".svc");
  for (const auto& list :
       {parts.serviceCidrs, parts.podCidrs, parts.nodeLocalDns, parts.apiServer, parts.extra})
    for (const auto& entry : list) add(entry);
  return out;
}

std::string_view outcomeName(InjectOutcome outcome) noexcept {
  switch (outcome) {
    case InjectOutcome::Injected:
      return "injected";
    case InjectOutcome::AlreadySet:
      return "already_set";
    case InjectOutcome::NotPodCreate:
      return "not_pod_create";
    case InjectOutcome::HostNetwork:
      return "host_network";
    case InjectOutcome::OptedOut:
      return "opted_out";
    case InjectOutcome::ExcludedNamespace:
      return "excluded_namespace";
    case InjectOutcome::NotUnderstood:
      return "not_understood";
    case InjectOutcome::BadReview:
      return "bad_review";
  }
  return "unknown";
}

PodPatch podPatch(const json& pod, const InjectionConfig& config) {
  PodPatch out;
  if (!pod.is_object()) {
    out.detail = "request.object is not an object";
    return out;
  }
  const json empty = json::object();
  const auto metadataIt = pod.find("metadata");
  const json& metadata = metadataIt != pod.end() ? *metadataIt : empty;
  if (optsOut(metadata, "labels", config.optOutKey)) {
    out.outcome = InjectOutcome::OptedOut;
    out.detail = "label " + config.optOutKey;
    return out;
  }
  if (optsOut(metadata, "annotations", config.optOutKey)) {
    out.outcome = InjectOutcome::OptedOut;
    out.detail = "annotation " + config.optOutKey;
    return out;
  }
  const auto specIt = pod.find("spec");
  if (specIt == pod.end() || !specIt->is_object()) {
    out.detail = "pod has no spec";
    return out;
  }
  const json& spec = *specIt;
  const auto hostNetwork = spec.find("hostNetwork");
  if (hostNetwork != spec.end() && hostNetwork->is_boolean() && hostNetwork->get<bool>()) {
    out.outcome = InjectOutcome::HostNetwork;
    return out;
  }

  std::vector<std::string> noProxy = config.noProxy;
  for (auto& entry : extraNoProxy(metadata, config, out.warnings)) {
    if (std::find(noProxy.begin(), noProxy.end(), entry) == noProxy.end())
      noProxy.push_back(std::move(entry));
  }
  const std::string noProxyValue = joinComma(noProxy);

  unsigned alreadySet = 0;
  std::optional<json> entriesWithNodeIp;
  std::optional<json> entriesWithout;
  for (const char* kind : {"initContainers", "containers"}) {
    const auto list = spec.find(kind);
    if (list == spec.end() || !list->is_array()) continue;
    for (size_t i = 0; i < list->size(); ++i) {
      const json& container = (*list)[i];
      if (!container.is_object()) continue;
      const std::string path = std::string("/spec/") + kind + "/" + std::to_string(i) + "/env";
      const auto env = container.find("env");
      bool hasNodeIp = false;
      bool hasProxy = false;
      if (env != container.end() && !env->is_null()) {
        if (!env->is_array()) {
          out.warnings.push_back("egressd: " + std::string(kind) + "[" + std::to_string(i) +
                                 "].env is not a list; no proxy variables injected there");
          continue;
        }
        for (const auto& var : *env) {
          const std::string name = jsonString(var, "name");
          hasNodeIp = hasNodeIp || (!config.nodeIpVariable.empty() && name == config.nodeIpVariable);
          hasProxy = hasProxy ||
                     std::find(kProxyVariables.begin(), kProxyVariables.end(), name) != kProxyVariables.end();
        }
      }
      if (hasProxy) {
        // The user wins: one of the six set by hand leaves all six alone.
        ++alreadySet;
        continue;
      }
      // Built once per pod, copied once per container (an initializer
      // list would copy each value twice: a fifth of admit(), callgrind).
      const bool withNodeIp = !config.nodeIpVariable.empty() && !hasNodeIp;
      std::optional<json>& entries = withNodeIp ? entriesWithNodeIp : entriesWithout;
      if (!entries) entries = envEntries(config, noProxyValue, withNodeIp);
      if (env == container.end() || env->is_null()) {
        out.operations.push_back(addOperation(path, *entries));
      } else {
        for (const auto& entry : *entries) out.operations.push_back(addOperation(path + "/-", entry));
      }
      ++out.containersPatched;
    }
  }
  if (out.containersPatched > 0) {
    out.outcome = InjectOutcome::Injected;
  } else if (alreadySet > 0) {
    out.outcome = InjectOutcome::AlreadySet;
  } else {
    out.detail = "no containers";
  }
  return out;
}

AdmissionAnswer admit(std::string_view requestBody, const InjectionConfig& config) {
  AdmissionAnswer answer;
  const json review = json::parse(requestBody, nullptr, false);
  const auto bad = [&](const std::string& why) {
    answer.httpStatus = 400;
    answer.outcome = InjectOutcome::BadReview;
    answer.detail = why;
    answer.body = "not an admission.k8s.io/v1 AdmissionReview: " + why + "\n";
    return answer;
  };
  if (!review.is_object()) return bad("the body is not a JSON object");
  if (jsonString(review, "apiVersion") != "admission.k8s.io/v1" ||
      jsonString(review, "kind") != "AdmissionReview")
    return bad("apiVersion must be admission.k8s.io/v1 and kind AdmissionReview");
  const auto requestIt = review.find("request");
  if (requestIt == review.end() || !requestIt->is_object()) return bad("no request");
  const json& request = *requestIt;
  answer.uid = jsonString(request, "uid");
  if (answer.uid.empty()) return bad("request.uid is missing");

  std::string patchBase64;
  const std::string ns = jsonString(request, "namespace");
  const std::string name = jsonString(request, "name");
  answer.pod = ns + "/" + name;
  const auto kindIt = request.find("kind");
  // Both branches lvalues: `found ? *it : json()` would copy the value
  // (for the pod object, a third of admit(); callgrind).
  const json absent;
  const json& kind = kindIt != request.end() ? *kindIt : absent;
  const bool isPod = jsonString(kind, "group").empty() && jsonString(kind, "kind") == "Pod";
  if (!isPod || jsonString(request, "operation") != "CREATE" || !jsonString(request, "subResource").empty()) {
    answer.outcome = InjectOutcome::NotPodCreate;
  } else if (std::find(config.excludedNamespaces.begin(), config.excludedNamespaces.end(), ns) !=
             config.excludedNamespaces.end()) {
    answer.outcome = InjectOutcome::ExcludedNamespace;
  } else {
    const auto objectIt = request.find("object");
    PodPatch patch = podPatch(objectIt != request.end() ? *objectIt : absent, config);
    if (name.empty() && objectIt != request.end() && objectIt->is_object()) {
      // Pods of a ReplicaSet have only generateName at admission.
      const auto metadata = objectIt->find("metadata");
      if (metadata != objectIt->end()) answer.pod = ns + "/" + jsonString(*metadata, "generateName") + "*";
    }
    answer.outcome = patch.outcome;
    answer.detail = std::move(patch.detail);
    answer.containersPatched = patch.containersPatched;
    answer.warnings = std::move(patch.warnings);
    if (!patch.operations.empty()) patchBase64 = base64Encode(dumpJson(patch.operations));
  }
  answer.body = answerBody(answer.uid, patchBase64, answer.warnings);
  return answer;
}

}  // namespace controller

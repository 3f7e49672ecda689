// Where the Kubernetes API is and how to authenticate to it: from a
// kubeconfig file (the subset kubectl users rely on: clusters, users,
// contexts, current-context, inline *-data and file references) or from the
// in-cluster service account.
//
// Loading reads the files a kubeconfig names (CA, client certificate, key)
// once; a token file is only recorded, because service-account tokens are
// rotated on disk and are re-read for every connection (KubeClient).
// Nothing throws: every problem is collected into ConfigResult::errors.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace controller {

struct ClusterConfig {
  std::string server;         // "https://host:port", no trailing slash
  std::string caPem;          // CA bundle the server must chain to; empty = system store
  std::string token;          // static bearer token
  std::string tokenFile;      // bearer token re-read for every connection
  std::string clientCertPem;  // client certificate (PEM), with clientKeyPem
  std::string clientKeyPem;
};

struct ConfigResult {
  std::optional<ClusterConfig> config;  // set when errors is empty
  std::vector<std::string> errors;
};

// Parses kubeconfig text (YAML or JSON). Relative file references resolve
// against `baseDir` (the kubeconfig's folder, as kubectl does). `context`
// overrides current-context when not empty.
ConfigResult parseKubeconfig(std::string_view text, const std::string& baseDir,
                             const std::string& context = {});

// Reads and parses a kubeconfig file.
ConfigResult loadKubeconfigFile(const std::string& path, const std::string& context = {});

// The in-cluster service account: `secretsDir` holds ca.crt and token
// (normally /var/run/secrets/kubernetes.io/serviceaccount); host and port
// come from KUBERNETES_SERVICE_HOST/PORT (passed in so tests need no env).
inline constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";
ConfigResult inClusterConfig(const std::string& secretsDir, const char* host, const char* port);

// RFC 4648 section 4 base64 (the *-data fields); whitespace is ignored,
// padding is optional. nullopt on any other character.
std::optional<std::string> decodeBase64(std::string_view text);

}  // namespace controller

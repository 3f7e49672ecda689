#include "controller/kubeconfig.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "policy/yaml_tree.h"

namespace controller {

namespace {

using policy::YamlNode;

// Files a kubeconfig names are small (certificates, keys, tokens).
constexpr std::uintmax_t kMaxReferencedFileBytes = std::uintmax_t{1024} * 1024;

std::optional<std::string> readSmallFile(const std::string& path, std::string& error) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) {
    error = path + ": " + ec.message();
    return std::nullopt;
  }
  if (size > kMaxReferencedFileBytes) {
    error = path + ": larger than 1 MiB";
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = path + ": cannot open";
    return std::nullopt;
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string scalar(const YamlNode* node, const char* key) {
  if (node == nullptr) return {};
  const YamlNode* value = node->get(key);
  return value != nullptr && value->isScalar() ? value->scalar : std::string();
}

// clusters/users/contexts are lists of {name, <kind>: {...}}.
const YamlNode* findNamed(const YamlNode& root, const char* list, const char* inner,
                          const std::string& name) {
  const YamlNode* items = root.get(list);
  if (items == nullptr || !items->isSequence()) return nullptr;
  for (const auto& item : items->items) {
    if (item && item->isMapping() && scalar(item.get(), "name") == name) {
      const YamlNode* body = item->get(inner);
      return body != nullptr && body->isMapping() ? body : nullptr;
    }
  }
  return nullptr;
}

std::string resolvePath(const std::string& path, const std::string& baseDir) {
  if (path.empty() || path.front() == '/' || baseDir.empty()) return path;
  return (std::filesystem::path(baseDir) / path).string();
}

// `<field>-data` (base64, inline) wins over `<field>` (a file), as in kubectl.
std::string inlineOrFile(const YamlNode* body, const std::string& field, const std::string& baseDir,
                         const std::string& where, std::vector<std::string>& errors) {
  const std::string data = scalar(body, (field + "-data").c_str());
  if (!data.empty()) {
    auto decoded = decodeBase64(data);
    if (!decoded) errors.push_back(where + "." + field + "-data: not valid base64");
    return decoded.value_or(std::string());
  }
  const std::string file = scalar(body, field.c_str());
  if (file.empty()) return {};
  std::string error;
  auto content = readSmallFile(resolvePath(file, baseDir), error);
  if (!content) errors.push_back(where + "." + field + ": " + error);
  return content.value_or(std::string());
}

int base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

std::optional<std::string> decodeBase64(std::string_view text) {
  std::string out;
  out.reserve(text.size() / 4 * 3);
  uint32_t buffer = 0;
  int bits = 0;
  bool padding = false;
  for (const char c : text) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      padding = true;
      continue;
    }
    const int value = base64Value(c);
    if (value < 0 || padding) return std::nullopt;  // data after padding is malformed
    buffer = (buffer << 6) | static_cast<uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xffu));
    }
  }
  // 6 leftover bits cannot come from whole bytes (section 4: 2 or 3 chars per final quantum).
  if (bits >= 6) return std::nullopt;
  return out;
}

ConfigResult parseKubeconfig(std::string_view text, const std::string& baseDir, const std::string& context) {
  ConfigResult result;
  auto& errors = result.errors;
  const policy::YamlStream stream = policy::parseYamlStream(text);
  if (stream.error) {
    errors.push_back("kubeconfig: line " + std::to_string(stream.error->line) + ": " + stream.error->message);
    return result;
  }
  if (stream.documents.size() != 1 || !stream.documents[0]->isMapping()) {
    errors.push_back("kubeconfig: expected one mapping document");
    return result;
  }
  const YamlNode& root = *stream.documents[0];
  const std::string contextName = context.empty() ? scalar(&root, "current-context") : context;
  if (contextName.empty()) {
    errors.push_back("kubeconfig: no current-context (and no context given)");
    return result;
  }
  const YamlNode* ctx = findNamed(root, "contexts", "context", contextName);
  if (ctx == nullptr) {
    errors.push_back("kubeconfig: context \"" + contextName + "\" not found");
    return result;
  }
  const std::string clusterName = scalar(ctx, "cluster");
  const std::string userName = scalar(ctx, "user");
  const YamlNode* cluster = findNamed(root, "clusters", "cluster", clusterName);
  if (cluster == nullptr) {
    errors.push_back("kubeconfig: cluster \"" + clusterName + "\" of context \"" + contextName +
                     "\" not found");
    return result;
  }
  ClusterConfig config;
  config.server = scalar(cluster, "server");
  while (!config.server.empty() && config.server.back() == '/') config.server.pop_back();
  const std::string where = "cluster \"" + clusterName + "\"";
  if (config.server.rfind("https://", 0) != 0) {
    errors.push_back(where + ".server: \"" + config.server + "\" is not an https:// URL");
  }
  const std::string insecure = scalar(cluster, "insecure-skip-tls-verify");
  if (insecure == "true") {
    // The controller's output decides what every node may reach: it never
    // talks to an API server it cannot authenticate.
    errors.push_back(where + ".insecure-skip-tls-verify: not supported; give certificate-authority(-data)");
  }
  config.caPem = inlineOrFile(cluster, "certificate-authority", baseDir, where, errors);

  if (!userName.empty()) {
    const YamlNode* user = findNamed(root, "users", "user", userName);
    if (user == nullptr) {
      errors.push_back("kubeconfig: user \"" + userName + "\" of context \"" + contextName + "\" not found");
      return result;
    }
    const std::string uwhere = "user \"" + userName + "\"";
    config.token = scalar(user, "token");
    const std::string tokenFile = scalar(user, "tokenFile");
    if (config.token.empty() && !tokenFile.empty()) config.tokenFile = resolvePath(tokenFile, baseDir);
    config.clientCertPem = inlineOrFile(user, "client-certificate", baseDir, uwhere, errors);
    config.clientKeyPem = inlineOrFile(user, "client-key", baseDir, uwhere, errors);
    if (config.clientCertPem.empty() != config.clientKeyPem.empty()) {
      errors.push_back(uwhere + ": client-certificate and client-key must be given together");
    }
    for (const char* unsupported : {"exec", "auth-provider", "username"}) {
      if (user->get(unsupported) != nullptr) {
        errors.push_back(uwhere + "." + unsupported +
                         ": not supported (use a token or a client certificate)");
      }
    }
  }
  if (errors.empty()) result.config = std::move(config);
  return result;
}

ConfigResult loadKubeconfigFile(const std::string& path, const std::string& context) {
  std::string error;
  auto text = readSmallFile(path, error);
  if (!text) return ConfigResult{std::nullopt, {"kubeconfig " + error}};
  const std::string baseDir = std::filesystem::path(path).parent_path().string();
  return parseKubeconfig(*text, baseDir, context);
}

ConfigResult inClusterConfig(const std::string& secretsDir, const char* host, const char* port) {
  ConfigResult result;
  if (host == nullptr || *host == '\0' || port == nullptr || *port == '\0') {
    result.errors.push_back("in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set");
    return result;
  }
  ClusterConfig config;
  const std::string h = host;
  // An IPv6 service address needs brackets in a URL (RFC 3986 section 3.2.2).
  config.server = "https://" + (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + port;
  std::string error;
  auto ca = readSmallFile(secretsDir + "/ca.crt", error);
  if (!ca) result.errors.push_back("in-cluster: " + error);
  config.caPem = ca.value_or(std::string());
  config.tokenFile = secretsDir + "/token";
  if (!std::filesystem::exists(config.tokenFile))
    result.errors.push_back("in-cluster: " + config.tokenFile + " missing");
  if (result.errors.empty()) result.config = std::move(config);
  return result;
}

}  // namespace controller

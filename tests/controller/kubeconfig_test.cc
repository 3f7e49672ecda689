// kubeconfig parsing and the in-cluster service account.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include "controller/kubeconfig.h"

using controller::decodeBase64;
using controller::parseKubeconfig;

namespace {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char pattern[] = "/tmp/controller-test.XXXXXX";
    path = mkdtemp(pattern);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string write(const std::string& name, const std::string& content) const {
    const auto file = path / name;
    std::ofstream(file) << content;
    return file.string();
  }
};

bool hasError(const controller::ConfigResult& result, const std::string& part) {
  for (const auto& error : result.errors) {
    if (error.find(part) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("kubeconfig: base64 (RFC 4648 section 4)") {
  CHECK(decodeBase64("") == "");
  CHECK(decodeBase64("Zg==") == "f");
  CHECK(decodeBase64("Zm8=") == "fo");
  CHECK(decodeBase64("Zm9v") == "foo");
  CHECK(decodeBase64("Zm9vYg") == "foob");  // padding optional
  CHECK(decodeBase64("Zm9v\nYmFy\n") == "foobar");
  CHECK(decodeBase64("+/+/") == std::string("\xfb\xff\xbf", 3));
  CHECK_FALSE(decodeBase64("Zm9v!"));
  CHECK_FALSE(decodeBase64("Zg==Zg"));  // data after padding
  CHECK_FALSE(decodeBase64("Z"));       // 6 bits cannot end a quantum
}

TEST_CASE("kubeconfig: token user with file references relative to the kubeconfig") {
  TempDir dir;
  dir.write("ca.crt", "CA-PEM");
  const auto config = parseKubeconfig(R"(
apiVersion: v1
kind: Config
clusters:
- name: other
  cluster: {server: "https://other:1"}
- name: test
  cluster:
    server: https://127.0.0.1:6443/
    certificate-authority: ca.crt
users:
- name: admin
  user:
    token: abc123
contexts:
- name: admin@test
  context: {cluster: test, user: admin}
current-context: admin@test
)",
                                      dir.path.string());
  REQUIRE(config.errors.empty());
  REQUIRE(config.config);
  CHECK(config.config->server == "https://127.0.0.1:6443");
  CHECK(config.config->caPem == "CA-PEM");
  CHECK(config.config->token == "abc123");
  CHECK(config.config->clientCertPem.empty());
}

TEST_CASE("kubeconfig: inline client certificate, --context override, tokenFile") {
  const std::string text = R"({
  "apiVersion": "v1", "kind": "Config",
  "clusters": [{"name": "c", "cluster": {"server": "https://k:443", "certificate-authority-data": "Q0E="}}],
  "users": [{"name": "cert", "user": {"client-certificate-data": "Q0VSVA==", "client-key-data": "S0VZ"}},
            {"name": "tf", "user": {"tokenFile": "/var/run/token"}}],
  "contexts": [{"name": "a", "context": {"cluster": "c", "user": "cert"}},
               {"name": "b", "context": {"cluster": "c", "user": "tf"}}],
  "current-context": "a"
})";
  const auto a = parseKubeconfig(text, "/nowhere");
  REQUIRE(a.config);
  CHECK(a.config->caPem == "CA");
  CHECK(a.config->clientCertPem == "CERT");
  CHECK(a.config->clientKeyPem == "KEY");
  const auto b = parseKubeconfig(text, "/nowhere", "b");
  REQUIRE(b.config);
  CHECK(b.config->tokenFile == "/var/run/token");
  CHECK(b.config->clientCertPem.empty());
}

TEST_CASE("kubeconfig: every problem is reported") {
  struct Row {
    const char* description;
    const char* text;
    const char* error;
  };
  const Row rows[] = {
      {"not YAML", "a: [", "kubeconfig: line"},
      {"no current-context", "clusters: []", "no current-context"},
      {"unknown context", "current-context: x\ncontexts: []", "context \"x\" not found"},
      {"unknown cluster", "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]",
       "cluster \"c\" of context \"x\" not found"},
      {"http server",
       "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\nclusters: [{name: c, cluster: "
       "{server: "
       "'http://k:80'}}]",
       "is not an https:// URL"},
      {"insecure",
       "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\nclusters: [{name: c, cluster: "
       "{server: "
       "'https://k', insecure-skip-tls-verify: true}}]",
       "insecure-skip-tls-verify: not supported"},
      {"missing CA file",
       "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\nclusters: [{name: c, cluster: "
       "{server: "
       "'https://k', certificate-authority: /does/not/exist}}]",
       "certificate-authority: /does/not/exist"},
      {"bad base64",
       "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\nclusters: [{name: c, cluster: "
       "{server: "
       "'https://k', certificate-authority-data: '***'}}]",
       "certificate-authority-data: not valid base64"},
      {"unknown user",
       "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\nclusters: [{name: c, "
       "cluster: "
       "{server: 'https://k'}}]",
       "user \"u\" of context \"x\" not found"},
      {"cert without key",
       "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\nclusters: [{name: c, "
       "cluster: "
       "{server: 'https://k'}}]\nusers: [{name: u, user: {client-certificate-data: Q0E=}}]",
       "must be given together"},
      {"exec plugin",
       "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\nclusters: [{name: c, "
       "cluster: "
       "{server: 'https://k'}}]\nusers: [{name: u, user: {exec: {command: aws}}}]",
       "exec: not supported"},
  };
  for (const auto& row : rows) {
    SECTION(row.description) {
      const auto result = parseKubeconfig(row.text, "/");
      CHECK_FALSE(result.config);
      INFO((result.errors.empty() ? std::string("no errors") : result.errors.front()));
      CHECK(hasError(result, row.error));
    }
  }
}

TEST_CASE("kubeconfig: file loading and in-cluster") {
  TempDir dir;
  dir.write("ca.crt", "CA");
  dir.write("token", "tok\n");
  const auto inCluster = controller::inClusterConfig(dir.path.string(), "10.96.0.1", "443");
  REQUIRE(inCluster.config);
  CHECK(inCluster.config->server == "https://10.96.0.1:443");
  CHECK(inCluster.config->caPem == "CA");
  CHECK(inCluster.config->tokenFile == (dir.path / "token").string());
  const auto v6 = controller::inClusterConfig(dir.path.string(), "fd00::1", "443");
  REQUIRE(v6.config);
  CHECK(v6.config->server == "https://[fd00::1]:443");
  CHECK(hasError(controller::inClusterConfig(dir.path.string(), nullptr, "443"), "KUBERNETES_SERVICE_HOST"));
  CHECK(hasError(controller::inClusterConfig("/does/not/exist", "h", "1"), "ca.crt"));

  const auto file =
      dir.write("config",
                "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
                "clusters: [{name: c, cluster: {server: 'https://k', certificate-authority: ca.crt}}]\n");
  const auto loaded = controller::loadKubeconfigFile(file);
  REQUIRE(loaded.config);
  CHECK(loaded.config->caPem == "CA");  // relative to the kubeconfig's folder
  CHECK(hasError(controller::loadKubeconfigFile((dir.path / "missing").string()), "missing"));
}

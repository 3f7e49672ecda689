// controller::admit() and podPatch() as tables (docs/injection.md): what is
// injected where, who is skipped and why, what the answer looks like.
#include <catch2/catch.hpp>

#include "controller/base64.h"
#include "controller/injection.h"

using controller::InjectionConfig;
using controller::InjectOutcome;
using nlohmann::json;

namespace {

InjectionConfig testConfig() {
  InjectionConfig config;
  config.noProxy = controller::noProxyList(controller::NoProxyParts{});
  return config;
}

json review(const json& pod, const std::string& op = "CREATE", const std::string& ns = "team-a",
            const json& kind = {{"group", ""}, {"version", "v1"}, {"kind", "Pod"}}) {
  return {{"apiVersion", "admission.k8s.io/v1"},
          {"kind", "AdmissionReview"},
          {"request",
           {{"uid", "705ab4f5-6393-11e8-b7cc-42010a800002"},
            {"kind", kind},
            {"namespace", ns},
            {"name", "p"},
            {"operation", op},
            {"object", pod}}}};
}

json container(const std::string& name, json env = nullptr) {
  json c = {{"name", name}, {"image", "busybox"}};
  if (!env.is_null()) c["env"] = std::move(env);
  return c;
}

// Applies an RFC 6902 patch of "add" operations (the only kind admit()
// emits) the way the API server does, so tests look at the stored pod.
json applied(json pod, const json& patch) {
  for (const auto& op : patch) {
    REQUIRE(op.at("op") == "add");
    const std::string path = op.at("path");
    if (path.size() > 2 && path.substr(path.size() - 2) == "/-") {
      pod[json::json_pointer(path.substr(0, path.size() - 2))].push_back(op.at("value"));
    } else {
      pod[json::json_pointer(path)] = op.at("value");
    }
  }
  return pod;
}

std::vector<std::string> names(const json& env) {
  std::vector<std::string> out;
  for (const auto& var : env) out.push_back(var.at("name"));
  return out;
}

const std::vector<std::string> kInjected = {"EGRESSD_NODE_IP", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy",
                                            "https_proxy",     "NO_PROXY",   "no_proxy"};

}  // namespace

TEST_CASE("injection: NO_PROXY defaults, in order, without duplicates") {
  controller::NoProxyParts parts;
  parts.clusterDomains = {"cluster.local", "corp.example.", ".cluster.local"};
  parts.apiServer = {"kubernetes.default.svc", "10.96.0.1"};
  parts.extra = {"localhost", " registry.corp "};
  const auto list = controller::noProxyList(parts);
  const std::vector<std::string> expected = {
      "localhost", "127.0.0.1",    "::1",           ".cluster.local", ".corp.example",
      ".svc",      "10.96.0.0/12", "10.244.0.0/16", "169.254.20.11",  "kubernetes.default.svc",
      "10.96.0.1", "registry.corp"};
  CHECK(list == expected);
  // .cluster.local is in even when another domain is configured.
  parts.clusterDomains = {"k8s.internal"};
  const auto other = controller::noProxyList(parts);
  CHECK(std::find(other.begin(), other.end(), ".cluster.local") != other.end());
  CHECK(std::find(other.begin(), other.end(), ".k8s.internal") != other.end());
}

TEST_CASE("injection: every container and init container, node IP first, the six variables") {
  const InjectionConfig config = testConfig();
  const json pod = {{"metadata", {{"name", "p"}}},
                    {"spec",
                     {{"initContainers", {container("init")}},
                      {"containers",
                       {container("app", json::array({{{"name", "OTHER"}, {"value", "x"}}})),
                        container("sidecar", json::array())}}}}};
  const auto patch = controller::podPatch(pod, config);
  REQUIRE(patch.outcome == InjectOutcome::Injected);
  CHECK(patch.containersPatched == 3);
  const json stored = applied(pod, patch.operations);
  CHECK(names(stored["spec"]["initContainers"][0]["env"]) == kInjected);
  std::vector<std::string> app = {"OTHER"};
  app.insert(app.end(), kInjected.begin(), kInjected.end());
  CHECK(names(stored["spec"]["containers"][0]["env"]) == app);
  CHECK(names(stored["spec"]["containers"][1]["env"]) == kInjected);
  const json& env = stored["spec"]["containers"][1]["env"];
  CHECK(env[0]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP");
  for (int i = 1; i <= 4; ++i) CHECK(env[i]["value"] == "http://$(EGRESSD_NODE_IP):3128");
  const std::string noProxy =
      "localhost,127.0.0.1,::1,.cluster.local,.svc,10.96.0.0/12,10.244.0.0/16,169.254.20.11,"
      "kubernetes.default.svc,kubernetes.default";
  CHECK(env[5]["value"] == noProxy);
  CHECK(env[6]["value"] == noProxy);
}

TEST_CASE("injection: who is skipped, and why") {
  const InjectionConfig config = testConfig();
  struct Row {
    const char* description;
    json pod;
    InjectOutcome outcome;
    unsigned patched;
  };
  const json envProxy = json::array({{{"name", "NO_PROXY"}, {"value", "corp"}}});
  const std::vector<Row> rows = {
      {"a container setting NO_PROXY is left alone, its neighbour is not",
       {{"spec", {{"containers", {container("a", envProxy), container("b")}}}}},
       InjectOutcome::Injected,
       1},
      {"every container sets one: nothing",
       {{"spec", {{"containers", {container("a", envProxy)}}}}},
       InjectOutcome::AlreadySet,
       0},
      {"lower-case http_proxy counts too",
       {{"spec",
         {{"containers", {container("a", json::array({{{"name", "http_proxy"}, {"value", "x"}}}))}}}}},
       InjectOutcome::AlreadySet,
       0},
      {"hostNetwork",
       {{"spec", {{"hostNetwork", true}, {"containers", {container("a")}}}}},
       InjectOutcome::HostNetwork,
       0},
      {"hostNetwork false is injected",
       {{"spec", {{"hostNetwork", false}, {"containers", {container("a")}}}}},
       InjectOutcome::Injected,
       1},
      {"label egressd.io/inject=disabled",
       {{"metadata", {{"labels", {{"egressd.io/inject", "disabled"}}}}},
        {"spec", {{"containers", {container("a")}}}}},
       InjectOutcome::OptedOut,
       0},
      {"annotation egressd.io/inject=false",
       {{"metadata", {{"annotations", {{"egressd.io/inject", "false"}}}}},
        {"spec", {{"containers", {container("a")}}}}},
       InjectOutcome::OptedOut,
       0},
      {"annotation egressd.io/inject=enabled is no opt-out",
       {{"metadata", {{"annotations", {{"egressd.io/inject", "enabled"}}}}},
        {"spec", {{"containers", {container("a")}}}}},
       InjectOutcome::Injected,
       1},
      {"no spec", {{"metadata", json::object()}}, InjectOutcome::NotUnderstood, 0},
      {"no containers", {{"spec", json::object()}}, InjectOutcome::NotUnderstood, 0},
      {"env that is not a list: skipped with a warning",
       {{"spec", {{"containers", {container("a", json::object())}}}}},
       InjectOutcome::NotUnderstood,
       0},
      {"a container that is not an object is skipped",
       {{"spec", {{"containers", {"junk", container("b")}}}}},
       InjectOutcome::Injected,
       1},
  };
  for (const auto& row : rows) {
    INFO(row.description);
    const auto patch = controller::podPatch(row.pod, config);
    CHECK(patch.outcome == row.outcome);
    CHECK(patch.containersPatched == row.patched);
    CHECK(patch.operations.empty() == (row.patched == 0));
  }
}

TEST_CASE("injection: a user-set EGRESSD_NODE_IP is not duplicated") {
  const InjectionConfig config = testConfig();
  const json pod = {
      {"spec",
       {{"containers",
         {container("a", json::array({{{"name", "EGRESSD_NODE_IP"}, {"value", "10.0.0.5"}}}))}}}}};
  const auto patch = controller::podPatch(pod, config);
  REQUIRE(patch.outcome == InjectOutcome::Injected);
  const json stored = applied(pod, patch.operations);
  CHECK(names(stored["spec"]["containers"][0]["env"]) == kInjected);
  CHECK(stored["spec"]["containers"][0]["env"][0]["value"] == "10.0.0.5");
}

TEST_CASE("injection: reinvocation finds nothing to do") {
  const InjectionConfig config = testConfig();
  const json pod = {{"spec", {{"containers", {container("a")}}}}};
  const json once = applied(pod, controller::podPatch(pod, config).operations);
  const auto again = controller::podPatch(once, config);
  CHECK(again.outcome == InjectOutcome::AlreadySet);
  CHECK(again.operations.empty());
}

TEST_CASE("injection: the per-pod NO_PROXY annotation appends valid entries, warns about the rest") {
  const InjectionConfig config = testConfig();
  const json pod = {
      {"metadata",
       {{"annotations", {{"egressd.io/no-proxy", " my-svc,,bad value,$(X),[fd00::1],localhost"}}}}},
      {"spec", {{"containers", {container("a")}}}}};
  const auto patch = controller::podPatch(pod, config);
  const json stored = applied(pod, patch.operations);
  const std::string noProxy = stored["spec"]["containers"][0]["env"][5]["value"];
  CHECK(noProxy.substr(noProxy.size() - 17) == ",my-svc,[fd00::1]");
  REQUIRE(patch.warnings.size() == 2);
  CHECK(patch.warnings[0].find("\"bad value\" ignored") != std::string::npos);
  CHECK(patch.warnings[1].find("\"$(X)\" ignored") != std::string::npos);
}

TEST_CASE("injection: admit() answers an AdmissionReview with a base64 JSONPatch") {
  const InjectionConfig config = testConfig();
  const json pod = {{"metadata", {{"name", "p"}}}, {"spec", {{"containers", {container("a")}}}}};
  const auto answer = controller::admit(review(pod).dump(), config);
  REQUIRE(answer.httpStatus == 200);
  CHECK(answer.outcome == InjectOutcome::Injected);
  CHECK(answer.pod == "team-a/p");
  const json out = json::parse(answer.body);
  CHECK(out["apiVersion"] == "admission.k8s.io/v1");
  CHECK(out["kind"] == "AdmissionReview");
  CHECK(out["response"]["uid"] == "705ab4f5-6393-11e8-b7cc-42010a800002");
  CHECK(out["response"]["allowed"] == true);
  CHECK(out["response"]["patchType"] == "JSONPatch");
  const auto decoded = controller::base64Decode(out["response"]["patch"].get<std::string>());
  REQUIRE(decoded);
  CHECK(json::parse(*decoded) == controller::podPatch(pod, config).operations);
}

TEST_CASE("injection: admit() allows without a patch, or answers 400 to what is not a review") {
  const InjectionConfig config = testConfig();
  const json pod = {{"spec", {{"containers", {container("a")}}}}};
  struct Row {
    const char* description;
    std::string body;
    int status;
    InjectOutcome outcome;
  };
  const std::vector<Row> rows = {
      {"UPDATE", review(pod, "UPDATE").dump(), 200, InjectOutcome::NotPodCreate},
      {"another kind", review(pod, "CREATE", "team-a", {{"group", "apps"}, {"kind", "Deployment"}}).dump(),
       200, InjectOutcome::NotPodCreate},
      {"kube-system", review(pod, "CREATE", "kube-system").dump(), 200, InjectOutcome::ExcludedNamespace},
      {"egressd-system", review(pod, "CREATE", "egressd-system").dump(), 200,
       InjectOutcome::ExcludedNamespace},
      {"object missing", review(nullptr).dump(), 200, InjectOutcome::NotUnderstood},
      {"not JSON", "{\"apiVersion\":", 400, InjectOutcome::BadReview},
      {"empty", "", 400, InjectOutcome::BadReview},
      {"v1beta1",
       R"({"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}})", 400,
       InjectOutcome::BadReview},
      {"no uid", R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}})", 400,
       InjectOutcome::BadReview},
      {"uid of the wrong type",
       R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":7}})", 400,
       InjectOutcome::BadReview},
  };
  for (const auto& row : rows) {
    INFO(row.description);
    const auto answer = controller::admit(row.body, config);
    CHECK(answer.httpStatus == row.status);
    CHECK(answer.outcome == row.outcome);
    if (row.status == 200) {
      const json out = json::parse(answer.body);
      CHECK(out["response"]["allowed"] == true);
      CHECK_FALSE(out["response"].contains("patch"));
    } else {
      CHECK(answer.body.rfind("not an admission.k8s.io/v1 AdmissionReview: ", 0) == 0);
    }
  }
}

TEST_CASE("injection: base64 round trip and refusals") {
  for (const std::string& text : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba", "foobar",
                                                          std::string("\0\xff\x10", 3)}) {
    const auto encoded = controller::base64Encode(text);
    CHECK(controller::base64Decode(encoded) == text);
  }
  CHECK(controller::base64Encode("foobar") == "Zm9vYmFy");
  CHECK(controller::base64Encode("fo") == "Zm8=");
  CHECK_FALSE(controller::base64Decode("Zm8"));
  CHECK_FALSE(controller::base64Decode("Zm=8"));
  CHECK_FALSE(controller::base64Decode("Zm8=Zm8="));
  CHECK_FALSE(controller::base64Decode("Zm 8"));
}

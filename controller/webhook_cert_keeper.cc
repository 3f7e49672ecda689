#include "controller/webhook_cert_keeper.h"

#include <optional>

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "controller/base64.h"
#include "controller/json_util.h"
#include "controller/lease.h"
#include "controller/status.h"

namespace controller {

namespace {

using common::LogLevel;
using common::LogLine;
using nlohmann::json;

std::string dataField(const json& secret, const char* key) {
  const auto data = secret.find("data");
  if (data == secret.end() || !data->is_object()) return {};
  const auto decoded = base64Decode(jsonString(*data, key));
  return decoded ? *decoded : std::string();
}

TlsMaterial materialOf(const json& secret) {
  TlsMaterial out;
  out.caCert = dataField(secret, "ca.crt");
  out.caKey = dataField(secret, "ca.key");
  out.tlsCert = dataField(secret, "tls.crt");
  out.tlsKey = dataField(secret, "tls.key");
  out.caBundle = dataField(secret, "ca-bundle.crt");
  return out;
}

constexpr std::chrono::seconds kBundleSettle{3};

std::string serialOf(const std::string& pem) {
  const auto info = readCert(pem);
  return info ? info->serial : std::string("-");
}

class CertKeeper {
 public:
  CertKeeper(const ClusterConfig& cluster, const CertKeeperOptions& options, Stopper& stopper,
             const ServingCallback& onServing)
      : options_(options),
        stopper_(stopper),
        onServing_(onServing),
        client_(cluster, stopper),
        elector_(options.ns, options.leaseName, options.identity, options.leaseDurationSeconds) {}

  void run() {
    while (!stopper_.requested()) {
      try {
        tick();
      } catch (const std::exception& e) {
        LogLine(LogLevel::Error, "controller.bug").field("where", "webhook_certs").field("error", e.what());
      }
      if (stopper_.waitFor(options_.poll)) break;
    }
    if (options_.manage && !options_.leaseName.empty() && leader_) releaseLease();
  }

 private:
  std::string secretPath() const {
    return "/api/v1/namespaces/" + options_.ns + "/secrets/" + options_.secretName;
  }
  std::string leasePath() const {
    return "/apis/coordination.k8s.io/v1/namespaces/" + options_.ns + "/leases/" + options_.leaseName;
  }
  std::string webhookPath() const {
    return "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/" +
           options_.webhookConfigName;
  }

  void tick() {
    const bool writer = options_.manage && leading();
    const HttpResponse got = client_.request("GET", secretPath());
    if (got.status == 404) {
      LogLine(LogLevel::Warn, "webhook.secret.missing")
          .field("secret", options_.ns + "/" + options_.secretName)
          .field("fix", options_.manage
                            ? "kubectl apply -k deploy/... ships it empty; the controller fills it"
                            : "cert-manager writes it (deploy/components/webhook-cert-manager)");
      if (writer) createSecret();
      return;
    }
    if (!got.ok()) {
      LogLine(LogLevel::Warn, "webhook.secret.get.failed").field("error", got.describe());
      return;
    }
    json secret = json::parse(got.body, nullptr, false);
    if (!secret.is_object()) {
      logEvent(LogLevel::Warn, "webhook.secret.malformed");
      return;
    }
    TlsMaterial material = materialOf(secret);
    if (writer) reconcile(secret, material);
    serve(material);
  }

  void serve(const TlsMaterial& material) {
    if (material.tlsCert.empty() || (material.tlsCert == servedCert_ && material.tlsKey == servedKey_))
      return;
    if (!keyMatchesCert(material.tlsCert, material.tlsKey)) {
      LogLine(LogLevel::Warn, "webhook.secret.mismatch")
          .field("secret", options_.ns + "/" + options_.secretName)
          .field("error", "tls.key does not belong to tls.crt; keeping the certificate in use");
      return;
    }
    servedCert_ = material.tlsCert;
    servedKey_ = material.tlsKey;
    LogLine(LogLevel::Info, "webhook.certificate.loaded").field("serial", serialOf(material.tlsCert));
    onServing_(material.tlsCert, material.tlsKey);
  }

  // The writer's job: caBundle first (a new serving certificate is only
  // issued once the API server can trust it), then rotation if due.
  void reconcile(json& secret, TlsMaterial& material) {
    if (!material.caBundle.empty() && !syncCaBundle(material.caBundle)) return;
    const CertDecision decision = decideCerts(material, options_.cert, std::chrono::system_clock::now());
    if (decision.action == CertAction::None) return;
    // A serving certificate of a new CA waits until every API server has
    // had time to read the bundle that trusts it (its informer is fast,
    // but not instant).
    if (decision.action == CertAction::NewServing &&
        std::chrono::steady_clock::now() - bundleWrittenAt_ < kBundleSettle)
      return;
    std::string error;
    const auto next = rotateCerts(material, decision, options_.cert, std::chrono::system_clock::now(), error);
    if (!next) {
      LogLine(LogLevel::Error, "webhook.cert.generate.failed").field("error", error);
      return;
    }
    secret["data"] = json{{"ca.crt", base64Encode(next->caCert)},
                          {"ca.key", base64Encode(next->caKey)},
                          {"tls.crt", base64Encode(next->tlsCert)},
                          {"tls.key", base64Encode(next->tlsKey)},
                          {"ca-bundle.crt", base64Encode(next->caBundle)}};
    // PUT with the resourceVersion we read: a concurrent writer gets 409.
    const HttpResponse put = client_.request("PUT", secretPath(), dumpJson(secret));
    if (!put.ok()) {
      LogLine(LogLevel::Warn, "webhook.secret.write.failed").field("error", put.describe());
      return;
    }
    LogLine(LogLevel::Info, "webhook.cert.rotated")
        .field("reason", decision.reason)
        .field("new_ca", decision.action == CertAction::NewCa)
        .field("ca_serial", serialOf(next->caCert))
        .field("serial", serialOf(next->tlsCert));
    material = *next;
    syncCaBundle(material.caBundle);
  }

  bool syncCaBundle(const std::string& bundle) {
    const HttpResponse got = client_.request("GET", webhookPath());
    if (!got.ok()) {
      LogLine(LogLevel::Warn, "webhook.config.get.failed")
          .field("config", options_.webhookConfigName)
          .field("error", got.describe());
      return false;
    }
    json config = json::parse(got.body, nullptr, false);
    if (!config.is_object() || !config.contains("webhooks") || !config["webhooks"].is_array()) {
      logEvent(LogLevel::Warn, "webhook.config.malformed");
      return false;
    }
    const std::string encoded = base64Encode(bundle);
    bool changed = false;
    for (auto& webhook : config["webhooks"]) {
      if (!webhook.is_object()) continue;
      json& clientConfig = webhook["clientConfig"];
      if (!clientConfig.is_object()) clientConfig = json::object();
      if (jsonString(clientConfig, "caBundle") != encoded) {
        clientConfig["caBundle"] = encoded;
        changed = true;
      }
    }
    if (!changed) return true;
    const HttpResponse put = client_.request("PUT", webhookPath(), dumpJson(config));
    if (!put.ok()) {
      LogLine(LogLevel::Warn, "webhook.config.write.failed")
          .field("config", options_.webhookConfigName)
          .field("error", put.describe());
      return false;
    }
    bundleWrittenAt_ = std::chrono::steady_clock::now();
    LogLine(LogLevel::Info, "webhook.cabundle.written").field("config", options_.webhookConfigName);
    return true;
  }

  void createSecret() {
    const json secret = {{"apiVersion", "v1"},
                         {"kind", "Secret"},
                         {"metadata", {{"name", options_.secretName}, {"namespace", options_.ns}}},
                         {"type", "Opaque"}};
    const HttpResponse created =
        client_.request("POST", "/api/v1/namespaces/" + options_.ns + "/secrets", dumpJson(secret));
    if (!created.ok())
      LogLine(LogLevel::Warn, "webhook.secret.create.failed").field("error", created.describe());
  }

  // One writer among the replicas (the Lease of controller/lease.h).
  bool leading() {
    if (options_.leaseName.empty()) return true;
    const auto now = std::chrono::steady_clock::now();
    const HttpResponse current = client_.request("GET", leasePath());
    std::optional<json> lease;
    if (current.ok()) {
      lease = json::parse(current.body, nullptr, false);
      if (lease->is_discarded()) return stillLeading(now);
    } else if (current.status != 404) {
      LogLine(LogLevel::Warn, "lease.get.failed").field("error", current.describe());
      return stillLeading(now);
    }
    const LeaseStep step = elector_.step(lease, now, rfc3339Now(true));
    if (step.action == LeaseAction::None) return setLeader(false);
    const HttpResponse written =
        step.action == LeaseAction::Create
            ? client_.request("POST", "/apis/coordination.k8s.io/v1/namespaces/" + options_.ns + "/leases",
                              dumpJson(step.body))
            : client_.request("PUT", leasePath(), dumpJson(step.body));
    if (!written.ok()) {
      if (written.status != 409)
        LogLine(LogLevel::Warn, "lease.write.failed").field("error", written.describe());
      return written.status == 409 ? setLeader(false) : stillLeading(now);
    }
    lastRenew_ = now;
    return setLeader(true);
  }

  bool stillLeading(std::chrono::steady_clock::time_point now) {
    const auto deadline = std::chrono::milliseconds(options_.leaseDurationSeconds * 1000 * 2 / 3);
    return setLeader(leader_ && now - lastRenew_ <= deadline);
  }

  bool setLeader(bool leader) {
    if (leader != leader_) {
      LogLine(leader ? LogLevel::Info : LogLevel::Warn, leader ? "lease.acquired" : "lease.lost")
          .field("lease", options_.ns + "/" + options_.leaseName)
          .field("identity", options_.identity);
    }
    leader_ = leader;
    return leader;
  }

  void releaseLease() {
    Stopper noStop;
    KubeClient client(client_.config(), noStop);
    const HttpResponse current = client.request("GET", leasePath());
    if (!current.ok()) return;
    const json lease = json::parse(current.body, nullptr, false);
    if (lease.is_discarded()) return;
    if (const auto body = elector_.release(lease, rfc3339Now(true)))
      client.request("PUT", leasePath(), dumpJson(*body));
  }

  const CertKeeperOptions& options_;
  Stopper& stopper_;
  const ServingCallback& onServing_;
  KubeClient client_;
  LeaseElector elector_;
  bool leader_ = false;
  std::chrono::steady_clock::time_point lastRenew_{};
  std::chrono::steady_clock::time_point bundleWrittenAt_{};
  std::string servedCert_;
  std::string servedKey_;
};

}  // namespace

void runCertKeeper(const ClusterConfig& cluster, const CertKeeperOptions& options, Stopper& stopper,
                   const ServingCallback& onServing) {
  CertKeeper keeper(cluster, options, stopper, onServing);
  keeper.run();
}

}  // namespace controller

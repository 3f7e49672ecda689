// Keeps the webhook's certificates in the cluster (docs/injection.md
// "Certificates"): reads the Secret every poll interval and hands its
// serving pair to the server (every replica); the replica holding the Lease
// also creates and rotates the certificates in the Secret
// (controller/webhook_certs.cc decides) and keeps the
// MutatingWebhookConfiguration's caBundle equal to the Secret's bundle.
//
// With `manage` off (cert-manager writes the Secret and its CA injector the
// caBundle) it only reads. run() blocks until the Stopper fires; API errors
// are logged and retried at the next poll, never fatal.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "controller/kube_client.h"
#include "controller/kubeconfig.h"
#include "controller/webhook_certs.h"

namespace controller {

struct CertKeeperOptions {
  std::string ns = "egressd-system";
  std::string secretName = "egressd-webhook-tls";
  std::string webhookConfigName = "egressd-inject";
  bool manage = true;
  std::string leaseName = "egressd-webhook-certs";  // in `ns`; empty: always write (one replica)
  std::string identity;
  int64_t leaseDurationSeconds = 15;
  std::chrono::milliseconds poll{10'000};
  CertOptions cert;
};

// Called with tls.crt and tls.key whenever they change (and are a pair).
using ServingCallback = std::function<void(const std::string& certPem, const std::string& keyPem)>;

void runCertKeeper(const ClusterConfig& cluster, const CertKeeperOptions& options, Stopper& stopper,
                   const ServingCallback& onServing);

}  // namespace controller

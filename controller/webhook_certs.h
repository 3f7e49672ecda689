// The webhook's certificates (docs/injection.md "Certificates"): a
// self-signed CA and a serving certificate it signs, kept in one Secret,
// generated and rotated with OpenSSL. No I/O: the caller reads and writes
// the Secret (controller/webhook_cert_keeper.cc).
//
// Rotation without a gap: the API server trusts `caBundle` (the current CA
// plus the previous one while it is valid). A new CA is first published in
// the bundle, still serving the certificate of the old CA; the serving
// certificate signed by the new CA follows at the next step, once the
// bundle holds both.
//
// Thread-safe (no shared state); nothing throws.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace controller {

using SystemTime = std::chrono::system_clock::time_point;

// The Secret's data, PEM text (keys of the Secret: ca.crt, ca.key,
// tls.crt, tls.key, ca-bundle.crt).
struct TlsMaterial {
  std::string caCert;
  std::string caKey;
  std::string tlsCert;
  std::string tlsKey;
  std::string caBundle;  // what the webhook configuration's caBundle holds
  bool operator==(const TlsMaterial&) const = default;
};

struct CertOptions {
  std::vector<std::string> subjectAltNames;  // DNS names and IP addresses of the serving certificate
  std::chrono::seconds caValidity{std::chrono::hours(24 * 365)};
  std::chrono::seconds servingValidity{std::chrono::hours(24 * 90)};
};

// Renewed when less than a third of the lifetime is left (as cert-manager).
enum class CertAction : uint8_t { None, NewCa, NewServing };
struct CertDecision {
  CertAction action = CertAction::None;
  std::string reason;  // for the log: "no CA", "serving certificate expires 2027-...", ...
};

CertDecision decideCerts(const TlsMaterial& current, const CertOptions& options, SystemTime now);

// Carries out a decision: the new Secret content, or nullopt with `error`
// (an OpenSSL failure). NewCa keeps a serving certificate of the old CA
// that is still good (the bundle holds both CAs); NewServing keeps the CA.
std::optional<TlsMaterial> rotateCerts(const TlsMaterial& current, const CertDecision& decision,
                                       const CertOptions& options, SystemTime now, std::string& error);

// A certificate's facts, for decisions, logs and tests.
struct CertInfo {
  SystemTime notBefore;
  SystemTime notAfter;
  std::string serial;                        // hex
  std::vector<std::string> subjectAltNames;  // "DNS:x", "IP:1.2.3.4"
  bool isCa = false;
};
std::optional<CertInfo> readCert(const std::string& pem);

// tls.crt and tls.key belong together (the server loads them as a pair).
bool keyMatchesCert(const std::string& certPem, const std::string& keyPem);

}  // namespace controller

#include "controller/webhook_certs.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <ctime>

#include "common/c_handle.h"
#include "common/ip_address.h"

namespace controller {

namespace {

using Bio = common::CHandle<BIO, BIO_free_all>;
using Key = common::CHandle<EVP_PKEY, EVP_PKEY_free>;
using Cert = common::CHandle<X509, X509_free>;
using Bignum = common::CHandle<BIGNUM, BN_free>;
using Extension = common::CHandle<X509_EXTENSION, X509_EXTENSION_free>;
using GeneralNames = common::CHandle<GENERAL_NAMES, GENERAL_NAMES_free>;

std::string opensslError(const char* what) {
  const unsigned long code = ERR_get_error();
  char text[256] = {};
  if (code != 0) ERR_error_string_n(code, text, sizeof text);
  ERR_clear_error();
  return std::string(what) + ": " + (code != 0 ? text : "unknown OpenSSL error");
}

Cert parseCert(const std::string& pem) {
  if (pem.empty()) return nullptr;
  const Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return nullptr;
  Cert cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  return cert;
}

// Every certificate of a PEM bundle, in order.
std::vector<Cert> parseCerts(const std::string& pem) {
  std::vector<Cert> out;
  if (pem.empty()) return out;
  const Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return out;
  while (true) {
    Cert cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) break;
    out.push_back(std::move(cert));
  }
  ERR_clear_error();
  return out;
}

Key parseKey(const std::string& pem) {
  if (pem.empty()) return nullptr;
  const Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return nullptr;
  Key key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  return key;
}

std::string certPem(X509* cert) {
  const Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return {};
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

std::string keyPem(EVP_PKEY* key) {
  const Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) return {};
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

std::optional<SystemTime> asnTime(const ASN1_TIME* time) {
  std::tm tm{};
  if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) return std::nullopt;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::string hexSerial(X509* cert) {
  const Bignum bn(ASN1_INTEGER_to_BN(X509_get_serialNumber(cert), nullptr));
  if (!bn) return {};
  char* hex = BN_bn2hex(bn.get());
  if (hex == nullptr) return {};
  std::string out(hex);
  OPENSSL_free(hex);
  return out;
}

std::vector<std::string> altNames(X509* cert) {
  std::vector<std::string> out;
  const GeneralNames names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type == GEN_DNS) {
      const auto* text = name->d.dNSName;
      out.push_back("DNS:" + std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                                         static_cast<size_t>(ASN1_STRING_length(text))));
    } else if (name->type == GEN_IPADD) {
      const auto* bytes = name->d.iPAddress;
      const auto* data = ASN1_STRING_get0_data(bytes);
      const int length = ASN1_STRING_length(bytes);
      if (length == 4) out.push_back("IP:" + common::IpAddress::v4Bytes(data).toString());
      if (length == 16) out.push_back("IP:" + common::IpAddress::v6Bytes(data).toString());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// "DNS:name" or "IP:address" for one configured name, as altNames() reads it back.
std::string altNameEntry(const std::string& name) {
  if (const auto address = common::parseIpAddress(name)) return "IP:" + address->toString();
  return "DNS:" + name;
}

std::vector<std::string> wantedAltNames(const CertOptions& options) {
  std::vector<std::string> out;
  for (const auto& name : options.subjectAltNames) out.push_back(altNameEntry(name));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

bool addExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, issuer, cert, nullptr, nullptr, 0);
  const Extension extension(X509V3_EXT_conf_nid(nullptr, &context, nid, value.c_str()));
  return extension && X509_add_ext(cert, extension.get(), -1) == 1;
}

// A new certificate for `key`, signed by issuerKey (self-signed when
// issuer is null).
Cert makeCert(EVP_PKEY* key, const std::string& commonName, X509* issuer, EVP_PKEY* issuerKey,
              const std::vector<std::string>& altNames, std::chrono::seconds validity, SystemTime now,
              std::string& error) {
  Cert cert(X509_new());
  if (!cert) {
    error = opensslError("X509_new");
    return nullptr;
  }
  const bool isCa = issuer == nullptr;
  const Bignum serial(BN_new());
  ASN1_INTEGER* serialAsn = X509_get_serialNumber(cert.get());
  // Backdated for API servers whose clocks lag: 5 minutes, or a tenth of
  // a short test lifetime (renewal at two thirds counts from notBefore).
  const auto backdate = std::min<time_t>(300, static_cast<time_t>(validity.count() / 10));
  const auto start = std::chrono::system_clock::to_time_t(now) - backdate;
  const auto end = std::chrono::system_clock::to_time_t(now) + static_cast<time_t>(validity.count());
  bool ok = serial && BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
            BN_to_ASN1_INTEGER(serial.get(), serialAsn) != nullptr && X509_set_version(cert.get(), 2) == 1 &&
            ASN1_TIME_set(X509_getm_notBefore(cert.get()), start) != nullptr &&
            ASN1_TIME_set(X509_getm_notAfter(cert.get()), end) != nullptr &&
            X509_set_pubkey(cert.get(), key) == 1;
  X509_NAME* subject = X509_get_subject_name(cert.get());
  ok = ok &&
       X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                                  reinterpret_cast<const unsigned char*>(commonName.c_str()), -1, -1, 0) == 1;
  ok = ok && X509_set_issuer_name(cert.get(), isCa ? subject : X509_get_subject_name(issuer)) == 1;
  X509* signer = isCa ? cert.get() : issuer;
  ok = ok && addExtension(cert.get(), signer, NID_subject_key_identifier, "hash");
  if (isCa) {
    ok = ok && addExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
         addExtension(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    std::string sans;
    for (const auto& name : altNames) sans += (sans.empty() ? "" : ",") + name;
    ok = ok && addExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE") &&
         addExtension(cert.get(), signer, NID_key_usage, "critical,digitalSignature,keyEncipherment") &&
         addExtension(cert.get(), signer, NID_ext_key_usage, "serverAuth") &&
         addExtension(cert.get(), signer, NID_authority_key_identifier, "keyid:always") &&
         (sans.empty() || addExtension(cert.get(), signer, NID_subject_alt_name, sans));
  }
  ok = ok && X509_sign(cert.get(), isCa ? key : issuerKey, EVP_sha256()) > 0;
  if (!ok) {
    error = opensslError(isCa ? "creating the webhook CA" : "creating the webhook serving certificate");
    return nullptr;
  }
  return cert;
}

Key newKey(std::string& error) {
  Key key(EVP_EC_gen("P-256"));
  if (!key) error = opensslError("EC P-256 key generation");
  return key;
}

bool signedBy(X509* cert, X509* ca) {
  Key caKey(X509_get_pubkey(ca));
  const bool ok = caKey && X509_verify(cert, caKey.get()) == 1;
  ERR_clear_error();
  return ok;
}

std::string formatTime(SystemTime time) {
  const time_t t = std::chrono::system_clock::to_time_t(time);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32] = {};
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

// Due for renewal: less than a third of its lifetime left.
bool renewalDue(const CertInfo& info, SystemTime now) {
  const auto lifetime = info.notAfter - info.notBefore;
  return now >= info.notAfter - lifetime / 3;
}

// Issued for longer than the configured validity (plus its backdating):
// a shortened --webhook-*-validity takes effect at once.
bool longerThan(const CertInfo& info, std::chrono::seconds validity) {
  return info.notAfter - info.notBefore > validity + validity / 10 + std::chrono::seconds(1);
}

}  // namespace

std::optional<CertInfo> readCert(const std::string& pem) {
  const Cert cert = parseCert(pem);
  if (!cert) return std::nullopt;
  CertInfo info;
  const auto notBefore = asnTime(X509_get0_notBefore(cert.get()));
  const auto notAfter = asnTime(X509_get0_notAfter(cert.get()));
  if (!notBefore || !notAfter) return std::nullopt;
  info.notBefore = *notBefore;
  info.notAfter = *notAfter;
  info.serial = hexSerial(cert.get());
  info.subjectAltNames = altNames(cert.get());
  info.isCa = X509_check_ca(cert.get()) > 0;
  return info;
}

bool keyMatchesCert(const std::string& certPem, const std::string& keyPem) {
  const Cert cert = parseCert(certPem);
  const Key key = parseKey(keyPem);
  if (!cert || !key) return false;
  const bool ok = X509_check_private_key(cert.get(), key.get()) == 1;
  ERR_clear_error();
  return ok;
}

CertDecision decideCerts(const TlsMaterial& current, const CertOptions& options, SystemTime now) {
  const auto ca = readCert(current.caCert);
  if (!ca || !ca->isCa) return {CertAction::NewCa, "no CA certificate in the Secret"};
  if (!keyMatchesCert(current.caCert, current.caKey))
    return {CertAction::NewCa, "CA key missing or not the CA's"};
  if (renewalDue(*ca, now)) return {CertAction::NewCa, "CA expires " + formatTime(ca->notAfter)};
  if (longerThan(*ca, options.caValidity)) return {CertAction::NewCa, "CA validity shortened"};
  // The bundle must hold the current CA (a new CA is published there first).
  bool bundleHasCa = false;
  const Cert caCert = parseCert(current.caCert);
  for (const auto& cert : parseCerts(current.caBundle))
    bundleHasCa = bundleHasCa || X509_cmp(cert.get(), caCert.get()) == 0;
  if (!bundleHasCa) return {CertAction::NewCa, "CA bundle does not hold the CA"};

  const auto serving = readCert(current.tlsCert);
  if (!serving) return {CertAction::NewServing, "no serving certificate"};
  if (!keyMatchesCert(current.tlsCert, current.tlsKey))
    return {CertAction::NewServing, "serving key missing or not the certificate's"};
  const Cert servingCert = parseCert(current.tlsCert);
  if (!signedBy(servingCert.get(), caCert.get()))
    return {CertAction::NewServing, "serving certificate not signed by the current CA"};
  if (serving->subjectAltNames != wantedAltNames(options)) return {CertAction::NewServing, "names changed"};
  if (longerThan(*serving, options.servingValidity))
    return {CertAction::NewServing, "serving certificate validity shortened"};
  if (renewalDue(*serving, now))
    return {CertAction::NewServing, "serving certificate expires " + formatTime(serving->notAfter)};
  return {};
}

std::optional<TlsMaterial> rotateCerts(const TlsMaterial& current, const CertDecision& decision,
                                       const CertOptions& options, SystemTime now, std::string& error) {
  TlsMaterial next = current;
  const auto issueServing = [&](X509* ca, EVP_PKEY* caKey) {
    const Key key = newKey(error);
    if (!key) return false;
    const Cert cert = makeCert(
        key.get(), "egressd-webhook", ca, caKey,
        [&] {
          std::vector<std::string> names;
          for (const auto& name : options.subjectAltNames) names.push_back(altNameEntry(name));
          return names;
        }(),
        options.servingValidity, now, error);
    if (!cert) return false;
    next.tlsCert = certPem(cert.get());
    next.tlsKey = keyPem(key.get());
    return !next.tlsCert.empty() && !next.tlsKey.empty();
  };

  switch (decision.action) {
    case CertAction::None:
      return next;
    case CertAction::NewServing: {
      const Cert ca = parseCert(current.caCert);
      const Key caKey = parseKey(current.caKey);
      if (!ca || !caKey) {
        error = "the Secret's CA cannot be read";
        return std::nullopt;
      }
      if (!issueServing(ca.get(), caKey.get())) return std::nullopt;
      return next;
    }
    case CertAction::NewCa:
      break;
  }
  const Key caKey = newKey(error);
  if (!caKey) return std::nullopt;
  const Cert ca =
      makeCert(caKey.get(), "egressd-webhook-ca", nullptr, nullptr, {}, options.caValidity, now, error);
  if (!ca) return std::nullopt;
  next.caCert = certPem(ca.get());
  next.caKey = keyPem(caKey.get());
  // The bundle: the new CA, then the old one while it is valid, so the
  // serving certificate it signed keeps working until it is replaced.
  next.caBundle = next.caCert;
  const Cert oldCa = parseCert(current.caCert);
  const auto oldInfo = readCert(current.caCert);
  const bool oldCaGood = oldCa && oldInfo && oldInfo->isCa && now < oldInfo->notAfter;
  if (oldCaGood) next.caBundle += certPem(oldCa.get());
  // Keep the old serving certificate if the old CA vouches for it and it
  // is still valid: the servers switch only after the bundle is published.
  const auto serving = readCert(current.tlsCert);
  const Cert servingCert = parseCert(current.tlsCert);
  const bool keepServing = oldCaGood && serving && now < serving->notAfter &&
                           keyMatchesCert(current.tlsCert, current.tlsKey) &&
                           signedBy(servingCert.get(), oldCa.get());
  if (!keepServing && !issueServing(ca.get(), caKey.get())) return std::nullopt;
  return next;
}

}  // namespace controller

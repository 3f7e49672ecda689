// The webhook's certificates (controller/webhook_certs.cc) with an injected
// clock: created from nothing, renewed at two thirds of their lifetime, a
// new CA published in the bundle before a serving certificate of it is used.
#include <catch2/catch.hpp>

#include <algorithm>

#include "controller/webhook_certs.h"

using controller::CertAction;
using controller::CertOptions;
using controller::TlsMaterial;
using namespace std::chrono_literals;

namespace {

CertOptions options() {
  CertOptions o;
  o.subjectAltNames = {"egressd-webhook.egressd-system.svc", "127.0.0.1"};
  o.caValidity = 300s;
  o.servingValidity = 90s;
  return o;
}

TlsMaterial rotate(const TlsMaterial& current, controller::SystemTime now) {
  const auto decision = controller::decideCerts(current, options(), now);
  std::string error;
  const auto next = controller::rotateCerts(current, decision, options(), now, error);
  REQUIRE(next);
  CHECK(error.empty());
  return *next;
}

}  // namespace

TEST_CASE("webhook certs: from an empty Secret to a CA, a bundle and a serving pair") {
  const auto t0 = std::chrono::system_clock::now();
  const auto decision = controller::decideCerts({}, options(), t0);
  CHECK(decision.action == CertAction::NewCa);
  const TlsMaterial m = rotate({}, t0);
  CHECK(m.caBundle == m.caCert);
  CHECK(controller::keyMatchesCert(m.caCert, m.caKey));
  CHECK(controller::keyMatchesCert(m.tlsCert, m.tlsKey));
  CHECK_FALSE(controller::keyMatchesCert(m.tlsCert, m.caKey));
  const auto ca = controller::readCert(m.caCert);
  const auto serving = controller::readCert(m.tlsCert);
  REQUIRE(ca);
  REQUIRE(serving);
  CHECK(ca->isCa);
  CHECK_FALSE(serving->isCa);
  CHECK(serving->subjectAltNames ==
        std::vector<std::string>{"DNS:egressd-webhook.egressd-system.svc", "IP:127.0.0.1"});
  CHECK(serving->notAfter - serving->notBefore == 99s);  // 90 s plus a tenth backdated
  CHECK(controller::decideCerts(m, options(), t0).action == CertAction::None);
}

TEST_CASE("webhook certs: serving renewed at two thirds, the CA kept") {
  const auto t0 = std::chrono::system_clock::now();
  const TlsMaterial m = rotate({}, t0);
  CHECK(controller::decideCerts(m, options(), t0 + 50s).action == CertAction::None);
  const auto due = controller::decideCerts(m, options(), t0 + 60s);
  CHECK(due.action == CertAction::NewServing);
  CHECK(due.reason.find("serving certificate expires") == 0);
  const TlsMaterial next = rotate(m, t0 + 60s);
  CHECK(next.caCert == m.caCert);
  CHECK(next.caBundle == m.caBundle);
  CHECK(next.tlsCert != m.tlsCert);
  CHECK(controller::decideCerts(next, options(), t0 + 60s).action == CertAction::None);
}

TEST_CASE("webhook certs: a new CA goes into the bundle first, its serving certificate second") {
  const auto t0 = std::chrono::system_clock::now();
  const TlsMaterial m = rotate({}, t0);
  const auto t1 = t0 + 200s;  // CA: 330 s lifetime, renewed with 110 s left
  auto decision = controller::decideCerts(m, options(), t1);
  REQUIRE(decision.action == CertAction::NewCa);
  // The old serving certificate has expired by now: a new one at once.
  const TlsMaterial fresh = rotate(m, t1);
  CHECK(fresh.caBundle == fresh.caCert + m.caCert);

  // With a serving certificate of the old CA still valid, it is kept.
  const TlsMaterial renewed = rotate(m, t0 + 60s);      // serving renewed at t0+60s, valid to t0+150s
  const TlsMaterial aged = rotate(renewed, t0 + 150s);  // serving valid until t0+240s
  CHECK(aged.caCert == m.caCert);
  const auto caDue = controller::decideCerts(aged, options(), t0 + 225s);
  REQUIRE(caDue.action == CertAction::NewCa);
  std::string error;
  const auto step1 = controller::rotateCerts(aged, caDue, options(), t0 + 225s, error);
  REQUIRE(step1);
  CHECK(step1->caCert != aged.caCert);
  CHECK(step1->tlsCert == aged.tlsCert);  // still the old CA's, trusted through the bundle
  CHECK(step1->caBundle == step1->caCert + aged.caCert);
  const auto step2 = controller::decideCerts(*step1, options(), t0 + 226s);
  CHECK(step2.action == CertAction::NewServing);
  CHECK(step2.reason == "serving certificate not signed by the current CA");
  const TlsMaterial done = rotate(*step1, t0 + 226s);
  CHECK(controller::decideCerts(done, options(), t0 + 226s).action == CertAction::None);
}

TEST_CASE("webhook certs: broken or changed material is replaced") {
  const auto t0 = std::chrono::system_clock::now();
  const TlsMaterial m = rotate({}, t0);
  TlsMaterial wrongKey = m;
  wrongKey.tlsKey = m.caKey;
  CHECK(controller::decideCerts(wrongKey, options(), t0).action == CertAction::NewServing);
  TlsMaterial noBundle = m;
  noBundle.caBundle.clear();
  CHECK(controller::decideCerts(noBundle, options(), t0).action == CertAction::NewCa);
  TlsMaterial garbage = m;
  garbage.caCert = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n";
  CHECK(controller::decideCerts(garbage, options(), t0).action == CertAction::NewCa);
  CertOptions renamed = options();
  renamed.subjectAltNames.push_back("egressd-webhook.egressd-system.svc.cluster.local");
  CHECK(controller::decideCerts(m, renamed, t0).reason == "names changed");
  CertOptions shorter = options();
  shorter.servingValidity = 30s;
  CHECK(controller::decideCerts(m, shorter, t0).reason == "serving certificate validity shortened");
  shorter.caValidity = 60s;
  CHECK(controller::decideCerts(m, shorter, t0).reason == "CA validity shortened");
}

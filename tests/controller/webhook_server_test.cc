// controller::WebhookServer's counters (GET /metrics, docs/injection.md
// "Metrics"), with a real TLS client (libcurl) on loopback: reviews over one
// kept-alive connection are one handshake, a second client is a second one,
// a client that does not speak TLS is a connection without a handshake, and
// every review is timed.
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "common/socket_address.h"
#include "common/unique_fd.h"
#include "controller/kube_client.h"
#include "controller/webhook_certs.h"
#include "controller/webhook_server.h"

namespace {

using nlohmann::json;

controller::TlsMaterial certsFor127() {
  controller::CertOptions options;
  options.subjectAltNames = {"127.0.0.1"};
  const auto now = std::chrono::system_clock::now();
  const controller::TlsMaterial empty;
  std::string error;
  auto material =
      controller::rotateCerts(empty, controller::decideCerts(empty, options, now), options, now, error);
  REQUIRE(material);
  return *material;
}

std::string podReview(const std::string& name) {
  const json pod = {{"apiVersion", "v1"},
                    {"kind", "Pod"},
                    {"metadata", {{"name", name}, {"namespace", "team-a"}}},
                    {"spec", {{"containers", json::array({{{"name", "app"}, {"image", "busybox"}}})}}}};
  return json{{"apiVersion", "admission.k8s.io/v1"},
              {"kind", "AdmissionReview"},
              {"request",
               {{"uid", "uid-" + name},
                {"kind", {{"group", ""}, {"version", "v1"}, {"kind", "Pod"}}},
                {"namespace", "team-a"},
                {"name", name},
                {"operation", "CREATE"},
                {"object", pod}}}}
      .dump();
}

size_t collect(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

// One HTTPS client: one curl handle, so one kept-alive connection.
class Client {
 public:
  Client(std::string base, const std::string& ca) : base_(std::move(base)), ca_(ca), curl_(curl_easy_init()) {
    REQUIRE(curl_);
  }
  ~Client() { curl_easy_cleanup(curl_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // The status; the body into `body`.
  long call(const std::string& path, const std::string* post, std::string& body) {
    body.clear();
    curl_blob blob{ca_.data(), ca_.size(), CURL_BLOB_COPY};
    curl_easy_setopt(curl_, CURLOPT_URL, (base_ + path).c_str());
    curl_easy_setopt(curl_, CURLOPT_CAINFO_BLOB, &blob);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &collect);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(curl_, CURLOPT_HTTPGET, 1L);
    if (post != nullptr) {
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, post->c_str());
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE, static_cast<long>(post->size()));
    }
    const CURLcode result = curl_easy_perform(curl_);
    REQUIRE(result == CURLE_OK);
    long status = 0;
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &status);
    return status;
  }

 private:
  std::string base_;
  std::string ca_;
  CURL* curl_;
};

// A client that does not speak TLS: sends plain HTTP and waits for the close.
void plainTextClient(uint16_t port) {
  common::UniqueFd fd(::socket(AF_INET, SOCK_STREAM, 0));
  REQUIRE(fd);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  const std::string request = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  REQUIRE(::send(fd.get(), request.data(), request.size(), 0) == static_cast<ssize_t>(request.size()));
  char buffer[512];
  while (::recv(fd.get(), buffer, sizeof buffer, 0) > 0) {
  }
}

// The value of one sample line ("name{labels} value") of a text exposition.
double sampleValue(const std::string& text, const std::string& series) {
  const auto at = text.find("\n" + series + " ");
  REQUIRE(at != std::string::npos);
  return std::stod(text.substr(at + series.size() + 2));
}

}  // namespace

TEST_CASE("webhook server: handshakes, requests, reviews and review time on GET /metrics") {
  const auto certs = certsFor127();
  controller::InjectionConfig config;
  config.noProxy = controller::noProxyList(controller::NoProxyParts{});
  controller::WebhookServer server(config);
  std::string error;
  const auto address = common::parseSocketAddress("127.0.0.1:0");
  REQUIRE(address);
  REQUIRE(server.bind(*address, error));
  server.setCertificate(certs.tlsCert, certs.tlsKey);
  controller::Stopper stopper;
  std::thread loop([&] { server.run(stopper); });
  const uint16_t port = server.boundAddress().port;
  const std::string base = "https://127.0.0.1:" + std::to_string(port);

  std::string body;
  {
    Client apiServer(base, certs.caCert);
    for (const char* name : {"web-1", "web-2"}) {
      const std::string review = podReview(name);
      REQUIRE(apiServer.call("/inject", &review, body) == 200);
      CHECK(json::parse(body)["response"]["patchType"] == "JSONPatch");
    }
  }
  plainTextClient(port);
  Client scraper(base, certs.caCert);
  REQUIRE(scraper.call("/metrics", nullptr, body) == 200);
  const std::string metrics = "\n" + body;
  stopper.request();
  loop.join();

  // Two TLS clients, one plain: three connections, two handshakes.
  CHECK(sampleValue(metrics, "egressd_webhook_connections_total") == 3);
  CHECK(sampleValue(metrics, "egressd_webhook_tls_handshakes_total") == 2);
  CHECK(sampleValue(metrics, R"(egressd_webhook_requests_total{path="/inject"})") == 2);
  CHECK(sampleValue(metrics, R"(egressd_webhook_requests_total{path="/metrics"})") == 1);
  CHECK(sampleValue(metrics, R"(egressd_webhook_requests_total{path="other"})") == 0);
  CHECK(sampleValue(metrics, R"(egressd_webhook_reviews_total{outcome="injected"})") == 2);
  CHECK(server.reviews(controller::InjectOutcome::Injected) == 2);
  // Both reviews timed to their last byte, in cumulative buckets.
  CHECK(sampleValue(metrics, "egressd_webhook_review_duration_seconds_count") == 2);
  CHECK(sampleValue(metrics, R"(egressd_webhook_review_duration_seconds_bucket{le="+Inf"})") == 2);
  CHECK(sampleValue(metrics, R"(egressd_webhook_review_duration_seconds_bucket{le="2.5"})") == 2);
  CHECK(sampleValue(metrics, "egressd_webhook_review_duration_seconds_sum") > 0);
  CHECK(metrics.find("# TYPE egressd_webhook_review_duration_seconds histogram\n") != std::string::npos);
}

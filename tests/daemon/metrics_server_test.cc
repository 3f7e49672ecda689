// daemon/metrics.h over real loopback HTTP (libevent's client on the same
// event loop): status codes, content type, request bounds, bind failure,
// /healthz and /readyz (daemon/health.h).
#include <catch2/catch.hpp>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <string>

#include "common/c_handle.h"
#include "daemon/metrics.h"

namespace {

struct Response {
  bool done = false;
  int code = 0;  // 0: the connection failed or was closed without a reply
  std::string body;
  std::string contentType;
  std::string allow;
};

void onResponse(evhttp_request* request, void* arg) {
  auto* response = static_cast<Response*>(arg);
  response->done = true;
  if (request == nullptr) return;
  response->code = evhttp_request_get_response_code(request);
  evbuffer* input = evhttp_request_get_input_buffer(request);
  const size_t length = evbuffer_get_length(input);
  response->body.resize(length);
  if (length > 0) evbuffer_copyout(input, response->body.data(), length);
  const evkeyvalq* headers = evhttp_request_get_input_headers(request);
  if (const char* type = evhttp_find_header(headers, "Content-Type")) response->contentType = type;
  if (const char* allow = evhttp_find_header(headers, "Allow")) response->allow = allow;
}

void onDeadline(evutil_socket_t, short, void* arg) {
  static_cast<Response*>(arg)->done = true;
}

Response fetch(event_base* base, uint16_t port, evhttp_cmd_type method, const char* path,
               const std::string& extraHeaderValue = {}) {
  Response response;
  common::CHandle<evhttp_connection, evhttp_connection_free> connection(
      evhttp_connection_base_new(base, nullptr, "127.0.0.1", port));
  REQUIRE(connection);
  evhttp_request* request = evhttp_request_new(&onResponse, &response);
  evkeyvalq* headers = evhttp_request_get_output_headers(request);
  evhttp_add_header(headers, "Host", "localhost");
  if (!extraHeaderValue.empty()) evhttp_add_header(headers, "X-Padding", extraHeaderValue.c_str());
  REQUIRE(evhttp_make_request(connection.get(), request, method, path) == 0);
  common::CHandle<event, event_free> deadline(evtimer_new(base, &onDeadline, &response));
  const timeval fiveSeconds{5, 0};
  evtimer_add(deadline.get(), &fiveSeconds);
  while (!response.done) event_base_loop(base, EVLOOP_ONCE);
  return response;
}

}  // namespace

TEST_CASE("the metrics server answers GET /metrics, 404 elsewhere, 405 for other methods") {
  common::CHandle<event_base, event_base_free> base(event_base_new());
  REQUIRE(base);
  int renders = 0;
  daemon_main::MetricsServer server(base.get(), [&renders] {
    ++renders;
    return std::string("# HELP egressd_x_total X.\n# TYPE egressd_x_total counter\negressd_x_total ") +
           std::to_string(renders) + "\n";
  });
  std::string error;
  REQUIRE(server.start({*common::parseIpAddress("127.0.0.1"), 0}, error));
  const uint16_t port = server.boundAddress().port;
  REQUIRE(port != 0);

  auto ok = fetch(base.get(), port, EVHTTP_REQ_GET, "/metrics");
  CHECK(ok.code == 200);
  CHECK(ok.contentType == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(ok.body == "# HELP egressd_x_total X.\n# TYPE egressd_x_total counter\negressd_x_total 1\n");
  // Rendered afresh for every scrape; a query string is fine.
  ok = fetch(base.get(), port, EVHTTP_REQ_GET, "/metrics?name[]=x");
  CHECK(ok.code == 200);
  CHECK(ok.body.ends_with("egressd_x_total 2\n"));
  CHECK(server.scrapes() == 2);

  const auto head = fetch(base.get(), port, EVHTTP_REQ_HEAD, "/metrics");
  CHECK(head.code == 200);
  CHECK(head.body.empty());

  for (const char* path : {"/", "/metrics/", "/metricsx", "/debug/pprof", "/METRICS"}) {
    INFO(path);
    const auto missing = fetch(base.get(), port, EVHTTP_REQ_GET, path);
    CHECK(missing.code == 404);
  }
  for (const auto method : {EVHTTP_REQ_POST, EVHTTP_REQ_PUT, EVHTTP_REQ_DELETE, EVHTTP_REQ_PATCH}) {
    const auto refused = fetch(base.get(), port, method, "/metrics");
    CHECK(refused.code == 405);
    CHECK(refused.allow == "GET, HEAD");
  }
  const int rendersBefore = renders;
  // Oversized headers are refused without rendering, and the server goes on.
  const auto huge = fetch(base.get(), port, EVHTTP_REQ_GET, "/metrics",
                          std::string(daemon_main::MetricsServer::kMaxHeadersBytes + 100, 'a'));
  CHECK((huge.code == 0 || huge.code >= 400));
  CHECK(renders == rendersBefore);
  CHECK(fetch(base.get(), port, EVHTTP_REQ_GET, "/metrics").code == 200);
}

TEST_CASE("a metrics listen address in use is an error naming the address") {
  common::CHandle<event_base, event_base_free> base(event_base_new());
  daemon_main::MetricsServer first(base.get(), [] { return std::string(); });
  std::string error;
  REQUIRE(first.start({*common::parseIpAddress("127.0.0.1"), 0}, error));
  const common::SocketAddress taken = first.boundAddress();
  daemon_main::MetricsServer second(base.get(), [] { return std::string(); });
  CHECK_FALSE(second.start(taken, error));
  CHECK(error.find("metrics.listen 127.0.0.1:" + std::to_string(taken.port)) != std::string::npos);
  CHECK(error.find("in use") != std::string::npos);
}

TEST_CASE("/healthz answers 200 and /readyz follows the readiness judgement, 503 when not ready") {
  common::CHandle<event_base, event_base_free> base(event_base_new());
  int renders = 0;
  daemon_main::ReadinessInputs inputs;
  inputs.dnsEnabled = true;
  inputs.dnsListenersWanted = 1;
  inputs.nfqueueEnabled = true;
  inputs.queuesWanted = 2;
  daemon_main::MetricsServer server(
      base.get(),
      [&renders] {
        ++renders;
        return std::string();
      },
      [&inputs] { return daemon_main::judgeReadiness(inputs); });
  std::string error;
  REQUIRE(server.start({*common::parseIpAddress("127.0.0.1"), 0}, error));
  const uint16_t port = server.boundAddress().port;

  // Nothing loaded, listening or bound yet: not ready, and the body says why.
  auto notReady = fetch(base.get(), port, EVHTTP_REQ_GET, "/readyz");
  CHECK(notReady.code == 503);
  CHECK(notReady.body ==
        "[-]rules failed: no policy compiled yet\n"
        "[-]dns failed: 0 of 1 listeners open\n"
        "[-]enforcement failed: 0 of 2 queue workers bound\n"
        "readyz check failed\n");
  CHECK(fetch(base.get(), port, EVHTTP_REQ_GET, "/healthz").code == 200);

  inputs.policyLoaded = true;
  inputs.dnsListenersOpen = 1;
  inputs.workersRunning = 1;  // one queue's worker missing is enough
  CHECK(fetch(base.get(), port, EVHTTP_REQ_GET, "/readyz").code == 503);
  inputs.workersRunning = 2;
  auto ready = fetch(base.get(), port, EVHTTP_REQ_GET, "/readyz");
  CHECK(ready.code == 200);
  CHECK(ready.contentType == "text/plain; charset=utf-8");
  CHECK(ready.body == "[+]rules ok\n[+]dns ok\n[+]enforcement ok\nreadyz check passed\n");
  CHECK(fetch(base.get(), port, EVHTTP_REQ_HEAD, "/readyz").code == 200);

  inputs.unreadableDirs = {"/var/lib/egressd/rules.d"};
  auto missingDir = fetch(base.get(), port, EVHTTP_REQ_GET, "/readyz");
  CHECK(missingDir.code == 503);
  CHECK(missingDir.body.find("[-]rules failed: rules directory not readable (nothing from it is allowed): "
                             "/var/lib/egressd/rules.d\n") == 0);

  const auto health = fetch(base.get(), port, EVHTTP_REQ_GET, "/healthz");
  CHECK(health.code == 200);
  CHECK(health.body == "ok\n");
  CHECK(fetch(base.get(), port, EVHTTP_REQ_POST, "/readyz").code == 405);
  for (const char* path : {"/healthz/", "/readyz/x", "/livez", "/health"}) {
    INFO(path);
    CHECK(fetch(base.get(), port, EVHTTP_REQ_GET, path).code == 404);
  }
  CHECK(renders == 0);  // probes never render the metrics
  CHECK(server.scrapes() == 0);
}

TEST_CASE("readiness checks only the components that are on") {
  daemon_main::ReadinessInputs dnsOnly;
  dnsOnly.policyLoaded = true;
  dnsOnly.dnsEnabled = true;
  dnsOnly.dnsListenersWanted = 2;
  dnsOnly.dnsListenersOpen = 2;
  const auto judged = daemon_main::judgeReadiness(dnsOnly);
  CHECK(judged.ready);
  CHECK(judged.body == "[+]rules ok\n[+]dns ok\nreadyz check passed\n");

  daemon_main::ReadinessInputs nothingWanted;  // dns on with no listener is not "ready"
  nothingWanted.policyLoaded = true;
  nothingWanted.dnsEnabled = true;
  CHECK_FALSE(daemon_main::judgeReadiness(nothingWanted).ready);
}

TEST_CASE("without a readiness judgement /readyz answers as /healthz") {
  common::CHandle<event_base, event_base_free> base(event_base_new());
  daemon_main::MetricsServer server(base.get(), [] { return std::string(); });
  std::string error;
  REQUIRE(server.start({*common::parseIpAddress("127.0.0.1"), 0}, error));
  CHECK(fetch(base.get(), server.boundAddress().port, EVHTTP_REQ_GET, "/readyz").code == 200);
}

#include "daemon/metrics.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <sys/socket.h>

#include <cerrno>
#include <exception>

#include "common/errno_text.h"
#include "common/log.h"

namespace daemon_main {

namespace {

constexpr std::string_view kMetricsPath = "/metrics";
constexpr std::string_view kHealthPath = "/healthz";
constexpr std::string_view kReadyPath = "/readyz";
constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

void reply(evhttp_request* request, int code, const char* reason, std::string_view body,
           const char* contentType = "text/plain; charset=utf-8") {
  evkeyvalq* headers = evhttp_request_get_output_headers(request);
  evhttp_add_header(headers, "Content-Type", contentType);
  common::CHandle<evbuffer, evbuffer_free> buffer(evbuffer_new());
  if (!buffer || evbuffer_add(buffer.get(), body.data(), body.size()) != 0) {
    evhttp_send_error(request, HTTP_INTERNAL, nullptr);
    return;
  }
  evhttp_send_reply(request, code, reason, buffer.get());
}

}  // namespace

MetricsServer::MetricsServer(event_base* base, Render render, Ready ready)
    : base_(base), render_(std::move(render)), ready_(std::move(ready)) {}

MetricsServer::~MetricsServer() = default;

bool MetricsServer::start(const common::SocketAddress& address, std::string& error) {
  http_.reset(evhttp_new(base_));
  if (!http_) {
    error = "metrics: evhttp_new failed";
    return false;
  }
  evhttp_set_max_headers_size(http_.get(), static_cast<ev_ssize_t>(kMaxHeadersBytes));
  evhttp_set_max_body_size(http_.get(), static_cast<ev_ssize_t>(kMaxBodyBytes));
  evhttp_set_timeout(http_.get(), kTimeoutSeconds);
  // Every method reaches onRequest, which answers 405 itself (evhttp's own
  // refusal would be 501 Not Implemented).
  evhttp_set_allowed_methods(http_.get(), EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                              EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                              EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
  evhttp_set_gencb(http_.get(), &MetricsServer::onRequest, this);

  sockaddr_storage storage{};
  const socklen_t length = address.toSockaddr(storage);
  evconnlistener* listener = evconnlistener_new_bind(
      base_, nullptr, nullptr, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_CLOSE_ON_FREE, 128,
      reinterpret_cast<const sockaddr*>(&storage), static_cast<int>(length));
  if (listener == nullptr) {
    error = "metrics.listen " + address.toString() + ": " + common::errnoText(errno);
    http_.reset();
    return false;
  }
  // The evhttp owns the listener from here on (evhttp_free frees it).
  if (evhttp_bind_listener(http_.get(), listener) == nullptr) {
    evconnlistener_free(listener);
    error = "metrics.listen " + address.toString() + ": evhttp_bind_listener failed";
    http_.reset();
    return false;
  }
  bound_ = address;
  sockaddr_storage actual{};
  socklen_t actualLength = sizeof actual;
  if (getsockname(evconnlistener_get_fd(listener), reinterpret_cast<sockaddr*>(&actual), &actualLength) ==
      0) {
    if (auto resolved = common::SocketAddress::fromSockaddr(reinterpret_cast<const sockaddr*>(&actual))) {
      bound_ = *resolved;
    }
  }
  return true;
}

void MetricsServer::onRequest(evhttp_request* request, void* arg) {
  static_cast<MetricsServer*>(arg)->handle(request);
}

void MetricsServer::handle(evhttp_request* request) {
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(request);
  const char* path = uri != nullptr ? evhttp_uri_get_path(uri) : nullptr;
  const std::string_view where = path != nullptr ? std::string_view(path) : std::string_view();
  if (where != kMetricsPath && where != kHealthPath && where != kReadyPath) {
    reply(request, HTTP_NOTFOUND, "Not Found",
          "404 not found: egressd serves /metrics, /healthz and /readyz\n");
    return;
  }
  const evhttp_cmd_type method = evhttp_request_get_command(request);
  if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
    evhttp_add_header(evhttp_request_get_output_headers(request), "Allow", "GET, HEAD");
    reply(request, 405, "Method Not Allowed", "405 method not allowed: use GET\n");
    return;
  }
  if (where == kHealthPath || (where == kReadyPath && !ready_)) {
    // Answered by the event loop itself: that it answers is the check.
    reply(request, HTTP_OK, "OK", "ok\n");
    return;
  }
  if (where == kReadyPath) {
    const Readiness readiness = ready_();
    if (readiness.ready) {
      reply(request, HTTP_OK, "OK", readiness.body);
    } else {
      reply(request, HTTP_SERVUNAVAIL, "Service Unavailable", readiness.body);
    }
    return;
  }
  std::string text;
  try {
    text = render_();
  } catch (const std::exception& e) {
    common::LogLine(common::LogLevel::Error, "metrics.render_failed").field("error", e.what());
    reply(request, HTTP_INTERNAL, "Internal Server Error", "500 internal error\n");
    return;
  }
  ++scrapes_;
  // HEAD: evhttp sends the headers (with the body's length) and no body.
  reply(request, HTTP_OK, "OK", text, kContentType);
}

}  // namespace daemon_main

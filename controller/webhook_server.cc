#include "controller/webhook_server.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>

#include "common/errno_text.h"
#include "common/log.h"

namespace controller {

namespace {

using common::LogLevel;
using common::LogLine;

// A Pod's AdmissionReview carries the object once (CREATE has no
// oldObject); etcd refuses objects over 1.5 MiB.
constexpr size_t kMaxBodyBytes = size_t{3} * 1024 * 1024;
constexpr size_t kMaxHeadersBytes = size_t{16} * 1024;
// The API server's call times out after the webhook's timeoutSeconds (2 s);
// a client that sends nothing for longer is not the API server. This also
// bounds how long a connection that has not yet carried a review may sit
// idle.
constexpr int kTimeoutSeconds = 10;
// A connection that has carried a review stays open while idle for longer
// than the API server keeps it (Go's http.Transport IdleConnTimeout, 90 s),
// so the API server, not the webhook, ends it. With the 10 s above, every
// pod created after a quiet spell of 10 s paid a new TCP and TLS handshake
// (8-90 ms on a loaded 2-core machine, bench/webhook) and raced the
// webhook's close (failurePolicy Ignore: such a race could admit the pod
// without the variables).
constexpr int kKeepAliveSeconds = 120;
constexpr timeval kTick{0, 200'000};

void reply(evhttp_request* request, int code, const char* reason, std::string_view body,
           const char* contentType) {
  evhttp_add_header(evhttp_request_get_output_headers(request), "Content-Type", contentType);
  common::CHandle<evbuffer, evbuffer_free> buffer(evbuffer_new());
  if (!buffer || evbuffer_add(buffer.get(), body.data(), body.size()) != 0) {
    evhttp_send_error(request, HTTP_INTERNAL, nullptr);
    return;
  }
  evhttp_send_reply(request, code, reason, buffer.get());
}

std::string tlsError() {
  const unsigned long code = ERR_get_error();
  char text[256] = {};
  if (code != 0) ERR_error_string_n(code, text, sizeof text);
  ERR_clear_error();
  return code != 0 ? text : "unknown OpenSSL error";
}

// Counts completed handshakes into the WebhookStats the context carries.
void onTlsInfo(const SSL* ssl, int where, int /*ret*/) {
  if ((where & SSL_CB_HANDSHAKE_DONE) == 0) return;
  auto* stats = static_cast<WebhookStats*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  if (stats != nullptr) WebhookStats::add(stats->handshakes);
}

// A server context for one certificate chain and key, counting its
// handshakes into `stats`; null with `error`.
common::CHandle<SSL_CTX, SSL_CTX_free> makeContext(const std::string& certPem, const std::string& keyPem,
                                                   WebhookStats& stats, std::string& error) {
  common::CHandle<SSL_CTX, SSL_CTX_free> context(SSL_CTX_new(TLS_server_method()));
  if (!context) {
    error = "SSL_CTX_new: " + tlsError();
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(context.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(context.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
  // The API server's client keeps no session cache: TLS 1.3 session
  // tickets (two by default) would be two records per handshake for nothing.
  SSL_CTX_set_num_tickets(context.get(), 0);
  SSL_CTX_set_app_data(context.get(), &stats);
  SSL_CTX_set_info_callback(context.get(), &onTlsInfo);
  const common::CHandle<BIO, BIO_free_all> certBio(
      BIO_new_mem_buf(certPem.data(), static_cast<int>(certPem.size())));
  const common::CHandle<BIO, BIO_free_all> keyBio(
      BIO_new_mem_buf(keyPem.data(), static_cast<int>(keyPem.size())));
  if (!certBio || !keyBio) {
    error = "BIO_new_mem_buf: " + tlsError();
    return nullptr;
  }
  const common::CHandle<X509, X509_free> cert(PEM_read_bio_X509(certBio.get(), nullptr, nullptr, nullptr));
  const common::CHandle<EVP_PKEY, EVP_PKEY_free> key(
      PEM_read_bio_PrivateKey(keyBio.get(), nullptr, nullptr, nullptr));
  if (!cert || !key) {
    error = "tls.crt or tls.key is not PEM: " + tlsError();
    return nullptr;
  }
  if (SSL_CTX_use_certificate(context.get(), cert.get()) != 1 ||
      SSL_CTX_use_PrivateKey(context.get(), key.get()) != 1 ||
      SSL_CTX_check_private_key(context.get()) != 1) {
    error = "tls.key does not belong to tls.crt: " + tlsError();
    return nullptr;
  }
  // Intermediates after the leaf (cert-manager writes chains).
  while (true) {
    X509* extra = PEM_read_bio_X509(certBio.get(), nullptr, nullptr, nullptr);
    if (extra == nullptr) break;
    if (SSL_CTX_add0_chain_cert(context.get(), extra) != 1) X509_free(extra);  // add0 owns it on success
  }
  ERR_clear_error();
  return context;
}

// libevent 2.1 serves a connection in plain HTTP when the bufferevent
// callback returns null. When TLS cannot be set up (out of memory), the
// connection gets one end of a pair instead: its socket is never read, so
// nothing is answered in plain text, and evhttp's timeout closes it (the
// pair does not own the socket, so evhttp closes it itself). The API server
// sees a timed-out call: failurePolicy Ignore, as for a webhook that is down.
bufferevent* deadEnd(event_base* base) {
  LogLine(LogLevel::Error, "webhook.tls_setup_failed").field("action", "connection not served");
  bufferevent* pair[2] = {nullptr, nullptr};
  if (bufferevent_pair_new(base, 0, pair) != 0) {
    // Not even that: stopping is the only answer that is not plain text.
    LogLine(LogLevel::Error, "webhook.out_of_memory").field("action", "exiting");
    std::abort();
  }
  bufferevent_free(pair[1]);
  return pair[0];
}

}  // namespace

WebhookServer::WebhookServer(InjectionConfig config) : config_(std::move(config)), base_(event_base_new()) {}

WebhookServer::~WebhookServer() {
  // evhttp_free frees the listener and every connection (and with them
  // their SSL objects: BEV_OPT_CLOSE_ON_FREE), before the base goes.
  http_.reset();
  timer_.reset();
}

bool WebhookServer::bind(const common::SocketAddress& address, std::string& error) {
  if (!base_) {
    error = "webhook: event_base_new failed";
    return false;
  }
  http_.reset(evhttp_new(base_.get()));
  if (!http_) {
    error = "webhook: evhttp_new failed";
    return false;
  }
  evhttp_set_max_headers_size(http_.get(), static_cast<ev_ssize_t>(kMaxHeadersBytes));
  evhttp_set_max_body_size(http_.get(), static_cast<ev_ssize_t>(kMaxBodyBytes));
  evhttp_set_timeout(http_.get(), kTimeoutSeconds);
  evhttp_set_allowed_methods(http_.get(), EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                              EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                              EVHTTP_REQ_PATCH);
  evhttp_set_bevcb(http_.get(), &WebhookServer::onConnection, this);
  evhttp_set_gencb(http_.get(), &WebhookServer::onRequest, this);

  sockaddr_storage storage{};
  const socklen_t length = address.toSockaddr(storage);
  // Disabled until a certificate is loaded: the API server then sees a
  // refused connection (failurePolicy Ignore), never a plain-text answer.
  evconnlistener* listener = evconnlistener_new_bind(
      base_.get(), nullptr, nullptr,
      LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_DISABLED, 256,
      reinterpret_cast<const sockaddr*>(&storage), static_cast<int>(length));
  if (listener == nullptr) {
    error = "webhook: cannot listen on " + address.toString() + ": " + common::errnoText(errno) +
            " (--webhook-listen)";
    return false;
  }
  if (evhttp_bind_listener(http_.get(), listener) == nullptr) {
    evconnlistener_free(listener);
    error = "webhook: evhttp_bind_listener failed on " + address.toString();
    return false;
  }
  // Replies go out as a few small TLS records; with Nagle's algorithm and
  // the API server's delayed ACK, each review would wait 40 ms. Accepted
  // sockets inherit the option from the listener (Linux).
  const int one = 1;
  setsockopt(evconnlistener_get_fd(listener), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  listener_ = listener;
  bound_ = address;
  sockaddr_storage actual{};
  socklen_t actualLength = sizeof actual;
  if (getsockname(evconnlistener_get_fd(listener), reinterpret_cast<sockaddr*>(&actual), &actualLength) ==
      0) {
    if (auto resolved = common::SocketAddress::fromSockaddr(reinterpret_cast<const sockaddr*>(&actual)))
      bound_ = *resolved;
  }
  return true;
}

void WebhookServer::setCertificate(std::string certPem, std::string keyPem) {
  const std::lock_guard lock(pendingMutex_);
  pending_ = std::make_pair(std::move(certPem), std::move(keyPem));
  hasPending_.store(true, std::memory_order_release);
}

void WebhookServer::run(const Stopper& stopper) {
  stopper_ = &stopper;
  timer_.reset(event_new(base_.get(), -1, EV_PERSIST, &WebhookServer::onTick, this));
  if (!timer_ || event_add(timer_.get(), &kTick) != 0) {
    logEvent(LogLevel::Error, "webhook.timer.failed");
    return;
  }
  loadPendingCertificate();
  event_base_dispatch(base_.get());
}

void WebhookServer::onTick(evutil_socket_t, short, void* self) {
  static_cast<WebhookServer*>(self)->tick();
}

void WebhookServer::tick() {
  if (stopper_->requested()) {
    event_base_loopbreak(base_.get());
    return;
  }
  loadPendingCertificate();
}

void WebhookServer::loadPendingCertificate() {
  if (!hasPending_.load(std::memory_order_acquire)) return;
  std::pair<std::string, std::string> pair;
  {
    const std::lock_guard lock(pendingMutex_);
    if (!pending_) return;
    pair = std::move(*pending_);
    pending_.reset();
    hasPending_.store(false, std::memory_order_release);
  }
  std::string error;
  auto context = makeContext(pair.first, pair.second, stats_, error);
  if (!context) {
    // Keep serving with the last good certificate.
    LogLine(LogLevel::Error, "webhook.certificate.refused").field("error", error);
    return;
  }
  const bool first = !tls_;
  // Connections already open hold their own reference to the old context.
  tls_ = std::move(context);
  if (first && listener_ != nullptr) evconnlistener_enable(listener_);
  LogLine(LogLevel::Info, first ? "webhook.listening" : "webhook.certificate.reloaded")
      .field("address", bound_.toString());
}

bufferevent* WebhookServer::onConnection(event_base* base, void* self) {
  auto* server = static_cast<WebhookServer*>(self);
  WebhookStats::add(server->stats_.connections);
  SSL* ssl = SSL_new(server->tls_.get());
  if (ssl == nullptr) return deadEnd(base);
  // With BEV_OPT_CLOSE_ON_FREE the bufferevent frees the SSL (and the socket).
  bufferevent* bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
  if (bev == nullptr) {
    SSL_free(ssl);
    return deadEnd(base);
  }
  // The API server closes kept-alive connections without close_notify.
  bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
  return bev;
}

std::string WebhookServer::peerOf(evhttp_connection* connection) {
  char* address = nullptr;
  ev_uint16_t port = 0;
  if (connection != nullptr) evhttp_connection_get_peer(connection, &address, &port);
  if (address == nullptr) return "-";
  const std::string host = address;
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

void WebhookServer::onRequest(evhttp_request* request, void* self) {
  static_cast<WebhookServer*>(self)->handle(request);
}

void WebhookServer::onAnswerWritten(evhttp_request* request, void* self) {
  auto* server = static_cast<WebhookServer*>(self);
  for (auto& slot : server->inFlight_) {
    if (slot.request != request) continue;
    server->stats_.reviewSeconds.record(std::chrono::steady_clock::now() - slot.arrived);
    slot.request = nullptr;
    return;
  }
}

void WebhookServer::handle(evhttp_request* request) {
  const auto arrived = std::chrono::steady_clock::now();
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(request);
  const char* rawPath = uri != nullptr ? evhttp_uri_get_path(uri) : nullptr;
  const std::string_view path = rawPath != nullptr ? rawPath : "";
  const evhttp_cmd_type method = evhttp_request_get_command(request);
  const WebhookPath kind = path == "/inject"    ? WebhookPath::Inject
                           : path == "/healthz" ? WebhookPath::Healthz
                           : path == "/metrics" ? WebhookPath::Metrics
                                                : WebhookPath::Other;
  WebhookStats::add(stats_.requests[static_cast<size_t>(kind)]);
  if (kind == WebhookPath::Healthz) {
    reply(request, HTTP_OK, "OK", "ok\n", "text/plain; charset=utf-8");
    return;
  }
  if (kind == WebhookPath::Metrics) {
    reply(request, HTTP_OK, "OK", renderWebhookMetrics(stats_), "text/plain; version=0.0.4; charset=utf-8");
    return;
  }
  if (kind != WebhookPath::Inject) {
    reply(request, HTTP_NOTFOUND, "Not Found",
          "404 not found: the webhook serves POST /inject and GET /healthz\n", "text/plain; charset=utf-8");
    return;
  }
  if (method != EVHTTP_REQ_POST) {
    evhttp_add_header(evhttp_request_get_output_headers(request), "Allow", "POST");
    reply(request, 405, "Method Not Allowed", "405 method not allowed: POST an AdmissionReview\n",
          "text/plain; charset=utf-8");
    return;
  }
  evbuffer* input = evhttp_request_get_input_buffer(request);
  const size_t size = evbuffer_get_length(input);
  const auto* data = size > 0 ? reinterpret_cast<const char*>(evbuffer_pullup(input, -1)) : "";
  const auto started = std::chrono::steady_clock::now();
  const AdmissionAnswer answer = admit(std::string_view(data, size), config_);
  WebhookStats::add(stats_.reviews[static_cast<size_t>(answer.outcome)]);
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started)
          .count();
  evhttp_connection* connection = evhttp_request_get_connection(request);
  // Reviews from one peer address and port shared one TCP connection and
  // one TLS handshake (bench/webhook counts them).
  const std::string peer = peerOf(connection);
  // Timed until its last byte is written (onAnswerWritten). A freed
  // request's address may come back: its stale slot goes first.
  for (auto& slot : inFlight_) {
    if (slot.request == request) slot.request = nullptr;
  }
  inFlight_[nextSlot_] = {request, arrived};
  nextSlot_ = (nextSlot_ + 1) % kInFlight;
  evhttp_request_set_on_complete_cb(request, &WebhookServer::onAnswerWritten, this);
  // The answer is queued first; the loop writes it to the socket after this
  // returns, so the log line (one write to stderr) costs the API server
  // that write's time, and the reply's headers and body are ready before.
  // `request` is freed once the reply is written.
  if (answer.httpStatus != 200) {
    reply(request, answer.httpStatus, "Bad Request", answer.body, "text/plain; charset=utf-8");
  } else {
    reply(request, HTTP_OK, "OK", answer.body, "application/json");
    if (connection != nullptr) evhttp_connection_set_timeout(connection, kKeepAliveSeconds);
  }
  LogLine(answer.outcome == InjectOutcome::BadReview ? LogLevel::Warn : LogLevel::Info, "inject.review")
      .field("pod", answer.pod.empty() ? std::string("-") : answer.pod)
      .field("outcome", outcomeName(answer.outcome))
      .field("containers", answer.containersPatched)
      .field("detail", answer.detail.empty() ? std::string("-") : answer.detail)
      .field("us", static_cast<int64_t>(micros))
      .field("peer", peer);
}

}  // namespace controller

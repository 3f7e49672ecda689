// The admission webhook's HTTPS server: libevent's evhttp over
// bufferevent_openssl, one event loop on the calling thread. It answers
// POST /inject with controller::admit() and GET /healthz with "ok"; the
// logic is all in controller/injection.cc.
//
// The listener is bound at start (a taken port fails at once) but accepts
// only once a serving certificate has been set. setCertificate() may be
// called from any thread at any time: the loop picks the new pair up within
// 200 ms and uses it for new connections (kept-alive ones finish on the old
// one), so a rotated certificate needs no restart.
//
// Latency (bench/webhook): a connection that has carried a review is kept
// open while idle for 120 s, longer than the API server keeps it, so pods
// created after a quiet spell reuse it instead of paying a TLS handshake;
// TCP_NODELAY on every socket; no session tickets; the answer is queued
// before the review is logged.
#pragma once

#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "common/c_handle.h"
#include "common/socket_address.h"
#include "controller/injection.h"
#include "controller/kube_client.h"
#include "controller/webhook_metrics.h"

namespace controller {

class WebhookServer {
 public:
  explicit WebhookServer(InjectionConfig config);
  ~WebhookServer();
  WebhookServer(const WebhookServer&) = delete;
  WebhookServer& operator=(const WebhookServer&) = delete;

  // Binds the address (port 0: any); false with `error` naming the address.
  bool bind(const common::SocketAddress& address, std::string& error);
  const common::SocketAddress& boundAddress() const noexcept { return bound_; }

  // A PEM certificate (chain) and its key; thread-safe.
  void setCertificate(std::string certPem, std::string keyPem);

  // Serves until the stopper fires. Call once, after bind().
  void run(const Stopper& stopper);

  // Reviews answered so far, by outcome; any thread.
  uint64_t reviews(InjectOutcome outcome) const noexcept {
    return stats_.reviews[static_cast<size_t>(outcome)].load(std::memory_order_relaxed);
  }
  // Every counter (what GET /metrics renders); any thread.
  const WebhookStats& stats() const noexcept { return stats_; }

 private:
  static void onTick(evutil_socket_t, short, void* self);
  static bufferevent* onConnection(event_base* base, void* self);
  static void onRequest(evhttp_request* request, void* self);
  static void onAnswerWritten(evhttp_request* request, void* self);
  void tick();
  void handle(evhttp_request* request);
  static std::string peerOf(evhttp_connection* connection);
  void loadPendingCertificate();

  InjectionConfig config_;
  common::CHandle<event_base, event_base_free> base_;
  common::CHandle<evhttp, evhttp_free> http_;
  evconnlistener* listener_ = nullptr;  // owned by http_ once bound
  common::CHandle<event, event_free> timer_;
  common::CHandle<SSL_CTX, SSL_CTX_free> tls_;  // the loop thread's current context
  common::SocketAddress bound_;
  const Stopper* stopper_ = nullptr;

  std::mutex pendingMutex_;
  std::optional<std::pair<std::string, std::string>> pending_;  // guarded by pendingMutex_
  std::atomic<bool> hasPending_{false};

  WebhookStats stats_;

  // Reviews whose answer is queued but not yet written, and when each
  // arrived (for stats_.reviewSeconds): a fixed ring, no allocation. A
  // review whose slot is reused before its answer leaves (more than
  // kInFlight answers pending at once), or whose connection fails first,
  // is not timed. Loop thread only.
  struct InFlight {
    const evhttp_request* request = nullptr;
    std::chrono::steady_clock::time_point arrived;
  };
  static constexpr size_t kInFlight = 64;
  std::array<InFlight, kInFlight> inFlight_{};
  size_t nextSlot_ = 0;
};

}  // namespace controller

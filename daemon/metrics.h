// The Prometheus endpoint (metrics.listen, when metrics.enabled): an HTTP
// server on the daemon's event_base (libevent's evhttp). GET or HEAD
// /metrics answers 200 with the text exposition format 0.0.4 produced by
// `render`; /healthz 200 (the loop answered); /readyz 200 or 503 as
// `readiness` judges (daemon/health.h); other paths 404; other methods 405. Requests are bounded
// (header and body sizes, a read/write timeout), so a client cannot make
// egressd buffer without limit; scrapes are served on the event loop and
// take well under a millisecond (docs/metrics.md).
//
// Ownership: owns the evhttp (std::unique_ptr with evhttp_free), which owns
// its listener and connections; the event_base is borrowed and must
// outlive the server. Thread-safety: the event loop's thread only.
// Failure: start() returns false with an error naming the address (bind or
// listen failed) — a start-up error, fatal for egressd.
#pragma once

#include <event2/event.h>
#include <event2/http.h>

#include <functional>
#include <string>

#include "common/c_handle.h"
#include "common/socket_address.h"
#include "daemon/health.h"

namespace daemon_main {

class MetricsServer {
 public:
  // Returns the whole exposition text; called once per scrape.
  using Render = std::function<std::string()>;
  // Judges /readyz; called once per probe. Empty: /readyz answers as /healthz.
  using Ready = std::function<Readiness()>;

  static constexpr size_t kMaxHeadersBytes = 8192;
  static constexpr size_t kMaxBodyBytes = 1024;
  static constexpr int kTimeoutSeconds = 10;

  MetricsServer(event_base* base, Render render, Ready ready = {});
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Binds and listens on `address` (port 0 picks a free port).
  bool start(const common::SocketAddress& address, std::string& error);

  // The listening address, with the actual port; valid after start().
  const common::SocketAddress& boundAddress() const noexcept { return bound_; }

  uint64_t scrapes() const noexcept { return scrapes_; }  // /metrics only, not the probes

 private:
  static void onRequest(evhttp_request* request, void* arg);
  void handle(evhttp_request* request);

  event_base* base_;
  Render render_;
  Ready ready_;
  common::CHandle<evhttp, evhttp_free> http_;
  common::SocketAddress bound_;
  uint64_t scrapes_ = 0;
};

}  // namespace daemon_main

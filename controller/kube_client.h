// A minimal Kubernetes REST client over libcurl: JSON requests and
// streamed watches, HTTPS with the cluster CA verified, bearer token or
// client certificate (ClusterConfig).
//
// One KubeClient per thread (it owns one curl easy handle, which keeps the
// connection alive between requests). Transport failures and HTTP errors
// are returned, never thrown. Every call returns early once the Stopper is
// triggered (checked about every second by curl's progress callback).
#pragma once

#include <curl/curl.h>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

#include "common/c_handle.h"
#include "controller/kubeconfig.h"

namespace controller {

// Process-wide "stop now" (SIGTERM), with an interruptible sleep.
// Thread-safe.
class Stopper {
 public:
  void request();
  bool requested() const noexcept { return stop_.load(std::memory_order_acquire); }
  // Sleeps up to `duration`; returns true when stop was requested.
  bool waitFor(std::chrono::milliseconds duration);

 private:
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable cv_;
};

struct HttpResponse {
  long status = 0;             // HTTP status, 0 when no response arrived
  std::string body;            // response body (for watches: only on non-2xx)
  std::string transportError;  // curl's message when the transfer failed

  bool ok() const noexcept { return transportError.empty() && status >= 200 && status < 300; }
  // "HTTP 403: <Status.message>" or the transport error, for logs.
  std::string describe() const;
};

class KubeClient {
 public:
  KubeClient(ClusterConfig config, const Stopper& stopper);

  // `path` starts with "/" (e.g. "/apis/zalando.org/v1/egressrulesets").
  HttpResponse request(std::string_view method, const std::string& path, const std::string& body = {},
                       std::string_view contentType = "application/json");

  // GET `path` and call onLine for each line of a 200 response as it
  // arrives; onLine returning false ends the stream. Returns when the server
  // closes, on error, after maxDuration, or on stop.
  HttpResponse stream(const std::string& path, const std::function<bool(std::string_view)>& onLine,
                      std::chrono::seconds maxDuration);

  const ClusterConfig& config() const noexcept { return config_; }

 private:
  struct Transfer;
  HttpResponse perform(std::string_view method, const std::string& path, const std::string& body,
                       std::string_view contentType, Transfer& transfer, std::chrono::seconds timeout);

  ClusterConfig config_;
  const Stopper& stopper_;
  common::CHandle<CURL, curl_easy_cleanup> curl_;
};

}  // namespace controller

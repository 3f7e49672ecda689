// The webhook server's counters (docs/injection.md "Metrics"), served in
// the Prometheus text format on GET /metrics of the webhook's own port:
// connections and TLS handshakes (a handshake on the pod path is the
// costliest thing the API server can meet there), requests by path,
// reviews by outcome, and how long each review took from arriving to its
// answer being written to the socket.
//
// Thread-safety: the server's loop thread records, any thread reads
// (relaxed atomics; a scrape may see a review in one family before another).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/histogram.h"
#include "controller/injection.h"

namespace controller {

// Request paths the server knows; everything else is Other (answered 404).
enum class WebhookPath : uint8_t { Inject, Healthz, Metrics, Other };
inline constexpr size_t kWebhookPaths = 4;
inline constexpr size_t kInjectOutcomes = static_cast<size_t>(InjectOutcome::BadReview) + 1;

struct WebhookStats {
  std::atomic<uint64_t> connections{0};  // TCP connections accepted (each one begins a TLS handshake)
  std::atomic<uint64_t> handshakes{0};   // TLS handshakes completed
  std::array<std::atomic<uint64_t>, kWebhookPaths> requests{};   // by WebhookPath
  std::array<std::atomic<uint64_t>, kInjectOutcomes> reviews{};  // by InjectOutcome
  // From the review handed over by the HTTP parser to the last byte of its
  // answer written to the socket (admit() plus the loop's turn to write).
  common::LatencyHistogram reviewSeconds;

  static void add(std::atomic<uint64_t>& counter) noexcept {
    counter.fetch_add(1, std::memory_order_relaxed);
  }
};

// Prometheus text exposition format 0.0.4, every family with HELP and TYPE.
std::string renderWebhookMetrics(const WebhookStats& stats);

}  // namespace controller

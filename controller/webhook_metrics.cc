#include "controller/webhook_metrics.h"

#include <cstdio>
#include <string_view>

#include "common/metrics_text.h"

namespace controller {

namespace {

void family(std::string& out, const char* name, const char* type, const char* help) {
  common::appendMetricFamily(out, name, type, help);
}

void sample(std::string& out, std::string_view name, std::string_view labels, uint64_t value) {
  common::appendMetricSample(out, name, labels, value);
}

std::string_view pathLabel(WebhookPath path) {
  switch (path) {
    case WebhookPath::Inject:
      return "/inject";
    case WebhookPath::Healthz:
      return "/healthz";
    case WebhookPath::Metrics:
      return "/metrics";
    case WebhookPath::Other:
      break;
  }
  return "other";
}

uint64_t load(const std::atomic<uint64_t>& counter) {
  return counter.load(std::memory_order_relaxed);
}

}  // namespace

std::string renderWebhookMetrics(const WebhookStats& stats) {
  std::string out;
  out.reserve(4096);
  family(out, "egressd_webhook_connections_total", "counter",
         "TCP connections accepted by the webhook (each begins a TLS handshake).");
  sample(out, "egressd_webhook_connections_total", "", load(stats.connections));
  family(out, "egressd_webhook_tls_handshakes_total", "counter", "TLS handshakes completed by the webhook.");
  sample(out, "egressd_webhook_tls_handshakes_total", "", load(stats.handshakes));
  family(out, "egressd_webhook_requests_total", "counter", "HTTP requests to the webhook, by path.");
  for (size_t i = 0; i < kWebhookPaths; ++i) {
    const std::string labels = "path=\"" + std::string(pathLabel(static_cast<WebhookPath>(i))) + "\"";
    sample(out, "egressd_webhook_requests_total", labels, load(stats.requests[i]));
  }
  family(out, "egressd_webhook_reviews_total", "counter", "AdmissionReviews answered, by outcome.");
  for (size_t i = 0; i < kInjectOutcomes; ++i) {
    const std::string labels = "outcome=\"" + std::string(outcomeName(static_cast<InjectOutcome>(i))) + "\"";
    sample(out, "egressd_webhook_reviews_total", labels, load(stats.reviews[i]));
  }
  const auto& histogram = stats.reviewSeconds;
  family(out, "egressd_webhook_review_duration_seconds", "histogram",
         "From a review received to its answer written to the socket.");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < common::LatencyHistogram::kBuckets; ++i) {
    cumulative += histogram.bucket(i);
    std::string labels = "le=\"";
    if (i < common::LatencyHistogram::kBoundsMicros.size()) {
      char bound[32];
      std::snprintf(bound, sizeof bound, "%g",
                    static_cast<double>(common::LatencyHistogram::kBoundsMicros[i]) / 1e6);
      labels += bound;
    } else {
      labels += "+Inf";
    }
    labels += '"';
    sample(out, "egressd_webhook_review_duration_seconds_bucket", labels, cumulative);
  }
  char sum[64];
  std::snprintf(sum, sizeof sum, "%.6f", static_cast<double>(histogram.sumMicros()) / 1e6);
  out += "egressd_webhook_review_duration_seconds_sum ";
  out += sum;
  out += '\n';
  sample(out, "egressd_webhook_review_duration_seconds_count", "", cumulative);
  return out;
}

}  // namespace controller

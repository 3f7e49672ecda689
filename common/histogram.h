// A latency histogram with fixed bucket bounds, recorded from any thread
// without locks or allocation, rendered as a Prometheus histogram
// (cumulative `le` buckets, `_sum`, `_count`) by the metrics endpoint.
//
// Thread-safety: record() and the readers from any thread (relaxed atomics;
// a reader may see a record in `count` before its bucket, which Prometheus
// tolerates between scrapes).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace common {

class LatencyHistogram {
 public:
  // Upper bounds in microseconds; a last, implicit bucket is +Inf.
  static constexpr std::array<uint64_t, 14> kBoundsMicros = {
      100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000};
  static constexpr size_t kBuckets = kBoundsMicros.size() + 1;

  void record(std::chrono::nanoseconds latency) noexcept {
    const auto micros = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                  latency < latency.zero() ? latency.zero() : latency)
                                                  .count());
    size_t bucket = 0;
    while (bucket < kBoundsMicros.size() && micros > kBoundsMicros[bucket]) ++bucket;
    buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
    sumMicros_.fetch_add(micros, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
  }

  // Non-cumulative count of bucket `index` (< kBuckets).
  uint64_t bucket(size_t index) const noexcept { return buckets_[index].load(std::memory_order_relaxed); }
  uint64_t count() const noexcept { return count_.load(std::memory_order_relaxed); }
  uint64_t sumMicros() const noexcept { return sumMicros_.load(std::memory_order_relaxed); }

 private:
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<uint64_t> sumMicros_{0};
  std::atomic<uint64_t> count_{0};
};

}  // namespace common

// A counter that one thread writes and any thread reads: the verdict
// worker's flow-table counters, read by /metrics and `egressctl stats` on
// the daemon's event loop.
//
// add() is a relaxed load and a relaxed store, not a read-modify-write: with
// a single writer no increment is lost, and the data path pays no locked
// instruction (a plain increment on x86-64 and arm64). Readers get every
// value whole, at worst a few updates old; there is no ordering between two
// counters. Only the owning thread may call add()/sub(); load() from any.
// Nothing here fails or allocates.
#pragma once

#include <atomic>
#include <cstdint>

namespace nfq {

class OwnedCounter {
 public:
  void add(uint64_t n = 1) noexcept {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void sub(uint64_t n = 1) noexcept {
    value_.store(value_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  }
  uint64_t load() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

}  // namespace nfq

// Immutable snapshots swapped whole (STYLE.md rule 8).
//
// SnapshotHolder<T> owns the current std::shared_ptr<const T>; writers
// publish() a new one. Readers on hot paths keep a SnapshotReader<T> per
// thread: get() costs one relaxed-ish atomic load of the generation when
// nothing changed, and takes the (short) lock only after a publish, so the
// data path never contends on a reference count.
//
// Thread-safety: publish/load from any thread; each SnapshotReader belongs
// to one thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

namespace common {

template <typename T>
class SnapshotHolder {
 public:
  explicit SnapshotHolder(std::shared_ptr<const T> initial) : current_(std::move(initial)) {}

  void publish(std::shared_ptr<const T> next) {
    {
      std::lock_guard lock(mutex_);
      current_ = std::move(next);
    }
    generation_.fetch_add(1, std::memory_order_release);
  }

  std::shared_ptr<const T> load() const {
    std::lock_guard lock(mutex_);
    return current_;
  }

  uint64_t generation() const noexcept { return generation_.load(std::memory_order_acquire); }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const T> current_;
  std::atomic<uint64_t> generation_{0};
};

template <typename T>
class SnapshotReader {
 public:
  explicit SnapshotReader(const SnapshotHolder<T>& holder) : holder_(holder) { refresh(); }

  // The current snapshot; valid until the next get() on this reader.
  const T& get() {
    if (holder_.generation() != seen_) refresh();
    return *cached_;
  }
  const std::shared_ptr<const T>& shared() {
    if (holder_.generation() != seen_) refresh();
    return cached_;
  }

 private:
  void refresh() {
    seen_ = holder_.generation();
    cached_ = holder_.load();
  }

  const SnapshotHolder<T>& holder_;
  uint64_t seen_ = 0;
  std::shared_ptr<const T> cached_;
};

}  // namespace common

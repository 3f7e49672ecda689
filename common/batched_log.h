// Log lines batched into one write(2): lines are appended to one reused
// buffer and go out together on flush() (the event hub flushes on its drain
// timer, every few milliseconds) or when the buffer passes `flushBytes`.
// At `log.level = info` every verdict and every DNS denial is a line; one
// write per line cost more CPU than deciding it.
//
// Nothing is dropped: every appended line is written by the next flush (in
// one write to a regular file; in line-aligned PIPE_BUF pieces to a pipe,
// which keeps lines of other threads from landing inside them; a short
// write is continued; a failing descriptor is counted in writeErrors(),
// since a log has nowhere else to report it).
// Allocation: none once the buffer has grown to `flushBytes` plus a line.
// Ownership: borrows the file descriptor. Thread-safety: none (one thread,
// the event loop).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace common {

class BatchedLog {
 public:
  explicit BatchedLog(int fd, size_t flushBytes = 64 * 1024);
  ~BatchedLog();
  BatchedLog(const BatchedLog&) = delete;
  BatchedLog& operator=(const BatchedLog&) = delete;

  // The buffer to append one line to (with its '\n'), after a flush if it
  // is full; call lineAppended() once the line is complete.
  std::string& lineBuffer() noexcept {
    if (buffer_.size() >= flushBytes_) flush();
    return buffer_;
  }
  void lineAppended() noexcept { ++lines_; }

  // Writes everything queued in one write(2) (more only on a short write or
  // to a pipe).
  void flush() noexcept;

  std::string_view pending() const noexcept { return buffer_; }
  uint64_t lines() const noexcept { return lines_; }
  uint64_t writes() const noexcept { return writes_; }
  uint64_t writeErrors() const noexcept { return writeErrors_; }

 private:
  int fd_;
  size_t flushBytes_;
  size_t chunk_ = SIZE_MAX;  // bytes per write(2), cut at a line end
  std::string buffer_;
  uint64_t lines_ = 0;
  uint64_t writes_ = 0;
  uint64_t writeErrors_ = 0;
};

}  // namespace common

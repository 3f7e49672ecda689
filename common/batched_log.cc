#include "common/batched_log.h"

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace common {

BatchedLog::BatchedLog(int fd, size_t flushBytes) : fd_(fd), flushBytes_(flushBytes) {
  // Room for a full buffer plus one long line, once.
  buffer_.reserve(flushBytes_ + 1024);
  // Writes to a regular file are atomic with respect to other writers of
  // the same file (the kernel serialises them on the file position), so
  // one write takes everything. A pipe (a container runtime's or
  // journald's stdout) only keeps writes of up to PIPE_BUF whole: there
  // each write is cut at the last line end within PIPE_BUF, so lines of
  // other threads never land inside ours.
  struct stat info {};
  if (::fstat(fd_, &info) != 0 || !S_ISREG(info.st_mode)) chunk_ = PIPE_BUF;
}

BatchedLog::~BatchedLog() {
  flush();
}

void BatchedLog::flush() noexcept {
  size_t written = 0;
  while (written < buffer_.size()) {
    size_t length = buffer_.size() - written;
    if (length > chunk_) {
      // The last whole line within the chunk; a single longer line goes
      // out whole, alone.
      size_t end = buffer_.rfind('\n', written + chunk_ - 1);
      if (end == std::string::npos || end < written) end = buffer_.find('\n', written);
      length = end == std::string::npos ? buffer_.size() - written : end + 1 - written;
    }
    const ssize_t n = ::write(fd_, buffer_.data() + written, length);
    ++writes_;
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // Nowhere to report a failing log: counted, and the rest is given up
      // rather than retried forever on the event loop.
      ++writeErrors_;
      break;
    }
    written += static_cast<size_t>(n);
  }
  buffer_.clear();
}

}  // namespace common

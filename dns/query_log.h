// The `event=dns.query` log lines, batched: each line is formatted into one
// reused buffer and the buffer goes out with a single write(2) per flush
// (the event hub flushes on its drain timer, every few milliseconds, and
// whenever the buffer passes `flushBytes`). At `log.level = info` every
// denial writes a line; one write per query cost more CPU than answering
// it. The line format is exactly common::LogLine's (ts, level, event, then
// the fields in logfmt), with `ts` the time of the query, not of the write.
//
// Nothing is dropped: every appended line is written by the next flush (in
// one write to a regular file; in line-aligned PIPE_BUF pieces to a pipe,
// which keeps lines of other threads from landing inside them; a short
// write is continued; a failing descriptor is counted in
// writeErrors(), since a log has nowhere else to report it).
// Allocation: none once the buffer has grown to `flushBytes` plus a line.
// Ownership: borrows the file descriptor. Thread-safety: none (one thread,
// the event loop).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/log.h"
#include "common/socket_address.h"

namespace dns {

struct QueryLogLine {
  std::chrono::system_clock::time_point time;
  common::LogLevel level = common::LogLevel::Info;
  common::SocketAddress client;
  std::string_view name;
  uint16_t qtype = 0;
  std::string_view outcome;
  uint16_t rcode = 0;
  uint16_t answers = 0;
};

// Appends one line (with its newline) to `out`; allocates only when `out`
// has to grow. `secondsCache`/`secondsText` memoise the formatted second
// ("2026-11-26T20:07:43"), so a burst of lines calls gmtime_r once.
void appendQueryLogLine(std::string& out, const QueryLogLine& line, int64_t& secondsCache,
                        std::string& secondsText);

class QueryLog {
 public:
  explicit QueryLog(int fd, size_t flushBytes = 64 * 1024);
  ~QueryLog();
  QueryLog(const QueryLog&) = delete;
  QueryLog& operator=(const QueryLog&) = delete;

  // Queues the line; flushes first when the buffer is full.
  void append(const QueryLogLine& line);
  // Writes everything queued in one write(2) (more only on a short write).
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
  int64_t secondsCache_ = -1;
  std::string secondsText_;
  uint64_t lines_ = 0;
  uint64_t writes_ = 0;
  uint64_t writeErrors_ = 0;
};

}  // namespace dns

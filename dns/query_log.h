// The `event=dns.query` log lines, formatted straight into a
// common::BatchedLog (one write(2) per event-hub drain instead of one per
// query). The line format is exactly common::LogLine's (ts, level, event,
// then the fields, in logfmt or JSON as common::logStyle() says), with `ts`
// the time of the query, not of the write. Thread-safety: none (one thread, the event loop).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/batched_log.h"
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
  // Written when not empty: why it was denied, or (audit) would have been.
  std::string_view reason;
  bool audit = false;  // adds "verdict=audit would=deny"
};

// Appends one line (with its newline) to `out`; allocates only when `out`
// has to grow. `secondsCache`/`secondsText` memoise the formatted second
// ("2026-11-26T20:07:43"), so a burst of lines calls gmtime_r once.
void appendQueryLogLine(std::string& out, const QueryLogLine& line, int64_t& secondsCache,
                        std::string& secondsText);

class QueryLog {
 public:
  // Borrows `out`, which must outlive it.
  explicit QueryLog(common::BatchedLog& out) : out_(out) {}

  // Queues the line (the batched log flushes first when it is full).
  void append(const QueryLogLine& line);

 private:
  common::BatchedLog& out_;
  int64_t secondsCache_ = -1;
  std::string secondsText_;
};

}  // namespace dns

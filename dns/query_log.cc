#include "dns/query_log.h"

#include <arpa/inet.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <ctime>

namespace dns {

namespace {

std::string_view levelName(common::LogLevel level) noexcept {
  switch (level) {
    case common::LogLevel::Debug:
      return "debug";
    case common::LogLevel::Info:
      return "info";
    case common::LogLevel::Warn:
      return "warn";
    case common::LogLevel::Error:
      return "error";
  }
  return "info";
}

void appendNumber(std::string& out, uint64_t value) {
  char digits[24];
  const auto result = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, static_cast<size_t>(result.ptr - digits));
}

// "ip:port", "[ip]:port": what common::SocketAddress::toString() writes,
// without its temporary strings.
void appendEndpoint(std::string& out, const common::SocketAddress& address) {
  char text[INET6_ADDRSTRLEN] = {};
  const bool v6 = address.ip.family == common::IpFamily::V6;
  inet_ntop(v6 ? AF_INET6 : AF_INET, address.ip.bytes.data(), text, sizeof text);
  if (v6) out.push_back('[');
  out.append(text);
  if (v6) out.push_back(']');
  out.push_back(':');
  appendNumber(out, address.port);
}

}  // namespace

void appendQueryLogLine(std::string& out, const QueryLogLine& line, int64_t& secondsCache,
                        std::string& secondsText) {
  const int64_t micros =
      std::chrono::duration_cast<std::chrono::microseconds>(line.time.time_since_epoch()).count();
  const int64_t seconds = micros / 1'000'000;
  if (seconds != secondsCache) {
    const std::time_t t = static_cast<std::time_t>(seconds);
    std::tm utc{};
    gmtime_r(&t, &utc);
    char text[40];
    const size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
    secondsText.assign(text, n);
    secondsCache = seconds;
  }
  out.append("ts=");
  out.append(secondsText);
  // ".uuuuuuZ", zero-padded like common::LogLine's "%06lld".
  char fraction[8] = {'.', '0', '0', '0', '0', '0', '0', 'Z'};
  int64_t rest = micros % 1'000'000;
  if (rest < 0) rest += 1'000'000;
  for (int i = 6; i >= 1; --i) {
    fraction[i] = static_cast<char>('0' + rest % 10);
    rest /= 10;
  }
  out.append(fraction, sizeof fraction);
  out.append(" level=");
  out.append(levelName(line.level));
  out.append(" event=dns.query client=");
  appendEndpoint(out, line.client);
  out.append(" name=");
  common::appendLogfmtValue(out, line.name);
  out.append(" qtype=");
  appendNumber(out, line.qtype);
  out.append(" outcome=");
  common::appendLogfmtValue(out, line.outcome);
  out.append(" rcode=");
  appendNumber(out, line.rcode);
  out.append(" answers=");
  appendNumber(out, line.answers);
  out.push_back('\n');
}

QueryLog::QueryLog(int fd, size_t flushBytes) : fd_(fd), flushBytes_(flushBytes) {
  // Room for a full buffer plus one line of the longest kind, once.
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

QueryLog::~QueryLog() {
  flush();
}

void QueryLog::append(const QueryLogLine& line) {
  if (buffer_.size() >= flushBytes_) flush();
  appendQueryLogLine(buffer_, line, secondsCache_, secondsText_);
  ++lines_;
}

void QueryLog::flush() noexcept {
  size_t written = 0;
  while (written < buffer_.size()) {
    size_t length = buffer_.size() - written;
    if (length > chunk_) {
      // The last whole line within the chunk; a single longer line (names
      // are at most 253 bytes, so it cannot happen) goes out whole, alone.
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

}  // namespace dns

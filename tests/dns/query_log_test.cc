// The batched event=dns.query lines and common::BatchedLog: the same text
// common::LogLine writes, and every line reaches the descriptor, whole, in
// few writes.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "dns/query_log.h"

namespace {

dns::QueryLogLine sampleLine() {
  dns::QueryLogLine line;
  // 2026-11-26T20:07:43.000042Z
  line.time = std::chrono::system_clock::time_point(std::chrono::microseconds(1795723663000042LL));
  line.level = common::LogLevel::Info;
  line.client = *common::parseSocketAddress("127.0.0.1:40000");
  line.name = "evil.example.com";
  line.qtype = 1;
  line.outcome = "denied";
  line.rcode = 3;
  line.answers = 0;
  return line;
}

// Everything left to read from `fd` (to its end or, non-blocking, until empty).
std::string readAll(int fd) {
  std::string text;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof buffer)) > 0) text.append(buffer, static_cast<size_t>(n));
  return text;
}

std::string format(const dns::QueryLogLine& line) {
  std::string out;
  int64_t cache = -1;
  std::string seconds;
  dns::appendQueryLogLine(out, line, cache, seconds);
  return out;
}

// What common::LogLine writes to stderr for `build`, captured via a pipe.
template <typename Build>
std::string captureLogLine(Build build) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const int saved = ::dup(STDERR_FILENO);
  ::dup2(fds[1], STDERR_FILENO);
  build();
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  ::close(fds[1]);
  const std::string text = readAll(fds[0]);
  ::close(fds[0]);
  return text;
}

std::string withoutTimestamp(const std::string& line) {
  REQUIRE(line.rfind("ts=", 0) == 0);
  return line.substr(line.find(' '));
}

}  // namespace

TEST_CASE("query log line: exact text with the query's time", "[dns][query_log]") {
  CHECK(format(sampleLine()) ==
        "ts=2026-11-26T20:07:43.000042Z level=info event=dns.query client=127.0.0.1:40000 "
        "name=evil.example.com qtype=1 outcome=denied rcode=3 answers=0\n");
}

TEST_CASE("query log line: same fields and quoting as common::LogLine", "[dns][query_log]") {
  const common::LogLevel before = common::logLevel();
  common::setLogLevel(common::LogLevel::Debug);
  dns::QueryLogLine line = sampleLine();
  line.level = common::LogLevel::Debug;
  line.client = *common::parseSocketAddress("[2001:db8::7]:53");
  line.name = "we ird=\"name\\";
  line.qtype = 28;
  line.outcome = "cache_hit";
  line.rcode = 0;
  line.answers = 65535;
  const std::string expected = captureLogLine([&] {
    common::LogLine(common::LogLevel::Debug, "dns.query")
        .field("client", line.client.toString())
        .field("name", line.name)
        .field("qtype", static_cast<unsigned>(line.qtype))
        .field("outcome", line.outcome)
        .field("rcode", static_cast<unsigned>(line.rcode))
        .field("answers", static_cast<unsigned>(line.answers));
  });
  common::setLogLevel(before);
  const std::string ours = format(line);
  CHECK(withoutTimestamp(ours) == withoutTimestamp(expected));
  CHECK(ours.find("client=[2001:db8::7]:53 ") != std::string::npos);
  CHECK(ours.find(R"(name="we ird=\"name\\")") != std::string::npos);
  // Same timestamp shape: ts=YYYY-MM-DDTHH:MM:SS.uuuuuuZ
  CHECK(ours.find(' ') == expected.find(' '));
}

TEST_CASE("query log line: log.format json gives common::LogLine's JSON object", "[dns][query_log]") {
  dns::QueryLogLine line = sampleLine();
  line.client = *common::parseSocketAddress("[2001:db8::7]:53");
  line.name = "we ird=\"name\\\x80";
  line.reason = "not_allowed";
  line.audit = true;
  common::setLogStyle(common::LogStyle::Json);
  const std::string expected = captureLogLine([&] {
    common::LogLine(common::LogLevel::Info, "dns.query")
        .field("client", line.client.toString())
        .field("name", line.name)
        .field("qtype", static_cast<unsigned>(line.qtype))
        .field("outcome", line.outcome)
        .field("rcode", static_cast<unsigned>(line.rcode))
        .field("answers", static_cast<unsigned>(line.answers))
        .field("reason", line.reason)
        .field("verdict", "audit")
        .field("would", "deny");
  });
  const std::string ours = format(line);
  common::setLogStyle(common::LogStyle::Logfmt);
  const auto withoutTs = [](const std::string& text) {
    REQUIRE(text.rfind("{\"ts\":\"", 0) == 0);
    return text.substr(text.find("\"level\""));
  };
  CHECK(withoutTs(ours) == withoutTs(expected));
  CHECK(ours.rfind("{\"ts\":\"2026-11-26T20:07:43.000042Z\",\"level\":\"info\",\"event\":\"dns.query\",",
                   0) == 0);
  CHECK(ours.find(R"("name":"we ird=\"name\\\ufffd")") != std::string::npos);
}

TEST_CASE("query log line: the memoised second follows the time", "[dns][query_log]") {
  std::string out;
  int64_t cache = -1;
  std::string seconds;
  dns::QueryLogLine line = sampleLine();
  dns::appendQueryLogLine(out, line, cache, seconds);
  line.time += std::chrono::seconds(61) + std::chrono::microseconds(999'000);
  dns::appendQueryLogLine(out, line, cache, seconds);
  CHECK(out.find("ts=2026-11-26T20:07:43.000042Z") == 0);
  CHECK(out.find("\nts=2026-11-26T20:08:44.999042Z ") != std::string::npos);
}

TEST_CASE("query log to a pipe: every line, whole, in line-aligned writes of at most PIPE_BUF",
          "[dns][query_log]") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
  std::string expected;
  {
    common::BatchedLog log(fds[1], 32 * 1024);
    dns::QueryLog queries(log);
    dns::QueryLogLine line = sampleLine();
    for (int i = 0; i < 200; ++i) {
      line.rcode = static_cast<uint16_t>(i);
      queries.append(line);
      expected += format(line);
    }
    CHECK(log.lines() == 200);
    CHECK(log.writes() == 0);  // queued, not written yet
    CHECK(log.pending() == expected);
    log.flush();
    CHECK(log.pending().empty());
    CHECK(log.writeErrors() == 0);
    // ~125 bytes a line: 200 lines take ceil(25 KB / 4 KB) writes or one more.
    CHECK(log.writes() >= expected.size() / PIPE_BUF);
    CHECK(log.writes() <= expected.size() / PIPE_BUF + 2);
  }
  const std::string text = readAll(fds[0]);
  ::close(fds[0]);
  ::close(fds[1]);
  CHECK(text == expected);
}

TEST_CASE("query log to a file: one write per flush, and a full buffer flushes itself", "[dns][query_log]") {
  char path[] = "/tmp/egressd-query-log-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  std::string expected;
  {
    common::BatchedLog log(fd, 4096);
    dns::QueryLog queries(log);
    dns::QueryLogLine line = sampleLine();
    for (int i = 0; i < 100; ++i) {
      line.answers = static_cast<uint16_t>(i);
      queries.append(line);
      expected += format(line);
    }
    // 100 lines of ~125 bytes over a 4 KB threshold: flushed along the way.
    CHECK(log.writes() >= 2);
    const uint64_t before = log.writes();
    log.flush();
    CHECK(log.writes() == before + 1);
  }  // the destructor flushes what is left (nothing here)
  ::lseek(fd, 0, SEEK_SET);
  const std::string text = readAll(fd);
  ::close(fd);
  ::unlink(path);
  CHECK(text == expected);
}

TEST_CASE("query log: a failing descriptor is counted, not retried forever", "[dns][query_log]") {
  common::BatchedLog log(-1);
  dns::QueryLog queries(log);
  queries.append(sampleLine());
  log.flush();
  CHECK(log.writeErrors() == 1);
  CHECK(log.pending().empty());
}

TEST_CASE("LogLine into a batched log: the text stderr would get, written with the batch",
          "[dns][query_log]") {
  const common::LogLevel before = common::logLevel();
  common::setLogLevel(common::LogLevel::Info);
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  std::string batched;
  {
    common::BatchedLog log(fds[1]);
    {
      common::LogLine(common::LogLevel::Info, "verdict", log)
          .field("src", "10.0.1.2:1")
          .field("reason", "a b");
      common::LogLine(common::LogLevel::Debug, "verdict", log).field("src", "dropped below the level");
      common::LogLine(common::LogLevel::Warn, "other", log).field("n", 7);
    }
    CHECK(log.lines() == 2);
    CHECK(log.writes() == 0);
    batched = std::string(log.pending());
    log.flush();
    CHECK(log.writes() == 1);
  }
  ::close(fds[1]);
  const std::string text = readAll(fds[0]);
  ::close(fds[0]);
  CHECK(text == batched);
  const std::string direct = captureLogLine([] {
    common::LogLine(common::LogLevel::Info, "verdict").field("src", "10.0.1.2:1").field("reason", "a b");
    common::LogLine(common::LogLevel::Warn, "other").field("n", 7);
  });
  // Same lines but for the timestamps.
  const size_t cut = text.find('\n') + 1;
  const size_t directCut = direct.find('\n') + 1;
  CHECK(withoutTimestamp(text.substr(0, cut)) == withoutTimestamp(direct.substr(0, directCut)));
  CHECK(withoutTimestamp(text.substr(cut)) == withoutTimestamp(direct.substr(directCut)));
  common::setLogLevel(before);
}

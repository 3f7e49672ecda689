#include "common/log.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "common/batched_log.h"

namespace {

// One line written in `style` into a batch (never flushed: fd -1 is not
// written to before the batch is read).
std::string lineIn(common::LogStyle style, const std::string& value) {
  common::setLogStyle(style);
  common::BatchedLog batch(-1);
  {
    common::LogLine(common::LogLevel::Error, "test.event", batch)
        .field("name", value)
        .field("count", static_cast<uint64_t>(42))
        .field("delta", static_cast<int64_t>(-7));
  }
  std::string line(batch.pending());
  common::setLogStyle(common::LogStyle::Logfmt);
  return line;
}

}  // namespace

TEST_CASE("log.format json: one JSON object per line, numbers bare") {
  const std::string line = lineIn(common::LogStyle::Json, "a \"quoted\"\nname\\");
  REQUIRE(line.back() == '\n');
  const auto parsed = nlohmann::json::parse(line);
  CHECK(parsed["level"] == "error");
  CHECK(parsed["event"] == "test.event");
  CHECK(parsed["name"] == "a \"quoted\"\nname\\");
  CHECK(parsed["count"] == 42);
  CHECK(parsed["delta"] == -7);
  CHECK(parsed["ts"].get<std::string>().ends_with("Z"));
}

TEST_CASE("log.format json: bytes from packets never break the line") {
  // Invalid UTF-8 (a lone continuation byte, an overlong form, a surrogate)
  // and control bytes; a valid multibyte name passes through.
  const std::string hostile = std::string("x\x80y\xC0\xAF\xED\xA0\x80z\x01") + "\xC3\xA9t\xC3\xA9";
  const std::string line = lineIn(common::LogStyle::Json, hostile);
  const auto parsed = nlohmann::json::parse(line);  // throws on invalid UTF-8
  CHECK(parsed["name"] ==
        "x\xEF\xBF\xBDy\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDz\x01\xC3\xA9t\xC3\xA9");
}

TEST_CASE("log.format logfmt stays key=value") {
  const std::string line = lineIn(common::LogStyle::Logfmt, "two words");
  CHECK(line.find(" level=error event=test.event name=\"two words\" count=42 delta=-7\n") !=
        std::string::npos);
  CHECK(line.starts_with("ts="));
}

TEST_CASE("plainFields writes what one plainField per field writes, in both styles") {
  for (const common::LogStyle style : {common::LogStyle::Logfmt, common::LogStyle::Json}) {
    common::setLogStyle(style);
    common::BatchedLog one(-1);
    common::BatchedLog many(-1);
    {
      common::LogLine(common::LogLevel::Error, "test.event", one)
          .field("src", "10.0.0.1:40000")
          .plainField("namespace", "team-a")
          .plainField("pod", "")
          .plainField("workload", "Deployment/web");
    }
    {
      common::LogLine(common::LogLevel::Error, "test.event", many)
          .field("src", "10.0.0.1:40000")
          .plainFields({{"namespace", "team-a"}, {"pod", ""}, {"workload", "Deployment/web"}});
    }
    common::setLogStyle(common::LogStyle::Logfmt);
    // The timestamps may differ; everything after them must not.
    const std::string a(one.pending());
    const std::string b(many.pending());
    REQUIRE(a.find("level") != std::string::npos);
    const auto tail = [](const std::string& line) { return line.substr(line.find("level")); };
    CHECK(tail(a) == tail(b));
    if (style == common::LogStyle::Json) {
      const auto parsed = nlohmann::json::parse(b);
      CHECK(parsed["namespace"] == "team-a");
      CHECK(parsed["pod"] == "");
      CHECK(parsed["workload"] == "Deployment/web");
    } else {
      CHECK(b.find(" namespace=team-a pod=\"\" workload=Deployment/web\n") != std::string::npos);
    }
  }
}

TEST_CASE("log timestamps: RFC 3339 UTC with microseconds, the second formatted once per second") {
  // The date and time of day are cached per second (common/log.cc): each
  // line must still carry the second it was written in, and the fraction
  // six digits, zero-padded.
  const auto second = [](std::chrono::system_clock::time_point at) {
    const std::time_t t = std::chrono::system_clock::to_time_t(at);
    std::tm utc{};
    gmtime_r(&t, &utc);
    char buffer[40];
    return std::string(buffer, std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &utc));
  };
  for (int i = 0; i < 3; ++i) {
    const auto before = std::chrono::system_clock::now();
    const std::string line = lineIn(common::LogStyle::Logfmt, "x");
    const auto after = std::chrono::system_clock::now();
    REQUIRE(line.size() > 31);
    const std::string stamp = line.substr(3, 27);  // ts=YYYY-MM-DDTHH:MM:SS.uuuuuuZ
    CAPTURE(stamp);
    const std::string whole = stamp.substr(0, 19);
    CHECK((whole == second(before) || whole == second(after)));
    CHECK(stamp[19] == '.');
    CHECK(stamp.substr(20, 6).find_first_not_of("0123456789") == std::string::npos);
    CHECK(stamp[26] == 'Z');
    CHECK(line[30] == ' ');
    if (i == 1) std::this_thread::sleep_for(std::chrono::milliseconds(1001));  // the next second
  }
}

// Watch stream lines and their splitting into lines.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "controller/watch_event.h"

using controller::LineSplitter;
using controller::parseWatchLine;
using controller::WatchEventType;

TEST_CASE("watch: event lines") {
  struct Row {
    const char* line;
    bool ok;
    WatchEventType type;
    const char* resourceVersion;
    int64_t code;
  };
  const std::vector<Row> rows = {
      {R"({"type":"ADDED","object":{"kind":"EgressRuleSet","metadata":{"name":"a","namespace":"n","resourceVersion":"12"}}})",
       true, WatchEventType::Added, "12", 0},
      {R"({"type":"MODIFIED","object":{"metadata":{"resourceVersion":"13"}}})", true,
       WatchEventType::Modified, "13", 0},
      {R"({"type":"DELETED","object":{"metadata":{"resourceVersion":"14"}}})", true, WatchEventType::Deleted,
       "14", 0},
      // Bookmarks carry only the resourceVersion (and an annotation).
      {R"({"type":"BOOKMARK","object":{"kind":"EgressRuleSet","apiVersion":"zalando.org/v1","metadata":{"resourceVersion":"99","annotations":{"k8s.io/initial-events-end":"true"}}}})",
       true, WatchEventType::Bookmark, "99", 0},
      // The compaction case: metav1.Status with code 410 (reason Expired).
      {R"J({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 5 (300)","reason":"Expired","code":410}})J",
       true, WatchEventType::Error, "", 410},
      {R"({"type":"ERROR","object":{"kind":"Status","status":"Failure","code":500}})", true,
       WatchEventType::Error, "", 500},
      {R"({"type":"ADDED","object":{"metadata":{}}})", false, WatchEventType::Added, "", 0},
      {R"({"type":"ADDED","object":{"metadata":{"resourceVersion":""}}})", false, WatchEventType::Added, "",
       0},
      {R"({"type":"ADDED"})", false, WatchEventType::Added, "", 0},
      {R"({"type":"SOMETHING","object":{}})", false, WatchEventType::Added, "", 0},
      {R"({"object":{}})", false, WatchEventType::Added, "", 0},
      {R"({"type":"ADDED","object":[]})", false, WatchEventType::Added, "", 0},
      {R"(["ADDED"])", false, WatchEventType::Added, "", 0},
      {R"({"type":"ADDED","object":{"metadata":{"resourceVersion":"1"}})", false, WatchEventType::Added, "",
       0},
      {"", false, WatchEventType::Added, "", 0},
  };
  for (const auto& row : rows) {
    INFO(row.line);
    const auto parsed = parseWatchLine(row.line);
    REQUIRE(parsed.event.has_value() == row.ok);
    if (!row.ok) {
      CHECK_FALSE(parsed.error.empty());
      continue;
    }
    CHECK(parsed.event->type == row.type);
    CHECK(parsed.event->resourceVersion == row.resourceVersion);
    CHECK(parsed.event->code == row.code);
  }
  const auto gone = parseWatchLine(rows[4].line);
  CHECK(gone.event->message == "too old resource version: 5 (300)");
}

TEST_CASE("watch: lines split across chunks, CRLF, empty lines, too long") {
  std::vector<std::string> lines;
  const std::function<bool(std::string_view)> collect = [&](std::string_view line) {
    lines.emplace_back(line);
    return true;
  };
  LineSplitter splitter(16);
  CHECK(splitter.append("{\"a\"", collect));
  CHECK(lines.empty());
  CHECK(splitter.append(":1}\n{\"b\":2}\r\n\n{\"c\"", collect));
  CHECK(lines == std::vector<std::string>{"{\"a\":1}", "{\"b\":2}"});
  CHECK(splitter.pendingBytes() == 4);
  CHECK(splitter.append(":3}\n", collect));
  CHECK(lines.back() == "{\"c\":3}");
  CHECK(splitter.pendingBytes() == 0);
  // Byte by byte gives the same lines.
  lines.clear();
  for (const char c : std::string("x\ny\n")) CHECK(splitter.append(std::string_view(&c, 1), collect));
  CHECK(lines == std::vector<std::string>{"x", "y"});
  // A line over the bound is refused, split or not.
  CHECK_FALSE(splitter.append(std::string(17, 'x'), collect));
  LineSplitter other(16);
  CHECK(other.append(std::string(10, 'x'), collect));
  CHECK_FALSE(other.append(std::string(10, 'x'), collect));
  // onLine returning false stops.
  LineSplitter third(100);
  int calls = 0;
  CHECK_FALSE(third.append("a\nb\nc\n", [&](std::string_view) { return ++calls < 2; }));
  CHECK(calls == 2);
}

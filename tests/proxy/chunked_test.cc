// The chunked-body scanner: where a body ends, fed whole or a byte at a
// time, and what it refuses.
#include <catch2/catch.hpp>

#include <string>
#include <string_view>

#include "proxy/chunked.h"

namespace {
using Status = proxy::ChunkedScanner::Status;

std::span<const uint8_t> bytes(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

// Feeds `body` in pieces of `step` bytes; returns the bytes consumed.
size_t feedAll(std::string_view body, size_t step, Status& status) {
  proxy::ChunkedScanner scanner;
  size_t used = 0;
  status = Status::NeedMore;
  for (size_t at = 0; at < body.size() && status == Status::NeedMore; at += step) {
    used += scanner.feed(bytes(body.substr(at, step)), status);
  }
  return used;
}
}  // namespace

TEST_CASE("chunked bodies end where RFC 9112 says, however they are split", "[proxy][chunked]") {
  struct Case {
    const char* description;
    std::string body;
    Status status;
    size_t end;  // bytes of the body (Done)
  };
  const std::string simple = "5\r\nhello\r\n0\r\n\r\n";
  const Case cases[] = {
      {"one chunk", simple + "NEXT", Status::Done, simple.size()},
      {"extensions and trailers", "A;name=v\r\n0123456789\r\n0;x\r\nX-T: 1\r\n\r\nGET", Status::Done, 37},
      {"upper-case hex", "1F\r\n" + std::string(31, 'x') + "\r\n0\r\n\r\n", Status::Done, 42},
      {"incomplete", "5\r\nhel", Status::NeedMore, 6},
      {"no size", "\r\nhello", Status::Malformed, 0},
      {"not hex", "5g\r\n", Status::Malformed, 1},
      {"data without CRLF", "5\r\nhelloXX", Status::Malformed, 8},
      {"size overflow", std::string(16, 'f') + "\r\n", Status::Malformed, 15},
      {"bare LF after the size", "5\nhello\r\n", Status::Malformed, 1},
  };
  for (const Case& c : cases) {
    for (const size_t step : {c.body.size(), size_t{1}, size_t{3}}) {
      CAPTURE(c.description, step);
      Status status;
      const size_t used = feedAll(c.body, step == 0 ? 1 : step, status);
      CHECK(status == c.status);
      if (c.status != Status::NeedMore) CHECK(used == c.end);
    }
  }
}

TEST_CASE("a chunk-extension line is bounded", "[proxy][chunked]") {
  const std::string body = "5;" + std::string(proxy::ChunkedScanner::kMaxLine + 10, 'a');
  Status status;
  feedAll(body, body.size(), status);
  CHECK(status == Status::Malformed);
}

// Where a chunked body ends (RFC 9112 section 7.1), found incrementally
// while the bytes are passed through unchanged: the proxy never decodes a
// body, it only has to know where the next request starts.
//
// Pure: feed() reads a span and keeps a few integers of state; nothing
// allocates. Chunk-size lines (with extensions) and trailer lines are
// bounded, so a hostile client cannot make the scanner wait forever on one
// line.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace proxy {

class ChunkedScanner {
 public:
  enum class Status : uint8_t { NeedMore, Done, Malformed };
  static constexpr size_t kMaxLine = 4096;

  // Consumes bytes of the body from `input`; returns how many belong to it
  // (all of them while NeedMore; up to the end of the last trailer line
  // when Done). After Done or Malformed, feeds consume nothing.
  size_t feed(std::span<const uint8_t> input, Status& status) noexcept;
  Status status() const noexcept { return status_; }

 private:
  enum class State : uint8_t { Size, Extension, SizeLf, Data, DataCr, DataLf, Trailer, TrailerLf, LastLf };
  State state_ = State::Size;
  Status status_ = Status::NeedMore;
  uint64_t remaining_ = 0;
  size_t sizeDigits_ = 0;
  size_t lineLength_ = 0;
};

}  // namespace proxy

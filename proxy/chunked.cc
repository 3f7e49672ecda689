#include "proxy/chunked.h"

#include <algorithm>

namespace proxy {

namespace {
int hexValue(uint8_t c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

// chunked-body = *chunk last-chunk trailer-section CRLF
// chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
// last-chunk   = 1*("0") [ chunk-ext ] CRLF
size_t ChunkedScanner::feed(std::span<const uint8_t> input, Status& status) noexcept {
  size_t i = 0;
  const auto fail = [&] {
    status_ = Status::Malformed;
    status = status_;
    return i;
  };
  while (i < input.size() && status_ == Status::NeedMore) {
    const uint8_t c = input[i];
    switch (state_) {
      case State::Size: {
        const int digit = hexValue(c);
        if (digit >= 0) {
          // 15 hex digits: far beyond any body, and no overflow.
          if (++sizeDigits_ > 15) return fail();
          remaining_ = remaining_ * 16 + static_cast<uint64_t>(digit);
          ++i;
          break;
        }
        if (sizeDigits_ == 0) return fail();
        if (c == '\r') {
          state_ = State::SizeLf;
        } else if (c == ';' || c == ' ' || c == '\t') {
          state_ = State::Extension;
          lineLength_ = sizeDigits_;
        } else {
          return fail();
        }
        ++i;
        break;
      }
      case State::Extension:
        if (c == '\r') {
          state_ = State::SizeLf;
        } else if (c == '\n' || ++lineLength_ > kMaxLine) {
          return fail();
        }
        ++i;
        break;
      case State::SizeLf:
        if (c != '\n') return fail();
        ++i;
        sizeDigits_ = 0;
        if (remaining_ == 0) {
          state_ = State::Trailer;
          lineLength_ = 0;
        } else {
          state_ = State::Data;
        }
        break;
      case State::Data: {
        const uint64_t take = std::min<uint64_t>(remaining_, input.size() - i);
        i += static_cast<size_t>(take);
        remaining_ -= take;
        if (remaining_ == 0) state_ = State::DataCr;
        break;
      }
      case State::DataCr:
        if (c != '\r') return fail();
        state_ = State::DataLf;
        ++i;
        break;
      case State::DataLf:
        if (c != '\n') return fail();
        state_ = State::Size;
        ++i;
        break;
      case State::Trailer:
        // A trailer line, or the empty line that ends the body.
        if (c == '\r') {
          state_ = lineLength_ == 0 ? State::LastLf : State::TrailerLf;
        } else if (c == '\n' || ++lineLength_ > kMaxLine) {
          return fail();
        }
        ++i;
        break;
      case State::TrailerLf:
        if (c != '\n') return fail();
        state_ = State::Trailer;
        lineLength_ = 0;
        ++i;
        break;
      case State::LastLf:
        if (c != '\n') return fail();
        ++i;
        status_ = Status::Done;
        break;
    }
  }
  status = status_;
  return i;
}

}  // namespace proxy

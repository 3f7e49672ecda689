// The last few bytes of a buffer as one little-endian word, for hashes and
// scans that read eight bytes at a time: the tail of a name used to cost a
// variable-length memcpy, a libc call per name on the DNS query path.
//
// Thread-safety: pure. Reads only the `rest` bytes before `end` (and, when
// `readable` >= 8, the eight before it, which the caller says exist).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace common {

// Bytes [end - rest, end) in the low `rest` bytes of the result, zero above;
// `rest` in 1..7, `readable` the number of bytes before `end` that may be
// read (at least `rest`). Overlapping loads whose shared bytes are equal,
// so OR-ing them is exact.
inline uint64_t tailWord(const uint8_t* end, size_t rest, size_t readable) noexcept {
  if (readable >= 8) {
    uint64_t word = 0;
    std::memcpy(&word, end - 8, 8);
    return word >> (8 * (8 - rest));
  }
  const uint8_t* start = end - rest;
  if (rest >= 4) {
    uint32_t low = 0;
    uint32_t high = 0;
    std::memcpy(&low, start, 4);
    std::memcpy(&high, end - 4, 4);
    return uint64_t{low} | (uint64_t{high} << (8 * (rest - 4)));
  }
  if (rest >= 2) {
    uint16_t low = 0;
    uint16_t high = 0;
    std::memcpy(&low, start, 2);
    std::memcpy(&high, end - 2, 2);
    return uint64_t{low} | (uint64_t{high} << (8 * (rest - 2)));
  }
  return start[0];
}

}  // namespace common

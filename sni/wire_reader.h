// A bounds-checked big-endian cursor over untrusted bytes (the Suricata
// HAS_SPACE() idea): every read checks the remaining length first and
// returns false instead of reading past the end. Internal to sni/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace sni {

class WireReader {
 public:
  explicit WireReader(std::span<const uint8_t> data) noexcept : data_(data) {}

  size_t remaining() const noexcept { return data_.size() - pos_; }
  bool empty() const noexcept { return pos_ == data_.size(); }
  size_t position() const noexcept { return pos_; }

  bool u8(uint8_t& out) noexcept {
    if (remaining() < 1) return false;
    out = data_[pos_++];
    return true;
  }
  bool u16(uint16_t& out) noexcept {
    if (remaining() < 2) return false;
    out = static_cast<uint16_t>(data_[pos_] << 8 | data_[pos_ + 1]);
    pos_ += 2;
    return true;
  }
  bool u32(uint32_t& out) noexcept {
    if (remaining() < 4) return false;
    out = uint32_t{data_[pos_]} << 24 | uint32_t{data_[pos_ + 1]} << 16 | uint32_t{data_[pos_ + 2]} << 8 |
          data_[pos_ + 3];
    pos_ += 4;
    return true;
  }
  // RFC 9000 §16 variable-length integer (2-bit length prefix).
  bool varint(uint64_t& out) noexcept {
    if (remaining() < 1) return false;
    const size_t length = size_t{1} << (data_[pos_] >> 6);
    if (remaining() < length) return false;
    uint64_t value = data_[pos_] & 0x3f;
    for (size_t i = 1; i < length; ++i) value = value << 8 | data_[pos_ + i];
    pos_ += length;
    out = value;
    return true;
  }
  bool skip(size_t n) noexcept {
    if (remaining() < n) return false;
    pos_ += n;
    return true;
  }
  bool bytes(size_t n, std::span<const uint8_t>& out) noexcept {
    if (remaining() < n) return false;
    out = data_.subspan(pos_, n);
    pos_ += n;
    return true;
  }

 private:
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
};

}  // namespace sni

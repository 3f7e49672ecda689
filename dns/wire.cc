#include "dns/wire.h"

#include <algorithm>
#include <cstring>

namespace dns {

namespace {

// Sixteen bytes as one value: the compiler's vector extension (GCC and
// Clang), SSE2 instructions on x86-64 and NEON on ARM. The bytes are
// signed, as SSE2 compares them: 0x80-0xff are below 0. A comparison gives
// -1 (all bits set) in each byte where it holds and 0 elsewhere.
using Block = int8_t __attribute__((vector_size(16)));
constexpr size_t kBlock = sizeof(Block);
static_assert(kNameTextCapacity % kBlock == 0, "the name text is processed in whole blocks");

// Sixteen -1 then sixteen 0: the 16 bytes from [16 - n] are -1 in the
// first n bytes and 0 in the others.
constexpr std::array<int8_t, 2 * kBlock> kFirstBytesWindow = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                              -1, -1, -1, -1, -1, -1, -1, -1};

Block firstBytes(size_t n) noexcept {
  Block mask;
  std::memcpy(&mask, kFirstBytesWindow.data() + kBlock - n, kBlock);
  return mask;
}

// Lower-cases the name text in place (A-Z only) and tells whether it holds
// a byte that makes the dotted text ambiguous: a '.' inside a label (more
// dots than label separators), a control character or space (< 0x21), or a
// byte >= 0x7f. A block of 16 bytes at a time, within `text`'s array:
// bytes past `length` may be rewritten but do not count.
inline __attribute__((always_inline)) bool lowerCaseAndCheck(std::array<char, kNameTextCapacity>& text,
                                                             size_t length, size_t labels) noexcept {
  Block unusual{};
  Block dots{};  // per byte: how many '.' its column held (at most 16)
  for (size_t i = 0; i < length; i += kBlock) {
    Block v;
    std::memcpy(&v, text.data() + i, kBlock);
    const Block counted = firstBytes(std::min(length - i, kBlock));
    v |= (v >= 'A') & (v <= 'Z') & 0x20;  // 'A' -> 'a'
    std::memcpy(text.data() + i, &v, kBlock);
    unusual |= ((v < 0x21) | (v == 0x7f)) & counted;  // 0x80-0xff are below 0x21 here
    dots -= (v == '.') & counted;                     // -(-1): one more
  }
  uint64_t halves[2];
  std::memcpy(halves, &unusual, sizeof halves);
  const bool anyUnusual = (halves[0] | halves[1]) != 0;
  std::memcpy(halves, &dots, sizeof halves);
  // The sixteen counts added up: the two halves byte by byte (at most 32
  // each), then the multiply sums a word's eight bytes into its top byte
  // (a name has at most 253 dots, so nothing carries out).
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  const auto dotCount = static_cast<size_t>(((halves[0] + halves[1]) * kOnes) >> 56);
  return anyUnusual || (labels != 0 && dotCount + 1 != labels);
}

}  // namespace

std::string_view askedName(std::span<const uint8_t> message, const Query& query,
                           std::span<char> out) noexcept {
  const std::string_view lower = query.qname.view();
  // The text is the wire name without its first length byte, with a dot
  // where each further length byte sits: text[i] is message[13 + i]
  // (parseQuery refuses compression in the question). Copied as a block,
  // then the length bytes become dots.
  const size_t start = kHeaderSize + 1;
  if (lower.empty() || out.size() < lower.size() || message.size() < start + lower.size()) return lower;
  std::memcpy(out.data(), message.data() + start, lower.size());
  for (size_t at = message[kHeaderSize]; at < lower.size(); at += 1 + message[start + at]) out[at] = '.';
  return {out.data(), lower.size()};
}

namespace {

// readName() without compression (a client's question): the labels sit one
// after the other, so the text is one block of the message. One walk over
// the length bytes checks them, one copy moves the block, and the length
// bytes inside it become the dots.
bool readUncompressedName(std::span<const uint8_t> message, size_t& offset, Name& out) noexcept {
  out.length = 0;
  out.labels = 0;
  out.unusualBytes = false;
  // RFC 1035 section 3.1: at most 255 octets, the final zero included.
  const size_t end = std::min(message.size(), offset + kMaxWireNameLength);
  size_t at = offset;
  size_t labels = 0;
  while (true) {
    if (at >= end) return false;  // past the message, or over 255 octets
    const uint8_t length = message[at];
    if (length == 0) break;
    if (length > kMaxLabelLength) return false;  // a pointer, or an extended label type (RFC 6891 section 5)
    at += 1 + size_t{length};
    ++labels;
  }
  const size_t textLength = at == offset ? 0 : at - offset - 1;  // without the first length byte
  std::memcpy(out.text.data(), message.data() + offset + 1, textLength);
  for (size_t lengthByte = offset + 1 + message[offset]; lengthByte < at;
       lengthByte += 1 + message[lengthByte]) {
    out.text[lengthByte - offset - 1] = '.';
  }
  offset = at + 1;
  out.length = static_cast<uint8_t>(textLength);
  out.labels = static_cast<uint8_t>(labels);
  out.unusualBytes = lowerCaseAndCheck(out.text, textLength, labels);
  return true;
}

}  // namespace

bool readName(std::span<const uint8_t> message, size_t& offset, Name& out, bool allowCompression) noexcept {
  if (!allowCompression) return readUncompressedName(message, offset, out);
  out.length = 0;
  out.labels = 0;
  out.unusualBytes = false;
  size_t at = offset;
  size_t wireLength = 0;  // RFC 1035 section 3.1: at most 255 octets
  bool jumped = false;
  // Pointers must go strictly backwards (below the start of the name part
  // that holds them), so following them always terminates.
  size_t limit = offset;
  // The labels between two pointers sit one after the other: each such
  // run is copied as one block (length bytes included), and the length
  // bytes become the dots between labels (the name's first one is left
  // out). The text is lower-cased and checked once, at the end.
  size_t run = at;
  size_t textLength = 0;
  const auto copyRun = [&](size_t end) noexcept {
    if (end == run) return;
    const size_t skip = textLength == 0 ? 1 : 0;  // the name's first length byte
    std::memcpy(out.text.data() + textLength, message.data() + run + skip, end - run - skip);
    // The run's length bytes become the dots between labels (its first
    // one is the name's first byte when skipped).
    for (size_t lengthByte = skip != 0 ? run + 1 + message[run] : run; lengthByte < end;
         lengthByte += 1 + message[lengthByte]) {
      out.text[textLength + lengthByte - run - skip] = '.';
    }
    textLength += end - run - skip;
  };
  while (true) {
    if (at >= message.size()) return false;
    const uint8_t length = message[at];
    if ((length & 0xc0) == 0xc0) {
      // RFC 1035 section 4.1.4: compression pointer.
      if (!allowCompression || at + 1 >= message.size()) return false;
      const size_t target = static_cast<size_t>(((length & 0x3f) << 8) | message[at + 1]);
      if (target >= limit) return false;
      if (!jumped) offset = at + 2;
      copyRun(at);
      jumped = true;
      limit = target;
      at = target;
      run = at;
      continue;
    }
    if ((length & 0xc0) != 0) return false;  // 0x40/0x80: extended label types (RFC 6891 section 5)
    wireLength += 1 + length;
    if (wireLength > kMaxWireNameLength) return false;
    if (length == 0) {
      if (!jumped) offset = at + 1;
      copyRun(at);
      out.length = static_cast<uint8_t>(textLength);
      out.unusualBytes = lowerCaseAndCheck(out.text, textLength, out.labels);
      return true;
    }
    if (at + 1 + length > message.size()) return false;
    ++out.labels;
    at += 1 + length;
  }
}

bool skipName(std::span<const uint8_t> message, size_t& offset) noexcept {
  size_t at = offset;
  size_t wireLength = 0;
  while (true) {
    if (at >= message.size()) return false;
    const uint8_t length = message[at];
    if ((length & 0xc0) == 0xc0) {
      if (at + 1 >= message.size()) return false;
      offset = at + 2;
      return true;
    }
    if ((length & 0xc0) != 0) return false;
    wireLength += 1 + length;
    if (wireLength > kMaxWireNameLength) return false;
    if (length == 0) {
      offset = at + 1;
      return true;
    }
    at += 1 + length;
  }
}

std::string_view queryStatusName(QueryStatus status) noexcept {
  switch (status) {
    case QueryStatus::Ok:
      return "ok";
    case QueryStatus::TooShort:
      return "too_short";
    case QueryStatus::NotAQuery:
      return "not_a_query";
    case QueryStatus::BadQuestionCount:
      return "bad_question_count";
    case QueryStatus::BadName:
      return "bad_name";
    case QueryStatus::Truncated:
      return "truncated";
    case QueryStatus::BadEdns:
      return "bad_edns";
    case QueryStatus::TrailingBytes:
      return "trailing_bytes";
  }
  return "unknown";
}

QueryStatus parseQuery(std::span<const uint8_t> message, Query& out) noexcept {
  out.hasEdns = false;
  out.dnssecOk = false;
  out.ednsVersion = 0;
  out.udpSize = kClassicUdpSize;
  out.questionEnd = 0;
  // `out` may be reused: what a failed parse leaves unset reads as empty.
  out.qname.length = 0;
  out.qname.labels = 0;
  out.qname.unusualBytes = false;
  out.qtype = 0;
  out.qclass = 0;
  if (!parseHeader(message, out.header)) return QueryStatus::TooShort;
  if (out.header.qr()) return QueryStatus::NotAQuery;
  if (out.header.qdcount != 1) return QueryStatus::BadQuestionCount;
  size_t offset = kHeaderSize;
  // RFC 1035 section 4.1.2: QNAME, QTYPE, QCLASS. A lone question has
  // nothing earlier to point at, so compression is refused outright.
  if (!readUncompressedName(message, offset, out.qname)) return QueryStatus::BadName;
  if (offset + 4 > message.size()) return QueryStatus::Truncated;
  out.qtype = readU16(message.data() + offset);
  out.qclass = readU16(message.data() + offset + 2);
  offset += 4;
  out.questionEnd = offset;

  // Remaining sections: normally only the OPT pseudo-RR (RFC 6891
  // section 6.1.1) in the additional section; anything else is walked and
  // bounds-checked but ignored.
  const uint32_t records = uint32_t{out.header.ancount} + out.header.nscount + out.header.arcount;
  const uint32_t additionalStart = uint32_t{out.header.ancount} + out.header.nscount;
  for (uint32_t i = 0; i < records; ++i) {
    const size_t owner = offset;
    if (!skipName(message, offset)) return QueryStatus::Truncated;
    if (offset + 10 > message.size()) return QueryStatus::Truncated;
    const uint8_t* p = message.data() + offset;
    const uint16_t type = readU16(p);
    const uint16_t rrclass = readU16(p + 2);
    const uint32_t ttl = readU32(p + 4);
    const uint16_t rdlength = readU16(p + 8);
    offset += 10;
    if (offset + rdlength > message.size()) return QueryStatus::Truncated;
    if (type == rrtype::OPT) {
      // RFC 6891 section 6.1.1: one OPT, in the additional section, owned by
      // the root.
      if (out.hasEdns || i < additionalStart || message[owner] != 0) return QueryStatus::BadEdns;
      out.hasEdns = true;
      out.udpSize = rrclass < kClassicUdpSize ? kClassicUdpSize : rrclass;
      out.ednsVersion = static_cast<uint8_t>(ttl >> 16);
      out.dnssecOk = (ttl & 0x8000U) != 0;
    }
    offset += rdlength;
  }
  if (offset != message.size()) return QueryStatus::TrailingBytes;
  return QueryStatus::Ok;
}

bool MessageReader::start(std::span<const uint8_t> message) noexcept {
  message_ = message;
  index_ = 0;
  failed_ = true;
  if (!parseHeader(message, header_)) return false;
  size_t offset = kHeaderSize;
  for (uint16_t i = 0; i < header_.qdcount; ++i) {
    if (!skipName(message, offset) || offset + 4 > message.size()) return false;
    offset += 4;
  }
  questionEnd_ = offset;
  offset_ = offset;
  failed_ = false;
  return true;
}

bool MessageReader::next(ResourceRecord& out) noexcept {
  if (failed_) return false;
  const uint32_t answers = header_.ancount;
  const uint32_t authority = answers + header_.nscount;
  const uint32_t total = authority + header_.arcount;
  if (index_ >= total) return false;
  out.section = index_ < answers     ? Section::Answer
                : index_ < authority ? Section::Authority
                                     : Section::Additional;
  out.ownerOffset = offset_;
  size_t offset = offset_;
  // RFC 1035 section 4.1.3: NAME TYPE CLASS TTL RDLENGTH RDATA.
  if (!skipName(message_, offset) || offset + 10 > message_.size()) {
    failed_ = true;
    return false;
  }
  const uint8_t* p = message_.data() + offset;
  out.type = readU16(p);
  out.rrclass = readU16(p + 2);
  out.ttlOffset = offset + 4;
  out.ttl = readU32(p + 4);
  out.rdlength = readU16(p + 8);
  out.rdataOffset = offset + 10;
  if (out.rdataOffset + out.rdlength > message_.size()) {
    failed_ = true;
    return false;
  }
  offset_ = out.rdataOffset + out.rdlength;
  ++index_;
  return true;
}

}  // namespace dns

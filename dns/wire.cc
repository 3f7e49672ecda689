#include "dns/wire.h"

#include <cstring>

namespace dns {

bool parseHeader(std::span<const uint8_t> message, Header& out) noexcept {
  if (message.size() < kHeaderSize) return false;
  const uint8_t* p = message.data();
  out.id = readU16(p);
  out.flags = readU16(p + 2);
  out.qdcount = readU16(p + 4);
  out.ancount = readU16(p + 6);
  out.nscount = readU16(p + 8);
  out.arcount = readU16(p + 10);
  return true;
}

namespace {

// Appends one label to the text form, lower-casing it.
bool appendLabel(Name& out, const uint8_t* label, size_t length) noexcept {
  const size_t needed = (out.length == 0 ? 0 : 1) + length;
  if (out.length + needed > out.text.size()) return false;
  size_t at = out.length;
  if (at != 0) out.text[at++] = '.';
  for (size_t i = 0; i < length; ++i) {
    uint8_t c = label[i];
    if (c == '.' || c < 0x21 || c >= 0x7f) out.unusualBytes = true;
    if (c >= 'A' && c <= 'Z') c = static_cast<uint8_t>(c - 'A' + 'a');
    out.text[at++] = static_cast<char>(c);
  }
  out.length = static_cast<uint8_t>(at);
  ++out.labels;
  return true;
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

bool readName(std::span<const uint8_t> message, size_t& offset, Name& out, bool allowCompression) noexcept {
  out.length = 0;
  out.labels = 0;
  out.unusualBytes = false;
  size_t at = offset;
  size_t wireLength = 0;  // RFC 1035 section 3.1: at most 255 octets
  bool jumped = false;
  // Pointers must go strictly backwards (below the start of the name part
  // that holds them), so following them always terminates.
  size_t limit = offset;
  while (true) {
    if (at >= message.size()) return false;
    const uint8_t length = message[at];
    if ((length & 0xc0) == 0xc0) {
      // RFC 1035 section 4.1.4: compression pointer.
      if (!allowCompression || at + 1 >= message.size()) return false;
      const size_t target = static_cast<size_t>(((length & 0x3f) << 8) | message[at + 1]);
      if (target >= limit) return false;
      if (!jumped) offset = at + 2;
      jumped = true;
      limit = target;
      at = target;
      continue;
    }
    if ((length & 0xc0) != 0) return false;  // 0x40/0x80: extended label types (RFC 6891 section 5)
    wireLength += 1 + length;
    if (wireLength > kMaxWireNameLength) return false;
    if (length == 0) {
      if (!jumped) offset = at + 1;
      return true;
    }
    if (at + 1 + length > message.size()) return false;
    if (!appendLabel(out, message.data() + at + 1, length)) return false;
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
  if (!parseHeader(message, out.header)) return QueryStatus::TooShort;
  if (out.header.qr()) return QueryStatus::NotAQuery;
  if (out.header.qdcount != 1) return QueryStatus::BadQuestionCount;
  size_t offset = kHeaderSize;
  // RFC 1035 section 4.1.2: QNAME, QTYPE, QCLASS. A lone question has
  // nothing earlier to point at, so compression is refused outright.
  if (!readName(message, offset, out.qname, false)) return QueryStatus::BadName;
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

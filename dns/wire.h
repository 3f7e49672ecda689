// DNS wire format (RFC 1035 section 4) parsed by hand, bounds-checked over
// std::span before any byte is read. Queries from clients pass through
// parseQuery() before anything else touches them (this is what the fuzzer
// drives); answers from upstreams are walked with MessageReader.
//
// Names are produced as lower-case dotted text without the trailing dot
// ("" is the root). Labels holding bytes that cannot appear in a host name
// ('.', control characters, bytes >= 0x7f) are flagged, never matched
// against the policy.
//
// Thread-safety: pure functions over values. Nothing allocates.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace dns {

inline constexpr size_t kHeaderSize = 12;
inline constexpr size_t kMaxMessageSize = 65535;
inline constexpr size_t kMaxWireNameLength = 255;  // RFC 1035 section 2.3.4
inline constexpr size_t kMaxLabelLength = 63;
// Room for a name's text: the longest (253 bytes) rounded up to whole
// 16-byte blocks, which the parser lower-cases and checks at once.
inline constexpr size_t kNameTextCapacity = 256;
inline constexpr uint16_t kClassIn = 1;
inline constexpr uint16_t kClassicUdpSize = 512;  // RFC 1035 section 4.2.1

namespace rrtype {
inline constexpr uint16_t A = 1;
inline constexpr uint16_t NS = 2;
inline constexpr uint16_t CNAME = 5;
inline constexpr uint16_t SOA = 6;
inline constexpr uint16_t PTR = 12;
inline constexpr uint16_t MX = 15;
inline constexpr uint16_t AAAA = 28;
inline constexpr uint16_t DNAME = 39;
inline constexpr uint16_t OPT = 41;
inline constexpr uint16_t SVCB = 64;
inline constexpr uint16_t HTTPS = 65;
inline constexpr uint16_t IXFR = 251;
inline constexpr uint16_t AXFR = 252;
inline constexpr uint16_t ANY = 255;
}  // namespace rrtype

namespace rcode {
inline constexpr uint8_t NoError = 0;
inline constexpr uint8_t FormErr = 1;
inline constexpr uint8_t ServFail = 2;
inline constexpr uint8_t NxDomain = 3;
inline constexpr uint8_t NotImp = 4;
inline constexpr uint8_t Refused = 5;
}  // namespace rcode

inline constexpr uint8_t kOpcodeQuery = 0;

// RFC 1035 section 4.1.1 header flags (second 16-bit word).
namespace flag {
inline constexpr uint16_t QR = 0x8000;
inline constexpr uint16_t AA = 0x0400;
inline constexpr uint16_t TC = 0x0200;
inline constexpr uint16_t RD = 0x0100;
inline constexpr uint16_t RA = 0x0080;
inline constexpr uint16_t AD = 0x0020;
inline constexpr uint16_t CD = 0x0010;
}  // namespace flag

constexpr uint16_t readU16(const uint8_t* p) noexcept {
  return static_cast<uint16_t>((p[0] << 8) | p[1]);
}
constexpr uint32_t readU32(const uint8_t* p) noexcept {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}
constexpr void writeU16(uint8_t* p, uint16_t v) noexcept {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
constexpr void writeU32(uint8_t* p, uint32_t v) noexcept {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

struct Header {
  uint16_t id = 0;
  uint16_t flags = 0;
  uint16_t qdcount = 0;
  uint16_t ancount = 0;
  uint16_t nscount = 0;
  uint16_t arcount = 0;

  bool qr() const noexcept { return (flags & flag::QR) != 0; }
  bool tc() const noexcept { return (flags & flag::TC) != 0; }
  uint8_t opcode() const noexcept { return static_cast<uint8_t>((flags >> 11) & 0xf); }
  uint8_t rcode() const noexcept { return static_cast<uint8_t>(flags & 0xf); }
};

// False when fewer than 12 bytes.
inline bool parseHeader(std::span<const uint8_t> message, Header& out) noexcept {
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

// A domain name as lower-case dotted text (no trailing dot; root is empty).
struct Name {
  // Bytes past `length` are scratch (the parser works in 16-byte blocks).
  std::array<char, kNameTextCapacity> text{};
  uint8_t length = 0;
  uint8_t labels = 0;
  // A label holds '.', a control character or a byte >= 0x7f: the text is
  // ambiguous, so such a name never matches a rule.
  bool unusualBytes = false;

  std::string_view view() const noexcept { return {text.data(), length}; }
  friend bool operator==(const Name& a, const Name& b) noexcept { return a.view() == b.view(); }
};

// Reads the name at `offset` (RFC 1035 section 4.1.4: compression pointers
// are followed only backwards, so no loop is possible), advancing `offset`
// past the name as it sits in the message. `allowCompression` false refuses
// pointers (client questions never need them).
bool readName(std::span<const uint8_t> message, size_t& offset, Name& out,
              bool allowCompression = true) noexcept;

// Advances `offset` past a name without decoding it.
bool skipName(std::span<const uint8_t> message, size_t& offset) noexcept;

enum class QueryStatus : uint8_t {
  Ok,
  TooShort,          // under 12 bytes: not even a header to answer
  NotAQuery,         // QR set: a response, never answered (no loops)
  BadQuestionCount,  // QDCOUNT != 1
  BadName,           // malformed, compressed or over-long question name
  Truncated,         // a section ends early
  BadEdns,           // several OPT RRs or an OPT not owned by the root
  TrailingBytes,     // bytes after the last record
};

std::string_view queryStatusName(QueryStatus status) noexcept;

struct Query {
  Header header;
  Name qname;
  uint16_t qtype = 0;
  uint16_t qclass = 0;
  size_t questionEnd = 0;  // offset just after QTYPE/QCLASS
  // RFC 6891 section 6.1: EDNS present, its payload size (at least 512),
  // DO bit and version.
  bool hasEdns = false;
  bool dnssecOk = false;
  uint8_t ednsVersion = 0;
  uint16_t udpSize = kClassicUdpSize;

  // Largest response the client accepts over UDP (RFC 6891 section 6.2.5).
  size_t maxUdpResponse() const noexcept {
    return hasEdns && udpSize > kClassicUdpSize ? udpSize : kClassicUdpSize;
  }
};

// Parses a client query. On anything but TooShort/NotAQuery, `out.header`
// is valid (so a FORMERR can be answered); on Ok everything is.
QueryStatus parseQuery(std::span<const uint8_t> message, Query& out) noexcept;

// The question name with the letters' case as the client sent them (0x20
// randomisation, RFC draft-vixie-dnsext-dns0x20), for events and logs;
// matching always uses the lower-case `query.qname`. Written into `out`
// (at least kMaxWireNameLength bytes); `query` must come from parseQuery
// (Ok) over `message`, whose question is uncompressed at offset 12.
std::string_view askedName(std::span<const uint8_t> message, const Query& query,
                           std::span<char> out) noexcept;

enum class Section : uint8_t { Answer, Authority, Additional };

struct ResourceRecord {
  Section section = Section::Answer;
  size_t ownerOffset = 0;
  uint16_t type = 0;
  uint16_t rrclass = 0;
  uint32_t ttl = 0;
  size_t ttlOffset = 0;
  size_t rdataOffset = 0;
  uint16_t rdlength = 0;
};

// Walks the resource records after the question section of a message.
class MessageReader {
 public:
  // False when the header or question section is malformed.
  bool start(std::span<const uint8_t> message) noexcept;
  // Next record; false at the end or on a malformed record (see failed()).
  bool next(ResourceRecord& out) noexcept;
  bool failed() const noexcept { return failed_; }
  const Header& header() const noexcept { return header_; }
  size_t questionOffset() const noexcept { return kHeaderSize; }
  size_t questionEnd() const noexcept { return questionEnd_; }
  size_t offset() const noexcept { return offset_; }

 private:
  std::span<const uint8_t> message_;
  Header header_;
  size_t offset_ = 0;
  size_t questionEnd_ = 0;
  uint32_t index_ = 0;
  bool failed_ = false;
};

}  // namespace dns

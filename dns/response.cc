#include "dns/response.h"

#include <cstring>

namespace dns {

namespace {

// Response flags from the query's: QR, RA; opcode, RD and CD echoed
// (RFC 1035 section 4.1.1, RFC 4035 section 3.1.6); AA, TC, AD cleared.
uint16_t responseFlags(uint16_t queryFlags, uint8_t rcode) noexcept {
  const uint16_t kept = static_cast<uint16_t>(queryFlags & (0x7800 | flag::RD | flag::CD));
  return static_cast<uint16_t>(kept | flag::QR | flag::RA | (rcode & 0xf));
}

// OPT pseudo-RR (RFC 6891 section 6.1.2) with an optional EDE option
// (RFC 8914 section 2). Returns bytes written or 0.
size_t writeOpt(uint8_t* p, size_t room, uint16_t rcode, bool dnssecOk, const ExtendedError* ede) noexcept {
  const size_t text = ede != nullptr ? ede->text.size() : 0;
  const size_t optionLength = ede != nullptr ? 4 + 2 + text : 0;
  const size_t total = 11 + optionLength;
  if (total > room || optionLength > 0xffff) return 0;
  p[0] = 0;  // root owner
  writeU16(p + 1, rrtype::OPT);
  writeU16(p + 3, kOurUdpSize);
  p[5] = static_cast<uint8_t>(rcode >> 4);  // extended rcode, upper 8 bits
  p[6] = 0;                                 // version
  writeU16(p + 7, dnssecOk ? 0x8000 : 0);
  writeU16(p + 9, static_cast<uint16_t>(optionLength));
  if (ede != nullptr) {
    writeU16(p + 11, kEdeOptionCode);
    writeU16(p + 13, static_cast<uint16_t>(2 + text));
    writeU16(p + 15, ede->infoCode);
    if (text != 0) std::memcpy(p + 17, ede->text.data(), text);
  }
  return total;
}

}  // namespace

size_t buildResponse(std::span<const uint8_t> queryWire, const Query& query, uint16_t rcode,
                     const ExtendedError* ede, std::span<uint8_t> out) noexcept {
  const size_t question = query.questionEnd;
  if (question < kHeaderSize || question > queryWire.size() || question > out.size()) return 0;
  std::memcpy(out.data(), queryWire.data(), question);
  writeU16(out.data() + 2, responseFlags(query.header.flags, static_cast<uint8_t>(rcode & 0xf)));
  writeU16(out.data() + 4, 1);
  writeU16(out.data() + 6, 0);
  writeU16(out.data() + 8, 0);
  writeU16(out.data() + 10, 0);
  size_t length = question;
  if (query.hasEdns) {
    const size_t opt = writeOpt(out.data() + length, out.size() - length, rcode, query.dnssecOk, ede);
    if (opt == 0) return 0;
    length += opt;
    writeU16(out.data() + 10, 1);
  }
  return length;
}

size_t buildHeaderOnlyResponse(std::span<const uint8_t> queryWire, uint8_t rcode,
                               std::span<uint8_t> out) noexcept {
  if (queryWire.size() < kHeaderSize || out.size() < kHeaderSize) return 0;
  std::memset(out.data(), 0, kHeaderSize);
  std::memcpy(out.data(), queryWire.data(), 2);
  writeU16(out.data() + 2, responseFlags(readU16(queryWire.data() + 2), rcode));
  return kHeaderSize;
}

size_t buildTruncatedResponse(std::span<const uint8_t> queryWire, const Query& query, uint16_t answerFlags,
                              std::span<uint8_t> out) noexcept {
  const size_t length = buildResponse(queryWire, query, answerFlags & 0xf, nullptr, out);
  if (length == 0) return 0;
  const uint16_t flags =
      static_cast<uint16_t>(readU16(out.data() + 2) | flag::TC | (answerFlags & (flag::AA | flag::AD)));
  writeU16(out.data() + 2, flags);
  return length;
}

}  // namespace dns

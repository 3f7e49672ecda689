#include "dns/answer.h"

#include <algorithm>
#include <cstring>

namespace dns {

std::string_view answerStatusName(AnswerStatus status) noexcept {
  switch (status) {
    case AnswerStatus::Ok:
      return "ok";
    case AnswerStatus::Malformed:
      return "malformed";
    case AnswerStatus::NotAResponse:
      return "not_a_response";
    case AnswerStatus::IdMismatch:
      return "id_mismatch";
    case AnswerStatus::QuestionMismatch:
      return "question_mismatch";
  }
  return "unknown";
}

namespace {

// True when the SVCB/HTTPS rdata (RFC 9460 section 2.2: SvcPriority,
// TargetName, SvcParams) carries the ech key. Malformed rdata: false.
bool svcbHasEch(std::span<const uint8_t> message, const ResourceRecord& rr) noexcept {
  const size_t end = rr.rdataOffset + rr.rdlength;
  size_t offset = rr.rdataOffset + 2;
  if (offset > end || !skipName(message, offset) || offset > end) return false;
  while (offset + 4 <= end) {
    const uint16_t key = readU16(message.data() + offset);
    const uint16_t length = readU16(message.data() + offset + 2);
    if (key == kSvcParamEch) return true;
    offset += 4 + size_t{length};
  }
  return false;
}

// SOA rdata (RFC 1035 section 3.3.13): MNAME RNAME SERIAL REFRESH RETRY
// EXPIRE MINIMUM. Returns MINIMUM, or nullopt-ish false when malformed.
bool soaMinimum(std::span<const uint8_t> message, const ResourceRecord& rr, uint32_t& minimum) noexcept {
  const size_t end = rr.rdataOffset + rr.rdlength;
  size_t offset = rr.rdataOffset;
  if (!skipName(message, offset) || !skipName(message, offset) || offset + 20 != end) return false;
  minimum = readU32(message.data() + offset + 16);
  return true;
}

}  // namespace

AnswerStatus analyzeAnswer(std::span<const uint8_t> answer, const Query& query, uint16_t expectedId,
                           AnswerInfo& out) noexcept {
  out.addressCount = 0;
  out.addressOverflow = false;
  out.chainLength = 1;
  out.chainTooLong = false;
  out.cacheTtl = 0;
  out.hasEch = false;

  MessageReader reader;
  if (!reader.start(answer)) return AnswerStatus::Malformed;
  const Header& header = reader.header();
  if (!header.qr()) return AnswerStatus::NotAResponse;
  if (header.id != expectedId) return AnswerStatus::IdMismatch;
  out.rcode = header.rcode();
  out.truncated = header.tc();
  // RFC 5452 section 9.1: the question must be ours.
  if (header.qdcount != 1) return AnswerStatus::QuestionMismatch;
  {
    size_t offset = kHeaderSize;
    Name name;
    if (!readName(answer, offset, name) || offset + 4 > answer.size()) return AnswerStatus::Malformed;
    if (!(name == query.qname) || readU16(answer.data() + offset) != query.qtype ||
        readU16(answer.data() + offset + 2) != query.qclass) {
      return AnswerStatus::QuestionMismatch;
    }
  }

  // Walk once to check every record is well formed, and collect TTLs.
  ResourceRecord rr;
  Name owner;
  uint32_t minAnswerTtl = UINT32_MAX;
  uint32_t negativeTtl = 0;
  bool haveSoa = false;
  while (reader.next(rr)) {
    if (rr.section == Section::Answer && rr.type != rrtype::OPT) {
      minAnswerTtl = std::min(minAnswerTtl, rr.ttl);
      if ((rr.type == rrtype::HTTPS || rr.type == rrtype::SVCB) && svcbHasEch(answer, rr)) out.hasEch = true;
    }
    if (rr.section == Section::Authority && rr.type == rrtype::SOA && !haveSoa) {
      uint32_t minimum = 0;
      if (soaMinimum(answer, rr, minimum)) {
        haveSoa = true;
        negativeTtl = std::min(rr.ttl, minimum);
      }
    }
  }
  if (reader.failed()) return AnswerStatus::Malformed;

  // The CNAME chain from the asked name (RFC 1034 section 3.6.2). Usually
  // in order, so one pass builds it and a second confirms it is complete.
  std::array<Name, kMaxChainLength> chain;
  std::array<uint32_t, kMaxChainLength> chainTtl{};
  chain[0] = query.qname;
  chainTtl[0] = UINT32_MAX;
  size_t chainLength = 1;
  for (bool grew = true; grew && !out.chainTooLong;) {
    grew = false;
    reader.start(answer);
    while (reader.next(rr) && rr.section == Section::Answer) {
      if (rr.type != rrtype::CNAME || rr.rrclass != kClassIn) continue;
      size_t offset = rr.ownerOffset;
      if (!readName(answer, offset, owner) || !(owner == chain[chainLength - 1])) continue;
      Name target;
      offset = rr.rdataOffset;
      if (!readName(answer, offset, target) || offset != rr.rdataOffset + rr.rdlength)
        return AnswerStatus::Malformed;
      bool loop = false;
      for (size_t i = 0; i < chainLength; ++i) loop = loop || chain[i] == target;
      if (loop) continue;
      if (chainLength == kMaxChainLength) {
        out.chainTooLong = true;
        break;
      }
      chain[chainLength] = target;
      chainTtl[chainLength] = std::min(chainTtl[chainLength - 1], rr.ttl);
      ++chainLength;
      grew = true;
    }
  }
  out.chainLength = chainLength;

  // Every A/AAAA of the answer section: all count for the rebinding check,
  // the ones on the chain become bindings.
  reader.start(answer);
  while (reader.next(rr) && rr.section == Section::Answer) {
    if (rr.rrclass != kClassIn) continue;
    const bool v4 = rr.type == rrtype::A && rr.rdlength == 4;
    const bool v6 = rr.type == rrtype::AAAA && rr.rdlength == 16;
    if (!v4 && !v6) continue;
    if (out.addressCount == kMaxAnswerAddresses) {
      out.addressOverflow = true;
      break;
    }
    AnswerAddress& address = out.addresses[out.addressCount++];
    const uint8_t* data = answer.data() + rr.rdataOffset;
    address.ip = v4 ? common::IpAddress::v4Bytes(data) : common::IpAddress::v6Bytes(data);
    address.ttl = rr.ttl;
    address.inChain = false;
    size_t offset = rr.ownerOffset;
    if (!readName(answer, offset, owner)) return AnswerStatus::Malformed;
    for (size_t i = 0; i < chainLength; ++i) {
      if (owner == chain[i]) {
        address.inChain = true;
        address.ttl = std::min(rr.ttl, chainTtl[i]);
        break;
      }
    }
  }

  if (!out.truncated) {
    if (out.rcode == rcode::NoError && header.ancount > 0 && minAnswerTtl != UINT32_MAX) {
      out.cacheTtl = minAnswerTtl;
    } else if ((out.rcode == rcode::NxDomain || (out.rcode == rcode::NoError && header.ancount == 0)) &&
               haveSoa) {
      out.cacheTtl = negativeTtl;
    }
    out.cacheTtl = std::min(out.cacheTtl, kMaxCacheTtl);
  }
  return AnswerStatus::Ok;
}

const AnswerAddress* findRebinding(const AnswerInfo& info, const policy::Policy& policy) noexcept {
  for (const AnswerAddress& address : info.addressList()) {
    // The same list as world access (policy/internal_ranges.h), with the
    // operator's rules.internal_cidrs / public_cidrs; embedding forms
    // (IPv4-mapped, NAT64, 6to4) are classified by the IPv4 inside.
    if (policy.isInternal(address.ip) && !policy.addressAllowedOnAnyPort(address.ip)) return &address;
  }
  return nullptr;
}

namespace {

struct Writer {
  std::span<uint8_t> out;
  size_t pos = 0;
  bool ok = true;

  void bytes(const uint8_t* data, size_t length) noexcept {
    if (!ok || pos + length > out.size()) {
      ok = false;
      return;
    }
    if (length != 0) std::memcpy(out.data() + pos, data, length);
    pos += length;
  }
  void u16(uint16_t value) noexcept {
    uint8_t buffer[2];
    writeU16(buffer, value);
    bytes(buffer, 2);
  }
};

// Copies the name at `offset` uncompressed, label bytes as they are.
bool copyName(std::span<const uint8_t> in, size_t& offset, Writer& w) noexcept {
  size_t at = offset;
  size_t limit = offset;
  size_t wireLength = 0;
  bool jumped = false;
  while (true) {
    if (at >= in.size()) return false;
    const uint8_t length = in[at];
    if ((length & 0xc0) == 0xc0) {
      if (at + 1 >= in.size()) return false;
      const size_t target = static_cast<size_t>(((length & 0x3f) << 8) | in[at + 1]);
      if (target >= limit) return false;
      if (!jumped) offset = at + 2;
      jumped = true;
      limit = target;
      at = target;
      continue;
    }
    if ((length & 0xc0) != 0) return false;
    wireLength += 1 + length;
    if (wireLength > kMaxWireNameLength || at + 1 + length > in.size()) return false;
    w.bytes(in.data() + at, 1 + size_t{length});
    if (length == 0) {
      if (!jumped) offset = at + 1;
      return w.ok;
    }
    at += 1 + length;
  }
}

// Rewrites one rdata; `offset` starts at the rdata, must end at `end`.
bool copyRdata(std::span<const uint8_t> in, uint16_t type, size_t offset, size_t end, Writer& w) noexcept {
  auto fixed = [&](size_t n) {
    if (offset + n > end) return false;
    w.bytes(in.data() + offset, n);
    offset += n;
    return w.ok;
  };
  auto name = [&] { return copyName(in, offset, w) && offset <= end; };
  auto twoNames = [&] {
    const bool first = name();
    return first && name();
  };
  switch (type) {
    // RFC 1035 section 3.3 types whose rdata are names (compressible).
    case rrtype::CNAME:
    case rrtype::NS:
    case rrtype::PTR:
    case rrtype::DNAME:
    case 7:  // MB
    case 8:  // MG
    case 9:  // MR
      if (!name()) return false;
      break;
    case rrtype::MX:
    case 18:  // AFSDB
    case 21:  // RT
      if (!fixed(2) || !name()) return false;
      break;
    case 33:  // SRV (RFC 2782 forbids compression; some servers use it anyway)
      if (!fixed(6) || !name()) return false;
      break;
    case rrtype::SOA:
      if (!twoNames() || !fixed(20)) return false;
      break;
    case 14:  // MINFO
    case 17:  // RP
      if (!twoNames()) return false;
      break;
    case 26:  // PX
      if (!fixed(2) || !twoNames()) return false;
      break;
    case rrtype::SVCB:
    case rrtype::HTTPS:
      // RFC 9460 section 2.2: SvcPriority, TargetName, then key/value pairs.
      if (!fixed(2) || !name()) return false;
      while (offset < end) {
        if (offset + 4 > end) return false;
        const uint16_t key = readU16(in.data() + offset);
        const size_t length = readU16(in.data() + offset + 2);
        if (offset + 4 + length > end) return false;
        if (key != kSvcParamEch) w.bytes(in.data() + offset, 4 + length);
        offset += 4 + length;
      }
      break;
    default:
      return fixed(end - offset) && offset == end;
  }
  return offset == end && w.ok;
}

}  // namespace

size_t stripEch(std::span<const uint8_t> in, std::span<uint8_t> out) noexcept {
  MessageReader reader;
  if (!reader.start(in)) return 0;
  Writer w{out};
  w.bytes(in.data(), kHeaderSize);
  size_t offset = kHeaderSize;
  for (uint16_t i = 0; i < reader.header().qdcount; ++i) {
    if (!copyName(in, offset, w)) return 0;
    if (offset + 4 > in.size()) return 0;
    w.bytes(in.data() + offset, 4);
    offset += 4;
  }
  ResourceRecord rr;
  bool removed = false;
  while (reader.next(rr)) {
    size_t owner = rr.ownerOffset;
    if (!copyName(in, owner, w)) return 0;
    w.bytes(in.data() + owner, 8);  // type, class, ttl
    const size_t lengthAt = w.pos;
    w.u16(0);
    const size_t rdataStart = w.pos;
    if (!copyRdata(in, rr.type, rr.rdataOffset, rr.rdataOffset + rr.rdlength, w)) return 0;
    const size_t rdlength = w.pos - rdataStart;
    if (rdlength > 0xffff) return 0;
    writeU16(out.data() + lengthAt, static_cast<uint16_t>(rdlength));
    if (rr.type == rrtype::HTTPS || rr.type == rrtype::SVCB) removed = removed || svcbHasEch(in, rr);
  }
  if (reader.failed() || !w.ok || !removed) return 0;
  return w.pos;
}

}  // namespace dns

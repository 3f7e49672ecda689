// Helpers for the DNS unit tests: a byte-level message writer (so tests can
// build exactly the malformed, compressed or odd messages they need) and
// policies compiled from target strings.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "dns/wire.h"
#include "policy/policy.h"

namespace dnstest {

struct Msg {
  std::vector<uint8_t> bytes;

  Msg& u8(uint8_t v) {
    bytes.push_back(v);
    return *this;
  }
  Msg& u16(uint16_t v) {
    bytes.push_back(static_cast<uint8_t>(v >> 8));
    bytes.push_back(static_cast<uint8_t>(v));
    return *this;
  }
  Msg& u32(uint32_t v) {
    u16(static_cast<uint16_t>(v >> 16));
    return u16(static_cast<uint16_t>(v));
  }
  Msg& raw(std::initializer_list<uint8_t> data) {
    bytes.insert(bytes.end(), data.begin(), data.end());
    return *this;
  }
  Msg& header(uint16_t id, uint16_t flags, uint16_t qd, uint16_t an, uint16_t ns, uint16_t ar) {
    return u16(id).u16(flags).u16(qd).u16(an).u16(ns).u16(ar);
  }
  // Uncompressed name from dotted text ("" or "." is the root).
  Msg& name(std::string_view dotted) {
    size_t start = 0;
    while (start < dotted.size()) {
      size_t dot = dotted.find('.', start);
      if (dot == std::string_view::npos) dot = dotted.size();
      const auto label = dotted.substr(start, dot - start);
      bytes.push_back(static_cast<uint8_t>(label.size()));
      bytes.insert(bytes.end(), label.begin(), label.end());
      start = dot + 1;
    }
    return u8(0);
  }
  // Labels then a compression pointer to `offset`.
  Msg& nameThenPointer(std::string_view labels, uint16_t offset) {
    if (!labels.empty()) {
      name(labels);
      bytes.pop_back();  // drop the root label
    }
    return u16(static_cast<uint16_t>(0xc000 | offset));
  }
  Msg& question(std::string_view qname, uint16_t qtype, uint16_t qclass = dns::kClassIn) {
    return name(qname).u16(qtype).u16(qclass);
  }
  // OPT pseudo-RR (RFC 6891) with payload size and DO bit, no options.
  Msg& opt(uint16_t udpSize = 1232, bool dnssecOk = false, uint8_t version = 0) {
    return u8(0).u16(dns::rrtype::OPT).u16(udpSize).u8(0).u8(version).u16(dnssecOk ? 0x8000 : 0).u16(0);
  }
  // Record header for an rdata of `rdlength` bytes that follows.
  Msg& rr(std::string_view owner, uint16_t type, uint32_t ttl, uint16_t rdlength) {
    return name(owner).u16(type).u16(dns::kClassIn).u32(ttl).u16(rdlength);
  }
  Msg& rrPointer(uint16_t ownerOffset, uint16_t type, uint32_t ttl, uint16_t rdlength) {
    return u16(static_cast<uint16_t>(0xc000 | ownerOffset))
        .u16(type)
        .u16(dns::kClassIn)
        .u32(ttl)
        .u16(rdlength);
  }
  Msg& a(std::string_view owner, uint32_t ttl, std::initializer_list<uint8_t> ip) {
    rr(owner, dns::rrtype::A, ttl, 4);
    return raw(ip);
  }
  Msg& cname(std::string_view owner, uint32_t ttl, std::string_view target) {
    Msg tmp;
    tmp.name(target);
    rr(owner, dns::rrtype::CNAME, ttl, static_cast<uint16_t>(tmp.bytes.size()));
    bytes.insert(bytes.end(), tmp.bytes.begin(), tmp.bytes.end());
    return *this;
  }
  Msg& soa(std::string_view owner, uint32_t ttl, uint32_t minimum) {
    Msg tmp;
    tmp.name("ns." + std::string(owner))
        .name("admin." + std::string(owner))
        .u32(1)
        .u32(3600)
        .u32(600)
        .u32(86400)
        .u32(minimum);
    rr(owner, dns::rrtype::SOA, ttl, static_cast<uint16_t>(tmp.bytes.size()));
    bytes.insert(bytes.end(), tmp.bytes.begin(), tmp.bytes.end());
    return *this;
  }
  size_t size() const { return bytes.size(); }
  void setU16(size_t offset, uint16_t v) {
    bytes[offset] = static_cast<uint8_t>(v >> 8);
    bytes[offset + 1] = static_cast<uint8_t>(v);
  }
};

// A standard query (RD set) for name/type, with EDNS when `edns`.
inline Msg query(std::string_view qname, uint16_t qtype, bool edns = true, uint16_t id = 0x1234) {
  Msg m;
  m.header(id, dns::flag::RD, 1, 0, 0, edns ? 1 : 0).question(qname, qtype);
  if (edns) m.opt();
  return m;
}

inline dns::Query parsed(const Msg& m) {
  dns::Query q;
  const auto status = dns::parseQuery(m.bytes, q);
  if (status != dns::QueryStatus::Ok) throw std::runtime_error("test query does not parse");
  return q;
}

std::shared_ptr<const policy::Policy> makePolicy(const std::vector<std::string>& targets);

}  // namespace dnstest

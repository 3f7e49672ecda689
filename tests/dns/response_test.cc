// Responses built by patching bytes; cross-checked by parsing them with ldns.
#include <catch2/catch.hpp>

#include <string>

#include "common/c_handle.h"
#include "dns/response.h"
#include "dns_test_util.h"

// ldns last: its headers define macros that upset <optional>.
#include <ldns/ldns.h>

namespace {

using LdnsPacket = common::CHandle<ldns_pkt, ldns_pkt_free>;

LdnsPacket parseWithLdns(const uint8_t* data, size_t length) {
  ldns_pkt* packet = nullptr;
  REQUIRE(ldns_wire2pkt(&packet, data, length) == LDNS_STATUS_OK);
  return LdnsPacket(packet);
}

}  // namespace

TEST_CASE("deny response: rcode, echoed question and ID, OPT with EDE 15 and text", "[dns][response]") {
  auto m = dnstest::query("Evil.Example.com", dns::rrtype::A, true, 0x4242);
  const auto q = dnstest::parsed(m);
  std::vector<uint8_t> out(512);
  const dns::ExtendedError ede{dns::kEdeBlocked, "egressd: name not allowed by policy"};
  const size_t length = dns::buildResponse(m.bytes, q, dns::rcode::NxDomain, &ede, out);
  REQUIRE(length > 0);

  auto packet = parseWithLdns(out.data(), length);
  CHECK(ldns_pkt_id(packet.get()) == 0x4242);
  CHECK(ldns_pkt_qr(packet.get()));
  CHECK(ldns_pkt_rd(packet.get()));
  CHECK(ldns_pkt_ra(packet.get()));
  CHECK_FALSE(ldns_pkt_aa(packet.get()));
  CHECK(ldns_pkt_get_rcode(packet.get()) == LDNS_RCODE_NXDOMAIN);
  CHECK(ldns_pkt_qdcount(packet.get()) == 1);
  CHECK(ldns_pkt_ancount(packet.get()) == 0);
  REQUIRE(ldns_pkt_edns(packet.get()));
  ldns_edns_option_list* options = ldns_pkt_edns_get_option_list(packet.get());
  REQUIRE(options != nullptr);
  REQUIRE(ldns_edns_option_list_get_count(options) == 1);
  ldns_edns_option* option = ldns_edns_option_list_get_option(options, 0);
  CHECK(ldns_edns_get_code(option) == 15);
  const uint8_t* data = ldns_edns_get_data(option);
  REQUIRE(ldns_edns_get_size(option) == 2 + ede.text.size());
  CHECK(dns::readU16(data) == 15);
  CHECK(std::string(reinterpret_cast<const char*>(data + 2), ede.text.size()) == ede.text);
  // The question keeps the client's spelling (0x20).
  CHECK(std::string(reinterpret_cast<const char*>(out.data() + 13), 4) == "Evil");
}

TEST_CASE("no OPT (and so no EDE) when the client did not send EDNS", "[dns][response]") {
  auto m = dnstest::query("evil.example.com", dns::rrtype::A, false);
  const auto q = dnstest::parsed(m);
  std::vector<uint8_t> out(512);
  const dns::ExtendedError ede{dns::kEdeBlocked, "x"};
  const size_t length = dns::buildResponse(m.bytes, q, dns::rcode::Refused, &ede, out);
  REQUIRE(length == m.size());
  auto packet = parseWithLdns(out.data(), length);
  CHECK(ldns_pkt_get_rcode(packet.get()) == LDNS_RCODE_REFUSED);
  CHECK(ldns_pkt_arcount(packet.get()) == 0);
  CHECK_FALSE(ldns_pkt_edns(packet.get()));
}

TEST_CASE("extended rcodes go into the OPT record (BADVERS)", "[dns][response]") {
  dnstest::Msg m;
  m.header(7, 0, 1, 0, 0, 1).question("a.example", 1).opt(1232, false, 1);
  dns::Query q;
  REQUIRE(dns::parseQuery(m.bytes, q) == dns::QueryStatus::Ok);
  std::vector<uint8_t> out(512);
  const size_t length = dns::buildResponse(m.bytes, q, 16, nullptr, out);
  REQUIRE(length > 0);
  CHECK((dns::readU16(out.data() + 2) & 0xf) == 0);
  // OPT TTL field: extended rcode byte = 1 (16 >> 4).
  CHECK(out[length - 6] == 1);
}

TEST_CASE("too small an output buffer yields 0, never an overflow", "[dns][response]") {
  auto m = dnstest::query("a.example", 1);
  const auto q = dnstest::parsed(m);
  std::vector<uint8_t> out(q.questionEnd + 5);
  const dns::ExtendedError ede{dns::kEdeBlocked, "text"};
  CHECK(dns::buildResponse(m.bytes, q, 3, &ede, out) == 0);
  std::vector<uint8_t> tiny(4);
  CHECK(dns::buildHeaderOnlyResponse(m.bytes, 1, tiny) == 0);
}

TEST_CASE("header-only FORMERR and truncated responses", "[dns][response]") {
  dnstest::Msg m;
  m.header(0x9999, dns::flag::RD, 0, 0, 0, 0);
  std::vector<uint8_t> out(64);
  REQUIRE(dns::buildHeaderOnlyResponse(m.bytes, dns::rcode::FormErr, out) == 12);
  CHECK(dns::readU16(out.data()) == 0x9999);
  CHECK((dns::readU16(out.data() + 2) & 0x800f) == (0x8000 | dns::rcode::FormErr));
  CHECK(dns::readU16(out.data() + 4) == 0);

  auto q = dnstest::query("big.example", 1);
  const auto parsed = dnstest::parsed(q);
  const size_t length =
      dns::buildTruncatedResponse(q.bytes, parsed, dns::flag::QR | dns::flag::AA | dns::rcode::NoError, out);
  REQUIRE(length > 0);
  const uint16_t flags = dns::readU16(out.data() + 2);
  CHECK((flags & dns::flag::TC) != 0);
  CHECK((flags & dns::flag::AA) != 0);
  CHECK(dns::readU16(out.data() + 6) == 0);
}

// decide() on QUIC Initials (UDP 443), with the sni/ QUIC parser: the RFC
// 9001 Appendix A.2 client Initial (SNI "example.com"), one datagram.
#include <catch2/catch.hpp>

#include <array>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "nfq/verdict.h"
#include "policy/policy.h"
#include "sni/quic.h"
#include "tests/nfq/packet_builder.h"
#include "tests/support/test_internet.h"

using namespace nfqtest;
using nfq::Reason;
using nfq::Verdict;

namespace {

Bytes fixture(const char* name) {
  std::ifstream in(std::string(EGRESSD_SOURCE_DIR) + "/tests/nfq/fixtures/" + name, std::ios::binary);
  REQUIRE(in);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::shared_ptr<const policy::Policy> compile(const std::vector<std::string>& targets) {
  policy::RuleSet set;
  set.ns = "team";
  set.name = "quic";
  for (const auto& target : targets) {
    auto parsed = policy::parseTarget(target, policy::defaultPublicSuffixList());
    REQUIRE(parsed.target);
    set.targets.push_back(*parsed.target);
    set.targetTexts.push_back(target);
  }
  return policy::Policy::compile({set}, testsupport::testInternetIsPublic());  // 192.0.2.x: the internet
}

class OneBinding final : public nfq::BindingLookup {
 public:
  bool isBound(std::string_view name, const common::IpAddress& ip, nfq::TimePoint) const noexcept override {
    return name == "example.com" && ip == *common::parseIpAddress("192.0.2.50");
  }
  void forEachBoundName(const common::IpAddress& ip, nfq::TimePoint,
                        Visitor& visitor) const noexcept override {
    if (ip == *common::parseIpAddress("192.0.2.50")) visitor.visit("example.com");
  }
};

nfq::Decision decideQuic(const policy::Policy& policy, const char* dst, const Bytes& datagram,
                         nfq::DecideOptions options = {}) {
  static sni::QuicInitialParser parser;
  std::vector<uint8_t> crypto(4096);
  sni::QuicCryptoReassembly reassembly(crypto);
  std::vector<uint8_t> scratch(16384 + 4);
  const Bytes packet = ipv4("10.1.0.5", dst, nfq::kProtoUdp, udp(50000, 443, datagram));
  const auto decoded = nfq::decodePacket(packet);
  REQUIRE(decoded.ok());
  nfq::FlowState flow;
  flow.scratch = scratch;
  flow.quic = {&parser, &reassembly};
  OneBinding bindings;
  return nfq::decide(flow, decoded.view, policy, bindings, options, nfq::TimePoint{});
}

}  // namespace

TEST_CASE("QUIC Initial: the SNI decides UDP 443", "[nfq][verdict][quic]") {
  const Bytes initial = fixture("rfc9001_client_initial.bin");
  const auto allowed = compile({"example.com:443"});

  auto d = decideQuic(*allowed, "192.0.2.50", initial);
  CHECK(d.verdict == Verdict::Allow);
  CHECK(d.reason == Reason::QuicAllowed);
  CHECK(d.name() == "example.com");
  CHECK(d.nameSource == nfq::NameSource::Quic);

  d = decideQuic(*allowed, "192.0.2.99", initial);
  CHECK(d.reason == Reason::QuicNotBound);
  CHECK(d.verdict == Verdict::Deny);

  nfq::DecideOptions lax;
  lax.strictBinding = false;
  CHECK(decideQuic(*allowed, "192.0.2.99", initial, lax).reason == Reason::QuicAllowed);

  const auto other = compile({"api.example.com:443"});
  d = decideQuic(*other, "192.0.2.50", initial);
  CHECK(d.reason == Reason::QuicNotAllowed);
  CHECK(d.name() == "example.com");

  const auto world = compile({"*:443"});
  CHECK(decideQuic(*world, "192.0.2.99", initial).reason == Reason::QuicAllowed);

  const auto network = compile({"203.0.113.0/24:443"});
  d = decideQuic(*network, "203.0.113.7", initial);
  CHECK(d.reason == Reason::AddressRule);
  CHECK(d.name() == "example.com");
}

TEST_CASE("QUIC: a corrupted Initial is denied, a short header is not QUIC", "[nfq][verdict][quic]") {
  const auto allowed = compile({"example.com:443"});
  Bytes corrupt = fixture("rfc9001_client_initial.bin");
  corrupt[corrupt.size() - 20] ^= 0xff;  // breaks the AEAD tag check
  const auto d = decideQuic(*allowed, "192.0.2.50", corrupt);
  CHECK(d.verdict == Verdict::Deny);
  CHECK(d.reason == Reason::MalformedHello);
  CHECK_FALSE(d.detail.empty());

  Bytes shortHeader(1200, 0x41);
  CHECK(decideQuic(*allowed, "192.0.2.50", shortHeader).reason == Reason::UdpNotAllowed);
}

// IpAddress::toString (common/ip_address.h): IPv4 is formatted by hand
// (verdict lines carry two addresses each), and must read exactly as
// inet_ntop writes it; IPv6 is inet_ntop's.
#include "common/ip_address.h"

#include <arpa/inet.h>

#include <catch2/catch.hpp>
#include <random>
#include <string>

namespace {

std::string ntop(const common::IpAddress& ip) {
  char buffer[INET6_ADDRSTRLEN] = {};
  inet_ntop(ip.family == common::IpFamily::V4 ? AF_INET : AF_INET6, ip.bytes.data(), buffer, sizeof buffer);
  return buffer;
}

}  // namespace

TEST_CASE("IpAddress::toString reads as inet_ntop writes, IPv4 and IPv6") {
  for (const char* text :
       {"0.0.0.0", "255.255.255.255", "10.0.100.9", "192.0.2.1", "1.20.255.0", "100.64.0.10", "::", "::1",
        "2001:db8::10", "fd00:1:2:3:4:5:6:7", "::ffff:192.0.2.1"}) {
    CAPTURE(text);
    const auto ip = common::parseIpAddress(text);
    REQUIRE(ip);
    CHECK(ip->toString() == text);
    CHECK(ip->toString() == ntop(*ip));
  }
  std::mt19937 random(17);
  for (int i = 0; i < 10000; ++i) {
    const auto value = static_cast<uint32_t>(random());
    const common::IpAddress ip = common::IpAddress::v4(value);
    CAPTURE(value);
    CHECK(ip.toString() == ntop(ip));
  }
}

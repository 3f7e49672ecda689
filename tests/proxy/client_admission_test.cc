// The proxy's accept path: the allowlist of clients and load balancers
// (proxy.clients, proxy.proxy_protocol_from) and its log throttle.
#include <catch2/catch.hpp>

#include <chrono>
#include <vector>

#include "common/ip_address.h"
#include "proxy/client_admission.h"

TEST_CASE("the allowlist: networks, IPv4-mapped addresses, nothing when empty", "[proxy][admission]") {
  const std::vector<common::IpNetwork> networks = {*common::parseIpNetwork("10.244.0.0/16").network,
                                                   *common::parseIpNetwork("fd00::/8").network};
  const auto ip = [](const char* text) { return *common::parseIpAddress(text); };
  CHECK(proxy::inNetworks(networks, ip("10.244.1.2")));
  CHECK(proxy::inNetworks(networks, ip("::ffff:10.244.1.2")));  // a dual-stack listener's view
  CHECK(proxy::inNetworks(networks, ip("fd00:77::2")));
  CHECK_FALSE(proxy::inNetworks(networks, ip("10.245.0.1")));
  CHECK_FALSE(proxy::inNetworks(networks, ip("203.0.113.9")));
  CHECK_FALSE(proxy::inNetworks(networks, ip("::ffff:203.0.113.9")));
  CHECK_FALSE(proxy::inNetworks({}, ip("10.244.1.2")));
}

TEST_CASE("the refusal log: a line a second, counting what it left out", "[proxy][admission]") {
  using namespace std::chrono_literals;
  proxy::RefusalLog log(1s);
  const auto t0 = proxy::RefusalLog::Clock::time_point{} + 100s;
  uint64_t suppressed = 99;
  CHECK(log.shouldLog(t0, suppressed));
  CHECK(suppressed == 0);
  for (int i = 0; i < 1000; ++i) CHECK_FALSE(log.shouldLog(t0 + 999ms, suppressed));  // a scan
  CHECK(log.shouldLog(t0 + 1s, suppressed));
  CHECK(suppressed == 1000);
  CHECK_FALSE(log.shouldLog(t0 + 1500ms, suppressed));
  CHECK(log.shouldLog(t0 + 5s, suppressed));
  CHECK(suppressed == 1);
}

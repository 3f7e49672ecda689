// Proxy decisions as observe::Event values: the JSON kind "proxy" and its
// round trip, the `proxy` filter keyword, and the watch line.
#include <catch2/catch.hpp>

#include <string>
#include <variant>

#include "observe/filter.h"
#include "observe/format.h"

namespace {
observe::Event proxyDenial() {
  observe::Event event;
  event.kind = observe::EventKind::Proxy;
  event.time = std::chrono::system_clock::now();
  event.src = *common::parseIpAddress("10.0.1.2");
  event.srcPort = 40412;
  event.dstPort = 443;
  event.protocol = 6;
  event.verdict = observe::EventVerdict::Deny;
  event.reason = "name_not_allowed";
  event.nameSource = "connect";
  const std::string name = "evil.example.com";
  event.nameLength = static_cast<uint8_t>(name.size());
  std::copy(name.begin(), name.end(), event.name.begin());
  return event;
}
}  // namespace

TEST_CASE("a proxy event is JSON kind proxy and comes back the same", "[proxy][event]") {
  const observe::Event event = proxyDenial();
  const nlohmann::json json = observe::toJson(event);
  CHECK(json["kind"] == "proxy");
  CHECK(json["reason"] == "name_not_allowed");
  CHECK(json["name_from"] == "connect");
  const auto back = observe::eventFromJson(json);
  REQUIRE(back);
  CHECK(back->kind == observe::EventKind::Proxy);
  CHECK(back->reason == "name_not_allowed");
  CHECK(back->nameView() == "evil.example.com");
}

TEST_CASE("the proxy filter keyword selects proxy events only", "[proxy][event]") {
  const auto parsed = observe::parseFilter("proxy and verdict deny");
  REQUIRE(std::holds_alternative<observe::Filter>(parsed));
  const auto& filter = std::get<observe::Filter>(parsed);
  observe::Event event = proxyDenial();
  CHECK(filter.matches(event));
  event.kind = observe::EventKind::Verdict;
  CHECK_FALSE(filter.matches(event));
  event.kind = observe::EventKind::Dns;
  CHECK_FALSE(filter.matches(event));
}

TEST_CASE("the watch line of a proxy denial", "[proxy][event]") {
  const std::string line = observe::formatLineBody(proxyDenial(), false);
  CHECK(line.find(" proxy connect=evil.example.com DENY name_not_allowed") != std::string::npos);
}

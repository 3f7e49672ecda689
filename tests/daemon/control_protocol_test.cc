// The control socket's protocol pieces without a daemon: request parsing,
// line building, base64 and packet records, rules and explain objects.
#include <catch2/catch.hpp>

#include <cstring>
#include <variant>

#include "common/ip_address.h"

#include "daemon/control_protocol.h"
#include "observe/format.h"
#include "policy/manifest.h"

namespace {

control::Request requestOf(std::string_view line) {
  auto parsed = control::parseRequest(line);
  if (auto* error = std::get_if<control::RequestError>(&parsed)) FAIL("unexpected error: " << error->message);
  return std::get<control::Request>(parsed);
}

control::RequestError errorOf(std::string_view line) {
  auto parsed = control::parseRequest(line);
  REQUIRE(std::holds_alternative<control::RequestError>(parsed));
  return std::get<control::RequestError>(parsed);
}

std::shared_ptr<const policy::Policy> policyOf(std::string_view yaml) {
  const auto load = policy::loadManifest(std::string(yaml), "test.yaml", policy::defaultPublicSuffixList());
  for (const auto& problem : load.problems) REQUIRE(problem.severity != policy::Severity::Error);
  return policy::Policy::compile(load.valid);
}

}  // namespace

TEST_CASE("control: requests parse with their arguments", "[control]") {
  CHECK(requestOf(R"({"op":"version"})").op == control::Op::Version);
  CHECK(requestOf(R"({"op":"rules"})").op == control::Op::Rules);
  CHECK(requestOf(R"({"op":"stats","future_key":1})").op == control::Op::Stats);
  const auto watch = requestOf(R"({"op":"watch","filter":"verdict deny and port 443","packets":true})");
  CHECK(watch.op == control::Op::Watch);
  CHECK(watch.filter == "verdict deny and port 443");
  CHECK(watch.packets);
  const auto all = requestOf(R"({"op":"watch"})");
  CHECK(all.filter.empty());
  CHECK_FALSE(all.packets);
  const auto explain = requestOf(R"({"op":"explain","target":"api.example.com:443"})");
  CHECK(explain.target == "api.example.com:443");
}

TEST_CASE("control: bad requests are named", "[control]") {
  CHECK(errorOf("not json").message == "request is not valid JSON");
  CHECK(errorOf("[1,2]").message == "request must be a JSON object");
  CHECK(errorOf(R"({"filter":"x"})").message.find("needs \"op\"") != std::string::npos);
  CHECK(errorOf(R"({"op":"shutdown"})").message.find("unknown op \"shutdown\"") != std::string::npos);
  CHECK(errorOf(R"({"op":"watch","filter":7})").message == "\"filter\" must be a string");
  CHECK(errorOf(R"({"op":"watch","packets":"yes"})").message == "\"packets\" must be true or false");
  CHECK(errorOf(R"({"op":"explain"})").message.find("HOST:PORT") != std::string::npos);
  CHECK(errorOf(R"({"op":"watch","format":"xml"})").message ==
        "unknown format \"xml\": expected \"json\" or \"line\"");
  CHECK(errorOf(R"({"op":"watch","format":1})").message == "\"format\" must be \"json\" or \"line\"");
  CHECK(errorOf(R"({"op":"watch","colour":"red"})").message == "\"colour\" must be true or false");
}

TEST_CASE("control: the watch format and colour", "[control]") {
  CHECK(requestOf(R"({"op":"watch"})").format == control::WatchFormat::Json);
  CHECK(requestOf(R"({"op":"watch","format":"json"})").format == control::WatchFormat::Json);
  const auto line = requestOf(R"({"op":"watch","format":"line","colour":true})");
  CHECK(line.format == control::WatchFormat::Line);
  CHECK(line.colour);
  control::Request request;
  request.op = control::Op::Watch;
  request.format = control::WatchFormat::Line;
  request.colour = true;
  const auto back = requestOf(control::requestLine(request));
  CHECK(back.format == control::WatchFormat::Line);
  CHECK(back.colour);
  request.format = control::WatchFormat::Json;
  // A JSON watch request stays as older daemons know it.
  CHECK(control::requestLine(request).find("format") == std::string::npos);
}

namespace {
observe::Event lineEvent(std::string_view name) {
  observe::Event event;
  event.kind = observe::EventKind::Verdict;
  event.time = std::chrono::system_clock::time_point(std::chrono::microseconds(1'700'000'000'123'456));
  event.src = *common::parseIpAddress("10.0.1.2");
  event.dst = *common::parseIpAddress("203.0.113.7");
  event.srcPort = 51234;
  event.dstPort = 443;
  event.protocol = 6;
  event.verdict = observe::EventVerdict::Allow;
  event.nameSource = "sni";
  event.nameLength = static_cast<uint8_t>(name.size());
  std::memcpy(event.name.data(), name.data(), name.size());
  constexpr std::string_view kRuleSets = "default/my-app";
  event.ruleSetsLength = static_cast<uint16_t>(kRuleSets.size());
  std::memcpy(event.ruleSets.data(), kRuleSets.data(), kRuleSets.size());
  return event;
}
}  // namespace

TEST_CASE("control: line events carry the formatted body and the time", "[control]") {
  for (const bool colour : {false, true}) {
    for (const std::string_view name : {"api.example.com", "caf\xc3\xa9.example", "q\"uo\\te.example",
                                        "\xf0\x9f\x98\x80.example", "a\x1b[2J.example"}) {
      const auto event = lineEvent(name);
      const std::string line = control::textEventLine(event, colour);
      control::TextEvent text;
      REQUIRE(control::parseTextEventLine(line, text));
      CHECK(text.time == event.time);
      CHECK(text.body == observe::formatLineBody(event, colour));
      // What the fast parser reads is what any JSON parser reads.
      const auto doc = nlohmann::json::parse(line);
      CHECK(doc["line"].get<std::string>() == text.body);
      CHECK(doc["time_us"] == 1'700'000'000'123'456);
      CHECK((text.body.find('\x1b') != std::string::npos) == colour);
    }
  }
}

TEST_CASE("control: line event parsing rejects anything else", "[control]") {
  control::TextEvent text;
  for (const std::string_view bad :
       {R"({"event":{}})", R"({"time_us":,"line":"x"})", R"({"time_us":-1,"line":"x"})",
        R"({"time_us":1,"line":"x")", R"({"time_us":1,"line":"x"}})", R"({"time_us":1,"line":"x\q"})",
        R"({"time_us":1,"line":"\ud800"})", R"({"time_us":1,"line":"\udc00"})",
        R"({"time_us":1,"line":"\u12"})", R"({"time_us":1,"line":"x)",
        R"({"time_us":1234567890123456789012,"line":"x"})", "{\"time_us\":1,\"line\":\"a\nb\"}",
        // Raw non-ASCII (the daemon escapes it) goes to the JSON parser,
        // which also knows whether it is UTF-8 at all (found by fuzzing).
        "{\"time_us\":1,\"line\":\"caf\xc3\xa9\"}", R"({"time_us":01,"line":"x"})",
        R"({"time_us":141514158401123456,"line":"x"})",  // past year 2262
        "{\"time_us\":1,\"line\":\"\xfd\"}"}) {
    INFO(bad);
    CHECK_FALSE(control::parseTextEventLine(bad, text));
  }
  REQUIRE(control::parseTextEventLine(R"({"time_us":7,"line":"\u00e9\ud83d\ude00\/\t"})", text));
  CHECK(text.body == "\xc3\xa9\xf0\x9f\x98\x80/\t");
}

TEST_CASE("control: a bad watch filter comes back with its position", "[control]") {
  const auto error = errorOf(R"({"op":"watch","filter":"verdict maybe"})");
  REQUIRE(error.filter.has_value());
  CHECK(error.filter->offset == 8);
  CHECK(error.filter->length == 5);
  const auto line = nlohmann::json::parse(control::errorLine(error));
  CHECK(line["ok"] == false);
  CHECK(line["filter_error"]["offset"] == 8);
  CHECK(line["filter_error"]["length"] == 5);
  CHECK(line["error"].get<std::string>().rfind("invalid filter: ", 0) == 0);
}

TEST_CASE("control: request lines round-trip through parseRequest", "[control]") {
  control::Request watch;
  watch.op = control::Op::Watch;
  watch.filter = "name *.example.com";
  watch.packets = true;
  const auto back = requestOf(control::requestLine(watch));
  CHECK(back.op == control::Op::Watch);
  CHECK(back.filter == watch.filter);
  CHECK(back.packets);
  control::Request explain;
  explain.op = control::Op::Explain;
  explain.target = "[2001:db8::1]:443";
  CHECK(requestOf(control::requestLine(explain)).target == explain.target);
}

TEST_CASE("control: the greeting carries version and protocol", "[control]") {
  const std::string line = control::greetingLine();
  CHECK(line.find('\n') == std::string::npos);
  const auto greeting = control::parseGreeting(line);
  REQUIRE(std::holds_alternative<int>(greeting));
  CHECK(std::get<int>(greeting) == control::kProtocolVersion);
  CHECK(std::holds_alternative<std::string>(control::parseGreeting("SSH-2.0-OpenSSH")));
  CHECK(std::holds_alternative<std::string>(control::parseGreeting(R"({"egressd":"9","protocol":"x"})")));
}

TEST_CASE("control: ok lines keep the body and add ok", "[control]") {
  const auto line = nlohmann::json::parse(control::okLine({{"filter", "port 1"}}));
  CHECK(line["ok"] == true);
  CHECK(line["filter"] == "port 1");
  CHECK(nlohmann::json::parse(control::droppedLine(12))["dropped"] == 12);
}

TEST_CASE("control: base64 per RFC 4648 test vectors", "[control]") {
  const std::vector<std::pair<std::string, std::string>> vectors = {{"", ""},
                                                                    {"f", "Zg=="},
                                                                    {"fo", "Zm8="},
                                                                    {"foo", "Zm9v"},
                                                                    {"foob", "Zm9vYg=="},
                                                                    {"fooba", "Zm9vYmE="},
                                                                    {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    const std::vector<uint8_t> bytes(plain.begin(), plain.end());
    CHECK(control::base64Encode(bytes) == encoded);
    const auto decoded = control::base64Decode(encoded);
    REQUIRE(decoded.has_value());
    CHECK(*decoded == bytes);
  }
  std::vector<uint8_t> all(256);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint8_t>(i);
  CHECK(control::base64Decode(control::base64Encode(all)) == all);
  CHECK_FALSE(control::base64Decode("Zm9").has_value());       // not a multiple of 4
  CHECK_FALSE(control::base64Decode("Zm9v!A==").has_value());  // outside the alphabet
  CHECK_FALSE(control::base64Decode("Z=9v").has_value());      // padding in the middle
  CHECK_FALSE(control::base64Decode("Zg==Zg==").has_value());  // padding before the end
}

TEST_CASE("control: packet records round-trip", "[control]") {
  const std::vector<uint8_t> bytes = {0x45, 0x00, 0x00, 0x3c, 0xde, 0xad};
  const auto time = std::chrono::system_clock::time_point(std::chrono::microseconds(1'764'158'401'123'456));
  const auto line = nlohmann::json::parse(control::packetLine(time, bytes, 60));
  const auto record = control::packetFromJson(line["packet"]);
  REQUIRE(record.has_value());
  CHECK(record->time == time);
  CHECK(record->originalLength == 60);
  CHECK(record->bytes == bytes);
  CHECK_FALSE(control::packetFromJson(nlohmann::json{{"len", 1}}).has_value());
  // Fewer bytes on the wire than captured cannot be.
  CHECK_FALSE(
      control::packetFromJson(nlohmann::json{{"time_us", 1}, {"len", 2}, {"data", "AAAA"}}).has_value());
}

TEST_CASE("control: host:port parsing", "[control]") {
  std::string error;
  auto parsed = control::parseHostPort("api.example.com:443", error);
  REQUIRE(parsed);
  CHECK(parsed->host == "api.example.com");
  CHECK(parsed->port == 443);
  parsed = control::parseHostPort("[2001:db8::1]:8443", error);
  REQUIRE(parsed);
  CHECK(parsed->host == "2001:db8::1");
  CHECK(control::displayHostPort(*parsed) == "[2001:db8::1]:8443");
  CHECK_FALSE(control::parseHostPort("api.example.com", error));
  CHECK(error.find("missing port") != std::string::npos);
  CHECK_FALSE(control::parseHostPort("2001:db8::1:443", error));
  CHECK(error.find("brackets") != std::string::npos);
  CHECK_FALSE(control::parseHostPort("a.example.com:0", error));
  CHECK_FALSE(control::parseHostPort(":443", error));
}

TEST_CASE("control: a URL, a network or a second port is named as such, with the target meant", "[control]") {
  struct Case {
    const char* text;
    const char* error;
  };
  const Case cases[] = {
      {"https://api.example.com", "a URL is not a target; write HOST:PORT, e.g. api.example.com:443"},
      {"http://api.example.com/x?y", "a URL is not a target; write HOST:PORT, e.g. api.example.com:80"},
      {"https://user@api.example.com:8443/path",
       "a URL is not a target; write HOST:PORT, e.g. api.example.com:8443"},
      {"https://[2001:db8::1]/", "a URL is not a target; write HOST:PORT, e.g. [2001:db8::1]:443"},
      // Read as a name, a network was allowed by world access: never answer for it.
      {"203.0.113.0/24:80",
       "\"203.0.113.0/24\" is a network; ask about one address in it, e.g. 203.0.113.0:80"},
      {"[2001:db8::/32]:443",
       "\"2001:db8::/32\" is a network; ask about one address in it, e.g. [2001:db8::]:443"},
      {"a.example.org:80:80", "\"a.example.org:80\" is not a host (one ':' only, before the port"},
      {"2001:db8::1:443", "IPv6 addresses must be in brackets"},
      {"2001:db8::1", "IPv6 addresses must be in brackets"},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    std::string error;
    CHECK_FALSE(control::parseHostPort(c.text, error));
    INFO(error);
    CHECK(error.find(c.error) != std::string::npos);
  }
}

TEST_CASE("control: rules carry provenance and the union", "[control]") {
  const auto policy = policyOf(R"(apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: a, namespace: team}
spec: {targets: ["api.example.com:443", "*.example.org:443"]}
---
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: b, namespace: team}
spec: {targets: ["API.example.com:443", "203.0.113.0/24:80"]}
)");
  const auto rules = control::rulesJson(*policy, 7);
  CHECK(rules["generation"] == 7);
  REQUIRE(rules["rule_sets"].size() == 2);
  CHECK(rules["rule_sets"][0]["id"] == "team/a");
  CHECK(rules["rule_sets"][0]["source"].get<std::string>().find("test.yaml") != std::string::npos);
  CHECK(rules["rule_sets"][1]["targets"][0] == "api.example.com:443");
  bool found = false;
  for (const auto& row : rules["union"]) {
    if (row["target"] == "api.example.com:443") {
      found = true;
      CHECK(row["rule_sets"] == nlohmann::json::array({"team/a", "team/b"}));
    }
  }
  CHECK(found);
  CHECK(rules["ports"] == nlohmann::json::array({80, 443}));
}

TEST_CASE("control: explain answers like egressctl explain --json", "[control]") {
  const auto policy = policyOf(R"(apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: a, namespace: team}
spec: {targets: ["api.example.com:443", "*:80"]}
)");
  auto doc = control::explainJson(*policy, "api.example.com", 443);
  CHECK(doc["query"] == "api.example.com:443");
  CHECK(doc["verdict"] == "allow");
  CHECK(doc["allowed_by"][0]["rule_set"] == "team/a");
  CHECK(doc["allowed_by"][0]["kind"] == "exact");
  CHECK(doc["needs_dns_binding"] == true);
  doc = control::explainJson(*policy, "api.example.com", 8443);
  CHECK(doc["verdict"] == "deny");
  CHECK(doc["allowed_on_other_ports"] == nlohmann::json::array({80, 443}));
  CHECK(doc["port_in_use"] == false);
  doc = control::explainJson(*policy, "2001:db8::1", 80);
  CHECK(doc["query"] == "[2001:db8::1]:80");
  CHECK(doc["host_is_address"] == true);
  CHECK(doc["needs_dns_binding"] == false);
}

// docs/rules.md, row by row: every HOST form, the PORT rules, normalisation, and
// a table of invalid targets each refused with the right reason.
#include <catch2/catch.hpp>

#include <string>

#include "policy/target.h"

using policy::parseTarget;
using policy::TargetError;
using policy::TargetKind;

namespace {
const policy::PublicSuffixList& psl() {
  return policy::defaultPublicSuffixList();
}

struct ValidCase {
  const char* text;
  TargetKind kind;
  const char* canonical;
};

struct InvalidCase {
  std::string text;
  TargetError error;
};
}  // namespace

TEST_CASE("valid targets parse to their kind and canonical form", "[target]") {
  const ValidCase cases[] = {
      {"api.example.com:443", TargetKind::ExactName, "api.example.com:443"},
      {"mydependency1.example.com:443", TargetKind::ExactName, "mydependency1.example.com:443"},
      {"*.example.org:80", TargetKind::WildcardName, "*.example.org:80"},
      {"*:80", TargetKind::AnyName, "*:80"},
      {"203.0.113.7:443", TargetKind::Address, "203.0.113.7:443"},
      {"[2001:db8::1]:443", TargetKind::Address, "[2001:db8::1]:443"},
      {"203.0.113.0/24:443", TargetKind::Network, "203.0.113.0/24:443"},
      {"[2001:db8::/32]:443", TargetKind::Network, "[2001:db8::/32]:443"},
      // Case-insensitive, trailing dot ignored.
      {"API.Example.COM:443", TargetKind::ExactName, "api.example.com:443"},
      {"api.example.com.:443", TargetKind::ExactName, "api.example.com:443"},
      {"*.Example.Org.:80", TargetKind::WildcardName, "*.example.org:80"},
      // A-labels are plain LDH names.
      {"xn--bcher-kva.example:443", TargetKind::ExactName, "xn--bcher-kva.example:443"},
      {"*.xn--bcher-kva.de:443", TargetKind::WildcardName, "*.xn--bcher-kva.de:443"},
      {"XN--BCHER-KVA.example:443", TargetKind::ExactName, "xn--bcher-kva.example:443"},
      // Names that exist although IDNA2008 disallows their characters (💩.la).
      {"xn--ls8h.la:443", TargetKind::ExactName, "xn--ls8h.la:443"},
      // Ports at the edges.
      {"a.example.com:1", TargetKind::ExactName, "a.example.com:1"},
      {"a.example.com:65535", TargetKind::ExactName, "a.example.com:65535"},
      // Single-label and digit-leading names are names.
      {"localhost:8080", TargetKind::ExactName, "localhost:8080"},
      {"3com.com:443", TargetKind::ExactName, "3com.com:443"},
      {"a-b.example.com:443", TargetKind::ExactName, "a-b.example.com:443"},
      // /32 and /128 networks are addresses; /0 is explicit world access.
      {"203.0.113.7/32:443", TargetKind::Address, "203.0.113.7:443"},
      {"[2001:db8::1/128]:443", TargetKind::Address, "[2001:db8::1]:443"},
      {"0.0.0.0/0:443", TargetKind::Network, "0.0.0.0/0:443"},
      {"[::/0]:443", TargetKind::Network, "[::/0]:443"},
      // Wildcard over a registrable domain under a multi-label suffix.
      {"*.example.co.uk:443", TargetKind::WildcardName, "*.example.co.uk:443"},
      // Exact names may be public suffixes themselves (harmless).
      {"github.io:443", TargetKind::ExactName, "github.io:443"},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    const auto parsed = parseTarget(c.text, psl());
    REQUIRE(parsed.target.has_value());
    CHECK(parsed.target->kind == c.kind);
    CHECK(parsed.target->canonical() == c.canonical);
  }
}

TEST_CASE("wildcard keeps the suffix, world access keeps the port", "[target]") {
  const auto wildcard = parseTarget("*.example.org:80", psl());
  REQUIRE(wildcard.target);
  CHECK(wildcard.target->name == "example.org");
  CHECK(wildcard.target->port == 80);
  const auto world = parseTarget("*:8443", psl());
  REQUIRE(world.target);
  CHECK(world.target->name.empty());
  CHECK(world.target->port == 8443);
}

TEST_CASE("invalid targets are refused with the right reason", "[target]") {
  const std::string longLabel(64, 'a');
  const std::string label63(63, 'b');
  const std::string longName = label63 + "." + label63 + "." + label63 + "." + label63 + ".com";  // 256
  const std::string longWildcard =
      "*." + label63 + "." + label63 + "." + label63 + "." + std::string(60, 'c');
  const InvalidCase cases[] = {
      // Port rules.
      {"api.example.com:*", TargetError::PortWildcard},
      {"*:*", TargetError::PortWildcard},
      {"[2001:db8::1]:*", TargetError::PortWildcard},
      {"api.example.com:4*", TargetError::PortWildcard},
      {"api.example.com", TargetError::MissingPort},
      {"api.example.com:", TargetError::MissingPort},
      {"*", TargetError::MissingPort},
      {"*.example.org", TargetError::MissingPort},
      {"203.0.113.7", TargetError::MissingPort},
      {"[2001:db8::1]", TargetError::MissingPort},
      {"[2001:db8::1]443", TargetError::MissingPort},
      {"api.example.com:0", TargetError::PortOutOfRange},
      {"api.example.com:65536", TargetError::PortOutOfRange},
      {"api.example.com:99999999999", TargetError::PortOutOfRange},
      {"api.example.com:0443", TargetError::PortOutOfRange},
      {"api.example.com:https", TargetError::PortNotNumber},
      {"api.example.com:-1", TargetError::PortNotNumber},
      {"api.example.com:+443", TargetError::PortNotNumber},
      {"api.example.com:80-90", TargetError::PortNotNumber},
      // Wildcard placement.
      {"a*.example.com:443", TargetError::WildcardPlacement},
      {"x.*.example.com:443", TargetError::WildcardPlacement},
      {"*.*.example.com:443", TargetError::WildcardPlacement},
      {"api.example.*:443", TargetError::WildcardPlacement},
      {"**.example.com:443", TargetError::WildcardPlacement},
      {"*example.com:443", TargetError::WildcardPlacement},
      // Public suffixes (ICANN and private sections).
      {"*.com:443", TargetError::PublicSuffixWildcard},
      {"*.co.uk:443", TargetError::PublicSuffixWildcard},
      {"*.github.io:443", TargetError::PublicSuffixWildcard},
      {"*.org:80", TargetError::PublicSuffixWildcard},
      {"*.s3.amazonaws.com:443", TargetError::PublicSuffixWildcard},
      // Labels and names.
      {"api..example.com:443", TargetError::EmptyLabel},
      {".example.com:443", TargetError::EmptyLabel},
      {"*..example.com:443", TargetError::EmptyLabel},
      {"api.example.com..:443", TargetError::EmptyLabel},
      {longLabel + ".example.com:443", TargetError::LabelTooLong},
      {longName + ":443", TargetError::NameTooLong},
      {longWildcard + ":443", TargetError::NameTooLong},
      {"api_v2.example.com:443", TargetError::BadCharacter},
      {"api.example.com/path:443", TargetError::BadCharacter},
      {"http://api.example.com:443", TargetError::BadCharacter},
      {"user@api.example.com:443", TargetError::BadCharacter},
      {"api.example.com:443:443", TargetError::BadCharacter},
      {"bücher.example:443", TargetError::NonAsciiName},
      // "xn--" promises Punycode; these do not decode (one cut short).
      {"xn--zz.example:443", TargetError::BadALabel},
      {"xn--bcher-kv.example:443", TargetError::BadALabel},
      {"*.xn--bcher-kv.example:443", TargetError::BadALabel},
      {"api.xn--zz:443", TargetError::BadALabel},
      {"-api.example.com:443", TargetError::HyphenPlacement},
      {"api-.example.com:443", TargetError::HyphenPlacement},
      {"api.example.123:443", TargetError::NumericTopLabel},
      // Whitespace.
      {" api.example.com:443", TargetError::Whitespace},
      {"api.example.com :443", TargetError::Whitespace},
      {"api.example.com:443\n", TargetError::Whitespace},
      {"", TargetError::Empty},
      {":443", TargetError::EmptyHost},
      // Addresses and networks.
      {"203.0.113.256:443", TargetError::BadIpv4},
      {"203.0.113:443", TargetError::BadIpv4},
      {"010.0.0.1:443", TargetError::BadIpv4},
      {"1.2.3.4.5:443", TargetError::BadIpv4},
      {"2001:db8::1:443", TargetError::Ipv6NeedsBrackets},
      {"2001:db8::/32:443", TargetError::Ipv6NeedsBrackets},
      {"[2001:db8::zz]:443", TargetError::BadIpv6},
      {"[203.0.113.7]:443", TargetError::BadIpv6},
      {"[fe80::1%eth0]:443", TargetError::BadIpv6},
      {"[2001:db8::1:443", TargetError::UnclosedBracket},
      {"203.0.113.0/33:443", TargetError::BadPrefix},
      {"203.0.113.0/:443", TargetError::BadPrefix},
      {"[2001:db8::/129]:443", TargetError::BadPrefix},
      {"203.0.113.7/24:443", TargetError::HostBitsSet},
      {"[2001:db8::1/32]:443", TargetError::HostBitsSet},
      {"*.:443", TargetError::EmptyLabel},
  };
  REQUIRE(sizeof cases / sizeof cases[0] >= 40);
  for (const auto& c : cases) {
    INFO("target: " << c.text);
    const auto parsed = parseTarget(c.text, psl());
    REQUIRE_FALSE(parsed.target.has_value());
    CHECK(policy::describe(parsed.error) == policy::describe(c.error));
    CHECK_FALSE(parsed.reason().empty());
  }
}

TEST_CASE("public suffix refusal suggests world access on the same port", "[target]") {
  const auto parsed = parseTarget("*.com:8443", psl());
  REQUIRE_FALSE(parsed.target);
  CHECK(parsed.reason().find("\"com\" is a public suffix") != std::string::npos);
  CHECK(parsed.reason().find("*:8443") != std::string::npos);
}

TEST_CASE("\"*.\" is not world access with a trailing dot", "[target]") {
  const auto parsed = parseTarget("*.:443", psl());
  REQUIRE_FALSE(parsed.target);
  CHECK_THAT(parsed.reason(), Catch::Contains("nothing after the wildcard") && Catch::Contains("\"*:443\""));
  // The real world access and a wildcard with a trailing dot still parse.
  CHECK(parseTarget("*:443", psl()).target->kind == TargetKind::AnyName);
  CHECK(parseTarget("*.example.org.:443", psl()).target->canonical() == "*.example.org:443");
}

TEST_CASE("host bits: the hint names the network of the same family", "[target]") {
  const auto v6 = parseTarget("[2001:db8::1/32]:443", psl());
  REQUIRE_FALSE(v6.target);
  CHECK_THAT(v6.reason(), Catch::Contains("write \"[2001:db8::/32]:443\""));
  CHECK_THAT(v6.reason(), !Catch::Contains("203.0.113"));
  const auto v4 = parseTarget("203.0.113.7/24:8443", psl());
  REQUIRE_FALSE(v4.target);
  CHECK_THAT(v4.reason(), Catch::Contains("write \"203.0.113.0/24:8443\""));
}

TEST_CASE("an IPv6 prefix outside the brackets is refused with the target meant", "[target]") {
  const auto parsed = parseTarget("[2001:db8::]/32:443", psl());
  REQUIRE_FALSE(parsed.target);
  CHECK(parsed.error == TargetError::BadPrefix);
  CHECK_THAT(parsed.reason(),
             Catch::Contains("the prefix goes inside the brackets: write \"[2001:db8::/32]:443\""));
  const auto world = parseTarget("[::]/0:443", psl());
  CHECK_THAT(world.reason(), Catch::Contains("write \"[::/0]:443\""));
}

TEST_CASE("a U-label target is refused with its A-label", "[target]") {
  const auto parsed = parseTarget("bücher.example:443", psl());
  REQUIRE_FALSE(parsed.target);
  CHECK(parsed.error == TargetError::NonAsciiName);
  CHECK_THAT(parsed.reason(), Catch::Contains("write \"xn--bcher-kva.example:443\""));
  const auto wildcard = parseTarget("*.Bücher.example:80", psl());
  CHECK_THAT(wildcard.reason(), Catch::Contains("write \"*.xn--bcher-kva.example:80\""));
  CHECK(policy::toALabel("bücher.example") == std::optional<std::string>("xn--bcher-kva.example"));
  CHECK_FALSE(policy::toALabel("a..b\xff"));
}

TEST_CASE("lookup names are normalised without allocation", "[target]") {
  char buffer[256];
  const size_t n = policy::normalizeLookupName("API.Example.COM.", buffer, sizeof buffer);
  CHECK(std::string_view(buffer, n) == "api.example.com");
  CHECK(policy::normalizeLookupName("", buffer, sizeof buffer) == 0);
  CHECK(policy::normalizeLookupName(".", buffer, sizeof buffer) == 0);
  CHECK(policy::normalizeLookupName(std::string(254, 'a'), buffer, sizeof buffer) == 0);
}

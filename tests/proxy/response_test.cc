// The proxy's own answers: the status code of every reason, the header
// that names it, and a denial a developer can act on.
#include <catch2/catch.hpp>

#include <string>

#include "proxy/response.h"

TEST_CASE("every reason maps to its status code", "[proxy][response]") {
  using R = proxy::ProxyReason;
  const std::pair<R, uint16_t> table[] = {
      {R::NameAllowed, 200},          {R::WorldAccess, 200},        {R::AddressAllowed, 200},
      {R::PortNotInPolicy, 403},      {R::NameNotAllowed, 403},     {R::AddressNotAllowed, 403},
      {R::InternalAddress, 403},      {R::NoAddress, 502},          {R::UpstreamUnreachable, 502},
      {R::UpstreamTimeout, 504},      {R::Malformed, 400},          {R::HeadTooLarge, 431},
      {R::HeaderTimeout, 408},        {R::TooManyConnections, 503}, {R::HttpsScheme, 400},
      {R::NotProxyRequest, 400},      {R::PipeliningRefused, 400},  {R::ClientNotAllowed, 403},
      {R::ProxyProtocolInvalid, 400},
  };
  STATIC_REQUIRE(std::size(table) == proxy::kProxyReasonCount);
  for (const auto& [reason, status] : table) {
    CAPTURE(proxy::proxyReasonName(reason));
    CHECK(proxy::statusFor(reason) == status);
    if (status == 200) continue;
    const std::string response = proxy::errorResponse(reason, "body");
    CHECK(response.rfind("HTTP/1.1 " + std::to_string(status) + " ", 0) == 0);
    CHECK(response.find("\r\nX-Egressd-Reason: " + std::string(proxy::proxyReasonName(reason)) + "\r\n") !=
          std::string::npos);
    CHECK(response.find("\r\nConnection: close\r\n") != std::string::npos);
    CHECK(response.find("\r\nContent-Length: 5\r\n") != std::string::npos);
    CHECK(response.substr(response.size() - 5) == "body\n");
  }
}

TEST_CASE("a denial says which target, why, and how to allow it", "[proxy][response]") {
  proxy::Authority target;
  target.host = "evil.example.com";
  target.port = 443;
  const std::string body = proxy::denialBody("CONNECT", target, proxy::ProxyReason::NameNotAllowed);
  CHECK(body ==
        "egressd denied CONNECT evil.example.com:443: no rule allows evil.example.com on port 443 "
        "(name_not_allowed). To allow it, add \"evil.example.com:443\" to the spec.targets of an "
        "EgressRuleSet; "
        "check with: egressctl explain evil.example.com:443");
  CHECK(body.find('\n') == std::string::npos);

  proxy::Authority v6;
  v6.host = "2001:db8::1";
  v6.port = 443;
  v6.ipLiteral = true;
  const std::string literal = proxy::denialBody("CONNECT", v6, proxy::ProxyReason::AddressNotAllowed);
  CHECK(literal.find("egressctl explain [2001:db8::1]:443") != std::string::npos);
  CHECK(literal.find("IP/CIDR target") != std::string::npos);
}

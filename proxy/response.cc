#include "proxy/response.h"

namespace proxy {

namespace {
std::string_view statusText(uint16_t status) noexcept {
  switch (status) {
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 408:
      return "Request Timeout";
    case 431:
      return "Request Header Fields Too Large";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Error";
  }
}

// host:port as `egressctl explain` and a rule target write it.
std::string hostPort(const Authority& target) {
  const bool v6 = target.ipLiteral && target.host.find(':') != std::string_view::npos;
  std::string out;
  if (v6) out += '[';
  out += target.host;
  if (v6) out += ']';
  out += ':';
  out += std::to_string(target.port);
  return out;
}
}  // namespace

uint16_t statusFor(ProxyReason reason) noexcept {
  switch (reason) {
    case ProxyReason::NameAllowed:
    case ProxyReason::WorldAccess:
    case ProxyReason::AddressAllowed:
      return 200;
    case ProxyReason::PortNotInPolicy:
    case ProxyReason::NameNotAllowed:
    case ProxyReason::AddressNotAllowed:
    case ProxyReason::InternalAddress:
    case ProxyReason::ClientNotAllowed:  // never written: such a connection is closed unread
      return 403;
    case ProxyReason::NoAddress:
    case ProxyReason::UpstreamUnreachable:
      return 502;
    case ProxyReason::UpstreamTimeout:
      return 504;
    case ProxyReason::HeadTooLarge:
      return 431;
    case ProxyReason::HeaderTimeout:
      return 408;
    case ProxyReason::TooManyConnections:
      return 503;
    case ProxyReason::Malformed:
    case ProxyReason::HttpsScheme:
    case ProxyReason::NotProxyRequest:
    case ProxyReason::PipeliningRefused:
    case ProxyReason::ProxyProtocolInvalid:
      return 400;
  }
  return 400;
}

std::string errorResponse(ProxyReason reason, std::string_view body) {
  const uint16_t status = statusFor(reason);
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(statusText(status)) + "\r\n";
  out += "Content-Type: text/plain; charset=utf-8\r\n";
  out += "Content-Length: " + std::to_string(body.size() + 1) + "\r\n";
  out += "Connection: close\r\n";
  out += "Proxy-Connection: close\r\n";
  out += "X-Egressd-Reason: ";
  out += proxyReasonName(reason);
  out += "\r\n\r\n";
  out += body;
  out += '\n';
  return out;
}

std::string denialBody(std::string_view method, const Authority& target, ProxyReason reason) {
  const std::string where = hostPort(target);
  const std::string port = std::to_string(target.port);
  std::string out = "egressd denied ";
  out += method;
  out += ' ';
  out += where;
  out += ": ";
  switch (reason) {
    case ProxyReason::PortNotInPolicy:
      out += "no rule allows any destination on port " + port;
      break;
    case ProxyReason::NameNotAllowed:
      out += "no rule allows " + std::string(target.host) + " on port " + port;
      break;
    case ProxyReason::AddressNotAllowed:
      out += "an IP address is allowed only by an IP/CIDR target or world access (*:" + port + ")";
      break;
    case ProxyReason::InternalAddress:
      out += target.ipLiteral ? "it is an internal address, which world access does not cover"
                              : std::string(target.host) +
                                    " resolves to an internal address, which only an IP/CIDR target opens";
      break;
    default:
      out += "refused";
      break;
  }
  out += " (";
  out += proxyReasonName(reason);
  out += "). To allow it, add \"" + where +
         "\" to the spec.targets of an EgressRuleSet; check with: egressctl explain " + where;
  return out;
}

std::string problemBody(ProxyReason reason, std::string_view detail) {
  std::string out = "egressd: ";
  switch (reason) {
    case ProxyReason::Malformed:
      out += "malformed request";
      break;
    case ProxyReason::HeadTooLarge:
      out += "request head too large";
      break;
    case ProxyReason::HeaderTimeout:
      out += "the request head did not arrive in time";
      break;
    case ProxyReason::TooManyConnections:
      out += "too many connections to the proxy; retry later";
      break;
    case ProxyReason::HttpsScheme:
      out += "https:// URLs go through CONNECT (set HTTPS_PROXY, not a GET https://...)";
      break;
    case ProxyReason::NotProxyRequest:
      out +=
          "this is an egress proxy: send absolute-form requests (GET http://host/path) or CONNECT host:port";
      break;
    case ProxyReason::ProxyProtocolInvalid:
      out +=
          "expected a PROXY protocol header (v1 or v2) first: this address is in proxy.proxy_protocol_from "
          "(a load balancer with send-proxy-v2, or an NLB target group with proxy protocol v2)";
      break;
    case ProxyReason::NoAddress:
      out += "no address";
      break;
    case ProxyReason::UpstreamUnreachable:
      out += "could not connect";
      break;
    case ProxyReason::UpstreamTimeout:
      out += "connect timed out";
      break;
    default:
      out += proxyReasonName(reason);
      break;
  }
  if (!detail.empty()) {
    out += ": ";
    out += detail;
  }
  out += " (";
  out += proxyReasonName(reason);
  out += ")";
  return out;
}

}  // namespace proxy

#include "sni/http.h"

#include "common/strings.h"
#include "sni/host_name.h"

namespace sni {
namespace {

// Longest registered method is 17 bytes (UPDATEREDIRECTREF); a longer token
// run means this is not an HTTP request line.
constexpr size_t kMaxMethodBytes = 24;
// RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the
// request-line; two are tolerated, more is not HTTP.
constexpr size_t kMaxLeadingEmptyLines = 2;

HttpRequestResult status(ParseStatus s, MalformedReason reason = MalformedReason::None) noexcept {
  HttpRequestResult r;
  r.status = s;
  r.reason = reason;
  return r;
}

HttpRequestResult needMore(std::span<const uint8_t> in) noexcept {
  if (in.size() >= kMaxHttpHeaderBytes)
    return status(ParseStatus::Malformed, MalformedReason::HttpHeaderTooLarge);
  // The least that can still end the header section: the rest of "\r\n\r\n".
  size_t need = 4;
  const size_t n = in.size();
  if (n >= 3 && in[n - 3] == '\r' && in[n - 2] == '\n' && in[n - 1] == '\r') {
    need = 1;
  } else if (n >= 2 && in[n - 2] == '\r' && in[n - 1] == '\n') {
    need = 2;
  } else if (n >= 1 && in[n - 1] == '\r') {
    need = 3;
  }
  HttpRequestResult r = status(ParseStatus::NeedMore);
  r.needBytes = need;
  return r;
}

struct Authority {
  std::string_view host;
  uint16_t port = 0;
  bool isIpLiteral = false;
};

// RFC 3986 §3.2.2-3: host [ ":" port ], host = IP-literal / IPv4address /
// reg-name (restricted, see host_name.h). A port, when its ':' is present,
// must be 1..65535.
bool parseAuthority(std::string_view text, Authority& out) noexcept {
  std::string_view host;
  std::string_view rest;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) return false;
    host = text.substr(1, close - 1);
    rest = text.substr(close + 1);
    if (host.empty() || host.find(':') == std::string_view::npos) return false;  // IPvFuture refused
    if (detail::classifyHostName(host) != detail::NameKind::IpLiteral) return false;
    out.isIpLiteral = true;
  } else {
    const size_t colon = text.find(':');
    host = text.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view{} : text.substr(colon);
    if (host.find(':') != std::string_view::npos) return false;
    switch (detail::classifyHostName(host)) {
      case detail::NameKind::Bad:
        return false;
      case detail::NameKind::HostName:
        break;
      case detail::NameKind::IpLiteral:
        out.isIpLiteral = true;
        break;
    }
  }
  out.host = host;
  out.port = 0;
  if (rest.empty()) return true;
  if (rest.front() != ':' || rest.size() < 2 || rest.size() > 6) return false;
  uint32_t port = 0;
  for (char c : rest.substr(1)) {
    if (c < '0' || c > '9') return false;
    port = port * 10 + static_cast<uint32_t>(c - '0');
  }
  if (port == 0 || port > 65535) return false;
  out.port = static_cast<uint16_t>(port);
  return true;
}

}  // namespace

HttpRequestResult parseHttpRequest(std::span<const uint8_t> in) noexcept {
  const size_t n = in.size();
  size_t pos = 0;
  auto text = [&](size_t from, size_t to) {
    return std::string_view(reinterpret_cast<const char*>(in.data()) + from, to - from);
  };

  // RFC 9112 §2.2: leading empty lines before the request-line.
  for (size_t lines = 0;; ++lines) {
    if (pos >= n) return needMore(in);
    if (in[pos] != '\r') break;
    if (lines == kMaxLeadingEmptyLines) return status(ParseStatus::NotThisProtocol);
    if (pos + 1 >= n) return needMore(in);
    if (in[pos + 1] != '\n') return status(ParseStatus::NotThisProtocol);
    pos += 2;
  }

  // RFC 9112 §3: request-line = method SP request-target SP HTTP-version CRLF,
  // single SPs (the "MAY parse on whitespace" leniency is not taken).
  const size_t methodStart = pos;
  while (pos < n && common::isHttpTokenChar(static_cast<char>(in[pos]))) {
    if (pos - methodStart == kMaxMethodBytes) return status(ParseStatus::NotThisProtocol);
    ++pos;
  }
  if (pos == methodStart) return status(ParseStatus::NotThisProtocol);
  if (pos >= n) return needMore(in);
  if (in[pos] != ' ') return status(ParseStatus::NotThisProtocol);
  HttpRequestResult result;
  result.method = text(methodStart, pos);
  ++pos;

  const size_t targetStart = pos;
  while (pos < n && in[pos] > 0x20 && in[pos] < 0x7f) ++pos;  // VCHAR (RFC 3986 chars are a subset)
  if (pos >= n) return needMore(in);
  if (in[pos] == '\r' || in[pos] == '\n') {
    // "GET /\r\n": HTTP/0.9, no version and no headers.
    return status(ParseStatus::Malformed, MalformedReason::HttpVersion);
  }
  if (in[pos] != ' ') return status(ParseStatus::Malformed, MalformedReason::HttpTarget);
  if (pos == targetStart) return status(ParseStatus::Malformed, MalformedReason::HttpRequestLine);
  result.target = text(targetStart, pos);
  ++pos;

  // RFC 9112 §2.3: HTTP-version = "HTTP" "/" DIGIT "." DIGIT, case-sensitive.
  static constexpr std::string_view kVersionPrefix = "HTTP/1.";
  for (size_t i = 0; i < kVersionPrefix.size(); ++i, ++pos) {
    if (pos >= n) return needMore(in);
    if (in[pos] != static_cast<uint8_t>(kVersionPrefix[i]))
      return status(ParseStatus::Malformed, MalformedReason::HttpVersion);
  }
  if (pos >= n) return needMore(in);
  if (in[pos] != '0' && in[pos] != '1') return status(ParseStatus::Malformed, MalformedReason::HttpVersion);
  result.versionMinor = static_cast<uint8_t>(in[pos] - '0');
  ++pos;
  if (pos >= n) return needMore(in);
  if (in[pos] == '\n') return status(ParseStatus::Malformed, MalformedReason::HttpBareLineFeed);
  if (in[pos] != '\r') return status(ParseStatus::Malformed, MalformedReason::HttpRequestLine);
  if (++pos >= n) return needMore(in);
  if (in[pos] != '\n') return status(ParseStatus::Malformed, MalformedReason::HttpRequestLine);
  ++pos;

  // RFC 9112 §5: field-line = field-name ":" OWS field-value OWS, CRLF ended;
  // the header section ends with an empty line.
  std::string_view hostValue;
  while (true) {
    if (pos >= n) return needMore(in);
    if (in[pos] == '\r') {
      if (pos + 1 >= n) return needMore(in);
      if (in[pos + 1] != '\n') return status(ParseStatus::Malformed, MalformedReason::HttpFieldName);
      pos += 2;
      break;
    }
    if (in[pos] == '\n') return status(ParseStatus::Malformed, MalformedReason::HttpBareLineFeed);
    // §5.2 obs-fold (and §2.2 whitespace before the first field): rejected.
    if (in[pos] == ' ' || in[pos] == '\t')
      return status(ParseStatus::Malformed, MalformedReason::HttpObsFold);
    const size_t nameStart = pos;
    while (pos < n && common::isHttpTokenChar(static_cast<char>(in[pos]))) ++pos;
    if (pos >= n) return needMore(in);
    if (in[pos] == ' ' || in[pos] == '\t') {
      // §5.1: "No whitespace is allowed between the field name and colon";
      // a server MUST reject it (a classic smuggling vector).
      return status(ParseStatus::Malformed, MalformedReason::HttpWhitespaceBeforeColon);
    }
    if (in[pos] != ':' || pos == nameStart)
      return status(ParseStatus::Malformed, MalformedReason::HttpFieldName);
    const std::string_view name = text(nameStart, pos);
    ++pos;
    while (pos < n && (in[pos] == ' ' || in[pos] == '\t')) ++pos;  // leading OWS
    const size_t valueStart = pos;
    // field-value chars: VCHAR, obs-text, SP, HTAB (RFC 9110 §5.5); NUL and
    // other controls are refused.
    while (pos < n && (in[pos] >= 0x20 || in[pos] == '\t') && in[pos] != 0x7f) ++pos;
    if (pos >= n) return needMore(in);
    if (in[pos] == '\n') return status(ParseStatus::Malformed, MalformedReason::HttpBareLineFeed);
    if (in[pos] != '\r') return status(ParseStatus::Malformed, MalformedReason::HttpFieldValue);
    if (pos + 1 >= n) return needMore(in);
    if (in[pos + 1] != '\n') return status(ParseStatus::Malformed, MalformedReason::HttpFieldValue);
    size_t valueEnd = pos;
    while (valueEnd > valueStart && (in[valueEnd - 1] == ' ' || in[valueEnd - 1] == '\t')) --valueEnd;
    pos += 2;
    if (common::equalsIgnoreCase(name, "host")) {
      // RFC 9112 §3.2: a request with more than one Host line MUST be refused.
      if (result.hasHostHeader) return status(ParseStatus::Malformed, MalformedReason::HttpDuplicateHost);
      result.hasHostHeader = true;
      hostValue = text(valueStart, valueEnd);
    }
    if (pos > kMaxHttpHeaderBytes) return status(ParseStatus::Malformed, MalformedReason::HttpHeaderTooLarge);
  }
  if (pos > kMaxHttpHeaderBytes) return status(ParseStatus::Malformed, MalformedReason::HttpHeaderTooLarge);
  result.consumed = pos;

  // RFC 9112 §3.2: the four forms of request-target.
  Authority fromTarget;
  bool targetHasAuthority = false;
  const std::string_view target = result.target;
  if (result.method == "CONNECT") {
    // §3.2.3 authority-form: host ":" port, port required.
    result.targetForm = HttpTargetForm::Authority;
    if (target.find('@') != std::string_view::npos)
      return status(ParseStatus::Malformed, MalformedReason::HttpUserinfo);
    if (!parseAuthority(target, fromTarget) || fromTarget.port == 0)
      return status(ParseStatus::Malformed, MalformedReason::HttpTarget);
    targetHasAuthority = true;
  } else if (target.front() == '/') {
    result.targetForm = HttpTargetForm::Origin;  // §3.2.1
  } else if (target == "*") {
    // §3.2.4: only for a server-wide OPTIONS request.
    if (result.method != "OPTIONS") return status(ParseStatus::Malformed, MalformedReason::HttpTarget);
    result.targetForm = HttpTargetForm::Asterisk;
  } else {
    // §3.2.2 absolute-form; only the http and https schemes (RFC 9110 §4.2).
    size_t schemeEnd = 0;
    if (target.size() > 7 && common::equalsIgnoreCase(target.substr(0, 7), "http://")) {
      schemeEnd = 7;
    } else if (target.size() > 8 && common::equalsIgnoreCase(target.substr(0, 8), "https://")) {
      schemeEnd = 8;
    } else {
      return status(ParseStatus::Malformed, MalformedReason::HttpTarget);
    }
    result.targetForm = HttpTargetForm::Absolute;
    const std::string_view afterScheme = target.substr(schemeEnd);
    const std::string_view authority = afterScheme.substr(0, afterScheme.find_first_of("/?#"));
    // RFC 9110 §4.2.4: userinfo in an http(s) URI is to be treated as an
    // error (it is used to disguise the real host: http://good@evil/).
    if (authority.find('@') != std::string_view::npos)
      return status(ParseStatus::Malformed, MalformedReason::HttpUserinfo);
    if (!parseAuthority(authority, fromTarget))
      return status(ParseStatus::Malformed, MalformedReason::HttpBadHost);
    targetHasAuthority = true;
  }

  Authority fromHost;
  if (result.hasHostHeader && !parseAuthority(hostValue, fromHost))
    return status(ParseStatus::Malformed, MalformedReason::HttpBadHost);
  // §3.2: "A client MUST send a Host header field in all HTTP/1.1 request
  // messages"; a server MUST answer 400 without one.
  if (!result.hasHostHeader && result.versionMinor == 1)
    return status(ParseStatus::Malformed, MalformedReason::HttpMissingHost);
  if (targetHasAuthority) {
    // §3.2: the Host value MUST be identical to the target's authority. The
    // server then uses the target (§3.2.2); refusing a mismatch keeps us from
    // reading a different name than the server acts on.
    if (result.hasHostHeader &&
        (!common::equalsIgnoreCase(fromHost.host, fromTarget.host) || fromHost.port != fromTarget.port))
      return status(ParseStatus::Malformed, MalformedReason::HttpHostMismatch);
    result.host = fromTarget.host;
    result.port = fromTarget.port;
    result.hostIsIpLiteral = fromTarget.isIpLiteral;
  } else if (result.hasHostHeader) {
    result.host = fromHost.host;
    result.port = fromHost.port;
    result.hostIsIpLiteral = fromHost.isIpLiteral;
  }
  result.status = ParseStatus::Ok;
  return result;
}

}  // namespace sni

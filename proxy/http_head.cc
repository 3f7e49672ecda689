#include "proxy/http_head.h"

#include <algorithm>

#include "common/ip_address.h"
#include "common/strings.h"

namespace proxy {

namespace {

constexpr std::string_view kCrlf = "\r\n";

std::string_view asText(std::span<const uint8_t> bytes) noexcept {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

bool isToken(std::string_view text) noexcept {
  return !text.empty() && std::all_of(text.begin(), text.end(), common::isHttpTokenChar);
}

// field-value bytes (RFC 9110 section 5.5): VCHAR, obs-text, SP, HTAB.
bool isFieldValueByte(char c) noexcept {
  const auto byte = static_cast<unsigned char>(c);
  return byte == '\t' || (byte >= 0x20 && byte != 0x7f);
}

std::string_view trimOws(std::string_view text) noexcept {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

bool parseDecimal(std::string_view text, uint64_t max, uint64_t& out) noexcept {
  if (text.empty() || text.size() > 19) return false;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (value > max) return false;
  out = value;
  return true;
}

// Calls fn(token) for each comma-separated element of a list field
// (RFC 9110 section 5.6.1), skipping empty ones.
template <typename Fn>
void forEachListElement(std::string_view value, Fn&& fn) noexcept {
  while (!value.empty()) {
    const size_t comma = value.find(',');
    const std::string_view element = trimOws(value.substr(0, comma));
    if (!element.empty()) fn(element);
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
}

// "HTTP/1.0" or "HTTP/1.1" (RFC 9112 section 2.3); HTTP/2's preface and
// HTTP/0.9 are not for us.
bool parseVersion(std::string_view text, uint8_t& minor) noexcept {
  if (text.size() != 8 || text.substr(0, 7) != "HTTP/1.") return false;
  if (text[7] != '0' && text[7] != '1') return false;
  minor = static_cast<uint8_t>(text[7] - '0');
  return true;
}

// The end of the head: the offset just past "\r\n\r\n", or 0.
size_t findHeadEnd(std::string_view text) noexcept {
  const size_t at = text.find("\r\n\r\n");
  return at == std::string_view::npos ? 0 : at + 4;
}

// The header section: field lines up to (not including) the final CRLF.
ParseStatus parseFields(std::string_view lines, HeaderFields& out, std::string_view& why) noexcept {
  out = HeaderFields{};
  bool sawTransferEncoding = false;
  while (!lines.empty()) {
    const size_t end = lines.find(kCrlf);
    // Every line ends in CRLF: the caller cut the text just after one.
    const std::string_view line = lines.substr(0, end);
    lines.remove_prefix(end + 2);
    if (line.find('\n') != std::string_view::npos || line.find('\r') != std::string_view::npos) {
      why = "a bare CR or LF inside a header line";
      return ParseStatus::Malformed;
    }
    if (line.front() == ' ' || line.front() == '\t') {
      // RFC 9112 section 5.2: a proxy must reject obsolete line folding.
      why = "obsolete line folding (a header line starting with whitespace)";
      return ParseStatus::Malformed;
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      why = "a header line without a colon";
      return ParseStatus::Malformed;
    }
    const std::string_view name = line.substr(0, colon);
    if (!isToken(name)) {
      // Includes whitespace before the colon (RFC 9112 section 5.1).
      why = "a header name with characters other than letters, digits and !#$%&'*+-.^_`|~";
      return ParseStatus::Malformed;
    }
    const std::string_view rawValue = line.substr(colon + 1);
    if (!std::all_of(rawValue.begin(), rawValue.end(), isFieldValueByte)) {
      why = "a control character in a header value";
      return ParseStatus::Malformed;
    }
    const std::string_view value = trimOws(rawValue);
    if (out.count == out.fields.size()) {
      why = "more than 100 header fields";
      return ParseStatus::Malformed;
    }
    out.fields[out.count++] = {name, value};

    if (fieldIs(name, "content-length")) {
      uint64_t length = 0;
      // One value, digits only; a repeated field must repeat the same value
      // (RFC 9112 section 6.3, item 5).
      if (!parseDecimal(value, UINT64_MAX / 2, length) ||
          (out.hasContentLength && length != out.contentLength)) {
        why = "an invalid or conflicting Content-Length";
        return ParseStatus::Malformed;
      }
      out.hasContentLength = true;
      out.contentLength = length;
    } else if (fieldIs(name, "transfer-encoding")) {
      // Only "chunked", once, as the one coding: anything else would need
      // the proxy to decode bodies to find their end.
      bool ok = !sawTransferEncoding;
      size_t codings = 0;
      forEachListElement(value, [&](std::string_view coding) {
        ++codings;
        if (!fieldIs(coding, "chunked")) ok = false;
      });
      if (!ok || codings != 1) {
        why = "a Transfer-Encoding other than a single \"chunked\"";
        return ParseStatus::Malformed;
      }
      sawTransferEncoding = true;
      out.chunked = true;
    } else if (fieldIs(name, "connection") || fieldIs(name, "proxy-connection")) {
      forEachListElement(value, [&](std::string_view option) {
        if (fieldIs(option, "close")) out.connectionClose = true;
        if (fieldIs(option, "keep-alive")) out.connectionKeepAlive = true;
      });
    } else if (fieldIs(name, "host")) {
      ++out.hostFields;
    }
  }
  if (out.chunked && out.hasContentLength) {
    // RFC 9112 section 6.1: a smuggling attempt, or a broken client.
    why = "both Transfer-Encoding and Content-Length";
    return ParseStatus::Malformed;
  }
  return ParseStatus::Ok;
}

// The head's text (up to and including the blank line), its start after
// leading empty lines, or a status when there is none yet.
ParseStatus cutHead(std::span<const uint8_t> input, size_t maxHead, std::string_view& head, size_t& total,
                    std::string_view& why) noexcept {
  std::string_view text = asText(input.first(std::min(input.size(), maxHead)));
  size_t skipped = 0;
  while (text.substr(skipped, 2) == kCrlf) skipped += 2;
  if (skipped < text.size() && text[skipped] == '\n') {
    why = "a bare LF line end";
    return ParseStatus::Malformed;
  }
  const size_t end = findHeadEnd(text.substr(skipped));
  if (end == 0) {
    // A bare LF anywhere already read will never become a valid head.
    const std::string_view seen = text.substr(skipped);
    for (size_t i = 0; i < seen.size(); ++i) {
      if (seen[i] == '\n' && (i == 0 || seen[i - 1] != '\r')) {
        why = "a bare LF line end";
        return ParseStatus::Malformed;
      }
    }
    if (input.size() >= maxHead) {
      why = "the request head is larger than the proxy accepts";
      return ParseStatus::TooLarge;
    }
    return ParseStatus::NeedMore;
  }
  head = text.substr(skipped, end);
  total = skipped + end;
  return ParseStatus::Ok;
}

bool isHostByte(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_';
}

// "127.1", "0x7f.1", "2130706433": inet_aton() and many resolvers read
// these as addresses, so a policy check on them as names would not be
// about what is connected to. A real top-level domain is never numeric.
bool looksNumeric(std::string_view host) noexcept {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  const size_t dot = host.rfind('.');
  const std::string_view last = dot == std::string_view::npos ? host : host.substr(dot + 1);
  if (last.empty()) return false;
  if (last.size() > 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X')) return true;
  return std::all_of(last.begin(), last.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

std::string_view parseStatusName(ParseStatus status) noexcept {
  switch (status) {
    case ParseStatus::Ok:
      return "ok";
    case ParseStatus::NeedMore:
      return "need_more";
    case ParseStatus::Malformed:
      return "malformed";
    case ParseStatus::TooLarge:
      return "too_large";
  }
  return "unknown";
}

bool fieldIs(std::string_view field, std::string_view name) noexcept {
  return common::equalsIgnoreCase(field, name);
}

bool parseAuthority(std::string_view text, bool portRequired, uint16_t defaultPort, Authority& out,
                    std::string_view& why) noexcept {
  out = Authority{};
  out.text = text;
  if (text.empty()) {
    why = "an empty host";
    return false;
  }
  if (text.find('@') != std::string_view::npos) {
    why = "userinfo (user@host) in the target";
    return false;
  }
  if (text.find('%') != std::string_view::npos) {
    why = "percent-encoding or an IPv6 zone in the host";
    return false;
  }
  std::string_view host;
  std::string_view portText;
  bool hasPort = false;
  if (text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) {
      why = "an IPv6 literal without its closing ]";
      return false;
    }
    host = text.substr(1, close - 1);
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        why = "text after the IPv6 literal's ]";
        return false;
      }
      portText = rest.substr(1);
      hasPort = true;
    }
    const auto address = common::parseIpAddress(host);
    if (!address || address->family != common::IpFamily::V6) {
      why = "an invalid IPv6 literal";
      return false;
    }
    out.ipLiteral = true;
  } else {
    const size_t colon = text.find(':');
    host = text.substr(0, colon);
    if (colon != std::string_view::npos) {
      portText = text.substr(colon + 1);
      hasPort = true;
    }
    if (host.empty() || host.size() > 254 || !std::all_of(host.begin(), host.end(), isHostByte)) {
      why = "a host with characters other than letters, digits, '-', '_' and '.' (or over 253 bytes)";
      return false;
    }
    const auto address = common::parseIpAddress(host);
    if (address && address->family == common::IpFamily::V4) {
      out.ipLiteral = true;
    } else if (looksNumeric(host)) {
      why = "a numeric host that is not a dotted-quad IPv4 address";
      return false;
    }
  }
  if (hasPort) {
    uint64_t port = 0;
    if (portText.size() > 5 || !parseDecimal(portText, 65535, port) || port == 0) {
      why = "a port outside 1-65535";
      return false;
    }
    out.port = static_cast<uint16_t>(port);
  } else if (portRequired) {
    why = "CONNECT needs host:port";
    return false;
  } else {
    out.port = defaultPort;
  }
  out.host = host;
  return true;
}

ParseStatus parseRequestHead(std::span<const uint8_t> input, size_t maxHead, RequestHead& out) noexcept {
  out = RequestHead{};
  std::string_view head;
  const ParseStatus cut = cutHead(input, maxHead, head, out.headLength, out.why);
  if (cut != ParseStatus::Ok) return cut;
  const auto malformed = [&out](std::string_view why) {
    out.why = why;
    return ParseStatus::Malformed;
  };

  // request-line = method SP request-target SP HTTP-version (section 3)
  const size_t lineEnd = head.find(kCrlf);
  const std::string_view line = head.substr(0, lineEnd);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return malformed("a request line that is not \"METHOD TARGET HTTP/1.1\"");
  }
  out.method = line.substr(0, sp1);
  out.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (!isToken(out.method)) return malformed("an invalid method");
  if (out.target.empty() || !std::all_of(out.target.begin(), out.target.end(), [](char c) {
        const auto byte = static_cast<unsigned char>(c);
        return byte > 0x20 && byte < 0x7f;
      })) {
    return malformed("an empty target or one with spaces or control characters");
  }
  if (!parseVersion(line.substr(sp2 + 1), out.versionMinor)) return malformed("not HTTP/1.0 or HTTP/1.1");

  const ParseStatus fields =
      parseFields(head.substr(lineEnd + 2, head.size() - lineEnd - 4), out.headers, out.why);
  if (fields != ParseStatus::Ok) return fields;
  if (out.headers.hostFields > 1) return malformed("more than one Host field");
  if (out.versionMinor == 0 && out.headers.chunked) return malformed("chunked transfer in HTTP/1.0");

  // request-target forms (section 3.2).
  if (out.method == "CONNECT") {
    out.form = RequestForm::Connect;
    std::string_view why;
    if (!parseAuthority(out.target, true, 0, out.authority, why)) return malformed(why);
    return ParseStatus::Ok;
  }
  if (out.target == "*") {
    out.form = RequestForm::Asterisk;
    return ParseStatus::Ok;
  }
  if (out.target.front() == '/') {
    out.form = RequestForm::Origin;
    return ParseStatus::Ok;
  }
  std::string_view rest;
  uint16_t defaultPort = 80;
  if (out.target.size() > 7 && fieldIs(out.target.substr(0, 7), "http://")) {
    rest = out.target.substr(7);
  } else if (out.target.size() > 8 && fieldIs(out.target.substr(0, 8), "https://")) {
    rest = out.target.substr(8);
    out.httpsScheme = true;
    defaultPort = 443;
  } else {
    return malformed("a target that is not http://host/path, host:port (CONNECT) or /path");
  }
  out.form = RequestForm::Absolute;
  const size_t pathStart = rest.find_first_of("/?#");
  if (pathStart != std::string_view::npos && rest[pathStart] == '#')
    return malformed("a fragment in the target");
  std::string_view why;
  if (!parseAuthority(rest.substr(0, pathStart), false, defaultPort, out.authority, why))
    return malformed(why);
  if (pathStart != std::string_view::npos) {
    out.path = rest.substr(pathStart);
    if (out.path.find('#') != std::string_view::npos) return malformed("a fragment in the target");
  }
  return ParseStatus::Ok;
}

ParseStatus parseResponseHead(std::span<const uint8_t> input, size_t maxHead, ResponseHead& out) noexcept {
  out = ResponseHead{};
  std::string_view head;
  const ParseStatus cut = cutHead(input, maxHead, head, out.headLength, out.why);
  if (cut != ParseStatus::Ok) return cut;
  // status-line = HTTP-version SP status-code SP [ reason-phrase ] (section 4)
  const size_t lineEnd = head.find(kCrlf);
  const std::string_view line = head.substr(0, lineEnd);
  if (line.size() < 12 || line[8] != ' ' || !parseVersion(line.substr(0, 8), out.versionMinor) ||
      (line.size() > 12 && line[12] != ' ')) {
    out.why = "a status line that is not \"HTTP/1.1 NNN reason\"";
    return ParseStatus::Malformed;
  }
  uint64_t status = 0;
  if (!parseDecimal(line.substr(9, 3), 999, status) || status < 100) {
    out.why = "an invalid status code";
    return ParseStatus::Malformed;
  }
  out.status = static_cast<uint16_t>(status);
  out.reason = line.size() > 13 ? line.substr(13) : std::string_view();
  return parseFields(head.substr(lineEnd + 2, head.size() - lineEnd - 4), out.headers, out.why);
}

}  // namespace proxy

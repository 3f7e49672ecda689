// HTTP/1.1 message heads as an explicit proxy reads them (RFC 9112): the
// request line with its target (CONNECT's authority-form, absolute-form
// "http://host[:port]/path"), the header fields, and the framing of the
// body that follows (Content-Length or chunked). Also the head of an
// origin server's response, for its framing.
//
// Pure and bounds-checked: the parsers read a span and return a status and
// views into it, never copies; nothing allocates, nothing throws. Strict
// where a lenient reading would let two parties disagree on where a
// message ends (request smuggling): bare LF line ends, obsolete line
// folding, whitespace before a colon, both Content-Length and
// Transfer-Encoding, a transfer coding other than chunked, and conflicting
// lengths are Malformed.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace proxy {

enum class ParseStatus : uint8_t {
  Ok,         // a complete head; `headLength` bytes of the input
  NeedMore,   // no blank line yet, and fewer than maxHead bytes read
  Malformed,  // not a valid head: `why` says what (400)
  TooLarge,   // maxHead bytes and still no end of the head (431)
};

std::string_view parseStatusName(ParseStatus status) noexcept;

enum class RequestForm : uint8_t {
  Connect,   // CONNECT host:port
  Absolute,  // GET http://host[:port]/path
  Origin,    // GET /path: a request for a server, not a proxy
  Asterisk,  // OPTIONS *
};

struct HeaderField {
  std::string_view name;
  std::string_view value;  // without leading and trailing whitespace
};

// host[:port] of a CONNECT target or an absolute-form URI.
struct Authority {
  std::string_view host;  // as written; an IPv6 literal without its brackets
  uint16_t port = 0;
  bool ipLiteral = false;  // IPv4 dotted quad or [IPv6]
  std::string_view text;   // host[:port] exactly as written (for the Host header)
};

inline constexpr size_t kMaxHeaderFields = 100;

struct HeaderFields {
  std::array<HeaderField, kMaxHeaderFields> fields{};
  size_t count = 0;
  // Framing (RFC 9112 section 6).
  bool chunked = false;
  bool hasContentLength = false;
  uint64_t contentLength = 0;
  // Connection: close / keep-alive (and Proxy-Connection, which old
  // clients send to proxies instead).
  bool connectionClose = false;
  bool connectionKeepAlive = false;
  size_t hostFields = 0;  // how many Host fields
};

struct RequestHead {
  std::string_view method;
  std::string_view target;  // as written
  RequestForm form = RequestForm::Origin;
  bool httpsScheme = false;  // absolute-form "https://": only CONNECT carries TLS
  Authority authority;       // Connect and Absolute
  // Absolute: the origin-form to send upstream ("/path?query"); empty when
  // the URI has no path ("http://host" or "http://host?q": send "/" first).
  std::string_view path;
  uint8_t versionMinor = 1;  // HTTP/1.0 or HTTP/1.1
  HeaderFields headers;
  size_t headLength = 0;      // bytes up to and including the blank line
  std::string_view why = "";  // Malformed: what is wrong (static text)

  // Whether the client keeps the connection after this exchange.
  bool keepAlive() const noexcept {
    if (headers.connectionClose) return false;
    return versionMinor >= 1 || headers.connectionKeepAlive;
  }
  bool hasBody() const noexcept { return headers.chunked || headers.contentLength > 0; }
};

struct ResponseHead {
  uint16_t status = 0;
  uint8_t versionMinor = 1;
  std::string_view reason;
  HeaderFields headers;
  size_t headLength = 0;
  std::string_view why = "";
};

// Reads the request head at the start of `input`. Empty lines before the
// request line are skipped (RFC 9112 section 2.2). `maxHead` bounds the
// whole head, those lines included.
ParseStatus parseRequestHead(std::span<const uint8_t> input, size_t maxHead, RequestHead& out) noexcept;

ParseStatus parseResponseHead(std::span<const uint8_t> input, size_t maxHead, ResponseHead& out) noexcept;

// "host:port" (CONNECT, port required) or the authority of an absolute URI
// ("host" or "host:port", `defaultPort` when absent). False with `why` set
// when it is not a host a proxy should connect to: empty, userinfo
// ("user@host"), percent-encoding, an IPv6 zone, a port outside 1..65535,
// characters no host name has, or a numeric form that is not a dotted
// quad ("127.1", "0x7f.0.0.1": resolvers read those as addresses).
bool parseAuthority(std::string_view text, bool portRequired, uint16_t defaultPort, Authority& out,
                    std::string_view& why) noexcept;

// True when `name` equals `field` ignoring ASCII case.
bool fieldIs(std::string_view field, std::string_view name) noexcept;

}  // namespace proxy

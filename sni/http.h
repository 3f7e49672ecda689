// HTTP/1.x request parser: method, request-target and the destination host
// (RFC 9112 §3 request line, §3.2 target forms, §3.2.2 Host, §5 field
// syntax; RFC 9110 §7.2 Host; RFC 3986 §3.2 authority).
//
// Pure function: no I/O, no allocation, no exceptions; any thread. Views
// point into the input. It is deliberately strict where lenient parsers
// disagree (bare LF, obs-fold, whitespace before ':', duplicate or
// conflicting Host): those are request-smuggling differentials, and a
// refusal here only denies the connection (fail-closed).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "sni/status.h"

namespace sni {

// The request line and header section together may not exceed this; the
// caller's per-flow buffer is bounded by it too (HttpHeaderTooLarge).
inline constexpr size_t kMaxHttpHeaderBytes = 16384;

enum class HttpTargetForm : uint8_t { Origin, Absolute, Authority, Asterisk };

struct HttpRequestResult {
  ParseStatus status = ParseStatus::NeedMore;
  MalformedReason reason = MalformedReason::None;
  size_t needBytes = 0;  // NeedMore: at least this many (the header end)
  size_t consumed = 0;   // Ok: bytes up to and including the empty line
  std::string_view method;
  std::string_view target;
  HttpTargetForm targetForm = HttpTargetForm::Origin;
  uint8_t versionMinor = 1;  // HTTP/1.<versionMinor>
  // The destination: from an absolute- or authority-form target if there is
  // one (RFC 9112 §3.2.2), else from Host. Case as sent, trailing dot and
  // port removed; an IPv6 literal without its brackets. Empty only for an
  // HTTP/1.0 request without Host and without authority.
  std::string_view host;
  uint16_t port = 0;  // 0 when no port was given
  bool hostIsIpLiteral = false;
  bool hasHostHeader = false;
};

// Parses the first bytes of a client's TCP stream as an HTTP/1.0 or 1.1
// request; NeedMore until the whole header section (up to the empty line)
// is present, since a second Host line would change the answer.
HttpRequestResult parseHttpRequest(std::span<const uint8_t> stream) noexcept;

}  // namespace sni

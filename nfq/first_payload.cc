#include "nfq/first_payload.h"

#include <array>
#include <string_view>

#include "common/strings.h"

#ifndef EGRESSD_NFQ_WITH_SNI
#define EGRESSD_NFQ_WITH_SNI 0
#endif

#if EGRESSD_NFQ_WITH_SNI
#include "sni/http.h"
#include "sni/quic.h"
#include "sni/status.h"
#include "sni/tls.h"
#endif

namespace nfq {
namespace {

// HTTP is recognised by its method (RFC 9110 section 9): a protocol whose
// first line merely looks like "TOKEN SP ..." (an SSH banner, an SMTP
// command) is not HTTP and is judged by binding, never as broken HTTP.
constexpr std::array<std::string_view, 9> kHttpMethods = {
    "GET ", "POST ", "HEAD ", "PUT ", "DELETE ", "CONNECT ", "OPTIONS ", "TRACE ", "PATCH "};

enum class MethodMatch : uint8_t { No, Prefix, Yes };

MethodMatch matchHttpMethod(std::span<const uint8_t> stream) noexcept {
  const std::string_view text(reinterpret_cast<const char*>(stream.data()), stream.size());
  for (std::string_view method : kHttpMethods) {
    if (text.size() >= method.size()) {
      if (text.substr(0, method.size()) == method) return MethodMatch::Yes;
    } else if (method.substr(0, text.size()) == text) {
      return MethodMatch::Prefix;
    }
  }
  return MethodMatch::No;
}

bool looksLikeTls(std::span<const uint8_t> stream) noexcept {
  // RFC 8446 section 5.1: handshake record (22), legacy major version 3.
  return !stream.empty() && stream[0] == 0x16 && (stream.size() < 2 || stream[1] == 0x03);
}

#if EGRESSD_NFQ_WITH_SNI

PayloadInspection malformed(NameSource source, sni::MalformedReason reason) noexcept {
  PayloadInspection out;
  out.kind = PayloadKind::Malformed;
  out.source = source;
  out.malformed = static_cast<uint8_t>(reason);
  out.malformedName = sni::malformedReasonName(reason);
  return out;
}

PayloadInspection inspectTls(std::span<const uint8_t> stream, std::span<uint8_t> scratch) noexcept {
  const sni::TlsHelloResult result = sni::parseTlsClientHello(stream, scratch);
  PayloadInspection out;
  out.source = NameSource::Sni;
  switch (result.status) {
    case sni::ParseStatus::NeedMore:
      out.kind = PayloadKind::NeedMore;
      out.needBytes = result.needBytes;
      return out;
    case sni::ParseStatus::Malformed:
      return malformed(NameSource::Sni, result.reason);
    case sni::ParseStatus::NotThisProtocol:
      out.kind = PayloadKind::Other;
      out.source = NameSource::None;
      return out;
    case sni::ParseStatus::Ok:
      break;
  }
  out.name = result.hello.serverName;
  out.kind = out.name.empty() ? PayloadKind::NoName : PayloadKind::Name;
  return out;
}

PayloadInspection inspectHttp(std::span<const uint8_t> stream) noexcept {
  const sni::HttpRequestResult result = sni::parseHttpRequest(stream);
  PayloadInspection out;
  out.source = NameSource::Host;
  switch (result.status) {
    case sni::ParseStatus::NeedMore:
      out.kind = PayloadKind::NeedMore;
      out.needBytes = result.needBytes;
      return out;
    case sni::ParseStatus::Malformed:
      return malformed(NameSource::Host, result.reason);
    case sni::ParseStatus::NotThisProtocol:
      out.kind = PayloadKind::Other;
      out.source = NameSource::None;
      return out;
    case sni::ParseStatus::Ok:
      break;
  }
  if (result.hostIsIpLiteral || result.host.empty()) {
    out.kind = PayloadKind::NoName;
  } else {
    out.kind = PayloadKind::Name;
    out.name = result.host;
  }
  return out;
}

PayloadInspection inspectQuic(std::span<const uint8_t> datagram, std::span<uint8_t> scratch,
                              const QuicContext& quic) noexcept {
  PayloadInspection out;
  if (quic.parser == nullptr || quic.flow == nullptr) return out;
  const sni::QuicInitialResult result = quic.parser->parseDatagram(datagram, *quic.flow, scratch);
  out.source = NameSource::Quic;
  switch (result.status) {
    case sni::ParseStatus::NeedMore:
      out.kind = PayloadKind::NeedMore;
      out.needBytes = result.needBytes;
      return out;
    case sni::ParseStatus::Malformed:
      return malformed(NameSource::Quic, result.reason);
    case sni::ParseStatus::NotThisProtocol:
      out.source = NameSource::None;
      return out;
    case sni::ParseStatus::Ok:
      break;
  }
  out.name = result.tls.hello.serverName;
  out.kind = out.name.empty() ? PayloadKind::NoName : PayloadKind::Name;
  return out;
}

#else  // the built-in reader: one TLS record, one HTTP header section

uint16_t be16(const uint8_t* p) noexcept {
  return static_cast<uint16_t>((p[0] << 8) | p[1]);
}

PayloadInspection malformedBuiltin(NameSource source) noexcept {
  PayloadInspection out;
  out.kind = PayloadKind::Malformed;
  out.source = source;
  out.malformed = 1;
  out.malformedName = source == NameSource::Host ? "HttpMalformed" : "TlsMalformed";
  return out;
}

PayloadInspection inspectTls(std::span<const uint8_t> stream, std::span<uint8_t>) noexcept {
  PayloadInspection out;
  out.source = NameSource::Sni;
  // RFC 8446 section 5.1: type(1) version(2) length(2), then the fragment.
  if (stream.size() < 5) {
    out.kind = PayloadKind::NeedMore;
    out.needBytes = 5 - stream.size();
    return out;
  }
  const size_t recordLength = be16(stream.data() + 3);
  if (recordLength == 0 || recordLength > 16384) return malformedBuiltin(NameSource::Sni);
  if (stream.size() < 5 + recordLength) {
    out.kind = PayloadKind::NeedMore;
    out.needBytes = 5 + recordLength - stream.size();
    return out;
  }
  std::span<const uint8_t> hs = stream.subspan(5, recordLength);
  // RFC 8446 section 4: msg_type(1) = client_hello, length(3); the built-in
  // reader wants the whole hello in this record.
  if (hs.size() < 4 || hs[0] != 1) return malformedBuiltin(NameSource::Sni);
  const size_t helloLength = (size_t{hs[1]} << 16) | (size_t{hs[2]} << 8) | hs[3];
  if (helloLength + 4 > hs.size()) return malformedBuiltin(NameSource::Sni);
  std::span<const uint8_t> body = hs.subspan(4, helloLength);
  size_t at = 2 + 32;  // legacy_version, random (section 4.1.2)
  auto skipVector = [&](size_t lengthBytes) noexcept {
    if (at + lengthBytes > body.size()) return false;
    const size_t length = lengthBytes == 1 ? body[at] : be16(body.data() + at);
    at += lengthBytes + length;
    return at <= body.size();
  };
  if (!skipVector(1) || !skipVector(2) || !skipVector(1)) return malformedBuiltin(NameSource::Sni);
  out.kind = PayloadKind::NoName;
  if (at == body.size()) return out;  // no extensions
  if (at + 2 > body.size()) return malformedBuiltin(NameSource::Sni);
  const size_t extensionsEnd = at + 2 + be16(body.data() + at);
  if (extensionsEnd > body.size()) return malformedBuiltin(NameSource::Sni);
  at += 2;
  while (at + 4 <= extensionsEnd) {
    const uint16_t type = be16(body.data() + at);
    const size_t length = be16(body.data() + at + 2);
    at += 4;
    if (at + length > extensionsEnd) return malformedBuiltin(NameSource::Sni);
    if (type == 0) {
      // RFC 6066 section 3: list length(2), name_type(1) = host_name, length(2), name.
      if (length < 5 || body[at + 2] != 0) return malformedBuiltin(NameSource::Sni);
      const size_t nameLength = be16(body.data() + at + 3);
      if (5 + nameLength > length || nameLength == 0) return malformedBuiltin(NameSource::Sni);
      out.kind = PayloadKind::Name;
      out.name = std::string_view(reinterpret_cast<const char*>(body.data() + at + 5), nameLength);
      return out;
    }
    at += length;
  }
  return out;
}

PayloadInspection inspectHttp(std::span<const uint8_t> stream) noexcept {
  PayloadInspection out;
  out.source = NameSource::Host;
  const std::string_view text(reinterpret_cast<const char*>(stream.data()), stream.size());
  const size_t end = text.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (text.size() >= 16384) return malformedBuiltin(NameSource::Host);
    out.kind = PayloadKind::NeedMore;
    out.needBytes = 1;
    return out;
  }
  // RFC 9112 section 3.2.2: the Host field (one, case-insensitive name).
  size_t line = text.find("\r\n");
  out.kind = PayloadKind::NoName;
  while (line < end) {
    const size_t next = text.find("\r\n", line + 2);
    const std::string_view field = text.substr(line + 2, next - line - 2);
    if (field.size() >= 5 && common::equalsIgnoreCase(field.substr(0, 5), "host:")) {
      std::string_view host = common::trimAscii(field.substr(5));
      if (!host.empty() && host.front() == '[') return out;  // IPv6 literal
      host = host.substr(0, host.find(':'));
      if (!host.empty() && host.back() == '.') host.remove_suffix(1);
      if (host.empty()) return malformedBuiltin(NameSource::Host);
      bool numeric = true;
      for (char c : host) numeric = numeric && ((c >= '0' && c <= '9') || c == '.');
      if (numeric) return out;  // an IPv4 literal is not a name
      out.kind = PayloadKind::Name;
      out.name = host;
      return out;
    }
    line = next;
  }
  return out;
}

#endif

}  // namespace

std::string_view nameSourceName(NameSource source) noexcept {
  switch (source) {
    case NameSource::None:
      return "none";
    case NameSource::Sni:
      return "sni";
    case NameSource::Host:
      return "host";
    case NameSource::Quic:
      return "quic";
    case NameSource::Binding:
      return "binding";
  }
  return "unknown";
}

bool inspectorUsesSni() noexcept {
  return EGRESSD_NFQ_WITH_SNI != 0;
}

PayloadInspection inspectFirstPayload(std::span<const uint8_t> stream, bool udp, std::span<uint8_t> scratch,
                                      [[maybe_unused]] const QuicContext& quic) noexcept {
  PayloadInspection out;
  if (udp && stream.empty()) return out;  // an empty datagram carries no Initial
  if (stream.empty()) {
    out.kind = PayloadKind::NeedMore;
    out.needBytes = 1;
    return out;
  }
  if (udp) {
#if EGRESSD_NFQ_WITH_SNI
    return inspectQuic(stream, scratch, quic);
#else
    // The built-in reader cannot decrypt QUIC: no name, so UDP is denied.
    return out;
#endif
  }
  if (looksLikeTls(stream)) return inspectTls(stream, scratch);
  switch (matchHttpMethod(stream)) {
    case MethodMatch::Yes:
      return inspectHttp(stream);
    case MethodMatch::Prefix:
      out.kind = PayloadKind::NeedMore;
      out.needBytes = 1;
      return out;
    case MethodMatch::No:
      break;
  }
  return out;
}

}  // namespace nfq

#include "nfq/first_payload.h"

#include <array>
#include <optional>
#include <string_view>

#include "sni/http.h"
#include "sni/quic.h"
#include "sni/status.h"
#include "sni/tls.h"

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

PayloadInspection malformed(NameSource source, sni::MalformedReason reason) noexcept {
  PayloadInspection out;
  out.kind = PayloadKind::Malformed;
  out.source = source;
  out.malformed = static_cast<uint8_t>(reason);
  out.malformedName = sni::malformedReasonName(reason);
  return out;
}

// Every parser reports NeedMore / Malformed / NotThisProtocol the same way;
// only Ok differs. Returns nullopt for Ok.
template <typename Result>
std::optional<PayloadInspection> unlessOk(const Result& result, NameSource source) noexcept {
  PayloadInspection out;
  switch (result.status) {
    case sni::ParseStatus::NeedMore:
      out.kind = PayloadKind::NeedMore;
      out.source = source;
      out.needBytes = result.needBytes;
      return out;
    case sni::ParseStatus::Malformed:
      return malformed(source, result.reason);
    case sni::ParseStatus::NotThisProtocol:
      out.kind = PayloadKind::Other;
      return out;
    case sni::ParseStatus::Ok:
      break;
  }
  return std::nullopt;
}

PayloadInspection inspectTls(std::span<const uint8_t> stream, std::span<uint8_t> scratch) noexcept {
  const sni::TlsHelloResult result = sni::parseTlsClientHello(stream, scratch);
  if (auto early = unlessOk(result, NameSource::Sni)) return *early;
  PayloadInspection out;
  out.source = NameSource::Sni;
  out.name = result.hello.serverName;
  out.kind = out.name.empty() ? PayloadKind::NoName : PayloadKind::Name;
  return out;
}

PayloadInspection inspectHttp(std::span<const uint8_t> stream) noexcept {
  const sni::HttpRequestResult result = sni::parseHttpRequest(stream);
  if (auto early = unlessOk(result, NameSource::Host)) return *early;
  PayloadInspection out;
  out.source = NameSource::Host;
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
  if (auto early = unlessOk(result, NameSource::Quic)) return *early;
  out.source = NameSource::Quic;
  out.name = result.tls.hello.serverName;
  out.kind = out.name.empty() ? PayloadKind::NoName : PayloadKind::Name;
  return out;
}

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

PayloadInspection inspectFirstPayload(std::span<const uint8_t> stream, bool udp, std::span<uint8_t> scratch,
                                      const QuicContext& quic) noexcept {
  PayloadInspection out;
  if (udp && stream.empty()) return out;  // an empty datagram carries no Initial
  if (stream.empty()) {
    out.kind = PayloadKind::NeedMore;
    out.needBytes = 1;
    return out;
  }
  if (udp) return inspectQuic(stream, scratch, quic);
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

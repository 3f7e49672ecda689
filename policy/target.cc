#include "policy/target.h"

#include <idn2.h>

#include <cstdlib>
#include <memory>

#include "common/strings.h"

namespace policy {

namespace {

constexpr size_t kMaxLabelLength = 63;

TargetParse refuse(TargetError error, std::string detail = {}) {
  TargetParse result;
  result.error = error;
  result.detail = std::move(detail);
  return result;
}

TargetParse accept(Target target) {
  TargetParse result;
  result.target = std::move(target);
  return result;
}

// "203.0.113.7/24" → "203.0.113.0/24", "2001:db8::1/32" → "2001:db8::/32":
// the network the user most likely meant, for the host-bits hint.
std::string maskedNetwork(std::string_view text) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) return {};
  auto ip = common::parseIpAddress(text.substr(0, slash));
  auto prefix = common::parseDecimal(text.substr(slash + 1), 128);
  if (!ip || !prefix || *prefix > ip->bitLength()) return {};
  common::IpNetwork network{*ip, static_cast<uint8_t>(*prefix)};
  for (unsigned bit = *prefix; bit < ip->bitLength(); ++bit) {
    network.address.bytes[bit / 8] &= static_cast<uint8_t>(~(0x80U >> (bit % 8)));
  }
  return network.toString();
}

TargetParse hostBitsSet(std::string_view host, uint16_t port, bool v6) {
  const std::string network = maskedNetwork(host);
  if (network.empty()) return refuse(TargetError::HostBitsSet, std::string(host));
  const std::string suggestion = (v6 ? "[" + network + "]" : network) + ":" + std::to_string(port);
  return refuse(TargetError::HostBitsSet,
                std::string(host) + " is inside " + network + "; write \"" + suggestion + "\"");
}

bool isDigitsAndDots(std::string_view s) {
  for (char c : s) {
    if ((c < '0' || c > '9') && c != '.') return false;
  }
  return !s.empty();
}

// Checks a lower-case name without wildcard against docs/rules.md: labels of
// 1..63 bytes from a-z 0-9 -, not starting or ending with '-', at most 253
// bytes, a top label that is not all digits (that would be an IPv4 typo).
// An A-label ("xn--" and Punycode, RFC 3492) must decode: "xn--bcher-kv"
// (cut short) or "xn--zz" names no internationalised name, so no one can
// have meant it. Only the decoding is checked, not IDNA2008's character
// rules, which would refuse names that exist (emoji domains).
bool decodesAsPunycode(std::string_view label) {
  const std::string input(label);
  char* output = nullptr;
  const int rc = idn2_to_unicode_8z8z(input.c_str(), &output, 0);
  const std::unique_ptr<char, decltype(&idn2_free)> owned(output, &idn2_free);
  return rc == IDN2_OK && output != nullptr;
}

std::optional<TargetParse> checkName(std::string_view name, size_t extraLength) {
  if (name.size() + extraLength > kMaxNameLength) {
    return refuse(TargetError::NameTooLong, std::to_string(name.size() + extraLength) + " bytes");
  }
  size_t start = 0;
  std::string_view lastLabel;
  while (true) {
    const size_t dot = name.find('.', start);
    const std::string_view label =
        name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty()) return refuse(TargetError::EmptyLabel);
    if (label.size() > kMaxLabelLength) {
      return refuse(TargetError::LabelTooLong, "\"" + std::string(label.substr(0, 20)) + "...\" has " +
                                                   std::to_string(label.size()) + " bytes");
    }
    for (char c : label) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
      if (!ok) {
        if (c == '*') return refuse(TargetError::WildcardPlacement);
        return refuse(TargetError::BadCharacter,
                      std::string("'") + c + "' in label \"" + std::string(label) + "\"");
      }
    }
    if (label.front() == '-' || label.back() == '-') {
      return refuse(TargetError::HyphenPlacement, "label \"" + std::string(label) + "\"");
    }
    if (label.starts_with("xn--") && !decodesAsPunycode(label)) {
      return refuse(TargetError::BadALabel, "label \"" + std::string(label) + "\"");
    }
    lastLabel = label;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  bool allDigits = true;
  for (char c : lastLabel) allDigits = allDigits && c >= '0' && c <= '9';
  if (allDigits) return refuse(TargetError::NumericTopLabel, "\"" + std::string(lastLabel) + "\"");
  return std::nullopt;
}

TargetParse parseBracketedHost(std::string_view host, uint16_t port) {
  if (host.find('%') != std::string_view::npos)
    return refuse(TargetError::BadIpv6, "zone identifiers are not allowed");
  if (host.find('/') != std::string_view::npos) {
    auto parsed = common::parseIpNetwork(host);
    if (!parsed.network || parsed.network->address.family != common::IpFamily::V6) {
      if (parsed.error == common::NetworkParseError::HostBitsSet) return hostBitsSet(host, port, true);
      if (parsed.error == common::NetworkParseError::BadPrefix)
        return refuse(TargetError::BadPrefix, std::string(host));
      return refuse(TargetError::BadIpv6, "\"" + std::string(host) + "\"");
    }
    Target target;
    target.kind = parsed.network->prefixLength == 128 ? TargetKind::Address : TargetKind::Network;
    target.network = *parsed.network;
    target.port = port;
    return accept(std::move(target));
  }
  auto ip = common::parseIpAddress(host);
  if (!ip || ip->family != common::IpFamily::V6)
    return refuse(TargetError::BadIpv6, "\"" + std::string(host) + "\"");
  Target target;
  target.kind = TargetKind::Address;
  target.network = common::IpNetwork{*ip, 128};
  target.port = port;
  return accept(std::move(target));
}

TargetParse parseIpv4Host(std::string_view host, uint16_t port) {
  if (host.find('/') != std::string_view::npos) {
    auto parsed = common::parseIpNetwork(host);
    if (!parsed.network || parsed.network->address.family != common::IpFamily::V4) {
      if (parsed.error == common::NetworkParseError::HostBitsSet) return hostBitsSet(host, port, false);
      if (parsed.error == common::NetworkParseError::BadPrefix)
        return refuse(TargetError::BadPrefix, std::string(host));
      return refuse(TargetError::BadIpv4, "\"" + std::string(host) + "\"");
    }
    Target target;
    target.kind = parsed.network->prefixLength == 32 ? TargetKind::Address : TargetKind::Network;
    target.network = *parsed.network;
    target.port = port;
    return accept(std::move(target));
  }
  auto ip = common::parseIpAddress(host);
  if (!ip || ip->family != common::IpFamily::V4)
    return refuse(TargetError::BadIpv4, "\"" + std::string(host) + "\"");
  Target target;
  target.kind = TargetKind::Address;
  target.network = common::IpNetwork{*ip, 32};
  target.port = port;
  return accept(std::move(target));
}

TargetParse parseNameHost(std::string_view rawHost, uint16_t port, const PublicSuffixList& suffixes) {
  std::string host = common::toLowerAscii(rawHost);
  if (host == "*.") {
    // Not world access with a trailing dot: "*." is a wildcard over the root.
    return refuse(TargetError::EmptyLabel, "\"*.\" has nothing after the wildcard; write \"*:" +
                                               std::to_string(port) + "\" if world access is really meant");
  }
  if (host.size() > 1 && host.back() == '.') host.pop_back();  // "a.example.com." is the same name
  if (host == "*") {
    Target target;
    target.kind = TargetKind::AnyName;
    target.port = port;
    return accept(std::move(target));
  }
  if (host.starts_with("*.")) {
    const std::string_view suffix = std::string_view(host).substr(2);
    if (suffix.find('*') != std::string_view::npos) return refuse(TargetError::WildcardPlacement);
    if (auto problem = checkName(suffix, 2)) return *problem;
    if (suffixes.isPublicSuffix(suffix)) {
      return refuse(TargetError::PublicSuffixWildcard,
                    "\"" + std::string(suffix) + "\" is a public suffix; use \"*:" + std::to_string(port) +
                        "\" if world access is really meant");
    }
    Target target;
    target.kind = TargetKind::WildcardName;
    target.name = std::string(suffix);
    target.port = port;
    return accept(std::move(target));
  }
  if (auto problem = checkName(host, 0)) return *problem;
  Target target;
  target.kind = TargetKind::ExactName;
  target.name = std::move(host);
  target.port = port;
  return accept(std::move(target));
}

}  // namespace

std::string_view describe(TargetError error) noexcept {
  switch (error) {
    case TargetError::Empty:
      return "empty target; expected HOST:PORT";
    case TargetError::Whitespace:
      return "whitespace or control characters are not allowed";
    case TargetError::MissingPort:
      return "missing port; expected HOST:PORT, e.g. api.example.com:443";
    case TargetError::PortWildcard:
      return "port wildcards are not allowed; name one port (1-65535)";
    case TargetError::PortNotNumber:
      return "port is not a number; expected 1-65535";
    case TargetError::PortOutOfRange:
      return "port out of range; expected 1-65535 without leading zeros";
    case TargetError::EmptyHost:
      return "missing host before the port";
    case TargetError::WildcardPlacement:
      return "a wildcard is only allowed as the whole first label (\"*.example.org\") or as \"*\"";
    case TargetError::PublicSuffixWildcard:
      return "wildcard directly over a public suffix";
    case TargetError::EmptyLabel:
      return "empty label (\"..\", or a leading dot)";
    case TargetError::LabelTooLong:
      return "label longer than 63 bytes";
    case TargetError::NameTooLong:
      return "name longer than 253 bytes";
    case TargetError::BadCharacter:
      return "invalid character; names use a-z, 0-9 and '-'";
    case TargetError::NonAsciiName:
      return "non-ASCII name; write internationalised names as A-labels (xn--...)";
    case TargetError::HyphenPlacement:
      return "a label must not start or end with '-'";
    case TargetError::NumericTopLabel:
      return "the last label of a name must not be all digits (an IPv4 typo?)";
    case TargetError::BadIpv4:
      return "invalid IPv4 address";
    case TargetError::BadIpv6:
      return "invalid IPv6 address";
    case TargetError::Ipv6NeedsBrackets:
      return "IPv6 addresses must be in brackets, e.g. [2001:db8::1]:443";
    case TargetError::BadPrefix:
      return "invalid prefix length";
    case TargetError::HostBitsSet:
      return "network has host bits set; use the network address";
    case TargetError::UnclosedBracket:
      return "'[' without matching ']'";
    case TargetError::BadALabel:
      return "not a valid A-label: \"xn--\" must be followed by Punycode (RFC 3492) that decodes; write the "
             "name as you would type it and lint gives its A-label";
  }
  return "invalid target";
}

std::string TargetParse::reason() const {
  std::string text(describe(error));
  if (!detail.empty()) {
    text += " (";
    text += detail;
    text += ")";
  }
  return text;
}

std::string Target::canonical() const {
  std::string portText = ":" + std::to_string(port);
  switch (kind) {
    case TargetKind::ExactName:
      return name + portText;
    case TargetKind::WildcardName:
      return "*." + name + portText;
    case TargetKind::AnyName:
      return "*" + portText;
    case TargetKind::Address:
      return network.address.family == common::IpFamily::V6
                 ? "[" + network.address.toString() + "]" + portText
                 : network.address.toString() + portText;
    case TargetKind::Network:
      return network.address.family == common::IpFamily::V6 ? "[" + network.toString() + "]" + portText
                                                            : network.toString() + portText;
  }
  return portText;
}

TargetParse parseTarget(std::string_view text, const PublicSuffixList& suffixes) {
  if (text.empty()) return refuse(TargetError::Empty);
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte == 0x7f) return refuse(TargetError::Whitespace);
  }
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) {
      const size_t colon = text.rfind(':');
      const std::string_view host = text.substr(0, colon);
      const bool wildcard = host.starts_with("*.");
      const auto converted = toALabel(wildcard ? host.substr(2) : host);
      if (!converted) return refuse(TargetError::NonAsciiName, "not a valid internationalised name");
      const std::string aLabel = (wildcard ? "*." : "") + *converted;
      std::string detail = "\"";
      detail.append(host).append("\" is \"").append(aLabel).append("\"; write \"").append(aLabel);
      if (colon != std::string_view::npos) detail += text.substr(colon);
      detail += "\"";
      return refuse(TargetError::NonAsciiName, std::move(detail));
    }
  }

  std::string_view host;
  std::string_view portText;
  bool bracketed = false;
  if (text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) return refuse(TargetError::UnclosedBracket);
    host = text.substr(1, close - 1);
    const std::string_view rest = text.substr(close + 1);
    if (rest.empty()) return refuse(TargetError::MissingPort);
    if (rest.front() == '/') {
      // "[2001:db8::]/32:443": the prefix belongs inside the brackets.
      const size_t colon = rest.find(':');
      const std::string_view prefix = rest.substr(0, colon);
      const std::string port = colon == std::string_view::npos ? ":PORT" : std::string(rest.substr(colon));
      return refuse(TargetError::BadPrefix, "the prefix goes inside the brackets: write \"[" +
                                                std::string(host) + std::string(prefix) + "]" + port + "\"");
    }
    if (rest.front() != ':') return refuse(TargetError::MissingPort, "expected ':' after ']'");
    portText = rest.substr(1);
    bracketed = true;
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return refuse(TargetError::MissingPort);
    host = text.substr(0, colon);
    portText = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      // Either an unbracketed IPv6 address or garbage such as "a:b:443".
      const std::string_view withoutPrefix = host.substr(0, host.find('/'));
      if (common::parseIpAddress(withoutPrefix) || common::parseIpAddress(text.substr(0, text.find('/')))) {
        return refuse(TargetError::Ipv6NeedsBrackets);
      }
      if (portText == "*") return refuse(TargetError::PortWildcard);
      return refuse(TargetError::BadCharacter, "':' in host \"" + std::string(host) + "\"");
    }
  }

  if (portText.empty()) return refuse(TargetError::MissingPort);
  if (portText.find('*') != std::string_view::npos) return refuse(TargetError::PortWildcard);
  for (char c : portText) {
    if (c < '0' || c > '9') return refuse(TargetError::PortNotNumber, "\"" + std::string(portText) + "\"");
  }
  const auto port = common::parseDecimal(portText, 65535);
  if (!port || *port == 0) return refuse(TargetError::PortOutOfRange, "\"" + std::string(portText) + "\"");
  const auto port16 = static_cast<uint16_t>(*port);

  if (host.empty()) return refuse(TargetError::EmptyHost);
  if (bracketed) return parseBracketedHost(host, port16);
  if (host.find('[') != std::string_view::npos || host.find(']') != std::string_view::npos) {
    return refuse(TargetError::BadCharacter, "brackets are only for IPv6 addresses: \"[2001:db8::1]:443\"");
  }
  const std::string_view hostWithoutPrefix = host.substr(0, host.find('/'));
  if (isDigitsAndDots(hostWithoutPrefix)) return parseIpv4Host(host, port16);
  if (host.find('/') != std::string_view::npos) {
    return refuse(TargetError::BadCharacter, "'/' is only allowed in IP networks such as 203.0.113.0/24");
  }
  return parseNameHost(host, port16, suffixes);
}

std::optional<std::string> toALabel(std::string_view name) {
  if (name.empty() || name.size() > 1024) return std::nullopt;
  const std::string input(name);
  char* output = nullptr;
  // IDNA2008 with the UTS #46 mapping (lower-casing, full-width dots), as
  // browsers and curl do: "Bücher.example" → "xn--bcher-kva.example".
  const int rc = idn2_to_ascii_8z(input.c_str(), &output, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
  const std::unique_ptr<char, decltype(&idn2_free)> owned(output, &idn2_free);
  if (rc != IDN2_OK || output == nullptr) return std::nullopt;
  return std::string(output);
}

size_t normalizeLookupName(std::string_view name, char* out, size_t outSize) noexcept {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > kMaxNameLength || name.size() > outSize) return 0;
  for (size_t i = 0; i < name.size(); ++i) out[i] = common::asciiLower(name[i]);
  return name.size();
}

}  // namespace policy

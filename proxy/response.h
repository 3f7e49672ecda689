// What the proxy itself answers: the CONNECT acknowledgement, and one-line
// text errors a developer can act on (which target, why, how to allow it).
// Each error names its reason in an X-Egressd-Reason header and closes the
// connection. Pure; allocates the text (once per refused request).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/decision.h"

namespace proxy {

inline constexpr std::string_view kConnectEstablished = "HTTP/1.1 200 Connection established\r\n\r\n";

// The status code of a refusal for `reason` (403 for policy denials).
uint16_t statusFor(ProxyReason reason) noexcept;

// The whole response: status line, Content-Type, Content-Length,
// Connection: close, X-Egressd-Reason, and `body` plus a newline.
std::string errorResponse(ProxyReason reason, std::string_view body);

// The body of a policy denial, e.g.
//   egressd denied CONNECT evil.example.com:443: no rule allows
//   evil.example.com on port 443 (name_not_allowed). To allow it, add
//   "evil.example.com:443" to the spec.targets of an EgressRuleSet; check
//   with: egressctl explain evil.example.com:443
std::string denialBody(std::string_view method, const Authority& target, ProxyReason reason);

// The body of any other refusal ("egressd: malformed request: ...").
std::string problemBody(ProxyReason reason, std::string_view detail);

}  // namespace proxy

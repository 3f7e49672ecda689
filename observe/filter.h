// The `egressctl watch` filter language, modelled on tcpdump's (pcap-filter(7)):
//
//   expr    := or
//   or      := and ( ("or" | "||") and )*
//   and     := unary ( ("and" | "&&")? unary )*     (juxtaposition = and, as in tcpdump)
//   unary   := ("not" | "!") unary | "(" expr ")" | primitive
//   primitive :=
//       [QUAL] host ADDRESS             IPv4/IPv6 address ([brackets] allowed)
//     | [QUAL] net CIDR                 e.g. 10.0.0.0/8, 2001:db8::/32 (host bits must be 0)
//     | [QUAL] port N                   1..65535, or a range N-M; "portrange N-M" too;
//                                       or a service name as in /etc/services (https, http,
//                                       domain, ssh, ...; "dns" is 53 too)
//     | [QUAL] ADDRESS | [QUAL] CIDR    a bare address is host, a bare network net
//     | name PATTERN                    exact name, "*.example.com" (one or more labels
//                                       in front, not example.com itself) or "*" (any name)
//     | sni PATTERN                     as name, but only names read from a TLS ClientHello
//                                       or QUIC Initial (not Host headers, bindings, queries)
//     | verdict allow|deny|audit
//     | proto tcp|udp|icmp|icmp6|N      also bare "tcp", "udp", "icmp", "icmp6"
//     | ip | ip6                        address family
//     | dns                             DNS events only
//     | proxy                           explicit proxy requests only (CONNECT, GET http://...)
//     | qtype TYPE                      DNS events of that query type (A, AAAA, TXT, HTTPS,
//                                       TYPE65, a number)
//     | rcode RCODE                     DNS events answered with that rcode (NOERROR,
//                                       NXDOMAIN, SERVFAIL, REFUSED, a number)
//     | reason REASON | reason PREFIX*  the decision's reason (not_allowed, sni_*)
//     | ruleset NS/NAME | ruleset NS/*  decided by that rule set (or any of NS)
//   QUAL := src | dst | src or dst | src and dst
//   Without a qualifier, host/net/port match either end. Keywords are
//   case-insensitive. Precedence: not > and > or (unlike tcpdump, where and
//   and or are equal). After and/or/not a bare value repeats the previous
//   primitive's kind: "port 80 or 443". IPv4 addresses and their IPv4-mapped
//   IPv6 forms are the same host. docs/watch.md is the user reference.
//
// The empty filter matches everything. Parsing is pure; errors point at the
// offending token (byte offset and length) with a message a user
// understands. Matching is allocation-free and noexcept (it runs on the
// control socket's fan-out path for every event).
//
// Thread-safety: a Filter is immutable after parsing; matches() may be
// called from any number of threads at once.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

#include "observe/event.h"

namespace observe {

// Limits for filters from socket clients (hostile input): longer filters and
// deeper nesting (parentheses and "not") are refused with a FilterError.
inline constexpr size_t kMaxFilterLength = 4096;
inline constexpr size_t kMaxFilterDepth = 64;

struct FilterError {
  size_t offset = 0;  // byte offset of the bad token in the filter text
  size_t length = 0;  // its length (0 at end of input)
  std::string message;
  // "verdict maybe\n        ^^^^^ expected allow, deny or audit after 'verdict'"
  // Two lines (text, then carets and the message). Control and non-ASCII
  // bytes show as '?' so that the caret stays under the token; a long
  // filter is cut to a window around the token.
  std::string pointAt(std::string_view text) const;
};

class Filter {
 public:
  // Matches everything.
  Filter();
  ~Filter();
  Filter(Filter&&) noexcept;
  Filter& operator=(Filter&&) noexcept;

  bool matches(const Event& event) const noexcept;
  // The normalized text (for logs and the control socket's echo).
  const std::string& text() const noexcept { return text_; }

 private:
  friend std::variant<Filter, FilterError> parseFilter(std::string_view text);
  struct Program;
  std::unique_ptr<const Program> program_;
  std::string text_;
};

std::variant<Filter, FilterError> parseFilter(std::string_view text);

}  // namespace observe

// The PROXY protocol header a load balancer puts in front of a TCP
// connection (HAProxy `send-proxy` / `send-proxy-v2`, an AWS NLB with proxy
// protocol v2 on its target group) or of each UDP datagram (dnsdist
// `useProxyProtocol`) to name the client it stands for
// (haproxy.org/download/2.9/doc/proxy-protocol.txt, "the spec" below).
//
// Pure and bounds-checked (STYLE.md rule 2): reads a span, returns a
// status and the header's addresses; no allocation, no I/O, noexcept.
// Strict: anything the spec does not describe is Malformed, and the
// callers (proxy/server.cc, dns/balancer_header.h) read a header only from
// the load balancers their configuration lists, never from anyone else.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "common/socket_address.h"

namespace common {

enum class ProxyHeaderStatus : uint8_t {
  Ok,               // a complete header of `length` bytes
  NeedMore,         // a valid beginning; fewer bytes than the header needs
  NotThisProtocol,  // neither the v1 "PROXY " nor the v2 signature
  Malformed,        // a signature, then something the spec does not allow: `why`
};

std::string_view proxyHeaderStatusName(ProxyHeaderStatus status) noexcept;

// Spec section 2.1: the longest v1 line, "PROXY UNKNOWN" and two IPv6
// addresses with ports, CRLF included.
inline constexpr size_t kMaxProxyV1Bytes = 107;
// Spec section 2.2: 16 fixed bytes then `len` bytes of addresses and TLVs.
// Longer is refused: an IPv6 address block is 36 bytes, and the TLVs load
// balancers send (AWS's VPC endpoint id, HAProxy's unique id, ALPN,
// authority) fit many times over.
inline constexpr size_t kMaxProxyV2Bytes = 16 + 1024;
inline constexpr size_t kMaxProxyHeaderBytes = kMaxProxyV2Bytes;

struct ProxyHeader {
  size_t length = 0;  // bytes of the header: drain them, the client's own bytes follow
  int version = 0;    // 1 or 2
  // True for a v2 LOCAL command (the balancer's own health check), v1
  // "UNKNOWN", and v2 PROXY with an unspecified or UNIX family: no client
  // is named, the connection is the balancer's own (spec 2.1, 2.2).
  bool local = false;
  SocketAddress source;       // the client, when !local
  SocketAddress destination;  // what the client connected to, when !local
  std::string_view why;       // Malformed: what is wrong (static text)
};

// What carries the header, and so what its v2 transport byte must say
// (spec 2.2: 0x1 STREAM, 0x2 DGRAM; UNSPEC only with LOCAL or an UNSPEC
// family). v1 names TCP connections only: over a datagram it is Malformed.
enum class ProxyCarrier : uint8_t { Stream, Datagram };

// Parses the header at the start of `input`. A datagram's header is whole
// or nothing: there NeedMore means truncated.
ProxyHeaderStatus parseProxyHeader(std::span<const uint8_t> input, ProxyHeader& out,
                                   ProxyCarrier carrier = ProxyCarrier::Stream) noexcept;

}  // namespace common

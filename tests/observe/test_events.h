// Fixture events shared by the observe tests: a few real-looking decisions
// (IPv4 and IPv6, TCP, UDP/QUIC, ICMP, DNS over UDP and TCP).
#pragma once

#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

#include "common/ip_address.h"
#include "observe/event.h"

namespace observetest {

inline common::IpAddress ip(std::string_view text) {
  const auto parsed = common::parseIpAddress(text);
  if (!parsed) throw std::invalid_argument("bad test address " + std::string(text));
  return *parsed;
}

// 2026-11-26T12:00:01.123456Z
inline std::chrono::system_clock::time_point noon() {
  using namespace std::chrono;
  return system_clock::time_point(sys_days(year(2026) / November / 26) + hours(12) + seconds(1) +
                                  microseconds(123456));
}

struct EventBuilder {
  observe::Event event;

  EventBuilder(std::string_view src, uint16_t srcPort, std::string_view dst, uint16_t dstPort,
               uint8_t protocol) {
    event.time = noon();
    event.src = ip(src);
    event.dst = ip(dst);
    event.srcPort = srcPort;
    event.dstPort = dstPort;
    event.protocol = protocol;
  }
  EventBuilder& verdict(observe::EventVerdict v, std::string_view reason = "") {
    event.verdict = v;
    event.reason = reason;
    return *this;
  }
  EventBuilder& name(std::string_view text, std::string_view source) {
    event.nameLength = static_cast<uint8_t>(text.size());
    std::memcpy(event.name.data(), text.data(), text.size());
    event.nameSource = source;
    return *this;
  }
  EventBuilder& ruleSets(std::string_view text) {
    event.ruleSetsLength = static_cast<uint16_t>(text.size());
    std::memcpy(event.ruleSets.data(), text.data(), text.size());
    return *this;
  }
  EventBuilder& dns(uint16_t qtype, std::string_view outcome, uint16_t rcode, uint16_t answers) {
    event.kind = observe::EventKind::Dns;
    event.qtype = qtype;
    event.dnsOutcome = outcome;
    event.rcode = rcode;
    event.answers = answers;
    return *this;
  }
  EventBuilder& queue(uint16_t q) {
    event.queue = q;
    return *this;
  }
  EventBuilder& pod(std::string_view ns, std::string_view name, std::string_view workload,
                    std::string_view serviceAccount) {
    if (!event.client.assign(ns, name, workload, serviceAccount)) {
      throw std::invalid_argument("test pod identity too long");
    }
    return *this;
  }
  EventBuilder& match(std::string_view m) {
    event.match = m;
    return *this;
  }
  operator observe::Event() const { return event; }  // NOLINT(google-explicit-constructor)
};

using V = observe::EventVerdict;

// TCP to 203.0.113.7:443, SNI api.example.com, allowed by two rule sets.
inline observe::Event tlsAllowed() {
  return EventBuilder("10.0.1.2", 51234, "203.0.113.7", 443, 6)
      .verdict(V::Allow, "sni_allowed")
      .name("api.example.com", "sni")
      .ruleSets("default/my-app-targets,team-a/web")
      .match("exact")
      .queue(3);
}

// Plain HTTP to a name that is not allowed.
inline observe::Event httpDenied() {
  return EventBuilder("10.0.1.2", 40000, "198.51.100.9", 80, 6)
      .verdict(V::Deny, "host_not_allowed")
      .name("evil.example", "host");
}

// QUIC over IPv6 in audit mode.
inline observe::Event quicAudit() {
  return EventBuilder("2001:db8::5", 5555, "2001:db8:1::7", 443, 17)
      .verdict(V::Audit, "quic_not_allowed")
      .name("video.cdn.example.net", "quic");
}

inline observe::Event icmpDenied() {
  return EventBuilder("10.0.1.3", 0, "192.0.2.8", 0, 1).verdict(V::Deny, "icmp_denied");
}

// IPv4-mapped endpoints (a dual-stack socket), name from a DNS binding.
inline observe::Event mappedAllowed() {
  return EventBuilder("::ffff:10.0.1.9", 1000, "::ffff:192.0.2.1", 8443, 6)
      .verdict(V::Allow, "bound_address")
      .name("www.example.com", "binding")
      .ruleSets("kube-system/registry")
      .match("wildcard");
}

inline observe::Event dnsDenied() {
  return EventBuilder("10.0.1.2", 40001, "10.0.1.1", 53, 17)
      .verdict(V::Deny, "not_allowed")
      .name("evil.example", "")
      .dns(1, "denied", 3, 0);
}

inline observe::Event dnsAllowedV6() {
  return EventBuilder("fd00::2", 3333, "fd00::1", 53, 6)
      .verdict(V::Allow)
      .name("api.example.com", "")
      .ruleSets("default/my-app-targets")
      .dns(28, "cache_hit", 0, 2);
}

// A denied connection from a known pod (attribution).
inline observe::Event podDenied() {
  return EventBuilder("10.0.1.4", 41000, "198.51.100.9", 443, 6)
      .verdict(V::Deny, "sni_not_allowed")
      .name("evil.example", "sni")
      .pod("team-a", "web-7d9c6b5f4-x2x9q", "Deployment/web", "web-sa")
      .queue(1);
}

// A DNS query from a pod of a StatefulSet.
inline observe::Event podDns() {
  return EventBuilder("10.0.2.7", 40002, "10.0.1.1", 53, 17)
      .verdict(V::Allow)
      .name("api.example.com", "")
      .ruleSets("default/my-app-targets")
      .pod("team-b", "db-0", "StatefulSet/db", "default")
      .dns(1, "allowed", 0, 1);
}

}  // namespace observetest

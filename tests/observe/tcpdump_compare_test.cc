// The filter language claims to be tcpdump's where they overlap: for
// filters written in the common subset (host/net/port/portrange with
// src/dst, tcp/udp/icmp/icmp6/ip/ip6, not/and/or, fully parenthesized where
// and and or mix, because tcpdump gives them equal precedence), our
// Filter must pick exactly the packets that tcpdump's own compiler picks
// from a pcap of the same flows.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "observe/filter.h"
#include "observe/pcap.h"
#include "test_events.h"

using observe::Event;
using namespace observetest;

namespace {

struct Flow {
  const char* src;
  uint16_t srcPort;
  const char* dst;
  uint16_t dstPort;
  uint8_t protocol;
};

// 1 TCP, 17 UDP, 1 ICMP, 58 ICMPv6.
const Flow kFlows[] = {
    {"10.0.1.2", 51234, "203.0.113.7", 443, 6},      {"10.0.1.2", 40000, "198.51.100.9", 80, 6},
    {"2001:db8::5", 5555, "2001:db8:1::7", 443, 17}, {"10.0.1.3", 0, "192.0.2.8", 0, 1},
    {"10.0.1.2", 40001, "10.0.1.1", 53, 17},         {"fd00::2", 3333, "fd00::1", 53, 6},
    {"10.0.5.5", 22, "10.0.1.2", 60000, 6},          {"2001:db8::9", 0, "2001:db8::1", 0, 58},
    {"192.0.2.77", 5500, "10.0.1.2", 22, 6},         {"10.0.1.4", 1000, "198.51.100.1", 1023, 17},
    {"2001:db8:1::8", 8080, "2001:db8::5", 1, 6},
};

void put16(std::vector<uint8_t>& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}

// A minimal but well-formed packet of the flow: IPv4 (RFC 791) or IPv6
// (RFC 8200) header, then a TCP (20 bytes, SYN), UDP (8) or ICMP echo (8)
// header.
std::vector<uint8_t> packet(const Flow& flow) {
  const common::IpAddress src = ip(flow.src);
  const common::IpAddress dst = ip(flow.dst);
  const size_t transport = flow.protocol == 6 ? 20 : 8;
  const bool v4 = src.family == common::IpFamily::V4;
  const size_t ipLength = v4 ? 20 : 40;
  std::vector<uint8_t> p(ipLength + transport, 0);
  if (v4) {
    p[0] = 0x45;
    put16(p, 2, static_cast<uint16_t>(p.size()));
    p[8] = 64;
    p[9] = flow.protocol;
    std::memcpy(&p[12], src.bytes.data(), 4);
    std::memcpy(&p[16], dst.bytes.data(), 4);
  } else {
    p[0] = 0x60;
    put16(p, 4, static_cast<uint16_t>(transport));
    p[6] = flow.protocol;
    p[7] = 64;
    std::memcpy(&p[8], src.bytes.data(), 16);
    std::memcpy(&p[24], dst.bytes.data(), 16);
  }
  uint8_t* t = &p[ipLength];
  if (flow.protocol == 6 || flow.protocol == 17) {
    t[0] = static_cast<uint8_t>(flow.srcPort >> 8);
    t[1] = static_cast<uint8_t>(flow.srcPort);
    t[2] = static_cast<uint8_t>(flow.dstPort >> 8);
    t[3] = static_cast<uint8_t>(flow.dstPort);
    if (flow.protocol == 6) {
      t[12] = 5 << 4;
      t[13] = 0x02;
    } else {
      t[5] = 8;
    }
  } else {
    t[0] = flow.protocol == 1 ? 8 : 128;  // echo request
  }
  return p;
}

// Which flows (by index, the record's timestamp in seconds) tcpdump prints.
std::set<size_t> tcpdumpMatches(const std::string& file, const std::string& filter) {
  const std::string command = "tcpdump -nn -tt -r " + file + " '" + filter + "' 2>/dev/null";
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::set<size_t> matched;
  char line[512];
  while (std::fgets(line, sizeof line, pipe) != nullptr) matched.insert(std::stoul(line) - 1000);
  const int status = ::pclose(pipe);
  INFO(command);
  REQUIRE(status == 0);
  return matched;
}

}  // namespace

TEST_CASE("filter: agrees with tcpdump on the common subset") {
  const std::filesystem::path file =
      std::filesystem::temp_directory_path() / ("observe_compare_" + std::to_string(::getpid()) + ".pcap");
  std::vector<Event> events;
  {
    observe::PcapWriter writer;
    std::string error;
    REQUIRE(writer.open(file.string(), error));
    for (size_t i = 0; i < std::size(kFlows); ++i) {
      const Flow& f = kFlows[i];
      const auto bytes = packet(f);
      const auto time = std::chrono::system_clock::time_point(std::chrono::seconds(1000 + i));
      REQUIRE(writer.write(time, bytes, static_cast<uint32_t>(bytes.size())));
      events.push_back(EventBuilder(f.src, f.srcPort, f.dst, f.dstPort, f.protocol));
    }
  }
  const std::vector<std::string> filters = {
      "host 10.0.1.2",
      "src host 10.0.1.2",
      "dst host 203.0.113.7",
      "src or dst host 10.0.1.2",
      "src and dst net 10.0.0.0/8",
      "net 2001:db8::/32",
      "dst net 2001:db8:1::/48",
      "src net 2001:db8:1::/48",
      "net 192.0.2.0/24 or net 198.51.100.0/24",
      "port 443",
      "src port 51234",
      "dst port 80 or 443",
      "port 22",
      "portrange 1-1023",
      "dst portrange 1-100",
      "src portrange 5000-6000",
      "tcp",
      "udp",
      "icmp",
      "icmp6",
      "ip",
      "ip6",
      "not tcp",
      "tcp and not port 443",
      "(port 80 or port 443) and ip6",
      "! (udp || icmp)",
      "tcp port 443",
      "host 2001:db8::5 and udp",
      "src 10.0.1.3",
      "dst net 192.0.2.0/24",
      "src or dst 2001:db8::5",
      "src or dst port 53",
      "(tcp and dst port 443) or (udp and dst port 53)",
      "not (src net 10.0.0.0/8 and dst port 22)",
      "ip6 and not (icmp6 or port 53)",
      "host 10.0.1.2 and (port 22 or port 53)",
      // Service names: tcpdump looks them up in /etc/services, we in a
      // built-in table that must agree with it.
      "port https",
      "dst port http or https",
      "port domain",
      "src port ssh",
      "tcp and port http-alt",
      "udp and not port domain",
  };
  for (const std::string& text : filters) {
    INFO("filter: " << text);
    auto parsed = observe::parseFilter(text);
    REQUIRE(std::holds_alternative<observe::Filter>(parsed));
    const auto& filter = std::get<observe::Filter>(parsed);
    std::set<size_t> ours;
    for (size_t i = 0; i < events.size(); ++i) {
      if (filter.matches(events[i])) ours.insert(i);
    }
    const std::set<size_t> theirs = tcpdumpMatches(file.string(), text);
    CHECK(ours == theirs);
    CHECK(!theirs.empty());  // every filter selects something
  }
  std::filesystem::remove(file);
}

// The built-in service names mean what this machine's /etc/services says,
// so that `port NAME` picks what tcpdump's `port NAME` picks anywhere.
TEST_CASE("filter: port names agree with /etc/services") {
  FILE* services = std::fopen("/etc/services", "r");
  if (services == nullptr) {
    WARN("no /etc/services on this machine: nothing to compare");
    return;
  }
  size_t compared = 0;
  char line[512];
  while (std::fgets(line, sizeof line, services) != nullptr) {
    char name[64];
    unsigned port = 0;
    char protocol[16];
    if (std::sscanf(line, "%63s %u/%15s", name, &port, protocol) != 3 || name[0] == '#') continue;
    const std::string text = std::string("port ") + name;
    auto parsed = observe::parseFilter(text);
    if (!std::holds_alternative<observe::Filter>(parsed)) continue;  // a name we do not know
    INFO(text << " (/etc/services: " << port << "/" << protocol << ")");
    const auto& filter = std::get<observe::Filter>(parsed);
    CHECK(filter.text() == "port " + std::to_string(port));
    ++compared;
  }
  std::fclose(services);
  CHECK(compared >= 20);
}

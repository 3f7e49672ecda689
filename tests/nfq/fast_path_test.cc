// The kernel fast path, without a kernel: which (address, port, timeout)
// entries a binding produces under a policy (nfq/bound_set.h), the ipset
// ADD message (nfq/ipset.h), the chain's fast-path rules — including what
// their u32 tests let through, evaluated exactly as xt_u32.c does over
// crafted packets —, the binding table's observer hook, and decide() for
// first payloads whose SYN never reached user space.
// The real kernel: tests/nfq/fast_path_netns_test.sh.
#include <catch2/catch.hpp>

#include <libmnl/libmnl.h>
#include <linux/netfilter/ipset/ip_set.h>
#include <linux/netfilter/nfnetlink.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "dns/binding_table.h"
#include "nfq/bound_set.h"
#include "nfq/ipset.h"
#include "nfq/ruleset.h"
#include "nfq/verdict.h"
#include "policy/policy.h"
#include "policy/rule_set.h"
#include "policy/target.h"
#include "tests/nfq/packet_builder.h"
#include "tests/support/rule_sets.h"

using namespace nfqtest;
using namespace std::chrono_literals;

namespace {

policy::RuleSet ruleSet(const std::string& name, const std::vector<std::string>& targets) {
  return testsupport::ruleSet("team", name, targets);
}

const nfq::TimePoint kNow = nfq::TimePoint{} + 1000h;

common::IpAddress ip(const char* text) {
  return *common::parseIpAddress(text);
}

std::shared_ptr<const policy::Policy> testPolicy() {
  return policy::Policy::compile({
      ruleSet("app", {"api.example.com:443", "api.example.com:22", "db.example.com:5432"}),
      ruleSet("web", {"*.example.org:443", "*.example.org:80"}),
      ruleSet("world", {"*:8080", "api.example.com:8080"}),
      ruleSet("net", {"203.0.113.0/24:443"}),
  });
}

std::vector<nfq::SetEntry> plan(const char* address, std::vector<nfq::BoundNameExpiry> names,
                                size_t room = 64, size_t* dropped = nullptr) {
  const auto policy = testPolicy();
  const nfq::NamePorts namePorts = nfq::computeNamePorts(*policy);
  std::vector<nfq::SetEntry> out(room);
  const nfq::BoundPlan result = nfq::planBoundEntries(ip(address), names, *policy, namePorts, kNow, out);
  out.resize(result.count);
  if (dropped != nullptr) *dropped = result.dropped;
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.port < b.port; });
  return out;
}

}  // namespace

TEST_CASE("binding to set entries: every port the name is allowed on, with the binding's lifetime",
          "[nfq][fastpath]") {
  struct Row {
    const char* description;
    const char* address;
    std::vector<nfq::BoundNameExpiry> names;
    std::vector<std::pair<uint16_t, uint32_t>> expected;  // port, timeout
  };
  const std::vector<Row> rows = {
      {"exact name on two ports (world port 8080 stays in user space)",
       "192.0.2.10",
       {{"api.example.com", kNow + 300s}},
       {{22, 300}, {443, 300}}},
      {"wildcard name", "192.0.2.20", {{"www.example.org", kNow + 60s}}, {{80, 60}, {443, 60}}},
      {"a name no rule allows", "192.0.2.66", {{"evil.com", kNow + 60s}}, {}},
      {"the bare suffix of a wildcard is not allowed", "192.0.2.21", {{"example.org", kNow + 60s}}, {}},
      {"expired binding", "192.0.2.10", {{"api.example.com", kNow - 1s}}, {}},
      {"less than a second left", "192.0.2.10", {{"api.example.com", kNow + 999ms}}, {}},
      {"rounded down", "192.0.2.10", {{"api.example.com", kNow + 2999ms}}, {{22, 2}, {443, 2}}},
      {"an address rule decides the SYN in user space",
       "203.0.113.7",
       {{"api.example.com", kNow + 60s}},
       {{22, 60}}},
      {"several names: per port the latest expiry of the names allowed there",
       "192.0.2.30",
       {{"api.example.com", kNow + 100s}, {"db.example.com", kNow + 500s}, {"www.example.org", kNow + 200s}},
       {{22, 100}, {80, 200}, {443, 200}, {5432, 500}}},
      {"IPv6", "2001:db8::10", {{"API.example.com", kNow + 30s}}, {{22, 30}, {443, 30}}},
  };
  for (const Row& row : rows) {
    INFO(row.description);
    const auto entries = plan(row.address, row.names);
    std::vector<std::pair<uint16_t, uint32_t>> got;
    for (const auto& entry : entries) {
      CHECK(entry.ip == ip(row.address));
      got.emplace_back(entry.port, entry.timeoutSeconds);
    }
    CHECK(got == row.expected);
  }
}

TEST_CASE("binding to set entries: a full plan buffer drops and counts", "[nfq][fastpath]") {
  size_t dropped = 0;
  const auto entries = plan("192.0.2.10", {{"api.example.com", kNow + 60s}}, 1, &dropped);
  CHECK(entries.size() == 1);
  CHECK(dropped == 1);
}

TEST_CASE("binding to kernel names: each name an exact or wildcard rule allows, per port, own expiry",
          "[nfq][fastpath][kernel_verdict]") {
  struct Row {
    const char* description;
    const char* address;
    std::vector<nfq::BoundNameExpiry> names;
    std::vector<std::tuple<uint16_t, std::string, nfq::TimePoint>> expected;  // port, name, expiry
  };
  const std::vector<Row> rows = {
      {"exact name on two ports; the world port 8080 stays in user space",
       "192.0.2.10",
       {{"api.example.com", kNow + 300s}},
       {{22, "api.example.com", kNow + 300s}, {443, "api.example.com", kNow + 300s}}},
      {"wildcard name",
       "192.0.2.20",
       {{"www.example.org", kNow + 60s}},
       {{80, "www.example.org", kNow + 60s}, {443, "www.example.org", kNow + 60s}}},
      {"a name no rule allows", "192.0.2.66", {{"evil.com", kNow + 60s}}, {}},
      {"the bare suffix of a wildcard is not allowed", "192.0.2.21", {{"example.org", kNow + 60s}}, {}},
      {"expired binding", "192.0.2.10", {{"api.example.com", kNow - 1s}}, {}},
      {"an address rule decides in user space (203.0.113.0/24:443)",
       "203.0.113.7",
       {{"api.example.com", kNow + 60s}},
       {{22, "api.example.com", kNow + 60s}}},
      {"several names: each its own expiry, only where it is allowed",
       "192.0.2.30",
       {{"api.example.com", kNow + 100s}, {"db.example.com", kNow + 500s}, {"evil.com", kNow + 900s}},
       {{22, "api.example.com", kNow + 100s},
        {443, "api.example.com", kNow + 100s},
        {5432, "db.example.com", kNow + 500s}}},
      {"IPv6",
       "2001:db8::10",
       {{"api.example.com", kNow + 30s}},
       {{22, "api.example.com", kNow + 30s}, {443, "api.example.com", kNow + 30s}}},
  };
  const auto policy = testPolicy();
  const nfq::NamePorts namePorts = nfq::computeNamePorts(*policy);
  for (const Row& row : rows) {
    INFO(row.description);
    std::vector<nfq::KernelNameEntry> out(64);
    const nfq::BoundPlan result =
        nfq::planKernelNames(ip(row.address), row.names, *policy, namePorts, kNow, out);
    CHECK(result.dropped == 0);
    std::vector<std::tuple<uint16_t, std::string, nfq::TimePoint>> got;
    for (size_t i = 0; i < result.count; ++i) got.emplace_back(out[i].port, out[i].name, out[i].expiry);
    std::sort(got.begin(), got.end());
    CHECK(got == row.expected);
    // Every listed pair is one the bound sets pass the SYN of.
    std::vector<nfq::SetEntry> entries(64);
    const nfq::BoundPlan sets =
        nfq::planBoundEntries(ip(row.address), row.names, *policy, namePorts, kNow, entries);
    for (const auto& [port, name, expiry] : got) {
      const bool inSet =
          std::any_of(entries.begin(), entries.begin() + static_cast<std::ptrdiff_t>(sets.count),
                      [&](const nfq::SetEntry& e) { return e.port == port; });
      CHECK(inSet);
    }
  }
  std::vector<nfq::KernelNameEntry> one(1);
  const nfq::BoundPlan full = nfq::planKernelNames(
      ip("192.0.2.10"), std::vector<nfq::BoundNameExpiry>{{"api.example.com", kNow + 60s}}, *policy,
      namePorts, kNow, one);
  CHECK(full.count == 1);
  CHECK(full.dropped == 1);
}

TEST_CASE("the ipset ADD message carries the set, address, tcp port and timeout", "[nfq][fastpath]") {
  for (const char* address : {"192.0.2.10", "2001:db8::10"}) {
    INFO(address);
    std::vector<uint8_t> buffer(512, 0xee);
    const nfq::SetEntry entry{ip(address), 443, 300};
    const size_t length = nfq::encodeAdd(buffer, "EGRESSD-bound4", entry, 7);
    REQUIRE(length > 0);
    REQUIRE(length <= 160);
    const auto* header = reinterpret_cast<const nlmsghdr*>(buffer.data());
    CHECK(header->nlmsg_type == ((NFNL_SUBSYS_IPSET << 8) | IPSET_CMD_ADD));
    CHECK(header->nlmsg_seq == 7);
    CHECK((header->nlmsg_flags & NLM_F_EXCL) == 0);  // -exist: renew the timeout
    CHECK((header->nlmsg_flags & NLM_F_ACK) == 0);   // only failures are answered
    struct Seen {
      std::string set;
      uint8_t protocol = 0, l4 = 0;
      std::vector<uint8_t> address;
      uint16_t port = 0;
      uint32_t timeout = 0;
      bool netOrder = true;
    } seen;
    const auto top = [](const nlattr* a, void* data) -> int {
      auto* s = static_cast<Seen*>(data);
      switch (mnl_attr_get_type(a)) {
        case IPSET_ATTR_PROTOCOL:
          s->protocol = mnl_attr_get_u8(a);
          break;
        case IPSET_ATTR_SETNAME:
          s->set = mnl_attr_get_str(a);
          break;
        case IPSET_ATTR_DATA: {
          if ((a->nla_type & NLA_F_NESTED) == 0) return MNL_CB_ERROR;
          const auto inner = [](const nlattr* b, void* d) -> int {
            auto* t = static_cast<Seen*>(d);
            const bool flagged = (b->nla_type & NLA_F_NET_BYTEORDER) != 0;
            switch (mnl_attr_get_type(b)) {
              case IPSET_ATTR_IP: {
                const auto ipAttribute = [](const nlattr* c, void* e) -> int {
                  auto* u = static_cast<Seen*>(e);
                  u->netOrder = u->netOrder && (c->nla_type & NLA_F_NET_BYTEORDER) != 0;
                  const auto* p = static_cast<const uint8_t*>(mnl_attr_get_payload(c));
                  u->address.assign(p, p + mnl_attr_get_payload_len(c));
                  return MNL_CB_OK;
                };
                mnl_attr_parse_nested(b, ipAttribute, t);
                break;
              }
              case IPSET_ATTR_PORT:
                t->netOrder = t->netOrder && flagged;
                t->port = ntohs(mnl_attr_get_u16(b));
                break;
              case IPSET_ATTR_PROTO:
                t->l4 = mnl_attr_get_u8(b);
                break;
              case IPSET_ATTR_TIMEOUT:
                t->netOrder = t->netOrder && flagged;
                t->timeout = ntohl(mnl_attr_get_u32(b));
                break;
              default:
                break;
            }
            return MNL_CB_OK;
          };
          mnl_attr_parse_nested(a, inner, s);
          break;
        }
        default:
          break;
      }
      return MNL_CB_OK;
    };
    REQUIRE(mnl_attr_parse(header, sizeof(nfgenmsg), top, &seen) >= 0);
    CHECK(seen.protocol == IPSET_PROTOCOL);
    CHECK(seen.set == "EGRESSD-bound4");
    CHECK(seen.address ==
          std::vector<uint8_t>(entry.ip.bytes.begin(), entry.ip.bytes.begin() + entry.ip.byteLength()));
    CHECK(seen.port == 443);
    CHECK(seen.l4 == IPPROTO_TCP);
    CHECK(seen.timeout == 300);
    CHECK(seen.netOrder);
  }
  std::vector<uint8_t> buffer(512);
  CHECK(nfq::encodeAdd(buffer, "", {ip("192.0.2.1"), 1, 1}, 1) == 0);
  CHECK(nfq::encodeAdd(buffer, std::string(32, 'x'), {ip("192.0.2.1"), 1, 1}, 1) == 0);
  CHECK(nfq::encodeAdd(buffer, "s", {ip("192.0.2.1"), 1, 0}, 1) == 0);  // 0 would mean "forever"
  CHECK(nfq::encodeAdd(std::span<uint8_t>(buffer).first(64), "s", {ip("192.0.2.1"), 1, 1}, 1) == 0);
}

// ---- the chain's fast-path rules --------------------------------------------

namespace {

nfq::RulesetOptions fastOptions() {
  nfq::RulesetOptions o;
  o.queueFirst = 0;
  o.queueLast = 1;
  o.kernelFastPath = true;
  return o;
}

size_t indexOf(const std::vector<std::string>& rules, std::string_view needle) {
  for (size_t i = 0; i < rules.size(); ++i) {
    if (rules[i].find(needle) != std::string::npos) return i;
  }
  return rules.size();
}

}  // namespace

// The rules of EGRESSD itself (renderChainRules adds the verdict chain's).
std::vector<std::string> chainOnly(const std::vector<std::string>& rules) {
  std::vector<std::string> out;
  for (const auto& rule : rules) {
    if (rule.starts_with("-A EGRESSD ")) out.push_back(rule);
  }
  return out;
}

TEST_CASE("fast path rules: bound SYNs and empty handshake segments, after every connmark rule",
          "[nfq][fastpath][ruleset]") {
  const auto rules = chainOnly(nfq::renderChainRules(fastOptions(), nfq::IpTablesFamily::V4));
  const auto plain = [] {
    auto o = fastOptions();
    o.kernelFastPath = false;
    return chainOnly(nfq::renderChainRules(o, nfq::IpTablesFamily::V4));
  }();
  REQUIRE(rules.size() == plain.size() + 2);
  const size_t syn = indexOf(rules, "--match-set EGRESSD-bound4 dst,dst");
  const size_t ack = indexOf(rules, "--ctstate ESTABLISHED");
  CHECK(rules[syn] ==
        "-A EGRESSD -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m u32 --u32 "
        "\"0x0&0xffff=0x28:0xffff&&0x0&0x3=0x0&&0x4&0x3fff=0x0\" -m u32 ! --u32 "
        "\"0x0>>0x16&0x3c@0xc>>0x1a&0x3c@0x0&0x0=0x0\" -m set --match-set EGRESSD-bound4 dst,dst -j RETURN");
  CHECK(rules[ack] ==
        "-A EGRESSD -p tcp -m tcp --tcp-flags SYN NONE -m conntrack --ctstate ESTABLISHED -m u32 --u32 "
        "\"0x0&0xffff=0x28:0xffff&&0x0&0x3=0x0&&0x4&0x3fff=0x0\" -m u32 ! --u32 "
        "\"0x0>>0x16&0x3c@0xc>>0x1a&0x3c@0x0&0x0=0x0\" -j RETURN");
  // Right before the queue, after the deny connmark rules and the echo drop.
  CHECK(syn == rules.size() - 3);
  CHECK(ack == rules.size() - 2);
  CHECK(indexOf(rules, "REJECT --reject-with tcp-reset") < syn);
  CHECK(indexOf(rules, "-m connmark --mark 0x200000/0x700000 -j DROP") < syn);
  CHECK(rules.back() == "-A EGRESSD -j NFQUEUE --queue-balance 0:1");
  for (const auto& rule : rules) CHECK(rule.find("queue-bypass") == std::string::npos);

  const auto v6 = chainOnly(nfq::renderChainRules(fastOptions(), nfq::IpTablesFamily::V6));
  CHECK(indexOf(v6, "--match-set EGRESSD-bound6 dst,dst -j RETURN") == v6.size() - 3);
  CHECK(indexOf(v6, "0x4>>0x10=0x14:0xffff&&0x4>>0x8&0xff=0x6&&0x4>>0x10&0x3=0x0") < v6.size());
  CHECK(indexOf(v6, "bound4") == v6.size());
}

TEST_CASE("fast path set names follow the chain and respect ipset's length limit",
          "[nfq][fastpath][ruleset]") {
  auto o = fastOptions();
  CHECK(nfq::boundSetName(o, nfq::IpTablesFamily::V4) == "EGRESSD-bound4");
  CHECK(nfq::boundSetName(o, nfq::IpTablesFamily::V6) == "EGRESSD-bound6");
  o.chain = std::string(25, 'C');
  CHECK(nfq::boundSetName(o, nfq::IpTablesFamily::V4).empty());
  // Without a usable set there is no set rule (and no empty-segment rule:
  // nothing would need it).
  const auto rules = nfq::renderChainRules(o, nfq::IpTablesFamily::V4);
  CHECK(indexOf(rules, "u32") == rules.size());
}

// xt_u32.c's algorithm, over a packet starting at the IP header (skb->len =
// its size), for the exact test strings the chain carries. Returns whether
// the --u32 test (without "!") matches.
namespace {

struct U32Test {
  uint32_t first = 0;
  std::vector<std::pair<char, uint32_t>> ops;  // '&', '<', '>', '@'
  std::vector<std::pair<uint32_t, uint32_t>> ranges;
};

uint32_t number(const std::string& s, size_t& at) {
  size_t used = 0;
  const uint32_t value = static_cast<uint32_t>(std::stoul(s.substr(at), &used, 0));
  at += used;
  return value;
}

std::vector<U32Test> parseU32(const std::string& text) {
  std::vector<U32Test> tests;
  size_t at = 0;
  while (at < text.size()) {
    U32Test test;
    test.first = number(text, at);
    while (text[at] != '=') {
      char op = text[at];
      at += (op == '<' || op == '>') ? 2 : 1;
      test.ops.emplace_back(op, number(text, at));
    }
    ++at;
    for (;;) {
      const uint32_t low = number(text, at);
      uint32_t high = low;
      if (at < text.size() && text[at] == ':') {
        ++at;
        high = number(text, at);
      }
      test.ranges.emplace_back(low, high);
      if (at < text.size() && text[at] == ',') {
        ++at;
        continue;
      }
      break;
    }
    tests.push_back(test);
    if (at < text.size()) {
      REQUIRE(text.compare(at, 2, "&&") == 0);
      at += 2;
    }
  }
  return tests;
}

uint32_t word(const Bytes& p, uint32_t at) {
  return (uint32_t{p[at]} << 24) | (uint32_t{p[at + 1]} << 16) | (uint32_t{p[at + 2]} << 8) | p[at + 3];
}

bool u32Matches(const std::string& text, const Bytes& packet) {
  const auto len = static_cast<uint32_t>(packet.size());
  for (const U32Test& test : parseU32(text)) {
    uint32_t at = 0;
    uint32_t pos = test.first;
    if (len < 4 || pos > len - 4) return false;
    uint32_t val = word(packet, pos);
    for (const auto& [op, n] : test.ops) {
      switch (op) {
        case '&':
          val &= n;
          break;
        case '<':
          val <<= n;
          break;
        case '>':
          val >>= n;
          break;
        case '@':
          if (at + val < at) return false;
          at += val;
          pos = n;
          if (at + 4 < at || len < at + 4 || pos > len - at - 4) return false;
          val = word(packet, at + pos);
          break;
      }
    }
    if (std::none_of(test.ranges.begin(), test.ranges.end(),
                     [&](const auto& r) { return r.first <= val && val <= r.second; })) {
      return false;
    }
  }
  return true;
}

// The chain's "no payload" condition: shape matches and payloadWord does not.
bool passesAsEmpty(nfq::IpTablesFamily family, const Bytes& packet) {
  const nfq::NoPayloadTests tests = nfq::noPayloadTests(family);
  return u32Matches(tests.shape, packet) && !u32Matches(tests.payloadWord, packet);
}

// A TCP segment with `optionBytes` of options and `payload` bytes, in IPv4
// with `ipOptions` option bytes, total length field as built.
Bytes v4Segment(size_t optionBytes, size_t payload, size_t ipOptions = 0) {
  const Bytes segment = tcp(40000, 443, nfq::kTcpAck, Bytes(payload, 'x'), optionBytes);
  V4Options o;
  o.optionBytes = ipOptions;
  return ipv4("10.1.0.5", "192.0.2.10", nfq::kProtoTcp, segment, o);
}

Bytes v6Segment(size_t optionBytes, size_t payload) {
  return ipv6("fd00::5", "2001:db8::10", nfq::kProtoTcp,
              tcp(40000, 443, nfq::kTcpAck, Bytes(payload, 'x'), optionBytes));
}

}  // namespace

TEST_CASE("u32 model: the saved test strings parse and evaluate like xt_u32", "[nfq][fastpath][ruleset]") {
  const Bytes packet = v4Segment(0, 0);
  CHECK(u32Matches("0x0>>0x1c=0x4", packet));  // IPv4
  CHECK_FALSE(u32Matches("0x0>>0x1c=0x6", packet));
  CHECK(u32Matches("0x8>>0x10&0xff=0x6", packet));  // protocol TCP
  CHECK(u32Matches("0x8>>0x10&0xff=0x11,0x6", packet));
  CHECK(u32Matches("0x0>>0x16&0x3c@0x0>>0x10=0x9c40", packet));  // source port 40000 via "@"
  CHECK(u32Matches("0x24&0x0=0x0", packet));                     // 4 bytes at 36..39 fit
  CHECK_FALSE(u32Matches("0x25&0x0=0x0", packet));               // past the end: no match
}

TEST_CASE("fast path: only segments without a single payload byte count as empty",
          "[nfq][fastpath][ruleset]") {
  using F = nfq::IpTablesFamily;
  // Every TCP option size, every small payload.
  for (size_t options = 0; options <= 40; options += 4) {
    for (size_t payload = 0; payload <= 9; ++payload) {
      INFO("tcp options " << options << ", payload " << payload);
      CHECK(passesAsEmpty(F::V4, v4Segment(options, payload)) == (payload == 0));
      CHECK(passesAsEmpty(F::V6, v6Segment(options, payload)) == (payload == 0));
    }
  }
  // IPv4 options move the TCP header; still exact.
  CHECK(passesAsEmpty(F::V4, v4Segment(12, 0, 8)));
  CHECK_FALSE(passesAsEmpty(F::V4, v4Segment(12, 1, 8)));
  CHECK_FALSE(passesAsEmpty(F::V4, v4Segment(12, 4, 8)));

  // A header that claims an option (timestamps, kind 8) it has no room for
  // must not hide payload: doff is what counts, not the options' content.
  Bytes trick = v4Segment(4, 8);
  trick[20 + 20] = 8;  // kind 8 at the first option byte, 4 option bytes only
  CHECK_FALSE(passesAsEmpty(F::V4, trick));

  // BIG TCP: an IPv4 total length of 0 with data behind it.
  Bytes big = v4Segment(12, 64);
  big[2] = big[3] = 0;
  CHECK_FALSE(passesAsEmpty(F::V4, big));
  // A first fragment (MF set) whose own payload is empty.
  Bytes fragment = v4Segment(0, 0);
  fragment[6] |= 0x20;
  CHECK_FALSE(passesAsEmpty(F::V4, fragment));
  // IPv6 with an extension header before TCP: never "empty" (user space decides).
  const Bytes withExt =
      ipv6("fd00::5", "2001:db8::10", 0, cat({ext(nfq::kProtoTcp), tcp(40000, 443, nfq::kTcpAck)}));
  CHECK_FALSE(passesAsEmpty(F::V6, withExt));
  // IPv6 jumbogram-style payload length 0.
  Bytes jumbo = v6Segment(0, 8);
  jumbo[4] = jumbo[5] = 0;
  CHECK_FALSE(passesAsEmpty(F::V6, jumbo));
  // A real Linux SYN (MSS, SACK-permitted, timestamps, window scale: 20 bytes).
  CHECK(passesAsEmpty(F::V4,
                      ipv4("10.1.0.5", "192.0.2.10", nfq::kProtoTcp, tcp(40000, 443, nfq::kTcpSyn, {}, 20))));
  // TCP Fast Open: a SYN with data.
  CHECK_FALSE(passesAsEmpty(F::V4, ipv4("10.1.0.5", "192.0.2.10", nfq::kProtoTcp,
                                        tcp(40000, 443, nfq::kTcpSyn, clientHello("api.example.com"), 20))));
}

// ---- the binding table's observer ------------------------------------------

namespace {
struct Recorder final : dns::BindingObserver {
  struct Call {
    std::string name;
    common::IpAddress ip;
    dns::TimePoint expiry;
    size_t namesVisible;
  };
  const dns::BindingTable* table = nullptr;
  std::vector<Call> calls;
  void onBound(std::string_view name, const common::IpAddress& address,
               dns::TimePoint expiry) noexcept override {
    // The entry is in the table already, and the table can be read here.
    std::array<dns::BoundName, 4> names;
    calls.push_back({std::string(name), address, expiry, table->lookup(address, kNow, names)});
  }
  void onEvicted(std::string_view, const common::IpAddress&) noexcept override {}
};
}  // namespace

TEST_CASE("binding table observer: told about new and extended bindings only", "[nfq][fastpath]") {
  dns::BindingTable table(16, 1);
  Recorder recorder;
  recorder.table = &table;
  table.setObserver(&recorder);
  table.record("API.Example.com.", ip("192.0.2.10"), kNow + 60s);
  REQUIRE(recorder.calls.size() == 1);
  CHECK(recorder.calls[0].name == "api.example.com");
  CHECK(recorder.calls[0].ip == ip("192.0.2.10"));
  CHECK(recorder.calls[0].expiry == kNow + 60s);
  CHECK(recorder.calls[0].namesVisible == 1);
  table.record("api.example.com", ip("192.0.2.10"), kNow + 30s);  // earlier: nothing changes
  table.record("api.example.com", ip("192.0.2.10"), kNow + 60s);  // same: nothing changes
  CHECK(recorder.calls.size() == 1);
  table.record("api.example.com", ip("192.0.2.10"), kNow + 90s);  // extended
  REQUIRE(recorder.calls.size() == 2);
  CHECK(recorder.calls[1].expiry == kNow + 90s);
  table.record("www.example.org", ip("192.0.2.10"), kNow + 10s);
  REQUIRE(recorder.calls.size() == 3);
  CHECK(recorder.calls[2].namesVisible == 2);
  table.setObserver(nullptr);
  table.record("new.example.org", ip("192.0.2.11"), kNow + 10s);
  CHECK(recorder.calls.size() == 3);
}

// ---- decide() when the SYN passed in the kernel -----------------------------

namespace {
class OneBinding final : public nfq::BindingLookup {
 public:
  std::string name = "api.example.com";
  common::IpAddress address = ip("192.0.2.10");
  bool isBound(std::string_view n, const common::IpAddress& a, nfq::TimePoint) const noexcept override {
    return a == address && n == name;
  }
  void forEachBoundName(const common::IpAddress& a, nfq::TimePoint,
                        Visitor& visitor) const noexcept override {
    if (a == address) visitor.visit(name);
  }
};

Bytes firstData(const char* dst, uint16_t port, const Bytes& payload) {
  return ipv4("10.1.0.5", dst, nfq::kProtoTcp, tcp(40000, port, nfq::kTcpAck | nfq::kTcpPsh, payload));
}

nfq::Decision decideAlone(const Bytes& bytes, const policy::Policy& policy, const nfq::DecideOptions& options,
                          std::span<const uint8_t> stream = {}) {
  const nfq::DecodeResult decoded = nfq::decodePacket(bytes);
  REQUIRE(decoded.ok());
  std::vector<uint8_t> scratch(16384 + 4);
  nfq::FlowState flow;
  flow.stream = stream;
  flow.scratch = scratch;
  OneBinding bindings;
  return nfq::decide(flow, decoded.view, policy, bindings, options, kNow);
}
}  // namespace

TEST_CASE("decide() needs no SYN state: the first payload is judged alone", "[nfq][fastpath]") {
  const auto policy = testPolicy();
  const nfq::NamePorts namePorts = nfq::computeNamePorts(*policy);
  nfq::DecideOptions options;  // as the daemon runs it: bound flows inspected
  options.inspectBoundFlows = true;
  options.namePorts = &namePorts;

  // TLS to the bound address: the SNI decides.
  auto d = decideAlone(firstData("192.0.2.10", 443, clientHello("api.example.com")), *policy, options);
  CHECK(d.verdict == nfq::Verdict::Allow);
  CHECK(d.reason == nfq::Reason::SniAllowed);
  d = decideAlone(firstData("192.0.2.10", 443, clientHello("evil.example.net")), *policy, options);
  CHECK(d.verdict == nfq::Verdict::Deny);
  CHECK(d.reason == nfq::Reason::SniNotAllowed);
  // HTTP: the Host decides (bound for that name? only api.example.com is).
  d = decideAlone(firstData("192.0.2.10", 80, httpGet("www.example.org")), *policy, options);
  CHECK(d.verdict == nfq::Verdict::Deny);
  CHECK(d.reason == nfq::Reason::HostNotBound);
  // A ClientHello split in two: the first part is held, the whole decides.
  const Bytes hello = clientHello("api.example.com", 1500);
  const Bytes part(hello.begin(), hello.begin() + 100);
  d = decideAlone(firstData("192.0.2.10", 443, part), *policy, options);
  CHECK(d.verdict == nfq::Verdict::Hold);
  const Bytes rest(hello.begin() + 100, hello.end());
  d = decideAlone(firstData("192.0.2.10", 443, rest), *policy, options, hello);
  CHECK(d.verdict == nfq::Verdict::Allow);
  CHECK(d.reason == nfq::Reason::SniAllowed);
  // Server speaks first (SSH on 22): the client's first bytes after the
  // banner are no TLS/HTTP, the binding allows them.
  d = decideAlone(firstData("192.0.2.10", 22, text("SSH-2.0-OpenSSH_9.2p1\r\n")), *policy, options);
  CHECK(d.verdict == nfq::Verdict::Allow);
  CHECK(d.reason == nfq::Reason::BoundAddress);
  // The same to an address bound to nothing: denied (the kernel never let
  // its SYN pass either: not in the set).
  d = decideAlone(firstData("192.0.2.99", 22, text("SSH-2.0-OpenSSH_9.2p1\r\n")), *policy, options);
  CHECK(d.verdict == nfq::Verdict::Deny);
  CHECK(d.reason == nfq::Reason::NoNameNoBinding);
  // One byte of payload is a payload: judged.
  d = decideAlone(firstData("192.0.2.99", 443, text("x")), *policy, options);
  CHECK(d.verdict == nfq::Verdict::Deny);
  // SYNs to unbound addresses still reach decide(): a port no rule uses is
  // denied at once (the chain resets).
  d = decideAlone(ipv4("10.1.0.5", "192.0.2.99", nfq::kProtoTcp, tcp(40000, 25, nfq::kTcpSyn)), *policy,
                  options);
  CHECK(d.verdict == nfq::Verdict::Deny);
  CHECK(d.reason == nfq::Reason::PortNotInPolicy);
}

// The kernel guard (nfq/kernel_guard.h): the map layout the worker and the
// programs share, the confirm decision in C++ against acknowledges(), and
// the programs themselves run by the kernel (BPF_PROG_TEST_RUN) on
// hand-built packets against that decision. The kernel part is skipped
// without CAP_BPF.
#include <arpa/inet.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <optional>

#include "bpf_test_run.h"
#include "common/unique_fd.h"
#include "nfq/insertion_guard.h"
#include "nfq/kernel_guard.h"
#include "nfq/ruleset.h"
#include "packet_builder.h"

namespace {

using nfqtest::Bytes;

nfq::FlowKey key(const char* client, uint16_t clientPort, const char* server, uint16_t serverPort) {
  nfq::FlowKey k;
  k.src = common::parseIpAddress(client).value();
  k.dst = common::parseIpAddress(server).value();
  k.srcPort = clientPort;
  k.dstPort = serverPort;
  k.protocol = 6;
  return k;
}

long bpf(int command, bpf_attr& attr) {
  return syscall(__NR_bpf, command, &attr, sizeof attr);
}

common::UniqueFd createMap(bpf_map_type type, uint32_t valueSize) {
  bpf_attr attr{};
  attr.map_type = type;
  attr.key_size = sizeof(nfq::KernelFlowKey);
  attr.value_size = valueSize;
  attr.max_entries = 64;
  return common::UniqueFd(static_cast<int>(bpf(BPF_MAP_CREATE, attr)));
}

common::UniqueFd load(const std::vector<bpf_insn>& code) {
  bpf_attr attr{};
  attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
  attr.insns = reinterpret_cast<uint64_t>(code.data());
  attr.insn_cnt = static_cast<uint32_t>(code.size());
  static constexpr char kLicense[] = "GPL";
  attr.license = reinterpret_cast<uint64_t>(kLicense);
  return common::UniqueFd(static_cast<int>(bpf(BPF_PROG_LOAD, attr)));
}

template <typename Value>
bool put(int map, const nfq::KernelFlowKey& k, const Value& value) {
  bpf_attr attr{};
  attr.map_fd = static_cast<uint32_t>(map);
  attr.key = reinterpret_cast<uint64_t>(&k);
  attr.value = reinterpret_cast<uint64_t>(&value);
  return bpf(BPF_MAP_UPDATE_ELEM, attr) == 0;
}

template <typename Value>
std::optional<Value> get(int map, const nfq::KernelFlowKey& k) {
  Value value{};
  bpf_attr attr{};
  attr.map_fd = static_cast<uint32_t>(map);
  attr.key = reinterpret_cast<uint64_t>(&k);
  attr.value = reinterpret_cast<uint64_t>(&value);
  if (bpf(BPF_MAP_LOOKUP_ELEM, attr) != 0) return std::nullopt;
  return value;
}

uint32_t run(int program, const Bytes& ip) {
  const std::optional<uint32_t> result = nfqtest::testRunSocketFilter(program, ip);
  REQUIRE(result);
  return *result;
}

// A server's TCP segment to the client with acknowledgment number `ack`.
Bytes reply(bool v6, uint8_t flags, uint32_t ack, const Bytes& payload = {}) {
  Bytes segment = nfqtest::tcp(443, 40000, flags, payload, 0, 777);
  segment[8] = static_cast<uint8_t>(ack >> 24);
  segment[9] = static_cast<uint8_t>(ack >> 16);
  segment[10] = static_cast<uint8_t>(ack >> 8);
  segment[11] = static_cast<uint8_t>(ack);
  return v6 ? nfqtest::ipv6("2001:db8::10", "fd00::2", 6, segment)
            : nfqtest::ipv4("203.0.113.10", "10.0.0.2", 6, segment);
}

nfq::FlowKey replyKeyOf(bool v6) {
  return v6 ? key("fd00::2", 40000, "2001:db8::10", 443) : key("10.0.0.2", 40000, "203.0.113.10", 443);
}

constexpr uint8_t kAck = 0x10, kSyn = 0x02, kRst = 0x04, kPsh = 0x08;

// The two maps the programs use, created as egressd creates them, and
// their programs loaded against them.
struct KernelMaps {
  common::UniqueFd starts = createMap(BPF_MAP_TYPE_LRU_HASH, sizeof(nfq::KernelStart));
  common::UniqueFd confirms = createMap(BPF_MAP_TYPE_HASH, sizeof(nfq::KernelConfirm));
  explicit operator bool() const { return starts && confirms; }
  common::UniqueFd load(nfq::KernelProgram program, nfq::KernelFamily family) const {
    const int map = program == nfq::KernelProgram::SynAck ? starts.get() : confirms.get();
    return ::load(nfq::kernelProgram(program, family, map));
  }
};

}  // namespace

TEST_CASE("kernel guard map key: the client's connection, network byte order", "[nfq][kernel_guard]") {
  const nfq::KernelFlowKey v4 = nfq::kernelKey(key("10.0.0.2", 40000, "203.0.113.10", 443));
  const uint8_t client4[16] = {10, 0, 0, 2};
  const uint8_t server4[16] = {203, 0, 113, 10};
  CHECK(std::memcmp(v4.client, client4, 16) == 0);
  CHECK(std::memcmp(v4.server, server4, 16) == 0);
  CHECK(v4.clientPort[0] == 40000 >> 8);
  CHECK(v4.clientPort[1] == (40000 & 0xff));
  CHECK(v4.serverPort[0] == 1);
  CHECK(v4.serverPort[1] == 187);
  CHECK(v4.family == 4);
  CHECK(v4.protocol == 6);
  CHECK(v4.pad[0] == 0);
  CHECK(v4.pad[1] == 0);
  const nfq::KernelFlowKey v6 = nfq::kernelKey(key("fd00::2", 1, "2001:db8::10", 2));
  CHECK(v6.client[0] == 0xfd);
  CHECK(v6.client[15] == 2);
  CHECK(v6.server[1] == 0x01);
  CHECK(v6.server[15] == 0x10);
  CHECK(v6.family == 6);
  CHECK(std::memcmp(v4.client + 4, client4 + 4, 12) == 0);  // IPv4: the rest stays zero
}

TEST_CASE("kernel guard confirm decision equals acknowledges()", "[nfq][kernel_guard]") {
  struct Row {
    uint32_t judgedEnd, passedEnd, ack;
  };
  const Row rows[] = {
      {1500, 1500, 1500},
      {1500, 1500, 1501},
      {1500, 1500, 1502},
      {1500, 1500, 1499},
      {1500, 1500, 1000},
      {1500, 1800, 1800},
      {1500, 1800, 1801},
      {1500, 1800, 1802},
      {0xfffffff0u, 0xfffffff0u, 0xfffffff0u},
      {0xfffffff0u, 0x10, 0x10},
      {0xfffffff0u, 0x10, 0x11},
      {0xfffffff0u, 0x10, 0x12},
      {1500, 1500, 1500u + (1u << 31)},
  };
  for (const Row& row : rows) {
    const nfq::KernelConfirm entry{row.judgedEnd, row.passedEnd, 7, 0, 0};
    CAPTURE(row.judgedEnd, row.passedEnd, row.ack);
    CHECK(nfq::kernelConfirms(entry, row.ack, 8) == nfq::acknowledges(row.ack, row.judgedEnd, row.passedEnd));
    CHECK_FALSE(nfq::kernelConfirms(entry, row.ack, 7));  // from the client's interface
  }
}

TEST_CASE("kernel guard programs in the kernel", "[nfq][kernel_guard]") {
  const KernelMaps maps;
  if (!maps) {
    WARN("no CAP_BPF: the programs are not run");  // Catch2 v2 has no SKIP
    return;
  }
  const common::UniqueFd& starts = maps.starts;
  const common::UniqueFd& confirms = maps.confirms;
  for (const bool v6 : {false, true}) {
    CAPTURE(v6);
    const auto family = v6 ? nfq::KernelFamily::V6 : nfq::KernelFamily::V4;
    const common::UniqueFd synAck = maps.load(nfq::KernelProgram::SynAck, family);
    const common::UniqueFd confirm = maps.load(nfq::KernelProgram::Confirm, family);
    REQUIRE(synAck);
    REQUIRE(confirm);
    const nfq::KernelFlowKey k = nfq::kernelKey(replyKeyOf(v6));

    // The SYN-ACK: ack = client ISN + 1, the interface, recorded; the rule matches.
    CHECK(run(synAck.get(), reply(v6, kSyn | kAck, 0x12345679)) == 1);
    const auto start = get<nfq::KernelStart>(starts.get(), k);
    REQUIRE(start);
    CHECK(start->seq == 0x12345679);
    CHECK(start->ifindex == 1);
    CHECK(start->timeNs > 0);
    // Anything else is not the SYN-ACK program's: queued as before.
    CHECK(run(synAck.get(), reply(v6, kAck, 5)) == 0);
    CHECK(run(synAck.get(), reply(v6, kSyn | kAck | kRst, 5)) == 0);
    CHECK(get<nfq::KernelStart>(starts.get(), k)->seq == 0x12345679);

    // Confirm: no entry, no match.
    CHECK(run(confirm.get(), reply(v6, kAck, 1500)) == 0);
    struct Row {
      uint32_t passedEnd, ack;
      uint8_t flags;
      uint32_t clientIfindex;
    };
    const Row rows[] = {
        {1500, 1500, kAck, 2},        {1500, 1501, kAck, 2},
        {1500, 1502, kAck, 2},        {1500, 1499, kAck, 2},
        {1500, 1000, kAck, 2},        {1800, 1800, kAck | kPsh, 2},
        {1500, 1500, kAck, 1},         // from the client's interface (loopback here)
        {1500, 1500, kAck | kRst, 2},  // RSTs and SYNs go to user space
        {1500, 1500, kAck | kSyn, 2}, {1500, 1500u + (1u << 31), kAck, 2},
    };
    for (const Row& row : rows) {
      CAPTURE(row.passedEnd, row.ack, row.flags, row.clientIfindex);
      const nfq::KernelConfirm entry{1500, row.passedEnd, row.clientIfindex, 0, 0};
      REQUIRE(put(confirms.get(), k, entry));
      const bool expected = (row.flags & (kSyn | kRst)) == 0 && nfq::kernelConfirms(entry, row.ack, 1);
      CHECK(run(confirm.get(), reply(v6, row.flags, row.ack, nfqtest::text("HTTP/1.1 200 OK\r\n"))) ==
            (expected ? 1u : 0u));
      const auto after = get<nfq::KernelConfirm>(confirms.get(), k);
      REQUIRE(after);
      CHECK(after->confirmed == (expected ? 1u : 0u));
      CHECK(after->judgedEnd == 1500);
    }
  }
  // Not TCP right after the IP header: an IPv6 extension header, an IPv4
  // fragment. Queued as before.
  common::UniqueFd synAck6 =
      load(nfq::kernelProgram(nfq::KernelProgram::SynAck, nfq::KernelFamily::V6, starts.get()));
  common::UniqueFd synAck4 =
      load(nfq::kernelProgram(nfq::KernelProgram::SynAck, nfq::KernelFamily::V4, starts.get()));
  const Bytes segment = nfqtest::tcp(443, 40000, kSyn | kAck);
  CHECK(run(synAck6.get(),
            nfqtest::ipv6("2001:db8::10", "fd00::2", 0, nfqtest::cat({nfqtest::ext(6), segment}))) == 0);
  CHECK(run(synAck4.get(), nfqtest::ipv4("203.0.113.10", "10.0.0.2", 6, segment, {0, 0x2000, 0})) == 0);
  CHECK(run(synAck4.get(), nfqtest::ipv4("203.0.113.10", "10.0.0.2", 6, segment)) == 1);
}

TEST_CASE("kernel guard rules: before the queueing ones they spare", "[nfq][kernel_guard][ruleset]") {
  nfq::RulesetOptions o;
  o.confirmFirstPayload = true;
  for (const auto family : {nfq::IpTablesFamily::V4, nfq::IpTablesFamily::V6}) {
    o.kernelGuardDir.clear();
    for (const auto& rule : nfq::renderChainRules(o, family)) CHECK(rule.find("-m bpf") == std::string::npos);
    o.kernelGuardDir = "/sys/fs/bpf/egressd";
    const auto rules = nfq::renderChainRules(o, family);
    const auto at = [&](std::string_view needle) {
      for (size_t i = 0; i < rules.size(); ++i) {
        if (rules[i].find(needle) != std::string::npos) return i;
      }
      return rules.size();
    };
    const char* n = family == nfq::IpTablesFamily::V4 ? "4" : "6";
    const size_t confirm = at(std::string("--object-pinned /sys/fs/bpf/egressd/confirm") + n);
    const size_t synAck = at(std::string("--object-pinned /sys/fs/bpf/egressd/synack") + n);
    REQUIRE(confirm < rules.size());
    REQUIRE(synAck < rules.size());
    // Confirm: only unmarked server packets of CONFIRM connections; sets
    // ALLOW, which the next rule saves into the connection.
    CHECK(rules[confirm].starts_with(
        "-A EGRESSD-REPLY -p tcp -m connmark --mark 0x500000/0x700000 -m mark --mark 0x0/0x700000 -m bpf"));
    CHECK(rules[confirm].find("-j MARK --set-xmark 0x100000/0x700000") != std::string::npos);
    CHECK(at("-A EGRESSD -m connmark --mark 0x100000/0x700000 -j RETURN") == 0);
    CHECK(confirm + 1 == at("-A EGRESSD-REPLY -m mark --mark 0x100000/0x700000 -j CONNMARK --save-mark"));
    // SYN-ACK: of undecided connections only (the chain's goto), right
    // before the rule that queues it.
    CHECK(rules[synAck].starts_with(
        "-A EGRESSD-REPLY-NEW -p tcp -m tcp --tcp-flags SYN,RST,ACK SYN,ACK -m bpf"));
    CHECK(rules[synAck].ends_with("-j RETURN"));
    CHECK(synAck + 1 == at("--tcp-flags SYN,RST,ACK SYN,ACK -j MARK --set-xmark 0x600000/0x700000"));
    // Only with the guard's reply rules.
    o.confirmFirstPayload = false;
    for (const auto& rule : nfq::renderChainRules(o, family)) CHECK(rule.find("-m bpf") == std::string::npos);
    o.confirmFirstPayload = true;
  }
}

TEST_CASE("kernel guard programs: truncated packets never match", "[nfq][kernel_guard]") {
  const KernelMaps maps;
  if (!maps) {
    WARN("no CAP_BPF: the programs are not run");
    return;
  }
  const common::UniqueFd& confirms = maps.confirms;
  for (const bool v6 : {false, true}) {
    CAPTURE(v6);
    const auto family = v6 ? nfq::KernelFamily::V6 : nfq::KernelFamily::V4;
    const common::UniqueFd synAck = maps.load(nfq::KernelProgram::SynAck, family);
    const common::UniqueFd confirm = maps.load(nfq::KernelProgram::Confirm, family);
    REQUIRE(synAck);
    REQUIRE(confirm);
    REQUIRE(put(confirms.get(), nfq::kernelKey(replyKeyOf(v6)), nfq::KernelConfirm{1500, 1500, 2, 0, 0}));
    const Bytes fullSynAck = reply(v6, kSyn | kAck, 1000);
    const Bytes fullAck = reply(v6, kAck, 1500);
    // The programs read up to the TCP flags (byte 13 of the TCP header).
    const size_t needed = (v6 ? 40 : 20) + 14;
    // Lengths the test run refuses (below the IP header it wants) are
    // skipped: the stack never hands such a packet to the chain anyway.
    size_t ran = 0;
    for (size_t length = 1; length <= fullSynAck.size(); ++length) {
      CAPTURE(length);
      const uint32_t expected = length >= needed ? 1 : 0;
      const auto prefix = [&](const Bytes& full) {
        return Bytes(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(length));
      };
      const std::optional<uint32_t> a = nfqtest::testRunSocketFilter(synAck.get(), prefix(fullSynAck));
      const std::optional<uint32_t> b = nfqtest::testRunSocketFilter(confirm.get(), prefix(fullAck));
      if (!a || !b) continue;
      ++ran;
      CHECK(*a == expected);
      CHECK(*b == expected);
    }
    CHECK(ran >= fullSynAck.size() - needed + 10);  // every length from within the TCP header on
  }
}

// The insertion guard's pure parts (nfq/insertion_guard.h): which allows
// wait for the server, where a later client segment lies relative to the
// judged bytes (modulo 2^32), which server acknowledgments confirm them,
// and the bounded table of stream starts. The whole mechanism runs against
// hand-made decoys in tests/e2e/insertion_test.sh.
#include <catch2/catch.hpp>

#include "nfq/insertion_guard.h"
#include "nfq/kernel_guard.h"
#include "nfq/kernel_verdict.h"
#include "nfq/ruleset.h"
#include "tests/support/alloc_counter.h"

namespace {

using nfq::SegmentPlace;
using namespace std::chrono_literals;

const nfq::TimePoint t0 = nfq::TimePoint{} + 100h;

nfq::FlowKey key(uint16_t srcPort) {
  nfq::FlowKey k;
  k.src = *common::parseIpAddress("10.1.0.5");
  k.dst = *common::parseIpAddress("192.0.2.10");
  k.srcPort = srcPort;
  k.dstPort = 443;
  k.protocol = 6;
  return k;
}

nfq::Decision allow(nfq::Reason reason) {
  nfq::Decision d;
  d.verdict = nfq::Verdict::Allow;
  d.enforced = nfq::Verdict::Allow;
  d.reason = reason;
  return d;
}

}  // namespace

TEST_CASE("allows that depend on the payload wait for the server", "[nfq][insertion]") {
  nfq::DecideOptions inspect;
  inspect.inspectBoundFlows = true;
  const nfq::DecideOptions plain;
  CHECK(nfq::needsConfirmation(allow(nfq::Reason::SniAllowed), plain, true));
  CHECK(nfq::needsConfirmation(allow(nfq::Reason::HostAllowed), plain, true));
  CHECK(nfq::needsConfirmation(allow(nfq::Reason::BoundAddress), inspect, true));
  // A binding that allows at the SYN does not depend on any byte.
  CHECK_FALSE(nfq::needsConfirmation(allow(nfq::Reason::BoundAddress), plain, true));
  CHECK_FALSE(nfq::needsConfirmation(allow(nfq::Reason::BoundAddress), inspect, false));
  CHECK_FALSE(nfq::needsConfirmation(allow(nfq::Reason::AddressRule), inspect, true));
  CHECK_FALSE(nfq::needsConfirmation(allow(nfq::Reason::WorldAccess), inspect, true));
  nfq::Decision deny = allow(nfq::Reason::SniNotAllowed);
  deny.verdict = nfq::Verdict::Deny;
  CHECK_FALSE(nfq::needsConfirmation(deny, plain, true));
  nfq::Decision audit = allow(nfq::Reason::SniNotAllowed);
  audit.verdict = nfq::Verdict::AuditAllow;
  CHECK_FALSE(nfq::needsConfirmation(audit, plain, true));
}

TEST_CASE("later segments: before, overlapping or after the judged bytes", "[nfq][insertion]") {
  struct Row {
    const char* what;
    uint32_t start;
    size_t length;
    uint32_t seq;
    size_t payload;
    SegmentPlace place;
    size_t overlap;
  };
  const Row rows[] = {
      {"the same segment again", 1000, 500, 1000, 500, SegmentPlace::Overlap, 500},
      {"a shorter copy at the start", 1000, 500, 1000, 100, SegmentPlace::Overlap, 100},
      {"repacketized: the tail and more", 1000, 500, 1400, 300, SegmentPlace::Overlap, 100},
      {"right after", 1000, 500, 1500, 300, SegmentPlace::After, 0},
      {"far after", 1000, 500, 90000, 10, SegmentPlace::After, 0},
      {"one byte before", 1000, 500, 999, 501, SegmentPlace::Before, 0},
      {"old data entirely before", 1000, 500, 100, 10, SegmentPlace::Before, 0},
      {"across the 2^32 wrap", 0xfffffff0u, 64, 0x10u, 8, SegmentPlace::Overlap, 8},
      {"before, across the wrap", 0x10u, 64, 0xfffffff8u, 32, SegmentPlace::Before, 0},
      {"no payload", 1000, 500, 1000, 0, SegmentPlace::After, 0},
  };
  for (const Row& row : rows) {
    INFO(row.what);
    const nfq::SegmentCheck check = nfq::classifySegment(row.start, row.length, row.seq, row.payload);
    CHECK(check.place == row.place);
    CHECK(check.overlap == row.overlap);
  }
}

TEST_CASE("only an acknowledgment of every judged byte confirms", "[nfq][insertion]") {
  // judged [1000, 1500), the client was let send up to 1800.
  CHECK(nfq::acknowledges(1500, 1500, 1800));
  CHECK(nfq::acknowledges(1800, 1500, 1800));
  CHECK(nfq::acknowledges(1801, 1500, 1800));  // and its FIN
  CHECK_FALSE(nfq::acknowledges(1499, 1500, 1800));
  CHECK_FALSE(nfq::acknowledges(1000, 1500, 1800));  // a duplicate ACK after a dropped decoy
  CHECK_FALSE(nfq::acknowledges(1802, 1500, 1800));  // more than the client sent through us
  CHECK_FALSE(nfq::acknowledges(1500u + (1u << 31), 1500, 1800));
  CHECK(nfq::acknowledges(0x10, 0xfffffff0u, 0x20));  // across the wrap
}

TEST_CASE("stream starts: recorded, found, expired, replaced, bounded", "[nfq][insertion]") {
  nfq::StreamStarts starts(16, 10s);
  starts.record(key(1), {1001, 7}, t0);
  REQUIRE(starts.find(key(1), t0 + 1s));
  CHECK(starts.find(key(1), t0 + 1s)->seq == 1001);
  CHECK(starts.find(key(1), t0 + 1s)->replyIndev == 7);
  CHECK_FALSE(starts.find(key(2), t0));
  CHECK_FALSE(starts.find(key(1), t0 + 10s));  // expired
  starts.record(key(1), {5001, 0}, t0 + 2s);   // a new connection on the 5-tuple
  CHECK(starts.find(key(1), t0 + 3s)->seq == 5001);
  starts.erase(key(1));
  CHECK_FALSE(starts.find(key(1), t0 + 3s));
  // Many more connections than entries: no allocation, the table stays usable.
  {
    testsupport::AllocationCounter allocations;
    for (uint16_t port = 100; port < 400; ++port) starts.record(key(port), {port, 0}, t0 + 4s);
    CHECK(allocations.count() == 0);
  }
  CHECK(starts.find(key(399), t0 + 5s)->seq == 399);
  CHECK(starts.overwritten() > 0);
}

TEST_CASE("check 1 from a kernel verdict record's start: the record, not trust in the program",
          "[nfq][insertion][kernel_verdict]") {
  // The worker adopts a first payload the kernel allowed by checking the
  // start the record carries (streamStartOf(record.start)), newest first,
  // against the payload's sequence number and interface, as for a queued
  // one: a record whose start does not fit is denied, whatever the
  // program answered.
  using Reason = nfq::Reason;
  constexpr uint32_t kClientIf = 3;
  constexpr uint32_t kServerIf = 4;
  const auto ns = [](nfq::TimePoint at) {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(at.time_since_epoch()).count());
  };
  const auto check = [&](const nfq::KernelVerdictRecord& record, uint32_t payloadSeq,
                         const std::optional<nfq::StreamStarts::Start>& known, nfq::TimePoint now) {
    bool fromKernel = false;
    const auto start = nfq::newestStart(known, nfq::streamStartOf(record.start), 300s, now, fromKernel);
    return nfq::checkStreamStart(start, payloadSeq, record.ifindex);
  };
  nfq::KernelVerdictRecord record{};
  record.ifindex = kClientIf;
  record.version = nfq::kKernelVerdictRecordVersion;
  record.start = {1001, kServerIf, ns(t0 - 1s)};
  CHECK_FALSE(check(record, 1001, std::nullopt, t0));  // fits: provisional allow
  CHECK(check(record, 1002, std::nullopt, t0) == Reason::NotStreamStart);
  CHECK(check(record, 1000, std::nullopt, t0) == Reason::NotStreamStart);
  // A record whose start is a stale or zeroed copy: never a fit by accident.
  nfq::KernelVerdictRecord stale = record;
  stale.start = {};
  CHECK(check(stale, 1001, std::nullopt, t0) == Reason::StreamStartUnknown);  // 0 ns: older than 300 s
  stale.start = {1001, kServerIf, ns(t0 - 300s)};
  CHECK(check(stale, 1001, std::nullopt, t0) == Reason::StreamStartUnknown);
  // The SYN-ACK came in on the client's interface: forged there.
  nfq::KernelVerdictRecord forged = record;
  forged.start.ifindex = kClientIf;
  CHECK(check(forged, 1001, std::nullopt, t0) == Reason::StreamStartUnknown);
  // A start this worker learnt later (a queued SYN of a new connection on
  // the 5-tuple) counts over the record's, and the other way round.
  CHECK(check(record, 1001, nfq::StreamStarts::Start{5001, 0, t0 - 1ms}, t0) == Reason::NotStreamStart);
  CHECK_FALSE(check(record, 1001, nfq::StreamStarts::Start{5001, 0, t0 - 2s}, t0));
  bool fromKernel = false;
  (void)nfq::newestStart(std::nullopt, nfq::streamStartOf(record.start), 300s, t0, fromKernel);
  CHECK(fromKernel);  // counted as a kernel start (kernelStarts)
}

TEST_CASE("the guard's chain rules: server packets queued only while they matter",
          "[nfq][insertion][ruleset]") {
  nfq::RulesetOptions o;
  o.confirmFirstPayload = true;
  const auto rules = nfq::renderChainRules(o, nfq::IpTablesFamily::V4);
  const auto at = [&](std::string_view needle) {
    for (size_t i = 0; i < rules.size(); ++i) {
      if (rules[i].find(needle) != std::string::npos) return i;
    }
    return rules.size();
  };
  // Decided connections (either direction) leave first; server packets go
  // to the reply chain (goto: its end returns from EGRESSD too), before any
  // rule for client packets.
  CHECK(rules[0] == "-A EGRESSD -m connmark --mark 0x100000/0x700000 -j RETURN");
  const size_t toReply = at("-A EGRESSD -m conntrack --ctdir REPLY -g EGRESSD-REPLY");
  REQUIRE(toReply < rules.size());
  CHECK(toReply < at("-A EGRESSD -p icmp -m conntrack --ctstate RELATED -j RETURN"));
  CHECK(at("--ctdir REPLY -j RETURN") == rules.size());
  // The reply chain, in order: undecided, unmarked server packets to their
  // own chain, a verdict's ALLOW saved, any verdict mark leaves, CONFIRM
  // connections' packets marked and queued.
  const size_t undecided =
      at("-A EGRESSD-REPLY -m connmark --mark 0x0/0x700000 -m mark --mark 0x0/0x700000 -g EGRESSD-REPLY-NEW");
  const size_t saveAllow = at("-A EGRESSD-REPLY -m mark --mark 0x100000/0x700000 -j CONNMARK --save-mark");
  const size_t judged = at("-A EGRESSD-REPLY -m mark ! --mark 0x0/0x700000 -j RETURN");
  const size_t confirming = at(
      "-A EGRESSD-REPLY -p tcp -m connmark --mark 0x500000/0x700000 -j MARK --set-xmark 0x600000/0x700000");
  const size_t queued = at("-A EGRESSD-REPLY -m mark --mark 0x600000/0x700000 -j NFQUEUE --queue-num 0");
  CHECK(undecided == at("-A EGRESSD-REPLY "));
  CHECK(undecided < saveAllow);
  CHECK(saveAllow < judged);
  CHECK(judged < confirming);
  CHECK(confirming < queued);
  // The undecided ones' chain: SYN-ACKs marked and queued.
  const size_t synAck =
      at("-A EGRESSD-REPLY-NEW -p tcp -m tcp --tcp-flags SYN,RST,ACK SYN,ACK -j MARK --set-xmark "
         "0x600000/0x700000");
  const size_t synAckQueued =
      at("-A EGRESSD-REPLY-NEW -m mark --mark 0x600000/0x700000 -j NFQUEUE --queue-num 0");
  CHECK(synAck + 1 == synAckQueued);
  CHECK(rules.back() == rules[synAckQueued]);
  for (size_t i = 0; i < rules.size(); ++i) {
    // No rule of the chain itself between the jump and the queue looks at replies.
    if (rules[i].starts_with("-A EGRESSD ") && i != toReply)
      CHECK(rules[i].find("--ctdir") == std::string::npos);
  }
  // CONFIRM from a verdict is saved; an untracked deny is dropped, not requeued.
  CHECK(at("-m mark --mark 0x500000/0x700000 -j CONNMARK --save-mark") < rules.size());
  CHECK(at("-m mark --mark 0x500000/0x700000 -j RETURN") < at("-m mark --mark 0x200000/0x700000 -j DROP"));
  // The chain ends with its own queue rule; -NEW, the verdict chain, then the reply chains follow.
  CHECK(at("-A EGRESSD -j NFQUEUE --queue-num 0") + 1 == at("-A EGRESSD-NEW "));
  CHECK(at("-A EGRESSD-NEW -j NFQUEUE --queue-num 0") + 1 == at("-A EGRESSD-VERDICT "));
  CHECK(at("-A EGRESSD-VERDICT -j NFQUEUE --queue-num 0") + 1 == at("-A EGRESSD-REPLY "));
  CHECK(queued + 1 == at("-A EGRESSD-REPLY-NEW "));
  for (const auto& rule : rules) CHECK(rule.find("queue-bypass") == std::string::npos);
  CHECK(nfq::renderApply(o, nfq::IpTablesFamily::V4, "*filter\nCOMMIT\n")
            .starts_with("*filter\n:EGRESSD - [0:0]\n:EGRESSD-NEW - [0:0]\n:EGRESSD-VERDICT - [0:0]\n"
                         ":EGRESSD-REPLY - [0:0]\n:EGRESSD-REPLY-NEW - [0:0]\n"));

  // Local clients: their replies come through INPUT, reply direction only.
  o.hookOutput = true;
  const std::string apply = nfq::renderApply(o, nfq::IpTablesFamily::V4, "*filter\nCOMMIT\n");
  CHECK(apply.find("-I INPUT 1 -m conntrack --ctdir REPLY -m comment --comment egressd -j EGRESSD\n") !=
        std::string::npos);
  o.confirmFirstPayload = false;
  CHECK(nfq::renderChainRules(o, nfq::IpTablesFamily::V4).size() < rules.size());
  CHECK(nfq::renderApply(o, nfq::IpTablesFamily::V4, "*filter\nCOMMIT\n").find("INPUT") == std::string::npos);
}

// The recent-verdict table: packets queued behind a final decision get the
// same verdict for its lifetime; TCP only within the decided connection's
// sequence numbers; bounded (overwrite the set's oldest), no allocation.
#include <catch2/catch.hpp>

#include "nfq/recent_verdicts.h"
#include "tests/support/alloc_counter.h"

namespace {

using nfq::Reason;
using nfq::RecentVerdicts;
using nfq::Verdict;
using namespace std::chrono_literals;

const nfq::TimePoint t0 = nfq::TimePoint{} + 100h;

nfq::FlowKey key(uint16_t srcPort, uint8_t protocol = 6) {
  nfq::FlowKey k;
  k.src = *common::parseIpAddress("10.1.0.5");
  k.dst = *common::parseIpAddress("192.0.2.10");
  k.srcPort = srcPort;
  k.dstPort = 443;
  k.protocol = protocol;
  return k;
}

}  // namespace

TEST_CASE("a UDP verdict repeats for its lifetime, then is gone", "[nfq][recent]") {
  RecentVerdicts recent(64, 3s);
  recent.record(key(1, 17), Verdict::Deny, Reason::QuicNotAllowed, std::nullopt, 1200, t0);
  const auto* hit = recent.find(key(1, 17), std::nullopt, t0 + 10ms);
  REQUIRE(hit != nullptr);
  CHECK(hit->verdict == Verdict::Deny);
  CHECK(hit->reason == Reason::QuicNotAllowed);
  CHECK(recent.find(key(2, 17), std::nullopt, t0) == nullptr);  // another source port
  CHECK(recent.find(key(1, 6), std::nullopt, t0) == nullptr);   // another protocol
  CHECK(recent.find(key(1, 17), std::nullopt, t0 + 2999ms) != nullptr);
  CHECK(recent.find(key(1, 17), std::nullopt, t0 + 3s) == nullptr);
  CHECK(recent.stats().hits == 2);
}

TEST_CASE("TCP: only denials, and only segments of the decided connection", "[nfq][recent]") {
  using Tcp = RecentVerdicts::TcpPosition;
  RecentVerdicts recent(64, 3s);
  const uint32_t first = 0xffffff00u;  // near the wrap: distances are modulo 2^32
  recent.record(key(1), Verdict::Deny, Reason::SniNotAllowed, Tcp{first, false}, 1500, t0);
  CHECK(recent.find(key(1), Tcp{first, false}, t0) != nullptr);         // a held segment again
  CHECK(recent.find(key(1), Tcp{first + 1500, false}, t0) != nullptr);  // the next one, queued behind
  CHECK(recent.find(key(1), Tcp{first + 1500 + RecentVerdicts::kTcpWindow, false}, t0) != nullptr);
  // Beyond the window (another connection on the same 5-tuple, its own
  // initial sequence number): judged afresh, and the entry is gone.
  CHECK(recent.find(key(1), Tcp{first + 1501 + RecentVerdicts::kTcpWindow, false}, t0) == nullptr);
  CHECK(recent.find(key(1), Tcp{first, false}, t0) == nullptr);
  CHECK(recent.stats().outOfWindow == 1);
  recent.record(key(2), Verdict::Deny, Reason::SniNotAllowed, Tcp{5000, false}, 100, t0);
  CHECK(recent.find(key(2), Tcp{4999, false}, t0) == nullptr);  // before the first decided byte
  // A SYN is another connection, even with a number in the window.
  recent.record(key(4), Verdict::Deny, Reason::HostNotAllowed, Tcp{5000, false}, 100, t0);
  CHECK(recent.find(key(4), Tcp{5010, true}, t0) == nullptr);
  CHECK(recent.find(key(4), Tcp{5010, false}, t0) == nullptr);  // and removed the entry
  // A SYN denied at once: its retransmission (the same number) repeats;
  // its first segment too, but not a SYN with another number.
  recent.record(key(3), Verdict::Deny, Reason::PortNotInPolicy, Tcp{777, true}, 0, t0);
  CHECK(recent.find(key(3), Tcp{777, true}, t0 + 1s) != nullptr);
  CHECK(recent.find(key(3), Tcp{778, false}, t0 + 1s) != nullptr);
  CHECK(recent.find(key(3), Tcp{900, true}, t0 + 1s) == nullptr);
  // Allows are not remembered for TCP: a new connection on the 5-tuple,
  // its number right after the old one's, must have its hello read.
  recent.record(key(5), Verdict::Allow, Reason::SniAllowed, Tcp{1000, false}, 500, t0);
  recent.record(key(6), Verdict::AuditAllow, Reason::SniNotAllowed, Tcp{1000, false}, 500, t0);
  CHECK(recent.find(key(5), Tcp{1500, false}, t0) == nullptr);
  CHECK(recent.find(key(6), Tcp{1500, false}, t0) == nullptr);
  // ...and an allow ends the deny of an older connection on the 5-tuple.
  recent.record(key(7), Verdict::Deny, Reason::SniNotAllowed, Tcp{2000, false}, 500, t0);
  CHECK(recent.find(key(7), Tcp{2500, false}, t0) != nullptr);
  recent.record(key(7), Verdict::Allow, Reason::SniAllowed, Tcp{2400, false}, 500, t0 + 1s);
  CHECK(recent.find(key(7), Tcp{2500, false}, t0 + 1s) == nullptr);
  CHECK(recent.stats().recorded == 5);  // the five denials
}

TEST_CASE("a new decision replaces the old one, and clear forgets all", "[nfq][recent]") {
  RecentVerdicts recent(64, 3s);
  recent.record(key(1, 17), Verdict::Deny, Reason::HoldTimeout, std::nullopt, 0, t0);
  recent.record(key(1, 17), Verdict::Allow, Reason::QuicAllowed, std::nullopt, 0, t0 + 1s);
  const auto* hit = recent.find(key(1, 17), std::nullopt, t0 + 3500ms);  // the second's lifetime
  REQUIRE(hit != nullptr);
  CHECK(hit->verdict == Verdict::Allow);
  recent.clear();
  CHECK(recent.find(key(1, 17), std::nullopt, t0 + 1s) == nullptr);
}

TEST_CASE("bounded: full sets overwrite their oldest, without allocating", "[nfq][recent]") {
  RecentVerdicts recent(16, 3s);
  REQUIRE(recent.capacity() == 16);
  testsupport::AllocationCounter allocations;
  for (uint16_t port = 1; port <= 1000; ++port) {
    recent.record(key(port, 17), Verdict::Deny, Reason::UdpNotAllowed, std::nullopt, 0,
                  t0 + std::chrono::milliseconds(port));
  }
  size_t live = 0;
  for (uint16_t port = 1; port <= 1000; ++port) {
    if (recent.find(key(port, 17), std::nullopt, t0 + 1s) != nullptr) ++live;
  }
  CHECK(allocations.count() == 0);
  CHECK(live <= recent.capacity());
  CHECK(live > 0);
  CHECK(recent.stats().overwritten == 1000 - live);
  // The newest always survives (only older entries are overwritten).
  CHECK(recent.find(key(1000, 17), std::nullopt, t0 + 1s) != nullptr);
}

TEST_CASE("zero capacity is refused", "[nfq][recent]") {
  CHECK_THROWS_AS(RecentVerdicts(0, 3s), std::invalid_argument);
}

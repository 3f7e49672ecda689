// The held-flow table: lookup, in-order reassembly, retransmissions and
// gaps, bounds, expiry with an injected clock, eviction, and no allocation
// after construction (checked with a counting operator new).
#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "nfq/flow_table.h"
#include "tests/support/alloc_counter.h"

namespace {

using nfq::FlowTable;
using Append = FlowTable::Append;
using namespace std::chrono_literals;

const FlowTable::TimePoint t0 = FlowTable::TimePoint{} + 100h;

nfq::FlowKey key(uint16_t srcPort, const char* dst = "192.0.2.10", uint8_t protocol = 6) {
  nfq::FlowKey k;
  k.src = *common::parseIpAddress("10.1.0.5");
  k.dst = *common::parseIpAddress(dst);
  k.srcPort = srcPort;
  k.dstPort = 443;
  k.protocol = protocol;
  return k;
}

std::vector<uint8_t> bytes(size_t n, uint8_t start = 0) {
  std::vector<uint8_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(start + i * 7);
  return out;
}

nfq::FlowTableOptions small() {
  nfq::FlowTableOptions o;
  o.maxFlows = 4;
  o.maxFlowBytes = 4096;
  o.chunkBytes = 1024;
  o.poolBytes = 8 * 1024;
  o.holdTimeout = 2s;
  return o;
}

auto ignore = [](const FlowTable::Flow&) {};

}  // namespace

TEST_CASE("flows are found by their 5-tuple and gone after release", "[nfq][flow_table]") {
  FlowTable table(small());
  auto& a = table.insert(key(1), t0, ignore);
  table.insert(key(2), t0, ignore);
  CHECK(table.find(key(1)) == &a);
  CHECK(table.find(key(2)) != nullptr);
  CHECK(table.find(key(3)) == nullptr);
  CHECK(table.find(key(1, "192.0.2.11")) == nullptr);
  CHECK(table.find(key(1, "192.0.2.10", 17)) == nullptr);
  table.release(a);
  CHECK(table.find(key(1)) == nullptr);
  CHECK(table.find(key(2)) != nullptr);
  CHECK(table.size() == 1);
  CHECK(table.stats().released == 1);
}

TEST_CASE("segments reassemble in order across chunks", "[nfq][flow_table]") {
  FlowTable table(small());
  auto& flow = table.insert(key(1), t0, ignore);
  const auto all = bytes(2500);
  const std::span<const uint8_t> view(all);
  CHECK(table.append(flow, 1000, view.first(700), 11) == Append::Appended);
  std::vector<uint8_t> scratch(4096);
  auto s = table.stream(flow, scratch);
  CHECK(s.size() == 700);
  CHECK(s.data() != scratch.data());  // one chunk: a view, no copy
  CHECK(table.append(flow, 1700, view.subspan(700, 1800), 12) == Append::Appended);
  s = table.stream(flow, scratch);
  REQUIRE(s.size() == 2500);
  CHECK(std::equal(s.begin(), s.end(), all.begin()));
  CHECK(flow.heldPackets().size() == 2);
  CHECK(flow.heldPackets()[1] == 12);
  CHECK(flow.nextSeq == 3500);
  const size_t freeBefore = table.freeChunks();
  table.release(flow);
  CHECK(table.freeChunks() == freeBefore + 3);
}

TEST_CASE("retransmissions, gaps and overlaps add nothing", "[nfq][flow_table]") {
  FlowTable table(small());
  auto& flow = table.insert(key(1), t0, ignore);
  const auto data = bytes(300);
  CHECK(table.append(flow, 5000, std::span(data).first(100), 1) == Append::Appended);
  CHECK(table.append(flow, 5000, std::span(data).first(100), 2) == Append::Duplicate);
  CHECK(table.append(flow, 5200, std::span(data).first(100), 3) == Append::OutOfOrder);  // gap
  CHECK(table.append(flow, 5050, std::span(data).first(100), 4) == Append::OutOfOrder);  // overlap
  CHECK(flow.length == 100);
  CHECK(flow.heldCount == 1);
  CHECK(table.stats().duplicates == 1);
  CHECK(table.stats().outOfOrder == 2);
}

TEST_CASE("sequence numbers wrap around 2^32", "[nfq][flow_table]") {
  FlowTable table(small());
  auto& flow = table.insert(key(1), t0, ignore);
  const auto data = bytes(100);
  CHECK(table.append(flow, 0xffffffc0u, data, 1) == Append::Appended);
  CHECK(flow.nextSeq == 0x24u);
  CHECK(table.append(flow, 0x24u, data, 2) == Append::Appended);
  CHECK(table.append(flow, 0xffffffc0u, data, 3) == Append::Duplicate);
}

TEST_CASE("UDP datagrams append in arrival order", "[nfq][flow_table]") {
  FlowTable table(small());
  auto& flow = table.insert(key(1, "192.0.2.10", 17), t0, ignore);
  CHECK(table.append(flow, std::nullopt, bytes(1200), 1) == Append::Appended);
  CHECK(table.append(flow, std::nullopt, bytes(1200), 2) == Append::Appended);
  CHECK(flow.length == 2400);
}

TEST_CASE("per-flow byte and packet bounds", "[nfq][flow_table]") {
  FlowTable table(small());
  auto& flow = table.insert(key(1), t0, ignore);
  CHECK(table.append(flow, 0, bytes(4000), 1) == Append::Appended);
  CHECK(table.append(flow, 4000, bytes(97), 2) == Append::BufferFull);
  CHECK(table.append(flow, 4000, bytes(96), 3) == Append::Appended);
  auto& tiny = table.insert(key(2), t0, ignore);
  for (uint32_t i = 0; i < FlowTable::kMaxHeldPackets; ++i) {
    // 32 one-byte packets would need the pool chunk the first flow left.
    (void)table.append(tiny, i, bytes(1), i);
  }
  CHECK(table.append(tiny, FlowTable::kMaxHeldPackets, bytes(1), 99) == Append::BufferFull);
  CHECK(table.stats().bufferFull == 2);
}

TEST_CASE("an exhausted chunk pool refuses, and recovers on release", "[nfq][flow_table]") {
  FlowTable table(small());  // 8 chunks of 1 KiB
  auto& a = table.insert(key(1), t0, ignore);
  auto& b = table.insert(key(2), t0, ignore);
  CHECK(table.append(a, 0, bytes(4096), 1) == Append::Appended);
  CHECK(table.append(b, 0, bytes(3072), 1) == Append::Appended);
  CHECK(table.append(b, 3072, bytes(1025), 2) == Append::BufferFull);
  auto& c = table.insert(key(3), t0, ignore);
  CHECK(table.append(c, 0, bytes(1024), 1) == Append::Appended);
  CHECK(table.append(b, 3072, bytes(10), 2) == Append::PoolExhausted);
  CHECK(table.stats().poolExhausted == 1);
  table.release(a);
  CHECK(table.append(b, 3072, bytes(10), 2) == Append::Appended);
}

TEST_CASE("flows expire after the hold timeout, oldest first", "[nfq][flow_table]") {
  FlowTable table(small());
  auto& a = table.insert(key(1), t0, ignore);
  (void)table.append(a, 0, bytes(10), 41);
  table.insert(key(2), t0 + 1500ms, ignore);
  CHECK(table.nextExpiry() == t0 + 2s);
  std::vector<uint32_t> expiredIds;
  auto collect = [&](const FlowTable::Flow& f) {
    for (uint32_t id : f.heldPackets()) expiredIds.push_back(id);
  };
  CHECK(table.expire(t0 + 1999ms, collect) == 0);
  CHECK(table.expire(t0 + 2s, collect) == 1);
  CHECK(expiredIds == std::vector<uint32_t>{41});
  CHECK(table.find(key(1)) == nullptr);
  CHECK(table.find(key(2)) != nullptr);
  CHECK(table.nextExpiry() == t0 + 3500ms);
  CHECK(table.expire(t0 + 10s, collect) == 1);
  CHECK_FALSE(table.nextExpiry());
  CHECK(table.stats().expired == 2);
  CHECK(table.stats().released == 0);
  CHECK(table.freeChunks() == 8);
}

TEST_CASE("a full table evicts its oldest flow and says which", "[nfq][flow_table]") {
  FlowTable table(small());  // 4 flows
  for (uint16_t port = 1; port <= 4; ++port) {
    auto& flow = table.insert(key(port), t0 + std::chrono::milliseconds(port), ignore);
    (void)table.append(flow, 0, bytes(10), port * 10u);
  }
  std::vector<uint32_t> evicted;
  auto& fifth = table.insert(key(5), t0 + 5ms, [&](const FlowTable::Flow& f) {
    for (uint32_t id : f.heldPackets()) evicted.push_back(id);
  });
  CHECK(evicted == std::vector<uint32_t>{10});
  CHECK(table.find(key(1)) == nullptr);
  CHECK(table.find(key(5)) == &fifth);
  CHECK(table.size() == 4);
  CHECK(table.stats().evicted == 1);
}

TEST_CASE("the index stays consistent under random inserts and releases", "[nfq][flow_table]") {
  nfq::FlowTableOptions options = small();
  options.maxFlows = 64;
  FlowTable table(options);
  std::map<uint16_t, FlowTable::Flow*> model;
  std::mt19937 random(7);
  for (int step = 0; step < 20000; ++step) {
    const auto port = static_cast<uint16_t>(random() % 200);
    if (auto it = model.find(port); it != model.end()) {
      REQUIRE(table.find(key(port)) == it->second);
      table.release(*it->second);
      model.erase(it);
    } else if (model.size() < options.maxFlows) {
      model[port] = &table.insert(key(port), t0, ignore);
    }
    if (step % 997 == 0) {
      for (uint16_t p = 0; p < 200; ++p) {
        const auto it = model.find(p);
        REQUIRE(table.find(key(p)) == (it == model.end() ? nullptr : it->second));
      }
    }
  }
  CHECK(table.size() == model.size());
}

TEST_CASE("no allocation after construction", "[nfq][flow_table]") {
  FlowTable table(small());
  const auto data = bytes(1500);
  std::vector<uint8_t> scratch(4096);
  testsupport::AllocationCounter counter;
  for (uint16_t port = 1; port < 50; ++port) {
    auto& flow = table.insert(key(port), t0 + std::chrono::milliseconds(port), ignore);
    (void)table.append(flow, 0, data, port);
    (void)table.append(flow, 1500, data, port);
    (void)table.stream(flow, scratch);
    (void)table.find(key(port));
    if (port % 3 == 0) table.release(flow);
  }
  table.expire(t0 + 1h, ignore);
  CHECK(counter.count() == 0);
}

TEST_CASE("nonsensical sizes are refused at construction", "[nfq][flow_table]") {
  nfq::FlowTableOptions o = small();
  o.maxFlows = 0;
  CHECK_THROWS_AS(FlowTable(o), std::invalid_argument);
  o = small();
  o.chunkBytes = 16;
  o.maxFlowBytes = 16384;
  CHECK_THROWS_AS(FlowTable(o), std::invalid_argument);
}

TEST_CASE("holdsCopy: only identical bytes inside the held range", "[nfq][flow_table]") {
  FlowTable table(small());
  auto& flow = table.insert(key(1), t0, ignore);
  const auto data = bytes(1500);
  const std::span<const uint8_t> all(data);
  // Held across a chunk boundary (1024-byte chunks), near the 2^32 wrap.
  const uint32_t isn = 0xfffffe00u;
  REQUIRE(table.append(flow, isn, all.first(700), 1) == Append::Appended);
  REQUIRE(table.append(flow, isn + 700, all.subspan(700, 500), 2) == Append::Appended);
  CHECK(table.holdsCopy(flow, isn, all.first(700)));                 // the first segment again
  CHECK(table.holdsCopy(flow, isn, all.first(1200)));                // both, coalesced
  CHECK(table.holdsCopy(flow, isn + 700, all.subspan(700, 500)));    // the second
  CHECK(table.holdsCopy(flow, isn + 1000, all.subspan(1000, 100)));  // straddles the chunks
  CHECK_FALSE(table.holdsCopy(flow, isn, all.first(1201)));          // one byte beyond what was parsed
  CHECK_FALSE(table.holdsCopy(flow, isn + 1200, all.subspan(1200, 1)));
  CHECK_FALSE(table.holdsCopy(flow, isn - 1, all.first(10)));  // before the first held byte
  CHECK_FALSE(table.holdsCopy(flow, isn, {}));
  auto changed = std::vector<uint8_t>(data.begin(), data.begin() + 700);
  changed[650] ^= 1;  // same numbers, other bytes (a different name): not a copy
  CHECK_FALSE(table.holdsCopy(flow, isn, changed));
  changed.assign(data.begin() + 1000, data.begin() + 1100);
  changed[99] ^= 0x80;
  CHECK_FALSE(table.holdsCopy(flow, isn + 1000, changed));
  auto& udp = table.insert(key(2, "192.0.2.10", 17), t0, ignore);
  REQUIRE(table.append(udp, std::nullopt, all.first(100), 3) == Append::Appended);
  CHECK_FALSE(table.holdsCopy(udp, 0, all.first(100)));  // no sequence numbers
}

// /metrics reads a worker's flow-table counters from the event loop while
// the worker thread updates them (issue 5): stats() must be a whole,
// consistent-per-counter copy that never goes back, not a reference to
// plain integers (run under the sanitizer builds too).
TEST_CASE("stats() may be read from another thread while the owner works", "[nfq][flow_table]") {
  FlowTable table(small());
  constexpr uint64_t kRounds = 20000;
  std::atomic<bool> done{false};
  std::atomic<uint64_t> readerChecks{0};
  bool wentBack = false;
  std::thread reader([&] {
    nfq::FlowTableStats last;
    while (!done.load(std::memory_order_acquire)) {
      const nfq::FlowTableStats now = table.stats();
      if (now.inserted < last.inserted || now.released < last.released || now.expired < last.expired ||
          now.active > 4) {
        wentBack = true;
      }
      last = now;
      readerChecks.fetch_add(1, std::memory_order_relaxed);
    }
  });
  // The reader must be running before the owner starts (on a busy machine
  // the 20,000 rounds can be over before the reader thread is scheduled).
  while (readerChecks.load(std::memory_order_relaxed) == 0) std::this_thread::yield();
  for (uint64_t i = 0; i < kRounds; ++i) {
    auto& flow = table.insert(key(static_cast<uint16_t>(i % 3 + 1)), t0, ignore);
    if (i % 2 == 0) {
      table.release(flow);
    } else {
      (void)table.expire(t0 + 10s, ignore);
    }
  }
  done.store(true, std::memory_order_release);
  reader.join();
  CHECK_FALSE(wentBack);
  CHECK(readerChecks > 0);
  const nfq::FlowTableStats end = table.stats();
  CHECK(end.inserted == kRounds);
  CHECK(end.released == kRounds / 2);
  CHECK(end.expired == kRounds / 2);
  CHECK(end.active == 0);
  CHECK(table.size() == 0);
}

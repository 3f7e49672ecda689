// Lease election decisions with an injected clock, and the backoff.
#include <catch2/catch.hpp>

#include "controller/lease.h"

using controller::Backoff;
using controller::LeaseAction;
using controller::LeaseElector;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

json lease(const std::string& holder, const std::string& renewTime, int64_t transitions = 0) {
  return {{"metadata", {{"name", "l"}, {"namespace", "ns"}, {"resourceVersion", "7"}}},
          {"spec",
           {{"holderIdentity", holder},
            {"leaseDurationSeconds", 10},
            {"renewTime", renewTime},
            {"acquireTime", "t0"},
            {"leaseTransitions", transitions}}}};
}

}  // namespace

TEST_CASE("lease: create when absent, renew own, follow a live holder, take over an expired one") {
  LeaseElector me("ns", "l", "me", 10);
  const LeaseElector::Clock::time_point t0{};

  const auto create = me.step(std::nullopt, t0, "T0");
  CHECK(create.action == LeaseAction::Create);
  CHECK(create.body["spec"]["holderIdentity"] == "me");
  CHECK(create.body["metadata"]["namespace"] == "ns");
  CHECK(create.body["spec"]["leaseDurationSeconds"] == 10);

  const auto renew = me.step(lease("me", "T0"), t0 + 2s, "T2");
  CHECK(renew.action == LeaseAction::Update);
  CHECK_FALSE(renew.takeOver);
  CHECK(renew.body["spec"]["renewTime"] == "T2");
  CHECK(renew.body["spec"]["acquireTime"] == "t0");
  CHECK(renew.body["metadata"]["resourceVersion"] == "7");  // optimistic concurrency

  // Another holder keeps renewing: we follow, however long it lasts.
  LeaseElector other("ns", "l", "other", 10);
  CHECK(other.step(lease("me", "R1"), t0, "x").action == LeaseAction::None);
  CHECK(other.step(lease("me", "R1"), t0 + 9s, "x").action == LeaseAction::None);
  CHECK(other.step(lease("me", "R2"), t0 + 12s, "x").action == LeaseAction::None);  // renewed: clock restarts
  CHECK(other.step(lease("me", "R2"), t0 + 21s, "x").action == LeaseAction::None);
  // The same record for a whole duration by our clock: take over.
  const auto take = other.step(lease("me", "R2", 4), t0 + 22s, "T22");
  CHECK(take.action == LeaseAction::Update);
  CHECK(take.takeOver);
  CHECK(take.holder == "me");
  CHECK(take.body["spec"]["holderIdentity"] == "other");
  CHECK(take.body["spec"]["acquireTime"] == "T22");
  CHECK(take.body["spec"]["leaseTransitions"] == 5);
}

TEST_CASE("lease: a released lease is taken at once, release only our own") {
  LeaseElector me("ns", "l", "me", 10);
  const LeaseElector::Clock::time_point t0{};
  const auto step = me.step(lease("", "R"), t0, "T");
  CHECK(step.action == LeaseAction::Update);
  CHECK(step.takeOver);

  const auto released = me.release(lease("me", "R"), "T9");
  REQUIRE(released);
  CHECK((*released)["spec"]["holderIdentity"] == "");
  CHECK((*released)["spec"]["leaseDurationSeconds"] == 1);
  CHECK_FALSE(me.release(lease("someone", "R"), "T9"));
}

TEST_CASE("backoff: grows exponentially with jitter, capped, resets") {
  Backoff backoff(100ms, 1000ms, 42);
  const std::pair<int64_t, int64_t> bounds[] = {{50, 100},  {100, 200},  {200, 400},
                                                {400, 800}, {500, 1000}, {500, 1000}};
  for (const auto& [low, high] : bounds) {
    const auto d = backoff.next().count();
    CHECK(d >= low);
    CHECK(d <= high);
  }
  for (int i = 0; i < 100; ++i) CHECK(backoff.next().count() <= 1000);  // no overflow past the cap
  backoff.reset();
  CHECK(backoff.next().count() <= 100);
  // Jitter: two seeds do not give identical sequences.
  Backoff a(1000ms, 60000ms, 1);
  Backoff b(1000ms, 60000ms, 2);
  bool differ = false;
  for (int i = 0; i < 5; ++i) differ |= a.next() != b.next();
  CHECK(differ);
}

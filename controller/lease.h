// Leader election over a coordination.k8s.io/v1 Lease, as client-go does it:
// the holder renews spec.renewTime; others take over when they have seen the
// same (holder, renewTime) for a whole leaseDurationSeconds by their own
// clock (so clock skew between nodes does not matter). Writes use PUT with
// metadata.resourceVersion, so two candidates cannot both win.
//
// Pure: the caller does the HTTP and passes the steady clock in. Not
// thread-safe; one LeaseElector per candidate.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace controller {

enum class LeaseAction : uint8_t { Create, Update, None };

struct LeaseStep {
  LeaseAction action = LeaseAction::None;
  nlohmann::json body;    // the Lease to POST (Create) or PUT (Update)
  bool takeOver = false;  // Update that takes the lease from someone else
  std::string holder;     // current holder as seen (for logs)
};

class LeaseElector {
 public:
  using Clock = std::chrono::steady_clock;

  LeaseElector(std::string ns, std::string name, std::string identity, int64_t durationSeconds);

  // `lease`: the current Lease object, nullopt when it does not exist (404).
  // `nowTime`: RFC 3339 micro time written into acquireTime/renewTime.
  LeaseStep step(const std::optional<nlohmann::json>& lease, Clock::time_point now, std::string_view nowTime);

  // The body that hands the lease back (holder cleared, duration 1 s) so a
  // successor need not wait for expiry; nullopt when we do not hold it.
  std::optional<nlohmann::json> release(const nlohmann::json& lease, std::string_view nowTime) const;

  const std::string& identity() const noexcept { return identity_; }
  int64_t durationSeconds() const noexcept { return durationSeconds_; }

 private:
  std::string ns_;
  std::string name_;
  std::string identity_;
  int64_t durationSeconds_;
  std::string observedRecord_;  // holder + renewTime last seen
  Clock::time_point observedAt_{};
};

// Exponential backoff with jitter ("equal jitter": half fixed, half random),
// so many controllers reconnecting after an API server restart spread out.
class Backoff {
 public:
  using Duration = std::chrono::milliseconds;
  Backoff(Duration initial, Duration max, uint64_t seed);
  Duration next();
  void reset() noexcept { attempt_ = 0; }

 private:
  Duration initial_;
  Duration max_;
  unsigned attempt_ = 0;
  uint64_t state_;
};

}  // namespace controller

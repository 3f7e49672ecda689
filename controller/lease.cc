#include "controller/lease.h"

#include <algorithm>

namespace controller {

namespace {

std::string specString(const nlohmann::json& lease, const char* key) {
  if (!lease.contains("spec") || !lease["spec"].is_object()) return {};
  const auto& spec = lease["spec"];
  const auto it = spec.find(key);
  return it != spec.end() && it->is_string() ? it->get<std::string>() : std::string();
}

int64_t specInt(const nlohmann::json& lease, const char* key, int64_t fallback) {
  if (!lease.contains("spec") || !lease["spec"].is_object()) return fallback;
  const auto& spec = lease["spec"];
  const auto it = spec.find(key);
  return it != spec.end() && it->is_number_integer() ? it->get<int64_t>() : fallback;
}

}  // namespace

LeaseElector::LeaseElector(std::string ns, std::string name, std::string identity, int64_t durationSeconds)
    : ns_(std::move(ns)),
      name_(std::move(name)),
      identity_(std::move(identity)),
      durationSeconds_(durationSeconds) {}

LeaseStep LeaseElector::step(const std::optional<nlohmann::json>& lease, Clock::time_point now,
                             std::string_view nowTime) {
  LeaseStep out;
  const std::string nowText(nowTime);
  if (!lease) {
    out.action = LeaseAction::Create;
    out.body = {{"apiVersion", "coordination.k8s.io/v1"},
                {"kind", "Lease"},
                {"metadata", {{"name", name_}, {"namespace", ns_}}},
                {"spec",
                 {{"holderIdentity", identity_},
                  {"leaseDurationSeconds", durationSeconds_},
                  {"acquireTime", nowText},
                  {"renewTime", nowText},
                  {"leaseTransitions", 0}}}};
    return out;
  }
  const std::string holder = specString(*lease, "holderIdentity");
  const std::string record = holder + "\n" + specString(*lease, "renewTime");
  out.holder = holder;
  if (record != observedRecord_) {
    observedRecord_ = record;
    observedAt_ = now;
  }
  const int64_t duration = std::max<int64_t>(1, specInt(*lease, "leaseDurationSeconds", durationSeconds_));
  const bool expired = now - observedAt_ >= std::chrono::seconds(duration);
  if (holder != identity_ && !holder.empty() && !expired) return out;  // someone else leads

  out.action = LeaseAction::Update;
  out.takeOver = holder != identity_;
  out.body = *lease;
  nlohmann::json& spec = out.body["spec"];
  if (!spec.is_object()) spec = nlohmann::json::object();
  spec["holderIdentity"] = identity_;
  spec["leaseDurationSeconds"] = durationSeconds_;
  spec["renewTime"] = nowText;
  if (out.takeOver) {
    spec["acquireTime"] = nowText;
    spec["leaseTransitions"] = specInt(*lease, "leaseTransitions", 0) + 1;
  }
  return out;
}

std::optional<nlohmann::json> LeaseElector::release(const nlohmann::json& lease,
                                                    std::string_view nowTime) const {
  if (specString(lease, "holderIdentity") != identity_) return std::nullopt;
  nlohmann::json body = lease;
  body["spec"]["holderIdentity"] = "";
  body["spec"]["leaseDurationSeconds"] = 1;
  body["spec"]["renewTime"] = std::string(nowTime);
  return body;
}

Backoff::Backoff(Duration initial, Duration max, uint64_t seed)
    : initial_(initial), max_(max), state_(seed | 1u) {}

Backoff::Duration Backoff::next() {
  // The exponent is capped so the shift cannot overflow.
  const auto exponent = std::min(attempt_, 20u);
  ++attempt_;
  const auto raw = std::min<int64_t>(max_.count(), initial_.count() << exponent);
  // xorshift64: deterministic for a seed (tests), cheap, good enough for jitter.
  state_ ^= state_ << 13;
  state_ ^= state_ >> 7;
  state_ ^= state_ << 17;
  const int64_t half = raw / 2;
  const int64_t jitter = half > 0 ? static_cast<int64_t>(state_ % static_cast<uint64_t>(half + 1)) : 0;
  return Duration(raw - half + jitter);
}

}  // namespace controller

#include "proxy/client_admission.h"

#include <algorithm>

namespace proxy {

bool inNetworks(std::span<const common::IpNetwork> networks, const common::IpAddress& ip) noexcept {
  const common::IpAddress plain = ip.unmapped();
  return std::any_of(networks.begin(), networks.end(),
                     [&](const common::IpNetwork& network) { return network.contains(plain); });
}

bool RefusalLog::shouldLog(Clock::time_point now, uint64_t& suppressed) noexcept {
  if (logged_ && now - last_ < interval_) {
    ++suppressed_;
    return false;
  }
  suppressed = suppressed_;
  suppressed_ = 0;
  last_ = now;
  logged_ = true;
  return true;
}

}  // namespace proxy

// The proxy's counters in Prometheus text format (docs/metrics.md,
// "Proxy"), appended to egressd's /metrics. Pure.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "proxy/server.h"

namespace proxy {

// `counters`: every loop's added up (proxy/loops.h); `perLoop`: the
// connections each loop accepted, in loop order.
std::string renderPrometheus(const ProxyCounters& counters, std::span<const uint64_t> perLoop = {});

}  // namespace proxy

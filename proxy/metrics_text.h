// The proxy's counters in Prometheus text format (docs/metrics.md,
// "Proxy"), appended to egressd's /metrics. Pure.
#pragma once

#include <string>

#include "proxy/server.h"

namespace proxy {

std::string renderPrometheus(const ProxyCounters& counters);

}  // namespace proxy

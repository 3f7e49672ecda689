// The nameservers of a resolv.conf file (resolv.conf(5)), for
// `dns.upstreams_from`: egressd then forwards external names to the
// resolvers the node itself uses, as CoreDNS's default `forward .
// /etc/resolv.conf` does.
//
// Pure: parses text, no I/O (config/load.cc reads the file). Only
// `nameserver` lines count; other options (search, options, domain) mean
// nothing to a forwarder and are ignored. Every nameserver line that egressd
// cannot use is reported with its line number.
// Thread-safety: no shared state.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/socket_address.h"

namespace config {

struct ResolvConfProblem {
  int line = 0;  // 1-based
  std::string message;
};

struct ResolvConf {
  std::vector<common::SocketAddress> nameservers;  // port 53, in file order, no duplicates
  std::vector<ResolvConfProblem> problems;
};

ResolvConf parseResolvConf(std::string_view text);

}  // namespace config

// `egressctl watch [FILTER...]`: live decisions from a running egressd,
// one tcpdump-style line each (or JSON with --json); `-w FILE.pcap` saves
// the deciding packet of every matching decision instead (tcpdump -r,
// Wireshark). The filter (observe/filter.h) is checked before connecting:
// a bad one is shown with a caret under the offending token, exit 2.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cli {

struct WatchOptions {
  std::string socket;
  std::vector<std::string> filter;  // words, joined by spaces as tcpdump does
  uint64_t count = 0;               // stop after this many events (0: never)
  bool json = false;
  std::string writeFile;  // pcap output ("-" = stdout); lines only with `print`
  bool print = false;
  bool noColour = false;
  bool utc = false;
};

// Joins filter words the way tcpdump does ("port", "443" → "port 443").
std::string joinFilter(const std::vector<std::string>& words);

// Exit code: 0 done (count reached or interrupted), 1 connection lost or
// daemon error, 2 usage error (bad filter, cannot write the file).
int runWatch(const WatchOptions& options);

}  // namespace cli

// `egressctl top`: the busiest destinations, the most-asked DNS names
// (allowed and denied: with nfqueue off, DNS is all egressd sees) and the
// most-denied names over a window (each report covers the last --interval
// seconds), aggregated here from the daemon's watch stream (an optional
// filter narrows it).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "observe/event.h"

namespace cli {

struct TopOptions {
  std::string socket;
  std::vector<std::string> filter;
  double intervalSeconds = 5;
  size_t rows = 10;
  uint64_t iterations = 0;  // stop after this many reports (0: never)
  bool json = false;
  std::string by;  // "namespace" or "workload": also count per client (attribution); "" not
};

// The window's counts (pure, tested without a daemon).
class TopTable {
 public:
  struct Row {
    std::string key;  // "api.example.com:443" (or "203.0.113.7:443" without a name)
    uint64_t total = 0;
    uint64_t allowed = 0;
    uint64_t denied = 0;
    uint64_t audit = 0;
  };

  // Connection verdicts count towards destinations, DNS events (allowed
  // or not) towards the DNS names; denied connections and DNS denials
  // towards the denied names.
  // by: "namespace" or "workload" adds the clients table (every decision
  // counted towards its client's namespace, or "NAMESPACE/KIND/NAME"; "-"
  // for clients that are no known pod). "": no clients table.
  explicit TopTable(std::string by = {}) : by_(std::move(by)) {}
  void add(const observe::Event& event);
  void clear();
  std::vector<Row> destinations(size_t limit) const;
  std::vector<Row> dnsNames(size_t limit) const;
  std::vector<Row> deniedNames(size_t limit) const;
  std::vector<Row> clients(size_t limit) const;
  uint64_t events() const noexcept { return events_; }

  nlohmann::json toJson(size_t limit, double seconds) const;
  void print(std::ostream& out, size_t limit, double seconds) const;

 private:
  std::map<std::string, Row> destinations_;
  std::map<std::string, Row> dnsNames_;
  std::map<std::string, Row> denied_;
  std::map<std::string, Row> clients_;
  std::string by_;
  uint64_t events_ = 0;
};

int runTop(const TopOptions& options, std::ostream& out, std::ostream& err);

}  // namespace cli

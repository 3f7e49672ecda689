// The pod map file: which pod each address belongs to. egress-controller
// writes it from its watch on Pods (node-local: the node's pods; central:
// all), egressd reads it whenever it changes; outside Kubernetes it is
// written by hand. One pod address per line, five fields separated by
// blanks, "-" for an empty workload or service account:
//
//   # IP NAMESPACE POD WORKLOAD SERVICE_ACCOUNT
//   10.244.1.7 team-a web-7d9c6b5f4-x2x9q Deployment/web web-sa
//   fd00:10:244::7 team-a web-7d9c6b5f4-x2x9q Deployment/web web-sa
//   10.244.1.9 team-b db-0 StatefulSet/db -
//
// Blank lines and lines starting with '#' are ignored. docs/attribution.md.
//
// Pure: parsePodMap reads a string (bounds-checked, fuzzed); formatPodMap
// writes one. writePodMapFile replaces a file atomically (temp + rename),
// so a reader never sees half of it. Thread-safety: all functions are
// reentrant.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/ip_address.h"

namespace attribution {

struct PodRecord {
  common::IpAddress ip;  // IPv4 addresses never in the ::ffff: form
  std::string ns;
  std::string pod;
  std::string workload;        // "Deployment/web", ... or ""
  std::string serviceAccount;  // or ""
  friend bool operator==(const PodRecord&, const PodRecord&) = default;
};

struct PodMapProblem {
  size_t line = 0;  // 1-based
  std::string message;
  std::string toString() const { return "line " + std::to_string(line) + ": " + message; }
};

struct PodMapParse {
  std::vector<PodRecord> records;  // the good lines, in file order
  std::vector<PodMapProblem> problems;
};

// Lines beyond this many records are refused (a bound on egressd's memory:
// the central shape of a large cluster fits many times over).
inline constexpr size_t kMaxPodMapRecords = 1'000'000;

// A bad line is skipped and reported; the others are in force. A second
// line for an address already mapped is a problem (the first one stays):
// one address, one pod.
PodMapParse parsePodMap(std::string_view text);

// The file text of `records` (in the order given), with a header comment.
std::string formatPodMap(const std::vector<PodRecord>& records);

// Writes `text` to `path` atomically (a temporary file in the same folder,
// fsync, rename). False with `error` naming the path and the errno text.
bool writePodMapFile(const std::string& path, std::string_view text, std::string& error);

// Checks used by the parser and by the controller before it writes: a
// DNS-1123 label (namespace), a DNS-1123 subdomain (pod, service account),
// and "Kind/name" (workload).
bool isDnsLabel(std::string_view text) noexcept;
bool isDnsSubdomain(std::string_view text) noexcept;
bool isWorkload(std::string_view text) noexcept;

}  // namespace attribution

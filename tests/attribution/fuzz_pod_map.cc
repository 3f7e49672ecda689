// libFuzzer target for attribution::parsePodMap: the map file is written by
// egress-controller or by hand, and egressd reads whatever is there. No
// crash; every record it accepts formats and parses back to itself, and
// builds a table that finds it.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "attribution/pod_map_file.h"
#include "attribution/pod_table.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const attribution::PodMapParse parsed = attribution::parsePodMap(text);
  for (const auto& problem : parsed.problems) {
    if (problem.line == 0 || problem.message.empty()) std::abort();
  }
  const attribution::PodMapParse again = attribution::parsePodMap(attribution::formatPodMap(parsed.records));
  if (!again.problems.empty() || again.records != parsed.records) std::abort();
  const attribution::PodTable table = attribution::PodTable::build(parsed.records);
  if (table.size() != parsed.records.size()) std::abort();
  for (const auto& record : parsed.records) {
    observe::PodIdentity who;
    if (!table.lookup(record.ip, who) || who.podView() != record.pod || who.namespaceView() != record.ns ||
        who.workloadView() != record.workload || who.serviceAccountView() != record.serviceAccount) {
      std::abort();
    }
  }
  return 0;
}

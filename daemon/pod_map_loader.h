// Keeps egressd's pod table (attribution/pod_table.h) in step with the pod
// map file ([attribution] map_file): reads it at start and whenever its
// folder changes (inotify through RulesWatcher, short debounce, so a new
// pod is named within a second of the controller writing it), and
// publishes a new immutable table whole. A missing file is an empty map
// (the controller has not written it yet); bad lines are logged once and
// skipped; a file that cannot be read keeps the last good table.
//
// Thread-safety: lives on the event loop; the holder it publishes to is
// read from any thread.
#pragma once

#include <event2/event.h>

#include <cstdint>
#include <memory>
#include <string>

#include "attribution/pod_table.h"
#include "common/snapshot.h"
#include "daemon/rules_watcher.h"

namespace daemon_main {

struct PodMapCounters {
  uint64_t loads = 0;     // tables published
  uint64_t failures = 0;  // reads that failed (last good table kept)
  size_t pods = 0;        // addresses in the table in force
  size_t problems = 0;    // bad lines in the file in force
  size_t bytes = 0;       // memory of the table in force
};

// The identity of the map file's version as stat(2) gives it.
struct FileStamp {
  bool valid = false;
  uint64_t device = 0;
  uint64_t inode = 0;
  int64_t size = 0;
  int64_t mtimeNs = 0;
  int64_t ctimeNs = 0;
  bool operator==(const FileStamp&) const = default;
};

class PodMapLoader {
 public:
  PodMapLoader(event_base* base, std::string path, common::SnapshotHolder<attribution::PodTable>& table);
  // Loads the file now and starts watching. False with `error` when
  // inotify is unavailable.
  bool start(std::string& error);
  void reload();
  const PodMapCounters& counters() const noexcept { return counters_; }

 private:
  std::string path_;
  common::SnapshotHolder<attribution::PodTable>& table_;
  std::unique_ptr<RulesWatcher> watcher_;
  std::string lastText_;
  FileStamp lastStamp_;  // of the file last read: unchanged means no read
  bool loaded_ = false;
  PodMapCounters counters_;
};

}  // namespace daemon_main

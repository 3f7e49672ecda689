// Watches the rules directories with inotify and calls back (debounced) when
// anything in them changes: files closed after writing, renamed into place
// (the controller's atomic writes), deleted, or a Kubernetes ConfigMap's
// "..data" symlink swapped. A directory that does not exist yet, or is
// deleted, is retried every second; a periodic rescan is the safety net
// for anything inotify cannot see (e.g. NFS).
//
// A file written in place is "being written" from its first IN_MODIFY to
// its IN_CLOSE_WRITE: what is on disk meanwhile may be empty or cut short,
// so the reload keeps its last good version (beingWritten()). A writer that
// keeps the file open without writing for kWriteSettle no longer holds it.
//
// Thread-safety: lives on the event loop that owns it.
#pragma once

#include <event2/event.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/c_handle.h"

namespace daemon_main {

class RulesWatcher {
 public:
  using Callback = std::function<void()>;

  RulesWatcher(event_base* base, Callback onChange,
               std::chrono::milliseconds debounce = std::chrono::milliseconds(100),
               std::chrono::seconds rescan = std::chrono::seconds(30));
  ~RulesWatcher();
  RulesWatcher(const RulesWatcher&) = delete;
  RulesWatcher& operator=(const RulesWatcher&) = delete;

  // Starts (or restarts) watching `dirs`. False with `error` when inotify
  // itself is unavailable; missing directories are not an error.
  bool watch(const std::vector<std::string>& dirs, std::string& error);

  // True while `path` (dir/name as listed) is open for writing. Reads the
  // pending inotify events first, so a write that started a moment ago
  // counts; a change seen here schedules another pass.
  bool beingWritten(const std::string& path);

  static constexpr std::chrono::seconds kWriteSettle{10};

 private:
  static void onInotify(int fd, short what, void* arg);
  static void onDebounce(int fd, short what, void* arg);
  static void onRetry(int fd, short what, void* arg);
  static void onRescan(int fd, short what, void* arg);
  void addMissingWatches(bool announce);
  void schedule();
  bool readEvents();  // true when something changed that needs a pass

  event_base* base_;
  Callback onChange_;
  std::chrono::milliseconds debounce_;
  std::chrono::seconds rescan_;
  int inotifyFd_ = -1;
  std::vector<std::string> dirs_;
  std::map<int, std::string> watches_;                                    // watch descriptor → dir
  std::map<std::string, std::chrono::steady_clock::time_point> writing_;  // path → last IN_MODIFY
  common::CHandle<event, event_free> readEvent_;
  common::CHandle<event, event_free> debounceEvent_;
  common::CHandle<event, event_free> retryEvent_;
  common::CHandle<event, event_free> rescanEvent_;
};

}  // namespace daemon_main

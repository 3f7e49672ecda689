// Watches the rules directories with inotify and calls back (debounced) when
// anything in them changes: files written, renamed into place (the
// controller's atomic writes), deleted, or a Kubernetes ConfigMap's
// "..data" symlink swapped. A directory that does not exist yet, or is
// deleted, is retried every second; a periodic rescan is the safety net
// for anything inotify cannot see (e.g. NFS).
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

 private:
  static void onInotify(int fd, short what, void* arg);
  static void onDebounce(int fd, short what, void* arg);
  static void onRetry(int fd, short what, void* arg);
  static void onRescan(int fd, short what, void* arg);
  void addMissingWatches(bool announce);
  void schedule();

  event_base* base_;
  Callback onChange_;
  std::chrono::milliseconds debounce_;
  std::chrono::seconds rescan_;
  int inotifyFd_ = -1;
  std::vector<std::string> dirs_;
  std::map<int, std::string> watches_;  // watch descriptor → dir
  common::CHandle<event, event_free> readEvent_;
  common::CHandle<event, event_free> debounceEvent_;
  common::CHandle<event, event_free> retryEvent_;
  common::CHandle<event, event_free> rescanEvent_;
};

}  // namespace daemon_main

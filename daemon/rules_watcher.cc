#include "daemon/rules_watcher.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <system_error>

#include "common/log.h"
#include "policy/manifest.h"

namespace daemon_main {

namespace {
constexpr uint32_t kWatchMask = IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE |
                                IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;

timeval toTimeval(std::chrono::microseconds us) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(us.count() / 1'000'000);
  tv.tv_usec = static_cast<suseconds_t>(us.count() % 1'000'000);
  return tv;
}
}  // namespace

RulesWatcher::RulesWatcher(event_base* base, Callback onChange, std::chrono::milliseconds debounce,
                           std::chrono::seconds rescan)
    : base_(base), onChange_(std::move(onChange)), debounce_(debounce), rescan_(rescan) {}

RulesWatcher::~RulesWatcher() {
  readEvent_.reset();
  if (inotifyFd_ >= 0) ::close(inotifyFd_);
}

bool RulesWatcher::watch(const std::vector<std::string>& dirs, std::string& error) {
  readEvent_.reset();
  if (inotifyFd_ >= 0) ::close(inotifyFd_);
  watches_.clear();
  writing_.clear();
  dirs_ = dirs;
  inotifyFd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotifyFd_ < 0) {
    error = "inotify_init1: " + std::error_code(errno, std::generic_category()).message();
    return false;
  }
  readEvent_.reset(event_new(base_, inotifyFd_, EV_READ | EV_PERSIST, &RulesWatcher::onInotify, this));
  debounceEvent_.reset(evtimer_new(base_, &RulesWatcher::onDebounce, this));
  retryEvent_.reset(event_new(base_, -1, EV_PERSIST, &RulesWatcher::onRetry, this));
  rescanEvent_.reset(event_new(base_, -1, EV_PERSIST, &RulesWatcher::onRescan, this));
  if (!readEvent_ || !debounceEvent_ || !retryEvent_ || !rescanEvent_) {
    error = "cannot create libevent events";
    return false;
  }
  event_add(readEvent_.get(), nullptr);
  const timeval retry = toTimeval(std::chrono::seconds(1));
  event_add(retryEvent_.get(), &retry);
  const timeval rescan = toTimeval(rescan_);
  event_add(rescanEvent_.get(), &rescan);
  addMissingWatches(/*announce=*/false);  // the caller loads the rules right after
  return true;
}

void RulesWatcher::addMissingWatches(bool announce) {
  for (const std::string& dir : dirs_) {
    const bool watched =
        std::any_of(watches_.begin(), watches_.end(), [&](const auto& entry) { return entry.second == dir; });
    if (watched) continue;
    const int wd = inotify_add_watch(inotifyFd_, dir.c_str(), kWatchMask);
    if (wd < 0) continue;  // not there yet: retried every second
    watches_[wd] = dir;
    common::LogLine(common::LogLevel::Debug, "rules.watch").field("dir", dir);
    if (announce) schedule();  // it appeared, maybe with files in it
  }
}

void RulesWatcher::schedule() {
  const timeval delay = toTimeval(debounce_);
  event_add(debounceEvent_.get(), &delay);  // re-adding resets the timer: bursts coalesce
}

bool RulesWatcher::readEvents() {
  if (inotifyFd_ < 0) return false;
  alignas(inotify_event) char buffer[16384];
  bool changed = false;
  while (true) {
    const ssize_t n = ::read(inotifyFd_, buffer, sizeof buffer);
    if (n <= 0) break;
    for (ssize_t offset = 0; offset < n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buffer + offset);
      offset += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      if ((ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) != 0) {
        // The directory itself went away: forget it, the retry re-adds it.
        watches_.erase(ev->wd);
      }
      if ((ev->mask & IN_Q_OVERFLOW) != 0) {
        common::logEvent(common::LogLevel::Warn, "rules.watch_overflow");
        writing_.clear();  // events were lost: nothing is known to be open
      }
      const auto dir = watches_.find(ev->wd);
      if (ev->len > 0 && dir != watches_.end()) {
        const std::string path = (std::filesystem::path(dir->second) / ev->name).string();
        if ((ev->mask & IN_MODIFY) != 0) {
          // Being written in place: the pass waits for IN_CLOSE_WRITE.
          if (policy::isManifestFileName(ev->name)) writing_[path] = std::chrono::steady_clock::now();
          if ((ev->mask & ~IN_MODIFY) == 0) continue;
        }
        if ((ev->mask & (IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)) != 0)
          writing_.erase(path);
      }
      changed = true;
    }
  }
  return changed;
}

bool RulesWatcher::beingWritten(const std::string& path) {
  if (readEvents()) schedule();
  const auto it = writing_.find(path);
  if (it == writing_.end()) return false;
  if (std::chrono::steady_clock::now() - it->second >= kWriteSettle) {
    // Open but idle for long: what is on disk is what its writer meant.
    writing_.erase(it);
    return false;
  }
  return true;
}

void RulesWatcher::onInotify(int, short, void* arg) {
  auto* self = static_cast<RulesWatcher*>(arg);
  if (self->readEvents()) self->schedule();
}

void RulesWatcher::onDebounce(int, short, void* arg) {
  static_cast<RulesWatcher*>(arg)->onChange_();
}
void RulesWatcher::onRetry(int, short, void* arg) {
  auto* self = static_cast<RulesWatcher*>(arg);
  self->addMissingWatches(true);
  // A writer that went quiet without closing: give its file a pass now.
  const auto now = std::chrono::steady_clock::now();
  const size_t erased =
      std::erase_if(self->writing_, [&](const auto& entry) { return now - entry.second >= kWriteSettle; });
  if (erased > 0) self->schedule();
}
void RulesWatcher::onRescan(int, short, void* arg) {
  static_cast<RulesWatcher*>(arg)->onChange_();
}

}  // namespace daemon_main

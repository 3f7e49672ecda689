#include "daemon/rules_watcher.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

#include "common/log.h"

namespace daemon_main {

namespace {
constexpr uint32_t kWatchMask = IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE |
                                IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;

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

void RulesWatcher::onInotify(int fd, short, void* arg) {
  auto* self = static_cast<RulesWatcher*>(arg);
  alignas(inotify_event) char buffer[16384];
  bool changed = false;
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) break;
    for (ssize_t offset = 0; offset < n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buffer + offset);
      offset += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      if ((ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) != 0) {
        // The directory itself went away: forget it, the retry re-adds it.
        self->watches_.erase(ev->wd);
      }
      if ((ev->mask & IN_Q_OVERFLOW) != 0) {
        common::logEvent(common::LogLevel::Warn, "rules.watch_overflow");
      }
      changed = true;
    }
  }
  if (changed) self->schedule();
}

void RulesWatcher::onDebounce(int, short, void* arg) {
  static_cast<RulesWatcher*>(arg)->onChange_();
}
void RulesWatcher::onRetry(int, short, void* arg) {
  static_cast<RulesWatcher*>(arg)->addMissingWatches(true);
}
void RulesWatcher::onRescan(int, short, void* arg) {
  static_cast<RulesWatcher*>(arg)->onChange_();
}

}  // namespace daemon_main

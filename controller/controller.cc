#include "controller/controller.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "controller/json_util.h"
#include "controller/lease.h"
#include "controller/plan.h"
#include "controller/rule_set_object.h"
#include "controller/rules_dir.h"
#include "controller/status.h"
#include "controller/watch_event.h"
#include "controller/watch_loop.h"
#include "controller/world_access.h"
#include "policy/public_suffix.h"

namespace controller {

namespace {

using common::LogLevel;
using common::LogLine;
using nlohmann::json;

constexpr const char* kResourcePath = "/apis/zalando.org/v1/egressrulesets";

// The objects the status writer works on, shared with the watch thread.
class StatusQueue {
 public:
  void upsert(const RuleSetObject& object) {
    const std::lock_guard lock(mutex_);
    objects_[object.key()] = object;
    dirty_.insert(object.key());
    cv_.notify_all();
  }
  void erase(const std::string& key) {
    const std::lock_guard lock(mutex_);
    objects_.erase(key);
    dirty_.erase(key);
  }
  void replaceAll(std::map<std::string, RuleSetObject> objects) {
    const std::lock_guard lock(mutex_);
    objects_ = std::move(objects);
    dirty_.clear();
    for (const auto& [key, object] : objects_) dirty_.insert(key);
    cv_.notify_all();
  }
  void markAllDirty() {
    const std::lock_guard lock(mutex_);
    for (const auto& [key, object] : objects_) dirty_.insert(key);
  }
  // Takes the dirty objects (copies), waiting up to `timeout` for some.
  std::vector<RuleSetObject> take(std::chrono::milliseconds timeout, const Stopper& stopper) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, timeout, [&] { return !dirty_.empty() || stopper.requested(); });
    std::vector<RuleSetObject> out;
    for (const auto& key : dirty_) {
      const auto it = objects_.find(key);
      if (it != objects_.end()) out.push_back(it->second);
    }
    dirty_.clear();
    return out;
  }
  void retry(const std::string& key) {
    const std::lock_guard lock(mutex_);
    if (objects_.count(key) != 0) dirty_.insert(key);
  }
  void wake() { cv_.notify_all(); }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<std::string, RuleSetObject> objects_;
  std::set<std::string> dirty_;
};

class StatusWriter {
 public:
  StatusWriter(const ClusterConfig& cluster, const ControllerOptions& options, Stopper& stopper,
               StatusQueue& queue)
      : options_(options),
        stopper_(stopper),
        queue_(queue),
        client_(cluster, stopper),
        elector_(options.leaseNamespace, options.leaseName, options.identity, options.leaseDurationSeconds) {}

  void run() {
    while (!stopper_.requested()) {
      try {
        loop();
        return;
      } catch (const std::exception& e) {
        LogLine(LogLevel::Error, "controller.bug").field("where", "status").field("error", e.what());
        if (stopper_.waitFor(options_.leaseRetry)) return;
      }
    }
  }

 private:
  void loop() {
    const bool elect = !options_.leaseName.empty();
    bool leader = !elect;
    if (leader) logEvent(LogLevel::Info, "status.writer.active");
    auto nextLeaseTick = std::chrono::steady_clock::now();
    while (!stopper_.requested()) {
      if (elect && std::chrono::steady_clock::now() >= nextLeaseTick) {
        const bool was = leader;
        leader = tickLease();
        nextLeaseTick = std::chrono::steady_clock::now() + options_.leaseRetry;
        if (leader && !was) {
          LogLine(LogLevel::Info, "lease.acquired")
              .field("lease", leasePath())
              .field("identity", options_.identity);
          queue_.markAllDirty();  // the previous leader may have left work undone
        } else if (!leader && was) {
          LogLine(LogLevel::Warn, "lease.lost")
              .field("lease", leasePath())
              .field("identity", options_.identity);
        }
      }
      // Wake up for the next lease renewal at the latest.
      const auto untilTick = std::chrono::duration_cast<std::chrono::milliseconds>(
          nextLeaseTick - std::chrono::steady_clock::now());
      const auto wait = elect ? std::clamp(untilTick, std::chrono::milliseconds(0), options_.leaseRetry)
                              : std::chrono::milliseconds(60'000);
      auto work = queue_.take(leader ? wait : std::chrono::milliseconds(0), stopper_);
      if (!leader) {
        // Keep the work for when we lead; followers only sleep.
        for (const auto& object : work) queue_.retry(object.key());
        if (stopper_.waitFor(options_.leaseRetry)) break;
        continue;
      }
      for (size_t i = 0; i < work.size(); ++i) {
        if (stopper_.requested()) break;
        if (elect && std::chrono::steady_clock::now() >= nextLeaseTick) {
          // Renewing the lease comes first: a long batch (thousands of rule
          // sets after a takeover) must not let it expire under us.
          for (size_t j = i; j < work.size(); ++j) queue_.retry(work[j].key());
          break;
        }
        writeStatus(work[i]);
      }
    }
    if (elect && leader) releaseLease();
  }

  std::string leasePath() const {
    return "/apis/coordination.k8s.io/v1/namespaces/" + options_.leaseNamespace + "/leases/" +
           options_.leaseName;
  }

  bool tickLease() {
    const auto now = std::chrono::steady_clock::now();
    const HttpResponse current = client_.request("GET", leasePath());
    std::optional<json> lease;
    if (current.ok()) {
      lease = json::parse(current.body, nullptr, false);
      if (lease->is_discarded()) return stillLeading(now);
    } else if (current.status != 404) {
      LogLine(LogLevel::Warn, "lease.get.failed").field("error", current.describe());
      return stillLeading(now);
    }
    const LeaseStep step = elector_.step(lease, now, rfc3339Now(true));
    if (step.action == LeaseAction::None) {
      leadingUntilValid_ = false;
      return false;
    }
    const HttpResponse written =
        step.action == LeaseAction::Create
            ? client_.request(
                  "POST", "/apis/coordination.k8s.io/v1/namespaces/" + options_.leaseNamespace + "/leases",
                  dumpJson(step.body))
            : client_.request("PUT", leasePath(), dumpJson(step.body));
    if (!written.ok()) {
      // 409: someone else wrote first; they lead until we see them expire.
      if (written.status != 409)
        LogLine(LogLevel::Warn, "lease.write.failed").field("error", written.describe());
      return written.status == 409 ? (leadingUntilValid_ = false) : stillLeading(now);
    }
    if (step.takeOver) LogLine(LogLevel::Info, "lease.taken.over").field("previous", step.holder);
    lastRenew_ = now;
    leadingUntilValid_ = true;
    return true;
  }

  // After a failed renewal we keep writing status only within two thirds of
  // the lease duration (client-go's renew deadline), so two writers never
  // overlap: the others wait the whole duration before taking over.
  bool stillLeading(std::chrono::steady_clock::time_point now) {
    if (!leadingUntilValid_) return false;
    const auto deadline = std::chrono::milliseconds(options_.leaseDurationSeconds * 1000 * 2 / 3);
    if (now - lastRenew_ > deadline) leadingUntilValid_ = false;
    return leadingUntilValid_;
  }

  void releaseLease() {
    // A fresh client: the stopper has fired and aborts every transfer of client_.
    Stopper noStop;
    KubeClient client(client_.config(), noStop);
    const HttpResponse current = client.request("GET", leasePath());
    if (!current.ok()) return;
    const json lease = json::parse(current.body, nullptr, false);
    if (lease.is_discarded()) return;
    const auto body = elector_.release(lease, rfc3339Now(true));
    if (!body) return;
    const HttpResponse released = client.request("PUT", leasePath(), dumpJson(*body));
    LogLine(released.ok() ? LogLevel::Info : LogLevel::Warn, "lease.released")
        .field("ok", released.ok())
        .field("error", released.ok() ? std::string("-") : released.describe());
  }

  void writeStatus(const RuleSetObject& object) {
    const std::string content = manifestContent(object);
    const Validation validation = validateManifest(content, object.key(), policy::defaultPublicSuffixList());
    const std::string now = rfc3339Now(false);
    const auto patch = withWorldAccessCondition(
        statusPatch(object, validation, now), object,
        worldAccessOf(content, object.key(), policy::defaultPublicSuffixList()), now);
    if (!patch) return;
    const std::string path =
        "/apis/zalando.org/v1/namespaces/" + object.ns + "/egressrulesets/" + object.name + "/status";
    const HttpResponse response =
        client_.request("PATCH", path, dumpJson(*patch), "application/merge-patch+json");
    if (response.ok()) {
      LogLine(LogLevel::Info, "status.written")
          .field("ruleset", object.key())
          .field("generation", object.generation)
          .field("accepted", validation.accepted)
          .field("reason", validation.reason)
          .field("targets_in_force", validation.targetsInForce ? std::to_string(*validation.targetsInForce)
                                                               : std::string("none"));
    } else if (response.status == 404) {
      // Deleted meanwhile: the DELETED event removes it from the queue.
    } else {
      LogLine(LogLevel::Warn, "status.write.failed")
          .field("ruleset", object.key())
          .field("error", response.describe());
      queue_.retry(object.key());
    }
  }

  const ControllerOptions& options_;
  Stopper& stopper_;
  StatusQueue& queue_;
  KubeClient client_;
  LeaseElector elector_;
  std::chrono::steady_clock::time_point lastRenew_{};
  bool leadingUntilValid_ = false;
};

// Writes the rules dir on its own thread (group commit): while one batch is
// being flushed to disk (milliseconds per flush on a busy disk), the changes
// that arrive meanwhile gather into the next batch, so a burst of 1,000 new
// rule sets costs a few flushes instead of two per file. A lone change is
// written at once. Later changes of a file replace pending earlier ones.
// Thread-safe; the destructor writes what is pending, then joins.
class DirWriter {
 public:
  explicit DirWriter(const std::string& rulesDir) : dir_(rulesDir), thread_([this] { run(); }) {}
  ~DirWriter() {
    {
      const std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  DirWriter(const DirWriter&) = delete;
  DirWriter& operator=(const DirWriter&) = delete;

  // After a (re)list: the whole directory. The dir is scanned again and
  // owned files nobody wants are removed (stale files). Replaces pending
  // single changes (`desired` already has them) and clears failed().
  void replaceAll(std::map<std::string, std::string> desired) {
    {
      const std::lock_guard lock(mutex_);
      full_ = std::move(desired);
      pending_.clear();
      failed_.store(false, std::memory_order_release);
    }
    cv_.notify_all();
  }

  // One object's file: its content, or nullopt to remove it.
  void set(const std::string& fileName, std::optional<std::string> content) {
    {
      const std::lock_guard lock(mutex_);
      pending_[fileName] = std::move(content);
    }
    cv_.notify_all();
  }

  // A write failed since the last replaceAll: what is on disk is unknown,
  // the caller relists (which rescans the dir and redoes the plan).
  bool failed() const noexcept { return failed_.load(std::memory_order_acquire); }

  // Waits until everything handed over so far has been written (or failed).
  void drain() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [this] { return !busy_ && !full_ && pending_.empty(); });
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    while (true) {
      cv_.wait(lock, [this] { return stop_ || full_ || !pending_.empty(); });
      if (!full_ && pending_.empty()) return;  // stopping, nothing left to write
      auto full = std::exchange(full_, std::nullopt);
      auto pending = std::exchange(pending_, {});
      busy_ = true;
      lock.unlock();
      try {
        if (full) resync(*full);
        if (!pending.empty()) applyPending(pending);
      } catch (const std::exception& e) {
        LogLine(LogLevel::Error, "controller.bug").field("where", "rules_dir").field("error", e.what());
        failed_.store(true, std::memory_order_release);
      }
      lock.lock();
      busy_ = false;
      cv_.notify_all();  // drain()
    }
  }

  void resync(const std::map<std::string, std::string>& desired) {
    std::vector<std::string> errors;
    onDisk_ = dir_.scan(errors);
    for (const auto& error : errors) LogLine(LogLevel::Error, "rules_dir.scan.failed").field("error", error);
    applyPlan(plan(desired, onDisk_));
  }

  // The same plan as after a list, restricted to the changed files.
  void applyPending(const std::map<std::string, std::optional<std::string>>& pending) {
    std::map<std::string, std::string> desired;
    std::map<std::string, std::string> current;
    for (const auto& [fileName, content] : pending) {
      if (content) desired[fileName] = *content;
      const auto it = onDisk_.find(fileName);
      if (it != onDisk_.end()) current[fileName] = it->second;
    }
    applyPlan(plan(desired, current));
  }

  void applyPlan(const Plan& p) {
    if (p.empty()) return;
    const auto errors = dir_.apply(p);
    for (const auto& error : errors) LogLine(LogLevel::Error, "rules_dir.apply.failed").field("error", error);
    // Record what we believe is on disk; a failed write is retried at the next relist.
    for (const auto& write : p.writes) onDisk_[write.fileName] = write.content;
    for (const auto& name : p.deletes) onDisk_.erase(name);
    if (!errors.empty()) {
      // Unknown state on disk: the next relist rescans the dir and redoes the plan.
      for (const auto& write : p.writes) onDisk_[write.fileName] = std::string();
      failed_.store(true, std::memory_order_release);
    }
    for (const auto& write : p.writes) {
      LogLine(LogLevel::Info, "file.written")
          .field("file", write.fileName)
          .field("bytes", write.content.size());
    }
    for (const auto& name : p.deletes) LogLine(LogLevel::Info, "file.removed").field("file", name);
  }

  RulesDir dir_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::optional<std::map<std::string, std::string>> full_;     // guarded by mutex_
  std::map<std::string, std::optional<std::string>> pending_;  // guarded by mutex_
  bool stop_ = false;                                          // guarded by mutex_
  bool busy_ = false;                                          // guarded by mutex_: a batch is being written
  std::atomic<bool> failed_{false};
  std::map<std::string, std::string> onDisk_;  // the writer thread's view of the dir
  std::thread thread_;                         // last: starts once the members above exist
};

// The rule-set half of the watch loop: a list replaces the whole rules
// dir (also removing the files of objects deleted while nobody watched);
// each event writes or removes one file and queues the object for status.
class RuleSetMirror : public WatchHandler {
 public:
  RuleSetMirror(const ControllerOptions& options, StatusQueue& queue)
      : queue_(queue), files_(options.rulesDir) {}

  void listStarted() override { listed_.clear(); }

  void listItem(const json& item) override {
    std::string error;
    auto object = ruleSetFromJson(item, error);
    if (!object) {
      LogLine(LogLevel::Warn, "list.item.skipped").field("error", error);
      return;
    }
    listed_[object->key()] = std::move(*object);
  }

  bool listDone(const std::string& resourceVersion) override {
    std::map<std::string, std::string> desired;
    for (const auto& [key, object] : listed_) desired[manifestFileName(object)] = manifestContent(object);
    files_.replaceAll(std::move(desired));
    // Synchronously, so that a failed write is noticed before watching
    // (needsRelist()).
    files_.drain();
    const size_t count = listed_.size();
    // The objects themselves are kept once, by the status queue.
    queue_.replaceAll(std::exchange(listed_, {}));
    LogLine(LogLevel::Info, "list.done").field("rulesets", count).field("resource_version", resourceVersion);
    return true;
  }

  void changed(WatchEventType type, const json& item) override {
    std::string error;
    auto object = ruleSetFromJson(item, error);
    if (!object) {
      LogLine(LogLevel::Warn, "watch.object.skipped").field("error", error);
      return;
    }
    const std::string fileName = manifestFileName(*object);
    if (type == WatchEventType::Deleted) {
      queue_.erase(object->key());
      files_.set(fileName, std::nullopt);
    } else {
      files_.set(fileName, manifestContent(*object));
      queue_.upsert(*object);
    }
  }

  // A failed file write: the relist retries the whole dir.
  bool needsRelist() const override { return files_.failed(); }

 private:
  StatusQueue& queue_;
  DirWriter files_;
  std::map<std::string, RuleSetObject> listed_;  // the list in progress
};

}  // namespace

int runController(const ClusterConfig& cluster, const ControllerOptions& options, Stopper& stopper) {
  StatusQueue queue;
  StatusWriter writer(cluster, options, stopper, queue);
  RuleSetMirror mirror(options, queue);
  WatchLoop loop(cluster,
                 WatchLoopOptions{.resourcePath = kResourcePath,
                                  .fieldSelector = "",
                                  .logPrefix = "",
                                  .where = "mirror",
                                  .backoffInitial = options.backoffInitial,
                                  .backoffMax = options.backoffMax,
                                  .watchTimeoutSeconds = options.watchTimeoutSeconds,
                                  .listPageSize = options.listPageSize},
                 mirror, stopper);
  std::thread statusThread([&] { writer.run(); });
  loop.run();
  stopper.request();
  queue.wake();
  statusThread.join();
  logEvent(LogLevel::Info, "controller.stopped");
  return 0;
}

}  // namespace controller

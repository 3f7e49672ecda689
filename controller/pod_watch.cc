#include "controller/pod_watch.h"

#include <algorithm>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "attribution/pod_map_file.h"
#include "common/log.h"
#include "controller/pod_index.h"
#include "controller/pod_object.h"
#include "controller/watch_loop.h"

namespace controller {

namespace {

using common::LogLevel;
using common::LogLine;
using nlohmann::json;

// The pod half of the watch loop: the index of pods and the map file
// written from it after every change.
class PodMirror : public WatchHandler {
 public:
  explicit PodMirror(const PodWatchOptions& options) : options_(options) {}

  void listStarted() override { listed_.clear(); }

  void listItem(const json& item) override {
    std::string error;
    if (auto pod = podFromJson(item, error)) {
      listed_.push_back(std::move(*pod));
    } else {
      LogLine(LogLevel::Warn, "pods.item.skipped").field("error", error);
    }
  }

  bool listDone(const std::string& resourceVersion) override {
    index_.replaceAll(std::exchange(listed_, {}));
    LogLine(LogLevel::Info, "pods.list.done")
        .field("pods", index_.size())
        .field("node", options_.nodeName.empty() ? std::string("*") : options_.nodeName)
        .field("resource_version", resourceVersion);
    writeMap();
    return true;
  }

  void changed(WatchEventType type, const json& object) override {
    std::string error;
    auto pod = podFromJson(object, error);
    if (!pod) {
      LogLine(LogLevel::Warn, "pods.object.skipped").field("error", error);
      return;
    }
    if (type == WatchEventType::Deleted) {
      index_.erase(pod->key());
    } else {
      index_.upsert(std::move(*pod));
    }
    writeMap();
  }

 private:
  // The whole file after every change that alters it: a map of 10,000
  // pods is about a megabyte, written in milliseconds; egressd reloads it
  // within tens of milliseconds of the rename.
  void writeMap() {
    std::string text = attribution::formatPodMap(index_.records());
    if (written_ && text == lastText_) return;
    std::string error;
    if (!attribution::writePodMapFile(options_.mapFile, text, error)) {
      LogLine(LogLevel::Error, "pods.map.write.failed").field("error", error);
      written_ = false;  // try again at the next change
      return;
    }
    const size_t lines = static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
    LogLine(LogLevel::Info, "pods.map.written")
        .field("file", options_.mapFile)
        .field("addresses", lines > 0 ? lines - 1 : 0)
        .field("bytes", text.size());
    lastText_ = std::move(text);
    written_ = true;
  }

  const PodWatchOptions& options_;
  std::vector<PodObject> listed_;  // the list in progress
  PodIndex index_;
  std::string lastText_;
  bool written_ = false;
};

}  // namespace

void runPodWatch(const ClusterConfig& cluster, const PodWatchOptions& options, Stopper& stopper) {
  PodMirror mirror(options);
  WatchLoop loop(
      cluster,
      WatchLoopOptions{
          .resourcePath = "/api/v1/pods",
          .fieldSelector = options.nodeName.empty() ? std::string() : "spec.nodeName=" + options.nodeName,
          .logPrefix = "pods.",
          .where = "pods",
          .backoffInitial = options.backoffInitial,
          .backoffMax = options.backoffMax,
          .watchTimeoutSeconds = options.watchTimeoutSeconds,
          .listPageSize = options.listPageSize},
      mirror, stopper);
  loop.run();
}

}  // namespace controller

#include "controller/pod_watch.h"

#include <algorithm>
#include <random>

#include <nlohmann/json.hpp>

#include "attribution/pod_map_file.h"
#include "common/log.h"
#include "controller/json_util.h"
#include "controller/lease.h"
#include "controller/pod_index.h"
#include "controller/pod_object.h"
#include "controller/watch_event.h"

namespace controller {

namespace {

using common::LogLevel;
using common::LogLine;
using nlohmann::json;

std::string urlEscape(const std::string& text) {
  std::string out;
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (const unsigned char c : text) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

enum class End : uint8_t { Expired, Gone, Failed, Stopped };

class PodMirror {
 public:
  PodMirror(const ClusterConfig& cluster, const PodWatchOptions& options, Stopper& stopper)
      : options_(options),
        stopper_(stopper),
        client_(cluster, stopper),
        backoff_(options.backoffInitial, options.backoffMax, std::random_device{}()) {}

  void run() {
    while (!stopper_.requested()) {
      try {
        loop();
        return;
      } catch (const std::exception& e) {
        LogLine(LogLevel::Error, "controller.bug").field("where", "pods").field("error", e.what());
        if (stopper_.waitFor(backoff_.next())) return;
      }
    }
  }

 private:
  std::string selector() const {
    return options_.nodeName.empty() ? std::string()
                                     : "&fieldSelector=" + urlEscape("spec.nodeName=" + options_.nodeName);
  }

  void loop() {
    bool needList = true;
    while (!stopper_.requested()) {
      if (needList) {
        if (!list()) {
          if (stopper_.waitFor(backoff_.next())) return;
          continue;
        }
        needList = false;
      }
      switch (watch()) {
        case End::Stopped:
          return;
        case End::Gone:
          needList = true;
          break;
        case End::Expired:
          break;
        case End::Failed:
          if (stopper_.waitFor(backoff_.next())) return;
          break;
      }
    }
  }

  bool list() {
    std::vector<PodObject> pods;
    std::string continueToken;
    std::string listVersion;
    do {
      std::string path = "/api/v1/pods?limit=" + std::to_string(options_.listPageSize) + selector();
      if (!continueToken.empty()) path += "&continue=" + urlEscape(continueToken);
      const HttpResponse response = client_.request("GET", path);
      if (!response.ok()) {
        LogLine(LogLevel::Warn, "pods.list.failed").field("error", response.describe());
        return false;
      }
      const json page = json::parse(response.body, nullptr, false);
      if (!page.is_object() || !page.contains("items") || !page["items"].is_array()) {
        common::logEvent(LogLevel::Warn, "pods.list.malformed");
        return false;
      }
      for (const auto& item : page["items"]) {
        std::string error;
        if (auto pod = podFromJson(item, error)) {
          pods.push_back(std::move(*pod));
        } else {
          LogLine(LogLevel::Warn, "pods.item.skipped").field("error", error);
        }
      }
      const auto metadata = page.find("metadata");
      listVersion = metadata != page.end() ? jsonString(*metadata, "resourceVersion") : std::string();
      continueToken = metadata != page.end() ? jsonString(*metadata, "continue") : std::string();
    } while (!continueToken.empty());
    if (listVersion.empty()) {
      common::logEvent(LogLevel::Warn, "pods.list.no_resource_version");
      return false;
    }
    resourceVersion_ = listVersion;
    index_.replaceAll(std::move(pods));
    backoff_.reset();
    LogLine(LogLevel::Info, "pods.list.done")
        .field("pods", index_.size())
        .field("node", options_.nodeName.empty() ? std::string("*") : options_.nodeName)
        .field("resource_version", resourceVersion_);
    writeMap();
    return true;
  }

  End watch() {
    static thread_local std::mt19937 rng{std::random_device{}()};
    const int64_t timeout = options_.watchTimeoutSeconds +
                            std::uniform_int_distribution<int64_t>(0, options_.watchTimeoutSeconds)(rng);
    const std::string path =
        "/api/v1/pods?watch=1&allowWatchBookmarks=true&resourceVersion=" + urlEscape(resourceVersion_) +
        "&timeoutSeconds=" + std::to_string(timeout) + selector();
    End end = End::Expired;
    const std::function<bool(std::string_view)> onLine = [&](std::string_view line) {
      WatchParse parsed = parseWatchLine(line);
      if (!parsed.event) {
        LogLine(LogLevel::Warn, "pods.watch.line.malformed").field("error", parsed.error);
        end = End::Failed;
        return false;
      }
      backoff_.reset();
      return handle(*parsed.event, end);
    };
    const HttpResponse response = client_.stream(path, onLine, std::chrono::seconds(timeout + 30));
    if (stopper_.requested()) return End::Stopped;
    if (end != End::Expired) return end;
    if (response.status == 410) {
      LogLine(LogLevel::Info, "pods.watch.gone")
          .field("resource_version", resourceVersion_)
          .field("source", "http");
      return End::Gone;
    }
    if (!response.transportError.empty() || response.status != 200) {
      LogLine(LogLevel::Warn, "pods.watch.failed").field("error", response.describe());
      return End::Failed;
    }
    return End::Expired;
  }

  bool handle(const WatchEvent& event, End& end) {
    switch (event.type) {
      case WatchEventType::Error:
        if (event.code == 410) {
          LogLine(LogLevel::Info, "pods.watch.gone")
              .field("resource_version", resourceVersion_)
              .field("source", "event");
          end = End::Gone;
        } else {
          LogLine(LogLevel::Warn, "pods.watch.error")
              .field("code", event.code)
              .field("message", event.message);
          end = End::Failed;
        }
        return false;
      case WatchEventType::Bookmark:
        resourceVersion_ = event.resourceVersion;
        return true;
      case WatchEventType::Added:
      case WatchEventType::Modified:
      case WatchEventType::Deleted:
        break;
    }
    resourceVersion_ = event.resourceVersion;
    std::string error;
    auto pod = podFromJson(event.object, error);
    if (!pod) {
      LogLine(LogLevel::Warn, "pods.object.skipped").field("error", error);
      return true;
    }
    if (event.type == WatchEventType::Deleted) {
      index_.erase(pod->key());
    } else {
      index_.upsert(std::move(*pod));
    }
    writeMap();
    return true;
  }

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
  Stopper& stopper_;
  KubeClient client_;
  Backoff backoff_;
  PodIndex index_;
  std::string resourceVersion_;
  std::string lastText_;
  bool written_ = false;
};

}  // namespace

void runPodWatch(const ClusterConfig& cluster, const PodWatchOptions& options, Stopper& stopper) {
  PodMirror mirror(cluster, options, stopper);
  mirror.run();
}

}  // namespace controller

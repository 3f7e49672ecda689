#include "controller/watch_loop.h"

#include <functional>
#include <random>

#include "common/log.h"
#include "controller/json_util.h"

namespace controller {

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

WatchLoop::WatchLoop(const ClusterConfig& cluster, WatchLoopOptions options, WatchHandler& handler,
                     Stopper& stopper)
    : options_(std::move(options)),
      handler_(handler),
      stopper_(stopper),
      client_(cluster, stopper),
      backoff_(options_.backoffInitial, options_.backoffMax, std::random_device{}()) {}

void WatchLoop::run() {
  while (!stopper_.requested()) {
    try {
      loop();
      return;
    } catch (const std::exception& e) {
      // Rather than die and leave the resource unmirrored: start over.
      LogLine(LogLevel::Error, "controller.bug").field("where", options_.where).field("error", e.what());
      if (stopper_.waitFor(backoff_.next())) return;
    }
  }
}

void WatchLoop::loop() {
  bool needList = true;
  while (!stopper_.requested()) {
    if (needList) {
      if (!list()) {
        if (stopper_.waitFor(backoff_.next())) return;
        continue;
      }
      needList = false;
    }
    if (handler_.needsRelist()) {
      needList = true;
      if (stopper_.waitFor(backoff_.next())) return;
      continue;
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

bool WatchLoop::list() {
  const std::string selector =
      options_.fieldSelector.empty() ? std::string() : "&fieldSelector=" + urlEscape(options_.fieldSelector);
  handler_.listStarted();
  std::string continueToken;
  std::string listVersion;
  do {
    std::string path = options_.resourcePath + "?limit=" + std::to_string(options_.listPageSize) + selector;
    if (!continueToken.empty()) path += "&continue=" + urlEscape(continueToken);
    const HttpResponse response = client_.request("GET", path);
    if (!response.ok()) {
      // 410 here: the continue token expired; the next attempt starts over.
      LogLine(LogLevel::Warn, event("list.failed")).field("error", response.describe());
      return false;
    }
    const json page = json::parse(response.body, nullptr, false);
    if (!page.is_object() || !page.contains("items") || !page["items"].is_array()) {
      common::logEvent(LogLevel::Warn, event("list.malformed"));
      return false;
    }
    for (const auto& item : page["items"]) handler_.listItem(item);
    const auto metadata = page.find("metadata");
    listVersion = metadata != page.end() ? jsonString(*metadata, "resourceVersion") : std::string();
    continueToken = metadata != page.end() ? jsonString(*metadata, "continue") : std::string();
  } while (!continueToken.empty());
  if (listVersion.empty()) {
    common::logEvent(LogLevel::Warn, event("list.no_resource_version"));
    return false;
  }
  if (!handler_.listDone(listVersion)) return false;
  resourceVersion_ = listVersion;
  backoff_.reset();
  return true;
}

WatchLoop::End WatchLoop::watch() {
  // Like client-go, spread the server-side timeouts so watches of many
  // controllers do not all end at once.
  static thread_local std::mt19937 rng{std::random_device{}()};
  const int64_t timeout = options_.watchTimeoutSeconds +
                          std::uniform_int_distribution<int64_t>(0, options_.watchTimeoutSeconds)(rng);
  std::string path = options_.resourcePath +
                     "?watch=1&allowWatchBookmarks=true&resourceVersion=" + urlEscape(resourceVersion_) +
                     "&timeoutSeconds=" + std::to_string(timeout);
  if (!options_.fieldSelector.empty()) path += "&fieldSelector=" + urlEscape(options_.fieldSelector);
  End end = End::Expired;
  bool sawEvent = false;
  LogLine(LogLevel::Debug, event("watch.start")).field("resource_version", resourceVersion_);
  const std::function<bool(std::string_view)> onLine = [&](std::string_view line) {
    WatchParse parsed = parseWatchLine(line);
    if (!parsed.event) {
      LogLine(LogLevel::Warn, event("watch.line.malformed")).field("error", parsed.error);
      end = End::Failed;
      return false;
    }
    if (!sawEvent) {
      sawEvent = true;
      backoff_.reset();  // the connection works again
    }
    return onEvent(*parsed.event, end) && !handler_.needsRelist();
  };
  const HttpResponse response = client_.stream(path, onLine, std::chrono::seconds(timeout + 30));
  if (stopper_.requested()) return End::Stopped;
  // A handler in doubt ends the watch as Expired; loop() then relists.
  if (end != End::Expired || handler_.needsRelist()) return end;
  if (response.status == 410) {
    LogLine(LogLevel::Info, event("watch.gone"))
        .field("resource_version", resourceVersion_)
        .field("source", "http");
    return End::Gone;
  }
  if (!response.transportError.empty() || response.status != 200) {
    LogLine(LogLevel::Warn, event("watch.failed")).field("error", response.describe());
    return End::Failed;
  }
  LogLine(LogLevel::Debug, event("watch.ended")).field("resource_version", resourceVersion_);
  return End::Expired;
}

bool WatchLoop::onEvent(const WatchEvent& watchEvent, End& end) {
  switch (watchEvent.type) {
    case WatchEventType::Error:
      if (watchEvent.code == 410) {
        LogLine(LogLevel::Info, event("watch.gone"))
            .field("resource_version", resourceVersion_)
            .field("source", "event");
        end = End::Gone;
      } else {
        LogLine(LogLevel::Warn, event("watch.error"))
            .field("code", watchEvent.code)
            .field("message", watchEvent.message);
        end = End::Failed;
      }
      return false;
    case WatchEventType::Bookmark:
      resourceVersion_ = watchEvent.resourceVersion;
      return true;
    case WatchEventType::Added:
    case WatchEventType::Modified:
    case WatchEventType::Deleted:
      break;
  }
  // Even an object the handler cannot use moves the watch on past it.
  resourceVersion_ = watchEvent.resourceVersion;
  handler_.changed(watchEvent.type, watchEvent.object);
  return true;
}

}  // namespace controller

// The list -> watch -> relist loop every half of egress-controller runs over
// one resource (client-go's reflector, without its cache):
//   list:   GET the collection in pages of listPageSize; the handler gets
//           every item, then the list's resourceVersion to replace its
//           whole state with what it gathered.
//   watch:  from that resourceVersion with bookmarks; the handler gets each
//           ADDED / MODIFIED / DELETED object. The server ends the watch
//           after watchTimeoutSeconds (spread by up to as much again); it is
//           then resumed from the last resourceVersion seen.
//   relist: on 410 Gone (HTTP status or watch ERROR event), or when the
//           handler says its applied state is in doubt (needsRelist()).
//   retry:  any other failure waits a jittered exponential backoff, reset
//           once a list succeeds or a watch delivers an event.
//
// Log events are the loop's (list.failed, list.malformed, watch.gone,
// watch.failed, watch.error, ...) under options.logPrefix ("pods." gives
// pods.watch.gone); the handler logs what it did with the data.
//
// run() blocks until the Stopper fires. Errors talking to the API server are
// logged and retried, never fatal; an exception (a bug: the paths are
// exception-free by design) is logged as controller.bug and the loop starts
// over with a relist. Not thread-safe: one loop per thread, and the handler
// is only called from that thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "controller/kube_client.h"
#include "controller/kubeconfig.h"
#include "controller/lease.h"
#include "controller/watch_event.h"

namespace controller {

struct WatchLoopOptions {
  std::string resourcePath;   // the collection, e.g. "/api/v1/pods"
  std::string fieldSelector;  // e.g. "spec.nodeName=node-1"; "" = none
  std::string logPrefix;      // prepended to the loop's log event names
  std::string where;          // names the loop in controller.bug lines
  std::chrono::milliseconds backoffInitial{200};
  std::chrono::milliseconds backoffMax{30000};
  int64_t watchTimeoutSeconds = 300;  // the server ends each watch after this
  unsigned listPageSize = 500;
};

// What one resource does with the objects the loop reads.
class WatchHandler {
 public:
  virtual ~WatchHandler() = default;
  // A (re)list starts: drop what an earlier, unfinished list gathered.
  virtual void listStarted() = 0;
  // One item of a list page (not yet in force).
  virtual void listItem(const nlohmann::json& item) = 0;
  // The list is complete at `resourceVersion`: replace the whole state with
  // the items gathered. False when that failed (the loop lists again after a
  // backoff).
  virtual bool listDone(const std::string& resourceVersion) = 0;
  // An ADDED, MODIFIED or DELETED event's object.
  virtual void changed(WatchEventType type, const nlohmann::json& object) = 0;
  // True when the state applied so far is in doubt (e.g. a failed file
  // write): the loop ends the watch and relists.
  virtual bool needsRelist() const { return false; }
};

class WatchLoop {
 public:
  WatchLoop(const ClusterConfig& cluster, WatchLoopOptions options, WatchHandler& handler, Stopper& stopper);

  void run();

 private:
  enum class End : uint8_t { Expired, Gone, Failed, Stopped };

  void loop();
  bool list();
  End watch();
  bool onEvent(const WatchEvent& event, End& end);
  std::string event(const char* name) const { return options_.logPrefix + name; }

  WatchLoopOptions options_;
  WatchHandler& handler_;
  Stopper& stopper_;
  KubeClient client_;
  Backoff backoff_;
  std::string resourceVersion_;
};

// Percent-encodes everything but RFC 3986 unreserved characters, for query
// parameter values.
std::string urlEscape(const std::string& text);

}  // namespace controller

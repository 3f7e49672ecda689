// The control socket: a UNIX stream socket (config `control.socket`, mode
// 0600 by default) speaking the JSON-lines protocol of
// daemon/control_protocol.h and docs/control-protocol.md: version, rules
// (the compiled policy with provenance), stats, explain HOST:PORT, and
// watch (a filtered stream of decision events, optionally with packets).
//
// A slow or stuck watch client never slows the data path: the event hub
// hands events to publish() on the event loop, which appends to each
// client's bounded output buffer; beyond `clientOutputLimit` bytes that
// client's events are dropped and counted (and reported to it as
// {"dropped":N} once it catches up). Request lines are bounded too; a
// longer one gets an error and the connection is closed.
//
// Start-up: the parent directory is created (0755) when missing; a socket
// file nobody listens on is removed (left over from a crash); a socket
// another process listens on makes start() fail (another egressd). stop()
// and the destructor close every client and remove the socket file.
//
// Ownership: borrows the event_base, the policy holder and the event hub
// (all must outlive it); owns the listener and the client connections.
// Thread-safety: event-loop thread only.
#pragma once

#include <event2/event.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/c_handle.h"
#include "common/snapshot.h"
#include "observe/event.h"
#include "observe/filter.h"
#include "policy/policy.h"

struct evconnlistener;
struct bufferevent;

namespace daemon_main {

class EventHub;

struct ControlServerOptions {
  std::string path;
  mode_t mode = 0600;
  size_t maxRequestLine = 64 * 1024;
  size_t clientOutputLimit = 1024 * 1024;  // bytes queued per client before its events drop
  size_t maxClients = 64;
  // Whether egressd runs in audit mode now (a live setting: SIGHUP may
  // change it), for explain's answer; empty: enforce. Called on the loop.
  std::function<bool()> audit;
};

struct ControlServerCounters {
  uint64_t accepted = 0;
  uint64_t rejected = 0;  // over maxClients
  uint64_t requests = 0;
  uint64_t badRequests = 0;     // answered with an error
  uint64_t oversizedLines = 0;  // closed
  uint64_t watchEventsSent = 0;
  uint64_t watchEventsDropped = 0;  // slow watch clients, all time
  size_t clients = 0;
  size_t watchers = 0;
};

class ControlServer {
 public:
  using StatsProvider = std::function<nlohmann::json()>;

  // `hub` may be null (no packets to capture; publish() is then called by
  // whoever owns the events).
  ControlServer(event_base* base, ControlServerOptions options,
                const common::SnapshotHolder<policy::Policy>& policy, StatsProvider stats, EventHub* hub);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Binds and listens. False with `error` naming the path and the cause.
  bool start(std::string& error);
  // Closes every client and the listener; removes the socket file.
  void stop();

  // Takes over a connected stream socket as a client (greets it). For
  // tests (socketpair) and start()'s listener.
  void addClient(int fd);

  // Fan-out of one event to the watch clients whose filter matches it.
  void publish(const observe::Event& event, const observe::CapturedPacket* packet);
  // Whether any client is watching (publish() would send something).
  bool watching() const noexcept { return watchers_ != 0; }

  ControlServerCounters counters() const noexcept;
  const std::string& path() const noexcept { return options_.path; }

 private:
  struct Client;
  struct ListenerFree {
    void operator()(evconnlistener* listener) const noexcept;
  };

  static void onAccept(evconnlistener* listener, int fd, struct sockaddr* addr, int length, void* arg);
  static void onRead(bufferevent* bev, void* arg);
  static void onWrite(bufferevent* bev, void* arg);
  static void onEvent(bufferevent* bev, short what, void* arg);

  void handleLine(Client& client, std::string_view line);
  void send(Client& client, std::string_view line);
  // Sends `line` and closes once it has been written.
  void sendAndClose(Client& client, std::string_view line);
  void remove(uint64_t id);
  void updateCapture();

  event_base* base_;
  ControlServerOptions options_;
  const common::SnapshotHolder<policy::Policy>& policy_;
  StatsProvider stats_;
  EventHub* hub_;
  std::unique_ptr<evconnlistener, ListenerFree> listener_;
  bool ownsPath_ = false;
  std::unordered_map<uint64_t, std::unique_ptr<Client>> clients_;
  uint64_t nextId_ = 1;
  size_t watchers_ = 0;
  ControlServerCounters counters_;
};

}  // namespace daemon_main

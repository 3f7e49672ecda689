#include "daemon/control_server.h"

#include <array>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <variant>

#include "common/errno_text.h"
#include "common/log.h"
#include "common/strings.h"
#include "daemon/control_protocol.h"
#include "daemon/event_hub.h"

namespace daemon_main {

struct ControlServer::Client {
  ControlServer* server = nullptr;
  uint64_t id = 0;
  common::CHandle<bufferevent, bufferevent_free> bev;
  bool closing = false;  // the last line is being written, then close
  bool watching = false;
  control::WatchFormat format = control::WatchFormat::Json;
  bool colour = false;
  bool packets = false;
  observe::Filter filter;
  uint64_t droppedPending = 0;  // not yet reported to the client
};

namespace {

struct FdCloser {
  int fd = -1;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

bool fillAddress(const std::string& path, sockaddr_un& address, std::string& error) {
  std::memset(&address, 0, sizeof(address));
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path)) {
    error = "control socket path " + path + " is longer than " +
            std::to_string(sizeof(address.sun_path) - 1) + " bytes";
    return false;
  }
  std::memcpy(address.sun_path, path.data(), path.size());
  return true;
}

// Whether some process accepts connections on `path` now.
bool someoneListens(const sockaddr_un& address) {
  FdCloser probe{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (probe.fd < 0) return false;
  return ::connect(probe.fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0;
}

}  // namespace

void ControlServer::ListenerFree::operator()(evconnlistener* listener) const noexcept {
  evconnlistener_free(listener);
}

ControlServer::ControlServer(event_base* base, ControlServerOptions options,
                             const common::SnapshotHolder<policy::Policy>& policy, StatsProvider stats,
                             EventHub* hub)
    : base_(base), options_(std::move(options)), policy_(policy), stats_(std::move(stats)), hub_(hub) {}

ControlServer::~ControlServer() {
  stop();
}

bool ControlServer::start(std::string& error) {
  const std::string& path = options_.path;
  if (path.empty()) {
    error = "control.socket is empty";
    return false;
  }
  sockaddr_un address{};
  if (!fillAddress(path, address, error)) return false;

  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty() && !std::filesystem::exists(parent, ec)) {
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      error = "cannot create " + parent.string() + " for the control socket: " + ec.message();
      return false;
    }
    std::filesystem::permissions(parent, std::filesystem::perms(0755), ec);
  }

  struct stat existing {};
  if (::lstat(path.c_str(), &existing) == 0) {
    if (!S_ISSOCK(existing.st_mode)) {
      error = path + " exists and is not a socket; not removing it (set control.socket to another path)";
      return false;
    }
    if (someoneListens(address)) {
      error = "another process (another egressd?) is already listening on " + path +
              "; stop it first or set control.socket to another path";
      return false;
    }
    // Left over from a process that died without cleaning up.
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      error = "cannot remove the stale control socket " + path + ": " + common::errnoText(errno);
      return false;
    }
    common::LogLine(common::LogLevel::Info, "control.stale_socket_removed").field("path", path);
  }

  FdCloser fd{::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
  if (fd.fd < 0) {
    error = "socket(AF_UNIX): " + common::errnoText(errno);
    return false;
  }
  // The umask makes the socket private from the moment it exists; the
  // chmod then sets exactly the configured mode.
  const mode_t oldMask = ::umask(static_cast<mode_t>(~options_.mode & 0777));
  const int bound = ::bind(fd.fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address));
  const int bindErrno = errno;
  ::umask(oldMask);
  if (bound != 0) {
    error = "cannot bind the control socket " + path + ": " + common::errnoText(bindErrno);
    return false;
  }
  ownsPath_ = true;
  if (::chmod(path.c_str(), options_.mode) != 0 || ::listen(fd.fd, 64) != 0) {
    error = "cannot listen on the control socket " + path + ": " + common::errnoText(errno);
    stop();
    return false;
  }
  listener_.reset(evconnlistener_new(base_, &ControlServer::onAccept, this,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd.fd));
  if (!listener_) {
    error = "evconnlistener_new failed for " + path;
    stop();
    return false;
  }
  fd.fd = -1;  // the listener owns it now
  return true;
}

void ControlServer::stop() {
  listener_.reset();
  clients_.clear();
  watchers_ = 0;
  updateCapture();
  if (ownsPath_) {
    ::unlink(options_.path.c_str());
    ownsPath_ = false;
  }
}

void ControlServer::onAccept(evconnlistener*, int fd, struct sockaddr*, int, void* arg) {
  static_cast<ControlServer*>(arg)->addClient(fd);
}

void ControlServer::addClient(int fd) {
  ++counters_.accepted;
  auto client = std::make_unique<Client>();
  client->server = this;
  client->id = nextId_++;
  client->bev.reset(bufferevent_socket_new(base_, fd, BEV_OPT_CLOSE_ON_FREE));
  if (!client->bev) {
    ::close(fd);
    return;
  }
  Client& c = *client;
  clients_.emplace(c.id, std::move(client));
  bufferevent_setcb(c.bev.get(), &ControlServer::onRead, &ControlServer::onWrite, &ControlServer::onEvent,
                    &c);
  // Stop reading once a line is longer than allowed: onRead then sees the
  // full buffer without a newline and closes.
  bufferevent_setwatermark(c.bev.get(), EV_READ, 0, options_.maxRequestLine + 2);
  bufferevent_enable(c.bev.get(), EV_READ | EV_WRITE);
  if (clients_.size() > options_.maxClients) {
    ++counters_.rejected;
    sendAndClose(c, control::errorLine(
                        {"too many control clients (at most " + std::to_string(options_.maxClients) + ")",
                         std::nullopt}));
    return;
  }
  send(c, control::greetingLine());
}

void ControlServer::send(Client& client, std::string_view line) {
  evbuffer* out = bufferevent_get_output(client.bev.get());
  evbuffer_add(out, line.data(), line.size());
  evbuffer_add(out, "\n", 1);
}

void ControlServer::sendAndClose(Client& client, std::string_view line) {
  send(client, line);
  client.closing = true;
  if (client.watching) {
    client.watching = false;
    --watchers_;
    updateCapture();
  }
  bufferevent_disable(client.bev.get(), EV_READ);
}

void ControlServer::onRead(bufferevent* bev, void* arg) {
  auto& client = *static_cast<Client*>(arg);
  ControlServer& server = *client.server;
  evbuffer* in = bufferevent_get_input(bev);
  while (!client.closing) {
    if (client.watching) {
      // A watch stream is one-way; whatever the client sends is ignored.
      evbuffer_drain(in, evbuffer_get_length(in));
      return;
    }
    size_t length = 0;
    char* raw = evbuffer_readln(in, &length, EVBUFFER_EOL_LF);
    if (raw == nullptr) {
      if (evbuffer_get_length(in) > server.options_.maxRequestLine) {
        ++server.counters_.oversizedLines;
        server.sendAndClose(client,
                            control::errorLine({"request line longer than " +
                                                    std::to_string(server.options_.maxRequestLine) + " bytes",
                                                std::nullopt}));
      }
      return;
    }
    const std::unique_ptr<char, decltype(&std::free)> line(raw, &std::free);
    if (length > server.options_.maxRequestLine) {
      ++server.counters_.oversizedLines;
      server.sendAndClose(client,
                          control::errorLine({"request line longer than " +
                                                  std::to_string(server.options_.maxRequestLine) + " bytes",
                                              std::nullopt}));
      return;
    }
    const std::string_view text = common::trimAscii(std::string_view(line.get(), length));
    if (text.empty()) continue;
    server.handleLine(client, text);
  }
}

void ControlServer::onWrite(bufferevent* bev, void* arg) {
  auto& client = *static_cast<Client*>(arg);
  if (client.closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
    client.server->remove(client.id);
  }
}

void ControlServer::onEvent(bufferevent*, short what, void* arg) {
  auto& client = *static_cast<Client*>(arg);
  if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) != 0) client.server->remove(client.id);
}

void ControlServer::remove(uint64_t id) {
  const auto it = clients_.find(id);
  if (it == clients_.end()) return;
  if (it->second->watching) {
    --watchers_;
  }
  clients_.erase(it);
  updateCapture();
}

void ControlServer::updateCapture() {
  if (hub_ == nullptr) return;
  bool packets = false;
  for (const auto& [id, client] : clients_) packets = packets || (client->watching && client->packets);
  hub_->setCapturePackets(packets);
}

void ControlServer::handleLine(Client& client, std::string_view line) {
  ++counters_.requests;
  auto parsed = control::parseRequest(line);
  if (auto* error = std::get_if<control::RequestError>(&parsed)) {
    ++counters_.badRequests;
    send(client, control::errorLine(*error));
    return;
  }
  const control::Request& request = std::get<control::Request>(parsed);
  switch (request.op) {
    case control::Op::Version:
      send(client, control::okLine({{"egressd", std::string(control::kVersion)},
                                    {"protocol", control::kProtocolVersion}}));
      return;
    case control::Op::Rules: {
      const auto policy = policy_.load();
      send(client, control::okLine({{"rules", control::rulesJson(*policy, policy_.generation())}}));
      return;
    }
    case control::Op::Stats: {
      nlohmann::json stats = stats_ ? stats_() : nlohmann::json::object();
      send(client, control::okLine({{"stats", std::move(stats)}}));
      return;
    }
    case control::Op::Explain: {
      std::string error;
      const auto query = control::parseHostPort(request.target, error);
      if (!query) {
        ++counters_.badRequests;
        send(client, control::errorLine({"\"" + request.target + "\": " + error, std::nullopt}));
        return;
      }
      const auto policy = policy_.load();
      nlohmann::json explanation = control::explainJson(*policy, query->host, query->port);
      // The rules' verdict is the same in both modes; what happens to the
      // traffic is not.
      explanation["mode"] = options_.audit && options_.audit() ? "audit" : "enforce";
      send(client, control::okLine({{"explain", std::move(explanation)}}));
      return;
    }
    case control::Op::Watch: {
      auto filter = observe::parseFilter(request.filter);
      if (auto* error = std::get_if<observe::FilterError>(&filter)) {
        ++counters_.badRequests;
        send(client, control::errorLine({"invalid filter: " + error->message, *error}));
        return;
      }
      client.filter = std::move(std::get<observe::Filter>(filter));
      client.packets = request.packets;
      client.format = request.format;
      client.colour = request.colour;
      client.watching = true;
      ++watchers_;
      updateCapture();
      // "format" tells the client which stream it gets (a daemon before the
      // line format answered without it and streamed event objects).
      send(client,
           control::okLine({{"filter", client.filter.text()},
                            {"packets", client.packets},
                            {"format", client.format == control::WatchFormat::Line ? "line" : "json"}}));
      return;
    }
  }
}

void ControlServer::publish(const observe::Event& event, const observe::CapturedPacket* packet) {
  if (watchers_ == 0) return;
  // Serialized at most once per event and form, whatever the number of
  // clients: the event object, and the line body without and with colour.
  std::string line;
  std::array<std::string, 2> textLines;
  std::string packetText;
  for (auto& [id, clientPtr] : clients_) {
    Client& client = *clientPtr;
    if (!client.watching || client.closing || !client.filter.matches(event)) continue;
    evbuffer* out = bufferevent_get_output(client.bev.get());
    if (evbuffer_get_length(out) >= options_.clientOutputLimit) {
      // The client does not keep up: its events go, the data path does
      // not wait for it.
      ++client.droppedPending;
      ++counters_.watchEventsDropped;
      continue;
    }
    if (client.droppedPending > 0) {
      send(client, control::droppedLine(client.droppedPending));
      client.droppedPending = 0;
    }
    if (client.format == control::WatchFormat::Line) {
      std::string& text = textLines[client.colour ? 1 : 0];
      if (text.empty()) text = control::textEventLine(event, client.colour);
      send(client, text);
    } else {
      if (line.empty()) line = control::eventLine(event);
      send(client, line);
    }
    ++counters_.watchEventsSent;
    if (client.packets && packet != nullptr && packet->length > 0) {
      if (packetText.empty()) {
        packetText =
            control::packetLine(event.time, std::span<const uint8_t>(packet->bytes.data(), packet->length),
                                packet->originalLength);
      }
      send(client, packetText);
    }
  }
}

ControlServerCounters ControlServer::counters() const noexcept {
  ControlServerCounters c = counters_;
  c.clients = clients_.size();
  c.watchers = watchers_;
  return c;
}

}  // namespace daemon_main

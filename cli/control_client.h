// egressctl's end of the control socket (daemon/control_protocol.h,
// docs/control-protocol.md): connect, check the greeting's protocol
// version, send requests, read response and stream lines.
//
// Blocking I/O on one UNIX stream socket; readLine() can wait with a
// timeout and returns early when `interrupted()` becomes true (SIGINT), so
// commands can finish cleanly (flush a pcap file) on Ctrl-C.
// Ownership: owns the socket. Failure: every call returns false/nullopt
// with a message for the user naming the socket path and the cause.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "daemon/control_protocol.h"

namespace cli {

inline constexpr std::string_view kDefaultSocket = "/run/egressd/control.sock";

// The control socket a command talks to: `socketFlag` (--socket) when
// given, else control.socket of `configFile` (--config, an egressd.toml,
// loaded as egressd loads it), else `environment` ($EGRESSCTL_SOCKET) when
// set and not empty, else kDefaultSocket. False with `error` naming the
// config file's problems.
bool chooseSocket(const std::string* socketFlag, const std::string& configFile, const char* environment,
                  std::string& socket, std::string& error);

// Set by the SIGINT/SIGTERM handler installInterruptHandler() installs.
bool interrupted() noexcept;
void installInterruptHandler();

class ControlClient {
 public:
  // Connects and reads the greeting; nullptr with `error` set.
  static std::unique_ptr<ControlClient> connect(const std::string& path, std::string& error);
  // Takes ownership of a connected socket (connect() uses it).
  ControlClient(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~ControlClient();
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;

  bool send(const control::Request& request, std::string& error);

  enum class ReadStatus { Line, Timeout, Closed, Interrupted, Error };
  // The next line without '\n' into `line`. `timeout` < 0 waits forever.
  // Calls the before-wait hook (if set) each time it is about to block.
  ReadStatus readLine(std::string& line, std::string& error,
                      std::chrono::milliseconds timeout = std::chrono::milliseconds(-1));

  // Sends a request and reads its one response line. The response object
  // on {"ok":true}; nullopt with `error` (the daemon's message) otherwise.
  // `response` receives the whole error object when given (filter errors).
  std::optional<nlohmann::json> call(const control::Request& request, std::string& error,
                                     nlohmann::json* response = nullptr);

  // Runs right before readLine() blocks for more data: a stream's output
  // is flushed once per burst of lines, not once per line.
  void setBeforeWait(std::function<void()> hook) { beforeWait_ = std::move(hook); }

  const std::string& daemonVersion() const noexcept { return daemonVersion_; }
  const std::string& path() const noexcept { return path_; }

 private:
  int fd_;
  std::string path_;
  std::string buffer_;
  size_t start_ = 0;
  std::string daemonVersion_;
  std::function<void()> beforeWait_;
};

}  // namespace cli

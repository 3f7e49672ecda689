// The tunnel relay: the bidirectional byte pump between a client and its
// upstream once CONNECT has succeeded. It owns both sockets from then on.
//
// Each direction moves bytes from its source socket to its sink socket
// through a pipe with splice(2) (zero-copy: the payload never enters user
// space), or, when no pipe can be had (EMFILE, ENFILE, or splicing
// switched off), through a buffer of its own with recv/send. Either way at
// most `pipeBytes` (or `bufferBytes`) per direction are in flight: reading
// a source stops while its sink has not taken them (bounded memory).
//
// Half-close: a source's EOF becomes shutdown(SHUT_WR) on the sink once
// everything before it is written; the relay ends when both directions
// have passed their EOF on. A reset or write error on either side closes
// both sockets with SO_LINGER 0, so the other peer sees the reset too.
//
// Ownership: owns the two sockets and the pipes; borrows the event_base
// and the byte counters (both must outlive it). Thread-safety: everything
// on the event_base's thread.
#pragma once

#include <event2/event.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "common/c_handle.h"

namespace proxy {

// A descriptor owned by exactly one object, closed with it.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  explicit operator bool() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

struct RelayOptions {
  // Pipe capacity per direction (F_SETPIPE_SZ), the most bytes in flight.
  size_t pipeBytes = size_t{64} * 1024;
  // Without a pipe: the buffer per direction, allocated on first use.
  size_t bufferBytes = size_t{64} * 1024;
  std::chrono::milliseconds idleTimeout{300'000};
  // False: always recv/send (the fallback path, for comparisons).
  bool splice = true;
};

// Why a relay ended.
enum class RelayEnd : uint8_t {
  Done,   // both sides sent EOF and everything was delivered
  Reset,  // a side reset or failed; the other was reset too
  Idle,   // nothing moved either way for idleTimeout
};

class TunnelRelay {
 public:
  // Called once when the relay ends (its sockets are closed by then); the
  // relay may be destroyed only after it returned.
  using Finished = void (*)(void* arg, RelayEnd end);

  TunnelRelay(event_base* base, UniqueFd client, UniqueFd upstream, const RelayOptions& options,
              std::atomic<uint64_t>& bytesToUpstream, std::atomic<uint64_t>& bytesToClient, Finished finished,
              void* arg);
  ~TunnelRelay();
  TunnelRelay(const TunnelRelay&) = delete;
  TunnelRelay& operator=(const TunnelRelay&) = delete;

  // Starts relaying. `toClient` and `toUpstream` are written first, before
  // anything read from the other side (the CONNECT answer, bytes the client
  // sent right behind its CONNECT). False if the events cannot be created:
  // nothing was started, the caller closes the connection.
  bool start(std::string toClient, std::string toUpstream);
  // Stops every event and closes the sockets now (the connection is closed
  // from outside, e.g. on shutdown). Finished is not called.
  void stop() noexcept;
  // True when both directions splice through pipes (else recv/send).
  bool spliced() const noexcept;

 private:
  struct Direction;
  static void onReadable(evutil_socket_t fd, short what, void* arg);
  static void onWritable(evutil_socket_t fd, short what, void* arg);
  static void onIdleCheck(evutil_socket_t fd, short what, void* arg);
  void pump(Direction& direction);
  void finish(RelayEnd end);

  event_base* base_;
  RelayOptions options_;
  UniqueFd client_;
  UniqueFd upstream_;
  std::unique_ptr<Direction> up_;    // client -> upstream
  std::unique_ptr<Direction> down_;  // upstream -> client
  common::CHandle<event, event_free> idleTimer_;
  std::chrono::steady_clock::time_point lastActivity_;
  Finished finished_;
  void* arg_;
  bool over_ = false;
};

}  // namespace proxy

// The tunnel relay: the bidirectional byte pump between a client and its
// upstream once CONNECT has succeeded. It owns both sockets from then on.
//
// Each direction copies its first `spliceAfter` bytes with recv/send
// through a scratch buffer shared by every tunnel of the thread (a TLS
// handshake and a request or two: for a few KiB a copy costs less than
// splice(2) through a pipe), then moves bytes from its source socket to
// its sink socket through a pipe with splice(2) (zero-copy: the payload
// never enters user space). When no pipe can be had (EMFILE, ENFILE, or
// splicing switched off) it goes on copying. Bytes the sink did not take
// wait in the direction's queue; at most `pipeBytes` (spliced) or
// `bufferBytes` (copied) per direction are in flight: reading a source
// stops while its sink has not taken them (bounded memory).
//
// A direction holds its pipe only while bytes are in flight: it borrows
// an empty pipe from the PipePool when its source has data and gives it
// back once the sink took everything. An idle tunnel thus costs its two
// sockets and this object, not two pipes (4 descriptors, their rings); a
// busy one reuses pipes without a pipe2() per tunnel. A spliced direction
// whose sink stays full at the kernel's largest send buffer is a fast bulk
// leg, and that buffer is raised once (RelayOptions::bulkSendBuffer) so
// that the leg keeps moving while the relay's thread waits for a CPU.
//
// Few system calls per short tunnel: no read before the poller says a
// source is readable, no second copy read after a short one (the socket
// was empty), a peer's FIN announced with its last bytes (EPOLLRDHUP)
// is read at once and sent along with them, and TCP_NODELAY on the
// upstream socket only once a second write goes there
// (RelayOptions::upstreamNagle). A spliced direction reads on
// while reads move bytes (a few rounds per wakeup), as bulk wants. The
// upstream's handshake ACK, held back by the kernel, leaves with the
// first bytes sent there, or alone after a short wait for a server that
// speaks first (RelayOptions::upstreamAckDelay).
//
// Half-close: a source's EOF becomes shutdown(SHUT_WR) on the sink once
// everything before it is written (the last copied bytes and the FIN then
// leave in one segment); when the other direction is over already, the
// close that ends the relay sends that FIN. The relay ends when both
// directions have passed their EOF on. A reset or write error on either
// side closes both sockets with SO_LINGER 0, so the other peer sees the
// reset too.
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
#include <string_view>
#include <utility>
#include <vector>

#include "common/c_handle.h"
#include "common/unique_fd.h"

namespace proxy {

using common::UniqueFd;

// Empty pipes waiting for the next direction with bytes to move. Bounded
// (maxIdle); pipes nobody took for a tick of `trim` are closed, so a burst
// leaves no descriptors behind. Thread-safety: the event_base's thread.
class PipePool {
 public:
  struct Pipe {
    UniqueFd read;
    UniqueFd write;
    size_t capacity = 0;  // bytes, as the kernel granted
    explicit operator bool() const noexcept { return static_cast<bool>(read); }
  };

  PipePool(event_base* base, size_t pipeBytes, size_t maxIdle = 256,
           std::chrono::milliseconds trim = std::chrono::milliseconds(1000));
  // An empty pipe, pooled or new (pipe2, sized with F_SETPIPE_SZ); an empty
  // Pipe when none can be had (EMFILE, ENFILE).
  Pipe take();
  // `pipe` must be empty. Kept for the next take(), or closed.
  void give(Pipe pipe);
  size_t idle() const noexcept { return idle_.size(); }

 private:
  static void onTrim(evutil_socket_t fd, short what, void* arg);

  size_t pipeBytes_;
  size_t maxIdle_;
  std::chrono::milliseconds trim_;
  std::vector<Pipe> idle_;
  common::CHandle<event, event_free> trimTimer_;
  bool takenSinceTrim_ = false;
};

struct RelayOptions {
  // Pipe capacity per direction (F_SETPIPE_SZ), the most bytes in flight.
  size_t pipeBytes = size_t{64} * 1024;
  // Copying: the most bytes read at once and left waiting for the sink.
  size_t bufferBytes = size_t{64} * 1024;
  // A direction copies until it has moved this many bytes, then splices
  // (with a pool). 0: splice from the first byte.
  size_t spliceAfter = size_t{64} * 1024;
  std::chrono::milliseconds idleTimeout{300'000};
  // The upstream socket still has Nagle's algorithm on: the relay sets
  // TCP_NODELAY before its second write there. A first write is never
  // held back (Nagle waits only while an earlier small segment is
  // unacknowledged), so a tunnel that writes upstream once (one request)
  // saves the setsockopt; from the second write on, a small write goes at
  // once, as with TCP_NODELAY from the start.
  bool upstreamNagle = false;
  // The upstream socket holds back its handshake's last ACK (TCP_QUICKACK
  // off before connect(): the kernel waits up to 200 ms for data to carry
  // it), so the client's first bytes take it along: one segment less per
  // tunnel, and the server accepts the connection with its first request
  // already in. When nothing has gone upstream this long after start()
  // (the server speaks first: SSH, SMTP), the relay sends it alone
  // (TCP_QUICKACK on). After the first bytes the relay turns quick ACKs
  // back on (sent so soon after the handshake, they put the socket in the
  // kernel's delayed-ACK mode, which would keep a Nagle-bound server's
  // second small write waiting 40 ms). Zero: the ACK is not held back.
  std::chrono::milliseconds upstreamAckDelay{0};
  // The client's socket acknowledges late (accepted from a listener with
  // TCP_QUICKACK off, so that the CONNECT answer carried the ACK of the
  // request): the relay turns quick ACKs back on once the first bytes to
  // the client are written. Left in the kernel's delayed-ACK mode, a client
  // writing two small pieces with Nagle's algorithm on (Java's sockets by
  // default) would wait 40 ms for the ACK of the first before sending the
  // second.
  bool clientQuickAck = false;
  // A fast bulk leg: a spliced direction whose sink is full although the
  // kernel's own tuning gave it all it gives (kernelSendBufferMax, from
  // net.ipv4.tcp_wmem) gets a send buffer of this (SO_SNDBUFFORCE; the
  // kernel doubles it for its bookkeeping, as for SO_SNDBUF), once, never
  // lowered. The autotuned 4 MiB is about 2 ms of a fast local leg:
  // whenever the relay's thread waited longer than that for a CPU, the
  // leg ran dry (on a 2-core node, where the client and the server each
  // want a core, bulk tunnels moved 0.81x the bytes of a direct
  // connection; 0.86-0.91x with 4 MiB). A slow reader does not qualify
  // (the kernel sizes its buffer by its congestion window, far below the
  // maximum), so it cannot make the proxy hold more for it than the kernel
  // would (a fast reader that slows down later: at most twice the
  // kernel's maximum); neither can a short or idle tunnel, nor a socket
  // without CAP_NET_ADMIN. Checked when the sink is full, at most once per
  // bulkSendBuffer bytes moved. 0: never.
  size_t bulkSendBuffer = size_t{4} * 1024 * 1024;
  size_t kernelSendBufferMax = size_t{4} * 1024 * 1024;
};

// A TCP socket option that is an on/off int (TCP_NODELAY, TCP_QUICKACK),
// best effort: a socket that refuses it behaves as before, only slower.
void setTcpFlag(int fd, int option, bool on) noexcept;

// The most the kernel's tuning gives a TCP socket's send buffer in the
// calling thread's network namespace (net.ipv4.tcp_wmem's third field);
// `fallback` when it cannot be read.
size_t kernelSendBufferMax(size_t fallback) noexcept;

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

  // `pipes` null: always recv/send (splicing switched off).
  TunnelRelay(event_base* base, UniqueFd client, UniqueFd upstream, PipePool* pipes,
              const RelayOptions& options, std::atomic<uint64_t>& bytesToUpstream,
              std::atomic<uint64_t>& bytesToClient, Finished finished, void* arg);
  ~TunnelRelay();
  TunnelRelay(const TunnelRelay&) = delete;
  TunnelRelay& operator=(const TunnelRelay&) = delete;

  // Starts relaying. `toClient` and `toUpstream` are written first, before
  // anything read from the other side (the CONNECT answer, bytes the client
  // sent right behind its CONNECT). False if the events cannot be created:
  // nothing was started, the caller closes the connection.
  bool start(std::string_view toClient, std::string_view toUpstream);
  // Stops every event and closes the sockets now (the connection is closed
  // from outside, e.g. on shutdown). Finished is not called.
  void stop() noexcept;
  // True once a direction past `spliceAfter` had to copy through user
  // space for want of a pipe (with a pool).
  bool copied() const noexcept { return copied_; }

 private:
  struct Direction;
  static void onReadable(evutil_socket_t fd, short what, void* arg);
  static void onWritable(evutil_socket_t fd, short what, void* arg);
  static void onIdleCheck(evutil_socket_t fd, short what, void* arg);
  void pump(Direction& direction);
  Direction& other(const Direction& direction) const;
  void finish(RelayEnd end);
  void quickAcksAfterFirstWrite();

  event_base* base_;
  PipePool* pipes_;
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
  bool copied_ = false;
  // The upstream's handshake ACK waits for the first bytes or the timer;
  // after the first bytes, the socket goes back to quick ACKs.
  bool upstreamAckHeld_ = false;
  bool quickAckDue_ = false;
};

}  // namespace proxy

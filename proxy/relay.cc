#include "proxy/relay.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <span>
#include <vector>

namespace proxy {

void setTcpFlag(int fd, int option, bool on) noexcept {
  const int value = on ? 1 : 0;
  ::setsockopt(fd, IPPROTO_TCP, option, &value, sizeof value);
}

size_t kernelSendBufferMax(size_t fallback) noexcept {
  // "min default max", whitespace-separated.
  const UniqueFd file(::open("/proc/sys/net/ipv4/tcp_wmem", O_RDONLY | O_CLOEXEC));
  if (!file) return fallback;
  char line[96] = {};
  if (::read(file.get(), line, sizeof line - 1) <= 0) return fallback;
  const char* at = line;
  unsigned long long value = 0;
  for (int field = 0; field < 3; ++field) {
    char* end = nullptr;
    errno = 0;
    value = std::strtoull(at, &end, 10);
    if (end == at || errno != 0) return fallback;
    at = end;
  }
  return value > 0 ? static_cast<size_t>(value) : fallback;
}

namespace {

using EventHandle = common::CHandle<event, event_free>;

// Fill-and-drain rounds per wakeup, at most: a bulk tunnel then yields the
// loop to the others every few pipes' worth.
constexpr int kRoundsPerWakeup = 8;

enum class Io : uint8_t { Moved, Blocked, End, Failed };

bool wouldBlock(int error) {
  return error == EAGAIN || error == EWOULDBLOCK;
}

timeval toTimeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

// The next close sends a reset instead of a FIN.
void resetOnClose(int fd) {
  const linger hard{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
}

// Raises `fd`'s send buffer to `bytes` (SO_SNDBUFFORCE: the kernel then
// holds up to twice that, its bookkeeping included) if the kernel's own
// tuning took it to `kernelMax` already. True once it is that large
// (raised now or before); false when the buffer is smaller than
// `kernelMax` (a slow leg, or one still growing) or the call was refused
// (no CAP_NET_ADMIN).
bool raiseSendBuffer(int fd, size_t bytes, size_t kernelMax) noexcept {
  const int wanted = static_cast<int>(std::min<size_t>(bytes, INT_MAX / 2));
  if (wanted <= 0) return false;
  int current = 0;
  socklen_t length = sizeof current;
  if (::getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &current, &length) != 0) return false;
  // The kernel reports (and holds) twice what was asked for.
  if (current >= 2 * wanted) return true;
  if (static_cast<size_t>(current) < kernelMax) return false;
  return ::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &wanted, sizeof wanted) == 0;
}

}  // namespace

PipePool::PipePool(event_base* base, size_t pipeBytes, size_t maxIdle, std::chrono::milliseconds trim)
    : pipeBytes_(pipeBytes),
      maxIdle_(maxIdle),
      trim_(trim),
      trimTimer_(evtimer_new(base, &PipePool::onTrim, this)) {}

PipePool::Pipe PipePool::take() {
  takenSinceTrim_ = true;
  if (!idle_.empty()) {
    Pipe pipe = std::move(idle_.back());
    idle_.pop_back();
    return pipe;
  }
  Pipe pipe;
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return pipe;  // EMFILE, ENFILE: the caller copies
  pipe.read.reset(fds[0]);
  pipe.write.reset(fds[1]);
  // The kernel rounds up to pages and may grant less than asked
  // (/proc/sys/fs/pipe-max-size, the user's pipe budget): read it back.
  ::fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(pipeBytes_));
  const int granted = ::fcntl(fds[1], F_GETPIPE_SZ);
  pipe.capacity = granted > 0 ? static_cast<size_t>(granted) : size_t{4096};
  return pipe;
}

void PipePool::give(Pipe pipe) {
  if (!pipe || idle_.size() >= maxIdle_) return;  // closed with `pipe`
  idle_.push_back(std::move(pipe));
  if (trimTimer_ && !evtimer_pending(trimTimer_.get(), nullptr)) {
    const timeval tick = toTimeval(trim_);
    evtimer_add(trimTimer_.get(), &tick);
  }
}

void PipePool::onTrim(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<PipePool*>(arg);
  // Nobody took one for a whole tick: the burst is over, the descriptors go.
  if (!self->takenSinceTrim_) self->idle_.clear();
  self->takenSinceTrim_ = false;
  if (!self->idle_.empty()) {
    const timeval tick = toTimeval(self->trim_);
    evtimer_add(self->trimTimer_.get(), &tick);
  }
}

// The copy path's buffer: one per thread, shared by every tunnel (a
// direction copies from it straight to its sink and queues only what the
// sink did not take).
std::span<uint8_t> scratch(size_t bytes) {
  thread_local std::vector<uint8_t> buffer;
  if (buffer.size() < bytes) buffer.resize(bytes);
  return {buffer.data(), bytes};
}

// One direction: bytes read from `source` go to `sink`, copied or spliced.
struct TunnelRelay::Direction {
  TunnelRelay* relay = nullptr;
  int source = -1;
  int sink = -1;
  std::atomic<uint64_t>* bytes = nullptr;
  // Bytes for the sink before anything else: the CONNECT answer, early
  // bytes, then what a copy could not send at once.
  std::string pending;
  size_t pendingSent = 0;
  // Bytes read from the source so far (copy first, splice after).
  uint64_t moved = 0;
  // splice(2) path: the borrowed pipe, and how many bytes sit in it.
  PipePool::Pipe pipe;
  size_t inPipe = 0;
  bool sourceEof = false;
  bool sinkShut = false;
  // The poller saw the source's FIN (EPOLLRDHUP): after its last bytes
  // a read returns the EOF, so reading goes on past a short read.
  bool peerClosed = false;
  // splice from a socket says EAGAIN when the pipe has no free slot as well
  // as when the socket is empty: with bytes in the pipe, reading waits
  // until the sink took some (else a readable socket would spin the loop).
  bool pipeMaybeFull = false;
  EventHandle readable;  // on source
  EventHandle writable;  // on sink, made the first time the sink is full
  bool reading = false;
  bool writing = false;
  // The sink still has Nagle's algorithm on (RelayOptions::upstreamNagle),
  // and whether anything was written to it yet.
  bool sinkNagle = false;
  bool wroteToSink = false;
  // From how many bytes moved the sink's send buffer is looked at again
  // (a fast bulk leg's is raised once; then never).
  uint64_t nextBufferCheck = 0;

  bool spliced() const { return static_cast<bool>(pipe); }
  bool pendingLeft() const { return pendingSent < pending.size(); }
  bool queued() const { return pendingLeft() || inPipe > 0; }
  // Whether the next read has somewhere to go.
  bool roomToRead() const {
    if (pendingLeft()) return false;  // copying waits for the sink; a pipe's bytes follow these
    return !spliced() || (inPipe < pipe.capacity && !pipeMaybeFull);
  }

  // Past `spliceAfter`, with a pool: a pipe for the next read, if one can
  // be had. False when this direction copies (so far, or for want of one).
  bool wantPipe(PipePool* pipes, size_t spliceAfter, bool& missing) {
    if (spliced()) return true;
    if (pipes == nullptr || moved < spliceAfter) return false;
    pipe = pipes->take();
    if (spliced()) return true;
    missing = true;  // EMFILE, ENFILE: go on copying
    return false;
  }

  // Once empty, the pipe goes back to the pool: an idle direction holds
  // none. The queue's memory is given back too.
  void release(PipePool* pipes) {
    if (!pendingLeft() && !pending.empty()) {
      std::string().swap(pending);
      pendingSent = 0;
    }
    if (inPipe != 0) return;
    pipeMaybeFull = false;
    if (spliced() && pipes != nullptr) pipes->give(std::move(pipe));
    pipe = PipePool::Pipe();
  }

  // Before every write to the sink: from the second on, without Nagle's
  // algorithm (a first write is never held back by it; a later small one
  // would wait for the acknowledgment of an earlier small segment).
  void beforeWrite() {
    if (sinkNagle && wroteToSink) {
      setTcpFlag(sink, TCP_NODELAY, true);
      sinkNagle = false;
    }
    wroteToSink = true;
  }

  // Sends `bytes` at once; only what the sink does not take is queued.
  // Moved: all sent; Blocked: the rest is pending.
  Io sendOrQueue(std::string_view bytes, int flags) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      beforeWrite();
      const ssize_t n = ::send(sink, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL | flags);
      if (n > 0) {
        sent += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && wouldBlock(errno)) break;
      return Io::Failed;
    }
    if (sent == bytes.size()) return Io::Moved;
    pending.assign(bytes.substr(sent));
    pendingSent = 0;
    return Io::Blocked;
  }

  // The bytes due before any read (the CONNECT answer, early bytes).
  Io sendFirst(std::string_view bytes) { return sendOrQueue(bytes, 0); }

  // Writes queued bytes, then what sits in the pipe. Moved: the sink took
  // everything; Blocked: it took what it could.
  Io drain(bool& progress) {
    while (pendingLeft()) {
      // The source's EOF is known: the last bytes may wait for the FIN
      // that follows at once and leave in the same segment.
      const int more = sourceEof && inPipe == 0 ? MSG_MORE : 0;
      beforeWrite();
      const ssize_t n =
          ::send(sink, pending.data() + pendingSent, pending.size() - pendingSent, MSG_NOSIGNAL | more);
      if (n > 0) {
        pendingSent += static_cast<size_t>(n);
        progress = true;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      return n < 0 && wouldBlock(errno) ? Io::Blocked : Io::Failed;
    }
    while (inPipe > 0) {
      beforeWrite();
      const ssize_t n =
          ::splice(pipe.read.get(), nullptr, sink, nullptr, inPipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        progress = true;
        pipeMaybeFull = false;
        inPipe -= static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      return n < 0 && wouldBlock(errno) ? Io::Blocked : Io::Failed;
    }
    return Io::Moved;
  }

  // One read from the source. `full`: it filled all the room offered (the
  // socket may hold more); a short read emptied the socket.
  Io read(void* into, size_t room, bool splicing, size_t& got, bool& full) {
    for (;;) {
      const ssize_t n = splicing ? ::splice(source, nullptr, pipe.write.get(), nullptr, room,
                                            SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
                                 : ::recv(source, into, room, 0);
      if (n > 0) {
        got = static_cast<size_t>(n);
        full = got == room;
        moved += got;
        bytes->fetch_add(got, std::memory_order_relaxed);
        return Io::Moved;
      }
      if (n == 0) {
        sourceEof = true;
        return Io::End;
      }
      if (errno == EINTR) continue;
      if (!wouldBlock(errno)) return Io::Failed;
      if (splicing && inPipe > 0) pipeMaybeFull = true;
      return Io::Blocked;
    }
  }

  // Copies what the source holds (up to `bufferBytes`) to the sink; what
  // the sink does not take is queued. With the FIN announced, the read
  // that returns it comes first, so the bytes and the FIN leave together.
  Io copy(size_t bufferBytes, bool& progress, bool& full) {
    const std::span<uint8_t> buffer = scratch(bufferBytes);
    size_t got = 0;
    const Io first = read(buffer.data(), buffer.size(), false, got, full);
    if (first != Io::Moved) return first;
    progress = true;
    size_t have = got;
    if (peerClosed && !full) {
      bool more = false;
      const Io second = read(buffer.data() + have, buffer.size() - have, false, got, more);
      if (second == Io::Failed) return Io::Failed;
      if (second == Io::Moved) have += got;
    }
    const int more = sourceEof ? MSG_MORE : 0;  // the FIN follows at once
    const std::string_view bytes(reinterpret_cast<const char*>(buffer.data()), have);
    return sendOrQueue(bytes, more) == Io::Failed ? Io::Failed : Io::Moved;
  }

  // Splices what the source holds into the pipe, up to its free room.
  // `more`: always after bytes moved. A spliced direction is a bulk one:
  // its socket refills while the pipe drains, and going back to the
  // poller after each short read would cost an epoll_wait per pipe (the
  // rounds per wakeup bound it instead).
  Io fillPipe(bool& progress, bool& more) {
    size_t got = 0;
    bool full = false;
    const Io result = read(nullptr, pipe.capacity - inPipe, true, got, full);
    more = result == Io::Moved;
    if (more) {
      inPipe += got;
      progress = true;
    }
    return result;
  }

  // Registers the interest the state calls for; only changes reach epoll.
  // False when the write event cannot be made (out of memory).
  bool want(event_base* base, bool read, bool write) {
    if (write && !writable) {
      writable.reset(event_new(base, sink, EV_WRITE | EV_PERSIST, &TunnelRelay::onWritable, this));
      if (!writable) return false;
    }
    if (read != reading) {
      if (read) {
        event_add(readable.get(), nullptr);
      } else {
        event_del(readable.get());
      }
      reading = read;
    }
    if (write != writing) {
      if (write) {
        event_add(writable.get(), nullptr);
      } else {
        event_del(writable.get());
      }
      writing = write;
    }
    return true;
  }

  bool done() const { return sinkShut; }
};

TunnelRelay::TunnelRelay(event_base* base, UniqueFd client, UniqueFd upstream, PipePool* pipes,
                         const RelayOptions& options, std::atomic<uint64_t>& bytesToUpstream,
                         std::atomic<uint64_t>& bytesToClient, Finished finished, void* arg)
    : base_(base),
      pipes_(pipes),
      options_(options),
      client_(std::move(client)),
      upstream_(std::move(upstream)),
      up_(std::make_unique<Direction>()),
      down_(std::make_unique<Direction>()),
      finished_(finished),
      arg_(arg) {
  up_->relay = down_->relay = this;
  up_->source = down_->sink = client_.get();
  up_->sink = down_->source = upstream_.get();
  up_->bytes = &bytesToUpstream;
  down_->bytes = &bytesToClient;
  up_->sinkNagle = options.upstreamNagle;
}

TunnelRelay::~TunnelRelay() {
  stop();
}

bool TunnelRelay::start(std::string_view toClient, std::string_view toUpstream) {
  // EV_CLOSED (EPOLLRDHUP): a FIN that came with the last bytes is read
  // in the same wakeup, not one loop pass later.
  const short closed = (event_base_get_features(base_) & EV_FEATURE_EARLY_CLOSE) != 0 ? EV_CLOSED : 0;
  for (Direction* d : {up_.get(), down_.get()}) {
    d->readable.reset(event_new(base_, d->source, static_cast<short>(EV_READ | EV_PERSIST | closed),
                                &TunnelRelay::onReadable, d));
    if (!d->readable) return false;
  }
  idleTimer_.reset(evtimer_new(base_, &TunnelRelay::onIdleCheck, this));
  if (!idleTimer_) return false;
  lastActivity_ = std::chrono::steady_clock::now();
  // The first bytes go now (the CONNECT answer), and only what the sink
  // does not take is kept; nothing is read before the poller says a
  // source has something (no read that finds nothing).
  for (auto [d, first] : {std::pair{down_.get(), toClient}, std::pair{up_.get(), toUpstream}}) {
    const Io sent = d->sendFirst(first);
    if (sent == Io::Failed) {
      finish(RelayEnd::Reset);
      return true;
    }
    if (!d->want(base_, d->roomToRead(), d->queued())) return false;
  }
  // After the CONNECT answer, which carried the ACK of the request
  // (RelayOptions::clientQuickAck).
  if (options_.clientQuickAck) setTcpFlag(client_.get(), TCP_QUICKACK, true);
  // The idle timer fires first for the upstream's held-back handshake ACK
  // (RelayOptions::upstreamAckDelay), unless early bytes carried it.
  quickAckDue_ = options_.upstreamAckDelay.count() > 0;
  quickAcksAfterFirstWrite();  // early bytes carried the ACK
  upstreamAckHeld_ = options_.upstreamAckDelay.count() > 0 && !up_->wroteToSink;
  const timeval first = toTimeval(upstreamAckHeld_ ? std::min(options_.upstreamAckDelay, options_.idleTimeout)
                                                   : options_.idleTimeout);
  evtimer_add(idleTimer_.get(), &first);
  return true;
}

void TunnelRelay::quickAcksAfterFirstWrite() {
  if (!quickAckDue_ || !up_->wroteToSink) return;
  quickAckDue_ = false;
  // Sent within the delayed-ACK interval of the handshake, the first
  // bytes put the socket in the kernel's interactive mode, where the
  // server's answer would be acknowledged only with our next segment or
  // after 40 ms: a server writing a small head and a small body with
  // Nagle's algorithm on would wait that long for its second write. Back
  // to the quick ACKs a fresh connection has.
  setTcpFlag(upstream_.get(), TCP_QUICKACK, true);
}

void TunnelRelay::stop() noexcept {
  over_ = true;
  for (Direction* d : {up_.get(), down_.get()}) {
    d->readable.reset();
    d->writable.reset();
    d->reading = d->writing = false;
    // An empty pipe is as good as new; one with bytes in it is closed.
    d->release(pipes_);
    d->pipe = PipePool::Pipe();
    std::string().swap(d->pending);
  }
  idleTimer_.reset();
  client_.reset();
  upstream_.reset();
}

void TunnelRelay::onReadable(evutil_socket_t, short what, void* arg) {
  auto* d = static_cast<Direction*>(arg);
  if ((what & EV_CLOSED) != 0) d->peerClosed = true;
  d->relay->pump(*d);
}

void TunnelRelay::onWritable(evutil_socket_t, short, void* arg) {
  auto* d = static_cast<Direction*>(arg);
  d->relay->pump(*d);
}

void TunnelRelay::onIdleCheck(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<TunnelRelay*>(arg);
  if (self->over_) return;
  if (self->upstreamAckHeld_) {
    self->upstreamAckHeld_ = false;
    // Nothing went upstream to carry the handshake's last ACK (the server
    // may be waiting to speak first: SSH, SMTP): it goes alone, now.
    if (!self->up_->wroteToSink) setTcpFlag(self->upstream_.get(), TCP_QUICKACK, true);
  }
  // One timer per tunnel, re-armed for what is left of the interval rather
  // than pushed back on every byte.
  const auto quiet = std::chrono::steady_clock::now() - self->lastActivity_;
  if (quiet >= self->options_.idleTimeout) {
    self->finish(RelayEnd::Idle);
    return;
  }
  const timeval left =
      toTimeval(std::chrono::duration_cast<std::chrono::milliseconds>(self->options_.idleTimeout - quiet) +
                std::chrono::milliseconds(1));
  evtimer_add(self->idleTimer_.get(), &left);
}

TunnelRelay::Direction& TunnelRelay::other(const Direction& direction) const {
  return &direction == up_.get() ? *down_ : *up_;
}

void TunnelRelay::pump(Direction& d) {
  if (over_) return;
  bool progress = false;
  if (d.drain(progress) == Io::Failed) {
    finish(RelayEnd::Reset);
    return;
  }
  for (int round = 0; round < kRoundsPerWakeup && !d.sourceEof && d.roomToRead(); ++round) {
    bool missing = false;
    const bool splicing = d.wantPipe(pipes_, options_.spliceAfter, missing);
    if (missing) copied_ = true;
    bool full = false;
    const Io read = splicing ? d.fillPipe(progress, full) : d.copy(options_.bufferBytes, progress, full);
    if (read == Io::Failed || d.drain(progress) == Io::Failed) {
      finish(RelayEnd::Reset);
      return;
    }
    // Copying, a short read emptied the socket: the poller says when
    // more comes (no read that finds nothing on a short tunnel).
    if (read != Io::Moved || !full) break;
  }
  if (progress) lastActivity_ = std::chrono::steady_clock::now();
  if (&d == up_.get()) quickAcksAfterFirstWrite();
  if (d.spliced() && d.queued() && options_.bulkSendBuffer > 0 && d.moved >= d.nextBufferCheck) {
    // The sink is full: a fast leg at the kernel's largest buffer, or a
    // slow reader (looked at again after bulkSendBuffer more bytes).
    d.nextBufferCheck = raiseSendBuffer(d.sink, options_.bulkSendBuffer, options_.kernelSendBufferMax)
                            ? UINT64_MAX
                            : d.moved + options_.bulkSendBuffer;
  }
  if (d.sourceEof && !d.queued() && !d.sinkShut) {
    // Everything before the EOF is delivered: pass the FIN on. With the
    // other way over already, closing the sockets (now) sends it.
    if (!other(d).done()) ::shutdown(d.sink, SHUT_WR);
    d.sinkShut = true;
  }
  if (up_->done() && down_->done()) {
    finish(RelayEnd::Done);
    return;
  }
  d.release(pipes_);
  if (!d.want(base_, !d.sourceEof && d.roomToRead(), d.queued())) finish(RelayEnd::Reset);
}

void TunnelRelay::finish(RelayEnd end) {
  if (over_) return;
  if (end == RelayEnd::Reset) {
    // Whichever side failed, the other learns it the same way.
    resetOnClose(client_.get());
    resetOnClose(upstream_.get());
  }
  stop();
  finished_(arg_, end);
}

}  // namespace proxy

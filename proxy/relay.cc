#include "proxy/relay.h"

#include <fcntl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace proxy {

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

// One direction: bytes read from `source` wait in the pipe (or the buffer)
// until `sink` takes them.
struct TunnelRelay::Direction {
  TunnelRelay* relay = nullptr;
  int source = -1;
  int sink = -1;
  std::atomic<uint64_t>* bytes = nullptr;
  // Written before anything in flight (the CONNECT answer, early bytes).
  std::string pending;
  size_t pendingSent = 0;
  // splice(2) path: the borrowed pipe, and how many bytes sit in it.
  PipePool::Pipe pipe;
  size_t inPipe = 0;
  // recv/send path: [head, tail) of buffer are in flight.
  std::unique_ptr<uint8_t[]> buffer;
  size_t head = 0;
  size_t tail = 0;
  bool sourceEof = false;
  bool sinkShut = false;
  // splice from a socket says EAGAIN when the pipe has no free slot as well
  // as when the socket is empty: with bytes in the pipe, reading waits
  // until the sink took some (else a readable socket would spin the loop).
  bool pipeMaybeFull = false;
  EventHandle readable;  // on source
  EventHandle writable;  // on sink
  bool reading = false;
  bool writing = false;

  bool spliced() const { return static_cast<bool>(pipe); }
  size_t inFlight() const { return spliced() ? inPipe : tail - head; }
  bool pendingLeft() const { return pendingSent < pending.size(); }

  // Before reading into an empty direction: a pipe from the pool, or the
  // buffer when none can be had (a tunnel is never refused for want of
  // descriptors). False: the buffer it is.
  bool carrier(PipePool* pipes, size_t bufferBytes) {
    if (spliced() || buffer) return spliced();
    if (pipes != nullptr) pipe = pipes->take();
    if (spliced()) return true;
    buffer = std::make_unique_for_overwrite<uint8_t[]>(bufferBytes);
    return false;
  }

  // Once empty, the pipe goes back to the pool and the buffer is freed:
  // an idle direction holds neither.
  void release(PipePool* pipes) {
    if (inFlight() != 0) return;
    pipeMaybeFull = false;
    if (spliced()) pipes->give(std::move(pipe));
    pipe = PipePool::Pipe();
    buffer.reset();
    head = tail = 0;
  }

  // Writes pending bytes, then what is in flight. Moved: the sink took
  // everything; Blocked: it took what it could.
  Io drain(bool& progress) {
    while (pendingLeft()) {
      const ssize_t n =
          ::send(sink, pending.data() + pendingSent, pending.size() - pendingSent, MSG_NOSIGNAL);
      if (n > 0) {
        pendingSent += static_cast<size_t>(n);
        progress = true;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      return n < 0 && wouldBlock(errno) ? Io::Blocked : Io::Failed;
    }
    if (!pending.empty()) std::string().swap(pending);  // its memory goes back now
    while (inFlight() > 0) {
      ssize_t n;
      if (spliced()) {
        n = ::splice(pipe.read.get(), nullptr, sink, nullptr, inPipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      } else {
        n = ::send(sink, buffer.get() + head, tail - head, MSG_NOSIGNAL);
      }
      if (n > 0) {
        progress = true;
        pipeMaybeFull = false;
        if (spliced()) {
          inPipe -= static_cast<size_t>(n);
        } else {
          head += static_cast<size_t>(n);
          if (head == tail) head = tail = 0;
        }
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      return n < 0 && wouldBlock(errno) ? Io::Blocked : Io::Failed;
    }
    return Io::Moved;
  }

  // Reads once from the source into the free room.
  Io fill(size_t bufferBytes, bool& progress) {
    if (sourceEof) return Io::End;
    if (spliced() ? (inPipe >= pipe.capacity || pipeMaybeFull) : tail >= bufferBytes) return Io::Blocked;
    for (;;) {
      ssize_t n;
      if (spliced()) {
        n = ::splice(source, nullptr, pipe.write.get(), nullptr, pipe.capacity - inPipe,
                     SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      } else {
        n = ::recv(source, buffer.get() + tail, bufferBytes - tail, 0);
      }
      if (n > 0) {
        (spliced() ? inPipe : tail) += static_cast<size_t>(n);
        bytes->fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
        progress = true;
        return Io::Moved;
      }
      if (n == 0) {
        sourceEof = true;
        return Io::End;
      }
      if (errno == EINTR) continue;
      if (!wouldBlock(errno)) return Io::Failed;
      if (spliced() && inPipe > 0) pipeMaybeFull = true;
      return Io::Blocked;
    }
  }

  // Registers the interest the state calls for; only changes reach epoll.
  void want(bool read, bool write) {
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
}

TunnelRelay::~TunnelRelay() {
  stop();
}

bool TunnelRelay::start(std::string toClient, std::string toUpstream) {
  down_->pending = std::move(toClient);
  up_->pending = std::move(toUpstream);
  for (Direction* d : {up_.get(), down_.get()}) {
    d->readable.reset(event_new(base_, d->source, EV_READ | EV_PERSIST, &TunnelRelay::onReadable, d));
    d->writable.reset(event_new(base_, d->sink, EV_WRITE | EV_PERSIST, &TunnelRelay::onWritable, d));
    if (!d->readable || !d->writable) return false;
  }
  idleTimer_.reset(evtimer_new(base_, &TunnelRelay::onIdleCheck, this));
  if (!idleTimer_) return false;
  lastActivity_ = std::chrono::steady_clock::now();
  const timeval idle = toTimeval(options_.idleTimeout);
  evtimer_add(idleTimer_.get(), &idle);
  pump(*down_);  // the CONNECT answer
  if (!over_) pump(*up_);
  return true;
}

void TunnelRelay::stop() noexcept {
  over_ = true;
  for (Direction* d : {up_.get(), down_.get()}) {
    d->readable.reset();
    d->writable.reset();
    d->reading = d->writing = false;
    // An empty pipe is as good as new; one with bytes in it is closed.
    if (pipes_ != nullptr) d->release(pipes_);
    d->pipe = PipePool::Pipe();
    d->buffer.reset();
    std::string().swap(d->pending);
  }
  idleTimer_.reset();
  client_.reset();
  upstream_.reset();
}

void TunnelRelay::onReadable(evutil_socket_t, short, void* arg) {
  auto* d = static_cast<Direction*>(arg);
  d->relay->pump(*d);
}

void TunnelRelay::onWritable(evutil_socket_t, short, void* arg) {
  auto* d = static_cast<Direction*>(arg);
  d->relay->pump(*d);
}

void TunnelRelay::onIdleCheck(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<TunnelRelay*>(arg);
  if (self->over_) return;
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

void TunnelRelay::pump(Direction& d) {
  if (over_) return;
  bool progress = false;
  for (int round = 0; round < kRoundsPerWakeup; ++round) {
    bool moved = false;
    if (d.drain(moved) == Io::Failed) {
      finish(RelayEnd::Reset);
      return;
    }
    if (!d.sourceEof && !d.carrier(pipes_, options_.bufferBytes) && pipes_ != nullptr) copied_ = true;
    bool filled = false;
    if (d.fill(options_.bufferBytes, filled) == Io::Failed) {
      finish(RelayEnd::Reset);
      return;
    }
    progress = progress || moved || filled;
    // Nothing new read: the drain above already wrote what it could.
    if (!filled) break;
  }
  if (progress) lastActivity_ = std::chrono::steady_clock::now();
  const bool queued = d.pendingLeft() || d.inFlight() > 0;
  if (d.sourceEof && !queued && !d.sinkShut) {
    // Everything before the EOF is delivered: pass the FIN on.
    ::shutdown(d.sink, SHUT_WR);
    d.sinkShut = true;
  }
  if (up_->done() && down_->done()) {
    finish(RelayEnd::Done);
    return;
  }
  if (pipes_ != nullptr) d.release(pipes_);
  const bool roomToRead = d.spliced() ? d.inPipe < d.pipe.capacity && !d.pipeMaybeFull
                          : d.buffer  ? d.tail < options_.bufferBytes
                                      : true;  // empty: a carrier comes with the next read
  d.want(!d.sourceEof && roomToRead, queued);
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

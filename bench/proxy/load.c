/* bench/proxy: the proxy benchmark's client (bench/proxy/run.sh), the same
 * for every proxy and for `direct`.
 *
 *   proxy_load tunnels PROXY|direct TARGET HOST SECONDS CONNECTIONS [THREADS [BODY_BYTES]]
 *       CONNECTIONS tunnels in flight, spread over THREADS threads (1),
 *       each: connect to PROXY (direct: to TARGET), `CONNECT TARGET`, read
 *       the 200 reply head, one `GET /` for HOST with `Connection: close`,
 *       read the response to the server's close, check it (status 200, a
 *       body as long as its Content-Length, and BODY_BYTES long when
 *       given), close, and again. Prints "tunnels_per_s=N errors=M", the
 *       errors by kind, and the client's own CPU time per tunnel.
 *   proxy_load bulk PROXY|direct TARGET HOST PATH SECONDS
 *       one tunnel, one `GET PATH`, read for SECONDS; prints "bytes_per_s=N"
 *   proxy_load idle PROXY TARGET COUNT SECONDS
 *       COUNT tunnels opened one after the other and held SECONDS (memory
 *       per idle tunnel); prints "open=N" (the tunnels whose CONNECT got 200)
 *
 * Written in C on purpose, like bench/dns/udp_echo.c: the client shares the
 * machine's cores with the proxy and the server, and every microsecond it
 * spends per tunnel is taken from them. The tunnels mode is non-blocking
 * sockets and one edge-triggered epoll instance per thread, fixed buffers
 * allocated once at start, and no syscall a tunnel does not need: socket,
 * connect, epoll ADD, a send and recv per message, close (which also takes
 * the socket out of epoll).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { kHeadMax = 2048, kRequestMax = 512, kEvents = 256, kBulkBuffer = 256 * 1024 };
static const int64_t kTunnelTimeoutNs = 5000000000LL; /* one tunnel's whole life */
static const int64_t kRetryNs = 10000000LL;           /* after an error, as load.go waited */

/* ---- addresses and requests ------------------------------------------------------ */

/* "1.2.3.4:80" or "[2001:db8::1]:80", numeric only. */
static int parseAddress(const char* text, struct sockaddr_storage* out, socklen_t* length) {
  char host[128];
  const char* colon = strrchr(text, ':');
  if (colon == NULL || (size_t)(colon - text) >= sizeof host) return -1;
  const char* start = text;
  size_t hostLength = (size_t)(colon - text);
  if (text[0] == '[' && hostLength >= 2 && colon[-1] == ']') {
    start = text + 1;
    hostLength -= 2;
  }
  memcpy(host, start, hostLength);
  host[hostLength] = '\0';
  const int port = atoi(colon + 1);
  if (port <= 0 || port > 65535) return -1;
  memset(out, 0, sizeof *out);
  struct sockaddr_in* v4 = (struct sockaddr_in*)out;
  struct sockaddr_in6* v6 = (struct sockaddr_in6*)out;
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    *length = sizeof *v4;
    return 0;
  }
  if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
    *length = sizeof *v6;
    return 0;
  }
  return -1;
}

struct Setup {
  int direct;
  struct sockaddr_storage peer; /* the proxy, or the server for direct */
  socklen_t peerLength;
  char connect[kRequestMax]; /* CONNECT TARGET ... */
  size_t connectLength;
  char get[kRequestMax]; /* GET PATH ... */
  size_t getLength;
  long long bodyBytes; /* expected body length, -1: only as announced */
};

static int setUp(struct Setup* setup, const char* proxy, const char* target, const char* host,
                 const char* path, int keepAlive) {
  setup->direct = strcmp(proxy, "direct") == 0;
  if (parseAddress(setup->direct ? target : proxy, &setup->peer, &setup->peerLength) != 0) {
    fprintf(stderr, "proxy_load: not a numeric address:port: %s\n", setup->direct ? target : proxy);
    return -1;
  }
  const int c = snprintf(setup->connect, sizeof setup->connect, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n",
                         target, target);
  const int g = snprintf(setup->get, sizeof setup->get, "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", path, host,
                         keepAlive ? "" : "Connection: close\r\n");
  if (c <= 0 || g <= 0 || (size_t)c >= sizeof setup->connect || (size_t)g >= sizeof setup->get) return -1;
  setup->connectLength = (size_t)c;
  setup->getLength = (size_t)g;
  setup->bodyBytes = -1;
  return 0;
}

static int64_t nowNs(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* ---- response heads (RFC 9112 section 4: status line; section 6.3: length) --------------- */

/* The length of the head (through the empty line), 0 while incomplete. */
static size_t headLength(const char* data, size_t length) {
  for (size_t i = 3; i < length; ++i)
    if (data[i] == '\n' && data[i - 1] == '\r' && data[i - 2] == '\n' && data[i - 3] == '\r') return i + 1;
  return 0;
}

/* "HTTP/1.x 200 ..." */
static int statusIs200(const char* head, size_t length) {
  return length >= 13 && memcmp(head, "HTTP/1.", 7) == 0 && head[8] == ' ' &&
         memcmp(head + 9, "200", 3) == 0 && head[12] == ' ';
}

/* The Content-Length value, -1 when absent or malformed. */
static long long contentLength(const char* head, size_t length) {
  static const char kName[] = "\r\ncontent-length:";
  const size_t nameLength = sizeof kName - 1;
  for (size_t i = 0; i + nameLength < length; ++i) {
    if (head[i] != '\r' || strncasecmp(head + i, kName, nameLength) != 0) continue;
    size_t j = i + nameLength;
    while (j < length && (head[j] == ' ' || head[j] == '\t')) ++j;
    long long value = 0;
    size_t digits = 0;
    while (j < length && head[j] >= '0' && head[j] <= '9' && digits < 18) {
      value = value * 10 + (head[j++] - '0');
      ++digits;
    }
    return digits > 0 && j < length && head[j] == '\r' ? value : -1;
  }
  return -1;
}

/* ---- tunnels: one thread's connections ------------------------------------------------- */

enum Phase { kIdle, kConnecting, kAwaitingConnectReply, kAwaitingResponse, kBackingOff };
enum Error { kErrConnect, kErrProxyStatus, kErrStatus, kErrLength, kErrIo, kErrTimeout, kErrCount };
static const char* const kErrorNames[kErrCount] = {"connect", "proxy_status", "status",
                                                   "length",  "io",           "timeout"};

struct Tunnel {
  int fd;
  enum Phase phase;
  int64_t startedNs; /* or, backing off, when to start again */
  size_t have;       /* bytes of the current head in `head` */
  int headDone;
  long long announced; /* the response's Content-Length, -1: none */
  long long body;      /* body bytes seen */
  char head[kHeadMax];
};

struct Worker {
  const struct Setup* setup;
  int connections;
  int64_t deadlineNs;
  int epoll;
  struct Tunnel* tunnels;
  long long done;
  long long errors[kErrCount];
  char scratch[16384]; /* body bytes are counted, not kept */
};

static void closeTunnel(struct Tunnel* t) {
  if (t->fd >= 0) close(t->fd);
  t->fd = -1;
  t->phase = kIdle;
}

static void fail(struct Worker* w, struct Tunnel* t, enum Error e) {
  ++w->errors[e];
  closeTunnel(t);
  t->phase = kBackingOff;
  t->startedNs = nowNs() + kRetryNs;
}

static void start(struct Worker* w, struct Tunnel* t) {
  t->have = 0;
  t->headDone = 0;
  t->announced = -1;
  t->body = 0;
  t->startedNs = nowNs();
  t->fd = socket(w->setup->peer.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (t->fd < 0) {
    fail(w, t, kErrConnect);
    return;
  }
  if (connect(t->fd, (const struct sockaddr*)&w->setup->peer, w->setup->peerLength) != 0 &&
      errno != EINPROGRESS) {
    fail(w, t, kErrConnect);
    return;
  }
  /* Edge-triggered, registered once: the connect's completion is the first
   * EPOLLOUT, every later segment an EPOLLIN; close() removes it. */
  struct epoll_event interest = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = t};
  if (epoll_ctl(w->epoll, EPOLL_CTL_ADD, t->fd, &interest) != 0) {
    fail(w, t, kErrConnect);
    return;
  }
  t->phase = kConnecting;
}

/* One small message, sent whole or not at all (a fresh socket's buffer
 * always takes it). */
static int sendAll(int fd, const char* data, size_t length) {
  return send(fd, data, length, MSG_NOSIGNAL) == (ssize_t)length ? 0 : -1;
}

/* The response is complete: check it, count it, start the next tunnel. */
static void finish(struct Worker* w, struct Tunnel* t) {
  if (!t->headDone) {
    fail(w, t, kErrIo);
    return;
  }
  const long long expected = w->setup->bodyBytes;
  if ((t->announced >= 0 && t->body != t->announced) || (expected >= 0 && t->body != expected)) {
    fail(w, t, kErrLength);
    return;
  }
  closeTunnel(t);
  if (nowNs() < w->deadlineNs) {
    ++w->done;
    start(w, t);
  }
}

/* Takes in `length` new response bytes: the head's are already in place
 * in `head`, the body's only counted. Returns 0 to go on, -1 when the
 * tunnel failed. */
static int takeResponse(struct Worker* w, struct Tunnel* t, size_t length) {
  if (t->headDone) {
    t->body += (long long)length;
  } else {
    t->have += length;
    const size_t head = headLength(t->head, t->have);
    if (head == 0) {
      if (t->have < kHeadMax) return 0;
      fail(w, t, kErrIo);
      return -1;
    }
    if (!statusIs200(t->head, head)) {
      fail(w, t, kErrStatus);
      return -1;
    }
    t->headDone = 1;
    t->announced = contentLength(t->head, head);
    t->body = (long long)(t->have - head);
  }
  if (t->announced >= 0 && t->body > t->announced) {
    fail(w, t, kErrLength);
    return -1;
  }
  return 0;
}

/* The proxy's reply to CONNECT, complete or not yet. Returns 1 once the
 * GET is sent, 0 to wait for more, -1 when the tunnel failed. */
static int takeConnectReply(struct Worker* w, struct Tunnel* t, size_t length) {
  t->have += length;
  const size_t head = headLength(t->head, t->have);
  if (head == 0) {
    if (t->have < kHeadMax) return 0;
    fail(w, t, kErrProxyStatus);
    return -1;
  }
  if (!statusIs200(t->head, head)) {
    fail(w, t, kErrProxyStatus);
    return -1;
  }
  /* Bytes after the reply head would be the server's: none are due yet. */
  if (t->have != head || sendAll(t->fd, w->setup->get, w->setup->getLength) != 0) {
    fail(w, t, kErrIo);
    return -1;
  }
  t->have = 0;
  t->phase = kAwaitingResponse;
  return 1;
}

/* Moves a tunnel on as far as its socket allows. A message sent means a
 * wait for the answer's edge (no recv that would only say EAGAIN); reads go
 * on until a short one, or after the peer's FIN (EPOLLRDHUP) to the end. */
static void advance(struct Worker* w, struct Tunnel* t, uint32_t events) {
  const struct Setup* s = w->setup;
  const int drain = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
  if (t->phase == kConnecting) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    const int failed =
        s->direct ? sendAll(t->fd, s->get, s->getLength) : sendAll(t->fd, s->connect, s->connectLength);
    if (failed) {
      fail(w, t, kErrConnect);
      return;
    }
    t->phase = s->direct ? kAwaitingResponse : kAwaitingConnectReply;
    if (!drain) return;
  }
  for (;;) {
    char* into = t->headDone ? w->scratch : t->head + t->have;
    const size_t room = t->headDone ? sizeof w->scratch : kHeadMax - t->have;
    const ssize_t n = recv(t->fd, into, room, 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      fail(w, t, kErrIo);
      return;
    }
    if (n == 0) {
      if (t->phase == kAwaitingResponse) {
        finish(w, t);
      } else {
        fail(w, t, kErrProxyStatus); /* the proxy closed without a 200 */
      }
      return;
    }
    if (t->phase == kAwaitingConnectReply) {
      const int sent = takeConnectReply(w, t, (size_t)n);
      if (sent < 0 || (sent > 0 && !drain)) return;
      continue;
    }
    if (takeResponse(w, t, (size_t)n) != 0) return;
    if ((size_t)n < room && !drain) return;
  }
}

static void expire(struct Worker* w, int64_t now) {
  for (int i = 0; i < w->connections; ++i) {
    struct Tunnel* t = &w->tunnels[i];
    if (t->phase == kBackingOff && now >= t->startedNs && now < w->deadlineNs) {
      start(w, t);
    } else if (t->phase != kBackingOff && t->phase != kIdle && now - t->startedNs > kTunnelTimeoutNs) {
      fail(w, t, kErrTimeout);
    }
  }
}

static void* runWorker(void* argument) {
  struct Worker* w = argument;
  for (int i = 0; i < w->connections; ++i) {
    w->tunnels[i].fd = -1;
    start(w, &w->tunnels[i]);
  }
  struct epoll_event ready[kEvents];
  int64_t nextScan = nowNs() + kRetryNs;
  for (;;) {
    const int64_t now = nowNs();
    if (now >= w->deadlineNs) break;
    if (now >= nextScan) {
      expire(w, now);
      nextScan = now + kRetryNs;
    }
    const int n = epoll_wait(w->epoll, ready, kEvents, 10);
    for (int i = 0; i < n; ++i) {
      struct Tunnel* t = ready[i].data.ptr;
      if (t->fd >= 0) advance(w, t, ready[i].events);
    }
  }
  /* Tunnels still open at the deadline are not counted either way. */
  for (int i = 0; i < w->connections; ++i) closeTunnel(&w->tunnels[i]);
  return NULL;
}

static int64_t cpuNs(void) {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return ((int64_t)usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000000000LL +
         ((int64_t)usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1000LL;
}

static int tunnels(const struct Setup* setup, double seconds, int connections, int threads) {
  if (threads < 1) threads = 1;
  if (connections < threads) connections = threads;
  struct Worker* workers = calloc((size_t)threads, sizeof *workers);
  pthread_t* ids = calloc((size_t)threads, sizeof *ids);
  if (workers == NULL || ids == NULL) return 1;
  const int64_t startNs = nowNs();
  const int64_t cpuBefore = cpuNs();
  for (int i = 0; i < threads; ++i) {
    struct Worker* w = &workers[i];
    w->setup = setup;
    w->connections = connections / threads + (i < connections % threads ? 1 : 0);
    w->deadlineNs = startNs + (int64_t)(seconds * 1e9);
    w->epoll = epoll_create1(EPOLL_CLOEXEC);
    w->tunnels = calloc((size_t)w->connections, sizeof *w->tunnels);
    if (w->epoll < 0 || w->tunnels == NULL) return 1;
  }
  for (int i = 0; i < threads; ++i) pthread_create(&ids[i], NULL, runWorker, &workers[i]);
  long long done = 0, errors[kErrCount] = {0}, allErrors = 0;
  for (int i = 0; i < threads; ++i) {
    pthread_join(ids[i], NULL);
    done += workers[i].done;
    for (int e = 0; e < kErrCount; ++e) errors[e] += workers[i].errors[e];
  }
  const int64_t cpu = cpuNs() - cpuBefore;
  for (int e = 0; e < kErrCount; ++e) allErrors += errors[e];
  printf("tunnels_per_s=%.1f errors=%lld tunnels=%lld client_cpu_ns=%lld client_cpu_us_per_tunnel=%.1f",
         (double)done / seconds, allErrors, done, (long long)cpu,
         done > 0 ? (double)cpu / 1000.0 / (double)done : 0.0);
  for (int e = 0; e < kErrCount; ++e) printf(" errors_%s=%lld", kErrorNames[e], errors[e]);
  printf("\n");
  for (int i = 0; i < threads; ++i) {
    close(workers[i].epoll);
    free(workers[i].tunnels);
  }
  free(workers);
  free(ids);
  return 0;
}

/* ---- bulk and idle: blocking, one tunnel at a time ------------------------------------------ */

/* A connected socket past its CONNECT's 200 (or direct), -1 on failure.
 * Bytes read past the reply head (none are due) go to `extra`. */
static int openTunnel(const struct Setup* s, size_t* extra) {
  *extra = 0;
  const int fd = socket(s->peer.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const struct timeval timeout = {.tv_sec = 5};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  if (connect(fd, (const struct sockaddr*)&s->peer, s->peerLength) != 0) {
    close(fd);
    return -1;
  }
  if (s->direct) return fd;
  char head[kHeadMax];
  size_t have = 0, length = 0;
  if (sendAll(fd, s->connect, s->connectLength) != 0) {
    close(fd);
    return -1;
  }
  while ((length = headLength(head, have)) == 0 && have < sizeof head) {
    const ssize_t n = recv(fd, head + have, sizeof head - have, 0);
    if (n <= 0) {
      close(fd);
      return -1;
    }
    have += (size_t)n;
  }
  if (length == 0 || !statusIs200(head, length)) {
    close(fd);
    return -1;
  }
  *extra = have - length;
  return fd;
}

static int bulk(const struct Setup* s, double seconds) {
  size_t extra = 0;
  const int fd = openTunnel(s, &extra);
  if (fd < 0 || sendAll(fd, s->get, s->getLength) != 0) {
    printf("error could not open the tunnel\n");
    return 1;
  }
  static char buffer[kBulkBuffer];
  const int64_t startNs = nowNs();
  const int64_t deadline = startNs + (int64_t)(seconds * 1e9);
  long long total = (long long)extra;
  while (nowNs() < deadline) {
    const ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    total += n;
  }
  const double elapsed = (double)(nowNs() - startNs) / 1e9;
  close(fd);
  printf("bytes_per_s=%.0f\n", (double)total / elapsed);
  return 0;
}

static int idle(const struct Setup* s, int count, double seconds) {
  int* fds = calloc((size_t)(count > 0 ? count : 1), sizeof *fds);
  if (fds == NULL) return 1;
  int open = 0;
  size_t extra = 0;
  while (open < count && (fds[open] = openTunnel(s, &extra)) >= 0) ++open;
  printf("open=%d\n", open);
  fflush(stdout);
  const struct timespec hold = {.tv_sec = (time_t)seconds,
                                .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
  nanosleep(&hold, NULL);
  for (int i = 0; i < open; ++i) close(fds[i]);
  free(fds);
  return 0;
}

static void usage(void) {
  fprintf(stderr,
          "usage: proxy_load tunnels PROXY|direct TARGET HOST SECONDS CONNECTIONS [THREADS [BODY_BYTES]]\n"
          "       proxy_load bulk PROXY|direct TARGET HOST PATH SECONDS\n"
          "       proxy_load idle PROXY TARGET COUNT SECONDS\n");
}

int main(int argc, char** argv) {
  static struct Setup setup;
  if (argc >= 7 && strcmp(argv[1], "tunnels") == 0) {
    if (setUp(&setup, argv[2], argv[3], argv[4], "/", 0) != 0) return 2;
    const int threads = argc > 7 ? atoi(argv[7]) : 1;
    if (argc > 8) setup.bodyBytes = atoll(argv[8]);
    return tunnels(&setup, atof(argv[5]), atoi(argv[6]), threads);
  }
  if (argc >= 7 && strcmp(argv[1], "bulk") == 0) {
    if (setUp(&setup, argv[2], argv[3], argv[4], argv[5], 1) != 0) return 2;
    return bulk(&setup, atof(argv[6]));
  }
  if (argc >= 6 && strcmp(argv[1], "idle") == 0) {
    if (setUp(&setup, argv[2], argv[3], "-", "/", 1) != 0) return 2;
    return idle(&setup, atoi(argv[4]), atof(argv[5]));
  }
  usage();
  return 2;
}

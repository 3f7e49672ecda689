/* bench/dns: the kernel's floor for a UDP DNS server on loopback.
 *
 * Answers every query by echoing it back with QR and RA set and the rcode
 * given on the command line (NXDOMAIN by default), exactly the I/O egressd's
 * UDP path does: one epoll instance, recvmmsg and sendmmsg in batches of 32,
 * a 4 MB SO_RCVBUF. No parsing, no policy, no cache: whatever CPU time it
 * takes per query is the kernel's (and libc's) share that no DNS server on
 * this machine can avoid, so bench/dns/run.sh reports it next to egressd
 * and unbound.
 *
 * Written in C on purpose: a Python or C++-with-runtime echo would add its
 * own overhead and stop being a floor.
 *
 * Usage: dns_udp_echo PORT [RCODE [single|batch [TIMEOUT_MS]]]   (binds
 * 127.0.0.1:PORT, runs until killed). `single` swaps the batches for
 * unbound's I/O pattern, one recvfrom and one sendto per query and recvfrom
 * until EAGAIN, to compare the two in the same run; TIMEOUT_MS makes
 * epoll_wait time out like an event loop with timers.
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { kBatch = 32, kSlot = 4096, kHeaderSize = 12 };

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s PORT [RCODE]\n", argv[0]);
    return 2;
  }
  const int port = atoi(argv[1]);
  const int rcode = argc > 2 ? atoi(argv[2]) : 3;
  const int single = argc > 3 && strcmp(argv[3], "single") == 0;
  /* An epoll_wait timeout (ms) as an event loop with timers passes. */
  const int timeout = argc > 4 ? atoi(argv[4]) : -1;
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    perror("socket");
    return 1;
  }
  const int buffer = 4 << 20; /* as egressd and the benchmark's unbound */
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
  struct sockaddr_in address;
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_port = htons((unsigned short)port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr*)&address, sizeof address) != 0) {
    perror("bind");
    return 1;
  }
  const int epoll = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event interest = {.events = EPOLLIN, .data.fd = fd};
  if (epoll < 0 || epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &interest) != 0) {
    perror("epoll");
    return 1;
  }
  static unsigned char buffers[kBatch][kSlot];
  static struct sockaddr_storage peers[kBatch];
  static struct iovec iov[kBatch];
  static struct mmsghdr in[kBatch];
  static struct mmsghdr out[kBatch];
  static struct iovec outIov[kBatch];
  for (;;) {
    struct epoll_event ready;
    if (epoll_wait(epoll, &ready, 1, timeout) <= 0) continue; /* EINTR, timeout */
    while (single) {
      struct sockaddr_storage peer;
      socklen_t peerLength = sizeof peer;
      const ssize_t n = recvfrom(fd, buffers[0], kSlot, MSG_DONTWAIT, (struct sockaddr*)&peer, &peerLength);
      if (n < 0) break; /* EAGAIN: back to epoll */
      unsigned char* p = buffers[0];
      if (n < kHeaderSize || (p[2] & 0x80) != 0) continue;
      p[2] = (unsigned char)(0x80 | (p[2] & 0x79));
      p[3] = (unsigned char)(0x80 | (rcode & 0xf));
      sendto(fd, p, (size_t)n, MSG_DONTWAIT, (struct sockaddr*)&peer, peerLength);
    }
    while (!single) {
      for (int i = 0; i < kBatch; ++i) {
        iov[i].iov_base = buffers[i];
        iov[i].iov_len = kSlot;
        memset(&in[i].msg_hdr, 0, sizeof in[i].msg_hdr);
        in[i].msg_hdr.msg_name = &peers[i];
        in[i].msg_hdr.msg_namelen = sizeof peers[i];
        in[i].msg_hdr.msg_iov = &iov[i];
        in[i].msg_hdr.msg_iovlen = 1;
      }
      const int received = recvmmsg(fd, in, kBatch, MSG_DONTWAIT, NULL);
      if (received <= 0) break;
      int count = 0;
      for (int i = 0; i < received; ++i) {
        unsigned char* p = buffers[i];
        /* RFC 1035 section 4.1.1: a query (QR clear) with a whole header. */
        if (in[i].msg_len < kHeaderSize || (p[2] & 0x80) != 0) continue;
        p[2] = (unsigned char)(0x80 | (p[2] & 0x79)); /* QR, opcode and RD kept */
        p[3] = (unsigned char)(0x80 | (rcode & 0xf)); /* RA, rcode */
        outIov[count].iov_base = p;
        outIov[count].iov_len = in[i].msg_len;
        memset(&out[count].msg_hdr, 0, sizeof out[count].msg_hdr);
        out[count].msg_hdr.msg_name = &peers[i];
        out[count].msg_hdr.msg_namelen = in[i].msg_hdr.msg_namelen;
        out[count].msg_hdr.msg_iov = &outIov[count];
        out[count].msg_hdr.msg_iovlen = 1;
        ++count;
      }
      int sent = 0;
      while (sent < count) {
        const int n = sendmmsg(fd, out + sent, (unsigned)(count - sent), MSG_DONTWAIT);
        sent += n > 0 ? n : 1; /* a failed datagram is dropped, as egressd does */
      }
      if (received < kBatch) break; /* drained: back to epoll, no EAGAIN round trip */
    }
  }
}

#!/usr/bin/python3
"""Insertion attacks on the first-packet decision (tests/e2e/insertion_test.sh).

  insertion.py servers LOG CERT KEY
      A TLS server on [::]:443 that writes "sni NAME" to LOG for every
      ClientHello it processes (sni_callback: the server's own record), and
      an HTTP server on [::]:80 that writes "host NAME" for every request it
      serves. Dual-stack. Prints "ready".

  insertion.py attack DST PROTO CASE...
      A hand-made TCP client (scapy, raw sockets; the caller drops the
      kernel's own RSTs for these connections). For each CASE, one
      connection to DST:443 (PROTO tls) or DST:80 (PROTO http) with TCP
      timestamps negotiated: a decoy first payload naming
      allowed.example.com that the server will discard, then the real one at
      the same sequence number naming evil-CASE.example.com. Cases:
        control   no decoy; the real payload names allowed.example.com
        paws      decoy with a stale TSval (RFC 7323 PAWS drops it)
        ttl       decoy whose TTL / hop limit expires one hop after the gateway
        md5       decoy with a TCP MD5 signature option (RFC 2385) the server
                  does not expect
        checksum  decoy with a wrong TCP checksum
        window    decoy 2^30 bytes ahead: outside the receive window
        straddle  one segment: the allowed payload ending where the stream
                  starts, the denied one from the stream's first byte (no
                  second segment: the server keeps only the tail)
      Prints "CASE OUTCOME" per case: tls / http (the server answered the
      real payload), reset, none.
"""
import os
import random
import socket
import socketserver
import ssl
import sys
import threading
import time


def servers(log_path, cert, key):
    lock = threading.Lock()

    def log(line):
        with lock, open(log_path, "a") as f:
            f.write(line + "\n")

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.sni_callback = lambda sslobj, name, _ctx: log("sni %s" % name)

    class V6Server(socketserver.ThreadingTCPServer):
        address_family = socket.AF_INET6
        allow_reuse_address = True
        daemon_threads = True

        def server_bind(self):
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            super().server_bind()

    class Tls(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.settimeout(3)
            try:
                with ctx.wrap_socket(self.request, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    class Http(socketserver.StreamRequestHandler):
        def handle(self):
            self.request.settimeout(3)
            try:
                head = b""
                while b"\r\n\r\n" not in head and len(head) < 8192:
                    chunk = self.request.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                host = ""
                for line in head.split(b"\r\n")[1:]:
                    if line.lower().startswith(b"host:"):
                        host = line[5:].strip().decode("ascii", "replace")
                log("host %s" % host)
                self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
            except OSError:
                pass

    for port, handler in ((443, Tls), (80, Http)):
        server = V6Server(("::", port), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)


def client_hello(name):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def http_request(name):
    return ("GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: insertion\r\n\r\n" % name).encode()


def attack(dst, proto, cases):
    from scapy.all import IP, IPv6, TCP, AsyncSniffer, conf, send, sr1  # noqa: E402

    conf.verb = 0
    v6 = ":" in dst
    port = 443 if proto == "tls" else 80
    payload = client_hello if proto == "tls" else http_request

    def ip(**kw):
        return IPv6(dst=dst, **kw) if v6 else IP(dst=dst, **kw)

    def hop_limit(n):
        return {"hlim": n} if v6 else {"ttl": n}

    for case in cases:
        sport = random.randint(20000, 60000)
        isn = random.randint(0, 2**32 - 1)
        ts = random.randint(10**6, 10**9)
        opts = [("MSS", 1360), ("SAckOK", b""), ("Timestamp", (ts, 0)), ("WScale", 7)]
        synack = sr1(ip() / TCP(sport=sport, dport=port, flags="S", seq=isn, options=opts), timeout=3)
        if synack is None or not synack.haslayer(TCP) or (synack[TCP].flags & 0x12) != 0x12:
            print(case, "no-synack", flush=True)
            continue
        server_ts = dict(synack[TCP].options).get("Timestamp", (0, 0))[0]
        ack = synack[TCP].seq + 1

        def segment(data, tsval, seq=None, extra=(), **ipkw):
            options = [("NOP", None), ("NOP", None), ("Timestamp", (tsval, server_ts))] + list(extra)
            return ip(**ipkw) / TCP(sport=sport, dport=port, flags="PA", seq=isn + 1 if seq is None else seq,
                                   ack=ack, window=502, options=options) / data

        send(ip() / TCP(sport=sport, dport=port, flags="A", seq=isn + 1, ack=ack,
                        options=[("NOP", None), ("NOP", None), ("Timestamp", (ts + 1, server_ts))]))
        time.sleep(0.05)
        decoy_bytes = payload("allowed.example.com")
        decoy = None
        if case == "paws":
            decoy = segment(decoy_bytes, ts - 2**20)
        elif case == "ttl":
            decoy = segment(decoy_bytes, ts + 2, **hop_limit(2))
        elif case == "md5":
            decoy = segment(decoy_bytes, ts + 2, extra=[(19, os.urandom(16)), ("NOP", None), ("NOP", None)])
        elif case == "checksum":
            decoy = segment(decoy_bytes, ts + 2)
            good = decoy.__class__(bytes(decoy))[TCP].chksum  # as scapy computes it
            decoy[TCP].chksum = good ^ 0x5A5A
        elif case == "window":
            decoy = segment(decoy_bytes, ts + 2, seq=(isn + 1 + 2**30) % 2**32)
        elif case == "straddle":
            # The allowed payload, then the denied one, placed so that the
            # stream's first byte is the denied one's: the receiver trims
            # the old part and keeps only the tail. No second segment.
            decoy = segment(decoy_bytes + payload("evil-straddle.example.com"), ts + 2,
                            seq=(isn + 1 - len(decoy_bytes)) % 2**32)
        elif case != "control":
            raise SystemExit("unknown case %s" % case)
        sniffer = AsyncSniffer(
            filter="tcp and src port %d and dst port %d" % (port, sport), store=True)
        sniffer.start()
        time.sleep(0.2)
        if decoy is not None:
            send(decoy)
            time.sleep(0.3)
        real_name = "allowed.example.com" if case == "control" else "evil-%s.example.com" % case
        if case != "straddle":
            send(segment(payload(real_name), ts + 3))
        time.sleep(1.0)
        replies = sniffer.stop() or []
        outcome = "none"
        for r in replies:
            if not r.haslayer(TCP):
                continue
            data = bytes(r[TCP].payload)
            if data[:1] == b"\x16":
                outcome = "tls"
                break
            if data.startswith(b"HTTP/"):
                outcome = "http"
                break
            if r[TCP].flags & 0x04:
                outcome = "reset"
        print(case, outcome, flush=True)


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "servers":
        servers(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) >= 5 and sys.argv[1] == "attack":
        attack(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()

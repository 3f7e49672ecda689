#!/usr/bin/env python3
"""Small test services for the e2e "internet" namespace.

TCP, dual-stack on every address:
  22    SSH-like: sends "SSH-2.0-egressd-test\r\n" first, then echoes lines
  25    SMTP-like: sends "220 mail.example.com ESMTP egressd-test\r\n" first,
        answers each line with "250 ok <line>"; QUIT closes
  3306  MySQL-like: sends a protocol-10 handshake packet first, then echoes
  7     echo (client speaks first), for long-lived connection tests
UDP, on each address given as an argument:
  443, 9999  echo (QUIC/UDP tests): every datagram is sent back unchanged

One process, one thread per connection; exits on SIGTERM. Logs one line per
connection to stdout (the caller redirects it to DIR/logs/services.log).
"""
import signal
import socket
import struct
import sys
import threading


def log(msg):
    print(msg, flush=True)


def mysql_greeting():
    # Protocol::HandshakeV10 (MySQL client/server protocol), sequence id 0.
    payload = (b"\x0a" + b"5.7.99-egressd-test\x00" + struct.pack("<I", 42) +
               b"abcdefgh" + b"\x00" + struct.pack("<H", 0xF7FF) + b"\x21" +
               struct.pack("<H", 0x0002) + struct.pack("<H", 0x81FF) + b"\x15" +
               b"\x00" * 10 + b"ijklmnopqrst\x00" + b"mysql_native_password\x00")
    return struct.pack("<I", len(payload))[:3] + b"\x00" + payload


def handle(conn, peer, port):
    log(f"tcp {port} from {peer[0]}:{peer[1]}")
    try:
        conn.settimeout(300)
        if port == 22:
            conn.sendall(b"SSH-2.0-egressd-test\r\n")
        elif port == 25:
            conn.sendall(b"220 mail.example.com ESMTP egressd-test\r\n")
        elif port == 3306:
            conn.sendall(mysql_greeting())
        buf = b""
        while True:
            data = conn.recv(65536)
            if not data:
                break
            if port == 25:
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    line = line.rstrip(b"\r")
                    if line.upper() == b"QUIT":
                        conn.sendall(b"221 bye\r\n")
                        return
                    conn.sendall(b"250 ok " + line + b"\r\n")
            else:
                conn.sendall(data)
    except OSError:
        pass
    finally:
        conn.close()


def tcp_socket(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    s.listen(512)
    return s


def udp_socket(addr, port):
    # One socket per address: a reply must come from the address the client
    # sent to (a wildcard socket would answer from the primary address).
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((addr, port))
    return s


def tcp_server(s, port):
    while True:
        conn, peer = s.accept()
        threading.Thread(target=handle, args=(conn, peer, port), daemon=True).start()


def udp_echo(s, port):
    while True:
        data, peer = s.recvfrom(65535)
        log(f"udp {port} from {peer[0]}:{peer[1]} {len(data)} bytes")
        s.sendto(data, peer)


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Bind everything before announcing readiness, so "ready" means ready.
    threads = [threading.Thread(target=tcp_server, args=(tcp_socket(p), p), daemon=True)
               for p in (22, 25, 3306, 7)]
    threads += [threading.Thread(target=udp_echo, args=(udp_socket(a, p), p), daemon=True)
                for p in (443, 9999) for a in sys.argv[1:]]
    for t in threads:
        t.start()
    log("services ready")
    signal.pause()


if __name__ == "__main__":
    main()

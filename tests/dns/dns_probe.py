#!/usr/bin/env python3
"""Raw-socket probes for the DNS end-to-end test: malformed packets, TCP
framing abuse, pipelining and the TCP client bound. Standard library only.

Usage: dns_probe.py PORT CHECK   (exit 0 when the check holds)
"""
import socket
import struct
import sys
import time

HOST = "127.0.0.1"


def query(name, qtype=1, qid=0x1234, flags=0x0100, edns=True, opcode=0):
    flags |= (opcode & 0xF) << 11
    header = struct.pack(">HHHHHH", qid, flags, 1, 0, 0, 1 if edns else 0)
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".") if label) + b"\0"
    body = qname + struct.pack(">HH", qtype, 1)
    if edns:
        body += b"\0" + struct.pack(">HHIH", 41, 1232, 0, 0)
    return header + body


def udp_exchange(port, payload, timeout=1.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    s.sendto(payload, (HOST, port))
    try:
        data, _ = s.recvfrom(65535)
        return data
    except socket.timeout:
        return None
    finally:
        s.close()


def rcode(message):
    return message[3] & 0xF


def alive(port):
    """The server still answers a well-formed query over UDP and TCP."""
    answer = udp_exchange(port, query("api.example.test", qid=0x7777), timeout=2.0)
    if answer is None or answer[:2] != b"\x77\x77" or rcode(answer) != 0:
        return False
    with socket.create_connection((HOST, port), timeout=2.0) as s:
        q = query("api.example.test", qid=0x8888)
        s.sendall(struct.pack(">H", len(q)) + q)
        return read_tcp_message(s)[:2] == b"\x88\x88"


def read_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def read_tcp_message(s):
    (length,) = struct.unpack(">H", read_exact(s, 2))
    return read_exact(s, length)


def check_malformed_udp(port):
    cases = {
        "zero-length": b"",
        "five bytes": b"\x12\x34\x01\x00\x00",
        "header only, qdcount 1": struct.pack(">HHHHHH", 1, 0x0100, 1, 0, 0, 0),
        "label past the end": struct.pack(">HHHHHH", 2, 0x0100, 1, 0, 0, 0) + b"\x3fabc",
        "compression loop": struct.pack(">HHHHHH", 3, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01",
        "response (QR)": struct.pack(">HHHHHH", 4, 0x8100, 1, 0, 0, 0) + b"\0\0\1\0\1",
        "oversized": query("api.example.test")[:-11] + b"\xff" * 60000,
        "random": bytes(range(256)) * 4,
    }
    for name, payload in cases.items():
        answer = udp_exchange(port, payload, timeout=0.3)
        if answer is not None and len(answer) >= 4 and not (answer[2] & 0x80):
            print(f"malformed {name}: reply is not a response", file=sys.stderr)
            return False
        if name in ("header only, qdcount 1", "label past the end", "compression loop", "oversized"):
            if answer is None or rcode(answer) != 1:
                print(f"malformed {name}: expected FORMERR, got {answer!r:.60}", file=sys.stderr)
                return False
        if name in ("zero-length", "five bytes", "response (QR)") and answer is not None:
            print(f"malformed {name}: expected no reply", file=sys.stderr)
            return False
    return alive(port)


def check_opcodes(port):
    for opcode, expected in ((1, 4), (2, 4), (4, 4), (5, 4)):
        answer = udp_exchange(port, query("api.example.test", opcode=opcode))
        if answer is None or rcode(answer) != expected:
            print(f"opcode {opcode}: got {answer!r:.40}", file=sys.stderr)
            return False
    return alive(port)


def check_tcp_pipelined(port):
    """Three queries in one write on one connection, three answers."""
    with socket.create_connection((HOST, port), timeout=3.0) as s:
        payload = b""
        for qid, name in ((1, "api.example.test"), (2, "evil.example.test"), (3, "www.example.test")):
            q = query(name, qid=qid)
            payload += struct.pack(">H", len(q)) + q
        s.sendall(payload)
        ids = sorted(struct.unpack(">H", read_tcp_message(s)[:2])[0] for _ in range(3))
        if ids != [1, 2, 3]:
            return False
        # And the connection stays usable for a fourth, sent byte by byte.
        q = query("api.example.test", qid=4)
        for byte in struct.pack(">H", len(q)) + q:
            s.send(bytes([byte]))
        return read_tcp_message(s)[:2] == b"\x00\x04"


def closed_within(s, seconds):
    s.settimeout(seconds)
    try:
        while True:
            if s.recv(4096) == b"":
                return True
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


def check_tcp_short_prefix(port):
    """A length prefix larger than what follows: the server waits, then
    drops the connection at the read timeout, and keeps serving others."""
    with socket.create_connection((HOST, port), timeout=3.0) as s:
        s.sendall(struct.pack(">H", 300) + b"\x12\x34" + b"\0" * 8)
        if not alive(port):
            return False
        if not closed_within(s, 5.0):
            print("short prefix: connection not closed", file=sys.stderr)
            return False
    return alive(port)


def check_tcp_never_finishes(port):
    """Half a length prefix and silence: closed at the idle timeout."""
    with socket.create_connection((HOST, port), timeout=3.0) as s:
        s.sendall(b"\x00")
        if not closed_within(s, 5.0):
            return False
    with socket.create_connection((HOST, port), timeout=3.0) as s:
        if not closed_within(s, 5.0):  # a client that sends nothing at all
            return False
    return alive(port)


def check_tcp_zero_length(port):
    with socket.create_connection((HOST, port), timeout=3.0) as s:
        s.sendall(b"\x00\x00")
        if not closed_within(s, 3.0):
            return False
    return alive(port)


def check_tcp_half_close(port):
    """Queries, then shutdown(SHUT_WR) at once (RFC 7766 section 6.2.3):
    every answer still arrives, the upstream ones included, then the
    server closes."""
    import random
    tag = random.randrange(1 << 30)
    names = ((0x0A01, f"h{tag}a.wild.example.test"),  # allowed, not cached: upstream round trip
             (0x0A02, "evil.example.test"),            # denied at once
             (0x0A03, f"h{tag}b.wild.example.test"))
    with socket.create_connection((HOST, port), timeout=3.0) as s:
        payload = b""
        for qid, name in names:
            q = query(name, qid=qid)
            payload += struct.pack(">H", len(q)) + q
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        try:
            ids = sorted(struct.unpack(">H", read_tcp_message(s)[:2])[0] for _ in names)
        except (ConnectionError, socket.timeout) as error:
            print(f"half-close: answers missing ({error})", file=sys.stderr)
            return False
        if ids != [qid for qid, _ in names]:
            print(f"half-close: got ids {ids}", file=sys.stderr)
            return False
        if not closed_within(s, 3.0):
            print("half-close: connection not closed after the answers", file=sys.stderr)
            return False
    return alive(port)


def check_tcp_limit(port, limit):
    """`limit` idle connections are accepted; the next ones are closed."""
    held = []
    try:
        for _ in range(limit):
            held.append(socket.create_connection((HOST, port), timeout=3.0))
        time.sleep(0.2)
        extra = socket.create_connection((HOST, port), timeout=3.0)
        refused = closed_within(extra, 2.0)
        extra.close()
        if not refused:
            print("tcp limit: extra connection stayed open", file=sys.stderr)
            return False
        # The held ones still work.
        q = query("api.example.test", qid=9)
        held[0].sendall(struct.pack(">H", len(q)) + q)
        return read_tcp_message(held[0])[:2] == b"\x00\x09"
    finally:
        for s in held:
            s.close()


def main():
    port = int(sys.argv[1])
    check = sys.argv[2]
    checks = {
        "alive": lambda: alive(port),
        "malformed-udp": lambda: check_malformed_udp(port),
        "opcodes": lambda: check_opcodes(port),
        "tcp-pipelined": lambda: check_tcp_pipelined(port),
        "tcp-short-prefix": lambda: check_tcp_short_prefix(port),
        "tcp-never-finishes": lambda: check_tcp_never_finishes(port),
        "tcp-zero-length": lambda: check_tcp_zero_length(port),
        "tcp-limit": lambda: check_tcp_limit(port, int(sys.argv[3])),
        "tcp-half-close": lambda: check_tcp_half_close(port),
    }
    ok = checks[check]()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Clients for the proxy end-to-end test (tests/proxy/e2e_test.sh).

  proxy_client.py raw PROXY BYTES            send BYTES (Python escapes: \\r\\n),
                                             print the status code, then the
                                             X-Egressd-Reason and the body
  proxy_client.py urllib PROXY URL CA        urllib.request with the proxy from
                                             HTTP_PROXY/HTTPS_PROXY (set here)
  proxy_client.py requests PROXY URL CA      the same with python-requests
  proxy_client.py keepalive PROXY HOST FLAG  two requests on one connection:
                                             the second after FLAG exists
  proxy_client.py tunnels PROXY N HOST PORT  N CONNECT tunnels open at once,
                                             then one HTTP request in each
  proxy_client.py slowloris PROXY SECONDS    a request head dribbled out one
                                             line every 0.5 s; prints what the
                                             proxy answered and after how long
  proxy_client.py silent PROXY SECONDS       connects and sends nothing;
                                             prints how and after how long
                                             the proxy ended it
  proxy_client.py bulk-server PORT MIB       (in the internet namespace) per
                                             connection: read to EOF, answer
                                             the SHA-256 of what came, then
                                             MIB MiB of seeded bytes, close
  proxy_client.py bulk PROXY TARGET MIB      CONNECT TARGET, send MIB MiB,
                                             half-close, check both digests
  proxy_client.py reset-server PORT          (in the internet namespace) per
                                             connection: read a line, reset
  proxy_client.py reset PROXY TARGET         CONNECT TARGET, send a line,
                                             print how the tunnel ended
  proxy_client.py early PROXY TARGET         CONNECT TARGET and a GET in one
                                             write, before any answer; print
                                             both statuses and the body
PROXY is host:port. Each prints one result line; the shell judges it.
"""
import asyncio
import hashlib
import os
import random
import threading
import resource
import socket
import ssl
import sys
import time


def split(proxy):
    host, _, port = proxy.rpartition(":")
    return host.strip("[]"), int(port)


def read_response(sock, deadline=5.0):
    """Status, headers dict (lower-case names) and body of one response."""
    sock.settimeout(deadline)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines or not lines[0].startswith("HTTP/"):
        return None, {}, data
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "-1"))
    while length >= 0 and len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def cmd_raw(proxy, text):
    payload = text.encode("latin-1").decode("unicode_escape").encode("latin-1")
    with socket.create_connection(split(proxy), timeout=5) as sock:
        sock.sendall(payload)
        status, headers, body = read_response(sock)
    print(status, headers.get("x-egressd-reason", "-"), body.decode("utf-8", "replace").strip())


def cmd_urllib(proxy, url, ca):
    import urllib.request

    os.environ["HTTP_PROXY"] = os.environ["HTTPS_PROXY"] = "http://" + proxy
    os.environ.pop("NO_PROXY", None)
    context = ssl.create_default_context(cafile=ca)
    try:
        with urllib.request.urlopen(url, context=context, timeout=5) as response:
            print(response.status, response.read().decode().strip())
    except urllib.error.HTTPError as error:
        print(error.code, error.read().decode("utf-8", "replace").strip())
    except OSError as error:  # CONNECT refusals surface as URLError/OSError
        print("error", error)


def cmd_requests(proxy, url, ca):
    import requests

    os.environ["HTTP_PROXY"] = os.environ["HTTPS_PROXY"] = "http://" + proxy
    try:
        response = requests.get(url, verify=ca, timeout=5)
        print(response.status_code, response.text.strip())
    except requests.exceptions.ProxyError as error:
        print("proxy-error", error)


def cmd_keepalive(proxy, host, flag):
    request = f"GET http://{host}/ HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    with socket.create_connection(split(proxy), timeout=5) as sock:
        sock.sendall(request)
        first, _, _ = read_response(sock)
        deadline = time.time() + 20
        while not os.path.exists(flag) and time.time() < deadline:
            time.sleep(0.05)
        sock.sendall(request)
        second, headers, _ = read_response(sock)
    print(first, second, headers.get("x-egressd-reason", "-"))


async def one_tunnel(proxy, host, port, opened, go):
    reader, writer = await asyncio.open_connection(*split(proxy))
    writer.write(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        writer.close()
        return "connect:" + head.split(b"\r\n")[0].decode()
    opened.append(1)
    await go.wait()  # every tunnel is open at the same time
    writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    body = await reader.read()
    writer.close()
    return "ok" if f"vhost={host}".encode() in body else "bad:" + body[:80].decode("latin-1")


async def tunnels(proxy, count, host, port):
    opened = []
    go = asyncio.Event()
    tasks = [asyncio.create_task(one_tunnel(proxy, host, port, opened, go)) for _ in range(count)]
    deadline = time.time() + 60
    while len(opened) < count and time.time() < deadline and not all(t.done() for t in tasks):
        await asyncio.sleep(0.1)
    at_once = len(opened)
    go.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    ok = sum(1 for r in results if r == "ok")
    failures = [str(r) for r in results if r != "ok"][:3]
    print(f"open_at_once={at_once} ok={ok}", *failures)


def cmd_tunnels(proxy, count, host, port):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    asyncio.run(tunnels(proxy, int(count), host, int(port)))


def cmd_slowloris(proxy, seconds):
    start = time.time()
    with socket.create_connection(split(proxy), timeout=float(seconds) + 5) as sock:
        sock.sendall(b"GET http://api.example.com/ HTTP/1.1\r\n")
        try:
            while time.time() - start < float(seconds):
                sock.sendall(b"X-Slow: 1\r\n")
                sock.settimeout(0.5)
                try:
                    data = sock.recv(4096)
                except socket.timeout:
                    continue
                status = data.split(b"\r\n")[0].decode("latin-1") if data else "closed"
                print(f"answered after {time.time() - start:.1f}s: {status}")
                return
        except OSError as error:
            print(f"answered after {time.time() - start:.1f}s: {error}")
            return
    print(f"still open after {seconds}s")


def cmd_silent(proxy, seconds):
    start = time.time()
    with socket.create_connection(split(proxy), timeout=float(seconds)) as sock:
        try:
            data = sock.recv(4096)
        except socket.timeout:
            print(f"still open after {seconds}s")
            return
        except OSError as error:
            print(f"ended after {time.time() - start:.1f}s: {error}")
            return
        what = "closed" if not data else data.split(b"\r\n")[0].decode("latin-1")
        print(f"ended after {time.time() - start:.1f}s: {what}")


def seeded(seed, mib):
    """MIB MiB of bytes both ends can regenerate: a change shows in the digest."""
    rng = random.Random(seed)
    for _ in range(mib * 16):
        yield rng.randbytes(65536)


def cmd_bulk_server(port, mib):
    def serve(conn):
        with conn:
            digest = hashlib.sha256()
            while True:
                data = conn.recv(1 << 20)
                if not data:
                    break
                digest.update(data)
            conn.sendall(digest.hexdigest().encode() + b"\n")
            for block in seeded(2, int(mib)):
                conn.sendall(block)

    listener = socket.create_server(("0.0.0.0", int(port)), reuse_port=True)
    print("listening", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def cmd_bulk(proxy, target, mib):
    start = time.time()
    sock = socket.create_connection(split(proxy), timeout=30)
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(1)
        if not data:
            print("closed before the CONNECT answer")
            return
        head += data
    if not head.startswith(b"HTTP/1.1 200"):
        print(head.split(b"\r\n")[0].decode("latin-1"))
        return
    sent = hashlib.sha256()
    for block in seeded(1, int(mib)):
        sock.sendall(block)
        sent.update(block)
    sock.shutdown(socket.SHUT_WR)  # the server answers only after this EOF
    received = bytearray()
    while True:
        data = sock.recv(1 << 20)
        if not data:
            break
        received += data
    line, _, rest = bytes(received).partition(b"\n")
    expected = hashlib.sha256()
    for block in seeded(2, int(mib)):
        expected.update(block)
    up = "up ok" if line.decode("latin-1") == sent.hexdigest() else f"up differs ({line[:16]!r})"
    down = "down ok" if hashlib.sha256(rest).hexdigest() == expected.hexdigest() else f"down differs ({len(rest)} bytes)"
    print(f"{up}, {down} in {time.time() - start:.1f}s")


def cmd_reset_server(port):
    def serve(conn):
        conn.recv(100)
        # SO_LINGER 0: the close sends a reset, not a FIN.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()

    listener = socket.create_server(("0.0.0.0", int(port)), reuse_port=True)
    print("listening", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def cmd_reset(proxy, target):
    sock = socket.create_connection(split(proxy), timeout=10)
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(1)
        if not data:
            print("closed before the CONNECT answer")
            return
        head += data
    sock.sendall(b"ping\n")
    try:
        data = sock.recv(100)
        print("eof" if not data else f"data {data!r}")
    except ConnectionResetError:
        print("reset")
    except socket.timeout:
        print("timeout")


def cmd_banner_server(port):
    # Speaks first, as SSH and SMTP servers do: a line as soon as the
    # connection is accepted (once its handshake's last ACK came).
    listener = socket.create_server(("0.0.0.0", int(port)), reuse_port=True)
    print("listening", flush=True)
    while True:
        conn, _ = listener.accept()
        conn.sendall(b"220 banner.example ESMTP\r\n")
        conn.close()


def cmd_banner(proxy, target):
    # How long after the CONNECT answer the server's first line comes.
    sock = socket.create_connection(split(proxy), timeout=5)
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    status, _, rest = read_response(sock)
    start = time.time()
    while b"\n" not in rest:
        data = sock.recv(100)
        if not data:
            break
        rest += data
    print(status, rest.split(b"\r\n")[0].decode("latin-1"), f"after {(time.time() - start) * 1000:.0f} ms")


def cmd_pieces(proxy, host):
    # A client with Nagle's algorithm on (a socket's default) that writes
    # in small pieces, each waiting for the proxy's ACK of the one before:
    # how long each answer takes, in ms.
    def timed(sock, pieces):
        start = time.time()
        for piece in pieces:
            sock.sendall(piece.encode())
        status, _, _ = read_response(sock)
        return f"{status} {(time.time() - start) * 1000:.0f}"

    with socket.create_connection(split(proxy), timeout=5) as sock:
        connect = timed(sock, [f"CONNECT {host}:80 HTTP/1.1\r\n", f"Host: {host}:80\r\n\r\n"])
        tunnel = timed(sock, ["GET / HTTP/1.1\r\n", f"Host: {host}\r\nConnection: close\r\n\r\n"])
    with socket.create_connection(split(proxy), timeout=5) as sock:
        post = timed(sock, [f"POST http://{host}/ HTTP/1.1\r\nHost: {host}\r\nContent-Length: 8\r\n"
                            "Connection: close\r\n\r\n", "abcd", "efgh"])
    print(f"connect {connect} tunnel {tunnel} post {post}")


def cmd_early(proxy, target):
    host = target.rpartition(":")[0]
    payload = (f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"
               f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection(split(proxy), timeout=5) as sock:
        sock.sendall(payload)
        status, _, rest = read_response(sock)  # the CONNECT answer has no body
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
    head, _, body = rest.partition(b"\r\n\r\n")
    inner = head.split(b" ")[1].decode() if head.startswith(b"HTTP/") else "none"
    print(status, inner, body.decode("utf-8", "replace").strip())


if __name__ == "__main__":
    commands = {
        "raw": cmd_raw,
        "urllib": cmd_urllib,
        "requests": cmd_requests,
        "keepalive": cmd_keepalive,
        "tunnels": cmd_tunnels,
        "slowloris": cmd_slowloris,
        "silent": cmd_silent,
        "bulk-server": cmd_bulk_server,
        "bulk": cmd_bulk,
        "reset-server": cmd_reset_server,
        "reset": cmd_reset,
        "early": cmd_early,
        "pieces": cmd_pieces,
        "banner-server": cmd_banner_server,
        "banner": cmd_banner,
    }
    commands[sys.argv[1]](*sys.argv[2:])

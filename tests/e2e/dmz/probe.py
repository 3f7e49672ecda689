#!/usr/bin/env python3
"""Clients of the DMZ simulation (tests/e2e/dmz_test.sh), run on a node.

  probe.py loop PROXY TARGET CAFILE SECONDS INTERVAL OUT
      one new request every INTERVAL seconds for SECONDS: connect to the
      proxy, CONNECT TARGET (host:443), TLS with CAFILE, GET /, status 200
      is a success; anything else (refused, reset, 5xx, 2 s without an
      answer) a failure. OUT gets one line a request:
      "START_MS END_MS ok|fail REASON" (wall clock, milliseconds).

  probe.py hold PROXY TARGET COUNT SECONDS OUT
      COUNT tunnels to TARGET (a line echo service behind a banner, e.g.
      ssh.example.com:22) held for SECONDS; each sends a line every 0.2 s
      and waits up to 3 s for its echo. Prints "ready PORT..." (the local
      ports, to find each tunnel's gateway in HAProxy's sessions) once all
      are open. OUT gets one line a tunnel: "PORT alive|eof|reset|hung
      END_MS" (eof and reset: the tunnel ended cleanly; hung: no echo and
      no end within 3 s).

  probe.py hastate SOCKET SERVER SECONDS OUT
      polls HAProxy's runtime API (SOCKET) every 50 ms for SECONDS; OUT gets
      "MS STATUS" each time the status of SERVER (backend/server) changes.
"""
import socket
import ssl
import sys
import threading
import time


def now_ms():
    return int(time.time() * 1000)


def connect_tunnel(proxy, target, timeout):
    host, port = proxy.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(4096)
        if not b:
            raise ConnectionError("proxy closed before answering CONNECT")
        head += b
        if len(head) > 65536:
            raise ConnectionError("CONNECT answer too long")
    status = head.split(b"\r\n", 1)[0].decode(errors="replace")
    if " 200" not in status:
        s.close()
        raise ConnectionError(f"CONNECT answered {status!r}")
    return s, head.split(b"\r\n\r\n", 1)[1]


def one_request(proxy, target, cafile):
    s, _ = connect_tunnel(proxy, target, 2)
    try:
        ctx = ssl.create_default_context(cafile=cafile)
        host = target.rsplit(":", 1)[0]
        t = ctx.wrap_socket(s, server_hostname=host)
        t.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            b = t.recv(4096)
            if not b:
                break
            data += b
        status = data.split(b"\r\n", 1)[0].decode(errors="replace")
        if " 200 " not in status + " ":
            raise ConnectionError(f"status {status!r}")
    finally:
        s.close()


def loop(proxy, target, cafile, seconds, interval, out):
    end = time.time() + seconds
    with open(out, "w") as f:
        while time.time() < end:
            start = now_ms()
            try:
                one_request(proxy, target, cafile)
                result = "ok -"
            except Exception as e:  # every failure is a data point
                result = "fail " + type(e).__name__
            f.write(f"{start} {now_ms()} {result}\n")
            f.flush()
            time.sleep(max(0.0, interval - (now_ms() - start) / 1000))


def hold_one(s, deadline, results, i):
    port = s.getsockname()[1]
    outcome = "alive"
    try:
        s.settimeout(3)
        n = 0
        buf = b""
        while time.time() < deadline:
            line = f"ping {i} {n}\n".encode()
            s.sendall(line)
            while line not in buf:
                b = s.recv(4096)
                if not b:
                    raise EOFError
                buf += b
            buf = b""
            n += 1
            time.sleep(0.2)
    except EOFError:
        outcome = "eof"
    except (ConnectionResetError, BrokenPipeError):
        outcome = "reset"
    except socket.timeout:
        outcome = "hung"
    except OSError as e:
        outcome = "reset" if e.errno else "hung"
    results[i] = f"{port} {outcome} {now_ms()}"
    s.close()


def hold(proxy, target, count, seconds, out):
    socks = []
    for _ in range(count):
        s, rest = connect_tunnel(proxy, target, 5)
        s.settimeout(3)
        while b"\n" not in rest:  # the service's banner
            rest += s.recv(4096)
        socks.append(s)
    print("ready " + " ".join(str(s.getsockname()[1]) for s in socks), flush=True)
    deadline = time.time() + seconds
    results = [None] * count
    threads = [threading.Thread(target=hold_one, args=(s, deadline, results, i))
               for i, s in enumerate(socks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open(out, "w") as f:
        f.write("\n".join(results) + "\n")


def haproxy_status(sock_path, backend, server):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    s.sendall(b"show stat\n")
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    s.close()
    for line in out.decode().splitlines():
        f = line.split(",")
        if len(f) > 17 and f[0] == backend and f[1] == server:
            return f[17]
    return "absent"


def hastate(sock_path, server, seconds, out):
    backend, name = server.split("/", 1)
    end = time.time() + seconds
    last = None
    with open(out, "w") as f:
        while time.time() < end:
            st = haproxy_status(sock_path, backend, name)
            if st != last:
                f.write(f"{now_ms()} {st}\n")
                f.flush()
                last = st
            time.sleep(0.05)


def main():
    a = sys.argv[1:]
    if len(a) == 7 and a[0] == "loop":
        loop(a[1], a[2], a[3], float(a[4]), float(a[5]), a[6])
    elif len(a) == 5 and a[0] == "hastate":
        hastate(a[1], a[2], float(a[3]), a[4])
    elif len(a) == 6 and a[0] == "hold":
        hold(a[1], a[2], int(a[3]), float(a[4]), a[5])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()

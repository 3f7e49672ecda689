#!/usr/bin/env python3
"""Small TCP servers for the nfq end-to-end test, one thread per port.

  servers.py banner:22 banner:25 echo:7000 tls:443:CERT:KEY

banner: speaks first ("SSH-2.0-egressd-test"), then answers one line with
"ok <line>"; echo: echoes every line until the client closes; tls: HTTPS
answering every request with 200 (threaded: a connection whose ClientHello
egressd denied must not block the others, as it would with s_server).
"""
import socket
import ssl
import sys
import threading

TLS = None


def serve(kind, port):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen(64)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handle, args=(kind, conn), daemon=True).start()


def handle(kind, conn):
    if kind == "tls":
        conn.settimeout(10)
        try:
            conn = TLS.wrap_socket(conn, server_side=True)
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()
        return
    with conn:
        reader = conn.makefile("rb")
        if kind == "banner":
            conn.sendall(b"SSH-2.0-egressd-test\r\n")
            line = reader.readline()
            if line:
                conn.sendall(b"ok " + line)
            return
        for line in reader:
            conn.sendall(line)


def main():
    global TLS
    for spec in sys.argv[1:]:
        kind, port, *files = spec.split(":")
        if kind == "tls":
            TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            TLS.load_cert_chain(files[0], files[1])
        threading.Thread(target=serve, args=(kind, int(port)), daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Forwards TCP from a port on 127.0.0.1 of this network namespace to an
address inside another one (tests/k8s/cluster.sh: kubectl on the host
reaches the kube-apiserver of the node namespace; docs/kubernetes-testing.md).

    nsforward.py NETNS_PATH TARGET_HOST TARGET_PORT PORT_FILE

The listening socket is opened first, in the caller's namespace, on a port
the kernel picks (written to PORT_FILE once listening); then the process
enters NETNS_PATH (setns), so every outgoing connection is made from
inside. A socket keeps the namespace it was created in, which is what lets
one process sit on both sides. Only the byte streams are copied: TLS stays
end to end between kubectl and the API server. Exits on SIGTERM.
"""
import ctypes
import os
import signal
import socket
import sys
import threading

CLONE_NEWNET = 0x40000000


def enter_netns(path):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        # Half-close so the other direction can finish (HTTP/2, exec streams).
        for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            try:
                s.shutdown(how)
            except OSError:
                pass


def serve(client, target):
    try:
        upstream = socket.create_connection(target, timeout=10)
        upstream.settimeout(None)
    except OSError:
        client.close()
        return
    t = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    t.start()
    pump(client, upstream)
    t.join()
    client.close()
    upstream.close()


def main():
    if len(sys.argv) != 5:
        sys.exit("usage: nsforward.py NETNS_PATH TARGET_HOST TARGET_PORT PORT_FILE")
    netns, host, port, port_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    # Threads started after setns inherit the namespace of this thread.
    enter_netns(netns)
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{listener.getsockname()[1]}\n")
    os.rename(tmp, port_file)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=serve, args=(client, (host, port)), daemon=True).start()


if __name__ == "__main__":
    main()

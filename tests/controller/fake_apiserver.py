#!/usr/bin/env python3
"""A scripted stand-in for the EgressRuleSet API, over real TLS on 127.0.0.1.

Only for what a real kube-apiserver cannot be made to do: kube-apiserver
v1.37 answers a watch from a compacted resourceVersion with HTTP 200 and an
ERROR event (code 410) - with and without its watch cache - never with HTTP
410 on the watch request itself, which other servers (older or aggregated
API servers, proxies) may send. See watch_http410_test.sh.

    fake_apiserver.py CERT KEY TOKEN PORTFILE REQUESTLOG MODE

MODE is what the first watch (from the first list's resourceVersion 100)
gets: "410" (HTTP 410 Gone with a Status body) or "500" (HTTP 500). Lists
return object "a" at resourceVersion 100 the first time and object "b" at
200 afterwards (as if "a" was deleted and "b" created while the client was
not watching). A watch from 200 streams ADDED "c" at 201 and then stays
open. Every other watch gets the first watch's answer again. Each request
is appended to REQUESTLOG as "GET list", "GET watch rv=100", "PATCH status
team-a/b" (one a line, flushed at once). Requests without the bearer token
get 401.
"""
import http.server
import json
import os
import ssl
import sys
import threading
import time
import urllib.parse

cert, key, token, port_file, request_log, mode = sys.argv[1:7]
lock = threading.Lock()
lists = 0


def obj(name, rv):
    return {
        "apiVersion": "zalando.org/v1",
        "kind": "EgressRuleSet",
        "metadata": {"name": name, "namespace": "team-a", "generation": 1, "resourceVersion": rv},
        "spec": {"targets": [name + ".example.com:443"]},
    }


def status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def record(line):
    with lock, open(request_log, "a") as f:
        f.write(line + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authorized(self):
        if self.headers.get("Authorization") == "Bearer " + token:
            return True
        record(self.command + " unauthorized")
        self.reply(401, status(401, "Unauthorized", "Unauthorized"))
        return False

    def do_GET(self):
        global lists
        if not self.authorized():
            return
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path != "/apis/zalando.org/v1/egressrulesets":
            record("GET other " + url.path)
            self.reply(404, status(404, "NotFound", "not found"))
            return
        if "watch" not in query:
            with lock:
                lists += 1
                first = lists == 1
            record("GET list")
            items, rv = ([obj("a", "100")], "100") if first else ([obj("b", "200")], "200")
            self.reply(200, {"apiVersion": "zalando.org/v1", "kind": "EgressRuleSetList",
                             "metadata": {"resourceVersion": rv}, "items": items})
            return
        rv = query.get("resourceVersion", [""])[0]
        record("GET watch rv=" + rv)
        if rv != "200":
            if mode == "410":
                self.reply(410, status(410, "Expired", "too old resource version: %s (200)" % rv))
            else:
                self.reply(500, status(500, "InternalError", "scripted failure"))
            return
        # A watch stream: chunked JSON lines, held open.
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        line = (json.dumps({"type": "ADDED", "object": obj("c", "201")}) + "\n").encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
        self.wfile.flush()
        try:
            for _ in range(600):
                time.sleep(0.1)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass

    def do_PATCH(self):
        if not self.authorized():
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        parts = self.path.split("?")[0].split("/")
        # /apis/zalando.org/v1/namespaces/NS/egressrulesets/NAME/status
        record("PATCH status %s/%s" % (parts[5], parts[7]) if len(parts) >= 9 else "PATCH " + self.path)
        self.reply(200, json.loads(body or b"{}"))


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()

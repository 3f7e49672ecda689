#!/usr/bin/env bash
# Who may use the proxy (proxy.clients) and the PROXY protocol from trusted
# load balancers (proxy.proxy_protocol_from), against a real egressd on
# loopback (no root, no namespaces): loopback is a /8, so clients bind
# 127.0.0.1 (in proxy.clients), 127.0.0.2 (not) and 127.0.0.3 (the "load
# balancer"). Real curl, a raw client for hand-made PROXY v2 headers, a
# real origin server whose log is the judge of what got through, and
# egressctl watch for the decision events.
# Needs: curl, jq, python3.
set -uo pipefail
bin="${EGRESSD_BIN:?}"
src="${EGRESSD_SOURCE_DIR:?}"
for tool in curl jq python3; do
  command -v "$tool" > /dev/null || { echo "FAIL: $tool not installed"; exit 1; }
done
# shellcheck source=tests/support/checks.sh
. "$src/tests/support/checks.sh"
checks_init proxy-clients-test
# shellcheck source=tests/dns/unbound.sh
. "$src/tests/dns/unbound.sh"

origin_port="$(free_port)"
proxy_port="$(free_port)"
dns_port="$(free_port)"
metrics_port="$(free_port)"
# The origin: one line per request it served, in $work/origin.log.
cat > "$work/origin.py" << 'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        print("served", self.client_address[0], self.path, flush=True)
        body = b"hello\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 -u "$work/origin.py" "$origin_port" > "$work/origin.log" 2>&1 &
pids+=("$!")

mkdir -p "$work/rules"
cat > "$work/rules/app.yaml" << YAML
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: app, namespace: team}
spec: {targets: ["127.0.0.1/32:$origin_port"]}
YAML
cat > "$work/egressd.toml" << TOML
[rules]
dirs = ["rules"]
[dns]
listen = ["127.0.0.1:$dns_port"]
upstreams = ["127.0.0.1:9"]
[nfqueue]
enabled = false
[metrics]
listen = "127.0.0.1:$metrics_port"
[control]
socket = "control.sock"
[proxy]
listen = ["127.0.0.1:$proxy_port"]
clients = ["127.0.0.1/32", "10.244.0.0/16"]
proxy_protocol_from = ["127.0.0.3/32"]
header_timeout = "1s"
# The single loop, as before proxy.threads (threads_test.sh runs several):
# the refusal log's line a second below is per loop.
threads = 1
TOML
egressd_start "$work/egressd.toml" || {
  fail "egressd did not start" "$(cat "$work/log")"
  exit 1
}
for _ in $(seq 50); do curl -s "http://127.0.0.1:$origin_port/ready" > /dev/null && break; sleep 0.1; done

"$bin/egressctl" watch proxy --json --socket "$work/control.sock" > "$work/watch.json" 2> "$work/watch.err" &
pids+=("$!")
sleep 0.3

proxy="http://127.0.0.1:$proxy_port"
target="http://127.0.0.1:$origin_port"
# curl from address FROM through the proxy: "HTTP_CODE EXIT_STATUS"
via() { # FROM PATH [curl args]
  local from=$1 path=$2 code rc
  shift 2
  code="$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 --interface "$from" -x "$proxy" "$@" \
    "$target$path" 2> "$work/curl.err")"
  rc=$?
  echo "$code $rc"
}
served() { grep -c " $1\$" "$work/origin.log"; }
metric() { curl -s "http://127.0.0.1:$metrics_port/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
events() { jq -c "select($1)" "$work/watch.json" 2> /dev/null; }
# A raw client from 127.0.0.3 (the trusted balancer): a PROXY v2 header
# naming CLIENT_IP:40412 (LOCAL with "local"), then a GET of PATH. Prints
# the status line, "closed" or "reset".
cat > "$work/raw_v2.py" << 'PY'
import socket, struct, sys
port, client, origin, path, command = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
s = socket.socket()
s.bind((sys.argv[6], 0))
s.connect(("127.0.0.1", port))
block = socket.inet_aton(client) + socket.inet_aton("127.0.0.1") + struct.pack(">HH", 40412, port)
block += b"\xea\x00\x05\x01vpce"  # an AWS TLV: skipped
head = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21 if command == "proxy" else 0x20, 0x11])
s.sendall(head + struct.pack(">H", len(block)) + block +
          f"GET http://127.0.0.1:{origin}{path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
try:
    data = s.recv(4096)
    print(data.split(b"\r\n")[0].decode() if data else "closed")
except ConnectionResetError:
    print("reset")
PY
raw_v2() { python3 "$work/raw_v2.py" "$proxy_port" "$1" "$origin_port" "$2" "${3:-proxy}" "${4:-127.0.0.3}"; }

# ---- proxy.clients: inside served, outside reset unread --------------------------------
expect_eq "curl from 127.0.0.1 (in proxy.clients) through the proxy" "200 0" "$(via 127.0.0.1 /inside)"
expect_eq "... the origin served it" 1 "$(served /inside)"
got="$(via 127.0.0.2 /outside)"
check "curl from 127.0.0.2 (not in proxy.clients): no response, the connection reset ($got)" \
  test "${got%% *}" = 000 -a "${got#* }" != 0
expect_eq "... the origin never saw it" 0 "$(served /outside)"
expect_eq "... counted: egressd_proxy_clients_refused_total" 1 "$(metric egressd_proxy_clients_refused_total)"
expect_eq "... no HTTP response counted for it" "" \
  "$(curl -s "http://127.0.0.1:$metrics_port/metrics" | grep 'reason="client_not_allowed"')"
sleep 0.3
expect_eq "... a decision event: kind proxy, verdict deny, reason client_not_allowed, src 127.0.0.2" 1 \
  "$(events '.kind == "proxy" and .verdict == "deny" and .reason == "client_not_allowed" and .src == "127.0.0.2"' | wc -l)"
check "... and a proxy.client_refused log line naming the client" \
  grep -q 'event=proxy.client_refused client=127.0.0.2:[0-9]* reason=client_not_allowed suppressed=0' "$work/log"
# A scan: 200 connections from outside the list, each sending a request.
cat > "$work/scan.py" << 'PY'
import socket, sys
for _ in range(200):
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    s.connect(("127.0.0.1", int(sys.argv[1])))
    s.sendall(b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n")
    s.close()
PY
python3 "$work/scan.py" "$proxy_port"
for _ in $(seq 30); do [ "$(metric egressd_proxy_clients_refused_total)" = 201 ] && break; sleep 0.1; done
expect_eq "a scan of 200 connections from outside: every one counted" 201 "$(metric egressd_proxy_clients_refused_total)"
lines="$(grep -c 'event=proxy.client_refused' "$work/log")"
check "... at most 3 log lines for all of them, not 200 ($lines)" test "$lines" -le 3
check "... and no per-request access line for any" \
  bash -c '! grep -q "event=proxy.request client=127.0.0.2" "$1"' _ "$work/log"

# ---- PROXY protocol: never believed from an untrusted address ------------------------
# curl --haproxy-protocol sends a v1 header; 127.0.0.1 is a client, not a balancer.
expect_eq "a PROXY v1 header from 127.0.0.1 (not in proxy_protocol_from): 400, not believed" "400 0" \
  "$(via 127.0.0.1 /untrusted-header --haproxy-protocol)"
expect_eq "... the origin never saw it" 0 "$(served /untrusted-header)"
expect_eq "a forged PROXY v2 header from 127.0.0.1 naming 10.244.9.9: 400" "HTTP/1.1 400 Bad Request" \
  "$(raw_v2 10.244.9.9 /forged proxy 127.0.0.1)"
expect_eq "... the origin never saw it" 0 "$(served /forged)"
sleep 0.3
expect_eq "... no event names the forged client" 0 "$(events '.src == "10.244.9.9"' | wc -l)"

# ---- PROXY protocol from the trusted balancer ----------------------------------------
expect_eq "127.0.0.3 (the balancer), PROXY v2 naming 10.244.1.2 (in proxy.clients): served" \
  "HTTP/1.1 200 OK" "$(raw_v2 10.244.1.2 /via-balancer)"
expect_eq "... the origin served it" 1 "$(served /via-balancer)"
sleep 0.3
expect_eq "... the decision names the header's client 10.244.1.2:40412, not the balancer" 1 \
  "$(events '.verdict == "allow" and .src == "10.244.1.2" and .sport == 40412' | wc -l)"
expect_eq "... counted: egressd_proxy_protocol_headers_total{command=\"proxy\"}" 1 \
  "$(metric 'egressd_proxy_protocol_headers_total{command="proxy"}')"
expect_eq "PROXY v2 from the balancer naming 10.9.9.9 (not in proxy.clients): reset" reset \
  "$(raw_v2 10.9.9.9 /outside-via-balancer)"
expect_eq "... the origin never saw it" 0 "$(served /outside-via-balancer)"
sleep 0.3
expect_eq "... a deny event names 10.9.9.9, reason client_not_allowed" 1 \
  "$(events '.verdict == "deny" and .reason == "client_not_allowed" and .src == "10.9.9.9"' | wc -l)"
expect_eq "a LOCAL header (a health check) speaks for the balancer, not a client: reset" \
  reset "$(raw_v2 10.244.1.2 /local local)"
expect_eq "real curl from the balancer without a header: 400" "400 0" "$(via 127.0.0.3 /no-header)"
check "... the body names proxy.proxy_protocol_from" \
  bash -c 'curl -s --max-time 5 --interface 127.0.0.3 -x "$1" "$2/no-header" | grep -q proxy.proxy_protocol_from' \
  _ "$proxy" "$target"
expect_eq "... the origin never saw it" 0 "$(served /no-header)"
sleep 0.3
check "... a deny event, reason proxy_protocol_invalid, src the balancer" \
  test "$(events '.reason == "proxy_protocol_invalid" and .src == "127.0.0.3"' | wc -l)" -ge 1
# curl's own v1 header from the balancer names the balancer itself,
# which is not a client: the allowlist judges the named client.
got="$(via 127.0.0.3 /v1-self --haproxy-protocol)"
check "curl --haproxy-protocol from the balancer: names 127.0.0.3, not a client: reset ($got)" \
  test "${got%% *}" = 000
expect_eq "... the origin never saw it" 0 "$(served /v1-self)"
checks_summary

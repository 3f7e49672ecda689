#!/usr/bin/env bash
# The proxy on several event loops (proxy.threads = 3), against a real
# egressd on loopback (no root, no namespaces): many concurrent tunnels,
# by address and by name (each loop resolves through egressd's DNS with
# its own resolver), all served, each an event, and the loops' counters
# in /metrics and `egressctl stats` adding up to what the client did, with
# more than one loop having served; proxy.max_connections holding for all
# loops together; a rules change live on every loop; a reload naming
# proxy.threads as restart-only; SIGTERM ending the loops and the open
# tunnels. The origin's log is the judge of what got through.
# Needs: curl, jq, python3, unbound.
set -uo pipefail
bin="${EGRESSD_BIN:?}"
src="${EGRESSD_SOURCE_DIR:?}"
for tool in curl jq python3 unbound; do
  command -v "$tool" > /dev/null || { echo "FAIL: $tool not installed"; exit 1; }
done
# shellcheck source=tests/support/checks.sh
. "$src/tests/support/checks.sh"
checks_init proxy-threads-test
# shellcheck source=tests/dns/unbound.sh
. "$src/tests/dns/unbound.sh"

unbound_example_test "origin IN A 127.0.0.1"
origin_port="$(free_port)"
proxy_port="$(free_port)"
dns_port="$(free_port)"
metrics_port="$(free_port)"
# The origin: one line per request it served, in $work/origin.log.
cat > "$work/origin.py" << 'PY'
import http.server, sys, threading
lock = threading.Lock()  # one whole line per request (handlers run in threads)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with lock:
            sys.stdout.write(f"served {self.path}\n")
            sys.stdout.flush()
        body = b"hello\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class S(http.server.ThreadingHTTPServer):
    request_queue_size = 256
S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 -u "$work/origin.py" "$origin_port" > "$work/origin.log" 2>&1 &
pids+=("$!")

mkdir -p "$work/rules"
write_rules() {
  cat > "$work/rules/app.yaml.tmp" << YAML
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: app, namespace: team}
spec: {targets: [$1]}
YAML
  mv "$work/rules/app.yaml.tmp" "$work/rules/app.yaml"
}
write_rules "\"127.0.0.1/32:$origin_port\", \"origin.example.test:$origin_port\""
config() { # THREADS
  cat << TOML
[rules]
dirs = ["rules"]
public_cidrs = ["127.0.0.0/8"]
[dns]
listen = ["127.0.0.1:$dns_port"]
upstreams = ["127.0.0.1:$upstream_port"]
[nfqueue]
enabled = false
[metrics]
listen = "127.0.0.1:$metrics_port"
[control]
socket = "control.sock"
[proxy]
listen = ["127.0.0.1:$proxy_port"]
clients = ["127.0.0.1/32"]
max_connections = 24
threads = $1
TOML
}
config 3 > "$work/egressd.toml"
egressd_start "$work/egressd.toml" || {
  fail "egressd did not start" "$(cat "$work/log")"
  exit 1
}
for _ in $(seq 50); do curl -s "http://127.0.0.1:$origin_port/ready" > /dev/null && break; sleep 0.1; done
"$bin/egressctl" watch proxy --json --socket "$work/control.sock" > "$work/watch.json" 2> "$work/watch.err" &
pids+=("$!")
sleep 0.3

metrics() { curl -s "http://127.0.0.1:$metrics_port/metrics"; }
metric() { metrics | awk -v m="$1" '$1 == m {print $2}'; }
events() { jq -c "select($1)" "$work/watch.json" 2> /dev/null | wc -l; }
served() { grep -c "^served $1" "$work/origin.log"; }
# Waits (up to 5 s) until `events FILTER` reaches N.
await_events() { # N FILTER
  for _ in $(seq 50); do [ "$(events "$2")" -ge "$1" ] && return; sleep 0.1; done
}

check "proxy.listening says 3 threads" grep -q "event=proxy.listening address=127.0.0.1:$proxy_port .*threads=3" "$work/log"
expect_eq "... three loop threads run (egressd-proxy0..2)" 3 \
  "$(grep -l '^egressd-proxy' /proc/"$egressd_pid"/task/*/comm 2> /dev/null | wc -l)"

# The client: COUNT tunnels through the proxy, WORKERS at a time, each a
# CONNECT to TARGET (alternately the address and the name when "both"),
# then a GET of /PREFIX-N through it. Prints "ok=N status=S..." where S
# counts the CONNECT answers' status codes.
cat > "$work/tunnels.py" << 'PY'
import collections, concurrent.futures, socket, sys
proxy, origin, count, workers, prefix, target = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]),
                                                 int(sys.argv[4]), sys.argv[5], sys.argv[6])
def tunnel(n):
    host = target if target != "both" else ("127.0.0.1" if n % 2 else "origin.example.test")
    s = socket.create_connection(("127.0.0.1", proxy), timeout=10)
    try:
        s.sendall(f"CONNECT {host}:{origin} HTTP/1.1\r\nHost: {host}:{origin}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            data = s.recv(4096)
            if not data:
                return "closed", False
            head += data
        status = head.split(b" ")[1].decode()
        if status != "200":
            return status, False
        s.sendall(f"GET /{prefix}-{n} HTTP/1.1\r\nHost: origin\r\n\r\n".encode())
        body = b""
        while True:
            data = s.recv(4096)
            if not data:
                break
            body += data
        return status, body.endswith(b"hello\n")
    finally:
        s.close()
statuses = collections.Counter()
ok = 0
with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    for status, good in pool.map(tunnel, range(count)):
        statuses[status] += 1
        ok += good
print(f"ok={ok} " + " ".join(f"status={k}x{v}" for k, v in sorted(statuses.items())))
PY
tunnels() { python3 "$work/tunnels.py" "$proxy_port" "$origin_port" "$@"; }

# ---- many tunnels, spread over the loops ------------------------------------------------
expect_eq "120 tunnels, 8 at a time, half by address, half by name: every one served" \
  "ok=120 status=200x120" "$(tunnels 120 8 spread both)"
expect_eq "... the origin served each of them" 120 "$(served /spread-)"
await_events 120 '.kind == "proxy" and .verdict == "allow"'
expect_eq "... an allow event for each (egressctl watch)" 120 "$(events '.kind == "proxy" and .verdict == "allow"')"
expect_eq "... 60 of them naming origin.example.test" 60 \
  "$(events '.verdict == "allow" and .name == "origin.example.test"')"
expect_eq "... and an access log line for each of those" 60 \
  "$(grep -c "event=proxy.request client=127.0.0.1:[0-9]* target=origin.example.test:$origin_port .*verdict=allow" "$work/log")"
expect_eq "/metrics egressd_proxy_connections_total: 120, every loop's added up" 120 \
  "$(metric egressd_proxy_connections_total)"
expect_eq "... egressd_proxy_requests_total{kind=\"connect\"}: 120" 120 \
  "$(metric 'egressd_proxy_requests_total{kind="connect"}')"
per_loop="$(metrics | awk '$1 ~ /^egressd_proxy_loop_connections_total\{/ {print $2}')"
expect_eq "... egressd_proxy_loop_connections_total has one series per loop" 3 "$(echo "$per_loop" | wc -l)"
expect_eq "... which add up to the total" 120 "$(echo "$per_loop" | awk '{s += $1} END {print s}')"
busy="$(echo "$per_loop" | awk '$1 > 0' | wc -l)"
check "... and more than one loop served connections ($(echo "$per_loop" | tr '\n' ' '))" test "$busy" -ge 2
stats="$("$bin/egressctl" stats --json --socket "$work/control.sock")"
expect_eq "egressctl stats: proxy.threads 3, proxy.connections 120" "3 120" \
  "$(echo "$stats" | jq -r '"\(.proxy.threads) \(.proxy.connections)"')"
expect_eq "... connections_by_loop adds up to it" 120 "$(echo "$stats" | jq '.proxy.connections_by_loop | add')"

# ---- proxy.max_connections holds for all loops together -----------------------------
# 24 tunnels held open (spread over the loops), then one more: 503.
cat > "$work/hold.py" << 'PY'
import socket, sys, time
proxy, origin, count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
held = []
for _ in range(count):
    s = socket.create_connection(("127.0.0.1", proxy), timeout=10)
    s.sendall(f"CONNECT 127.0.0.1:{origin} HTTP/1.1\r\n\r\n".encode())
    assert s.recv(4096).startswith(b"HTTP/1.1 200"), "not established"
    held.append(s)
extra = socket.create_connection(("127.0.0.1", proxy), timeout=10)
extra.sendall(f"CONNECT 127.0.0.1:{origin} HTTP/1.1\r\n\r\n".encode())
print(extra.recv(4096).split(b"\r\n")[0].decode(), flush=True)
sys.stdin.readline()  # held until told
PY
coproc HOLD { python3 "$work/hold.py" "$proxy_port" "$origin_port" 24; }
read -r -t 10 line <&"${HOLD[0]}"
expect_eq "24 tunnels held open over 3 loops (max_connections = 24), one more: 503" \
  "HTTP/1.1 503 Service Unavailable" "$line"
expect_eq "... counted once: egressd_proxy_responses_total{reason=\"too_many_connections\"}" 1 \
  "$(metrics | awk '$1 ~ /reason="too_many_connections"/ {print $2}')"
expect_eq "... egressd_proxy_tunnels (all loops): 24" 24 "$(metric egressd_proxy_tunnels)"
echo >&"${HOLD[1]}"
wait "$HOLD_PID" 2> /dev/null
for _ in $(seq 50); do [ "$(metric egressd_proxy_connections)" = 0 ] && break; sleep 0.1; done
expect_eq "... released: egressd_proxy_connections back to 0" 0 "$(metric egressd_proxy_connections)"
expect_eq "... and the next tunnels are served again" "ok=24 status=200x24" "$(tunnels 24 8 again 127.0.0.1)"

# ---- the policy is live on every loop ------------------------------------------------
write_rules "\"127.0.0.1/32:1\""
for _ in $(seq 50); do grep -q 'event=policy.loaded.*generation=2' "$work/log" && break; sleep 0.1; done
check "the rules changed (policy generation 2)" grep -q 'event=policy.loaded.*generation=2' "$work/log"
expect_eq "60 tunnels after the origin's rule is gone: every one refused, on every loop" \
  "ok=0 status=403x60" "$(tunnels 60 8 gone both)"
expect_eq "... the origin saw none" 0 "$(served /gone-)"
await_events 60 '.verdict == "deny"'
expect_eq "... a deny event for each" 60 "$(events '.kind == "proxy" and .verdict == "deny"')"
expect_eq "... the per-loop counters still add up (120 + 25 + 24 + 60)" 229 \
  "$(metrics | awk '$1 ~ /^egressd_proxy_loop_connections_total\{/ {s += $2} END {print s}')"

# ---- a second egressd on the same proxy address ---------------------------------------
# Its listeners would join the running ones' (SO_REUSEPORT) and take a
# share of the connections: it must fail to start instead, as with one loop.
config 2 | sed -e "s/127.0.0.1:$dns_port/127.0.0.1:$(free_port)/" -e "s/127.0.0.1:$metrics_port/127.0.0.1:$(free_port)/" \
  -e 's/control.sock/control2.sock/' > "$work/second.toml"
timeout 10 "$bin/egressd" --config "$work/second.toml" > "$work/second.log" 2>&1
expect_eq "a second egressd on the same proxy.listen address (threads = 2): exit code 1" 1 "$?"
check "... saying the address is in use" \
  grep -q "cannot listen on 127.0.0.1:$proxy_port (proxy.listen): address in use" "$work/second.log"

# ---- reload and stop -------------------------------------------------------------------
config 2 > "$work/egressd.toml"
kill -HUP "$egressd_pid"
for _ in $(seq 50); do grep -q 'event=config.reloaded' "$work/log" && break; sleep 0.1; done
check "SIGHUP with proxy.threads changed: named as restart-only" \
  grep -q 'event=config.restart_needed keys=proxy.threads' "$work/log"
expect_eq "... still 3 loop threads" 3 "$(grep -l '^egressd-proxy' /proc/"$egressd_pid"/task/*/comm 2> /dev/null | wc -l)"
write_rules "\"127.0.0.1/32:$origin_port\""
for _ in $(seq 50); do grep -q 'event=policy.loaded.*generation=3' "$work/log" && break; sleep 0.1; done
coproc HOLD { python3 "$work/hold.py" "$proxy_port" "$origin_port" 3; }
read -r -t 10 line <&"${HOLD[0]}"
expect_eq "3 tunnels held open, a fourth served too" "HTTP/1.1 200 Connection established" "$line"
kill -TERM "$egressd_pid"
for _ in $(seq 50); do kill -0 "$egressd_pid" 2> /dev/null || break; sleep 0.1; done
check "SIGTERM with tunnels open on several loops: egressd ends within 5 s" \
  bash -c '! kill -0 "$1" 2> /dev/null' _ "$egressd_pid"
wait "$egressd_pid"
expect_eq "... with exit code 0" 0 "$?"
check "... and says egressd.stopped" grep -q 'event=egressd.stopped' "$work/log"
echo >&"${HOLD[1]}" 2> /dev/null
wait "$HOLD_PID" 2> /dev/null
checks_summary

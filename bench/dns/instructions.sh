#!/usr/bin/env bash
# bench/dns/instructions.sh: user-space instructions per DNS query of
# egressd and of unbound (the peer, one thread, the same allowlist), under
# valgrind's callgrind, in the same run, for
#   cached    allowed names answered from the cache (200 names),
#   denied    names no rule allows (egressd: NXDOMAIN + EDE; unbound:
#             local-zone "." always_nxdomain),
#   uncached  allowed names never asked before (forwarded to the upstream).
# Instruction counts do not move with the machine's load, which CPU time
# on these shared machines does (+-25 % between rounds of the same binary).
#
# Each server is run twice per case, with SMALL and with LARGE queries
# (default 2,000 and 12,000), and the figure is the difference of the two
# whole-program counts divided by the difference in queries: start-up,
# shutdown and the warm-up cancel out; the periodic work that runs while
# the queries are answered (timers, sweeps, the event hub's drain) is
# counted, as it is part of what a query costs. Queries go one at a time
# (each waits for its answer) from a Python client on loopback; every one
# must be answered.
#
# Both servers ask the same scripted upstream (Python, 127.0.0.1), which
# answers every A query with one address of 192.0.2.0/24 chosen by the
# name (so names do not all share one address) and TTL 1 h. egressd: DNS
# only, NFQUEUE and metrics off, log.level warn, no watcher.
#
# Both servers read their UDP socket again after answering, until it is
# empty: a query that arrived meanwhile is taken without a trip through
# the event loop (epoll_wait and libevent's dispatch, ~680 instructions).
# Under callgrind a server runs ~50x slower than natively, so the client's
# next query is usually there already: the count depends on how often,
# which the machine's load moves. Each row therefore also gives the
# epoll_wait calls (wake-ups) per query of each server in that run.
#
# Usage: bench/dns/instructions.sh BUILD_DIR [RESULTS_DIR]
# Knobs: DNS_INSTR_SMALL, DNS_INSTR_LARGE, DNS_INSTR_CASES (default
# "cached denied uncached"), DNS_INSTR_PROFILES (a directory: the callgrind
# files are kept there, for callgrind_annotate), DNS_INSTR_SERVERS (default
# "egressd unbound"), DNS_INSTR_PROXY_PROTOCOL (egressd only: "listed" sets
# dns.proxy_protocol_from to a balancer the client is not; "header" lists
# the client, which then puts dnsdist's PROXY v2 header, naming 10.244.1.7,
# before every query; default: off). Writes RESULTS_DIR/dns_instructions.json when
# RESULTS_DIR is given. Needs valgrind, unbound, python3.
set -euo pipefail
build="$(cd "${1:?build dir}" && pwd)"
results="${2:-}"
[ -z "$results" ] || mkdir -p "$results"
small="${DNS_INSTR_SMALL:-2000}"
large="${DNS_INSTR_LARGE:-12000}"
cases="${DNS_INSTR_CASES:-cached denied uncached}"
profiles="${DNS_INSTR_PROFILES:-}"
servers="${DNS_INSTR_SERVERS:-egressd unbound}"
export DNS_INSTR_PROXY_PROTOCOL="${DNS_INSTR_PROXY_PROTOCOL:-}"
balancers=""
case "$DNS_INSTR_PROXY_PROTOCOL" in
  "") ;;
  listed) balancers='proxy_protocol_from = ["10.80.10.10/32"]' ;;
  header) balancers='proxy_protocol_from = ["127.0.0.1/32"]' ;;
  *) echo "bench/dns/instructions: DNS_INSTR_PROXY_PROTOCOL is listed, header or empty" >&2; exit 1 ;;
esac
egressd="$build/bin/egressd"
for tool in valgrind callgrind_annotate unbound python3; do
  command -v "$tool" >/dev/null || { echo "bench/dns/instructions: $tool missing" >&2; exit 1; }
done
[ -x "$egressd" ] || { echo "bench/dns/instructions: build egressd first" >&2; exit 1; }

work="$(mktemp -d /tmp/egressd-dns-instr.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=tests/dns/unbound.sh
. "$(cd "$(dirname "$0")" && pwd)/../../tests/dns/unbound.sh"

python3 - "$work/upstream.port" <<'PY' &
import socket, struct, sys, zlib
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
while True:
    q, peer = s.recvfrom(4096)
    if len(q) < 12:
        continue
    end = 12
    while q[end] != 0:
        end += q[end] + 1
    question = q[12:end + 5]
    qtype = struct.unpack(">H", q[end + 1:end + 3])[0]
    if qtype != 1:
        s.sendto(q[:2] + struct.pack(">HHHHH", 0x8180, 1, 0, 0, 0) + question, peer)
        continue
    host = 1 + zlib.crc32(q[12:end].lower()) % 250
    answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 3600, 4) + bytes([192, 0, 2, host])
    s.sendto(q[:2] + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 0) + question + answer, peer)
PY
pids+=($!)
for _ in $(seq 50); do [ -s "$work/upstream.port" ] && break; sleep 0.1; done
upstream_port="$(cat "$work/upstream.port")"

mkdir -p "$work/rules"
cat > "$work/rules/bench.yaml" <<'EOF'
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: bench, namespace: default}
spec:
  targets: ["*.bench.test:443"]
EOF

# server_conf SERVER PORT: the configuration file's path
server_conf() {
  local server="$1" port="$2"
  if [ "$server" = egressd ]; then
    cat > "$work/egressd-$port.toml" <<EOF
[rules]
dirs = ["$work/rules"]
public_cidrs = ["192.0.2.0/24"]
[dns]
listen = ["127.0.0.1:$port"]
upstreams = ["127.0.0.1:$upstream_port"]
cache_size = 100000
$balancers
[nfqueue]
enabled = false
[metrics]
enabled = false
[control]
socket = "$work/control-$port.sock"
[log]
level = "warn"
EOF
    echo "$work/egressd-$port.toml"
  else
    {
      unbound_server_conf "$port"
      cat <<EOF
  verbosity: 0
  module-config: "iterator"
  do-not-query-localhost: no
  ede: yes
  local-zone: "." always_nxdomain
  local-zone: "bench.test." transparent
  msg-cache-size: 64m
  rrset-cache-size: 128m
forward-zone:
  name: "."
  forward-addr: 127.0.0.1@$upstream_port
remote-control:
  control-enable: no
EOF
    } > "$work/unbound-$port.conf"
    echo "$work/unbound-$port.conf"
  fi
}

# queries PORT CASE COUNT TAG: sends them one at a time, every one answered
queries() {
  python3 - "$@" <<'PY'
import os, socket, struct, sys
port, case, count, tag = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
# dnsdist's header (useProxyProtocol): v2 PROXY, INET + DGRAM, 10.244.1.7:40412 -> 10.96.0.10:53.
header = b""
if os.environ.get("DNS_INSTR_PROXY_PROTOCOL") == "header":
    header = (b"\r\n\r\n\x00\r\nQUIT\n\x21\x12" + struct.pack(">H", 12) + bytes([10, 244, 1, 7, 10, 96, 0, 10])
              + struct.pack(">HH", 40412, 53))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
s.connect(("127.0.0.1", port))
def name(i):
    if case == "cached" or case == "warm":
        return f"c{i % 200}.bench.test"
    if case == "denied":
        return f"d{i}.denied.example"
    if case == "probe":
        return "probe.bench.test"
    return f"u{i}-{tag}.bench.test"
want = {"denied": 3}.get(case, 0)
for i in range(count):
    qname = b"".join(bytes([len(l)]) + l.encode() for l in name(i).split(".")) + b"\0"
    s.send(header + struct.pack(">HHHHHH", i & 0xffff, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", 1, 1))
    reply = s.recv(4096)
    if reply[:2] != struct.pack(">H", i & 0xffff) or reply[3] & 0xf != want:
        sys.exit(f"{case} query {i}: unexpected answer (rcode {reply[3] & 0xf}, want {want})")
PY
}

# measure SERVER CASE COUNT: prints the whole program's instructions
measure() {
  local server="$1" case="$2" count="$3"
  local port conf pid out="$work/$server-$case-$count.callgrind"
  port="$(free_port)"
  conf="$(server_conf "$server" "$port")"
  if [ "$server" = egressd ]; then
    valgrind --tool=callgrind --callgrind-out-file="$out" "$egressd" --config "$conf" \
      > "$work/$server.log" 2>&1 &
  else
    valgrind --tool=callgrind --callgrind-out-file="$out" unbound -d -c "$conf" > "$work/$server.log" 2>&1 &
  fi
  pid=$!
  pids+=("$pid")
  local ready=0
  for _ in $(seq 200); do
    if kill -0 "$pid" 2>/dev/null && queries "$port" probe 1 x 2>/dev/null; then
      ready=1
      break
    fi
    sleep 0.3
  done
  [ "$ready" = 1 ] || { cat "$work/$server.log" >&2; echo "bench/dns/instructions: $server did not start" >&2; exit 1; }
  [ "$case" != cached ] || queries "$port" warm 200 x
  queries "$port" "$case" "$count" "$server-$count"
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  if [ -n "$profiles" ]; then mkdir -p "$profiles" && cp "$out" "$profiles/"; fi
  # The whole program's instructions, and its epoll_wait calls (wake-ups).
  callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); printf "%s ", $1}'
  callgrind_annotate --tree=calling --auto=no --threshold=100 "$out" 2>/dev/null |
    awk '/> .*epoll_wait\.c:epoll_wait \(/ {n = $0; sub(/.*epoll_wait \(/, "", n); sub(/x\).*/, "", n); gsub(",", "", n); sum += n}
         END {print sum + 0}'
}

: > "$work/rows.txt"
for case in $cases; do
  for server in $servers; do
    small_run="$(measure "$server" "$case" "$small")"
    large_run="$(measure "$server" "$case" "$large")"
    echo "$case $server $small_run $large_run" >> "$work/rows.txt"
  done
done

python3 - "$work/rows.txt" "$small" "$large" "${results:+$results/dns_instructions.json}" <<'PY'
import json, sys
rows, small, large, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
table, wakeups = {}, {}
for line in open(rows):
    case, server, a, a_waits, b, b_waits = line.split()
    table.setdefault(case, {})[server] = (int(b) - int(a)) / (large - small)
    wakeups.setdefault(case, {})[server] = (int(b_waits) - int(a_waits)) / (large - small)
summary = {}
for case, servers in table.items():
    e, u = servers.get("egressd"), servers.get("unbound")
    ratio = e / u if e and u else None
    we, wu = wakeups[case].get("egressd"), wakeups[case].get("unbound")
    summary[case] = {"egressd": e, "unbound": u, "ratio_vs_unbound": ratio,
                     "wakeups_per_query": {"egressd": we, "unbound": wu}}
    if ratio is None:
        print(f"dns instructions/query {case:9s} egressd {e or 0:8.0f}  unbound {u or 0:8.0f}")
        continue
    print(f"dns instructions/query {case:9s} egressd {e:8.0f}  unbound {u:8.0f}  egressd/unbound {ratio:.2f}"
          + ("  (goal <= 0.5)" if case in ("cached", "denied") else "")
          + f"  [wake-ups/query: egressd {we:.2f}, unbound {wu:.2f}]")
if out:
    with open(out, "w") as f:
        json.dump({"component": "dns", "metric": "user-space instructions per query (callgrind)",
                   "peer": "unbound (num-threads 1)", "queries": [small, large],
                   "load_average": open("/proc/loadavg").read().split()[:3], "summary": summary}, f, indent=2)
PY

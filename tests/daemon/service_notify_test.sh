#!/usr/bin/env bash
# A real egressd started the way systemd starts a Type=notify unit
# (egressd.service of the Debian package, scripts/deb/): $NOTIFY_SOCKET
# names a datagram socket a python3 listener reads, as systemd would.
#  - READY=1 (with MAINPID and STATUS=ready: rules, dns) arrives once
#    egressd serves: at that moment /readyz is 200 and the DNS port answers;
#  - with a rules directory missing: READY=1 still comes (start-up is
#    done) but STATUS says not ready and names the directory; once it is
#    created, STATUS becomes ready within about a second, as /readyz does;
#  - WATCHDOG_USEC asks for WATCHDOG=1 from the loop, at least twice per
#    interval; WATCHDOG_PID of another process turns it off;
#  - SIGTERM sends STOPPING=1;
#  - a start-up that fails (metrics port taken) exits 1 and never says READY=1.
# Loopback only, no root. Needs python3, curl, kdig.
set -uo pipefail
bin="${EGRESSD_BIN:?}"
src="${EGRESSD_SOURCE_DIR:?}"
for tool in python3 curl kdig; do
  command -v "$tool" > /dev/null || { echo "FAIL: $tool not installed"; exit 1; }
done
work="$(mktemp -d /tmp/egressd-notify-test.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2> /dev/null; done
  wait 2> /dev/null
  rm -rf "$work"
}
trap cleanup EXIT
failures=0
checks=0
ok() { checks=$((checks + 1)); echo "ok: $1"; }
fail() {
  checks=$((checks + 1)); failures=$((failures + 1)); echo "FAIL: $1"
  for f in "$work"/log*; do [ -f "$f" ] && tail -3 "$f" | sed "s|^|    $(basename "$f"): |"; done
}
check() { local d=$1; shift; if "$@"; then ok "$d"; else fail "$d"; fi; }
# shellcheck source=tests/dns/unbound.sh
. "$src/tests/dns/unbound.sh"

# listen NAME: a datagram socket $work/NAME.sock; every message becomes one
# line of $work/NAME.msgs ("\n" inside written as " | "), prefixed with the
# receive time; and when READY=1 arrives, /readyz and a TCP connect to the
# DNS port are tried at once and their outcome written as "probe ...".
listen() {
  python3 - "$work/$1.sock" "$work/$1.msgs" "${2:-0}" "${3:-0}" << 'PY' &
import socket, sys, time, urllib.request
path, out, metrics_port, dns_port = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
with open(out, "a", buffering=1) as f:
    while True:
        text = s.recv(4096).decode()
        f.write(f"{time.monotonic():.3f} {text.replace(chr(10), ' | ')}\n")
        if "READY=1" in text.split("\n") and metrics_port:
            try:
                code = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/readyz", timeout=2).status
            except urllib.error.HTTPError as e:
                code = e.code
            except Exception as e:
                code = f"error {e}"
            try:
                socket.create_connection(("127.0.0.1", dns_port), timeout=2).close()
                dns = "open"
            except Exception as e:
                dns = f"error {e}"
            f.write(f"probe readyz={code} dns={dns}\n")
PY
  pids+=($!)
  for _ in $(seq 50); do [ -S "$work/$1.sock" ] && return 0; sleep 0.1; done
  echo "FAIL: the listener for $1 did not start"; exit 1
}
# config N DNS_PORT METRICS_PORT RULES_DIR
config() {
  cat > "$work/egressd$1.toml" << TOML
[rules]
dirs = ["$4"]
[dns]
listen = ["127.0.0.1:$2"]
upstreams = ["127.0.0.1:9"]
[nfqueue]
enabled = false
[metrics]
listen = "127.0.0.1:$3"
[control]
socket = "$work/control$1.sock"
TOML
}
wait_for() {  # FILE PATTERN [TENTHS]
  for _ in $(seq "${3:-50}"); do grep -q -- "$2" "$1" 2> /dev/null && return 0; sleep 0.1; done
  return 1
}

# ---- 1: ready from the start ----------------------------------------------------
mkdir -p "$work/rules"
dns_port="$(free_port)"
metrics_port="$(free_port)"
listen one "$metrics_port" "$dns_port"
config 1 "$dns_port" "$metrics_port" "$work/rules"
NOTIFY_SOCKET="$work/one.sock" "$bin/egressd" --config "$work/egressd1.toml" > "$work/log1" 2>&1 &
pid=$!
pids+=("$pid")
check "READY=1 arrives" wait_for "$work/one.msgs" "READY=1"
check "READY=1 carries MAINPID=$pid and STATUS=ready: rules, dns" \
  grep -q "READY=1 | MAINPID=$pid | STATUS=ready: rules, dns$" "$work/one.msgs"
check "when READY=1 arrived, /readyz was 200 and the DNS port open" wait_for "$work/one.msgs" "probe readyz=200 dns=open"
check "the DNS answers (refused name: NXDOMAIN)" sh -c "kdig +short +timeout=2 +retry=0 -p $dns_port @127.0.0.1 denied.example A > /dev/null; kdig +timeout=2 +retry=0 -p $dns_port @127.0.0.1 denied.example A | grep -q NXDOMAIN"
sleep 1.5
check "no WATCHDOG=1 without WATCHDOG_USEC, and no repeated STATUS while nothing changes" \
  [ "$(wc -l < "$work/one.msgs")" = 2 ]
kill -TERM "$pid"
check "SIGTERM: STOPPING=1" wait_for "$work/one.msgs" "STOPPING=1"
wait "$pid"
check "egressd exits 0 after SIGTERM" [ $? = 0 ]

# ---- 2: a rules directory missing, then created --------------------------------------
dns_port="$(free_port)"
metrics_port="$(free_port)"
listen two "$metrics_port" "$dns_port"
config 2 "$dns_port" "$metrics_port" "$work/later"
NOTIFY_SOCKET="$work/two.sock" "$bin/egressd" --config "$work/egressd2.toml" > "$work/log2" 2>&1 &
pid=$!
pids+=("$pid")
check "READY=1 arrives with the directory missing (start-up is done)" wait_for "$work/two.msgs" "READY=1"
check "its STATUS says not ready and names the directory" \
  grep -q "STATUS=not ready: rules failed: rules directory not readable (nothing from it is allowed): $work/later$" "$work/two.msgs"
check "and /readyz was 503 then" wait_for "$work/two.msgs" "probe readyz=503 dns=open"
mkdir "$work/later"
created=$(python3 -c 'import time; print(f"{time.monotonic():.3f}")')
check "once the directory exists, STATUS=ready: rules, dns" wait_for "$work/two.msgs" "^[0-9.]* STATUS=ready: rules, dns$" 40
became=$(awk '/ STATUS=ready: rules, dns$/ {print $1; exit}' "$work/two.msgs")
check "within 2.5 s (the rules retry is 1 s, the STATUS check 1 s): $(python3 -c "print(f'{$became - $created:.2f}')" 2> /dev/null) s" \
  python3 -c "import sys; sys.exit(0 if $became - $created < 2.5 else 1)"
check "/readyz agrees: 200" [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$metrics_port/readyz")" = 200 ]
kill -TERM "$pid"
wait "$pid"

# ---- 3: the watchdog ------------------------------------------------------------------
dns_port="$(free_port)"
metrics_port="$(free_port)"
listen three
config 3 "$dns_port" "$metrics_port" "$work/rules"
NOTIFY_SOCKET="$work/three.sock" WATCHDOG_USEC=400000 "$bin/egressd" --config "$work/egressd3.toml" > "$work/log3" 2>&1 &
pid=$!
pids+=("$pid")
wait_for "$work/three.msgs" "READY=1"
sleep 2
n=$(grep -c "WATCHDOG=1" "$work/three.msgs")
check "WATCHDOG_USEC=400000: WATCHDOG=1 at least every 200 ms ($n in 2 s)" [ "$n" -ge 8 ]
gap=$(awk '/WATCHDOG=1/ {if (last) {d = $1 - last; if (d > m) m = d}; last = $1} END {printf "%.3f", m}' "$work/three.msgs")
check "no gap between WATCHDOG=1 longer than the 400 ms interval ($gap s)" python3 -c "import sys; sys.exit(0 if $gap < 0.4 else 1)"
kill -TERM "$pid"
wait "$pid"
dns_port="$(free_port)"
metrics_port="$(free_port)"
listen four
config 4 "$dns_port" "$metrics_port" "$work/rules"
NOTIFY_SOCKET="$work/four.sock" WATCHDOG_USEC=400000 WATCHDOG_PID=1 "$bin/egressd" --config "$work/egressd4.toml" > "$work/log4" 2>&1 &
pid=$!
pids+=("$pid")
wait_for "$work/four.msgs" "READY=1"
sleep 1
check "WATCHDOG_PID of another process: no WATCHDOG=1" [ "$(grep -c "WATCHDOG=1" "$work/four.msgs")" = 0 ]
kill -TERM "$pid"
wait "$pid"

# ---- 4: a failed start never says READY=1 -----------------------------------------------
dns_port="$(free_port)"
listen five
# The metrics port is taken by a listener of ours: egressd must stop.
python3 -c "
import socket, time
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)
print(s.getsockname()[1], flush=True); time.sleep(30)" > "$work/taken" &
pids+=($!)
wait_for "$work/taken" "[0-9]"
config 5 "$dns_port" "$(cat "$work/taken")" "$work/rules"
NOTIFY_SOCKET="$work/five.sock" "$bin/egressd" --config "$work/egressd5.toml" > "$work/log5" 2>&1
rc=$?
check "with its metrics port taken egressd exits 1 ($rc)" [ "$rc" = 1 ]
sleep 0.3
check "and sent no READY=1" sh -c "! grep -q READY=1 '$work/five.msgs' 2> /dev/null"

echo "$((checks - failures)) of $checks checks passed"
[ "$failures" = 0 ]

#!/usr/bin/env bash
# bench/idle: what egressd costs with nothing to do, side by side with
# unbound (the DNS peer, one thread) idle in the same minute.
#
# egressd: one rule set, DNS on loopback, metrics on, NFQUEUE off, log level
# info, no query at all. After IDLE_SETTLE seconds (start-up: the rules,
# the public suffix list) it measures IDLE_SECONDS (default 60):
#   CPU       the run time of all its threads (/proc/PID/task/*/schedstat,
#             nanoseconds), as a share of one core;
#   wake-ups  voluntary context switches of all its threads per second: each
#             is a thread going back to sleep, so one per wake-up.
# Issue 17's goal for egressd: <= 0.05 % of a core and <= 10 wake-ups/s.
#
# Usage: bench/idle/run.sh BUILD_DIR [RESULTS_DIR]
# Knobs: IDLE_SECONDS, IDLE_SETTLE. Writes RESULTS_DIR/idle.json when given.
# Needs unbound, python3.
set -euo pipefail
build="$(cd "${1:?build dir}" && pwd)"
results="${2:-}"
seconds="${IDLE_SECONDS:-60}"
settle="${IDLE_SETTLE:-5}"
egressd="$build/bin/egressd"
[ -x "$egressd" ] || { echo "bench/idle: build egressd first" >&2; exit 1; }
for tool in unbound python3; do
  command -v "$tool" >/dev/null || { echo "bench/idle: $tool missing" >&2; exit 1; }
done

work="$(mktemp -d /tmp/egressd-idle.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=tests/dns/unbound.sh
. "$(cd "$(dirname "$0")" && pwd)/../../tests/dns/unbound.sh"

mkdir -p "$work/rules"
cat > "$work/rules/idle.yaml" <<'EOF'
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: idle, namespace: default}
spec:
  targets: ["*.example.org:443"]
EOF
dns_port="$(free_port)"
metrics_port="$(free_port)"
peer_port="$(free_port)"
cat > "$work/egressd.toml" <<EOF
[rules]
dirs = ["$work/rules"]
[dns]
listen = ["127.0.0.1:$dns_port"]
upstreams = ["127.0.0.1:$peer_port"]
[nfqueue]
enabled = false
[metrics]
listen = "127.0.0.1:$metrics_port"
[control]
socket = "$work/control.sock"
[log]
level = "info"
EOF
{
  unbound_server_conf "$peer_port"
  printf '  verbosity: 0\n  module-config: "iterator"\nremote-control:\n  control-enable: no\n'
} > "$work/unbound.conf"

"$egressd" --config "$work/egressd.toml" > "$work/egressd.log" 2>&1 &
egressd_pid=$!
pids+=("$egressd_pid")
unbound -d -c "$work/unbound.conf" > "$work/unbound.log" 2>&1 &
unbound_pid=$!
pids+=("$unbound_pid")
for _ in $(seq 100); do
  grep -q 'dns.listening' "$work/egressd.log" 2>/dev/null && break
  sleep 0.1
done
grep -q 'dns.listening' "$work/egressd.log" || { cat "$work/egressd.log" >&2; echo "bench/idle: egressd did not start" >&2; exit 1; }
sleep "$settle"

# sample PID: "run_time_ns voluntary_switches" over all its threads
sample() {
  local run=0 switches=0 task value
  for task in /proc/"$1"/task/*; do
    value="$(awk '{print $1}' "$task/schedstat" 2>/dev/null || echo 0)"
    run=$((run + value))
    value="$(awk '/^voluntary_ctxt_switches/ {print $2}' "$task/status" 2>/dev/null || echo 0)"
    switches=$((switches + value))
  done
  echo "$run $switches"
}
read -r e_run0 e_sw0 < <(sample "$egressd_pid")
read -r u_run0 u_sw0 < <(sample "$unbound_pid")
sleep "$seconds"
read -r e_run1 e_sw1 < <(sample "$egressd_pid")
read -r u_run1 u_sw1 < <(sample "$unbound_pid")
kill -0 "$egressd_pid" || { echo "bench/idle: egressd exited" >&2; exit 1; }

python3 - "$seconds" "$((e_run1 - e_run0))" "$((e_sw1 - e_sw0))" "$((u_run1 - u_run0))" "$((u_sw1 - u_sw0))" \
  "${results:+$results/idle.json}" <<'PY'
import json, sys
seconds = float(sys.argv[1])
e_ns, e_sw, u_ns, u_sw = (int(v) for v in sys.argv[2:6])
out = sys.argv[6]
row = lambda ns, sw: {"cpu_percent_of_core": ns / 1e9 / seconds * 100, "wakeups_per_second": sw / seconds}
e, u = row(e_ns, e_sw), row(u_ns, u_sw)
print(f"idle {seconds:.0f} s: egressd {e['cpu_percent_of_core']:.4f} % of a core, {e['wakeups_per_second']:.1f} wake-ups/s "
      f"(goal <= 0.05 %, <= 10/s); unbound {u['cpu_percent_of_core']:.4f} %, {u['wakeups_per_second']:.1f} wake-ups/s")
if out:
    with open(out, "w") as f:
        json.dump({"component": "idle", "seconds": seconds, "egressd": e, "unbound": u,
                   "setup": "one rule set, DNS on loopback, metrics on, NFQUEUE off, no traffic",
                   "load_average": open("/proc/loadavg").read().split()[:3]}, f, indent=2)
PY

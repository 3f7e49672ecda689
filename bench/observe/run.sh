#!/usr/bin/env bash
# New-connection rate through egressd with and without control-socket
# clients (issue 5): wrk from the pod of the e2e topology, one request per
# connection (Connection: close, plain HTTP to a name allowed on port 80, so
# every connection is decided by egressd and becomes an event), in phases
# that alternate side by side:
#   base       no watch client
#   watch4     four `egressctl watch` clients attached (output to /dev/null;
#              the daemon formats each line once, "format":"line")
#   watch4json four `egressctl watch --json` clients (event objects), for
#              comparison: what the line format saves
#   stuck      one client that subscribes and never reads
#   attributed attribution on: a pod map of 10,000 pods that names the
#              client (docs/attribution.md); every other phase runs with
#              an empty map, so `attributed` against `base` is the cost of
#              the lookup and the names in each event (goal: <= 2 % more
#              egressd CPU per connection, "attribution_cpu_ratio"; CPU
#              time here is information only: the figure of record is
#              bench/observe/instructions.sh, instructions per connection
#              and per DNS query under callgrind, run at the end unless
#              OBSERVE_BENCH_INSTRUCTIONS=0)
# Besides the rate, each phase reports CPU time per connection of egressd
# and of the watch clients (utime+stime from /proc), which a shared machine
# disturbs less than the rate. Each phase runs OBSERVE_BENCH_ROUNDS times,
# alternating, and the summary takes medians.
# Writes RESULTS/observe.json with each phase's rates and the ratios to base
# (goal >= 0.95). Usage: run.sh BUILD_DIR RESULTS_DIR
# Knobs: OBSERVE_BENCH_SECONDS (5), OBSERVE_BENCH_ROUNDS (3),
# OBSERVE_BENCH_CONNECTIONS (16).
set -uo pipefail
build="$(cd "${1:?usage: run.sh BUILD_DIR RESULTS_DIR}" && pwd)"
results="${2:?usage: run.sh BUILD_DIR RESULTS_DIR}"
mkdir -p "$results"
results="$(cd "$results" && pwd)"
root="$(cd "$(dirname "$0")/../.." && pwd)"
e2e="$root/tests/e2e"
bin="$build/bin"
seconds="${OBSERVE_BENCH_SECONDS:-5}"
rounds="${OBSERVE_BENCH_ROUNDS:-3}"
connections="${OBSERVE_BENCH_CONNECTIONS:-16}"
if [ "$(id -u)" != 0 ] || ! command -v wrk > /dev/null || [ ! -x "$bin/egressd" ] || [ ! -x "$bin/egressctl" ]; then
  echo "bench/observe: needs root, wrk, $bin/egressd and $bin/egressctl; skipped"
  exit 0
fi
dir="$(mktemp -d /tmp/egressd-observe-bench.XXXXXX)"
clients=()
stop_clients() {
  for p in "${clients[@]}"; do kill "$p" 2> /dev/null; wait "$p" 2> /dev/null; done
  clients=()
}
cleanup() {
  stop_clients
  if [ -n "${E2E_NS_GW:-}" ] && [ -e "/run/netns/$E2E_NS_GW" ]; then
    stop_egressd TERM > /dev/null 2>&1
    ip netns exec "$E2E_NS_GW" "$bin/egressd" --uninstall --config "$dir/egressd.toml" > /dev/null 2>&1
  fi
  "$e2e/topology.sh" down "$dir" > /dev/null 2>&1
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$e2e/topology.sh" up "$dir" > /dev/null || { echo "bench/observe: topology up failed"; exit 1; }
eval "$("$e2e/topology.sh" env "$dir")"
# shellcheck source=tests/e2e/lib.sh
. "$e2e/lib.sh"
mkdir -p "$dir/rules"
printf 'apiVersion: zalando.org/v1\nkind: EgressRuleSet\nmetadata: {name: bench, namespace: bench}\nspec:\n  targets: ["api.example.com:80"]\n' \
  > "$dir/rules/bench.yaml"
# Log level info as deployed: every phase writes the same decision lines.
write_egressd_config "$dir/egressd.toml" "$dir/rules"
# Attribution: the map file egressd watches; empty except in `attributed`.
mkdir -p "$dir/pods"
: > "$dir/pods/pods.map"
printf '\n[attribution]\nmap_file = "%s"\n' "$dir/pods/pods.map" >> "$dir/egressd.toml"
python3 - "$dir/pods/big.map" "$E2E_POD_IP4" << 'PY'
import sys
# 10,000 pods with typical names in 10.244.0.0/16, and the client among them.
with open(sys.argv[1], "w") as out:
    out.write("# IP NAMESPACE POD WORKLOAD SERVICE_ACCOUNT\n")
    for i in range(9999):
        out.write("10.244.%d.%d team-%d checkout-api-7d9c6b5f4-%05d Deployment/checkout-api checkout-api\n"
                  % (i // 250, i % 250 + 1, i % 40, i))
    out.write("%s team-bench wrk-7d9c6b5f4-x2x9q Deployment/wrk wrk\n" % sys.argv[2])
PY
use_map() {  # use_map FILE|"": put it in place, wait until egressd loaded it
  local want=0 mark
  [ -n "$1" ] && want=10000
  mark="$(egressd_log_mark)"
  if [ -n "$1" ]; then cp "$1" "$dir/pods/.next"; else : > "$dir/pods/.next"; fi
  mv "$dir/pods/.next" "$dir/pods/pods.map"
  wait_until 50 sh -c "tail -c +$((mark + 1)) '$E2E_LOGS/egressd.log' | grep -q 'event=pods.map.loaded .*pods=$want '" ||
    [ "$(grep -o 'pods.map.loaded .*pods=[0-9]*' "$E2E_LOGS/egressd.log" | tail -1 | grep -o '[0-9]*$')" = "$want" ]
}
sock="$dir/control.sock"
start_egressd "$bin/egressd" "$dir/egressd.toml" || { echo "bench/observe: egressd did not start"; exit 1; }
# Six phases of ~60,000 connections each: without this the pod runs out of
# ephemeral ports in the later phases and measures that instead.
tune_for_connection_rate || { echo "bench/observe: TIME-WAIT tuning failed"; exit 1; }
[ "$(curl_pod http://api.example.com/)" = 200 ] || { echo "bench/observe: no HTTP through egressd"; exit 1; }
# wrk resolves once; the address is bound by egressd's DNS answer.
addr="$(dns_answers api.example.com | tail -1)"
echo "$addr api.example.com" >> "/etc/netns/$E2E_NS_POD/hosts"
dns_pod api.example.com > /dev/null

cpu_ticks() {  # cpu_ticks PID...: utime+stime of the processes, in clock ticks
  local total=0 pid t
  for pid in "$@"; do
    # Fields after the ")" of the command name: utime is the 12th, stime the 13th.
    t="$(sed 's/.*) //' "/proc/$pid/stat" 2> /dev/null | awk '{print $12 + $13}')"
    total=$((total + ${t:-0}))
  done
  echo "$total"
}
hz="$(getconf CLK_TCK)"
egressd_pid="$(cat "$E2E_PIDS/egressd.pid")"

phase() {  # phase NAME: prints "requests/s egressd-ticks client-ticks"
  local name=$1 rate before after client_ticks=0
  case $name in
    watch4 | watch4json)
      local format=()
      [ "$name" = watch4json ] && format=(--json)
      for _ in 1 2 3 4; do
        "$bin/egressctl" watch --socket "$sock" --no-colour "${format[@]}" > /dev/null 2>&1 &
        clients+=($!)
      done
      ;;
    stuck)
      python3 - "$sock" << 'PY' > /dev/null 2>&1 &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(sys.argv[1])
s.sendall(b'{"op":"watch"}\n')
time.sleep(3600)
PY
      clients+=($!)
      ;;
  esac
  if [ "$name" = attributed ]; then use_map "$dir/pods/big.map"; else use_map ""; fi
  sleep 0.5
  # Keep the binding fresh (TTL) before each run.
  dns_pod api.example.com > /dev/null
  before="$(cpu_ticks "$egressd_pid")"
  local clients_before=0
  [ "${#clients[@]}" -gt 0 ] && clients_before="$(cpu_ticks "${clients[@]}")"
  rate="$(in_pod wrk -t2 -c"$connections" -d"${seconds}s" -H 'Connection: close' http://api.example.com/ 2> /dev/null |
    awk '/^Requests\/sec:/ {print $2}')"
  after="$(cpu_ticks "$egressd_pid")"
  # Let the clients print what is still queued for them, then count.
  [ "${#clients[@]}" -gt 0 ] && sleep 0.3 && client_ticks=$(($(cpu_ticks "${clients[@]}") - clients_before))
  stop_clients
  echo "${rate:-0} $((after - before)) $client_ticks"
}

runs_json=""
for round in $(seq "$rounds"); do
  for name in base watch4 watch4json stuck attributed; do
    read -r rate ticks client_ticks <<< "$(phase "$name")"
    echo "bench/observe: round $round $name ${rate} conn/s, egressd ${ticks} ticks, clients ${client_ticks} ticks"
    runs_json="$runs_json${runs_json:+,}{\"round\":$round,\"phase\":\"$name\",\"connections_per_second\":$rate,\"egressd_cpu_ticks\":$ticks,\"client_cpu_ticks\":$client_ticks}"
  done
done
dropped="$("$bin/egressctl" stats --socket "$sock" --json 2> /dev/null |
  jq '[.. | objects | to_entries[] | select(.key | test("drop"; "i")) | select(.key | test("watch|control|client"; "i")) | .value | numbers] | add // 0' 2> /dev/null || echo null)"
python3 - "$results/observe.json" "$rounds" "$seconds" "$connections" "$hz" "[$runs_json]" "$dropped" << 'PY'
import json, statistics, sys
out, rounds, seconds, conns, hz, runs, dropped = sys.argv[1:]
rounds, seconds, hz, runs = int(rounds), float(seconds), int(hz), json.loads(runs)
phases = ["base", "watch4", "watch4json", "stuck", "attributed"]
def median(phase, key):
    return statistics.median(r[key] for r in runs if r["phase"] == phase)
def us_per_conn(phase, key):
    values = [r[key] / hz * 1e6 / (r["connections_per_second"] * seconds)
              for r in runs if r["phase"] == phase and r["connections_per_second"] > 0]
    return statistics.median(values) if values else None
rate = {p: median(p, "connections_per_second") for p in phases}
b = rate["base"]
doc = {
    "benchmark": "observe",
    "what": "new connections per second through egressd (wrk from the e2e pod, Connection: close, HTTP), medians",
    "seconds_per_run": seconds, "rounds": rounds, "wrk_connections": int(conns),
    "base_cps": b, "watch4_cps": rate["watch4"], "watch4_json_cps": rate["watch4json"],
    "stuck_client_cps": rate["stuck"],
    "attributed_cps": rate["attributed"],
    "ratio_watch4": (rate["watch4"] / b) if b else None,
    "ratio_watch4_json": (rate["watch4json"] / b) if b else None,
    "ratio_stuck_client": (rate["stuck"] / b) if b else None,
    "goal_ratio": 0.95,
    "egressd_cpu_us_per_connection": {p: us_per_conn(p, "egressd_cpu_ticks") for p in phases},
    "watch_clients_cpu_us_per_connection": {p: us_per_conn(p, "client_cpu_ticks") for p in ("watch4", "watch4json")},
    "stuck_client_events_dropped": None if dropped == "null" else json.loads(dropped),
    "attribution_pods": 10000,
    "attribution_goal_cpu_ratio": 1.02,
    "runs": runs,
}
cpu = doc["egressd_cpu_us_per_connection"]
doc["attribution_cpu_ratio"] = (cpu["attributed"] / cpu["base"]) if cpu["base"] and cpu["attributed"] else None
json.dump(doc, open(out, "w"), indent=2)
print(json.dumps({k: doc[k] for k in ("base_cps", "ratio_watch4", "ratio_watch4_json", "ratio_stuck_client",
                                      "attributed_cps", "attribution_cpu_ratio",
                                      "egressd_cpu_us_per_connection", "watch_clients_cpu_us_per_connection")}))
PY
if [ "${OBSERVE_BENCH_INSTRUCTIONS:-1}" != 0 ]; then
  # After this run's topology is gone (the trap), in its own.
  trap - EXIT
  cleanup
  bash "$root/bench/observe/instructions.sh" "$build" "$results"
fi

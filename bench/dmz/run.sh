#!/usr/bin/env bash
# New tunnels per second through the central-gateway shape (issue 16,
# docs/dmz-simulation.md): the network of tests/e2e/dmz/network.sh, a node
# opening tunnels through the load balancer (HAProxy, TCP mode) to one
# gateway, then to two; side by side, rounds alternating the order.
#
#   one   HAProxy with gw2 disabled (runtime API): every tunnel on gw1
#   two   HAProxy with both gateways, round robin
#   gw1   straight to gateway 1's proxy, no load balancer (its cost)
#
# Each tunnel: connect, CONNECT api.example.com:80, one GET inside, read to
# the end, close (bench/proxy/load.c: proxy_load, built with the rest).
# Rules are files in each gateway's rules dir (no controller: the API
# server plays no part in a tunnel's cost). The cores each gateway's
# egressd and HAProxy used, and how busy the whole machine was (all
# processes, /proc/stat), are recorded per run, so the ratio can be read
# against where the machine's cores went.
#
# Usage: bench/dmz/run.sh BUILD_DIR RESULTS_DIR   (root; writes
# RESULTS_DIR/dmz.json). Knobs: DMZ_BENCH_ROUNDS [3] DMZ_BENCH_SECONDS [3]
# DMZ_BENCH_WORKERS [32] DMZ_BENCH_KEEP [0].
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="$(cd "${1:?usage: run.sh BUILD_DIR RESULTS_DIR}" && pwd)"
results="${2:?usage: run.sh BUILD_DIR RESULTS_DIR}"
mkdir -p "$results"
results="$(cd "$results" && pwd)"
# The binary under test, in one place (an installed package: /usr/sbin),
# run with the package's egressd.toml and unit (scripts/deb/; network.sh).
DMZ_EGRESSD="${DMZ_BENCH_EGRESSD:-$build/bin/egressd}"

if [ "$(id -u)" != 0 ]; then
  echo "bench/dmz: skipped (needs root for network namespaces)"
  exit 0
fi
for tool in haproxy dnsdist nginx unbound python3; do
  command -v "$tool" > /dev/null || { echo "bench/dmz: $tool missing (make deps-bench)" >&2; exit 1; }
done
[ -x "$DMZ_EGRESSD" ] || { echo "bench/dmz: $DMZ_EGRESSD missing (build it first)" >&2; exit 1; }
load="$build/bin/proxy_load"
[ -x "$load" ] || { echo "bench/dmz: $load missing (build it first)" >&2; exit 1; }

rounds="${DMZ_BENCH_ROUNDS:-3}"
seconds="${DMZ_BENCH_SECONDS:-3}"
workers="${DMZ_BENCH_WORKERS:-32}"
ulimit -n 65536 2> /dev/null || true

work="$(mktemp -d /tmp/egressd-dmz-bench.XXXXXX)"
say() { echo "bench/dmz: $*" >&2; }
fail() {
  say "FAIL: $*"
  DMZ_BENCH_KEEP=1
  exit 1
}
# shellcheck source=../../tests/e2e/dmz/network.sh
source "$root/tests/e2e/dmz/network.sh"
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  dmz_down
  if [ "${DMZ_BENCH_KEEP:-0}" = 1 ]; then say "work directory kept: $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'say interrupted; exit 130' INT TERM HUP

# ---- the network ---------------------------------------------------------------------
mkdir -p "$work/dmz"
dmz_root_from_build "$(dirname "$DMZ_EGRESSD")" "$work/root" || fail "package layout"
E2E_NGINX_WORKERS=2 dmz_up "$work/dmz" || fail "network up"
DMZ_LOG_LEVEL=warn
for n in 1 2; do
  dmz_gateway_config "$n"
  printf 'apiVersion: zalando.org/v1\nkind: EgressRuleSet\nmetadata: {name: bench, namespace: bench}\nspec:\n  targets:\n  - api.example.com:80\n' \
    > "$(dmz_rules_dir "$n")/bench.yaml"
  dmz_egressd_start "$n" || fail "gateway $n"
done
dmz_lb_start 1 2 || fail "load balancer"
for n in 1 2; do in_ns "gw$n" sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65535"; done
in_node 1 sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65535"
in_ns lb sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65535"

proxy_of() {
  case $1 in
    gw1) echo "$(dmz_gw_ip 1):$DMZ_PROXY_PORT" ;;
    *) echo "$DMZ_LB:$DMZ_PROXY_PORT" ;;
  esac
}
set_gateways() { # one|two|gw1
  if [ "$1" = two ]; then haproxy_cmd "enable server gateways/gw2" > /dev/null; else
    haproxy_cmd "disable server gateways/gw2" > /dev/null; fi
}
cpu_ticks() { # PID: utime + stime, in clock ticks
  awk '{print $14 + $15}' "/proc/$1/stat" 2> /dev/null || echo 0
}
machine() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $5 + $6}' /proc/stat; }  # busy idle
pids="$(cat "$DMZ_DIR/pids/egressd-gw1.pid") $(cat "$DMZ_DIR/pids/egressd-gw2.pid") $(cat "$DMZ_DIR/pids/haproxy.pid")"
hz="$(getconf CLK_TCK)"

# Probes: the load balancer serves the name and refuses another.
out="$(in_node 1 "$load" tunnels "$(proxy_of two)" api.example.com:80 api.example.com 0.5 1)"
case $out in tunnels_per_s=0.0* | *" errors="[1-9]* | "") fail "the load balancer serves nothing: $out" ;; esac
if in_node 1 "$load" idle "$(proxy_of two)" other.example.com:80 1 0 | grep -q 'open=1'; then
  fail "a CONNECT to a name no rule allows went through"
fi

raw="$work/raw.txt"
: > "$raw"
configs="one two gw1"
for r in $(seq "$rounds"); do
  order="$(echo "$configs" | tr ' ' '\n' | awk -v r="$r" '{a[NR]=$0} END {for (i=0;i<NR;i++) print a[(i+r)%NR+1]}')"
  for c in $order; do
    set_gateways "$c"
    sleep 0.3
    # shellcheck disable=SC2086 # one pid each
    before="$(for p in $pids; do cpu_ticks "$p"; done | tr '\n' ' ')"
    read -r mb0 mi0 <<< "$(machine)"
    t="$(in_node 1 "$load" tunnels "$(proxy_of "$c")" api.example.com:80 api.example.com "$seconds" "$workers")"
    # shellcheck disable=SC2086
    after="$(for p in $pids; do cpu_ticks "$p"; done | tr '\n' ' ')"
    read -r mb1 mi1 <<< "$(machine)"
    busy="$(awk -v b=$((mb1 - mb0)) -v i=$((mi1 - mi0)) 'BEGIN {printf "%.3f", b / (b + i)}')"
    cpu="$(paste -d' ' <(echo "$before" | tr ' ' '\n') <(echo "$after" | tr ' ' '\n') |
      awk -v hz="$hz" -v s="$seconds" 'NF == 2 {printf "%s ", ($2 - $1) / hz / s}')"
    read -r c1 c2 ch <<< "$cpu"
    echo "round=$r config=$c $t cpu_gw1=$c1 cpu_gw2=$c2 cpu_haproxy=$ch machine_busy=$busy" | tee -a "$raw" >&2
  done
done
set_gateways two

python3 - "$raw" "$results/dmz.json" "$rounds" "$seconds" "$workers" "$(nproc)" << 'PY'
import json, statistics, sys
raw, out, rounds, seconds, workers, cores = sys.argv[1:7]
runs = {}
for line in open(raw):
    f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
    r = runs.setdefault(f["config"], {"tunnels_per_s": [], "errors": 0, "cpu_gw1": [], "cpu_gw2": [], "cpu_haproxy": [], "machine_busy": []})
    r["tunnels_per_s"].append(float(f["tunnels_per_s"]))
    r["errors"] += int(f.get("errors", 0))
    for k in ("cpu_gw1", "cpu_gw2", "cpu_haproxy", "machine_busy"):
        r[k].append(float(f.get(k) or 0))
med = statistics.median
result = {"bench": "dmz", "rounds": int(rounds), "seconds": float(seconds), "workers": int(workers),
          "cores": int(cores), "configs": {}, "ratios": {}, "goals": {}}
for c, r in runs.items():
    result["configs"][c] = {"tunnels_per_s_median": med(r["tunnels_per_s"]), "errors": r["errors"],
                            "cpu_cores_gw1": round(med(r["cpu_gw1"]), 3), "cpu_cores_gw2": round(med(r["cpu_gw2"]), 3),
                            "cpu_cores_haproxy": round(med(r["cpu_haproxy"]), 3),
                            "machine_busy_fraction": round(med(r["machine_busy"]), 3), "rounds": r}
t = lambda c: result["configs"][c]["tunnels_per_s_median"]
for c, r in result["configs"].items():
    # egressd's CPU per tunnel (both gateways together): what one gateway's
    # capacity per core would be if the rest of the machine kept up.
    r["egressd_cpu_ms_per_tunnel"] = round(1000 * (r["cpu_cores_gw1"] + r["cpu_cores_gw2"]) / t(c), 3)
result["ratios"]["two_vs_one_gateway_tunnels"] = round(t("two") / t("one"), 3)
result["ratios"]["lb_vs_direct_one_gateway_tunnels"] = round(t("one") / t("gw1"), 3)
v = result["ratios"]["two_vs_one_gateway_tunnels"]
result["goals"]["two_vs_one_ge_1_8"] = {"target": 1.8, "value": v, "pass": v >= 1.8,
                                        "note": "needs cores for two gateways besides the client, HAProxy and nginx"}
json.dump(result, open(out, "w"), indent=2, sort_keys=True)
print(json.dumps({"ratios": result["ratios"], "goals": result["goals"],
                  "tunnels_per_s": {c: t(c) for c in runs},
                  "egressd_cpu_ms_per_tunnel": {c: result["configs"][c]["egressd_cpu_ms_per_tunnel"] for c in runs}}, indent=1))
PY

#!/usr/bin/env bash
# bench/dns: the real egressd binary (DNS only: nfqueue, metrics off; log
# level warn, so no line per denial) side by side with unbound (one
# thread) configured for the same allowlist and the same upstream,
# measured with dnsperf in the same run, for
#   (a) allowed names from cache, (b) denied names, (c) allowed names not cached.
# For each: maximum queries/s (dnsperf flat out), then at a fixed offered
# rate (DNS_BENCH_RATE, default 20000 q/s; DNS_BENCH_RATE_UNCACHED, default
# 4000 q/s, for case c): p99 latency (from dnsperf -v) and the server's own
# CPU time per query (utime+stime of all its threads from /proc/PID/stat,
# also reported split into user and system time), with its context switches
# per query (/proc/PID/status).
# The floor: dns_udp_echo (bench/dns/udp_echo.c, plain C, the same
# epoll + recvmmsg/sendmmsg I/O as egressd and nothing else) is measured in
# the same rounds for (a) and (b): its CPU per query is the kernel's share no
# DNS server here can avoid, and the summary reports each server's cost
# above it.
# Each measurement is repeated DNS_BENCH_REPEAT times (default 3) in short
# rounds, servers alternating, and the summary reports medians and ratios.
# Plus dns_micro: the pure query path and the binding table at 1,000,000
# entries (memory, record/lookup, the expiry sweep). Writes
# RESULTS_DIR/dns.json.
#
# Usage: bench/dns/run.sh BUILD_DIR RESULTS_DIR
# Knobs: DNS_BENCH_SECONDS (per phase, default 8), DNS_BENCH_RATE,
# DNS_BENCH_RATE_UNCACHED, DNS_BENCH_REPEAT, DNS_BENCH_CASES (default
# "cached denied uncached"), DNS_BENCH_MAX=0 (skip the flat-out phase),
# DNS_BENCH_LOG_LEVEL (egressd's log.level, default warn),
# DNS_BENCH_SYSCALLS=1 (count each server's syscalls per query in the fixed
# phase with `perf stat -e raw_syscalls:sys_enter`; adds a little overhead
# to every server alike, so it is off by default), DNS_BENCH_INFO=0 (skip the
# extra: a second egressd at log.level = info, one log line per denial into
# a file, measured with the denied names; reported, not a goal),
# DNS_BENCH_PIN=1 (servers pinned to the last CPU, dnsperf to CPU 0: the
# same CPU placement for every server; off by default),
# DNS_BENCH_INSTRUCTIONS=0 (skip bench/dns/instructions.sh: user-space
# instructions per query of egressd and unbound under callgrind, the DNS
# figure of record since CPU time on a shared machine moves +-25 %; it
# writes RESULTS_DIR/dns_instructions.json).
set -euo pipefail
build="$(cd "${1:?build dir}" && pwd)"
results="${2:?results dir}"
mkdir -p "$results"
seconds="${DNS_BENCH_SECONDS:-8}"
rate="${DNS_BENCH_RATE:-20000}"
# Uncached answers cost an upstream round trip each: a rate both can carry.
rate_uncached="${DNS_BENCH_RATE_UNCACHED:-4000}"
# Shared, noisy machines: alternate the servers and take medians.
repeat="${DNS_BENCH_REPEAT:-3}"
cases="${DNS_BENCH_CASES:-cached denied uncached}"
max_phase="${DNS_BENCH_MAX:-1}"
log_level="${DNS_BENCH_LOG_LEVEL:-warn}"
count_syscalls="${DNS_BENCH_SYSCALLS:-0}"
info_extra="${DNS_BENCH_INFO:-1}"
pin="${DNS_BENCH_PIN:-0}"
# DNS_BENCH_PIN=1: every server on the last CPU, dnsperf on CPU 0, so that
# each server sees the same placement (cross-CPU wake-ups both ways).
dnsperf_cmd=(dnsperf)
if [ "$pin" != 0 ]; then
  last_cpu=$(($(nproc) - 1))
  dnsperf_cmd=(taskset -c 0 dnsperf)
fi
egressd="$build/bin/egressd"
micro="$build/bin/dns_micro"
echo_server="$build/bin/dns_udp_echo"
for tool in unbound dnsperf python3; do
  command -v "$tool" >/dev/null || { echo "bench/dns: $tool missing (make deps-bench)" >&2; exit 1; }
done
[ -x "$egressd" ] && [ -x "$micro" ] && [ -x "$echo_server" ] ||
  { echo "bench/dns: build egressd, dns_micro and dns_udp_echo first" >&2; exit 1; }
if [ "$count_syscalls" != 0 ] && ! command -v perf >/dev/null; then
  echo "bench/dns: DNS_BENCH_SYSCALLS=1 needs perf" >&2
  exit 1
fi

work="$(mktemp -d /tmp/egressd-dns-bench.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=tests/dns/unbound.sh
. "$(cd "$(dirname "$0")" && pwd)/../../tests/dns/unbound.sh"

# ---- the shared upstream: unbound authoritative for bench.test (wildcard) ----
upstream_port="$(free_port)"
cat > "$work/bench.test.zone" <<'EOF'
$ORIGIN bench.test.
$TTL 3600
@ IN SOA ns.bench.test. admin.bench.test. 1 3600 600 86400 3600
@ IN NS ns.bench.test.
ns IN A 192.0.2.1
* IN A 192.0.2.80
EOF
common_server() {  # common_server PORT: unbound_server_conf plus bench tuning
  unbound_server_conf "$1"
  printf '  verbosity: 0\n  so-rcvbuf: 4m\n'
}
unbound_auth_conf "$upstream_port" "bench.test=$work/bench.test.zone" "verbosity: 0" "so-rcvbuf: 4m" > "$work/upstream.conf"
unbound -d -c "$work/upstream.conf" > "$work/upstream.log" 2>&1 &
pids+=($!)

# ---- the peer: unbound, one thread, same allowlist (*.bench.test), same upstream
peer_port="$(free_port)"
{
  common_server "$peer_port"
  cat <<EOF
  module-config: "iterator"
  do-not-query-localhost: no
  ede: yes
  # Allowlist: everything NXDOMAIN except the allowed zone, forwarded.
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
} > "$work/peer.conf"
unbound -d -c "$work/peer.conf" > "$work/peer.log" 2>&1 &
peer_pid=$!
pids+=("$peer_pid")

# ---- egressd with the same allowlist and upstream ----------------------------
mkdir -p "$work/rules"
cat > "$work/rules/bench.yaml" <<'EOF'
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: bench, namespace: default}
spec:
  targets: ["*.bench.test:443"]
EOF
egressd_conf() {  # egressd_conf PORT LOG_LEVEL
  cat <<EOF
[rules]
dirs = ["rules"]
public_cidrs = ["192.0.2.0/24"]  # the zone answers 192.0.2.80: public here
[dns]
listen = ["127.0.0.1:$1"]
upstreams = ["127.0.0.1:$upstream_port"]
cache_size = 1000000
[nfqueue]
enabled = false
[metrics]
enabled = false
[control]
socket = "control.sock"
[log]
level = "$2"
EOF
}
egressd_port="$(free_port)"
egressd_conf "$egressd_port" "$log_level" > "$work/egressd.toml"
"$egressd" --config "$work/egressd.toml" > "$work/egressd.log" 2>&1 &
egressd_pid=$!
pids+=("$egressd_pid")
# ---- the extra: a second egressd at log.level = info (one line per denial,
# into a file), measured with the denied names ----------------------------------
info_pid="" info_port=""
if [ "$info_extra" != 0 ] && [ "$log_level" != info ]; then
  info_port="$(free_port)"
  mkdir -p "$work/info"
  cp -r "$work/rules" "$work/info/"
  egressd_conf "$info_port" info > "$work/info/egressd.toml"
  (cd "$work/info" && exec "$egressd" --config egressd.toml > "$work/egressd-info.log" 2>&1) &
  info_pid=$!
  pids+=("$info_pid")
fi
# ---- the floor: a C echo server with egressd's UDP I/O ----------------------
echo_port="$(free_port)"
"$echo_server" "$echo_port" 3 > "$work/echo.log" 2>&1 &
echo_pid=$!
pids+=("$echo_pid")
sleep 0.5
printf 'probe.bench.test A\n' | dnsperf -s 127.0.0.1 -p "$echo_port" -n 1 -t 2 2>&1 | grep -q 'NXDOMAIN 1' ||
  { echo "bench/dns: the echo server does not answer" >&2; exit 1; }
for port in "$upstream_port" "$peer_port" "$egressd_port" $info_port; do
  printf 'probe.bench.test A\n' | dnsperf -s 127.0.0.1 -p "$port" -n 1 -t 2 2>&1 | grep -q 'NOERROR 1' ||
    { echo "bench/dns: server on port $port does not answer" >&2; cat "$work"/*.log >&2; exit 1; }
done

# ---- query files ----------------------------------------------------------------
python3 - "$work" "$repeat" <<'EOF'
import sys
work = sys.argv[1]
with open(f"{work}/cached.txt", "w") as f:
    for i in range(1000):
        f.write(f"c{i}.bench.test A\n")
with open(f"{work}/denied.txt", "w") as f:
    for i in range(100000):
        f.write(f"d{i}.denied.example A\n")
for server in ("egressd", "unbound"):
    # Unique names per server and per phase, so nothing is ever cached.
    for phase in ("max", "fixed"):
        for rep in range(1, int(sys.argv[2]) + 1):
            with open(f"{work}/uncached-{server}-{phase}-{rep}.txt", "w") as f:
                for i in range(300000):
                    f.write(f"u{i}-{server}-{phase}-{rep}.bench.test A\n")
EOF
# Warm both caches with the cached set.
if [ "$pin" != 0 ]; then
  for pid in "$peer_pid" "$egressd_pid" "$echo_pid" $info_pid; do taskset -p -c "$last_cpu" "$pid" > /dev/null; done
fi
for port in "$peer_port" "$egressd_port" $info_port; do
  dnsperf -s 127.0.0.1 -p "$port" -d "$work/cached.txt" -n 2 -q 50 > /dev/null 2>&1
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
user_ticks() { awk '{print $14}' "/proc/$1/stat"; }
ctx_switches() { awk '/ctxt_switches/ {n += $2} END {print n}' "/proc/$1/status"; }

# run SERVER PID PORT CASE FILE_MAX FILE_FIXED RATE → appends a JSON line
run() {
  local server="$1" pid="$2" port="$3" case="$4" file_max="$5" file_fixed="$6" rate="$7"
  local out="$work/$server-$case"
  : > "$out.max"
  if [ "$max_phase" != 0 ]; then
    "${dnsperf_cmd[@]}" -s 127.0.0.1 -p "$port" -d "$file_max" -l "$seconds" -c 8 -q 500 -t 2 > "$out.max" 2>&1 || true
  fi
  local before after user_before user_after cs_before cs_after perf_pid=""
  : > "$out.syscalls"
  if [ "$count_syscalls" != 0 ]; then
    perf stat -x, -e raw_syscalls:sys_enter -p "$pid" -o "$out.syscalls" -- sleep "$seconds" &
    perf_pid=$!
  fi
  before="$(cpu_ticks "$pid")"
  user_before="$(user_ticks "$pid")"
  cs_before="$(ctx_switches "$pid")"
  "${dnsperf_cmd[@]}" -s 127.0.0.1 -p "$port" -d "$file_fixed" -l "$seconds" -c 8 -q 2000 -t 2 -Q "$rate" -v \
    > "$out.fixed" 2>&1 || true
  after="$(cpu_ticks "$pid")"
  user_after="$(user_ticks "$pid")"
  cs_after="$(ctx_switches "$pid")"
  [ -z "$perf_pid" ] || wait "$perf_pid" || true
  python3 - "$server" "$case" "$out.max" "$out.fixed" "$((after - before))" "$(getconf CLK_TCK)" "$rate" \
    "$((user_after - user_before))" "$((cs_after - cs_before))" "$out.syscalls" \
    >> "$work/results.jsonl" <<'EOF'
import json, re, sys
server, case, max_file, fixed_file, ticks, hz, rate, user_ticks, switches, syscalls_file = sys.argv[1:]
def stat(text, key):
    m = re.search(rf"{key}:\s+([0-9.]+)", text)
    return float(m.group(1)) if m else None
max_text = open(max_file).read()
fixed_text = open(fixed_file).read()
latencies = sorted(float(line.split()[-1]) for line in fixed_text.splitlines()
                   if line.startswith("> ") and len(line.split()) >= 5)
completed = stat(fixed_text, "Queries completed")
p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else None
cpu_s = int(ticks) / int(hz)
user_s = int(user_ticks) / int(hz)
syscalls = None
for line in open(syscalls_file).read().splitlines():
    fields = line.split(",")
    if len(fields) > 2 and "raw_syscalls:sys_enter" in fields[2] and fields[0].strip().isdigit():
        syscalls = int(fields[0])
per_query = lambda v: v / completed if completed and v is not None else None
print(json.dumps({
    "server": server, "case": case,
    "max_qps": stat(max_text, "Queries per second"),
    "max_completed": stat(max_text, "Queries completed"),
    "max_lost_pct": (stat(max_text, "Queries lost") or 0) / max(1.0, stat(max_text, "Queries sent") or 1) * 100,
    "fixed_rate_qps": int(rate),
    "fixed_completed": completed,
    "fixed_achieved_qps": stat(fixed_text, "Queries per second"),
    "p50_ms": p(0.50), "p99_ms": p(0.99),
    "cpu_seconds": cpu_s,
    "cpu_us_per_query": cpu_s / completed * 1e6 if completed else None,
    "cpu_user_us_per_query": user_s / completed * 1e6 if completed else None,
    "cpu_sys_us_per_query": (cpu_s - user_s) / completed * 1e6 if completed else None,
    "context_switches_per_query": per_query(int(switches)),
    "syscalls_per_query": per_query(syscalls),
}))
EOF
  tail -1 "$work/results.jsonl"
}

: > "$work/results.jsonl"
for rep in $(seq "$repeat"); do
  for case in $cases; do
    # Alternate which server goes first, so a load change on the shared
    # machine does not always hit the same one.
    order="egressd unbound echo egressd_info"
    [ $((rep % 2)) -eq 0 ] && order="egressd_info echo unbound egressd"
    for server in $order; do
      case "$server" in
        egressd) pid="$egressd_pid" port="$egressd_port" ;;
        unbound) pid="$peer_pid" port="$peer_port" ;;
        egressd_info)
          [ "$case" = denied ] && [ -n "$info_pid" ] || continue
          pid="$info_pid" port="$info_port" ;;
        echo)
          # The floor is a floor only where no upstream is involved.
          [ "$case" = uncached ] && continue
          pid="$echo_pid" port="$echo_port" ;;
      esac
      case "$case" in
        cached) run "$server" "$pid" "$port" "$case" "$work/cached.txt" "$work/cached.txt" "$rate" ;;
        denied) run "$server" "$pid" "$port" "$case" "$work/denied.txt" "$work/denied.txt" "$rate" ;;
        uncached)
          run "$server" "$pid" "$port" "$case" "$work/uncached-$server-max-$rep.txt" \
            "$work/uncached-$server-fixed-$rep.txt" "$rate_uncached" ;;
      esac
    done
  done
done

"$micro" 1000000 > "$work/micro.json"
# Every denial of the info-level egressd must be in its log: count the lines
# once the hub has drained (every 5 ms).
sleep 0.1
info_lines="$(grep -c 'event=dns.query' "$work/egressd-info.log" 2>/dev/null || true)"
python3 - "$work/results.jsonl" "$work/micro.json" "$results/dns.json" "$rate" "$rate_uncached" "$seconds" "$repeat" \
  "$log_level" "${info_lines:-0}" "$pin" <<'EOF'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
micro = json.load(open(sys.argv[2]))
def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None
grouped = {}
for row in rows:
    grouped.setdefault(row["case"], {}).setdefault(row["server"], []).append(row)
summary = {}
ratio = lambda a, b: (a / b) if a and b else None
for case, servers in grouped.items():
    table = {server: {key: median([r.get(key) for r in runs])
                      for key in ("max_qps", "p50_ms", "p99_ms", "cpu_us_per_query", "cpu_user_us_per_query",
                                  "cpu_sys_us_per_query", "context_switches_per_query", "syscalls_per_query",
                                  "fixed_rate_qps")}
             for server, runs in servers.items()}
    e, u, f = table.get("egressd", {}), table.get("unbound", {}), table.get("echo", {})
    # Each round's own ratio, then the median: both servers of a round saw
    # the same machine load, so this is steadier than a ratio of medians.
    per_round = []
    for e_run, u_run in zip(servers.get("egressd", []), servers.get("unbound", [])):
        per_round.append(ratio(e_run.get("cpu_us_per_query"), u_run.get("cpu_us_per_query")))
    above = lambda server: (server.get("cpu_us_per_query") - f["cpu_us_per_query"]
                            if server.get("cpu_us_per_query") is not None and f.get("cpu_us_per_query") else None)
    summary[case] = {
        "egressd": e, "unbound": u,
        "qps_ratio_vs_unbound": ratio(e.get("max_qps"), u.get("max_qps")),
        "p99_ratio_vs_unbound": ratio(e.get("p99_ms"), u.get("p99_ms")),
        "cpu_per_query_ratio_vs_unbound": ratio(e.get("cpu_us_per_query"), u.get("cpu_us_per_query")),
        "cpu_per_query_ratio_per_round": per_round,
        "cpu_per_query_ratio_median_of_rounds": median(per_round),
        "goals": {"qps_ratio": ">= 1.0", "p99_ratio": "<= 1.0", "cpu_ratio": "<= 0.9"},
    }
    i = table.get("egressd_info")
    if i:
        summary[case]["extra_egressd_log_info"] = i
        summary[case]["extra_log_info_cpu_ratio_vs_unbound"] = ratio(i.get("cpu_us_per_query"), u.get("cpu_us_per_query"))
        info_rounds = [ratio(a.get("cpu_us_per_query"), b.get("cpu_us_per_query"))
                       for a, b in zip(servers.get("egressd_info", []), servers.get("unbound", []))]
        summary[case]["extra_log_info_cpu_ratio_median_of_rounds"] = median(info_rounds)
        summary[case]["extra_log_info_lines_written"] = int(sys.argv[9])
        # dnsperf's answered denials (both phases): each must have its line.
        summary[case]["extra_log_info_queries_answered"] = int(sum(
            (r.get("max_completed") or 0) + (r.get("fixed_completed") or 0) for r in servers.get("egressd_info", [])))
    if f:
        summary[case]["floor_udp_echo"] = f
        summary[case]["cpu_us_per_query_above_floor"] = {"egressd": above(e), "unbound": above(u)}
        summary[case]["floor_ratio_vs_unbound"] = ratio(f.get("cpu_us_per_query"), u.get("cpu_us_per_query"))
json.dump({"component": "dns", "server": "egressd (DNS only, log level " + sys.argv[8] + ")",
           "pinned": sys.argv[10] != "0",
           "log_level": sys.argv[8],
           "peer": "unbound 1.17 (num-threads 1)",
           "floor": "dns_udp_echo (bench/dns/udp_echo.c: epoll + recvmmsg/sendmmsg, no DNS work)", "load_average": open("/proc/loadavg").read().split()[:3], "fixed_rate_qps": int(sys.argv[4]),
           "fixed_rate_qps_uncached": int(sys.argv[5]), "seconds_per_run": int(sys.argv[6]),
           "repetitions": int(sys.argv[7]), "statistic": "median over repetitions",
           "runs": rows, "summary": summary, "micro": micro},
          open(sys.argv[3], "w"), indent=2)
fmt = lambda v, d=2: "n/a" if v is None else f"{v:.{d}f}"
for case, s in summary.items():
    e, u = s["egressd"], s["unbound"]
    print(f"dns {case:9s} max q/s {fmt(e['max_qps'], 0)} vs {fmt(u['max_qps'], 0)} (x{fmt(s['qps_ratio_vs_unbound'])})  "
          f"p99 ms {fmt(e['p99_ms'], 3)} vs {fmt(u['p99_ms'], 3)} (x{fmt(s['p99_ratio_vs_unbound'])})  "
          f"cpu us/q {fmt(e['cpu_us_per_query'])} vs {fmt(u['cpu_us_per_query'])} (x{fmt(s['cpu_per_query_ratio_vs_unbound'])})"
          + (f"  floor (C echo) {fmt(s['floor_udp_echo']['cpu_us_per_query'])} us/q" if "floor_udp_echo" in s else "")
          + (f"  log.level=info: cpu us/q {fmt(s['extra_egressd_log_info']['cpu_us_per_query'])} "
             f"(x{fmt(s['extra_log_info_cpu_ratio_vs_unbound'])}), {s['extra_log_info_lines_written']} lines"
             if "extra_egressd_log_info" in s else ""))
print(f"dns binding table: {micro['binding_entries']} entries, {micro['binding_heap_bytes'] / 1e6:.1f} MB "
      f"({micro['binding_bytes_per_entry']:.0f} B/entry); expiry sweep {micro['binding_sweep_none_expired_ms']:.0f} ms "
      f"(none expired) / {micro['binding_sweep_all_expired_ms']:.0f} ms (all expired); deny path {micro['deny_path_ns']:.0f} ns, "
      f"{micro['deny_path_allocations']} allocations; cache hit {micro['cache_hit_path_ns']:.0f} ns, "
      f"{micro['cache_hit_path_allocations']} allocations")
EOF
if [ "${DNS_BENCH_INSTRUCTIONS:-1}" != 0 ]; then
  bash "$(cd "$(dirname "$0")" && pwd)/instructions.sh" "$build" "$results"
fi

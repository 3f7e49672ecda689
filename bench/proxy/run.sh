#!/usr/bin/env bash
# bench/proxy: egressd's explicit proxy against the anchors of issue 14, on
# the end-to-end topology (tests/e2e/topology.sh: pod -> gateway ->
# internet, network namespaces this script creates and removes). All the
# proxies run at once in the gateway, each allowing only the bench name:
#
#   egressd      build/bin/egressd, [proxy] on :3128, a rule set allowing
#                the bench name and port (its NFQUEUE off: the proxy alone)
#   squid        Debian's squid, plain CONNECT, `dstdomain` ACL, no bump,
#                no cache, on :3129
#   smokescreen  Stripe's Smokescreen, built from its Go module at
#                SMOKESCREEN_VERSION (skipped when the module proxy does not
#                serve it), allowed_domains ACL, on :4750
#   direct       no proxy: the pod connects to the server itself
#
# Measured side by side in the same run, in alternating rounds (the order
# rotates each round), medians reported with their ratios:
#   - new tunnels/s: concurrent workers each doing CONNECT, one HTTP request
#     inside the tunnel, close (direct: connect, request, close). Plain HTTP
#     inside the tunnel, so the client's and server's TLS cost (the same for
#     every proxy) does not hide the proxy's own;
#   - bulk: bytes/s of one download on one tunnel;
#   - memory per idle tunnel: the proxy's resident memory and the kernel's
#     (slab growth beyond what the same connections cost without a proxy)
#     with PROXY_BENCH_IDLE tunnels open and idle, less before, per tunnel.
# Ratios are egressd against the others in the same round, median over the
# rounds; the load average at start and end is printed (shared machine).
# The load generator is bench/proxy/load.c (proxy_load, built with the
# rest: plain C, non-blocking sockets and epoll), the same for every config.
# It checks every response (status 200, the body's length) and counts what
# failed by kind.
#
# Usage: bench/proxy/run.sh BUILD_DIR RESULTS_DIR   (root; writes
# RESULTS_DIR/proxy.json). Knobs: PROXY_BENCH_ROUNDS [5]
# PROXY_BENCH_SECONDS [3] PROXY_BENCH_WORKERS [32: tunnels in flight]
# PROXY_BENCH_BULK_SECONDS [2]
# PROXY_BENCH_IDLE [1000] PROXY_BENCH_KEEP [0] PROXY_BENCH_BASELINE [none: an
# egressd binary measured as config `baseline` beside build's]
# PROXY_BENCH_CLIENT_THREADS [1: the workers' tunnels on one epoll thread]
# PROXY_BENCH_PERF [none: a directory; round 1's tunnels phase of each proxy
# is recorded there with `perf record -e cpu-clock -g` as perf-CONFIG.data].
# PROXY_BENCH_SYSCALLS [0; 1: each proxy's system calls per tunnel in the
# tunnels phase of every round, `perf stat -e raw_syscalls:sys_enter` on
# its process, reported with the CPU and segments per tunnel].
# PROXY_BENCH_THREADS [egressd's default, "auto"]: egressd's proxy.threads;
# PROXY_BENCH_BASELINE_THREADS [the same]: the baseline's (so
# PROXY_BENCH_BASELINE=build/bin/egressd PROXY_BENCH_THREADS=2
# PROXY_BENCH_BASELINE_THREADS=1 compares two loops with one, same run).
# Also reported, per tunnel during the tunnels phase: the CPU time of each
# proxy (all its threads, from schedstat), of the client (getrusage) and of
# nginx, steadier than tunnels/s when the machine is shared; the TCP
# segments the gateway's sockets sent and received (nstat in its
# namespace: the proxy's two connections); and the share
# of the time its busiest thread ran, and ran or waited for a CPU (near
# 1.0: that one thread never ran out of work, and more threads would pay
# where there are free cores).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
topology="$root/tests/e2e/topology.sh"
build="$(cd "${1:?usage: run.sh BUILD_DIR RESULTS_DIR}" && pwd)"
results="${2:?usage: run.sh BUILD_DIR RESULTS_DIR}"
mkdir -p "$results"
results="$(cd "$results" && pwd)"
SMOKESCREEN_VERSION=v0.1.0

if [ "$(id -u)" != 0 ]; then
  echo "bench/proxy: skipped (needs root for network namespaces)"
  exit 0
fi
for tool in nginx squid python3; do
  command -v "$tool" > /dev/null || { echo "bench/proxy: $tool missing (make deps-bench)" >&2; exit 1; }
done
egressd="$build/bin/egressd"
load="$build/bin/proxy_load"
[ -x "$egressd" ] && [ -x "$load" ] || { echo "bench/proxy: build egressd and proxy_load first" >&2; exit 1; }

rounds="${PROXY_BENCH_ROUNDS:-5}"
seconds="${PROXY_BENCH_SECONDS:-3}"
workers="${PROXY_BENCH_WORKERS:-32}"
client_threads="${PROXY_BENCH_CLIENT_THREADS:-1}"
bulk_seconds="${PROXY_BENCH_BULK_SECONDS:-2}"
idle_count="${PROXY_BENCH_IDLE:-1000}"
name=api.example.com
port=10080
cache="${XDG_CACHE_HOME:-$HOME/.cache}/egressd-bench"
ulimit -n 65536 2> /dev/null || true

work="$(mktemp -d /tmp/egressd-proxy-bench.XXXXXX)"
say() { echo "bench/proxy: $*" >&2; }
fail() {
  say "FAIL: $*"
  PROXY_BENCH_KEEP=1
  exit 1
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if [ -n "${E2E_NS_GW:-}" ] && [ -e "/run/netns/$E2E_NS_GW" ]; then stop_egressd TERM > /dev/null 2>&1; fi
  "$topology" down "$work" > /dev/null 2>&1
  [ -n "${bulk_dir:-}" ] && rm -f "$bulk_dir/bulk.bin" && rmdir "$bulk_dir" 2> /dev/null
  if [ "${PROXY_BENCH_KEEP:-0}" = 1 ]; then say "work directory kept: $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'say interrupted; exit 130' INT TERM HUP

# ---- tools ----------------------------------------------------------------------------
smokescreen=""
if [ -x "$cache/smokescreen-$SMOKESCREEN_VERSION" ]; then
  smokescreen="$cache/smokescreen-$SMOKESCREEN_VERSION"
elif ! command -v go > /dev/null; then
  say "smokescreen $SMOKESCREEN_VERSION: no Go toolchain to build it (make deps-bench): skipped"
else
  mkdir -p "$cache/gobin"
  if GOBIN="$cache/gobin" go install "github.com/stripe/smokescreen@$SMOKESCREEN_VERSION" > "$work/smokescreen-build.log" 2>&1; then
    mv "$cache/gobin/smokescreen" "$cache/smokescreen-$SMOKESCREEN_VERSION"
    smokescreen="$cache/smokescreen-$SMOKESCREEN_VERSION"
  else
    say "smokescreen $SMOKESCREEN_VERSION could not be built (module proxy?): skipped ($(tail -1 "$work/smokescreen-build.log"))"
  fi
fi

# ---- topology and the bench server ---------------------------------------------------------
export E2E_OWNER_PID=$$
"$topology" up "$work" || fail "topology up"
eval "$("$topology" env "$work")"
# shellcheck source=tests/e2e/lib.sh
. "$root/tests/e2e/lib.sh"
tune_for_connection_rate || fail "TIME-WAIT tuning"
in_gw sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
mkdir -p "$work/bench/tmp"
# The bulk download's file: 64 GiB of holes on tmpfs, which the server's
# sendfile reads as the shared zero page, at memory speed from the first
# byte and without filling the page cache. (On a disk file system each
# first read of a hole allocates and zeroes a page-cache page, about 1 ms
# per MiB here: that capped the server near 0.9 GB/s until the cache had
# caught up with the download, flattering whatever was measured beside
# `direct` in the early rounds.)
bulk_dir="$(mktemp -d /dev/shm/egressd-bench.XXXXXX 2> /dev/null || echo "$work/bench")"
truncate -s 64G "$bulk_dir/bulk.bin"
cat > "$work/bench/nginx.conf" << EOF
user root;
worker_processes 1;
pid $work/bench/nginx.pid;
error_log $work/logs/bench-nginx-error.log warn;
events { worker_connections 16384; multi_accept on; }
http {
  access_log off;
  client_body_temp_path $work/bench/tmp/body;
  proxy_temp_path $work/bench/tmp/proxy;
  fastcgi_temp_path $work/bench/tmp/fastcgi;
  uwsgi_temp_path $work/bench/tmp/uwsgi;
  scgi_temp_path $work/bench/tmp/scgi;
  default_type text/plain;
  sendfile on;
  server {
    listen $E2E_IP4_API_EXAMPLE_COM:$port backlog=8192;
    listen [$E2E_IP6_API_EXAMPLE_COM]:$port backlog=8192;
    location = /bulk { alias $bulk_dir/bulk.bin; }
    location / { return 200 "ok\n"; }
  }
}
EOF
setsid ip netns exec "$E2E_NS_INET" nginx -p "$work/bench" -c "$work/bench/nginx.conf" -g 'daemon off;' \
  > "$work/logs/bench-nginx.log" 2>&1 < /dev/null &
nginx_pid=$!
listening() { ip netns exec "$1" bash -c "exec 3<>/dev/tcp/$2/$3" 2> /dev/null; }
wait_until 50 listening "$E2E_NS_INET" "$E2E_IP4_API_EXAMPLE_COM" "$port" || fail "bench nginx"

# ---- the proxies -------------------------------------------------------------------------
mkdir -p "$work/rules"
cat > "$work/rules/bench.yaml" << EOF
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: bench, namespace: bench}
spec:
  targets: ["$name:$port"]
EOF
E2E_NFQUEUE=false write_egressd_config "$work/egressd.toml" "$work/rules"
printf '\n[proxy]\nlisten = ["%s:3128"]\nmax_connections = 100000\n' "$E2E_GW_POD_IP4" >> "$work/egressd.toml"
[ -n "${PROXY_BENCH_THREADS:-}" ] && printf 'threads = %s\n' "$PROXY_BENCH_THREADS" >> "$work/egressd.toml"
start_egressd "$egressd" "$work/egressd.toml" || fail "egressd did not start"
egressd_pid="$(cat "$E2E_PIDS/egressd.pid")"
# PROXY_BENCH_BASELINE: another egressd binary (say, main's) measured as
# config `baseline` in the same rounds, on :3130 with its own DNS port,
# metrics port and control socket: a change's before and after side by side.
baseline_pid=""
if [ -n "${PROXY_BENCH_BASELINE:-}" ]; then
  [ -x "$PROXY_BENCH_BASELINE" ] || fail "PROXY_BENCH_BASELINE=$PROXY_BENCH_BASELINE is not executable"
  sed -e "s/:53\"/:5354\"/g" -e "s/127.0.0.1:9153/127.0.0.1:9154/" -e "s#control.sock#control-baseline.sock#" \
    -e "s/:3128\"/:3130\"/" "$work/egressd.toml" > "$work/egressd-baseline.toml"
  sed -i "s/^upstreams = .*/upstreams = [\"$E2E_DNS4:53\"]/" "$work/egressd-baseline.toml"
  if [ -n "${PROXY_BENCH_BASELINE_THREADS:-}" ]; then
    sed -i '/^threads = /d' "$work/egressd-baseline.toml"
    printf 'threads = %s\n' "$PROXY_BENCH_BASELINE_THREADS" >> "$work/egressd-baseline.toml"
  fi
  setsid ip netns exec "$E2E_NS_GW" "$PROXY_BENCH_BASELINE" --config "$work/egressd-baseline.toml" \
    > "$work/logs/egressd-baseline.log" 2>&1 < /dev/null &
  baseline_pid=$!
  wait_until 100 grep -q egressd.started "$work/logs/egressd-baseline.log" ||
    fail "baseline egressd did not start: $(tail -3 "$work/logs/egressd-baseline.log")"
fi

squid_dir="$work/squid"
mkdir -p "$squid_dir"
cat > "$squid_dir/squid.conf" << EOF
# A plain CONNECT proxy allowing one name: Squid's usual egress setup.
http_port $E2E_GW_POD_IP4:3129
acl allowed dstdomain $name
acl CONNECT method CONNECT
http_access allow CONNECT allowed
http_access deny all
cache deny all
cache_mem 8 MB
dns_nameservers $E2E_DNS4
pid_filename $squid_dir/squid.pid
cache_log $squid_dir/cache.log
access_log stdio:$squid_dir/access.log
coredump_dir $squid_dir
netdb_filename none
pinger_enable off
logfile_rotate 0
shutdown_lifetime 0 seconds
max_filedescriptors 65536
cache_effective_user proxy
EOF
chmod 711 "$work"
chown -R proxy "$squid_dir"
# shellcheck disable=SC2016 # expanded by the inner shell
setsid ip netns exec "$E2E_NS_GW" bash -c 'ulimit -n "$(ulimit -Hn)"; exec squid -N -f "$1"' _ \
  "$squid_dir/squid.conf" > "$work/logs/squid.log" 2>&1 < /dev/null &
squid_pid=$!
wait_until 100 listening "$E2E_NS_GW" "$E2E_GW_POD_IP4" 3129 || fail "squid: $(tail -3 "$squid_dir/cache.log")"

configs="direct egressd squid"
[ -n "$baseline_pid" ] && configs="$configs baseline"
smokescreen_pid=""
if [ -n "$smokescreen" ]; then
  # Without client certificates Smokescreen has no role: allow_missing_role
  # applies the default ACL entry to every client.
  cat > "$work/smokescreen-acl.yaml" << EOF
---
version: v1
services: []
default:
  name: default
  project: bench
  action: enforce
  allowed_domains:
    - $name
EOF
  cat > "$work/smokescreen.yaml" << EOF
ip: $E2E_GW_POD_IP4
port: 4750
acl_file: $work/smokescreen-acl.yaml
allow_missing_role: true
allow_ranges: ["203.0.113.0/24", "2001:db8::/32"]
resolver_addresses: ["$E2E_DNS4:53"]
EOF
  setsid ip netns exec "$E2E_NS_GW" "$smokescreen" --config-file "$work/smokescreen.yaml" \
    > "$work/logs/smokescreen.log" 2>&1 < /dev/null &
  smokescreen_pid=$!
  if wait_until 100 listening "$E2E_NS_GW" "$E2E_GW_POD_IP4" 4750; then
    configs="$configs smokescreen"
  else
    say "smokescreen did not start: $(tail -3 "$work/logs/smokescreen.log")"
  fi
fi

proxy_of() {
  case $1 in
    direct) echo direct ;;
    egressd) echo "$E2E_GW_POD_IP4:3128" ;;
    baseline) echo "$E2E_GW_POD_IP4:3130" ;;
    squid) echo "$E2E_GW_POD_IP4:3129" ;;
    smokescreen) echo "$E2E_GW_POD_IP4:4750" ;;
  esac
}
pid_of() {
  case $1 in
    egressd) echo "$egressd_pid" ;;
    baseline) echo "$baseline_pid" ;;
    squid) pgrep -P "$squid_pid" squid | head -1 || echo "$squid_pid" ;;
    smokescreen) echo "$smokescreen_pid" ;;
  esac
}
# `direct` connects over IPv6, as egressd's upstream leg does (the name has
# both families and egressd tries AAAA first, RFC 8305; so does Smokescreen;
# squid 5 reaches the server over IPv4 here), so that egressd's bulk and
# tunnel figures are the same path with and without a proxy. IPv6 runs a
# few per cent slower than IPv4 on this topology's veths.
target() { if [ "$1" = direct ]; then echo "[$E2E_IP6_API_EXAMPLE_COM]:$port"; else echo "$name:$port"; fi; }
rss_kib() { # the resident memory of a process and its children
  local pid=$1 total=0 p
  [ -n "$pid" ] || { echo 0; return; }
  for p in $pid $(pgrep -P "$pid"); do total=$((total + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2> /dev/null || echo 0))); done
  echo "$total"
}

# CPU time a process and its children (every thread) have run, in ns
# (schedstat): the proxy's own cost per tunnel, steadier than tunnels/s on
# a shared machine.
cpu_ns() {
  local pid=$1 total=0 p t
  [ -n "$pid" ] || { echo 0; return; }
  for p in $pid $(pgrep -P "$pid"); do
    for t in /proc/"$p"/task/*/schedstat; do
      total=$((total + $(cut -d' ' -f1 "$t" 2> /dev/null || echo 0)))
    done
  done
  echo "$total"
}
# "TID CPU_NS WAIT_NS NAME" for every thread of a process and its children
# (schedstat: time on a CPU, time runnable but waiting for one), then the
# busiest thread between two such lists: "cpu_ns wait_ns name".
thread_cpu() {
  local pid=$1 p t
  [ -n "$pid" ] || return 0
  for p in $pid $(pgrep -P "$pid"); do
    for t in /proc/"$p"/task/*; do
      echo "${t##*/} $(cut -d' ' -f1,2 "$t/schedstat" 2> /dev/null || echo 0 0) $(cat "$t/comm" 2> /dev/null | tr -c 'a-zA-Z0-9_.\n-' _)"
    done
  done
}
busiest_thread() { # BEFORE_FILE AFTER_FILE
  awk 'NR == FNR {cpu[$1] = $2; wait[$1] = $3; next}
       {d = $2 - cpu[$1]; if (d > max) {max = d; waited = $3 - wait[$1]; name = $4}}
       END {printf "%.0f %.0f %s\n", max, waited, name}' "$1" "$2"
}
tunnels_run() { # CONFIG SECONDS WORKERS: the client's line
  in_pod "$load" tunnels "$(proxy_of "$1")" "$(target "$1")" "$name" "$2" "$3" "$client_threads" 3
}

# ---- probes: each proxy serves the name and refuses another ------------------------------------
for c in $configs; do
  out="$(tunnels_run "$c" 0.5 1)"
  case $out in tunnels_per_s=0.0* | *" errors="[1-9]*) fail "$c does not serve the bench name cleanly: $out" ;; esac
  [ "$c" = direct ] && continue
  if in_pod "$load" idle "$(proxy_of "$c")" "other.example.com:$port" 1 0 | grep -q 'open=1'; then
    fail "$c let a CONNECT to a name it does not allow through"
  fi
done

# ---- rounds ----------------------------------------------------------------------------------
raw="$work/raw.txt"
: > "$raw"
# 8 engineers share this machine: say how busy it was.
loadavg_start="$(cut -d' ' -f1-3 /proc/loadavg)"
say "load average at start: $loadavg_start"
# One pass not counted: the first transfers after start-up ran slower for
# every config (cold caches, the kernel's first TIME-WAIT
# wave), and the rotation puts egressd first in round 1, so round 1 had
# charged that to egressd alone.
for c in $configs; do
  tunnels_run "$c" 1 "$workers" > /dev/null
  in_pod "$load" bulk "$(proxy_of "$c")" "$(target "$c")" "$name" /bulk 1 > /dev/null
done
for r in $(seq "$rounds"); do
  order="$(echo "$configs" | tr ' ' '\n' | awk -v r="$r" '{a[NR]=$0} END {for (i=0;i<NR;i++) print a[(i+r)%NR+1]}')"
  for c in $order; do
    thread_cpu "$(pid_of "$c")" > "$work/threads-before"
    cpu_before="$(cpu_ns "$(pid_of "$c")")"
    nginx_before="$(cpu_ns "$nginx_pid")"
    perf_pid=""
    if [ -n "${PROXY_BENCH_PERF:-}" ] && [ "$r" = 1 ] && [ "$c" != direct ]; then
      mkdir -p "$PROXY_BENCH_PERF"
      perf record -q -e cpu-clock -g -p "$(pid_of "$c")" -o "$PROXY_BENCH_PERF/perf-$c.data" \
        -- sleep "$seconds" > /dev/null 2>&1 &
      perf_pid=$!
    fi
    syscalls_pid=""
    if [ "${PROXY_BENCH_SYSCALLS:-0}" = 1 ] && [ "$c" != direct ]; then
      perf stat -e raw_syscalls:sys_enter -x, -o "$work/syscalls-$c.txt" -p "$(pid_of "$c")" \
        -- sleep "$seconds" > /dev/null 2>&1 &
      syscalls_pid=$!
    fi
    NSTAT_HISTORY="$work/nstat.history" in_gw nstat -n
    t="$(tunnels_run "$c" "$seconds" "$workers")"
    segments="$(NSTAT_HISTORY="$work/nstat.history" in_gw nstat -z TcpOutSegs TcpInSegs |
      awk '$1 == "TcpOutSegs" {o = $2} $1 == "TcpInSegs" {i = $2} END {printf "gw_out_segments=%d gw_in_segments=%d", o, i}')"
    [ -n "$perf_pid" ] && wait "$perf_pid"
    syscalls=""
    if [ -n "$syscalls_pid" ]; then
      wait "$syscalls_pid"
      syscalls="syscalls=$(awk -F, '$3 ~ /sys_enter/ {print $1}' "$work/syscalls-$c.txt")"
    fi
    cpu_after="$(cpu_ns "$(pid_of "$c")")"
    nginx_after="$(cpu_ns "$nginx_pid")"
    thread_cpu "$(pid_of "$c")" > "$work/threads-after"
    read -r busiest_ns busiest_wait_ns busiest_name <<< "$(busiest_thread "$work/threads-before" "$work/threads-after")"
    b="$(in_pod "$load" bulk "$(proxy_of "$c")" "$(target "$c")" "$name" /bulk "$bulk_seconds")"
    echo "round=$r config=$c $t $b $segments $syscalls tunnel_cpu_ns=$((cpu_after - cpu_before))" \
      "nginx_cpu_ns=$((nginx_after - nginx_before)) busiest_thread_ns=${busiest_ns:-0}" \
      "busiest_thread_wait_ns=${busiest_wait_ns:-0}" \
      "busiest_thread=${busiest_name:-none}" | tee -a "$raw" >&2
  done
done
# Memory per idle tunnel: the proxy's resident memory, and the kernel's
# (slab: sockets, pipes, their files), with PROXY_BENCH_IDLE tunnels open
# and idle, less before, per tunnel. The kernel's share counts the client's
# and the server's sockets too: `direct` (the same connections without a
# proxy) measures those, and is subtracted.
slab_kib() { awk '/^Slab:/ {print $2}' /proc/meminfo; }
for c in $configs; do
  pid="$(pid_of "$c")"
  before="$(rss_kib "$pid")"
  slab_before="$(slab_kib)"
  in_pod "$load" idle "$(proxy_of "$c")" "$(target "$c")" "$idle_count" 4 > "$work/idle-$c.out" &
  idle_pid=$!
  sleep 3
  during="$(rss_kib "$pid")"
  slab_during="$(slab_kib)"
  wait "$idle_pid"
  echo "idle config=$c $(cat "$work/idle-$c.out") rss_before_kib=$before rss_during_kib=$during" \
    "slab_before_kib=$slab_before slab_during_kib=$slab_during" | tee -a "$raw" >&2
  sleep 1 # the idle connections are gone before the next one measures
done
loadavg_end="$(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$raw" "$results/proxy.json" "$rounds" "$seconds" "$workers" "$idle_count" "$loadavg_start" "$loadavg_end" \
  "$client_threads" << 'PY'
import json, re, statistics, sys
raw, out, rounds, seconds, workers, idle, load_start, load_end, client_threads = sys.argv[1:10]
runs, idle_rows = {}, {}
for line in open(raw):
    fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
    if line.startswith("idle"):
        opened = int(fields.get("open", 0)) or 1
        idle_rows[fields["config"]] = {
            "tunnels": opened,
            "rss_kib_per_tunnel": (int(fields["rss_during_kib"]) - int(fields["rss_before_kib"])) / opened if fields["config"] != "direct" else None,
            "slab_kib_per_tunnel": (int(fields["slab_during_kib"]) - int(fields["slab_before_kib"])) / opened}
        continue
    r = runs.setdefault(fields["config"], {"tunnels_per_s": [], "bulk_bytes_per_s": [], "errors": 0})
    r["tunnels_per_s"].append(float(fields["tunnels_per_s"]))
    r["bulk_bytes_per_s"].append(float(fields.get("bytes_per_s", 0)))
    r["errors"] += int(fields["errors"])
    tunnels_done = float(fields.get("tunnels", float(fields["tunnels_per_s"]) * float(seconds)))
    for kind in ("connect", "proxy_status", "status", "length", "io", "timeout"):
        r.setdefault("errors_by_kind", {}).setdefault(kind, 0)
        r["errors_by_kind"][kind] += int(fields.get("errors_" + kind, 0))
    if tunnels_done > 0:
        if fields.get("tunnel_cpu_ns") and fields["config"] != "direct":
            r.setdefault("cpu_us_per_tunnel", []).append(int(fields["tunnel_cpu_ns"]) / tunnels_done / 1000)
            # The share of one core the proxy's busiest thread used.
            # Over the client's SECONDS: the snapshots around it add only
            # the proxy's idle time.
            window = float(seconds) * 1e9
            r.setdefault("busiest_thread_core_share", []).append(int(fields["busiest_thread_ns"]) / window)
            # ... and the share of the time it wanted one (ran, or was
            # runnable and waited): near 1.0 it never ran out of work, so a
            # core of its own would be the limit even on a shared machine.
            r.setdefault("busiest_thread_demand", []).append(
                (int(fields["busiest_thread_ns"]) + int(fields.get("busiest_thread_wait_ns", 0))) / window)
            r["busiest_thread"] = fields.get("busiest_thread")
        if fields.get("client_cpu_ns"):
            r.setdefault("client_cpu_us_per_tunnel", []).append(int(fields["client_cpu_ns"]) / tunnels_done / 1000)
        if fields.get("gw_out_segments") and fields["config"] != "direct":
            # TCP segments the gateway's sockets sent and received per
            # tunnel (nstat in its namespace; forwarding is not counted).
            r.setdefault("gateway_segments_out_per_tunnel", []).append(int(fields["gw_out_segments"]) / tunnels_done)
            r.setdefault("gateway_segments_in_per_tunnel", []).append(int(fields["gw_in_segments"]) / tunnels_done)
        if fields.get("syscalls", "").isdigit() and fields["config"] != "direct":
            # The proxy's system calls over the phase (perf stat), per tunnel.
            r.setdefault("syscalls_per_tunnel", []).append(int(fields["syscalls"]) / tunnels_done)
        if fields.get("nginx_cpu_ns"):
            r.setdefault("nginx_cpu_us_per_tunnel", []).append(int(fields["nginx_cpu_ns"]) / tunnels_done / 1000)
result = {"bench": "proxy", "rounds": int(rounds), "seconds": float(seconds), "workers": int(workers),
          "client": "bench/proxy/load.c (proxy_load)", "client_threads": int(client_threads),
          "load_average": {"start": load_start, "end": load_end},
          "configs": {}, "ratios": {}, "goals": {}}
for c, r in runs.items():
    result["configs"][c] = {"tunnels_per_s_median": statistics.median(r["tunnels_per_s"]),
                            "bulk_bytes_per_s_median": statistics.median(r["bulk_bytes_per_s"]),
                            "errors": r["errors"], "rounds": r}
    for key in ("cpu_us_per_tunnel", "client_cpu_us_per_tunnel", "nginx_cpu_us_per_tunnel",
                "gateway_segments_out_per_tunnel", "gateway_segments_in_per_tunnel", "syscalls_per_tunnel"):
        if r.get(key):
            result["configs"][c][key + "_median"] = round(statistics.median(r[key]), 1)
    if r.get("busiest_thread_core_share"):
        result["configs"][c]["busiest_thread_core_share_median"] = round(statistics.median(r["busiest_thread_core_share"]), 2)
        result["configs"][c]["busiest_thread"] = r.get("busiest_thread")
        result["configs"][c]["busiest_thread_demand_median"] = round(statistics.median(r["busiest_thread_demand"]), 2)
# Memory per idle tunnel: resident memory, plus the kernel's share (the
# slab growth beyond what the same connections cost without a proxy).
direct_slab = idle_rows.get("direct", {}).get("slab_kib_per_tunnel")
for c, row in idle_rows.items():
    if c == "direct":
        continue
    kernel = row["slab_kib_per_tunnel"] - direct_slab if direct_slab is not None else None
    result["configs"][c]["idle"] = {
        "tunnels": row["tunnels"], "rss_kib_per_tunnel": round(row["rss_kib_per_tunnel"], 2),
        "kernel_kib_per_tunnel": None if kernel is None else round(kernel, 2),
        "kib_per_idle_tunnel": round(row["rss_kib_per_tunnel"] + (kernel or 0), 2)}
# Ratios: egressd against each other config in the same round (they ran
# back to back), then the median over the rounds: a busy minute on the
# shared machine moves both sides of one ratio, not the median.
e = "egressd"
def per_round(other, key):
    mine, theirs = runs.get(e, {}).get(key, []), runs.get(other, {}).get(key, [])
    ratios = [a / b for a, b in zip(mine, theirs) if b]
    return round(statistics.median(ratios), 3) if ratios else None
for other in ("squid", "smokescreen", "direct", "baseline"):
    if other not in runs:
        continue
    result["ratios"][f"egressd_vs_{other}_tunnels"] = per_round(other, "tunnels_per_s")
    result["ratios"][f"egressd_vs_{other}_bulk"] = per_round(other, "bulk_bytes_per_s")
ratios = result["ratios"]
goal = lambda key, target: {"target": target, "value": ratios.get(key), "pass": ratios.get(key) is not None and ratios[key] >= target}
result["goals"]["tunnels_vs_squid_ge_2"] = goal("egressd_vs_squid_tunnels", 2.0)
result["goals"]["tunnels_vs_smokescreen_ge_1.5"] = goal("egressd_vs_smokescreen_tunnels", 1.5)
result["goals"]["bulk_vs_direct_ge_0.9"] = goal("egressd_vs_direct_bulk", 0.9)
kib = result["configs"].get(e, {}).get("idle", {}).get("kib_per_idle_tunnel")
result["goals"]["idle_tunnel_le_16_kib"] = {"target": 16, "value": kib, "pass": kib is not None and kib <= 16}
json.dump(result, open(out, "w"), indent=2, sort_keys=True)
print(f"load average {load_start} at start, {load_end} at end; {rounds} alternating rounds, medians of per-round ratios")
print(f"bulk on one tunnel: egressd {ratios.get('egressd_vs_direct_bulk')}x direct (goal >= 0.9)")
print(f"new tunnels/s: egressd {ratios.get('egressd_vs_squid_tunnels')}x squid (goal >= 2), "
      f"{ratios.get('egressd_vs_smokescreen_tunnels')}x smokescreen (goal >= 1.5)")
if "baseline" in runs:
    print(f"against PROXY_BENCH_BASELINE: tunnels/s {ratios.get('egressd_vs_baseline_tunnels')}x, "
          f"bulk {ratios.get('egressd_vs_baseline_bulk')}x")
for c in ("direct", "egressd", "baseline", "squid", "smokescreen"):
    row = result["configs"].get(c, {})
    if c not in runs:
        continue
    proxy = row.get("cpu_us_per_tunnel_median")
    print(f"CPU per tunnel (us, median over rounds), {c}: "
          + (f"proxy {proxy} (busiest thread {row.get('busiest_thread')} ran {row.get('busiest_thread_core_share_median')} "
             f"of the time, ran or waited for a CPU {row.get('busiest_thread_demand_median')}), " if proxy is not None else "")
          + f"client {row.get('client_cpu_us_per_tunnel_median')}, nginx {row.get('nginx_cpu_us_per_tunnel_median')}; "
          + (f"gateway TCP segments per tunnel out {row.get('gateway_segments_out_per_tunnel_median')} "
             f"in {row.get('gateway_segments_in_per_tunnel_median')}; " if proxy is not None else "")
          + (f"system calls per tunnel {row['syscalls_per_tunnel_median']}; " if row.get("syscalls_per_tunnel_median") else "")
          + f"errors {row['errors']} {runs[c].get('errors_by_kind')}")
for c in ("egressd", "baseline", "squid", "smokescreen"):
    i = result["configs"].get(c, {}).get("idle")
    if i:
        print(f"memory per idle tunnel, {c}: {i['kib_per_idle_tunnel']} KiB "
              f"(resident {i['rss_kib_per_tunnel']} + kernel {i['kernel_kib_per_tunnel']}; goal for egressd <= 16)")
print(json.dumps({"ratios": ratios, "goals": result["goals"]}, indent=1))
PY

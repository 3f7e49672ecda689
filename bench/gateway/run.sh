#!/usr/bin/env bash
# bench/gateway: issue 7's gateway benchmarks on the end-to-end topology
# (tests/e2e/topology.sh: pod -> gateway -> internet, all in network
# namespaces this script creates and removes). Configurations of the
# gateway, measured side by side in the same run, alternating in short
# rounds (the order rotates each round), medians reported:
#
#   unfiltered  plain routing, no egressd and no EGRESSD chain (the limit)
#   egressd     build/bin/egressd enforcing one rule set that allows the
#               bench name; the pod's resolver is egressd, so the DNS binding
#               exists (wrk resolves the name through it)
#   egressd-world the same egressd enforcing world access instead: one rule
#               set `*:10080`, `*:10443` (the bench's ports), so every
#               connection takes the world-access path (public destination,
#               final allow at the SYN; issue 19's internal-address check on
#               each). The bench's internet is documentation space, declared
#               public with rules.public_cidrs (tests/e2e/lib.sh's
#               write_egressd_config does that for every configuration).
#   egressd-base  the same named-rule configuration run by another egressd
#               binary (GATEWAY_BENCH_EGRESSD_BASE, e.g. main's build): a
#               change is measured against the build before it in the same
#               run, alternating round by round (added to the configurations
#               when the variable is set)
#   squid       Debian's squid-openssl doing the same job transparently:
#               iptables REDIRECT to `http_port intercept` (dstdomain allow
#               list) and `https_port intercept ssl-bump` (peek at step 1,
#               splice an ssl::server_name allow list, terminate the rest)
#
# Per configuration and round:
#   - new connections/s, one request per connection (wrk -H 'Connection:
#     close'), plain HTTP (Host inspection) and HTTPS (SNI inspection;
#     nginx with the topology's ECDSA P-256 certificate, TLS 1.3);
#   - connect latency: GATEWAY_BENCH_LATENCY_CONNS fresh connections one
#     after the other (curl, full handshake, no session reuse), time from
#     the start of connect() to the first response byte;
#   - bulk: bytes/s of one HTTP download on one connection (unfiltered and
#     egressd only: once decided, an egressd-world connection stays in the
#     kernel exactly like an egressd one);
#   - egressd configurations: packets its NFQUEUE handed to user space (and got a
#     verdict for) per connection and per second;
#   - egressd configurations: rule evaluations of its chains per connection
#     (chain_cost.py, from the rules' counters: every rule a packet walks
#     past costs it in the kernel);
#   - CPU time per connection of the gateway's processes (egressd, squid)
#     and of the whole path (wrk + nginx + gateway), less sensitive to
#     other load on the machine than the rates.
# Before measuring, each configuration is probed: the allowed name answers
# 200 over HTTP and HTTPS; a request with an SNI no named rule allows (to
# the same address) passes only unfiltered and under world access; a
# request to the cloud metadata address (169.254.169.254, where the bench
# nginx listens too) passes only unfiltered. A configuration that fails a probe,
# completes no request, or has more than 1 % errors fails the run (exit 1).
# Missed performance goals do not (they are recorded as pass=false), unless
# GATEWAY_BENCH_STRICT=1.
#
# Usage: bench/gateway/run.sh BUILD_DIR RESULTS_DIR   (root; writes
# RESULTS_DIR/gateway.json). Knobs (environment), defaults in brackets:
#   GATEWAY_BENCH_ROUNDS [5]  GATEWAY_BENCH_SECONDS [3] (per wrk run)
#   GATEWAY_BENCH_THREADS [2] GATEWAY_BENCH_CONNECTIONS [64] (wrk -t/-c)
#   GATEWAY_BENCH_SYSCALLS [0] (1: one more HTTP rate run per egressd
#   configuration with egressd's syscalls and context switches counted
#   (`perf stat` on the syscall tracepoints, all threads), left out of the
#   figures: RESULTS_DIR/syscalls-CONFIG-http.per-connection.txt)
#   GATEWAY_BENCH_LATENCY_CONNS [200]  GATEWAY_BENCH_BULK_SECONDS [2]
#   GATEWAY_BENCH_QUEUES ["[0]"]  GATEWAY_BENCH_LOG_LEVEL [info] (egressd)
#   GATEWAY_BENCH_NGINX_WORKERS [nproc]  GATEWAY_BENCH_CONFIGS ["unfiltered
#   egressd egressd-world squid"]  GATEWAY_BENCH_KEEP [0] (keep the work directory)
#   GATEWAY_BENCH_STRICT [0]
#   GATEWAY_BENCH_EGRESSD_BASE [unset] (a second egressd binary: config egressd-base)
#   GATEWAY_BENCH_PERF [0] (1: after the rounds, one more HTTP rate run per
#   configuration, unfiltered included, under `perf record -a -g`, kernel
#   included, left out of the figures; the report's top symbols go to
#   RESULTS_DIR/perf-CONFIG-http.txt, the data file is removed unless
#   GATEWAY_BENCH_KEEP=1)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
topology="$root/tests/e2e/topology.sh"
build="$(cd "${1:?usage: run.sh BUILD_DIR RESULTS_DIR}" && pwd)"
results="${2:?usage: run.sh BUILD_DIR RESULTS_DIR}"
mkdir -p "$results"
results="$(cd "$results" && pwd)"

if [ "$(id -u)" != 0 ]; then
  echo "bench/gateway: skipped (needs root for network namespaces)"
  exit 0
fi
for tool in wrk nginx squid curl dig iptables iptables-save ip python3 openssl; do
  command -v "$tool" > /dev/null || { echo "bench/gateway: $tool missing (make deps-bench)" >&2; exit 1; }
done
egressd="$build/bin/egressd"
[ -x "$egressd" ] || { echo "bench/gateway: $egressd missing (build it first)" >&2; exit 1; }

rounds="${GATEWAY_BENCH_ROUNDS:-5}"
seconds="${GATEWAY_BENCH_SECONDS:-3}"
threads="${GATEWAY_BENCH_THREADS:-2}"
conns="${GATEWAY_BENCH_CONNECTIONS:-64}"
lat_conns="${GATEWAY_BENCH_LATENCY_CONNS:-200}"
bulk_seconds="${GATEWAY_BENCH_BULK_SECONDS:-2}"
queues="${GATEWAY_BENCH_QUEUES:-[0]}"
log_level="${GATEWAY_BENCH_LOG_LEVEL:-info}"
nginx_workers="${GATEWAY_BENCH_NGINX_WORKERS:-$(nproc)}"
configs="${GATEWAY_BENCH_CONFIGS:-unfiltered egressd egressd-world squid}"
egressd_base="${GATEWAY_BENCH_EGRESSD_BASE:-}"
if [ -n "$egressd_base" ]; then
  [ -x "$egressd_base" ] || { echo "bench/gateway: GATEWAY_BENCH_EGRESSD_BASE=$egressd_base is not executable" >&2; exit 1; }
  [[ " $configs " == *" egressd-base "* ]] || configs="$configs egressd-base"
fi
perf_on="${GATEWAY_BENCH_PERF:-0}"
if [ "$perf_on" = 1 ]; then
  command -v perf > /dev/null || { echo "bench/gateway: GATEWAY_BENCH_PERF=1 needs perf (linux-perf)" >&2; exit 1; }
fi
# The bench server: its own nginx on the api.example.com address, on ports
# no other service of the topology uses, without access logs (the server's
# logging is not what is measured).
name=api.example.com
denied_name=other.example.com   # no named rule allows it (world access does)
# The cloud metadata address: internal, so never covered by world access
# (issue 19). The bench nginx listens there too, so the probe can tell a
# refused connection from a missing server.
metadata_ip=169.254.169.254
http_port=10080 https_port=10443
squid_http_port=3128 squid_https_port=3129

started=$(date +%s)
loadavg_start="$(cut -d' ' -f1-3 /proc/loadavg)"
work="$(mktemp -d /tmp/egressd-gateway-bench.XXXXXX)"
raw="$work/raw"
mkdir -p "$raw"
failed=0

say() { echo "bench/gateway: $*" >&2; }
fail() {
  say "FAIL: $*"
  failed=1
  exit 1
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if [ -n "${E2E_NS_GW:-}" ] && [ -e "/run/netns/$E2E_NS_GW" ]; then
    stop_egressd TERM > /dev/null 2>&1
    # (both egressd configs install the same chain and sets)
    ip netns exec "$E2E_NS_GW" "$egressd" --uninstall --config "$work/egressd.toml" > /dev/null 2>&1
  fi
  # Kills every process in the three namespaces (nginx, squid, egressd, a
  # wrk or curl still running) and deletes the namespaces with their
  # iptables rules, queues and conntrack tables.
  "$topology" down "$work" > /dev/null 2>&1
  [ -n "${bulk_dir:-}" ] && rm -f "$bulk_dir/bulk.bin" && rmdir "$bulk_dir" 2> /dev/null
  if [ "${GATEWAY_BENCH_KEEP:-0}" = 1 ] || [ "$failed" = 1 ]; then
    say "work directory kept: $work (logs in $work/logs, raw outputs in $raw)"
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'say interrupted; exit 130' INT TERM HUP

# ---- topology --------------------------------------------------------------
export E2E_OWNER_PID=$$   # `topology.sh gc` removes it if this shell dies
"$topology" up "$work" || fail "topology up"
eval "$("$topology" env "$work")"
# shellcheck source=tests/e2e/lib.sh
. "$root/tests/e2e/lib.sh"

# One request per connection at 10k+/s: the pod closes first, so let it
# reuse ports in TIME-WAIT, and keep the gateway's conntrack table from
# filling with closed connections (its TIME-WAIT entries otherwise live
# 120 s). Conntrack is switched on in the gateway for every configuration,
# as on any node with kube-proxy: an empty mangle chain behind a conntrack
# match (egressd's connmark and squid's NAT need it anyway; without this,
# "unfiltered" would be measured without conntrack only until the first
# other configuration ran).
in_gw iptables -t mangle -N EGB_CONNTRACK || fail "mangle chain"
in_gw iptables -t mangle -A PREROUTING -m conntrack --ctstate INVALID -j EGB_CONNTRACK || fail "conntrack rule"
tune_for_connection_rate || fail "TIME-WAIT tuning"

# ---- the bench server --------------------------------------------------------
mkdir -p "$work/bench/tmp"
in_inet ip addr add "$metadata_ip/32" dev eth0 || fail "metadata address"
# The bulk download's file: 64 GiB of holes on tmpfs, which nginx's
# sendfile reads as the shared zero page, at memory speed from the first
# byte and without filling the page cache (on a disk file system each
# first read of a hole allocates and zeroes a page-cache page, about 1 ms
# per MiB here, which made the early rounds measure the server).
bulk_dir="$(mktemp -d /dev/shm/egressd-bench.XXXXXX 2> /dev/null || echo "$work/bench")"
truncate -s 64G "$bulk_dir/bulk.bin"
cat > "$work/bench/nginx.conf" << EOF
user root;
worker_processes $nginx_workers;
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
  tcp_nopush on;
  ssl_protocols TLSv1.2 TLSv1.3;
  server {
    listen $E2E_IP4_API_EXAMPLE_COM:$http_port backlog=8192;
    listen $E2E_IP4_API_EXAMPLE_COM:$https_port ssl backlog=8192;
    listen $metadata_ip:$http_port;
    listen $metadata_ip:$https_port ssl;
    server_name $name;
    ssl_certificate $E2E_CERTS/$name.pem;
    ssl_certificate_key $E2E_CERTS/$name.key;
    location = /bulk { alias $bulk_dir/bulk.bin; }
    location / { return 200 "ok\n"; }
  }
}
EOF
in_inet sysctl -qw net.core.somaxconn=8192
setsid ip netns exec "$E2E_NS_INET" nginx -e "$work/logs/bench-nginx-error.log" -p "$work/bench" \
  -c "$work/bench/nginx.conf" -g 'daemon off;' > "$work/logs/bench-nginx.log" 2>&1 < /dev/null &
listening() { ip netns exec "$1" bash -c "exec 3<>/dev/tcp/$2/$3"; }
wait_until 50 listening "$E2E_NS_INET" "$E2E_IP4_API_EXAMPLE_COM" "$https_port" \
  || fail "bench nginx did not start: $(cat "$work/logs/bench-nginx.log" "$work/logs/bench-nginx-error.log" 2> /dev/null)"

# ---- squid (started once; its REDIRECT rules are switched per round) --------
squid_dir="$work/squid"
mkdir -p "$squid_dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=egressd bench squid CA" -keyout "$squid_dir/ca.key" -out "$squid_dir/ca.pem" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  2> /dev/null || fail "squid CA"
cat > "$squid_dir/squid.conf" << EOF
# Transparent egress filter doing egressd's job: HTTP by Host (dstdomain),
# HTTPS by SNI (peek at the ClientHello, splice allowed names, terminate
# the rest); nothing is decrypted, nothing cached.
http_port 127.0.0.1:3127
http_port $squid_http_port intercept
https_port $squid_https_port intercept ssl-bump tls-cert=$squid_dir/ca.pem tls-key=$squid_dir/ca.key generate-host-certificates=off
acl pod src $E2E_POD_NET4
acl CONNECT method CONNECT
acl bench_http dstdomain $name
acl bench_sni ssl::server_name $name
acl step1 at_step SslBump1
ssl_bump peek step1
ssl_bump splice bench_sni
ssl_bump terminate all
# intercepted TLS arrives as a CONNECT to the original address; ssl_bump
# above decides by SNI
http_access allow pod CONNECT
http_access allow pod bench_http
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
cache_effective_user proxy
EOF
squid_pid=""
if [[ " $configs " == *" squid "* ]]; then
  # squid drops to user proxy: it must reach its own directory.
  chmod 711 "$work"
  chown -R proxy "$squid_dir"
  in_gw squid -k parse -f "$squid_dir/squid.conf" > "$squid_dir/parse.log" 2>&1 \
    || fail "squid.conf: $(grep -iE 'fatal|error' "$squid_dir/parse.log")"
  # shellcheck disable=SC2016 # expanded by the inner shell
  setsid ip netns exec "$E2E_NS_GW" bash -c 'ulimit -n "$(ulimit -Hn)"; exec squid -N -f "$1"' _ \
    "$squid_dir/squid.conf" > "$work/logs/squid.log" 2>&1 < /dev/null &
  squid_pid=$!
  wait_until 100 listening "$E2E_NS_GW" 127.0.0.1 "$squid_https_port" \
    || fail "squid did not start: $(tail -5 "$work/logs/squid.log" "$squid_dir/cache.log" 2> /dev/null)"
  in_gw iptables -t nat -N EGB_SQUID || fail "nat chain"
  in_gw iptables -t nat -A EGB_SQUID -p tcp --dport "$http_port" -j REDIRECT --to-ports "$squid_http_port"
  in_gw iptables -t nat -A EGB_SQUID -p tcp --dport "$https_port" -j REDIRECT --to-ports "$squid_https_port"
fi

# ---- egressd's rules and config ------------------------------------------------
# egressd: the bench name on the bench's ports. egressd-world: world access
# on the same ports (as `*:80`, `*:443` would be on the usual ones). Both
# configs declare the bench's internet (documentation space) public through
# rules.public_cidrs (write_egressd_config), as an operator would for a
# network of their own; the metadata address stays internal.
mkdir -p "$work/rules" "$work/rules-world"
cat > "$work/rules/bench.yaml" << EOF
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: bench, namespace: bench}
spec:
  targets:
  - $name:$http_port
  - $name:$https_port
EOF
cat > "$work/rules-world/world.yaml" << EOF
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: world-access, namespace: bench}
spec:
  targets:
  - "*:$http_port"
  - "*:$https_port"
EOF
for c in egressd:rules egressd-world:rules-world egressd-base:rules; do
  E2E_QUEUES="$queues" E2E_LOG_LEVEL="$log_level" write_egressd_config "$work/${c%%:*}.toml" "$work/${c#*:}"
  bin=$egressd
  if [ "${c%%:*}" = egressd-base ]; then
    [ -n "$egressd_base" ] || continue
    bin=$egressd_base
    # An older base build does not know keys added since (it refuses them
    # as "unknown key"): leave those lines out of its configuration.
    "$bin" --check-config --config "$work/egressd-base.toml" 2>&1 \
      | sed -nE 's/^[^:]+:([0-9]+):[0-9]+: ([a-z_.]+): unknown key$/\1 \2/p' > "$work/base-unknown-keys"
    while read -r line key; do
      say "egressd-base: its build does not know $key: left out of its configuration"
      sed -i "${line}s/^/# (unknown to the base build) /" "$work/egressd-base.toml"
    done < "$work/base-unknown-keys"
  fi
  "$bin" --check-config --config "$work/${c%%:*}.toml" > "$work/logs/check-config.log" 2>&1 \
    || fail "egressd --check-config (${c%%:*}): $(cat "$work/logs/check-config.log")"
done

# ---- configurations ----------------------------------------------------------------
# (iptables-save's output read whole first: grep -q stops at the first match,
# and under pipefail the writer's SIGPIPE would make the pipe fail.)
diverted() { grep -qE -- '-j (NFQUEUE|EGB_SQUID)|^:EGRESSD' <<< "$(in_gw iptables-save)"; }

enable_unfiltered() {
  diverted && fail "unfiltered: the gateway still diverts traffic: $(in_gw iptables-save | grep -E 'NFQUEUE|EGB_SQUID|EGRESSD')"
  set_pod_resolver "$E2E_DNS4"
}
disable_unfiltered() { :; }

# enable_egressd [CFG]: egressd with $work/CFG.toml (egressd, egressd-world,
# egressd-base: the latter run by $egressd_base)
enable_egressd() {
  local cfg=${1:-egressd} bin=$egressd
  [ "$cfg" = egressd-base ] && bin=$egressd_base
  diverted && fail "$cfg: a diversion is left from another configuration"
  # this start's lines of the log (appended across starts) begin after this
  touch "$E2E_LOGS/egressd.log"
  log_from=$(($(wc -l < "$E2E_LOGS/egressd.log") + 1))
  set_pod_resolver "$E2E_GW_POD_IP4"
  start_egressd "$bin" "$work/$cfg.toml" || fail "$cfg: egressd did not start (log: $E2E_LOGS/egressd.log)"
  grep -q -- '-j NFQUEUE' <<< "$(in_gw iptables-save)" || fail "$cfg: egressd installed no NFQUEUE rule"
  # The binding: the pod resolves the name through egressd (wrk resolves it
  # again at start, through the same resolver). World access needs none,
  # but the lookup goes through egressd all the same.
  [ "$(dns_answers "$name" A)" = "$E2E_IP4_API_EXAMPLE_COM" ] || fail "$cfg: $name does not resolve through egressd"
}
disable_egressd() {
  local cfg=${1:-egressd}
  egressd_running || fail "$cfg: egressd died during the measurement: $(tail -5 "$E2E_LOGS/egressd.log")"
  stop_egressd TERM || fail "$cfg: egressd did not stop on SIGTERM"
  in_gw "$egressd" --uninstall --config "$work/$cfg.toml" >> "$E2E_LOGS/egressd.log" 2>&1 \
    || fail "$cfg: egressd --uninstall"
  grep -qE -- '-j NFQUEUE|^:EGRESSD' <<< "$(in_gw iptables-save)" && fail "$cfg: egressd --uninstall left rules behind"
}
enable_egressd_world() { enable_egressd egressd-world; }
disable_egressd_world() { disable_egressd egressd-world; }
enable_egressd_base() { enable_egressd egressd-base; }
disable_egressd_base() { disable_egressd egressd-base; }

enable_squid() {
  diverted && fail "squid: a diversion is left from another configuration"
  kill -0 "$squid_pid" 2> /dev/null || fail "squid is not running: $(tail -5 "$squid_dir/cache.log")"
  set_pod_resolver "$E2E_DNS4"
  in_gw iptables -t nat -A PREROUTING -i pod0 -j EGB_SQUID || fail "squid REDIRECT"
}
disable_squid() {
  kill -0 "$squid_pid" 2> /dev/null || fail "squid died during the measurement: $(tail -5 "$squid_dir/cache.log")"
  in_gw iptables -t nat -D PREROUTING -i pod0 -j EGB_SQUID || fail "remove squid REDIRECT"
}

re_addr() { printf '%s' "$1" | sed 's/\./\\./g'; }  # an IPv4 address as a regex
# logged REGEX: this egressd start has logged a line matching REGEX
# (grep reads all its input: with pipefail, grep -q would fail the pipe)
logged() { awk -v from="$log_from" 'NR >= from' "$E2E_LOGS/egressd.log" | grep -E "$1" > /dev/null; }

# probe CONFIG: the allowed name works; an SNI no named rule allows, to
# the same address, passes only unfiltered and under world access; the
# metadata address passes only unfiltered (so a configuration that does
# not filter, lets everything through, or does not enforce what it is
# named after, cannot pass for a fast filter).
probe() {
  local cfg=$1 got other metadata
  got="$(curl_pod "http://$name:$http_port/")"
  [ "$got" = 200 ] || fail "$cfg: HTTP to $name:$http_port gives $got"
  got="$(curl_pod "https://$name:$https_port/")"
  [ "$got" = 200 ] || fail "$cfg: HTTPS to $name:$https_port gives $got"
  other="$(E2E_MAX_TIME=3 curl_pod "https://$denied_name:$https_port/" -k \
    --resolve "$denied_name:$https_port:$E2E_IP4_API_EXAMPLE_COM")"
  metadata="$(E2E_MAX_TIME=3 curl_pod "http://$metadata_ip:$http_port/")"
  case $cfg in
    unfiltered)
      [ "$other" = 200 ] || fail "$cfg: the control request gives $other, want 200"
      [ "$metadata" = 200 ] || fail "$cfg: the metadata address gives $metadata, want 200 (no server there?)" ;;
    egressd-world)
      [ "$other" = 200 ] || fail "$cfg: world access refused SNI $denied_name ($other): is world access in force?"
      [ "$metadata" != 200 ] || fail "$cfg: world access let the metadata address through"
      wait_until 20 logged "dst=$(re_addr "$metadata_ip"):$http_port .*verdict=deny reason=internal_address" \
        || fail "$cfg: the metadata address was not refused as internal_address" ;;
    *)
      [ "$other" != 200 ] || fail "$cfg: a denied SNI ($denied_name) went through"
      [ "$metadata" != 200 ] || fail "$cfg: the metadata address went through" ;;
  esac
}

# Packets the kernel queued to user space so far (all queues of the
# gateway; the id sequence of each queue instance counts every packet).
queued() { in_gw cat /proc/net/netfilter/nfnetlink_queue 2> /dev/null | awk '{n += $8} END {print n + 0}'; }
queue_drops() { in_gw cat /proc/net/netfilter/nfnetlink_queue 2> /dev/null | awk '{n += $6 + $7} END {print n + 0}'; }
# CPU time (user + system, in USER_HZ ticks) of every process in network
# namespace NS. Without IRQ time accounting (this kernel) softirq work done
# in a process's context (most of veth forwarding) is charged to it; work
# deferred to ksoftirqd is not counted anywhere here.
ns_cpu_ticks() {
  local p
  for p in $(ip netns pids "$1" 2> /dev/null); do
    sed 's/.*) //' "/proc/$p/stat" 2> /dev/null
  done | awk '{n += $12 + $13} END {print n + 0}'
}

# nfq_counters CFG: "PACKETS REPLIES SYN_ACKS" from egressd's /metrics (all
# queues): packets it read, of those the server packets the insertion guard
# read, and of those the SYN-ACKs ("- -" for a build without those counters,
# "- - -" when CFG is not egressd).
nfq_counters() {
  [[ $1 == egressd* ]] || { echo "- - -"; return; }
  in_gw curl -s --max-time 3 http://127.0.0.1:9153/metrics 2> /dev/null | awk '
    /^egressd_nfq_packets_total\{/ {p += $2}
    /^egressd_nfq_replies_total\{/ {r += $2; have = 1}
    /^egressd_nfq_reply_syn_acks_total\{/ {s += $2}
    END {if (have) print p + 0, r + 0, s + 0; else print p + 0, "-", "-"}'
}

# perf_summary DATA PIDS EGRESSD_PID: where the bench's own processes (PIDS:
# wrk, nginx, egressd, threads included) spent the CPU, kernel included:
# by command, by command and symbol (self time), then egressd alone, split
# into kernel and user space and by symbol. Shares are of those processes'
# samples.
perf_summary() {
  local report=(perf report -i "$1" --percentage relative --no-children --stdio -g none)
  echo "# perf record -a -g during an HTTP rate run, the bench's processes only (pids $2)"
  "${report[@]}" --pid "$2" --sort comm 2> /dev/null | grep -vE '^(#|$)'
  echo "# by command and symbol"
  "${report[@]}" --pid "$2" --sort comm,sym --percent-limit 0.5 2> /dev/null | grep -vE '^(#|$)'
  echo "# by symbol, all of them"
  "${report[@]}" --pid "$2" --sort sym --percent-limit 0.3 2> /dev/null | grep -vE '^(#|$)'
  [ -n "$3" ] || return 0
  echo "# egressd (pid $3) alone, kernel or user space"
  "${report[@]}" --pid "$3" --sort sym 2> /dev/null | awk '$2 == "[k]" {k += $1} $2 == "[.]" {u += $1}
    END {printf "kernel %.1f %%, user space %.1f %%\n", k, u}'
  echo "# egressd alone, by symbol"
  "${report[@]}" --pid "$3" --sort sym --percent-limit 0.5 2> /dev/null | grep -vE '^(#|$)'
}

# run_wrk CFG ROUND PROTO URL
run_wrk() {
  local cfg=$1 r=$2 proto=$3 url=$4 out="$raw/r$2-$1-$3.wrk" q0 q1 d0 d1 g0 g1 s0 s1
  local n0 n1
  n0="$(nfq_counters "$cfg")"
  [[ $cfg == egressd* ]] && in_gw iptables-save -c -t filter > "$out.rules0" 2> /dev/null
  q0="$(queued)" d0="$(queue_drops)" g0="$(ns_cpu_ticks "$E2E_NS_GW")" s0="$(ns_cpu_ticks "$E2E_NS_INET")"
  # bash's `time`: the client's own CPU (wrk's rusage, reaped by timeout)
  local TIMEFORMAT='%U %S' perf_pid="" syscalls_pid=""
  if [ "$r" = syscalls ]; then
    # egressd's syscalls, all threads, counted by the kernel's tracepoints
    # (strace would slow the worker down until its batches grow)
    perf stat -x, -p "$(cat "$E2E_PIDS/egressd.pid")" -o "$results/syscalls-$cfg-http.txt" \
      -e raw_syscalls:sys_enter -e syscalls:sys_enter_poll -e syscalls:sys_enter_recvfrom \
      -e syscalls:sys_enter_recvmmsg -e syscalls:sys_enter_sendto -e syscalls:sys_enter_bpf \
      -e syscalls:sys_enter_epoll_wait -e syscalls:sys_enter_write -e syscalls:sys_enter_writev \
      -e syscalls:sys_enter_futex -e context-switches -- sleep $((seconds + 2)) > /dev/null 2>&1 &
    syscalls_pid=$!
    sleep 1
  fi
  if [ "$r" = 0 ]; then
    # The whole machine, kernel included: the gateway's forwarding and
    # NFQUEUE work runs in softirq context of whichever process sent the
    # packet (wrk, nginx, egressd's verdicts), not only in egressd.
    # perf takes a moment to start on a busy machine: give it two seconds
    # before wrk, and note the bench's processes (other work on the machine,
    # other egressd and nginx instances included, is left out of the report).
    perf record -F 2999 -a -g -q -o "$work/perf-$cfg.data" -- sleep $((seconds + 4)) > /dev/null 2>&1 &
    perf_pid=$!
    sleep 2
    (
      sleep 1
      for ns in "$E2E_NS_POD" "$E2E_NS_GW" "$E2E_NS_INET"; do ip netns pids "$ns"; done
    ) > "$work/perf-$cfg.pids" 2> /dev/null &
  fi
  { time in_pod timeout $((seconds + 30)) wrk -t"$threads" -c"$conns" -d"${seconds}s" --latency \
    -H 'Connection: close' "$url" > "$out" 2>&1; } 2> "$out.time"
  if [ -n "$syscalls_pid" ]; then
    wait "$syscalls_pid"
    awk -F, -v n="$(awk '/requests in/ {print $1}' "$out")" '$1 ~ /^[0-9]+$/ {printf "%s %d (%.2f per connection)\n", $3, $1, $1 / n}' \
      "$results/syscalls-$cfg-http.txt" > "$results/syscalls-$cfg-http.per-connection.txt"
  fi
  if [ -n "$perf_pid" ]; then
    wait "$perf_pid"
    local egressd_pid=""
    [[ $cfg == egressd* ]] && egressd_pid="$(cat "$E2E_PIDS/egressd.pid")"
    perf_summary "$work/perf-$cfg.data" "$(sort -un "$work/perf-$cfg.pids" | paste -sd,)" \
      "$egressd_pid" > "$results/perf-$cfg-http.txt" 2>&1
    [ "${GATEWAY_BENCH_KEEP:-0}" = 1 ] || rm -f "$work/perf-$cfg.data"
  fi
  q1="$(queued)" d1="$(queue_drops)" g1="$(ns_cpu_ticks "$E2E_NS_GW")" s1="$(ns_cpu_ticks "$E2E_NS_INET")"
  n1="$(nfq_counters "$cfg")"
  local evaluations="- - -"
  if [[ $cfg == egressd* ]]; then
    in_gw iptables-save -c -t filter > "$out.rules1" 2> /dev/null
    evaluations="$(python3 "$here/chain_cost.py" "$out.rules0" "$out.rules1" EGRESSD 2> /dev/null || echo "- - -")"
  fi
  {
    echo "queued $((q1 - q0))"
    echo "queue_drops $((d1 - d0))"
    echo "gateway_cpu_ticks $((g1 - g0)) $(getconf CLK_TCK)"
    echo "server_cpu_ticks $((s1 - s0)) $(getconf CLK_TCK)"
    echo "client_cpu_seconds $(tail -1 "$out.time")"
    echo "egressd_counters_before $n0"
    echo "egressd_counters_after $n1"
    echo "chain_packets_evaluations_per_packet_total $evaluations"
  } >> "$out"
  # Fail at once when a configuration does not work at all.
  local requests errors
  requests="$(awk '/requests in/ {print $1}' "$out")"
  errors="$(awk '/Socket errors:/ {gsub(",", ""); n += $4 + $6 + $8 + $10} /Non-2xx/ {n += $5} END {print n + 0}' "$out")"
  [ "${requests:-0}" -gt 0 ] || fail "$cfg $proto: wrk completed no request: $(tr '\n' ' ' < "$out")"
  [ $((errors * 100)) -le "$requests" ] || fail "$cfg $proto: $errors errors in $requests requests (> 1 %): $(tr '\n' ' ' < "$out")"
  say "round $r $cfg $proto: $(awk '/Requests\/sec/ {print $2}' "$out") conn/s ($requests requests, $errors errors)$(
    awk -v n="$requests" '/^chain_packets_evaluations/ && $4 != "-" {printf ", chain: %.2f packets and %.1f rule evaluations per connection", $2 / n, $4 / n}' "$out")"
}

# run_latency CFG ROUND PROTO URL PORT: fresh connections one at a time
run_latency() {
  local cfg=$1 r=$2 proto=$3 url=$4 port=$5 out="$raw/r$2-$1-$3.lat" i
  for i in $(seq "$lat_conns"); do printf 'url = "%s"\noutput = "/dev/null"\n' "$url"; done > "$work/latency.curl"
  # --resolve: no DNS in the timing (the binding exists from this round's
  # lookups); --no-sessionid: a full handshake every time.
  in_pod timeout 120 curl -s --no-sessionid -H 'Connection: close' --cacert "$E2E_CA" --connect-timeout 3 --max-time 5 \
    --resolve "$name:$port:$E2E_IP4_API_EXAMPLE_COM" \
    -w '%{time_connect} %{time_appconnect} %{time_starttransfer} %{http_code} %{num_connects}\n' \
    -K "$work/latency.curl" > "$out" 2> "$out.err"
  local ok
  ok="$(awk '$4 == 200 && $5 == 1' "$out" | wc -l)"
  [ $((ok * 100)) -ge $((lat_conns * 99)) ] || fail "$cfg $proto latency: only $ok of $lat_conns connections answered 200"
}

# run_bulk CFG ROUND: one connection, as many bytes as it moves in bulk_seconds
run_bulk() {
  local cfg=$1 r=$2 out="$raw/r$2-$1-http.bulk"
  in_pod timeout 60 curl -s -o /dev/null --max-time "$bulk_seconds" --resolve "$name:$http_port:$E2E_IP4_API_EXAMPLE_COM" \
    -w '%{size_download} %{time_total} %{time_starttransfer} %{http_code} %{num_connects}\n' \
    "http://$name:$http_port/bulk" > "$out" 2> "$out.err"
  local bytes
  bytes="$(awk '{print $1}' "$out")"
  [ "${bytes:-0}" -gt 1048576 ] || fail "$cfg bulk: downloaded ${bytes:-nothing}"
  say "round $r $cfg bulk: $(awk '{printf "%.0f MB/s", $1 / ($2 - $3) / 1e6}' "$out")"
}

measure() {
  local cfg=$1 r=$2
  "enable_${cfg//-/_}"
  probe "$cfg"
  run_wrk "$cfg" "$r" http "http://$name:$http_port/"
  run_wrk "$cfg" "$r" https "https://$name:$https_port/"
  run_latency "$cfg" "$r" http "http://$name:$http_port/" "$http_port"
  run_latency "$cfg" "$r" https "https://$name:$https_port/" "$https_port"
  case $cfg in unfiltered | egressd) run_bulk "$cfg" "$r" ;; esac
  if [ "$cfg" = squid ]; then
    grep -q "TCP_TUNNEL/200 .*$name:$https_port" "$squid_dir/access.log" \
      || fail "squid: no spliced HTTPS connection in its access log: the traffic did not go through squid"
  fi
  if [ "$cfg" = egressd-world ]; then
    # The connections measured were allowed by world access, not by a
    # binding or a name: the path this configuration is about.
    logged "event=verdict .*dst=$(re_addr "$E2E_IP4_API_EXAMPLE_COM"):$https_port .*verdict=allow reason=world_access" \
      || fail "$cfg: no world_access verdict for the bench's connections in egressd's log"
  fi
  "disable_${cfg//-/_}"
}

read -r -a cfg_list <<< "$configs"
for r in $(seq "$rounds"); do
  # Rotate the order each round, so no configuration always runs first.
  n=${#cfg_list[@]}
  for i in $(seq 0 $((n - 1))); do
    measure "${cfg_list[$(((i + r - 1) % n))]}" "$r"
  done
done

# Profiles: one more HTTP rate run per configuration, "round 0", which the
# report leaves out (perf's sampling costs CPU of its own); unfiltered's is
# the reference the others are compared with.
if [ "$perf_on" = 1 ]; then
  for cfg in "${cfg_list[@]}"; do
    "enable_${cfg//-/_}"
    run_wrk "$cfg" 0 http "http://$name:$http_port/"
    "disable_${cfg//-/_}"
  done
fi
# Syscalls: one more HTTP rate run per egressd configuration with its
# syscalls counted (perf stat on the syscall tracepoints), also left out
# of the figures.
if [ "${GATEWAY_BENCH_SYSCALLS:-0}" = 1 ]; then
  for cfg in "${cfg_list[@]}"; do
    [[ $cfg == egressd* ]] || continue
    "enable_${cfg//-/_}"
    run_wrk "$cfg" syscalls http "http://$name:$http_port/"
    "disable_${cfg//-/_}"
  done
fi

loadavg_end="$(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$here/report.py" --raw "$raw" --out "$results/gateway.json" --nfq-queue "$results/nfq_queue.json" \
  --param rounds="$rounds" --param seconds="$seconds" --param wrk_threads="$threads" \
  --param wrk_connections="$conns" --param latency_connections="$lat_conns" \
  --param bulk_seconds="$bulk_seconds" --param egressd_queues="$queues" \
  --param egressd_log_level="$log_level" --param nginx_workers="$nginx_workers" \
  --param configs="$configs" --param squid_workers=1 \
  --param egressd_binary="$egressd" --param loadavg_start="$loadavg_start" \
  --param loadavg_end="$loadavg_end" --param nproc="$(nproc)" --param kernel="$(uname -r)" \
  --param wall_seconds="$(($(date +%s) - started))" \
  --param squid_version="$(squid -v | head -1)" --param nginx_version="$(nginx -v 2>&1)" \
  --strict "${GATEWAY_BENCH_STRICT:-0}" || fail "report"

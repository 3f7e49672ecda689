# shellcheck shell=bash
# Helpers for end-to-end tests on the topology of tests/e2e/topology.sh.
# Source it after the topology is up:
#
#   eval "$(tests/e2e/topology.sh env "$dir")"
#   . tests/e2e/lib.sh
#   expect_eq "api over https" 200 "$(curl_pod https://api.example.com/)"
#   summary   # "N passed, M failed"; non-zero status when something failed
#
# Needs the E2E_* variables from `topology.sh env`. Counters are globals of
# the sourcing shell, so call expect_* in that shell, not in a subshell.

E2E_PASSED=0
E2E_FAILED=0
E2E_LAST_BODY="${E2E_DIR:?eval topology.sh env first}/last_body"

# The pod has no proxy settings, whatever the caller's environment holds.
in_pod() {
  ip netns exec "$E2E_NS_POD" env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY \
    -u all_proxy -u ALL_PROXY -u no_proxy -u NO_PROXY "$@"
}
in_gw() { ip netns exec "$E2E_NS_GW" "$@"; }
in_inet() { ip netns exec "$E2E_NS_INET" "$@"; }

# curl_pod URL [curl args...]: one request from the pod, trusting the test
# CA, with short timeouts. Prints the HTTP status (e.g. 200) or, when curl
# fails, "curl:N" with curl's exit code (6 no such host, 7 refused or reset
# at connect, 28 timeout, 35 TLS handshake failed, 52 empty reply, 56 reset
# while receiving). The body goes to $E2E_LAST_BODY.
curl_pod() {
  local url=$1 code rc; shift
  : > "$E2E_LAST_BODY"
  code="$(in_pod curl -sS -o "$E2E_LAST_BODY" -w '%{http_code}' --cacert "$E2E_CA" \
    --connect-timeout "${E2E_CONNECT_TIMEOUT:-3}" --max-time "${E2E_MAX_TIME:-5}" "$@" "$url" \
    2> "$E2E_DIR/last_curl_err")"
  rc=$?
  if [ $rc -ne 0 ]; then echo "curl:$rc"; else echo "$code"; fi
}

# last_body: the body of the last curl_pod
last_body() { cat "$E2E_LAST_BODY"; }

# dns_pod NAME [TYPE] [dig args...]: the DNS status the pod's resolver gives
# (NOERROR, NXDOMAIN, REFUSED, SERVFAIL, or "timeout").
dns_pod() {
  local name=$1 type=${2:-A} out; shift; [ $# -gt 0 ] && shift
  out="$(in_pod dig +time=2 +tries=1 "$name" "$type" "$@" 2>&1)"
  echo "$out" | sed -n 's/.*status: \([A-Z]*\).*/\1/p' | head -1 | grep . || echo timeout
}

# dns_answers NAME [TYPE]: the answer records' data, one a line
dns_answers() { in_pod dig +time=2 +tries=1 +short "$1" "${2:-A}"; }

# banner_pod HOST PORT: the first line a server-speaks-first service sends
banner_pod() { in_pod timeout 5 nc -w 3 "$1" "$2" < /dev/null 2> /dev/null | head -1 | tr -d '\r'; }

_e2e_ok() { E2E_PASSED=$((E2E_PASSED + 1)); echo "ok: $1"; }
_e2e_fail() { E2E_FAILED=$((E2E_FAILED + 1)); echo "FAIL: $1${2:+ ($2)}"; }

# expect_ok DESC CMD...: passes when CMD exits 0
expect_ok() {
  local desc=$1; shift
  if "$@" > "$E2E_DIR/last_out" 2>&1; then _e2e_ok "$desc"; else _e2e_fail "$desc" "exit $?: $(tail -c 300 "$E2E_DIR/last_out" | tr '\n' ' ')"; fi
}

# expect_fail DESC CMD...: passes when CMD exits non-zero
expect_fail() {
  local desc=$1; shift
  if "$@" > "$E2E_DIR/last_out" 2>&1; then _e2e_fail "$desc" "succeeded: $(tail -c 300 "$E2E_DIR/last_out" | tr '\n' ' ')"; else _e2e_ok "$desc"; fi
}

# expect_eq DESC WANT GOT
expect_eq() {
  if [ "$2" = "$3" ]; then _e2e_ok "$1"; else _e2e_fail "$1" "want '$2', got '$3'"; fi
}

# expect_match DESC REGEX GOT (grep -E)
expect_match() {
  if grep -Eq -- "$2" <<< "$3"; then _e2e_ok "$1"; else _e2e_fail "$1" "'$3' does not match /$2/"; fi
}

# set_pod_resolver ADDR: what the pod's /etc/resolv.conf names
set_pod_resolver() { printf 'nameserver %s\noptions timeout:2 attempts:1\n' "$1" > "$E2E_POD_RESOLV"; }

# start_in_gw NAME CMD...: run CMD in the gateway in the background; log to
# $E2E_LOGS/NAME.log, pid to $E2E_PIDS/NAME.pid (`topology.sh down` kills it).
start_in_gw() {
  local name=$1; shift
  setsid ip netns exec "$E2E_NS_GW" "$@" > "$E2E_LOGS/$name.log" 2>&1 < /dev/null &
  echo $! > "$E2E_PIDS/$name.pid"
  disown $!
}

# wait_until TRIES CMD...: poll CMD every 0.1 s; status 1 when it never held
wait_until() {
  local tries=$1; shift
  for _ in $(seq "$tries"); do "$@" > /dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

# summary: "N passed, M failed"; returns 1 when anything failed
summary() {
  echo "$E2E_PASSED passed, $E2E_FAILED failed"
  [ "$E2E_FAILED" -eq 0 ] && [ "$E2E_PASSED" -gt 0 ]
}

# ---- egressd in the gateway ------------------------------------------------

# write_egressd_config FILE RULES_DIR...: an egressd.toml for this topology:
# DNS on the gateway's pod-side addresses, the internet's resolver upstream,
# NFQUEUE with its own chain, the pod network protected, control socket in
# $E2E_DIR. The topology's "internet" is documentation address space, which
# egressd treats as internal by default (world access does not cover it,
# DNS refuses answers pointing into it): rules.public_cidrs declares it
# public, as an operator would for a network of their own.
# Knobs (environment): E2E_MODE (enforce), E2E_STRICT_BINDING
# (true), E2E_QUEUES ([0]), E2E_LOG_LEVEL (info), E2E_NFQUEUE (true),
# E2E_PUBLIC_CIDRS (the internet's ranges), E2E_INTERNAL_CIDRS ([]).
write_egressd_config() {
  local file=$1 dirs="" d; shift
  for d in "$@"; do dirs="$dirs${dirs:+, }\"$d\""; done
  local public_cidrs=${E2E_PUBLIC_CIDRS:-'["198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"]'}
  cat > "$file" << EOF
mode = "${E2E_MODE:-enforce}"

[rules]
dirs = [$dirs]
strict_binding = ${E2E_STRICT_BINDING:-true}
public_cidrs = $public_cidrs
internal_cidrs = ${E2E_INTERNAL_CIDRS:-[]}

[dns]
listen = ["$E2E_GW_POD_IP4:53", "[$E2E_GW_POD_IP6]:53"]
upstreams = ["$E2E_DNS4:53"]

[nfqueue]
enabled = ${E2E_NFQUEUE:-true}
queues = ${E2E_QUEUES:-[0]}
install_rules = true
protected_cidrs = ["$E2E_POD_NET4", "$E2E_POD_NET6"]

[control]
socket = "$E2E_DIR/control.sock"

[metrics]
listen = "127.0.0.1:9153"

[log]
level = "${E2E_LOG_LEVEL:-info}"
EOF
}

# start_egressd BIN CONFIG: egressd in the gateway (log $E2E_LOGS/egressd.log,
# appended across restarts, pid $E2E_PIDS/egressd.pid); waits up to 10 s for
# "egressd.started". Status 1, with the log's tail on stderr, when it did not.
start_egressd() {
  local bin=$1 config=$2
  _e2e_egressd_log=$E2E_LOGS/egressd.log
  touch "$_e2e_egressd_log"
  _e2e_started_before="$(grep -c 'egressd.started' "$_e2e_egressd_log")"
  setsid ip netns exec "$E2E_NS_GW" "$bin" --config "$config" >> "$_e2e_egressd_log" 2>&1 < /dev/null &
  echo $! > "$E2E_PIDS/egressd.pid"
  disown $!  # no "Killed" job notice when a test SIGKILLs it
  if ! wait_until 100 _e2e_egressd_started; then
    echo "egressd did not start:" >&2
    tail -20 "$_e2e_egressd_log" >&2
    return 1
  fi
}
_e2e_egressd_started() {
  [ "$(grep -c 'egressd.started' "$_e2e_egressd_log")" -gt "$_e2e_started_before" ]
}

# egressd_running: the started egressd is alive (not exited, not a zombie)
egressd_running() {
  local pid st
  pid="$(cat "$E2E_PIDS/egressd.pid" 2> /dev/null)" || return 1
  st="$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2> /dev/null)"
  [ -n "$st" ] && [ "$st" != Z ]
}

# stop_egressd [SIGNAL]: TERM by default; waits up to 5 s for it to exit
stop_egressd() {
  local pid
  pid="$(cat "$E2E_PIDS/egressd.pid" 2> /dev/null)" || return 0
  kill "-${1:-TERM}" "$pid" 2> /dev/null || return 0
  for _ in $(seq 50); do egressd_running || return 0; sleep 0.1; done
  return 1
}

# egressd_log_mark / egressd_log_since MARK: the egressd log after MARK, to
# look only at the lines of one step.
egressd_log_mark() { stat -c %s "$E2E_LOGS/egressd.log" 2> /dev/null || echo 0; }
egressd_log_since() { tail -c +"$(($1 + 1))" "$E2E_LOGS/egressd.log"; }

# tune_for_connection_rate: for benchmarks that open tens of thousands of
# connections a second: the pod reuses ports in TIME-WAIT over the whole
# port range, and the gateway's conntrack forgets closed connections after
# 5 s (120 s by default), so neither runs out part-way through a run.
tune_for_connection_rate() {
  in_pod sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65535" &&
    in_gw sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_time_wait=5
}

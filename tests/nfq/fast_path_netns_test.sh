#!/usr/bin/env bash
# The kernel fast path against the real kernel: client, gateway and server
# namespaces created here and removed on exit (same topology as
# e2e_netns_test.sh).
#
#   client 10.200.1.2 ── 10.200.1.1 gateway 10.200.2.1 ── server 10.200.2.2, .3
#
# The gateway has egressd's chain with the fast path (nfq_ruleset_tool
# --fast-path: the EGRESSD-bound4/6 ipsets and their rules) and nfq_gateway
# --fast-path, which writes its static bindings into the sets as the
# daemon's feeder does:
#   api.example.com, www.example.org, ssh.example.com -> 10.200.2.2, fd10:2::2
# Proves: a connection to a bound pair costs exactly one queued packet (its
# first payload), SYNs to unbound addresses still reach the worker and are
# reset, one byte of payload is judged (with and without TCP timestamps),
# the pass ends when the binding expires, apply is idempotent and flushes,
# remove destroys the sets.
set -euo pipefail
bin="${EGRESSD_BIN:?}"
src="${EGRESSD_SOURCE_DIR:?}/tests/nfq"
# shellcheck source=tests/nfq/netns.sh
. "$src/netns.sh"
fail() {
  echo "FAIL: $*" >&2
  [ -f "$work/gateway.log" ] && { echo "--- gateway log" >&2; cat "$work/gateway.log" >&2; }
  G iptables -L EGRESSD -v -n >&2 || true
  G ipset list >&2 || true
  exit 1
}
nfq_netns_up egressd-fp

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=api.example.com \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
# Dual-stack HTTP on 80 (IPv4 and IPv6 on one socket).
(cd "$work" && S python3 -m http.server 80 --bind :: >/dev/null 2>&1 &)
S python3 "$src/e2e/servers.py" banner:22 banner:25 "tls:443:$work/cert.pem:$work/key.pem" >/dev/null 2>&1 &
for port in 80 443 22 25; do
  for _ in $(seq 50); do S bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null && break; sleep 0.1; done
done

tool=("$bin/nfq_ruleset_tool")
args=(--queues 0:1 --protect 10.200.9.0/24 --fast-path)

echo "== install: sets first, then the chain; idempotent, flushes"
G "${tool[@]}" apply "${args[@]}"
sets="$(G ipset list -n)"
grep -qx EGRESSD-bound4 <<<"$sets" || fail "no EGRESSD-bound4 set"
grep -qx EGRESSD-bound6 <<<"$sets" || fail "no EGRESSD-bound6 set"
G ipset list EGRESSD-bound4 | grep -q 'Type: hash:ip,port' || fail "bound4 has the wrong type"
G ipset list EGRESSD-bound6 | grep -q 'family inet6' || fail "bound6 is not inet6"
# The installed chain is the rendered one (v4 and v6).
got4="$(G iptables-save -t filter | grep '^-A EGRESSD ')"
want4="$("${tool[@]}" print "${args[@]}" | grep '^-A EGRESSD ' | head -n "$(wc -l <<<"$got4")")"
[ "$got4" = "$want4" ] || { diff <(echo "$want4") <(echo "$got4") >&2; fail "v4 chain differs from the rendering"; }
got6="$(G ip6tables-save -t filter | grep '^-A EGRESSD ')"
want6="$("${tool[@]}" print "${args[@]}" | grep '^-A EGRESSD ' | tail -n "$(wc -l <<<"$got6")")"
[ "$got6" = "$want6" ] || { diff <(echo "$want6") <(echo "$got6") >&2; fail "v6 chain differs from the rendering"; }
grep -q -- '--match-set EGRESSD-bound4 dst,dst -j RETURN' <<<"$got4" || fail "no bound-set rule"
G ipset add EGRESSD-bound4 10.200.2.3,tcp:443 timeout 100
save_before="$(G iptables-save -t filter | grep -v '^#')"
G "${tool[@]}" apply "${args[@]}"
[ "$(G iptables-save -t filter | grep -v '^#')" = "$save_before" ] || fail "second apply changed the chain"
G ipset list EGRESSD-bound4 | grep -q '10.200.2.3' && fail "apply did not flush a stale entry"

start_gateway() {
  nfq_gateway_start --rules "$src/e2e/rules.yaml" --queues 0:1 --hold-timeout-ms 1500 --public-cidr 10.200.2.0/24 --public-cidr fd10:2::/64 --fast-path \
    --bind api.example.com=10.200.2.2 --bind www.example.org=10.200.2.2 --bind ssh.example.com=10.200.2.2 \
    --bind api.example.com=fd10:2::2 --bind www.example.org=fd10:2::2 \
    "$@"
}
# queued: the workers' packet counter (nfq_gateway prints it on SIGUSR1).
queued() {
  local before n
  before="$(grep -c 'stats packets=' "$work/gateway.log" || true)"
  kill -USR1 "$gwpid"
  for _ in $(seq 50); do
    n="$(grep -c 'stats packets=' "$work/gateway.log" || true)"
    [ "$n" -gt "$before" ] && break
    sleep 0.02
  done
  grep 'stats packets=' "$work/gateway.log" | tail -1 | sed 's/.*packets=//'
}
# costs N CMD...: CMD succeeds and exactly N packets reached user space.
costs() {
  local want="$1"; shift
  local p0 p1
  p0="$(queued)"
  "$@" || fail "failed: $*"
  sleep 0.2
  p1="$(queued)"
  [ $((p1 - p0)) = "$want" ] || fail "$* queued $((p1 - p0)) packets, expected $want"
}
http() { C curl -s -o /dev/null -w '%{http_code}' --max-time 4 "$@" || true; }
fails_fast() {
  local t0=$SECONDS
  if C "$@" >/dev/null 2>&1; then fail "should have failed: $*"; fi
  [ $((SECONDS - t0)) -le 2 ] || fail "failed only after a timeout (no reset): $*"
}
ok_tls() { [ "$(http -k --resolve "api.example.com:443:$1" https://api.example.com/)" = 200 ]; }
ok_http() { [ "$(http -g -H 'Host: www.example.org' "http://$1/")" = 200 ]; }
# one_byte ADDR PORT: connect, read the banner, send one byte (no newline), close.
one_byte() {
  C python3 - "$1" "$2" <<'PY'
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
s.recv(100)
s.send(b"x")
time.sleep(0.3)
s.close()
PY
}
ssh_exchange() {
  local reply
  reply="$(C bash -c "exec 3<>/dev/tcp/$1/22; read -r banner <&3; echo hello >&3; read -r answer <&3; echo \"\$banner|\$answer\"")"
  [ "$reply" = $'SSH-2.0-egressd-test\r|ok hello' ]
}

echo "== bound pairs: one packet per connection in user space"
# Bound flows inspected, as egressd runs: without the kernel fast path the
# SYN and the handshake ACK would be queued too (3 packets, not 1).
start_gateway --inspect-bound
sleep 0.2
entries="$(G ipset list EGRESSD-bound4)"
for port in 443 80 22; do grep -q "10.200.2.2,tcp:$port timeout" <<<"$entries" || fail "no set entry for tcp:$port"; done
grep -q 'tcp:7000' <<<"$entries" && fail "world-access port 7000 must stay in user space"
G ipset list EGRESSD-bound6 | grep -q 'fd10:2::2,tcp:443 timeout' || fail "no IPv6 set entry"
costs 1 ok_tls 10.200.2.2
expect_event 'verdict=allow reason=sni_allowed .*dst=10.200.2.2:443 name=api.example.com source=sni'
costs 1 ok_http 10.200.2.2
costs 1 ssh_exchange 10.200.2.2
costs 1 ok_http '[fd10:2::2]'
# Ten connections: ten packets.
tenfold() { for _ in $(seq 10); do ok_http 10.200.2.2 || return 1; done; }
costs 10 tenfold

echo "== one byte of payload is judged"
# Bound pair: the byte is queued (an event), not passed in the kernel.
n0="$(grep -c 'dst=10.200.2.2:22 ' "$work/gateway.log" || true)"
costs 1 one_byte 10.200.2.2 22
[ "$(grep -c 'dst=10.200.2.2:22 ' "$work/gateway.log")" -gt "$n0" ] || fail "1-byte payload to a bound pair left no decision"
# Unbound address: SYN and the byte reach the worker; denied.
costs 2 one_byte 10.200.2.3 22
expect_event 'verdict=deny reason=no_name_no_binding .*dst=10.200.2.3:22'
# The same without TCP timestamps (40-byte headers).
C sysctl -qw net.ipv4.tcp_timestamps=0
costs 1 one_byte 10.200.2.2 22
costs 2 one_byte 10.200.2.3 22
costs 1 ok_tls 10.200.2.2
C sysctl -qw net.ipv4.tcp_timestamps=1

echo "== unbound addresses still go to user space and are reset"
p0="$(queued)"
fails_fast curl -s --max-time 4 http://10.200.2.2:81/
expect_event 'verdict=deny reason=port_not_in_policy .*dst=10.200.2.2:81'
fails_fast curl -sk --max-time 4 --resolve api.example.com:443:10.200.2.3 https://api.example.com/
expect_event 'verdict=deny reason=sni_not_bound .*dst=10.200.2.3:443'
p1="$(queued)"
[ $((p1 - p0)) = 3 ] || fail "unbound SYNs did not reach the worker (expected 3 packets, got $((p1 - p0)))"

echo "== live options: audit switched on without restarting the worker"
fails_fast bash -c 'exec 3<>/dev/tcp/10.200.2.2/25; read -r banner <&3; [ -n "$banner" ]'
kill -USR2 "$gwpid"
for _ in $(seq 20); do grep -q 'audit=1' "$work/gateway.log" && break; sleep 0.05; done
reply="$(C bash -c 'exec 3<>/dev/tcp/10.200.2.2/25; read -r banner <&3; echo "$banner"')" || fail "audit (live) blocked port 25"
[ "$reply" = $'SSH-2.0-egressd-test\r' ] || fail "audit (live): got $reply"
expect_event 'verdict=audit:would-deny reason=port_not_in_policy .*dst=10.200.2.2:25'
kill -0 "$gwpid" || fail "the worker restarted"
stop_gateway

echo "== fail-closed: with no worker, a bound SYN passes but its payload is dropped"
[ "$(http --max-time 2 -k --resolve api.example.com:443:10.200.2.2 https://api.example.com/)" = 000 ] ||
  fail "a bound connection got through with no worker"

echo "== expiry ends the kernel pass"
G "${tool[@]}" apply "${args[@]}"   # flushes the first run's entries
start_gateway --inspect-bound --bind-ttl-ms 2500
sleep 0.2
G ipset list EGRESSD-bound4 | grep -Eq '10.200.2.2,tcp:443 timeout [12]$' || fail "entry timeout not the binding's lifetime"
costs 1 ok_tls 10.200.2.2
sleep 2.8
G ipset list EGRESSD-bound4 | grep -q '10.200.2.2' && fail "entry outlived its binding"
p0="$(queued)"
fails_fast curl -sk --max-time 4 --resolve api.example.com:443:10.200.2.2 https://api.example.com/
p1="$(queued)"
[ $((p1 - p0)) = 2 ] || fail "after expiry the SYN should be queued again (got $((p1 - p0)) packets)"
expect_event 'verdict=deny reason=sni_not_bound .*dst=10.200.2.2:443'
stop_gateway

echo "== remove: chain and sets go"
G "${tool[@]}" remove
G ipset list -n | grep -q EGRESSD && fail "sets left after remove"
grep -q EGRESSD <<< "$(G iptables-save -t filter)" && fail "chain left after remove"
G "${tool[@]}" remove
echo "ok: nfq kernel fast path"

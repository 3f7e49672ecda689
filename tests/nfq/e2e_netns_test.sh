#!/usr/bin/env bash
# End-to-end: the NFQUEUE verdict worker between a client ("pod") and a
# server ("internet") namespace, all created here and removed on exit.
#
#   client 10.200.1.2 ── 10.200.1.1 gateway 10.200.2.1 ── server 10.200.2.2, .3
#
# The gateway routes, has egressd's chain (nfq_ruleset_tool) in FORWARD and
# runs nfq_gateway (the queue workers) with static DNS bindings:
#   api.example.com, www.example.org, ssh.example.com -> 10.200.2.2
# 10.200.2.3 is bound to nothing. Real programs on both ends: curl, python's
# http.server, and TLS/banner/echo servers (e2e/servers.py).
set -euo pipefail
bin="${EGRESSD_BIN:?}"
src="${EGRESSD_SOURCE_DIR:?}/tests/nfq"
# shellcheck source=tests/nfq/netns.sh
. "$src/netns.sh"
fail() {
  echo "FAIL: $*" >&2
  [ -f "$work/gateway.log" ] && { echo "--- gateway log" >&2; cat "$work/gateway.log" >&2; }
  echo "--- queues (id portid waiting mode range dropped user-dropped last-id)" >&2
  G cat /proc/net/netfilter/nfnetlink_queue >&2 || true
  G iptables -L EGRESSD -v -n >&2 || true
  exit 1
}
nfq_netns_up egressd-test

# Servers.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=api.example.com \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
(cd "$work" && S python3 -m http.server 80 --bind 0.0.0.0 >/dev/null 2>&1 &)
# Bound to :: the server is dual-stack (IPv4 and IPv6 on one socket).
(cd "$work" && S python3 -m http.server 8080 --bind :: >/dev/null 2>&1 &)
S python3 "$src/e2e/servers.py" banner:22 banner:25 echo:7000 "tls:443:$work/cert.pem:$work/key.pem" >/dev/null 2>&1 &
for port in 80 8080 443 22 25 7000; do
  for _ in $(seq 50); do S bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null && break; sleep 0.1; done
done

# Without filtering every server answers (the topology itself works).
[ "$(C curl -s -o /dev/null -w '%{http_code}' --max-time 3 http://10.200.2.3:8080/)" = 200 ] || fail "topology: no HTTP"

G "$bin/nfq_ruleset_tool" apply --queues 0:1 --protect 10.200.9.0/24

start_gateway() {
  nfq_gateway_start --rules "$src/e2e/rules.yaml" --queues 0:1 --hold-timeout-ms 1500 --public-cidr 10.200.2.0/24 --public-cidr fd10:2::/64 \
    --bind api.example.com=10.200.2.2 --bind www.example.org=10.200.2.2 --bind ssh.example.com=10.200.2.2 \
    "$@"
}
http() { C curl -s -o /dev/null -w '%{http_code}' --max-time 4 "$@" || true; }
# fails_fast CMD...: the command fails, within 2 s (a reset, not a timeout).
# split_hello HOST SNI GAP: a TLS ClientHello for SNI to HOST:443 in two
# send()s, the first 60 bytes, GAP seconds, the rest. Prints "<outcome>
# <local port> <seconds>", outcome tls (the server's handshake record came
# back), reset, eof or timeout.
split_hello() {
  C python3 - "$@" <<'PY'
import socket, ssl, sys, time
host, sni, gap = sys.argv[1], sys.argv[2], float(sys.argv[3])
raw = socket.create_connection((host, 443), timeout=5)
raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
obj = ctx.wrap_bio(inc, out, server_hostname=sni)
try:
    obj.do_handshake()
except ssl.SSLWantReadError:
    pass
hello = out.read()
t0 = time.monotonic()
raw.sendall(hello[:60]); time.sleep(gap); raw.sendall(hello[60:])
try:
    data = raw.recv(6)
    outcome = "tls" if data[:1] == b"\x16" else ("eof" if not data else "other")
except ConnectionResetError:
    outcome = "reset"
except socket.timeout:
    outcome = "timeout"
print(outcome, raw.getsockname()[1], "%.2f" % (time.monotonic() - t0))
PY
}
# events_for PORT: how many decisions the gateway logged for client port PORT
events_for() { grep -c "src=10.200.1.2:$1 " "$work/gateway.log" || true; }
fails_fast() {
  local t0=$SECONDS
  if C "$@" >/dev/null 2>&1; then fail "should have failed: $*"; fi
  [ $((SECONDS - t0)) -le 2 ] || fail "failed only after a timeout (no reset): $*"
}

echo "== enforce, strict binding"
start_gateway
[ "$(http http://10.200.2.3:8080/)" = 200 ] || fail "*:8080 world access"
expect_event 'verdict=allow reason=world_access proto=6 .*dst=10.200.2.3:8080 .*rulesets=team-b/world-8080'
fails_fast curl -s --max-time 4 http://10.200.2.2:81/
expect_event 'verdict=deny reason=port_not_in_policy .*dst=10.200.2.2:81'
[ "$(http -k --resolve api.example.com:443:10.200.2.2 https://api.example.com/)" = 200 ] || fail "bound TLS name"
expect_event 'verdict=allow reason=bound_address .*dst=10.200.2.2:443 name=api.example.com source=binding rulesets=team-a/app'
fails_fast curl -sk --max-time 4 --resolve api.example.com:443:10.200.2.3 https://api.example.com/
expect_event 'verdict=deny reason=sni_not_bound .*dst=10.200.2.3:443 name=api.example.com source=sni'
fails_fast curl -s --max-time 4 -H 'Host: www.example.org' http://10.200.2.3/
expect_event 'verdict=deny reason=host_not_bound .*dst=10.200.2.3:80 name=www.example.org source=host'
[ "$(http -H 'Host: www.example.org' http://10.200.2.2/)" = 200 ] || fail "bound HTTP name"
# Server speaks first: the bound address is allowed at the SYN.
reply="$(C bash -c 'exec 3<>/dev/tcp/10.200.2.2/22; read -r banner <&3; echo hello >&3; read -r answer <&3; echo "$banner|$answer"')" \
  || fail "server-speaks-first to a bound address"
[ "$reply" = $'SSH-2.0-egressd-test\r|ok hello' ] || fail "banner exchange got: $reply"
# To an unbound address: the banner comes (replies pass), the client's bytes are judged: no name, no binding.
C bash -c 'exec 3<>/dev/tcp/10.200.2.3/22; read -r banner <&3; echo hello >&3; read -r answer <&3; [ -z "$answer" ]' \
  || fail "unbound server-speaks-first was answered"
expect_event 'verdict=deny reason=no_name_no_binding .*dst=10.200.2.3:22'
# IPv6 through ip6tables and the same worker.
[ "$(http -g 'http://[fd10:2::2]:8080/')" = 200 ] || fail "IPv6 world access"
expect_event 'verdict=allow reason=world_access proto=6 src=fd10:1::2:[0-9]+ dst=fd10:2::2:8080'
fails_fast curl -s --max-time 4 -g 'http://[fd10:2::2]:81/'
expect_event 'verdict=deny reason=port_not_in_policy proto=6 src=fd10:1::2:[0-9]+ dst=fd10:2::2:81'
C bash -c 'echo x >/dev/udp/10.200.2.2/53' || true
expect_event 'verdict=deny reason=udp_not_allowed proto=17 .*dst=10.200.2.2:53'
# Datagrams queued behind the deciding one (before the connection mark was
# saved) get the same verdict without a second decision: one event per
# flow. Five back to back from one port, three times.
for _ in 1 2 3; do
  port="$(C python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(5): s.sendto(b"x%d" % i, ("10.200.2.2", 53))
print(s.getsockname()[1])')"
  expect_event "verdict=deny reason=udp_not_allowed proto=17 src=10.200.1.2:$port dst=10.200.2.2:53"
  sleep 0.3
  n="$(events_for "$port")"
  [ "$n" = 1 ] || fail "a UDP burst from port $port got $n decisions (want 1: the rest repeat it)"
done
# A ClientHello split over two segments is held, then judged as one.
C python3 - <<'PY' || fail "split ClientHello"
import socket, ssl, time
raw = socket.create_connection(("10.200.2.3", 443), timeout=5)
raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
obj = ctx.wrap_bio(inc, out, server_hostname="api.example.com")
try:
    obj.do_handshake()
except ssl.SSLWantReadError:
    pass
hello = out.read()
raw.sendall(hello[:60]); time.sleep(0.3); raw.sendall(hello[60:])
try:
    data = raw.recv(100)
    raise SystemExit("got a server reply through a denied flow: %r" % data[:10])
except (ConnectionResetError, socket.timeout):
    pass
PY
expect_event 'verdict=deny reason=sni_not_bound .*dst=10.200.2.3:443 name=api.example.com source=sni'
# A client that stalls after the first segment: held, then reset after the hold timeout.
C python3 - <<'PY' || fail "stalled ClientHello"
import socket, ssl, time
s = socket.create_connection(("10.200.2.3", 443), timeout=5)
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
obj = ctx.wrap_bio(inc, out, server_hostname="api.example.com")
try:
    obj.do_handshake()
except ssl.SSLWantReadError:
    pass
s.sendall(out.read()[:60])
t0 = time.time()
try:
    s.recv(10)
except ConnectionResetError:
    pass
took = time.time() - t0
if not 1.0 <= took <= 4.0:
    raise SystemExit("reset after %.1fs" % took)
PY
expect_event 'verdict=deny reason=hold_timeout .*dst=10.200.2.3:443'
# Denied after the handshake: the server got a reset too, no connection
# from the client is left established there.
sleep 0.3
left="$(S ss -Htn state established '( sport = :443 or sport = :80 or sport = :22 )' dst 10.200.1.2 | wc -l)"
[ "$left" = 0 ] || { S ss -tn >&2; fail "$left server-side connections of denied flows still established"; }
stop_gateway
# The UDP bursts' later datagrams were repeats of a recent verdict.
repeats="$(awk -F 'recent_repeats=' 'NF > 1 { n += $2 + 0 } END { print n + 0 }' "$work/gateway.log")"
[ "$repeats" -ge 1 ] || fail "recent_repeats=$repeats: no packet was given a recent verdict"

echo "== inspect bound flows"
start_gateway --inspect-bound
code="$(http -k --resolve api.example.com:443:10.200.2.2 https://api.example.com/)"; [ "$code" = 200 ] || fail "SNI allowed and bound: $code"
expect_event 'verdict=allow reason=sni_allowed .*name=api.example.com source=sni rulesets=team-a/app'
fails_fast curl -sk --max-time 4 --resolve evil.example.net:443:10.200.2.2 https://evil.example.net/
expect_event 'verdict=deny reason=sni_not_allowed .*name=evil.example.net source=sni'
# A ClientHello whose second part comes after the client's retransmission
# timeout: the held first segment is retransmitted (and nothing new sent
# until the server acknowledges it). The retransmission of held bytes is
# passed, so the rest arrives and the whole hello is judged.
read -r outcome port took <<<"$(split_hello 10.200.2.2 api.example.com 0.6)"
[ "$outcome" = tls ] || fail "hello in two sends 0.6 s apart, allowed SNI: $outcome after $took s (want the server's answer)"
expect_event "verdict=allow reason=sni_allowed proto=6 src=10.200.1.2:$port .*name=api.example.com"
[ "$(events_for "$port")" = 1 ] || fail "the 0.6 s split hello got $(events_for "$port") decisions (want 1)"
read -r outcome port took <<<"$(split_hello 10.200.2.2 evil.example.net 0.6)"
[ "$outcome" = reset ] || fail "hello in two sends 0.6 s apart, denied SNI: $outcome (want reset)"
expect_event "verdict=deny reason=sni_not_allowed proto=6 src=10.200.1.2:$port .*name=evil.example.net"
[ "$(events_for "$port")" = 1 ] || fail "the denied 0.6 s split hello got $(events_for "$port") decisions (want 1)"
# The server got the passed first part; the deny reset it there too.
sleep 0.3
left="$(S ss -Htn state established "( sport = :443 )" dst "10.200.1.2:$port" | wc -l)"
[ "$left" = 0 ] || fail "the server still has the denied split hello's connection (port $port)"
# Twenty at once, 0.15 s apart: every one gets its answer.
pids=()
for i in $(seq 20); do
  split_hello 10.200.2.2 api.example.com 0.15 >"$work/par.$i" &
  pids+=($!)
done
wait "${pids[@]}" || true # not the gateway, also a child of this shell
ok="$(cat "$work"/par.* | grep -c '^tls ' || true)"
[ "$ok" = 20 ] || { cat "$work"/par.* >&2; fail "20 parallel split hellos 0.15 s apart: $ok answered (want 20)"; }
stop_gateway
# ...because held retransmissions were passed (the workers' counters at exit).
passed="$(awk -F 'held_passed=' 'NF > 1 { n += $2 + 0 } END { print n + 0 }' "$work/gateway.log")"
[ "$passed" -ge 2 ] || fail "held_passed=$passed: the 0.6 s split hellos were not passed as retransmissions"

echo "== strict binding off"
start_gateway --no-strict
[ "$(http -k --resolve api.example.com:443:10.200.2.3 https://api.example.com/)" = 200 ] || fail "SNI allowed without binding"
expect_event 'verdict=allow reason=sni_allowed .*dst=10.200.2.3:443 name=api.example.com'
stop_gateway

echo "== audit"
start_gateway --audit
reply="$(C bash -c 'exec 3<>/dev/tcp/10.200.2.2/25; read -r banner <&3; echo "$banner"')" || fail "audit blocked port 25"
[ "$reply" = $'SSH-2.0-egressd-test\r' ] || fail "audit: got $reply"
expect_event 'verdict=audit:would-deny reason=port_not_in_policy .*dst=10.200.2.2:25'
stop_gateway

echo "== fail-closed"
start_gateway
# An established, allowed connection before the worker dies...
mkfifo "$work/go"
C python3 - "$work/go" >"$work/long.out" 2>&1 <<'PY' &
import socket, sys
s = socket.create_connection(("10.200.2.2", 7000), timeout=10)
f = s.makefile("rwb")
f.write(b"one\n"); f.flush(); print(f.readline().decode().strip(), flush=True)
open(sys.argv[1]).read()
f.write(b"two\n"); f.flush(); print(f.readline().decode().strip(), flush=True)
PY
longpid=$!
for _ in $(seq 30); do grep -q one "$work/long.out" && break; sleep 0.1; done
grep -q one "$work/long.out" || fail "long-lived connection did not start"
kill -9 "$gwpid"; wait "$gwpid" 2>/dev/null || true; gwpid=""
# ...keeps working (connmark, in the kernel); new flows get nothing.
echo go >"$work/go"
wait "$longpid" || fail "established connection broke when the worker died"
grep -q two "$work/long.out" || fail "no echo after the worker died"
[ "$(http --max-time 2 http://10.200.2.3:8080/)" = 000 ] || fail "new connection passed with no worker (not fail-closed)"
# After a restart new allowed flows work again.
start_gateway
[ "$(http http://10.200.2.3:8080/)" = 200 ] || fail "no recovery after restart"
stop_gateway

G "$bin/nfq_ruleset_tool" remove
echo "ok: nfq end-to-end"

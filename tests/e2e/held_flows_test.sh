#!/usr/bin/env bash
# egressd end to end: ClientHellos that do not fit in one segment (issue 7:
# "a post-quantum-sized ClientHello split over two segments; a client that
# stalls after the first segment"). From the pod, a real Go ClientHello with
# an X25519MLKEM768 key share (tests/sni/fixtures/go_pq.bin, 1525 bytes,
# more than one MSS) is replayed to nginx: whole, and in two send()s with a
# pause; then a client that sends only the first part and stalls.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${EGRESSD_BIN:-${1:-}}"
[ -x "$bin/egressd" ] || { echo "usage: EGRESSD_BIN=BUILD/bin $0 (or $0 BUILD/bin)"; exit 2; }
fixture="$here/../sni/fixtures/go_pq.bin"
[ -r "$fixture" ] || { echo "FAIL: missing $fixture"; exit 1; }
# shellcheck source=tests/e2e/harness.sh
. "$here/harness.sh"
e2e_start e2e-held
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3 # the system one: stdlib only, no shims

# hello_pod HOST FAMILY SNI MODE FIRST PAUSE: from the pod, resolve HOST
# through the pod's resolver (egressd: this binds the address), connect to
# 443 and send the Go PQ ClientHello with its SNI replaced by SNI (same
# length, so every length field stays right).
#   MODE whole: one send() (the kernel cuts it at the MSS);
#        split: FIRST bytes, PAUSE seconds, the rest;
#        stall: FIRST bytes, then nothing; wait up to PAUSE seconds.
# Prints "<what came back> len=<hello bytes> mss=<MSS> port=<local port>
# after=<seconds from the first send to the answer>", where what came back
# is tls:<first 6 bytes in hex>, reset, eof or timeout.
hello_pod() {
  in_pod "$py" - "$fixture" "$@" << 'PY'
import socket, sys, time
fixture, host, family, sni, mode, first, pause = sys.argv[1:8]
first, pause = int(first), float(pause)
hello = open(fixture, "rb").read()
orig = b"api.example.com"  # the SNI the fixture was captured with
assert hello.count(orig) == 1 and len(sni) == len(orig), "the SNI must be 15 bytes"
hello = hello.replace(orig, sni.encode())
fam = socket.AF_INET6 if family == "6" else socket.AF_INET
addr = socket.getaddrinfo(host, 443, fam, socket.SOCK_STREAM)[0]
s = socket.socket(addr[0], socket.SOCK_STREAM)
s.settimeout(5)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.connect(addr[4])
mss = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
t0 = time.monotonic()
if mode == "whole":
    s.sendall(hello)
else:
    s.sendall(hello[:first])
    if mode == "split":
        time.sleep(pause)
        s.sendall(hello[first:])
    else:
        s.settimeout(pause)
try:
    data = s.recv(6)
    out = ("tls:" + data.hex()) if data else "eof"
except ConnectionResetError:
    out = "reset"
except socket.timeout:
    out = "timeout"
print(f"{out} len={len(hello)} mss={mss} port={s.getsockname()[1]} after={time.monotonic() - t0:.2f}")
PY
}
# A TLS handshake record (0x16, TLS 1.2 record version) holding a ServerHello (2).
server_hello='^tls:160303....02 '
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<< "$2"; }
# log_count_is N ERE: egressd's log has exactly N lines matching ERE
log_count_is() { [ "$(grep -cE "$2" "$E2E_LOGS/egressd.log")" -eq "$1" ]; }
# server_conns PORT: established connections nginx still has from the pod's PORT
server_conns() { in_inet ss -Htn state established "( dport = :$1 )" | grep -c . ; }

mkdir -p "$dir/rules"
cat > "$dir/rules/app.yaml" << EOF
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: app, namespace: team-a}
spec:
  targets:
  - api.example.com:443
  - www.example.org:443
  - other.example.com:8080
EOF
write_egressd_config "$dir/egressd.toml" "$dir/rules"
# A short hold timeout (default 2 s), so a stalled client is cut quickly and
# the check below can tell the configured value from the default.
# A small flow table, to see that held flows are freed.
sed -i '/^\[nfqueue\]/a hold_timeout = "700ms"\nmax_held_flows = 20' "$dir/egressd.toml"
start_egressd "$bin/egressd" "$dir/egressd.toml" || exit 1

# Post-quantum-sized ClientHello, allowed name
out="$(hello_pod api.example.com 4 api.example.com whole 0 0)"
expect_ok "the PQ ClientHello is longer than one MSS ($(field len "$out") > $(field mss "$out"))" \
  test "$(field len "$out")" -gt "$(field mss "$out")"
expect_match "PQ ClientHello in one send (two segments), allowed SNI: ServerHello back" "$server_hello" "$out"
out="$(hello_pod api.example.com 4 api.example.com split 700 0.05)"
expect_match "PQ ClientHello in two sends 0.05 s apart, allowed SNI: ServerHello back" "$server_hello" "$out"
expect_ok "... one allow for the whole hello (the first part was held, not judged alone)" \
  wait_until 20 log_count_is 1 "event=verdict src=10\.77\.0\.2:$(field port "$out") .*verdict=allow reason=sni_allowed"
out="$(hello_pod www.example.org 6 www.example.org split 1000 0.05)"
expect_match "the same over IPv6: ServerHello back" "$server_hello" "$out"
expect_ok "the allowed split hellos are logged once each, as sni_allowed" \
  wait_until 20 log_count_is 3 'event=verdict .*proto=tcp verdict=allow reason=sni_allowed name=(api\.example\.com|www\.example\.org) name_from=sni'
expect_eq "... and nothing else was decided for them" 0 \
  "$(grep -c 'event=verdict .*reason=\(need_more_bytes\|hold_limit\|malformed_hello\|hold_timeout\)' "$E2E_LOGS/egressd.log")"

# Post-quantum-sized ClientHello, denied names. other.example.com resolves
# (allowed on 8080), so its address is bound; api.example.org is allowed
# nowhere. Both SNIs go to bound addresses on 443.
out="$(hello_pod other.example.com 4 api.example.org split 700 0.05)"
expect_match "PQ ClientHello in two sends, denied SNI: reset" '^reset ' "$out"
expect_ok "... logged as sni_not_allowed, one verdict for the whole hello" \
  wait_until 20 log_count_is 1 "event=verdict src=10\.77\.0\.2:$(field port "$out") .*verdict=deny reason=sni_not_allowed name=api\.example\.org"
expect_eq "... and nginx has no connection left from that client" 0 "$(server_conns "$(field port "$out")")"
out="$(hello_pod api.example.com 4 api.example.org whole 0 0)"
expect_match "PQ ClientHello in one send, denied SNI to an allowed name's address: reset" '^reset ' "$out"

# A pause longer than the client's retransmission timeout (0.2-0.4 s): the
# held first segment is retransmitted, and the client sends nothing new
# until the server acknowledges it. egressd passes the retransmission (the
# same bytes it holds), so the rest comes and the whole hello is judged
# (docs/nfq.md "Retransmissions of held bytes are passed").
out="$(hello_pod api.example.com 4 api.example.com split 700 0.6)"
expect_match "PQ ClientHello in two sends 0.6 s apart (past the RTO), allowed SNI: ServerHello back" "$server_hello" "$out"
expect_ok "... one allow for the whole hello" \
  wait_until 20 log_count_is 1 "event=verdict src=10\.77\.0\.2:$(field port "$out") .*verdict=allow reason=sni_allowed"
expect_eq "... and no other decision for it" 1 "$(grep -c "event=verdict src=10\.77\.0\.2:$(field port "$out") " "$E2E_LOGS/egressd.log")"
out="$(hello_pod other.example.com 4 api.example.org split 700 0.6)"
expect_match "PQ ClientHello in two sends 0.6 s apart, denied SNI: reset" '^reset ' "$out"
expect_ok "... logged once, as sni_not_allowed (not hold_timeout)" \
  wait_until 20 log_count_is 1 "event=verdict src=10\.77\.0\.2:$(field port "$out") .*verdict=deny reason=sni_not_allowed name=api\.example\.org"
expect_eq "... and no other decision for it" 1 "$(grep -c "event=verdict src=10\.77\.0\.2:$(field port "$out") " "$E2E_LOGS/egressd.log")"
sleep 0.3
expect_eq "... nginx got the first part, and was reset: no connection left from that client" 0 \
  "$(server_conns "$(field port "$out")")"

# A client that stalls after the first segment
stall_out="$dir/stall.out"
hello_pod api.example.com 4 api.example.com stall 700 5 > "$stall_out" &
stall_pid=$!
sleep 0.2
expect_eq "while a flow is held, other connections are served" 200 "$(curl_pod https://www.example.org/)"
wait "$stall_pid"
out="$(cat "$stall_out")"
expect_match "a client that stalls after the first segment is reset" '^reset ' "$out"
expect_ok "... after the configured hold timeout of 0.7 s (not the 2 s default): $(field after "$out") s" \
  awk -v a="$(field after "$out")" 'BEGIN { exit !(a >= 0.6 && a < 1.6) }'
expect_ok "... logged with reason=hold_timeout" \
  wait_until 20 grep -qE "event=verdict src=10\.77\.0\.2:$(field port "$out") .*verdict=deny reason=hold_timeout" "$E2E_LOGS/egressd.log"
expect_eq "... and the server's side was reset too (nginx keeps no connection)" 0 "$(server_conns "$(field port "$out")")"

# Many stalled clients at once, exactly as many as the flow table holds
# (max_held_flows = 20): each is reset on its own timeout, none evicted.
# Then as many PQ hellos at once (each held until its second segment): a
# table still full of stalled flows would evict one, logged as hold_limit.
hold_timeouts() { grep -c 'event=verdict .*verdict=deny reason=hold_timeout' "$E2E_LOGS/egressd.log"; }
before="$(hold_timeouts)"
for i in $(seq 20); do hello_pod api.example.com 4 api.example.com stall 700 5 > "$dir/stall.$i" & done
wait
expect_eq "20 stalled clients at once: every one is reset" 20 "$(cat "$dir"/stall.[0-9]* | grep -c "^reset ")"
expect_ok "... each on its hold timeout" wait_until 20 log_count_is $((before + 20)) 'event=verdict .*verdict=deny reason=hold_timeout'
expect_ok "... egressd is still running" egressd_running
expect_eq "... and still serves new connections" 200 "$(curl_pod https://api.example.com/)"
for i in $(seq 20); do hello_pod api.example.com 4 api.example.com whole 0 0 > "$dir/split.$i" & done
wait
expect_eq "then 20 PQ ClientHellos at once: every one gets its ServerHello" 20 \
  "$(cat "$dir"/split.[0-9]* | grep -cE "$server_hello")"
expect_eq "... the table was never full: nothing evicted (no hold_limit)" 0 \
  "$(grep -c 'reason=hold_limit' "$E2E_LOGS/egressd.log")"
# 20 clients at once, each pausing 0.15 s between its two sends: on a busy
# gateway some pass their RTO; every one still gets its ServerHello.
before="$(hold_timeouts)"
for i in $(seq 20); do hello_pod api.example.com 4 api.example.com split 700 0.15 > "$dir/gap.$i" & done
wait
expect_eq "20 PQ ClientHellos at once, two sends 0.15 s apart: every one gets its ServerHello" 20 \
  "$(cat "$dir"/gap.[0-9]* | grep -cE "$server_hello")"
expect_eq "... none held until the hold timeout" "$before" "$(hold_timeouts)"
summary

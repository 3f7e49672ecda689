#!/usr/bin/env bash
# End-to-end test of egressd's DNS service (issue 6) with real programs:
# unbound serves test zones on loopback as the upstream, the real egressd
# binary (NFQUEUE off, DNS on 127.0.0.1 port 0) runs in front of it with a
# rules directory, kdig and a raw-socket probe are the clients. What
# egressd decided and bound is read from its debug log (dns.query and
# dns.binding lines). Everything listens on 127.0.0.1 with free ports;
# nothing leaves the machine. Needs: unbound, kdig (knot-dnsutils), dig
# (bind9-dnsutils: unlike kdig it sends the name's case as typed), python3.
set -euo pipefail

bin="${EGRESSD_BIN:-$(cd "$(dirname "$0")/../.." && pwd)/build/bin}"
here="$(cd "$(dirname "$0")" && pwd)"
egressd="$bin/egressd"
probe="$here/dns_probe.py"
for tool in unbound kdig dig python3; do
  command -v "$tool" >/dev/null || { echo "SKIP-FAIL: $tool not installed" >&2; exit 1; }
done
[ -x "$egressd" ] || { echo "missing $egressd" >&2; exit 1; }

work="$(mktemp -d /tmp/egressd-dns-e2e.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

failures=0
pass() { echo "ok   - $1"; }
fail() { echo "FAIL - $1" >&2; failures=$((failures + 1)); }
check() {  # check DESCRIPTION COMMAND...
  local description="$1"; shift
  if "$@"; then pass "$description"; else fail "$description"; fi
}

# shellcheck source=tests/dns/unbound.sh
. "$here/unbound.sh"

# ---- upstream: unbound with authoritative test zones ----------------------
upstream_port="$(free_port)"
cat > "$work/example.test.zone" <<'EOF'
$ORIGIN example.test.
$TTL 300
@        IN SOA ns.example.test. admin.example.test. 1 3600 600 86400 60
@        IN NS  ns.example.test.
ns       IN A   192.0.2.1
api      IN A   192.0.2.10
api      IN AAAA 2001:db8::10
newly    IN A   192.0.2.11
evil     IN A   203.0.113.66
a.wild   IN A   192.0.2.20
wild     IN A   192.0.2.21
www      IN CNAME lb.example.test.
lb       IN CNAME edge.example.test.
edge  60 IN A   192.0.2.30
edge  60 IN A   192.0.2.31
rebind   IN A   169.254.169.254
private  IN A   10.9.9.9
internal IN A   10.1.2.3
svc      IN HTTPS 1 . alpn=h2 ech=AEX+DQBBpQAgACB/w== ipv4hint=192.0.2.40
hidden   IN A   10.8.8.8
txtdata  IN TXT "payload from the authoritative side"
*.t      IN A   192.0.2.77
*.wild   IN A   192.0.2.78
EOF
for i in $(seq 1 40); do echo "big IN A 198.51.100.$i"; done >> "$work/example.test.zone"
cat > "$work/cluster.local.zone" <<'EOF'
$ORIGIN cluster.local.
$TTL 30
@ IN SOA ns.cluster.local. admin.cluster.local. 1 3600 600 86400 30
@ IN NS ns.cluster.local.
ns IN A 10.96.0.10
kubernetes.default.svc IN A 10.96.0.1
EOF
# Ordinary browsing for the tunnel guard: 30 sites, five host names each.
site_zones=()
for i in $(seq 1 30); do
  {
    echo "\$ORIGIN site$i.test."
    echo '$TTL 300'
    echo "@ IN SOA ns.site$i.test. admin.site$i.test. 1 3600 600 86400 60"
    echo "@ IN NS ns.site$i.test."
    echo "ns IN A 192.0.2.1"
    for host in www cdn static api img; do echo "$host IN A 203.0.113.$i"; done
  } > "$work/site$i.test.zone"
  site_zones+=("site$i.test=$work/site$i.test.zone")
done
# The tunnel's domain: every name exists (an authoritative server that
# answers whatever it is sent, as a tunnel endpoint does).
cat > "$work/tunnel.test.zone" <<'EOF'
$ORIGIN tunnel.test.
$TTL 60
@ IN SOA ns.tunnel.test. admin.tunnel.test. 1 3600 600 86400 60
@ IN NS ns.tunnel.test.
ns IN A 192.0.2.1
* IN A 192.0.2.77
EOF
site_zones+=("tunnel.test=$work/tunnel.test.zone")
# Answers over 512 bytes come back truncated over UDP: egressd must retry
# over TCP. Every query unbound receives is logged: the far end's own
# record of what egressd let through.
unbound_auth_conf "$upstream_port" "example.test=$work/example.test.zone" \
  "cluster.local=$work/cluster.local.zone" "${site_zones[@]}" "max-udp-size: 512" "log-queries: yes" \
  > "$work/unbound.conf"
unbound_start "$work/unbound.conf" unbound
pids+=("$unbound_pid")
unbound_wait "$upstream_port" api.example.test 192.0.2.10 ||
  { cat "$work/unbound.log" >&2; echo "unbound did not start" >&2; exit 1; }

# A UDP "upstream" that never answers (for failover).
python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
while True:
    s.recvfrom(65535)
' > "$work/silent.port" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/silent.port" ] && break; sleep 0.1; done
silent_port="$(cat "$work/silent.port")"

# ---- rules ----------------------------------------------------------------
mkdir -p "$work/rules"
cat > "$work/rules/app.yaml" <<'EOF'
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: app, namespace: default}
spec:
  targets:
    - api.example.test:443
    - www.example.test:443
    - svc.example.test:443
    - big.example.test:443
    - "*.wild.example.test:443"
    - rebind.example.test:80
    - private.example.test:443
    - internal.example.test:5432
    - 10.1.2.0/24:5432
EOF

# start_egressd NAME [TOML-LINES...]: runs the real egressd (DNS only, no
# NFQUEUE) with the rules dir above and extra [dns] keys; sets ${NAME}_port
# and ${NAME}_pid. Logs at debug level: every DNS decision is a
# dns.query line and every binding a dns.binding line. EGRESSD_TOP: a line
# for the top of the file (mode); EGRESSD_RULES: another rules directory.
start_egressd() {
  local name="$1"; shift
  {
    if [ -n "${EGRESSD_TOP:-}" ]; then echo "$EGRESSD_TOP"; fi
    echo '[rules]'
    echo "dirs = [\"${EGRESSD_RULES:-rules}\"]"
    echo '# the zone answers with documentation addresses: public here'
    echo 'public_cidrs = ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"]'
    echo '[dns]'
    echo 'listen = ["127.0.0.1:0"]'
    printf '%s\n' "$@"
    echo '[nfqueue]'
    echo 'enabled = false'
    echo '[metrics]'
    echo 'enabled = false'
    echo '[control]'
    echo "socket = \"$name.sock\""
    echo '[log]'
    echo 'level = "debug"'
  } > "$work/$name.toml"
  "$egressd" --config "$work/$name.toml" > "$work/$name.out" 2> "$work/$name.log" &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 300); do grep -q 'event=egressd.started' "$work/$name.log" 2>/dev/null && break; sleep 0.05; done
  local port
  port="$(sed -n 's/.*event=dns.listening address=127.0.0.1:\([0-9]*\).*/\1/p' "$work/$name.log" | head -1)"
  [ -n "$port" ] || { cat "$work/$name.log" >&2; echo "egressd $name did not start" >&2; exit 1; }
  printf -v "${name}_port" '%s' "$port"
  printf -v "${name}_pid" '%s' "$pid"
}

start_egressd main "upstreams = [\"127.0.0.1:$upstream_port\"]" \
  "cluster_upstreams = [\"127.0.0.1:$upstream_port\"]" 'upstream_timeout = "1s"' \
  'tcp_idle_timeout = "1500ms"' 'max_tcp_clients = 8'
P="$main_port"
dig_() { kdig @127.0.0.1 -p "$P" +timeout=3 +retry=0 "$@"; }
# query_logged NAME OUTCOME [LOG]: egressd logged a decision for NAME with
# OUTCOME (in main.log unless LOG is given). The lines are written in
# batches (every 5 ms): wait up to a second.
query_logged() {
  local log="${3:-$work/main.log}"
  for _ in $(seq 100); do
    grep 'event=dns.query' "$log" | grep " name=$1 " | grep -q " outcome=$2" && return 0
    sleep 0.01
  done
  return 1
}
bindings() { grep 'event=dns.binding' "$work/main.log" || true; }

# ---- allowed, wildcard, denied ---------------------------------------------
out="$(dig_ +edns api.example.test A)"
check "allowed exact name resolves" grep -q $'api.example.test.*IN\tA\t192.0.2.10' <<<"$out"
check "allowed exact name: NOERROR" grep -q 'status: NOERROR' <<<"$out"
check "allowed AAAA resolves" grep -q '2001:db8::10' <<<"$(dig_ api.example.test AAAA +short)"
check "wildcard name resolves" grep -qx '192.0.2.20' <<<"$(dig_ a.wild.example.test +short)"

out="$(dig_ +edns wild.example.test A)"
check "wildcard does not cover its own suffix: NXDOMAIN" grep -q 'status: NXDOMAIN' <<<"$out"
out="$(dig_ +edns evil.example.test A)"
check "denied name: NXDOMAIN" grep -q 'status: NXDOMAIN' <<<"$out"
check "denied name: EDE 15 Blocked with reason" grep -q "EDE: 15 (Blocked): 'egressd: name not allowed by policy'" <<<"$out"
check "denied name: no answer" grep -q 'ANSWER: 0' <<<"$out"
out="$(dig_ +noedns evil.example.test A)"
check "denied without EDNS: no OPT in the answer" bash -c '! grep -q "EDNS PSEUDOSECTION" <<<"$1"' _ "$out"
check "denied decision logged" query_logged evil.example.test denied

# ---- cluster names pass unfiltered (even to private addresses) -------------
out="$(dig_ kubernetes.default.svc.cluster.local A +short)"
check "cluster name resolves unfiltered" grep -qx '10.96.0.1' <<<"$out"
check "cluster decision logged" query_logged kubernetes.default.svc.cluster.local cluster
check "cluster name: nothing bound" bash -c '! grep -q "name=kubernetes" <<<"$1"' _ "$(bindings)"

# ---- CNAME chain binds the final addresses to the asked name ---------------
out="$(dig_ www.example.test A +short)"
check "CNAME chain answer relayed" grep -qx '192.0.2.30' <<<"$out"
b="$(bindings)"
check "CNAME chain: 192.0.2.30 bound to www.example.test" grep -q 'name=www.example.test ip=192.0.2.30 ' <<<"$b"
check "CNAME chain: 192.0.2.31 bound to www.example.test" grep -q 'name=www.example.test ip=192.0.2.31 ' <<<"$b"
check "CNAME chain: intermediate names not bound" bash -c '! grep -Eq "name=(lb|edge).example.test" <<<"$1"' _ "$b"
# TTL 60 + 300 s grace (the default).
expires="$(sed -n 's/.*name=www.example.test ip=192.0.2.30 .*expires_in_s=\([0-9]*\).*/\1/p' <<<"$b" | head -1)"
check "binding expiry = TTL + grace (got ${expires:-none})" test "${expires:-0}" -ge 350 -a "${expires:-0}" -le 360

# ---- cache ------------------------------------------------------------------
dig_ +edns api.example.test A > /dev/null
check "repeated query answered from cache" query_logged api.example.test cache_hit
out="$(dig_ +edns api.example.test A)"
ttl="$(awk '$1=="api.example.test." && $4=="A" {print $2}' <<<"$out")"
check "cached answer keeps a TTL <= 300 (got ${ttl:-none})" test "${ttl:-999}" -le 300

# ---- truncation: upstream UDP answer truncated, retried over TCP ------------
out="$(dig_ +bufsize=4096 +ignore big.example.test A)"
check "truncated upstream answer retried over TCP: 40 records to a UDP client" grep -q 'ANSWER: 40' <<<"$out"
out="$(dig_ +noedns +ignore big.example.test A)"
check "too big for a 512-byte client: TC set" grep -Eq 'Flags: qr.* tc' <<<"$out"
out="$(dig_ +noedns big.example.test A 2>/dev/null)"
check "kdig's own TCP retry gets the full answer" grep -q 'ANSWER: 40' <<<"$out"
out="$(dig_ +tcp big.example.test A)"
check "TCP client gets the full answer" grep -q 'ANSWER: 40' <<<"$out"

# ---- rebinding ----------------------------------------------------------------
out="$(dig_ +edns rebind.example.test A)"
check "rebinding to 169.254.169.254 refused: NXDOMAIN" grep -q 'status: NXDOMAIN' <<<"$out"
check "rebinding refused: EDE 15 names the reason" grep -q "EDE: 15 (Blocked): 'egressd: answer points to a non-public address'" <<<"$out"
check "rebinding refused: address not handed out" bash -c '! grep -q 169.254.169.254 <<<"$1"' _ "$out"
check "rebinding to 10.9.9.9 refused" grep -q 'status: NXDOMAIN' <<<"$(dig_ +edns private.example.test A)"
check "private address named by a CIDR rule resolves" grep -qx '10.1.2.3' <<<"$(dig_ internal.example.test A +short)"
check "rebinding not bound" bash -c '! grep -Eq "ip=(169.254.169.254|10.9.9.9)" <<<"$1"' _ "$(bindings)"
check "address named by a CIDR rule bound" grep -q 'name=internal.example.test ip=10.1.2.3 ' <<<"$(bindings)"

# ---- ECH stripped from HTTPS answers ----------------------------------------
out="$(dig_ svc.example.test HTTPS +short)"
check "HTTPS answer relayed" grep -q 'alpn=h2' <<<"$out"
check "HTTPS answer: ech removed" bash -c '! grep -q "ech=" <<<"$1"' _ "$out"
out="$(kdig @127.0.0.1 -p "$upstream_port" svc.example.test HTTPS +short)"
check "(upstream itself does send ech)" grep -q 'ech=' <<<"$out"

# ---- TCP framing, pipelining, timeouts, limits, malformed input --------------
check "TCP: several queries per connection, pipelined and byte by byte" python3 "$probe" "$P" tcp-pipelined
check "UDP: zero-length, truncated, oversized, response packets survive" python3 "$probe" "$P" malformed-udp
check "wrong opcodes answered NOTIMP" python3 "$probe" "$P" opcodes
out="$(dig_ +edns CH TXT version.bind)"
check "CHAOS class refused" grep -q 'status: REFUSED' <<<"$out"
check "TCP: length prefix larger than what follows is dropped at the timeout" python3 "$probe" "$P" tcp-short-prefix
check "TCP: a client that never finishes sending is dropped" python3 "$probe" "$P" tcp-never-finishes
check "TCP: zero length prefix closes the connection" python3 "$probe" "$P" tcp-zero-length
check "TCP: clients over max_tcp_clients are refused" python3 "$probe" "$P" tcp-limit 8
check "TCP: a client that half-closes gets every pending answer" python3 "$probe" "$P" tcp-half-close
check "server still alive after the abuse" kill -0 "$main_pid"
for _ in $(seq 100); do  # query lines go out in batches every 5 ms
  malformed="$(grep 'event=dns.query' "$work/main.log" | grep -c ' outcome=malformed' || true)"
  [ "${malformed:-0}" -ge 4 ] && break
  sleep 0.01
done
check "malformed queries logged (got ${malformed:-none})" test "${malformed:-0}" -ge 4

# ---- policy changes apply to the next query, cached answers included --------
check "newly.example.test denied before reload" grep -q 'status: NXDOMAIN' <<<"$(dig_ +edns newly.example.test)"
check "api.example.test is cached before the change" query_logged api.example.test cache_hit
loads="$(grep -c 'event=policy.loaded' "$work/main.log")"
# As the controller writes: a new file, renamed over the old one.
sed 's/    - api.example.test:443/    - newly.example.test:443/' "$work/rules/app.yaml" > "$work/rules/.app.tmp"
mv "$work/rules/.app.tmp" "$work/rules/app.yaml"
for _ in $(seq 50); do [ "$(grep -c 'event=policy.loaded' "$work/main.log")" -gt "$loads" ] && break; sleep 0.05; done
check "rules change picked up without a signal" test "$(grep -c 'event=policy.loaded' "$work/main.log")" -gt "$loads"
check "newly allowed name resolves after reload" grep -qx '192.0.2.11' <<<"$(dig_ newly.example.test +short)"
out="$(dig_ +edns api.example.test A)"
check "removed name denied after reload although cached" grep -q 'status: NXDOMAIN' <<<"$out"
check "removed name: EDE says not allowed" grep -q "EDE: 15 (Blocked): 'egressd: name not allowed by policy'" <<<"$out"

# ---- failover: first upstream silent, second answers; all silent: SERVFAIL ---
start_egressd failover "upstreams = [\"127.0.0.1:$silent_port\", \"127.0.0.1:$upstream_port\"]" \
  'upstream_timeout = "300ms"'
start=$(date +%s%N)
out="$(kdig @127.0.0.1 -p "$failover_port" +timeout=5 +retry=0 a.wild.example.test A +short)"
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
check "timed-out upstream fails over to the next" grep -qx "192.0.2.20" <<<"$out"
check "failover took at least the upstream timeout (${elapsed_ms} ms)" test "$elapsed_ms" -ge 290
check "upstream timeout logged" grep -q "event=dns.upstream_timeout upstream=127.0.0.1:$silent_port" "$work/failover.log"

start_egressd dead "upstreams = [\"127.0.0.1:$silent_port\"]" 'upstream_timeout = "200ms"'
out="$(kdig @127.0.0.1 -p "$dead_port" +timeout=5 +retry=0 +edns a.wild.example.test A)"
check "all upstreams failing: SERVFAIL" grep -q 'status: SERVFAIL' <<<"$out"
check "upstream error logged" query_logged a.wild.example.test upstream_error "$work/dead.log"
# Issue 12 item 9: say why (RFC 8914), and warn, but not once per query.
check "timed-out upstreams: EDE 22 No Reachable Authority" grep -q 'EDE: 22 (No Reachable Authority)' <<<"$out"
kdig @127.0.0.1 -p "$dead_port" +timeout=5 +retry=0 b.wild.example.test A > /dev/null || true
kdig @127.0.0.1 -p "$dead_port" +timeout=5 +retry=0 c.wild.example.test A > /dev/null || true
check "dead upstream: one warning for three failures (rate-limited)" \
  test "$(grep 'level=warn' "$work/dead.log" | grep -c 'event=dns.upstream_failed')" -eq 1
check "dead upstream warning names upstream and cause" \
  grep -q "event=dns.upstream_failed upstreams=127.0.0.1:$silent_port cause=timeout" "$work/dead.log"
closed_port="$(free_port)"  # nothing listens: ICMP port unreachable
start_egressd unreachable "upstreams = [\"127.0.0.1:$closed_port\"]" 'upstream_timeout = "2s"'
out="$(kdig @127.0.0.1 -p "$unreachable_port" +timeout=5 +retry=0 +edns a.wild.example.test A)"
check "refused upstream: SERVFAIL" grep -q 'status: SERVFAIL' <<<"$out"
check "refused upstream: EDE 23 Network Error" grep -q 'EDE: 23 (Network Error)' <<<"$out"
check "refused upstream warning says network_error" \
  grep -q 'event=dns.upstream_failed.*cause=network_error' "$work/unreachable.log"

# ---- 0x20: the name's case as asked in the decision, matched without it ---
# dig, not kdig: kdig lower-cases the name before sending it.
bdig() { dig @127.0.0.1 -p "$P" +tries=1 +time=3 "$@"; }
out="$(bdig NeWlY.eXaMpLe.TeSt A +short)"
check "mixed-case name matches the lower-case rule" grep -qx '192.0.2.11' <<<"$out"
check "decision keeps the case as asked" query_logged NeWlY.eXaMpLe.TeSt allowed
bdig EvIl.ExAmPlE.TeSt A > /dev/null
check "denial keeps the case as asked" query_logged EvIl.ExAmPlE.TeSt denied

# ---- audit mode (issue 12 item 1): answer everything, report "would deny" --
# seen_upstream NAME [TYPE]: unbound received a query for NAME (of TYPE).
seen_upstream() { grep -qi "info: 127.0.0.1 $1\. ${2:-A} IN" "$work/unbound.log"; }
EGRESSD_TOP='mode = "audit"' start_egressd audit "upstreams = [\"127.0.0.1:$upstream_port\"]"
out="$(kdig @127.0.0.1 -p "$audit_port" +timeout=3 +retry=0 +edns evil.example.test A)"
check "audit: a name no rule allows resolves" grep -q $'evil.example.test.*IN\tA\t203.0.113.66' <<<"$out"
check "audit: no EDE on the answer" bash -c '! grep -q "EDE:" <<<"$1"' _ "$out"
check "audit: logged as would deny, with its reason" query_logged evil.example.test \
  'allowed .*reason=not_allowed verdict=audit would=deny' "$work/audit.log"
check "audit: the binding is recorded" grep -q 'event=dns.binding name=evil.example.test ip=203.0.113.66 ' "$work/audit.log"
out="$(kdig @127.0.0.1 -p "$audit_port" +timeout=3 +retry=0 +edns hidden.example.test A)"
check "audit: rebinding still refused" grep -q "EDE: 15 (Blocked): 'egressd: answer points to a non-public address'" <<<"$out"
check "audit: rebinding address not handed out" bash -c '! grep -q 10.8.8.8 <<<"$1"' _ "$out"
if [ -x "$bin/egressctl" ]; then
  timeout 5 "$bin/egressctl" watch --socket "$work/audit.sock" -c 1 --no-colour dns > "$work/audit.watch" 2>&1 &
  watch_pid=$!
  sleep 0.5
  kdig @127.0.0.1 -p "$audit_port" +timeout=3 +retry=0 ns.example.test A > /dev/null
  wait "$watch_pid" || true
  check "audit: the watch line says would deny and why" \
    grep -q "ns.example.test AUDIT would deny not_allowed" "$work/audit.watch"
fi
# From enforce to audit with SIGHUP.
start_egressd hup "upstreams = [\"127.0.0.1:$upstream_port\"]"
out="$(kdig @127.0.0.1 -p "$hup_port" +timeout=3 +retry=0 +edns evil.example.test A)"
check "enforce (before SIGHUP): denied" grep -q 'status: NXDOMAIN' <<<"$out"
sed -i '1i mode = "audit"' "$work/hup.toml"
kill -HUP "$hup_pid"
for _ in $(seq 100); do grep -q 'event=config.reloaded mode=audit' "$work/hup.log" && break; sleep 0.05; done
out="$(kdig @127.0.0.1 -p "$hup_port" +timeout=3 +retry=0 +edns evil.example.test A)"
check "audit after SIGHUP: resolves" grep -q $'evil.example.test.*IN\tA\t203.0.113.66' <<<"$out"

# ---- world access (issue 12 item 2): addresses only, and a tunnel budget ---
mkdir -p "$work/world-rules"
cat > "$work/world-rules/world.yaml" <<'YAML'
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: world, namespace: default}
spec:
  targets:
    - "*:443"
    - api.example.test:443
    - "*.wild.example.test:443"
YAML
EGRESSD_RULES=world-rules start_egressd world "upstreams = [\"127.0.0.1:$upstream_port\"]" \
  'tunnel_guard_names = 20' 'tunnel_guard_window = "10m"'
W="$world_port"
wdig() { kdig @127.0.0.1 -p "$W" +timeout=3 +retry=0 "$@"; }
check "policy log says world access makes every name resolvable" \
  grep -q 'event=rules.problem .*world access makes every name resolvable' "$work/world.log"
check "world access: a name no other rule names resolves (A)" grep -qx '192.0.2.11' <<<"$(wdig newly.example.test A +short)"
out="$(wdig +edns txtdata.example.test TXT)"
check "world access: TXT denied, NODATA" grep -q 'status: NOERROR' <<<"$out"
check "world access: TXT denied with EDE 15 and why" \
  grep -q "EDE: 15 (Blocked): 'egressd: only A/AAAA queries for names allowed by world access'" <<<"$out"
check "world access: the TXT data never came back" bash -c '! grep -q "payload from" <<<"$1"' _ "$out"
check "world access: the TXT query never reached the far end" bash -c '! grep -qi "info: 127.0.0.1 txtdata.example.test. TXT IN" "$1"' _ "$work/unbound.log"
for type in ANY NULL MX HTTPS; do
  out="$(wdig +edns "q$type.example.test" "$type")"
  check "world access: $type denied with EDE 15" grep -q "EDE: 15 (Blocked)" <<<"$out"
done
check "world access: reason logged" query_logged qmx.example.test 'denied .*reason=world_non_address_query' "$work/world.log"
wdig api.example.test TXT > /dev/null
check "control: TXT for a name an exact rule allows is forwarded" seen_upstream api.example.test TXT

# Ordinary browsing: 150 names over 30 registrable domains, all resolve.
browse_ok=0
for i in $(seq 1 30); do
  args=()
  for host in www cdn static api img; do args+=("$host.site$i.test" A); done
  browse_ok=$((browse_ok + $(wdig +short "${args[@]}" | grep -c "^203\.0\.113\.$i$" || true)))
done
check "browsing 30 sites x 5 names: all 150 resolve (got $browse_ok)" test "$browse_ok" -eq 150
check "browsing: the tunnel guard did not trip" bash -c '! grep -q "event=dns.tunnel_guard" "$1"' _ "$work/world.log"

# A tunnel: 40 random labels under one domain, budget 20.
args=()
for _ in $(seq 40); do args+=("$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n').t.tunnel.test" A); done
out="$(wdig +edns "${args[@]}")"
answered="$(grep -c $'IN\tA\t192.0.2.77' <<<"$out" || true)"
blocked="$(grep -c "EDE: 15 (Blocked): 'egressd: too many distinct names under this domain (DNS tunnel guard)'" <<<"$out" || true)"
check "tunnel burst: the first 20 names resolve (got $answered)" test "$answered" -eq 20
check "tunnel burst: the other 20 are refused by the guard (got $blocked)" test "$blocked" -eq 20
reached=0
for ((i = 0; i < ${#args[@]}; i += 2)); do
  if seen_upstream "${args[i]}"; then reached=$((reached + 1)); fi
done
check "tunnel burst: only 20 names reached the far end (got $reached)" test "$reached" -eq 20
check "tunnel guard: one warning naming client and domain" \
  test "$(grep -c 'event=dns.tunnel_guard client=127.0.0.1 domain=tunnel.test' "$work/world.log")" -eq 1
check "tunnel guard: each refusal is a decision with its reason" \
  grep -q 'event=dns.query .*outcome=denied .*reason=dns_tunnel_budget' "$work/world.log"
# Names a wildcard rule allows are never budgeted.
args=()
for i in $(seq 40); do args+=("n$i.wild.example.test" A); done
check "wildcard names: 40 under one domain all resolve" \
  test "$(wdig +short "${args[@]}" | grep -c '^192\.0\.2\.78$')" -eq 40

start_egressd refused "upstreams = [\"127.0.0.1:$upstream_port\"]" 'deny_rcode = "REFUSED"'
out="$(kdig @127.0.0.1 -p "$refused_port" +timeout=3 +edns evil.example.test A)"
check "deny_rcode = REFUSED" grep -q 'status: REFUSED' <<<"$out"
check "deny_rcode = REFUSED keeps EDE 15" grep -q "EDE: 15 (Blocked): 'egressd: name not allowed by policy'" <<<"$out"
out="$(kdig @127.0.0.1 -p "$refused_port" +timeout=3 a.wild.example.test A +short)"
check "deny_rcode = REFUSED: allowed names still resolve" grep -qx '192.0.2.20' <<<"$out"

# ---- clean shutdown (under ASan this also checks for leaks) ------------------
kill -TERM "$main_pid"
status=0
wait "$main_pid" || status=$?
check "SIGTERM stops egressd cleanly (exit $status)" test "$status" -eq 0
check "egressd logged its stop" grep -q 'event=egressd.stopped' "$work/main.log"
check "no sanitizer reports" bash -c '! grep -Eq "Sanitizer|runtime error:" "$1"/*.log' _ "$work"

if [ "$failures" -ne 0 ]; then
  echo "---- main.log (tail)" >&2; tail -40 "$work/main.log" >&2
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "all DNS end-to-end checks passed"

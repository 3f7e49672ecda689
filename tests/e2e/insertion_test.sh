#!/usr/bin/env bash
# Insertion attacks on the first-packet decision (issue 18, docs/nfq.md
# "Insertion"): a hand-made TCP client (scapy) sends a first payload naming
# an allowed name that the server discards — stale TCP timestamp (PAWS),
# TTL / hop limit expiring one hop after the gateway, an unexpected TCP MD5
# option, a bad checksum, a sequence number outside the window — and then
# the real one, at the same sequence number, naming a denied name (or one
# segment that straddles the stream's start: the allowed payload before
# it, the denied one from the first byte on), to the
# address egressd's DNS handed out for the allowed name. The judge is the
# server's own record of every ClientHello / request it processed: the
# denied names must never appear. Controls in the same run: the same client
# without a decoy is answered (the harness sees what passes), and with
# EGRESSD_INSERTION_EXPECT_BYPASS=1 (run against a build without the guard)
# the test passes only if the PAWS decoy does get through.
#
# Four namespaces of its own, so a router sits between gateway and server:
#
#   pod ── gw (egressd) ── router ── server
#   10.88.0.2, fd88:0::2 | 10.88.0.1, 198.51.100.1 | 198.51.100.2, 203.0.113.1 | 203.0.113.2
#   (IPv6: fd88:0::/64, 2001:db8:1::/64, 2001:db8:113::/64; documentation
#   ranges, which egressd's DNS rebinding guard treats as public)
#
# The server also runs unbound (203.0.113.53, egressd's upstream) with
# allowed.example.com → 203.0.113.10 / 2001:db8:113::10 and the TLS/HTTP servers.
#
# EGRESSD_INSERTION_KERNEL_GUARD=auto (default) | off: nfqueue.kernel_guard.
# With auto the test also proves the kernel guard ran (its gauge, no
# SYN-ACK queued, starts and confirmations counted by the kernel path),
# and, where the kernel verdict loads, that its program allowed the decoys
# (check 2 caught what followed) and that a name evicted from egressd's
# binding table (40 names on one address) leaves the program's names map
# too.
# nocap: auto, but egressd runs without CAP_BPF and CAP_SYS_ADMIN, so the
# programs cannot load: it must fall back to the user-space guard (log
# line, gauge 0) and stop the same attacks.
set -uo pipefail
kernel_guard="${EGRESSD_INSERTION_KERNEL_GUARD:-auto}"
launch=()
if [ "$kernel_guard" = nocap ]; then
  command -v capsh > /dev/null || { echo "SKIP: capsh (libcap2-bin) is not installed"; exit 77; }
  kernel_guard=auto
  launch=(capsh --drop=cap_bpf,cap_sys_admin --)
  nocap=1
fi
bin="${EGRESSD_BIN:?}"
here="${EGRESSD_SOURCE_DIR:?}/tests/e2e"
py=/usr/bin/python3
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
$py -c 'import scapy' 2> /dev/null || { echo "SKIP: python3-scapy is not installed"; exit 77; }

id=$$
pod="egressd-ins-$id-pod" gw="egressd-ins-$id-gw" rt="egressd-ins-$id-rt" srv="egressd-ins-$id-srv"
work="$(mktemp -d /tmp/egressd-insertion.XXXXXX)"
passed=0 failed=0
P() { ip netns exec "$pod" "$@"; }
G() { ip netns exec "$gw" "$@"; }
R() { ip netns exec "$rt" "$@"; }
S() { ip netns exec "$srv" "$@"; }
cleanup() {
  set +e
  [ -n "${egressd_pid:-}" ] && kill "$egressd_pid" 2> /dev/null && wait "$egressd_pid" 2> /dev/null
  G "$bin/egressd" --uninstall --config "$work/egressd.toml" > /dev/null 2>&1
  for ns in "$pod" "$gw" "$rt" "$srv"; do
    for p in $(ip netns pids "$ns" 2> /dev/null); do kill "$p" 2> /dev/null; done
  done
  sleep 0.2
  for ns in "$pod" "$gw" "$rt" "$srv"; do
    for p in $(ip netns pids "$ns" 2> /dev/null); do kill -9 "$p" 2> /dev/null; done
    ip netns del "$ns" 2> /dev/null
  done
  if [ "${E2E_KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ok() { passed=$((passed + 1)); echo "ok: $1"; }
bad() { failed=$((failed + 1)); echo "FAIL: $1${2:+ ($2)}"; }

for ns in "$pod" "$gw" "$rt" "$srv"; do
  ip netns add "$ns"
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
  ip -n "$ns" link set lo up
done
ip link add eth0 netns "$pod" type veth peer name pod0 netns "$gw"
ip link add up0 netns "$gw" type veth peer name down0 netns "$rt"
ip link add up0 netns "$rt" type veth peer name eth0 netns "$srv"
addr() { ip -n "$1" addr add "$3" dev "$2"; ip -n "$1" link set "$2" up; }
addr "$pod" eth0 10.88.0.2/24; addr "$pod" eth0 fd88:0::2/64
addr "$gw" pod0 10.88.0.1/24; addr "$gw" pod0 fd88:0::1/64
addr "$gw" up0 198.51.100.1/24; addr "$gw" up0 2001:db8:1::1/64
addr "$rt" down0 198.51.100.2/24; addr "$rt" down0 2001:db8:1::2/64
addr "$rt" up0 203.0.113.1/24; addr "$rt" up0 2001:db8:113::1/64
for a in 203.0.113.2/24 203.0.113.10/24 203.0.113.53/24 2001:db8:113::2/64 2001:db8:113::10/64 2001:db8:113::53/64; do
  addr "$srv" eth0 "$a"
done
ip -n "$pod" route add default via 10.88.0.1; ip -n "$pod" -6 route add default via fd88:0::1
ip -n "$gw" route add default via 198.51.100.2; ip -n "$gw" -6 route add default via 2001:db8:1::2
ip -n "$rt" route add 10.88.0.0/24 via 198.51.100.1; ip -n "$rt" -6 route add fd88:0::/64 via 2001:db8:1::1
ip -n "$srv" route add default via 203.0.113.1; ip -n "$srv" -6 route add default via 2001:db8:113::1
for ns in "$gw" "$rt"; do ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1; done
# The hand-made client's own kernel knows nothing of its connections and
# would reset them: drop its RSTs (standard practice with raw sockets).
P iptables -A OUTPUT -p tcp --tcp-flags RST RST -j DROP
P ip6tables -A OUTPUT -p tcp --tcp-flags RST RST -j DROP

# Server side: DNS, TLS and HTTP, each recording what it processed.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=allowed.example.com \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2> /dev/null
cat > "$work/unbound.conf" << EOF
server:
  interface: 203.0.113.53
  port: 53
  do-daemonize: no
  use-syslog: no
  logfile: ""
  chroot: ""
  username: ""
  directory: "$work"
  pidfile: "$work/unbound.pid"
  num-threads: 1
  module-config: "iterator"
  access-control: 0.0.0.0/0 allow
  local-zone: "." refuse
  local-zone: "example.com." static
  local-data: "allowed.example.com. 300 IN A 203.0.113.10"
  local-data: "allowed.example.com. 300 IN AAAA 2001:db8:113::10"
  local-zone: "many.example.com." redirect
  local-data: "many.example.com. 300 IN A 203.0.113.10"
EOF
S unbound -d -c "$work/unbound.conf" > "$work/unbound.log" 2>&1 &
: > "$work/server.log"
S $py -u "$here/insertion.py" servers "$work/server.log" "$work/cert.pem" "$work/key.pem" > "$work/servers.log" 2>&1 &
for _ in $(seq 50); do grep -q ready "$work/servers.log" 2> /dev/null && break; sleep 0.1; done
for _ in $(seq 50); do S dig +time=1 +tries=1 @203.0.113.53 allowed.example.com A > /dev/null 2>&1 && break; sleep 0.1; done

# egressd on the gateway: allowed.example.com on 443 and 80, strict binding.
mkdir -p "$work/rules"
cat > "$work/rules/app.yaml" << 'EOF'
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: app, namespace: team-a}
spec:
  targets: ["allowed.example.com:443", "allowed.example.com:80", "*.many.example.com:443"]
EOF
cat > "$work/egressd.toml" << EOF
mode = "enforce"
[rules]
dirs = ["$work/rules"]
strict_binding = true
# The "internet" here is documentation space, internal by default.
public_cidrs = ["198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"]
[dns]
listen = ["10.88.0.1:53"]
upstreams = ["203.0.113.53:53"]
[nfqueue]
enabled = true
queues = [0]
install_rules = true
kernel_guard = "$kernel_guard"
protected_cidrs = ["10.88.0.0/24", "fd88:0::/64"]
[control]
socket = "$work/control.sock"
[metrics]
listen = "127.0.0.1:9153"
EOF
if [ "${nocap:-0}" = 1 ]; then
  G "${launch[@]}" -c "exec '$bin/egressd' --config '$work/egressd.toml'" > "$work/egressd.log" 2>&1 &
else
  G "$bin/egressd" --config "$work/egressd.toml" > "$work/egressd.log" 2>&1 &
fi
egressd_pid=$!
for _ in $(seq 100); do grep -q egressd.started "$work/egressd.log" && break; sleep 0.1; done
grep -q egressd.started "$work/egressd.log" || { echo "FAIL: egressd did not start"; tail -20 "$work/egressd.log"; exit 1; }

# The binding, through egressd's DNS (strict binding needs it).
[ "$(P dig +short +time=2 +tries=1 @10.88.0.1 allowed.example.com A)" = 203.0.113.10 ] && ok "DNS binds allowed.example.com (v4)" || bad "DNS v4"
[ "$(P dig +short +time=2 +tries=1 @10.88.0.1 allowed.example.com AAAA)" = 2001:db8:113::10 ] && ok "DNS binds allowed.example.com (v6)" || bad "DNS v6"

attack() {  # attack DST PROTO CASE...: "CASE OUTCOME" lines into $work/out
  P $py "$here/insertion.py" attack "$@" > "$work/out" 2> "$work/attack.err" || { cat "$work/attack.err"; }
  cat "$work/out"
}
outcome() { awk -v c="$1" '$1 == c { print $2 }' "$work/out"; }
processed() { grep -c -- "$1" "$work/server.log" || true; }

run_cases() {  # run_cases LABEL DST PROTO KEY CASE...
  local label=$1 dst=$2 proto=$3 key=$4 c; shift 4
  local before_allowed
  before_allowed="$(processed "$key allowed.example.com")"
  attack "$dst" "$proto" control "$@"
  # Control: the hand-made client with the allowed name is answered, and
  # the server records the name (so the harness can see a bypass).
  [ "$(processed "$key allowed.example.com")" -gt "$before_allowed" ] &&
    [ "$(outcome control)" = "$proto" ] &&
    ok "$label control: allowed name processed and answered" ||
    bad "$label control: allowed name not answered ($(outcome control))"
  for c in "$@"; do
    local n
    n="$(processed "$key evil-$c.example.com")"
    if [ "${EGRESSD_INSERTION_EXPECT_BYPASS:-0}" = 1 ] && [ "$c" = paws ]; then
      [ "$n" -gt 0 ] && ok "$label $c: bypass shown without the guard" || bad "$label $c: no bypass without the guard"
      continue
    fi
    [ "$n" = 0 ] && ok "$label $c decoy: the server never processed evil-$c ($(outcome "$c"))" ||
      bad "$label $c decoy: the server processed evil-$c.example.com"
  done
}

echo "== TLS over IPv4"
run_cases "tls4" 203.0.113.10 tls sni paws ttl md5 checksum window straddle
echo "== HTTP over IPv4"
run_cases "http4" 203.0.113.10 http host paws ttl md5 checksum window straddle
echo "== TLS over IPv6"
run_cases "tls6" 2001:db8:113::10 tls sni paws ttl md5 checksum window straddle
echo "== HTTP over IPv6"
run_cases "http6" 2001:db8:113::10 http host paws ttl md5 checksum window straddle

if [ "${EGRESSD_INSERTION_EXPECT_BYPASS:-0}" != 1 ]; then
  # Real clients are not affected: curl with the bound name, over both families.
  code="$(P curl -sk -o /dev/null -w '%{http_code}' --max-time 4 --resolve allowed.example.com:80:203.0.113.10 http://allowed.example.com/)"
  [ "$code" = 200 ] && ok "curl (HTTP) to the allowed name" || bad "curl (HTTP) got $code"
  sleep 0.5
  grep -q 'reason=judged_bytes_differ' "$work/egressd.log" && ok "egressd logged judged_bytes_differ" ||
    bad "no judged_bytes_differ decision in the log"
  metrics="$(G curl -s --max-time 3 http://127.0.0.1:9153/metrics)"
  grep -Eq '^egressd_nfq_reasons_total\{.*reason="judged_bytes_differ".*\} [1-9]' <<< "$metrics" &&
    ok "... and counted it" || bad "egressd_nfq_reasons_total has no judged_bytes_differ"
  grep -Eq '^egressd_nfq_confirmed_total\{queue="0"\} [1-9]' <<< "$metrics" &&
    ok "the controls' allows were confirmed by the server (egressd_nfq_confirmed_total)" ||
    bad "egressd_nfq_confirmed_total is 0"
  # The guard's server packets are counted apart (bench/gateway's packets
  # per connection): SYN-ACKs for the stream starts, and every confirmation
  # is a server packet that is not a SYN-ACK.
  counter() { awk -v m="$1" '$1 == m "{queue=\"0\"}" {print $2}' <<< "$metrics"; }
  replies="$(counter egressd_nfq_replies_total)" synacks="$(counter egressd_nfq_reply_syn_acks_total)"
  confirmed="$(counter egressd_nfq_confirmed_total)"
  kstarts="$(counter egressd_nfq_kernel_starts_total)" kconfirmed="$(counter egressd_nfq_kernel_confirmed_total)"
  active="$(awk '$1 == "egressd_nfq_kernel_guard_active" {print $2}' <<< "$metrics")"
  echo "server packets read: ${replies:-none}, SYN-ACKs ${synacks:-none}, confirmations ${confirmed:-none}" \
    "(kernel guard active ${active:-none}: starts ${kstarts:-none}, confirmations ${kconfirmed:-none})"
  if [ "$kernel_guard" = off ] || [ "${nocap:-0}" = 1 ]; then
    [ "${active:-}" = 0 ] && ok "kernel guard off (egressd_nfq_kernel_guard_active 0)" || bad "kernel guard gauge: ${active:-none}"
    if [ "${nocap:-0}" = 1 ]; then
      grep -q 'event=nfq.kernel_guard_unavailable' "$work/egressd.log" &&
        ok "without CAP_BPF: logged nfq.kernel_guard_unavailable and fell back" ||
        bad "no nfq.kernel_guard_unavailable line without CAP_BPF"
    fi
    [ "${synacks:-0}" -ge 1 ] && [ "$((${replies:-0} - synacks))" -ge "${confirmed:-1}" ] &&
      ok "user space read the SYN-ACKs and every confirmation" || bad "user-space guard counters"
  else
    # The same attacks were stopped with the checks in the kernel: no
    # SYN-ACK reached user space, the starts judged came from the kernel's
    # map, and the kernel confirmed allows.
    [ "${active:-}" = 1 ] && ok "kernel guard active (egressd_nfq_kernel_guard_active 1)" || bad "kernel guard gauge: ${active:-none}"
    [ "${synacks:-1}" = 0 ] && [ "${kstarts:-0}" -ge 8 ] &&
      ok "no SYN-ACK queued; $kstarts stream starts read from the kernel" || bad "SYN-ACKs ${synacks:-none}, kernel starts ${kstarts:-none}"
    [ "${kconfirmed:-0}" -ge 1 ] && ok "the kernel confirmed $kconfirmed allows" || bad "the kernel confirmed ${kconfirmed:-none}"
    # The kernel verdict (where it loads): the decoys name the allowed
    # name, so the program let them go in the kernel; the worker adopted
    # them and check 2 still caught the denied payload behind each.
    kverdict="$(awk '$1 == "egressd_nfq_kernel_verdict_active" {print $2}' <<< "$metrics")"
    kverdicts="$(counter egressd_nfq_kernel_verdicts_total)"
    if [ "${kverdict:-0}" = 1 ]; then
      [ "${kverdicts:-0}" -ge 8 ] && ok "the kernel verdict allowed $kverdicts first payloads (decoys included)" ||
        bad "kernel verdicts: ${kverdicts:-none}"
      # An evicted binding: 40 names bound to 203.0.113.10 push the oldest
      # out of egressd's binding table (32 names per address); the table
      # tells the feeder, which deletes the name from the kernel's names
      # map too. So n1's hello is not allowed by the program: it is queued
      # and denied in user space (sni_not_bound, strict binding), and the
      # server never reads it. Before that deletion the program allowed it
      # and the worker could only withdraw it after the server had it.
      for i in $(seq 40); do P dig +short +time=2 +tries=1 @10.88.0.1 "n$i.many.example.com" A > /dev/null; done
      tls_to() { P curl -sk -o /dev/null --max-time 3 --resolve "$1:443:203.0.113.10" "https://$1/" 2> /dev/null; }
      # The program allows only within the worker's consumer lease, which
      # the 40 queries may have outlasted: one connection renews it.
      tls_to n39.many.example.com
      metrics="$(G curl -s --max-time 2 http://127.0.0.1:9153/metrics)"
      before="$(counter egressd_nfq_kernel_verdicts_total)"
      tls_to n1.many.example.com
      sleep 0.5
      metrics="$(G curl -s --max-time 2 http://127.0.0.1:9153/metrics)"
      [ "$(counter egressd_nfq_kernel_verdicts_total)" = "$before" ] &&
        [ "$(counter egressd_nfq_kernel_verdict_disagreements_total)" = 0 ] &&
        ok "evicted binding: n1's hello not allowed by the kernel verdict, no disagreement" ||
        bad "n1: kernel verdicts $before -> $(counter egressd_nfq_kernel_verdicts_total), disagreements $(counter egressd_nfq_kernel_verdict_disagreements_total)"
      grep -q 'verdict=deny reason=sni_not_bound .*name=n1.many.example.com' "$work/egressd.log" &&
        [ "$(processed "sni n1.many.example.com")" = 0 ] &&
        ok "... denied in user space (sni_not_bound); the server never read it" ||
        bad "n1: no sni_not_bound deny in the log, or the server read it ($(processed "sni n1.many.example.com"))"
      # n1's client waited for its answer until curl gave up, past the
      # lease: renew it again (queued or not), then count n40 alone.
      tls_to n38.many.example.com
      metrics="$(G curl -s --max-time 2 http://127.0.0.1:9153/metrics)"
      before="$(counter egressd_nfq_kernel_verdicts_total)"
      tls_to n40.many.example.com
      sleep 0.5
      metrics="$(G curl -s --max-time 2 http://127.0.0.1:9153/metrics)"
      [ "$(counter egressd_nfq_kernel_verdicts_total)" = $((before + 1)) ] && [ "$(processed "sni n40.many.example.com")" -ge 1 ] &&
        [ "$(counter egressd_nfq_kernel_verdict_disagreements_total)" = 0 ] &&
        ok "a name still bound there: allowed by the kernel verdict, adopted, processed by the server" ||
        bad "n40: kernel verdicts $before -> $(counter egressd_nfq_kernel_verdicts_total), server $(processed "sni n40.many.example.com")" \
          "$(grep 'n40.many' "$work/egressd.log")"
    else
      echo "note: the kernel verdict is not active here (gauge ${kverdict:-none})"
    fi
  fi
fi
[ -n "${KG_DEBUG:-}" ] && G iptables -L EGRESSD -v -n -x | head -12
echo "--- server record"; sort "$work/server.log" | uniq -c
echo "--- decisions"; grep -o 'verdict=[a-z-]* reason=[a-z_]*' "$work/egressd.log" | sort | uniq -c
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]

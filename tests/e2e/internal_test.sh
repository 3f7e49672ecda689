#!/usr/bin/env bash
# World access is the public internet only (issue 19; docs/nfq.md "Internal
# addresses"): with "*:80" and "*:443" in force, a pod tries what an
# attacker would — the cloud metadata service, the VPC's private ranges,
# CGNAT, IPv6 unique local, and the same through NAT64 and 6to4 addresses,
# by address and by a name that resolves there, over TCP and QUIC (UDP
# 443). Servers really listen on those addresses in the internet namespace
# and record what reached them; a public address on the same ports is the
# control, and an explicit CIDR target opens exactly one of them.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${EGRESSD_BIN:-${1:-}}"
[ -x "$bin/egressd" ] || { echo "usage: EGRESSD_BIN=BUILD/bin $0 (or $0 BUILD/bin)"; exit 2; }
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3

# shellcheck source=tests/e2e/harness.sh
. "$here/harness.sh"
e2e_start e2e-internal

# ---- internal servers on the internet side ---------------------------------------
# name:address; nginx (wildcard listeners on 80/443) answers on all of them.
internal4="metadata:169.254.169.254 vpc:10.123.0.5 vpcdb:10.123.0.6 home:192.168.50.5 cgnat:100.64.0.5
rfc1918b:172.16.5.5"
internal6="metadata6:fd00:ec2::254 ula:fc00:5::5 nat64:64:ff9b::a9fe:a9fe nat64priv:64:ff9b::a7b:5
sixtofour:2002:a9fe:a9fe::1"
public4=203.0.113.99   # documentation space, declared public by the e2e config (lib.sh)
public6=2001:db8:113::99
for entry in $internal4; do in_inet ip addr add "${entry#*:}/32" dev eth0; done
for entry in $internal6; do in_inet ip -6 addr add "${entry#*:}/128" dev eth0 nodad; done
in_inet ip addr add "$public4/32" dev eth0
in_inet ip -6 addr add "$public6/128" dev eth0 nodad

# A UDP 443 recorder on each of those addresses: one line per datagram
# that reached it ("got ADDRESS LENGTH"), the judge for QUIC.
udp_addrs="$public4 $public6"
for entry in $internal4 $internal6; do udp_addrs="$udp_addrs ${entry#*:}"; done
# shellcheck disable=SC2086 # one argument per address
setsid ip netns exec "$E2E_NS_INET" "$py" -u - $udp_addrs > "$E2E_LOGS/udp443.log" 2>&1 < /dev/null << 'PY' &
import select, socket, sys
socks = []
for a in sys.argv[1:]:
    s = socket.socket(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((a, 443))
    socks.append((s, a))
print("udp443 ready", flush=True)
while True:
    ready, _, _ = select.select([s for s, _ in socks], [], [])
    for s, a in socks:
        if s in ready:
            data, _ = s.recvfrom(65535)
            print("got %s %d" % (a, len(data)), flush=True)
PY
echo $! > "$E2E_PIDS/udp443.pid"
disown $!
wait_until 50 grep -q "udp443 ready" "$E2E_LOGS/udp443.log" || { echo "FAIL: UDP recorder"; cat "$E2E_LOGS/udp443.log"; exit 1; }

# quic_initial ADDRESS: sends the RFC 9001 appendix A.2 client Initial (SNI
# example.com, one datagram) from the pod to ADDRESS:443, three times.
quic_initial() {
  in_pod "$py" - "$here/../nfq/fixtures/rfc9001_client_initial.bin" "$1" << 'PY'
import socket, sys, time
data = open(sys.argv[1], "rb").read()
a = sys.argv[2]
s = socket.socket(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    s.sendto(data, (a, 443))
    time.sleep(0.1)
PY
}
udp_got() { grep -c "^got $1 " "$E2E_LOGS/udp443.log"; }
url_host() { case $1 in *:*) echo "[$1]" ;; *) echo "$1" ;; esac; }
http_to() { curl_pod "http://$(url_host "$1")/" "${@:2}"; }
https_to() { curl_pod "https://$(url_host "$1")/" -k "${@:2}"; }
logged() { grep -qE "$1" "$E2E_LOGS/egressd.log"; }
re() { printf '%s' "$1" | sed 's/[].[]/\\&/g'; }  # an address as a regex
dst_re() { case $1 in *:*) echo "\[$(re "$1")\]:$2" ;; *) echo "$(re "$1"):$2" ;; esac; }

# ---- without egressd: every server answers (so a denial below means something) ---
for entry in $internal4 $internal6; do
  a=${entry#*:}
  expect_eq "no egressd: http://$a/ answers" 200 "$(http_to "$a")"
done
expect_eq "no egressd: https to the metadata address answers" 200 "$(https_to 169.254.169.254)"
before="$(udp_got 169.254.169.254)"
quic_initial 169.254.169.254
expect_ok "no egressd: the QUIC Initial reaches the metadata address" \
  wait_until 20 test "$(udp_got 169.254.169.254)" -gt "$before"

# ---- egressd with world access on 80 and 443 --------------------------------------
mkdir -p "$dir/rules"
cat > "$dir/rules/world.yaml" << 'EOF'
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: world-access, namespace: default}
spec:
  targets: ["*:80", "*:443", "*:8080"]
---
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: vpc-db, namespace: team-a}
spec:
  # Exactly one internal address, on purpose; and a name inside it.
  targets: ["10.123.0.6/32:80", "db.vpc.example.com:443"]
EOF
write_egressd_config "$dir/egressd.toml" "$dir/rules"
start_egressd "$bin/egressd" "$dir/egressd.toml" || exit 1
sock="$E2E_DIR/control.sock"

# ---- the control: public addresses on the same ports pass ---------------------------
expect_eq "public address, *:80: 200" 200 "$(http_to "$public4")"
expect_ok "... logged as world_access" wait_until 20 logged "event=verdict .*dst=$(dst_re "$public4" 80) proto=tcp verdict=allow reason=world_access"
expect_eq "public IPv6 address, *:80: 200" 200 "$(http_to "$public6")"
expect_eq "public address, *:443 (TLS): 200" 200 "$(https_to "$public4")"
expect_eq "public name via DNS, *:443: 200" 200 "$(curl_pod https://www.example.org/)"
before="$(udp_got "$public4")"
quic_initial "$public4"
expect_ok "QUIC Initial to the public address passes" wait_until 20 test "$(udp_got "$public4")" -gt "$before"
expect_ok "... logged as quic_allowed" wait_until 20 logged "event=verdict .*dst=$(dst_re "$public4" 443) proto=udp verdict=allow reason=quic_allowed name=example\.com"

# ---- every internal class, by address: TCP 80, TCP 443, QUIC ---------------------------
for entry in $internal4 $internal6; do
  name=${entry%%:*} a=${entry#*:}
  [ "$name" = vpcdb ] && continue   # opened on 80 on purpose, below
  expect_match "$name $a:80 is refused" '^curl:' "$(http_to "$a")"
  expect_ok "... logged as internal_address" \
    wait_until 20 logged "event=verdict .*dst=$(dst_re "$a" 80) proto=tcp verdict=deny reason=internal_address"
  expect_match "$name $a:443 (TLS) is refused" '^curl:' "$(https_to "$a")"
  expect_ok "... logged as internal_address" \
    wait_until 20 logged "event=verdict .*dst=$(dst_re "$a" 443) proto=tcp verdict=deny reason=internal_address"
  before="$(udp_got "$a")"
  quic_initial "$a"
  expect_ok "$name $a: QUIC Initial refused (internal_address)" \
    wait_until 20 logged "event=verdict .*dst=$(dst_re "$a" 443) proto=udp verdict=deny reason=internal_address name=example\.com"
  expect_eq "... and never reached the server" "$before" "$(udp_got "$a")"
done
# IPv4-mapped: the pod's stack sends it as IPv4; refused all the same.
expect_match "[::ffff:169.254.169.254]:80 is refused" '^curl:' "$(curl_pod "http://[::ffff:169.254.169.254]/")"

# ---- by name: DNS refuses internal answers; a forged resolution is refused too ------
expect_eq "metadata.example.com (A 169.254.169.254) is not resolved" NXDOMAIN "$(dns_pod metadata.example.com)"
expect_eq "metadata.example.com AAAA (fd00:ec2::254) is not resolved" NXDOMAIN "$(dns_pod metadata.example.com AAAA)"
expect_eq "nat64.example.com AAAA (64:ff9b::a9fe:a9fe) is not resolved" NXDOMAIN "$(dns_pod nat64.example.com AAAA)"
expect_eq "private.example.com (A 10.123.0.5) is not resolved" NXDOMAIN "$(dns_pod private.example.com)"
expect_match "curl http://metadata.example.com/ fails" '^curl:' "$(curl_pod http://metadata.example.com/)"
expect_match "Host: metadata.example.com forced to 169.254.169.254: refused" '^curl:' \
  "$(curl_pod http://metadata.example.com/ --resolve metadata.example.com:80:169.254.169.254)"
expect_ok "... logged as internal_address" \
  wait_until 20 logged "event=verdict .*dst=169\.254\.169\.254:80 proto=tcp verdict=deny reason=internal_address"
expect_match "SNI metadata.example.com forced to fd00:ec2::254: refused" '^curl:' \
  "$(curl_pod https://metadata.example.com/ -k --resolve 'metadata.example.com:443:[fd00:ec2::254]')"

# ---- an explicit CIDR target opens exactly that one --------------------------------
expect_eq "10.123.0.6:80 (target 10.123.0.6/32:80): 200" 200 "$(http_to 10.123.0.6)"
expect_ok "... logged as address_rule" \
  wait_until 20 logged "event=verdict .*dst=10\.123\.0\.6:80 proto=tcp verdict=allow reason=address_rule .*rulesets=team-a/vpc-db"
expect_match "... its neighbour 10.123.0.5:80 stays refused" '^curl:' "$(http_to 10.123.0.5)"
expect_match "... and 10.123.0.6 on 443 by address stays refused" '^curl:' "$(https_to 10.123.0.6)"
# A name target whose answer the CIDR target covers resolves and connects.
expect_eq "db.vpc.example.com resolves to 10.123.0.6 (covered by the CIDR target)" 10.123.0.6 \
  "$(dns_answers db.vpc.example.com | tail -1)"
expect_eq "https://db.vpc.example.com/ (name target db.vpc.example.com:443): 200" 200 \
  "$(curl_pod https://db.vpc.example.com/ -k)"
# A name only world access allows, answering inside the CIDR target: the
# binding does not count for world access.
expect_eq "alias.vpc.example.net resolves (its answer is named by a CIDR target)" 10.123.0.6 \
  "$(dns_answers alias.vpc.example.net | tail -1)"
expect_eq "http://alias.vpc.example.net/ on 80: the CIDR target allows it" 200 "$(curl_pod http://alias.vpc.example.net/)"
expect_match "http://alias.vpc.example.net:8080/ (world access only): refused" '^curl:' \
  "$(curl_pod http://alias.vpc.example.net:8080/)"
expect_ok "... logged as internal_address" \
  wait_until 20 logged "event=verdict .*dst=10\.123\.0\.6:8080 proto=tcp verdict=deny reason=internal_address"

# ---- explain, watch, metrics ---------------------------------------------------------
out="$("$bin/egressctl" explain 169.254.169.254:80 --socket "$sock" 2>&1)"
expect_match "egressctl explain (daemon): DENIED" '169\.254\.169\.254:80 DENIED' "$out"
expect_match "... names the range" 'world access \(\*:80\) covers public destinations only, not this internal address: 169\.254\.0\.0/16 link-local' "$out"
expect_match "... and the target that opens it" 'add the target 169\.254\.169\.254:80' "$out"
out="$("$bin/egressctl" explain 10.123.0.6:80 --socket "$sock" 2>&1)"
expect_match "egressctl explain 10.123.0.6:80: allowed by the CIDR target" 'by team-a/vpc-db  \(target 10\.123\.0\.6:80, address\)' "$out"
watch_out="$E2E_DIR/watch.out"
"$bin/egressctl" watch --socket "$sock" 'verdict deny and dst host 192.168.50.5' > "$watch_out" 2>&1 &
watch_pid=$!
e2e_cleanup_extra() { kill "$watch_pid" 2> /dev/null; }
sleep 0.5
http_to 192.168.50.5 > /dev/null
expect_ok "egressctl watch shows the internal_address denial" \
  wait_until 30 grep -q 'internal_address' "$watch_out"
kill "$watch_pid" 2> /dev/null
metrics="$(in_gw curl -s http://127.0.0.1:9153/metrics)"
expect_match "/metrics counts internal_address" 'egressd_nfq_reasons_total\{queue="0",reason="internal_address"\} [1-9]' "$metrics"
expect_match "/metrics counts the internal DNS answers refused as rebinding" 'egressd_dns_rebinding_blocked_total [1-9]' "$metrics"

# ---- rules.internal_cidrs widens the list (SIGHUP, live) -----------------------------
sed -i "s|^internal_cidrs = .*|internal_cidrs = [\"$public4/32\"]|" "$dir/egressd.toml"
kill -HUP "$(cat "$E2E_PIDS/egressd.pid")"
public_refused() { [ "$(http_to "$public4")" != 200 ]; }
expect_ok "after SIGHUP with internal_cidrs = [$public4/32], the public address is refused" \
  wait_until 30 public_refused
expect_ok "... logged as internal_address" \
  wait_until 20 logged "event=verdict .*dst=$(dst_re "$public4" 80) proto=tcp verdict=deny reason=internal_address"
expect_eq "... while its neighbour stays public" 200 "$(http_to 203.0.113.12)"
summary

#!/usr/bin/env bash
# egressd end to end: QUIC (issue 7: "QUIC to an allowed name on an allowed
# UDP 443 target judged from the Initial; all other UDP denied").
#
# A real QUIC v1 client and server (tests/e2e/quic/, golang.org/x/net/quic,
# built once into a cache outside the tree). Go's crypto/tls offers
# X25519MLKEM768, so the client's ClientHello is post-quantum sized and
# spans two Initial packets: egressd must hold the first one. The server
# runs in the internet namespace on port 4443; UDP 443 to www.example.org's
# and api.example.org's addresses is redirected to it there (the UDP echo of
# topology.sh keeps 443 on the other addresses). The same client's hello
# also goes over TCP to nginx: a full post-quantum TLS 1.3 handshake.
#
# Exit 77 (skipped) only when the helper cannot be built: no Go toolchain,
# or the Go module proxy is unreachable.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${EGRESSD_BIN:-${1:-}}"
[ -x "$bin/egressd" ] || { echo "usage: EGRESSD_BIN=BUILD/bin $0 (or $0 BUILD/bin)"; exit 2; }

# ---- the QUIC helper, built from pinned modules into a cache --------------------
build_quic_helper() {
  local src=$here/quic go key cache out
  go="$(command -v go || echo /usr/local/go/bin/go)"
  [ -x "$go" ] || { echo "no Go toolchain (go, /usr/local/go/bin/go)" >&2; return 1; }
  key="$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-16)"
  cache="${EGRESSD_E2E_CACHE:-${HOME:-/root}/.cache/egressd-e2e}/quic-$key"
  out=$cache/e2e-quic
  mkdir -p "$cache" || return 1
  (
    flock 9 # a concurrent run waits instead of building twice
    [ -x "$out" ] && exit 0
    echo "building the QUIC helper into $cache (first run only)" >&2
    cd "$src" && GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0 \
      nice "$go" build -p 2 -trimpath -o "$out.tmp" . >&2 && mv "$out.tmp" "$out"
  ) 9> "$cache/.lock" || return 1
  echo "$out"
}
quic="$(build_quic_helper)" || { echo "SKIP: cannot build the QUIC helper (tests/e2e/quic)"; exit 77; }

# shellcheck source=tests/e2e/harness.sh
. "$here/harness.sh"
e2e_start e2e-quic

# The QUIC server, reached on UDP 443 of two addresses (the internet
# namespace is the test's own; these rules die with it).
for a in "$E2E_IP4_WWW_EXAMPLE_ORG" "$E2E_IP4_API_EXAMPLE_ORG" "$E2E_IP6_WWW_EXAMPLE_ORG" "$E2E_IP6_API_EXAMPLE_ORG"; do
  ipt=iptables
  case $a in *:*) ipt=ip6tables ;; esac
  in_inet "$ipt" -t nat -A PREROUTING -p udp -d "$a" --dport 443 -j REDIRECT --to-ports 4443 \
    || { echo "FAIL: $ipt REDIRECT in the internet namespace"; exit 1; }
done
setsid ip netns exec "$E2E_NS_INET" "$quic" server :4443 "$E2E_DIR/certs" > "$E2E_LOGS/quic-server.log" 2>&1 < /dev/null &
disown $!
wait_until 50 grep -q '^listening' "$E2E_LOGS/quic-server.log" || { echo "FAIL: QUIC server did not start"; cat "$E2E_LOGS/quic-server.log"; exit 1; }

# quic_pod ADDR:PORT SNI [TIMEOUT]: a QUIC handshake plus a stream echo from
# the pod; prints "ok" or the client's error
quic_pod() { in_pod "$quic" client "$1" "$2" "$E2E_CA" "${3:-5s}" 2>&1 | tail -1; }
# accepted SNI: how many connections the server accepted for SNI
accepted() { grep -c "^accepted sni=$1 " "$E2E_LOGS/quic-server.log"; }
udp_echo() { echo "$2" | in_pod timeout 3 nc -u -w 1 "$1" 443 2> /dev/null; }
logged() { grep -qE "$1" "$E2E_LOGS/egressd.log"; }

# ---- without egressd: the servers answer (so the denials below mean something) --
www4="$E2E_IP4_WWW_EXAMPLE_ORG:443"
www6="[$E2E_IP6_WWW_EXAMPLE_ORG]:443"
unbound4="$E2E_IP4_API_EXAMPLE_ORG:443"
expect_eq "no egressd: QUIC to www.example.org works" ok "$(quic_pod "$www4" www.example.org)"
expect_eq "no egressd: QUIC with another SNI to the same address works" ok "$(quic_pod "$www4" api.example.org)"
expect_eq "no egressd: QUIC to an address DNS never gave for the name works" ok "$(quic_pod "$unbound4" www.example.org)"
expect_eq "no egressd: the UDP echo on api.example.com:443 answers" plain "$(udp_echo "$E2E_IP4_API_EXAMPLE_COM" plain)"

mkdir -p "$dir/rules"
cat > "$dir/rules/app.yaml" << EOF
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: quic, namespace: team-a}
spec:
  targets:
  - www.example.org:443
  - api.example.com:443
EOF
write_egressd_config "$dir/egressd.toml" "$dir/rules"
sed -i '/^\[nfqueue\]/a hold_timeout = "700ms"' "$dir/egressd.toml" # for the stalled Initial below
start_egressd "$bin/egressd" "$dir/egressd.toml" || exit 1

# ---- allowed name ---------------------------------------------------------------
expect_eq "www.example.org resolves through egressd" "$E2E_IP4_WWW_EXAMPLE_ORG" "$(dns_answers www.example.org | tail -1)"
before="$(accepted www.example.org)"
expect_eq "QUIC to an allowed name on UDP 443: handshake and stream echo" ok "$(quic_pod "$www4" www.example.org)"
expect_eq "... the server accepted it" $((before + 1)) "$(accepted www.example.org)"
expect_ok "... decided from the Initial's SNI (reason=quic_allowed, name_from=quic)" \
  wait_until 20 logged "event=verdict src=10\.77\.0\.2:[0-9]+ dst=$E2E_IP4_WWW_EXAMPLE_ORG:443 proto=udp verdict=allow reason=quic_allowed name=www\.example\.org name_from=quic rulesets=team-a/quic"
expect_eq "www.example.org resolves through egressd over IPv6" "$E2E_IP6_WWW_EXAMPLE_ORG" "$(dns_answers www.example.org AAAA | tail -1)"
expect_eq "QUIC to an allowed name over IPv6" ok "$(quic_pod "$www6" www.example.org)"
expect_ok "... logged as quic_allowed" \
  wait_until 20 logged "event=verdict src=\[fd00:77::2\]:[0-9]+ dst=\[$E2E_IP6_WWW_EXAMPLE_ORG\]:443 proto=udp verdict=allow reason=quic_allowed"

# ---- denied name, and an allowed name at an address DNS never gave ----------------
expect_eq "api.example.org is not resolved" NXDOMAIN "$(dns_pod api.example.org)"
before="$(accepted api.example.org)"
expect_match "QUIC with a denied SNI to an allowed name's address: no handshake" '^client: ' \
  "$(quic_pod "$www4" api.example.org 2s)"
expect_eq "... the server never saw it" "$before" "$(accepted api.example.org)"
expect_ok "... logged as quic_not_allowed" \
  wait_until 20 logged "event=verdict .*dst=$E2E_IP4_WWW_EXAMPLE_ORG:443 proto=udp verdict=deny reason=quic_not_allowed name=api\.example\.org name_from=quic"
before="$(accepted www.example.org)"
expect_match "QUIC with an allowed SNI to an address never handed out for it: no handshake" '^client: ' \
  "$(quic_pod "$unbound4" www.example.org 2s)"
expect_eq "... the server never saw it" "$before" "$(accepted www.example.org)"
expect_ok "... logged as quic_not_bound (strict binding)" \
  wait_until 20 logged "event=verdict .*dst=$E2E_IP4_API_EXAMPLE_ORG:443 proto=udp verdict=deny reason=quic_not_bound name=www\.example\.org"
# One decision per denied flow: the client's next Initials, queued before the
# connection mark was saved, get the same verdict again (nfq's recent
# verdicts), not a second event (a continuation held until hold_timeout).
# denied_port REASON: the pod's source port of the last such deny
denied_port() {
  grep -E "event=verdict src=10\.77\.0\.2:[0-9]+ .*proto=udp verdict=deny reason=$1 " "$E2E_LOGS/egressd.log" \
    | tail -1 | sed -n 's/.* src=10\.77\.0\.2:\([0-9]*\) .*/\1/p'
}
# udp_events PORT: verdict events for the pod's UDP source port PORT
udp_events() { grep -cE "event=verdict src=10\.77\.0\.2:$1 [^ ]+ proto=udp " "$E2E_LOGS/egressd.log"; }
sleep 4 # past the hold timeout (0.7 s) and the client's retransmissions
for reason in quic_not_allowed quic_not_bound; do
  port="$(denied_port "$reason")"
  expect_eq "... the flow denied as $reason (port ${port:-?}) has exactly one verdict event" 1 \
    "$(udp_events "${port:-none}")"
done

# ---- UDP 443 that is not QUIC --------------------------------------------------------
expect_eq "api.example.com resolves through egressd" "$E2E_IP4_API_EXAMPLE_COM" "$(dns_answers api.example.com | tail -1)"
expect_eq "non-QUIC UDP to an allowed name's 443: no echo" "" "$(udp_echo api.example.com plain)"
expect_ok "... logged as udp_not_allowed" \
  wait_until 20 logged "event=verdict .*dst=$E2E_IP4_API_EXAMPLE_COM:443 proto=udp verdict=deny reason=udp_not_allowed"

# ---- a client that sends only the first of its two Initials -----------------------
# The first datagram of a captured x/net/quic client (tests/sni/fixtures,
# 2-byte length prefixes): its ClientHello needs the second one, which
# never comes. egressd holds it, then denies it on the hold timeout.
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3
port="$(in_pod "$py" - "$here/../sni/fixtures/go_quic_initials.bin" "$E2E_IP4_WWW_EXAMPLE_ORG" << 'PY'
import socket, sys, time
data = open(sys.argv[1], "rb").read()
first = data[2:2 + int.from_bytes(data[:2], "big")]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(first, (sys.argv[2], 443))
print(s.getsockname()[1])
PY
)"
expect_ok "a stalled QUIC Initial is denied on the hold timeout" \
  wait_until 30 logged "event=verdict src=10\.77\.0\.2:$port dst=$E2E_IP4_WWW_EXAMPLE_ORG:443 proto=udp verdict=deny reason=hold_timeout"

# ---- the same Go client over TCP: a real post-quantum TLS 1.3 handshake -------
expect_eq "Go crypto/tls (X25519MLKEM768 key share) to an allowed name over TCP: 200" "HTTP/1.1 200 OK" \
  "$(in_pod "$quic" https "$E2E_IP4_API_EXAMPLE_COM:443" api.example.com "$E2E_CA" 5s 2>&1 | tail -1)"
expect_ok "... logged as sni_allowed" \
  wait_until 20 logged "event=verdict .*dst=$E2E_IP4_API_EXAMPLE_COM:443 proto=tcp verdict=allow reason=sni_allowed name=api\.example\.com"
expect_match "... with a denied SNI to an allowed name's address: no handshake" '^https: ' \
  "$(in_pod "$quic" https "$E2E_IP4_WWW_EXAMPLE_ORG:443" api.example.org "$E2E_CA" 3s 2>&1 | tail -1)"
expect_ok "... logged as sni_not_allowed" \
  wait_until 20 logged "event=verdict .*dst=$E2E_IP4_WWW_EXAMPLE_ORG:443 proto=tcp verdict=deny reason=sni_not_allowed name=api\.example\.org"

# ---- still serving --------------------------------------------------------------------
expect_eq "after the denials, QUIC to the allowed name still works" ok "$(quic_pod "$www4" www.example.org)"
summary

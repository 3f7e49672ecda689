#!/usr/bin/env bash
# The kernel fast path through egressd itself, on the shared end-to-end
# topology (tests/e2e/topology.sh: pod, gateway running egressd, internet
# with a real DNS server and HTTPS servers): egressd's DNS answer puts the
# (address, tcp:443) pair into EGRESSD-bound4 with the record's lifetime
# before the pod connects, a connection then costs one queued packet, a rule
# change removes the pairs of names no longer allowed, SIGTERM empties the
# sets and --uninstall destroys them.
set -uo pipefail
bin="${EGRESSD_BIN:?}"
e2e="${EGRESSD_SOURCE_DIR:?}/tests/e2e"
# shellcheck source=tests/e2e/harness.sh
. "$e2e/harness.sh"
e2e_start fastpath

mkdir -p "$dir/rules"
write_rules() {
  cat > "$dir/rules/app.yaml.tmp" << EOF
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: app, namespace: team-a}
spec:
  targets: [$1]
EOF
  mv "$dir/rules/app.yaml.tmp" "$dir/rules/app.yaml"
}
write_rules '"api.example.com:443", "other.example.com:8080"'
write_egressd_config "$dir/egressd.toml" "$dir/rules"
start_egressd "$bin/egressd" "$dir/egressd.toml" || exit 1

set4() { in_gw ipset list EGRESSD-bound4 2> /dev/null; }
# Client packets the chain queued so far (the last NFQUEUE rule's counter, v4).
queued() { in_gw iptables -L EGRESSD -v -x -n | awk '$3 == "NFQUEUE" { n = $1 } END { print n }'; }
# Server packets queued for the insertion guard (the reply chain's queue rule).
replies_queued() { in_gw iptables -L EGRESSD-REPLY -v -x -n | awk '$3 == "NFQUEUE" { n = $1 } END { print n }'; }

expect_match "egressd created the bound sets" 'EGRESSD-bound4' "$(in_gw ipset list -n)"
expect_match "... and the chain matches them" 'match-set EGRESSD-bound4 dst,dst' "$(in_gw iptables-save)"
api="$(dns_answers api.example.com | tail -1)"
expect_match "the DNS answer bound api.example.com" '^[0-9.]+$' "$api"
expect_match "... and put (address, tcp:443) into the set with a timeout" "^$api,tcp:443 timeout [0-9]+" "$(set4)"
expect_eq "... not the port the name is not allowed on" "" "$(set4 | grep "$api,tcp:8080" || true)"
other="$(dns_answers other.example.com | tail -1)"
expect_match "other.example.com's pair is tcp:8080" "^$other,tcp:8080 timeout" "$(set4)"

p0="$(queued)"
r0="$(replies_queued)"
expect_eq "allowed name over HTTPS" 200 "$(curl_pod https://api.example.com/ --resolve "api.example.com:443:$api")"
p1="$(queued)"
r1="$(replies_queued)"
expect_eq "... cost one queued client packet (its ClientHello)" 1 "$((p1 - p0))"
# The insertion guard (docs/nfq.md "Insertion"): the server's SYN-ACK (where
# the stream starts) and its acknowledgment of the hello (the confirmation).
# With the kernel guard (the default where it loads: docs/nfq.md "Kernel
# guard") both are checked in the kernel and none is queued; in user space
# two, sometimes three (a server packet queued behind the confirming one
# before the chain saved its mark).
if in_gw iptables-save -t filter | grep -q -- '-m bpf --object-pinned'; then
  expect_eq "... and no queued server packet (the kernel guard checked SYN-ACK and confirmation)" 0 "$((r1 - r0))"
else
  expect_match "... and two or three queued server packets (SYN-ACK, confirming ACK)" '^[23]$' "$((r1 - r0))"
fi
for _ in 1 2 3 4 5; do curl_pod https://api.example.com/ --resolve "api.example.com:443:$api" > /dev/null; done
p2="$(queued)"
expect_eq "five more connections, five packets" 5 "$((p2 - p1))"
# curl 35/56/7: the connection was reset during the handshake (28 would be a timeout).
expect_match "a denied SNI to the bound address is still judged: reset" '^(7|35|52|56)$' \
  "$(in_pod curl -sk --max-time 3 --resolve "evil.example.net:443:$api" https://evil.example.net/ > /dev/null 2>&1; echo $?)"
# Decision lines are written by the event loop every few ms: wait for it.
wait_until 20 grep -q 'reason=sni_not_allowed' "$E2E_LOGS/egressd.log"
expect_match "... and logged" 'reason=sni_not_allowed' "$(cat "$E2E_LOGS/egressd.log")"

# A rule change: api.example.com is no longer allowed; its pair goes at once.
write_rules '"other.example.com:8080"'
wait_until 5 bash -c "! ip netns exec $E2E_NS_GW ipset list EGRESSD-bound4 | grep -q '$api,tcp:443'"
expect_eq "a policy change removed the pair of a name no longer allowed" "" "$(set4 | grep "$api,tcp:443" || true)"
expect_match "... and refilled the others from the binding table" "^$other,tcp:8080 timeout" "$(set4)"
write_rules '"api.example.com:443", "other.example.com:8080"'
wait_until 5 bash -c "ip netns exec $E2E_NS_GW ipset list EGRESSD-bound4 | grep -q '$api,tcp:443'"
expect_match "allowed again: the refill brings the pair back" "^$api,tcp:443 timeout" "$(set4)"

expect_ok "egressd stopped with SIGTERM" stop_egressd TERM
expect_eq "SIGTERM empties the sets (bound SYNs go to the unread queue)" "" "$(set4 | grep ',tcp:' || true)"
expect_ok "egressd --uninstall" in_gw "$bin/egressd" --uninstall --config "$dir/egressd.toml"
expect_eq "... destroys the sets" "" "$(in_gw ipset list -n | grep EGRESSD || true)"
summary

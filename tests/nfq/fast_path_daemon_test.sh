#!/usr/bin/env bash
# The kernel fast path through egressd itself, on the shared end-to-end
# topology (tests/e2e/topology.sh: pod, gateway running egressd, internet
# with a real DNS server and HTTPS servers): egressd's DNS answer puts the
# (address, tcp:443) pair into EGRESSD-bound4 with the record's lifetime
# before the pod connects, a connection then costs one queued packet, a rule
# change removes the pairs of names no longer allowed, SIGTERM empties the
# sets and --uninstall destroys them.
# The kernel verdict (nfqueue.kernel_verdict, docs/nfq.md "Kernel verdict"),
# where it loads: an allowed HTTPS or HTTP connection then queues no client
# packet at all, and its decision is still logged (reason, pod) from the
# program's record; a denied name is still judged in user space, a rule
# change that removes a name makes its next connection denied, and with
# kernel_verdict = "off" the first payload is queued again.
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
write_rules '"api.example.com:443", "api.example.com:80", "other.example.com:8080"'
write_egressd_config "$dir/egressd.toml" "$dir/rules"
# The pod's address names a pod: decision events carry it.
printf '%s team-a web-0 Deployment/web web-sa\n' "$E2E_POD_IP4" > "$dir/pods.map"
printf '\n[attribution]\nmap_file = "%s"\n' "$dir/pods.map" >> "$dir/egressd.toml"
start_egressd "$bin/egressd" "$dir/egressd.toml" || exit 1
metric() { in_gw curl -s --max-time 2 http://127.0.0.1:9153/metrics | awk -v m="$1" '$1 == m { print $2 }'; }
# Client payloads the kernel verdict allowed (0 when it is off).
kernel_verdicts() { metric 'egressd_nfq_kernel_verdicts_total{queue="0"}'; }
verdict_active="$(metric egressd_nfq_kernel_verdict_active)"

set4() { in_gw ipset list EGRESSD-bound4 2> /dev/null; }
# Packets the NFQUEUE rules of these chains queued so far (v4).
queued_in() { local c n=0; for c in "$@"; do n=$((n + $(in_gw iptables -L "$c" -v -x -n | awk '$3 == "NFQUEUE" { n += $1 } END { print n + 0 }'))); done; echo "$n"; }
# Client packets: of undecided connections (EGRESSD-NEW) and the rest (EGRESSD).
queued() { queued_in EGRESSD EGRESSD-NEW; }
# Server packets queued for the insertion guard (the reply chains' queue rules).
replies_queued() { queued_in EGRESSD-REPLY EGRESSD-REPLY-NEW; }

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
k0="$(kernel_verdicts)"
expect_eq "allowed name over HTTPS" 200 "$(curl_pod https://api.example.com/ --resolve "api.example.com:443:$api")"
p1="$(queued)"
r1="$(replies_queued)"
k1="$(kernel_verdicts)"
if [ "$verdict_active" = 1 ]; then
  # The program judged the ClientHello: nothing of the client's was queued.
  expect_eq "... cost no queued client packet (the kernel verdict allowed its ClientHello)" 0 "$((p1 - p0))"
  expect_eq "... and the worker adopted the program's record" 1 "$((k1 - k0))"
  wait_until 20 grep -q "event=verdict src=$E2E_POD_IP4:[0-9]* .*verdict=allow reason=sni_allowed .*name=api.example.com.* pod=web-0" "$E2E_LOGS/egressd.log"
  expect_match "... and its decision is logged as before: sni_allowed, the pod" \
    "verdict=allow reason=sni_allowed .*name=api.example.com.*namespace=team-a pod=web-0" "$(grep 'event=verdict' "$E2E_LOGS/egressd.log")"
  hp0="$(queued)"
  expect_eq "allowed name over HTTP" 200 "$(curl_pod http://api.example.com/ --resolve "api.example.com:80:$api")"
  expect_eq "... cost no queued client packet (the kernel verdict allowed its request head)" 0 "$(($(queued) - hp0))"
  wait_until 20 grep -q "verdict=allow reason=host_allowed .*name=api.example.com.* pod=web-0" "$E2E_LOGS/egressd.log"
  expect_match "... and its decision is logged: host_allowed, the pod" \
    "verdict=allow reason=host_allowed .*name=api.example.com.*namespace=team-a pod=web-0" "$(grep 'event=verdict' "$E2E_LOGS/egressd.log")"
  expect_eq "... no disagreement between the kernel and the worker" 0 \
    "$(metric 'egressd_nfq_kernel_verdict_disagreements_total{queue="0"}')"
  p1="$(queued)"
else
  echo "note: the kernel verdict is not active here (egressd_nfq_kernel_verdict_active ${verdict_active:-none})"
  expect_eq "... cost one queued client packet (its ClientHello)" 1 "$((p1 - p0))"
fi
# The insertion guard (docs/nfq.md "Insertion"): the server's SYN-ACK (where
# the stream starts) and its acknowledgment of the hello (the confirmation).
# With the kernel guard (the default where it loads: docs/nfq.md "Kernel
# guard") both are checked in the kernel and none is queued; in user space
# two, sometimes three (a server packet queued behind the confirming one
# before the chain saved its mark).
# (Read whole first: grep -q stops reading at the first match, and under
# pipefail the writer's SIGPIPE would fail the test.)
if grep -q -- '-m bpf --object-pinned' <<< "$(in_gw iptables-save -t filter)"; then
  expect_eq "... and no queued server packet (the kernel guard checked SYN-ACK and confirmation)" 0 "$((r1 - r0))"
else
  expect_match "... and two or three queued server packets (SYN-ACK, confirming ACK)" '^[23]$' "$((r1 - r0))"
fi
for _ in 1 2 3 4 5; do curl_pod https://api.example.com/ --resolve "api.example.com:443:$api" > /dev/null; done
p2="$(queued)"
if [ "$verdict_active" = 1 ]; then
  expect_eq "five more connections, no queued packet" 0 "$((p2 - p1))"
else
  expect_eq "five more connections, five packets" 5 "$((p2 - p1))"
fi
if [ "$verdict_active" = 1 ]; then
  # The kernel's confirmations are read in batched rounds (docs/nfq.md
  # "Kernel guard: the confirm checks"): 16 HTTP connections sent at once
  # (enough due in one round for the walk of the confirm map) are each
  # confirmed once (egressd_nfq_confirmed_total and _kernel_confirmed_total
  # move by 16), and their kernel entries are gone from the map afterwards.
  confirmed() { metric 'egressd_nfq_confirmed_total{queue="0"}'; }
  kconfirmed() { metric 'egressd_nfq_kernel_confirmed_total{queue="0"}'; }
  c0="$(confirmed)" kc0="$(kconfirmed)" kb0="$(kernel_verdicts)"
  burst="$(in_pod python3 -c '
import socket, sys
sockets = [socket.create_connection((sys.argv[1], 80), timeout=5) for _ in range(16)]
for s in sockets:
    s.sendall(b"GET / HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n")
print(sum(1 for s in sockets if s.recv(12).startswith(b"HTTP/1.1 200")))
' "$api")"
  expect_eq "16 HTTP connections at once: answered" 16 "$burst"
  expect_eq "... all allowed by the kernel verdict" 16 "$(($(kernel_verdicts) - kb0))"
  entries=""
  for _ in $(seq 30); do
    entries="$("$EGRESSD_SOURCE_DIR/tests/nfq/confirm_map_entries.py" "$(cat "$E2E_PIDS/egressd.pid")")"
    [ "$entries" = 0 ] && [ "$(($(kconfirmed) - kc0))" -ge 16 ] && break
    sleep 0.1
  done
  expect_eq "... confirmed by the kernel, each once (kernel_confirmed_total)" 16 "$(($(kconfirmed) - kc0))"
  expect_eq "... and counted as confirmed (confirmed_total)" 16 "$(($(confirmed) - c0))"
  expect_eq "... their entries released from the kernel's confirm map" 0 "$entries"
fi
# curl 35/56/7: the connection was reset during the handshake (28 would be a timeout).
expect_match "a denied SNI to the bound address is still judged: reset" '^(7|35|52|56)$' \
  "$(in_pod curl -sk --max-time 3 --resolve "evil.example.net:443:$api" https://evil.example.net/ > /dev/null 2>&1; echo $?)"
# Decision lines are written by the event loop every few ms: wait for it.
wait_until 20 grep -q 'reason=sni_not_allowed' "$E2E_LOGS/egressd.log"
expect_match "... and logged" 'reason=sni_not_allowed' "$(cat "$E2E_LOGS/egressd.log")"

# A rule change: api.example.com is no longer allowed; its pair goes at once.
# Port 443 keeps a name rule, so the SYN still passes (await_payload) and
# the ClientHello meets the verdict program, whose names are void now.
write_rules '"www.example.org:443", "other.example.com:8080"'
wait_until 5 bash -c "! ip netns exec $E2E_NS_GW ipset list EGRESSD-bound4 | grep -q '$api,tcp:443'"
expect_eq "a policy change removed the pair of a name no longer allowed" "" "$(set4 | grep "$api,tcp:443" || true)"
expect_match "... and refilled the others from the binding table" "^$other,tcp:8080 timeout" "$(set4)"
k2="$(kernel_verdicts)"
expect_match "the next connection to the name no longer allowed is denied (reset)" '^curl:(7|35|52|56)$' \
  "$(curl_pod https://api.example.com/ --resolve "api.example.com:443:$api")"
expect_eq "... not by the kernel verdict" "$k2" "$(kernel_verdicts)"
wait_until 20 grep -q 'reason=sni_not_allowed .*name=api.example.com' "$E2E_LOGS/egressd.log"
expect_match "... but in user space: sni_not_allowed" 'reason=sni_not_allowed .*name=api.example.com' \
  "$(grep 'event=verdict' "$E2E_LOGS/egressd.log")"
write_rules '"api.example.com:443", "api.example.com:80", "other.example.com:8080"'
wait_until 5 bash -c "ip netns exec $E2E_NS_GW ipset list EGRESSD-bound4 | grep -q '$api,tcp:443'"
expect_match "allowed again: the refill brings the pair back" "^$api,tcp:443 timeout" "$(set4)"

if [ "$verdict_active" = 1 ]; then
  k3="$(kernel_verdicts)"
  expect_eq "allowed again: by the kernel verdict" 200 "$(curl_pod https://api.example.com/ --resolve "api.example.com:443:$api")"
  expect_eq "... which adopted one more record" 1 "$(($(kernel_verdicts) - k3))"
  # A disagreement: the program allows what user space denies (what a
  # parser laxer than sni/ or a race with a policy change would cause),
  # made here by writing a name egressd's DNS never bound into its names
  # map. The worker judges the adopted record, denies it and withdraws
  # the connection (the server is reset; the client's next segments are
  # denied), and the decision is logged and counted as a disagreement.
  disagreements() { metric 'egressd_nfq_kernel_verdict_disagreements_total{queue="0"}'; }
  pin="$(in_gw iptables-save -t filter | grep -o -- '/sys/fs/bpf/[^ ]*/verdict4' | head -1)"
  expect_match "a name the DNS never bound is written into egressd's names map" '^injected [0-9]+$' \
    "$(nsenter -t "$(cat "$E2E_PIDS/egressd.pid")" -m -n "$bin/nfq_kernel_verdict_inject" "$pin" "$api" 443 \
      evil.example.net 2>&1)"
  d0="$(disagreements)" k4="$(kernel_verdicts)" mark="$(egressd_log_mark)"
  # curl's status: 35/55/56/7/52, a reset. The server's acknowledgment of the
  # ClientHello usually confirms the connection in the kernel before the
  # worker reads the record; the client, waiting for the ServerHello, would
  # then wait until its timeout (28) without the reset sent towards it.
  # (0 only if the worker were slower than the whole exchange.)
  expect_match "... a connection naming it is allowed by the program, then withdrawn: the client is reset" \
    '^(0|7|35|52|55|56)$' \
    "$(in_pod curl -sk --max-time 3 --resolve "evil.example.net:443:$api" https://evil.example.net/ > /dev/null 2>&1; echo $?)"
  for _ in $(seq 100); do [ "$(disagreements)" != "$d0" ] && break; sleep 0.1; done
  expect_eq "... the program allowed its ClientHello and the worker did not: one disagreement" 1 \
    "$(($(disagreements) - d0))"
  expect_eq "... which is not a kernel verdict" "$k4" "$(kernel_verdicts)"
  wait_until 20 bash -c "tail -c +$((mark + 1)) '$E2E_LOGS/egressd.log' | grep -q 'name=evil.example.net'"
  expect_match "... and the deny is logged with its reason and pod" \
    'verdict=deny reason=sni_not_allowed .*name=evil.example.net.*namespace=team-a pod=web-0' \
    "$(egressd_log_since "$mark" | grep 'event=verdict')"
  # nfqueue.kernel_verdict = "off": the first payload is queued again.
  expect_ok "egressd stopped" stop_egressd TERM
  sed -i 's/^install_rules = true$/install_rules = true\nkernel_verdict = "off"/' "$dir/egressd.toml"
  start_egressd "$bin/egressd" "$dir/egressd.toml" || exit 1
  expect_eq "kernel_verdict = \"off\": egressd_nfq_kernel_verdict_active 0" 0 "$(metric egressd_nfq_kernel_verdict_active)"
  expect_eq "... the rule is gone from the chain" "" "$(in_gw iptables-save -t filter | grep -- '/verdict4' || true)"
  api="$(dns_answers api.example.com | tail -1)"
  p3="$(queued)"
  expect_eq "... an allowed connection" 200 "$(curl_pod https://api.example.com/ --resolve "api.example.com:443:$api")"
  expect_eq "... queues its ClientHello (the user-space path)" 1 "$(($(queued) - p3))"
fi
expect_ok "egressd stopped with SIGTERM" stop_egressd TERM
expect_eq "SIGTERM empties the sets (bound SYNs go to the unread queue)" "" "$(set4 | grep ',tcp:' || true)"
expect_ok "egressd --uninstall" in_gw "$bin/egressd" --uninstall --config "$dir/egressd.toml"
expect_eq "... destroys the sets" "" "$(in_gw ipset list -n | grep EGRESSD || true)"
summary

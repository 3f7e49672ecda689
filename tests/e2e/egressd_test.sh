#!/usr/bin/env bash
# egressd end to end (issue 7's acceptance list), on the topology of
# topology.sh: a pod without proxy settings whose resolver is egressd,
# egressd in the gateway with its NFQUEUE chain, real servers in the
# internet namespace. curl, nc and dig from the pod.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${EGRESSD_BIN:-${1:-}}"
[ -x "$bin/egressd" ] || { echo "usage: EGRESSD_BIN=BUILD/bin $0 (or $0 BUILD/bin)"; exit 2; }
# shellcheck source=tests/e2e/harness.sh
. "$here/harness.sh"
e2e_start e2e

mkdir -p "$dir/rules"
cat > "$dir/rules/app.yaml" << EOF
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: app, namespace: team-a}
spec:
  targets:
  - api.example.com:443
  - other.example.com:8080
  - "*.example.org:443"
  - cdn.example.com:443
  - ssh.example.com:22
  - mail.example.com:25
  - db.example.com:3306
  - $E2E_IP4_IP_TARGET:80
  - "[$E2E_IP6_IP_TARGET]:80"
  - 203.0.113.48/29:8080
EOF
write_egressd_config "$dir/egressd.toml" "$dir/rules"
start_egressd "$bin/egressd" "$dir/egressd.toml" || exit 1
expect_match "egressd installed its NFQUEUE rule" '-j NFQUEUE' "$(in_gw iptables-save)"
expect_match "... and for IPv6" '-j NFQUEUE' "$(in_gw ip6tables-save)"

reset_like() { case $1 in curl:7 | curl:35 | curl:52 | curl:56) echo reset ;; *) echo "$1" ;; esac; }

# Names
expect_eq "allowed exact name over HTTPS" 200 "$(curl_pod https://api.example.com/)"
expect_match "... reached the api vhost" '^vhost=api.example.com ' "$(last_body)"
expect_eq "allowed exact name over HTTPS, IPv6" 200 "$(curl_pod https://api.example.com/ -6)"
expect_eq "name allowed on another port: that port works" 200 "$(curl_pod http://other.example.com:8080/)"
expect_eq "name allowed on another port: 443 is reset" reset "$(reset_like "$(curl_pod https://other.example.com/)")"
expect_eq "denied name: NXDOMAIN" NXDOMAIN "$(dns_pod edge.example.net)"
expect_eq "denied name: curl cannot resolve it" curl:6 "$(curl_pod https://edge.example.net/)"
expect_eq "denied name by direct IP: reset" reset \
  "$(reset_like "$(curl_pod https://edge.example.net/ --resolve "edge.example.net:443:$E2E_IP4_EDGE_EXAMPLE_NET")")"
expect_eq "wildcard *.example.org: www" 200 "$(curl_pod https://www.example.org/)"
expect_eq "wildcard *.example.org: api" 200 "$(curl_pod https://api.example.org/)"
expect_eq "wildcard on 443 does not allow port 80" reset "$(reset_like "$(curl_pod http://www.example.org/)")"
expect_eq "CNAME chain: allowed name whose address came through the chain" 200 "$(curl_pod https://cdn.example.com/)"
# The address is now bound to cdn.example.com; a denied name sent to the same
# (shared, CDN-like) address must still be judged by its SNI, not waved
# through because of the binding.
edge="edge.example.net:443:$(dns_answers cdn.example.com | tail -1)"
expect_eq "a denied SNI to an address bound to another name is reset" reset \
  "$(reset_like "$(curl_pod https://edge.example.net/ --resolve "$edge")")"
expect_eq "rebind: private answer for a public name is refused" "" "$(dns_answers rebind.example.com A | grep '^10\.' || true)"

# IP and CIDR targets
expect_eq "IP target" 200 "$(curl_pod "http://$E2E_IP4_IP_TARGET/")"
expect_eq "IPv6 IP target" 200 "$(curl_pod "http://[$E2E_IP6_IP_TARGET]/")"
expect_eq "CIDR target" 200 "$(curl_pod "http://$E2E_IP4_IP_TARGET:8080/")"
expect_eq "address outside the CIDR, no name" reset "$(reset_like "$(curl_pod "http://$E2E_IP4_API_EXAMPLE_COM:8080/")")"

# Protocols where the server speaks first, through the DNS binding
expect_eq "SSH banner via ssh.example.com:22" "SSH-2.0-egressd-test" "$(banner_pod ssh.example.com 22)"
expect_eq "SMTP greeting via mail.example.com:25" "220 mail.example.com ESMTP egressd-test" "$(banner_pod mail.example.com 25)"
expect_match "MySQL greeting via db.example.com:3306" '5\.7\.99-egressd-test' \
  "$(in_pod timeout 5 nc -w 3 db.example.com 3306 < /dev/null | tr -d '\0')"
# The client speaks at once; its payload must be judged and the connection
# reset, so its line never comes back. (The server's banner may still reach
# the client: a port with name rules is provisionally allowed until the
# first client payload, and the banner can win that race.)
expect_eq "SSH to an address bound to another name: client data denied" "" \
  "$(printf 'SSH-2.0-client\r\n' | in_pod timeout 6 nc -q 2 -w 3 "$E2E_IP4_MAIL_EXAMPLE_COM" 22 | grep -a SSH-2.0-client)"
expect_ok "... and logged as a deny" \
  wait_until 20 grep -qE 'event=verdict .*dst=203\.0\.113\.25:22 .*verdict=deny' "$E2E_LOGS/egressd.log"

# SNI spoofing: an allowed SNI to an address egressd never handed out
spoof() { reset_like "$(curl_pod https://api.example.com/ --resolve "api.example.com:443:$E2E_IP4_SPOOF")"; }
expect_eq "SNI spoofing with strict binding: reset" reset "$(spoof)"

# UDP and ICMP
expect_eq "DNS to another resolver than egressd: no answer" timeout \
  "$(in_pod dig +time=1 +tries=1 @"$E2E_DNS4" api.example.com | sed -n 's/.*status: \([A-Z]*\).*/\1/p' | grep . || echo timeout)"
expect_eq "UDP to a non-DNS port: no echo" "" "$(echo x | in_pod timeout 3 nc -u -w 1 "$E2E_IP4_API_EXAMPLE_COM" 9999)"
expect_fail "ICMP echo out of the cluster is denied" in_pod ping -c1 -W1 "$E2E_IP4_API_EXAMPLE_COM"

# Decisions are logged
expect_ok "an allow is logged with its rule set" \
  wait_until 20 grep -qE 'event=verdict .*dst=203\.0\.113\.10:443 .*verdict=allow.*rulesets=team-a/app' "$E2E_LOGS/egressd.log"
expect_ok "a deny is logged with its reason" \
  wait_until 20 grep -qE 'event=verdict .*dst=203\.0\.113\.20:443 .*verdict=deny reason=sni_not_bound' "$E2E_LOGS/egressd.log"

# Live changes: rules directory, then config via SIGHUP
mark="$(egressd_log_mark)"
printf 'apiVersion: zalando.org/v1\nkind: EgressRuleSet\nmetadata: {name: edge, namespace: team-b}\nspec:\n  targets:\n  - edge.example.net:443\n' \
  > "$dir/rules/edge.yaml"
edge_resolves() { [ "$(dns_pod edge.example.net)" = NOERROR ]; }
expect_ok "a rule set added while running takes effect within 1 s" wait_until 10 edge_resolves
expect_eq "... and its name is reachable" 200 "$(curl_pod https://edge.example.net/)"
rm "$dir/rules/edge.yaml"
edge_denied() { [ "$(dns_pod edge.example.net)" = NXDOMAIN ]; }
expect_ok "a rule set removed while running stops within 1 s" wait_until 10 edge_denied
expect_match "the reloads are logged" 'event=policy.loaded' "$(egressd_log_since "$mark")"

E2E_STRICT_BINDING=false write_egressd_config "$dir/egressd.toml" "$dir/rules"
kill -HUP "$(cat "$E2E_PIDS/egressd.pid")"
spoof_ok() { [ "$(spoof)" = 200 ]; }
expect_ok "SNI to an unbound address is allowed with strict_binding = false (SIGHUP)" wait_until 20 spoof_ok

E2E_MODE=audit write_egressd_config "$dir/egressd.toml" "$dir/rules"
kill -HUP "$(cat "$E2E_PIDS/egressd.pid")"
# other.example.com: its address is bound, but the name is allowed on 8080 only
denied_tls() { curl_pod https://other.example.com/ --resolve "other.example.com:443:$E2E_IP4_OTHER_EXAMPLE_COM"; }
audit_ok() { [ "$(denied_tls)" = 200 ]; }
expect_ok "audit mode lets a denied flow through" wait_until 20 audit_ok
expect_ok "... and records it as would deny" \
  wait_until 20 grep -qE 'event=verdict .*dst=203\.0\.113\.11:443 .*verdict=audit.*would=deny' "$E2E_LOGS/egressd.log"
write_egressd_config "$dir/egressd.toml" "$dir/rules"
kill -HUP "$(cat "$E2E_PIDS/egressd.pid")"
audit_off() { [ "$(reset_like "$(denied_tls)")" = reset ]; }
expect_ok "back to enforce" wait_until 20 audit_off

# Fail-closed: an established connection survives egressd's death, new ones fail.
api="api.example.com:443:$E2E_IP4_API_EXAMPLE_COM"
expect_eq "allowed before the kill" 200 "$(curl_pod https://api.example.com/ --resolve "$api")"
coproc ECHO { in_pod timeout 20 nc -w 15 ssh.example.com 22; }
exec 7>&"${ECHO[1]}" 8<&"${ECHO[0]}"
read -r -t 5 banner <&8
expect_eq "an SSH-like connection is established" "SSH-2.0-egressd-test" "$(echo "$banner" | tr -d '\r')"
# The client's first bytes are what egressd judges (not TLS/HTTP: allowed
# through the DNS binding); from then on the connection mark carries it.
echo "first bytes" >&7
first=""; read -r -t 5 first <&8
expect_eq "the client's first bytes pass through the binding" "first bytes" "$(echo "$first" | tr -d '\r')"
expect_ok "egressd killed with SIGKILL" stop_egressd KILL
# The kernel verdict's program allows only while a worker renewed its
# consumer lease within 2 s (docs/nfq.md "Fail-closed"): wait it out.
sleep 2.2
expect_eq "after SIGKILL a new connection fails (nothing leaks)" curl:28 \
  "$(E2E_MAX_TIME=2 E2E_CONNECT_TIMEOUT=2 curl_pod https://api.example.com/ --resolve "$api")"
echo "still there" >&7
line=""; read -r -t 5 line <&8
expect_eq "the established connection keeps working" "still there" "$(echo "$line" | tr -d '\r')"
exec 7>&- 8<&-
{ kill "$ECHO_PID" && wait "$ECHO_PID"; } 2> /dev/null
start_egressd "$bin/egressd" "$dir/egressd.toml"
expect_eq "after a restart new allowed connections work" 200 "$(curl_pod https://api.example.com/)"
expect_ok "egressd stopped with SIGTERM" stop_egressd TERM
expect_eq "after SIGTERM the diversion stays: a new connection fails" curl:28 \
  "$(E2E_MAX_TIME=2 E2E_CONNECT_TIMEOUT=2 curl_pod https://api.example.com/ --resolve "$api")"
expect_ok "egressd --uninstall" in_gw "$bin/egressd" --uninstall --config "$dir/egressd.toml"
expect_eq "... removes its rules" "" "$(in_gw iptables-save | grep -E 'NFQUEUE|EGRESSD' || true)"
expect_eq "... for IPv6 too" "" "$(in_gw ip6tables-save | grep -E 'NFQUEUE|EGRESSD' || true)"
expect_eq "with no egressd and no rules, traffic is plain routing again" 200 "$(curl_pod https://api.example.com/ --resolve "$api")"
summary

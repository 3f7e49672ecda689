#!/usr/bin/env bash
# /metrics of egressd enforcing with NFQUEUE (issue 5: "/metrics scraped and
# parsed: names, types, values change as traffic flows"), on the topology
# of tests/e2e/topology.sh (needs root; namespaces are created and removed
# here). From the pod: an allowed HTTPS request, an allowed name sent to an
# address DNS never handed out for it (denied: sni_not_bound, naming the
# rule set), a port no rule uses (denied: port_not_in_policy). The scrapes
# (curl inside the gateway namespace) must pass the strict checker and show
# the verdicts, reasons, per-rule-set counts and queue levels move.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
e2e="$here/../e2e"
bin="${EGRESSD_BIN:-${1:-}}"
[ -x "$bin/egressd" ] || { echo "usage: EGRESSD_BIN=BUILD/bin $0 (or $0 BUILD/bin)"; exit 2; }
lint="$bin/metrics_lint"
[ -x "$lint" ] || { echo "FAIL: missing $lint"; exit 1; }
# shellcheck source=tests/e2e/harness.sh
. "$e2e/harness.sh"
e2e_start metrics-nfq

mkdir -p "$dir/rules"
cat > "$dir/rules/app.yaml" << EOF
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: app, namespace: team-a}
spec:
  targets: ["api.example.com:443"]
EOF
cat > "$dir/rules/web.yaml" << EOF
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: web, namespace: team-b}
spec:
  targets: ["api.example.com:443", "www.example.org:443"]
EOF
write_egressd_config "$dir/egressd.toml" "$dir/rules"
start_egressd "$bin/egressd" "$dir/egressd.toml" || exit 1

n=0
scrape() {  # into $dir/samplesN.txt (canonical samples); sets $samples
  n=$((n + 1))
  samples="$dir/samples$n.txt"
  in_gw curl -sS --max-time 5 -o "$dir/scrape$n.txt" http://127.0.0.1:9153/metrics || return 1
  "$lint" "$dir/scrape$n.txt" > "$samples" 2> "$dir/lint$n.txt"
}
val() {  # val SAMPLE [FILE]: the value, 0 when absent (counters start at 0)
  local v
  v="$(awk -v s="$1" '$1 == s {print $2}' "${2:-$samples}" | head -1)"
  echo "${v:-0}"
}
delta() { python3 -c "import sys; print(int(float(sys.argv[2]) - float(sys.argv[1])))" "$(val "$1" "$2")" "$(val "$1" "$3")"; }
at_least() { python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) else 1)" "$1" "$2"; }

expect_ok "first scrape passes the strict checker" scrape
first=$samples
expect_ok "queue 0 reports its held-flow capacity" grep -qx 'egressd_nfq_held_flows_capacity{queue="0"} 65536' "$samples"
expect_ok "the per-rule-set family is declared" grep -qx '# family egressd_ruleset_decisions_total counter' "$samples"

reset_like() { case $1 in curl:7 | curl:35 | curl:52 | curl:56) echo reset ;; *) echo "$1" ;; esac; }
expect_eq "allowed name over HTTPS" 200 "$(curl_pod https://api.example.com/)"
expect_eq "allowed name over HTTPS again" 200 "$(curl_pod https://api.example.com/)"
# An allowed SNI sent to an address egressd's DNS never gave for it.
expect_eq "allowed SNI to an unbound address is reset" reset \
  "$(reset_like "$(curl_pod https://api.example.com/ --resolve "api.example.com:443:$E2E_IP4_OTHER_EXAMPLE_COM")")"
expect_eq "a port no rule uses is reset" reset "$(reset_like "$(curl_pod "http://$E2E_IP4_API_EXAMPLE_COM:8080/")")"

# Decision events reach the counters through the event hub (drained every
# few ms); poll briefly.
for _ in $(seq 30); do
  scrape && at_least "$(val 'egressd_ruleset_decisions_total{kind="connection",ruleset="team-a/app",verdict="deny"}')" 1 && break
  sleep 0.1
done
expect_ok "scrape after traffic passes the strict checker" scrape
after=$samples
expect_ok "packets counted" at_least "$(delta 'egressd_nfq_packets_total{queue="0"}' "$first" "$after")" 4
expect_ok "allow verdicts +2" at_least "$(delta 'egressd_nfq_verdicts_total{queue="0",verdict="allow"}' "$first" "$after")" 2
expect_ok "deny verdicts +2" at_least "$(delta 'egressd_nfq_verdicts_total{queue="0",verdict="deny"}' "$first" "$after")" 2
expect_ok "reason sni_allowed +2" at_least "$(delta 'egressd_nfq_reasons_total{queue="0",reason="sni_allowed"}' "$first" "$after")" 2
expect_eq "reason sni_not_bound +1" 1 "$(delta 'egressd_nfq_reasons_total{queue="0",reason="sni_not_bound"}' "$first" "$after")"
expect_eq "reason port_not_in_policy +1" 1 "$(delta 'egressd_nfq_reasons_total{queue="0",reason="port_not_in_policy"}' "$first" "$after")"
expect_eq "no audit-allow in enforce mode" 0 "$(val 'egressd_nfq_verdicts_total{queue="0",verdict="audit-allow"}')"
# Both rule sets allow api.example.com: each is credited.
expect_eq "team-a/app allowed 2 connections" 2 "$(val 'egressd_ruleset_decisions_total{kind="connection",ruleset="team-a/app",verdict="allow"}')"
expect_eq "team-b/web allowed 2 connections" 2 "$(val 'egressd_ruleset_decisions_total{kind="connection",ruleset="team-b/web",verdict="allow"}')"
expect_eq "team-a/app: 1 denied (not bound)" 1 "$(val 'egressd_ruleset_decisions_total{kind="connection",ruleset="team-a/app",verdict="deny"}')"
expect_eq "nothing summed in _other" 0 "$(grep -c 'ruleset="_other"' "$samples")"
expect_eq "no held flows left" 0 "$(val 'egressd_nfq_held_flows{queue="0"}')"
expect_eq "no events dropped" 0 "$(val egressd_events_dropped_total)"
expect_ok "DNS answered the pod" at_least "$(delta 'egressd_dns_responses_total{outcome="allowed"}' "$first" "$after")" 1

# A rule set removed from the policy loses its series at the next generation.
rm "$dir/rules/web.yaml"
for _ in $(seq 30); do
  scrape && [ "$(val egressd_policy_rule_sets)" = 1 ] && break
  sleep 0.1
done
expect_eq "one rule set left" 1 "$(val egressd_policy_rule_sets)"
expect_eq "team-b/web's series are gone" 0 "$(grep -c 'ruleset="team-b/web"' "$samples")"
expect_eq "team-a/app's series stay" 2 "$(val 'egressd_ruleset_decisions_total{kind="connection",ruleset="team-a/app",verdict="allow"}')"

summary

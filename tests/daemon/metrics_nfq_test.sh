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
# /readyz with enforcement on: the chain installed and a worker bound per queue.
expect_eq "/readyz: rules, DNS and enforcement ready" "[+]rules ok|[+]dns ok|[+]enforcement ok|readyz check passed|" \
  "$(in_gw curl -s --max-time 5 http://127.0.0.1:9153/readyz | tr '\n' '|')"
first=$samples
expect_ok "queue 0 reports its held-flow capacity" grep -qx 'egressd_nfq_held_flows_capacity{queue="0"} 65536' "$samples"
# The held-flow tables are reserved for 65,536 flows but committed only as
# flows are held (common/lazy_array.h): at rest they must not be resident
# (they took about 400 MiB per queue when every slot was constructed).
rss_kib="$(awk '/^VmRSS:/ {print $2}' "/proc/$(cat "$E2E_PIDS/egressd.pid")/status")"
expect_ok "65,536 held-flow slots cost no memory at rest (${rss_kib:-?} KiB resident, under 96 MiB)" \
  test "${rss_kib:-999999}" -lt $((96 * 1024))
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
# The two allowed ClientHellos are not queued where the kernel verdict
# runs (docs/nfq.md "Kernel verdict"): the worker adopts them instead.
queued="$(delta 'egressd_nfq_packets_total{queue="0"}' "$first" "$after")"
kernel="$(delta 'egressd_nfq_kernel_verdicts_total{queue="0"}' "$first" "$after")"
expect_ok "packets counted (queued $queued, allowed by the kernel verdict $kernel)" at_least "$((queued + kernel))" 4
if [ "$(val egressd_nfq_kernel_verdict_active "$after")" = 1 ]; then
  expect_eq "the kernel verdict allowed both allowed connections" 2 "$kernel"
fi
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
# DNS answers name their rule sets too (kind="dns"): the pod resolved
# api.example.com, which both rule sets allow.
expect_ok "team-a/app credited with DNS answers" at_least "$(val 'egressd_ruleset_decisions_total{kind="dns",ruleset="team-a/app",verdict="allow"}')" 1
expect_ok "team-b/web credited with DNS answers" at_least "$(val 'egressd_ruleset_decisions_total{kind="dns",ruleset="team-b/web",verdict="allow"}')" 1
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
removed=$samples

# The kernel fast path: on (the chain is egressd's), the pod's DNS answer
# for api.example.com put its address into the bound set, and the policy
# change flushed and refilled the sets.
expect_eq "fast path available" 1 "$(val egressd_nfq_fast_path_available "$after")"
expect_ok "bound set holds api.example.com's address" \
  at_least "$(val 'egressd_nfq_fast_path_set_entries{family="ipv4"}' "$after")" 1
expect_ok "bound-set entries written" at_least "$(val egressd_nfq_fast_path_entries_written_total "$after")" 1
expect_ok "bindings seen by the fast path" at_least "$(val egressd_nfq_fast_path_bindings_total "$after")" 1
expect_ok "policy change resynced the sets" at_least "$(delta egressd_nfq_fast_path_resyncs_total "$after" "$removed")" 1
expect_ok "resync flushed both sets" at_least "$(delta egressd_nfq_fast_path_flushes_total "$after" "$removed")" 2
expect_eq "no fast-path failures" 0 "$(val 'egressd_nfq_fast_path_failures_total{cause="other"}' "$removed")"
for family in egressd_nfq_recent_repeats_total egressd_nfq_held_retransmits_passed_total; do
  expect_ok "$family is exported per queue" grep -q "^$family{queue=\"0\"} " "$removed"
done

# The same numbers in `egressctl stats` (grouped: the nfqueue block).
if [ -x "$bin/egressctl" ]; then
  "$bin/egressctl" stats --socket "$E2E_DIR/control.sock" > "$dir/stats.txt" 2>&1
  expect_ok "egressctl stats shows the fast path" grep -Eq '^  fast_path\.available +true$' "$dir/stats.txt"
  expect_ok "egressctl stats shows the bound set's size" grep -Eq '^  fast_path\.set_entries\.ipv4 +[0-9]' "$dir/stats.txt"
  expect_ok "egressctl stats shows recent repeats per queue" grep -Eq '^  queues\[[0-9]+\]\.recent_repeats +[0-9]' "$dir/stats.txt"
fi

# Counters never go back: a SIGHUP that changes nfqueue.hold_timeout
# restarts the verdict workers; the totals of the old ones are kept.
sed -i 's/^install_rules = true$/install_rules = true\nhold_timeout = "3s"/' "$dir/egressd.toml"
mark="$(egressd_log_mark)"
kill -HUP "$(cat "$E2E_PIDS/egressd.pid")"
restarted() { egressd_log_since "$mark" | grep -q 'event=nfq.worker_started'; }
expect_ok "SIGHUP with a new hold_timeout restarts the worker" wait_until 50 restarted
expect_ok "scrape after the restart passes the strict checker" scrape
restart=$samples
for sample in 'egressd_nfq_packets_total{queue="0"}' 'egressd_nfq_verdicts_total{queue="0",verdict="allow"}' \
  'egressd_nfq_reasons_total{queue="0",reason="sni_not_bound"}' 'egressd_nfq_verdict_batches_total{queue="0"}' \
  'egressd_nfq_reasons_total{queue="0",reason="port_not_in_policy"}'; do
  expect_ok "$sample did not go back across the restart" at_least "$(val "$sample" "$restart")" "$(val "$sample" "$removed")"
  expect_ok "$sample is not zero after the restart" at_least "$(val "$sample" "$restart")" 1
done
expect_eq "allowed name over HTTPS through the new worker" 200 "$(curl_pod https://api.example.com/)"
expect_ok "scrape after a connection through the new worker" scrape
expect_ok "the new worker's allow adds to the old total" \
  at_least "$(delta 'egressd_nfq_verdicts_total{queue="0",verdict="allow"}' "$restart" "$samples")" 1
expect_ok "and the total is above the count before the restart" \
  at_least "$(delta 'egressd_nfq_verdicts_total{queue="0",verdict="allow"}' "$removed" "$samples")" 1

summary

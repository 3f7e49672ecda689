#!/usr/bin/env bash
# /metrics of a real egressd (docs/metrics.md), loopback only: unbound
# serves a test zone as the upstream, egressd runs DNS filtering (NFQUEUE
# off, no root needed), curl scrapes, metrics_lint (the strict checker of
# tests/daemon/metrics_checker.h) parses every scrape. Checks: names and
# types; values that follow kdig queries (allowed, cached, denied); rules
# reloads (success, failure) and the policy age restarting; SIGHUP reloads;
# HTTP status codes; /healthz and /readyz (503 while a rules directory is
# missing); a taken metrics port is fatal at start-up; every metric
# the Grafana dashboard queries is in the scrape; `egressctl stats` (when
# built) reports the same DNS numbers.
# Needs: unbound, kdig (knot-dnsutils), curl, python3.
set -uo pipefail
bin="${EGRESSD_BIN:?}"
src="${EGRESSD_SOURCE_DIR:?}"
for tool in unbound kdig curl python3; do
  command -v "$tool" > /dev/null || { echo "FAIL: $tool not installed"; exit 1; }
done
lint="$bin/metrics_lint"
[ -x "$lint" ] || { echo "FAIL: missing $lint"; exit 1; }
# shellcheck source=tests/support/checks.sh
. "$src/tests/support/checks.sh"
checks_init egressd-metrics-test

# shellcheck source=tests/dns/unbound.sh
. "$src/tests/dns/unbound.sh"

# ---- upstream: unbound with a test zone -------------------------------------
unbound_example_test 'other IN A   192.0.2.11' 'evil  IN A   203.0.113.66'

# ---- egressd -----------------------------------------------------------------
dns_port="$(free_port)"
metrics_port="$(free_port)"
mkdir -p "$work/rules"
write_rules app.yaml 'apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: app, namespace: team}
spec: {targets: ["api.example.test:443"]}'
write_config() {
  cat > "$1" << TOML
[rules]
dirs = ["rules"]
public_cidrs = ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"]  # the zone's documentation addresses
[dns]
listen = ["127.0.0.1:$2"]
upstreams = ["127.0.0.1:$upstream_port"]
[nfqueue]
enabled = false
[metrics]
listen = "127.0.0.1:$3"
[control]
socket = "$work/control$4.sock"
TOML
}
write_config "$work/egressd.toml" "$dns_port" "$metrics_port" ""
egressd_start "$work/egressd.toml" && ok "egressd starts" || { fail "egressd did not start"; exit 1; }
pid=$egressd_pid
grep -q "event=metrics.listening address=127.0.0.1:$metrics_port" "$work/log" \
  && ok "the metrics listener is logged with its address" || fail "no metrics.listening line"

url="http://127.0.0.1:$metrics_port"
n=0
# scrape: fetches /metrics into $work/scrapeN.txt, lints it into
# $work/samplesN.txt (canonical samples); sets $samples. Status 1 when the
# request or the checker failed.
scrape() {
  n=$((n + 1))
  samples="$work/samples$n.txt"
  curl -sS --max-time 5 -D "$work/headers$n.txt" -o "$work/scrape$n.txt" "$url/metrics" || return 1
  "$lint" "$work/scrape$n.txt" > "$samples" 2> "$work/lint$n.txt"
}
# val SAMPLE [FILE]: the value of one canonical sample (labels sorted), or "none".
val() {
  local file=${2:-$samples} v
  v="$(grep -F -- "$1 " "$file" | grep -v '^#' | awk -v s="$1" '$1 == s {print $2}' | head -1)"
  echo "${v:-none}"
}
delta() { python3 -c "import sys; print(int(float(sys.argv[2]) - float(sys.argv[1])))" "$(val "$1" "$2")" "$(val "$1" "$3")"; }
fgt() { python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)" "$1" "$2"; }

# ---- format: names, types, headers ---------------------------------------------
if scrape; then ok "scrape passes the strict exposition checker"; else fail "checker: $(head -5 "$work/lint$n.txt")"; fi
first=$samples
grep -qi '^content-type: text/plain; version=0.0.4' "$work/headers$n.txt" \
  && ok "content type is the text format 0.0.4" || fail "content type: $(grep -i content-type "$work/headers$n.txt")"
grep -q '^HTTP/1.1 200' "$work/headers$n.txt" && ok "GET /metrics is 200" || fail "GET /metrics status"
for family in egressd_dns_queries_total:counter egressd_dns_responses_total:counter \
  egressd_dns_upstream_latency_seconds:histogram egressd_policy_age_seconds:gauge \
  egressd_policy_generation:gauge egressd_reloads_total:counter egressd_nfq_verdicts_total:counter \
  egressd_nfq_held_flows:gauge egressd_ruleset_decisions_total:counter egressd_dns_bindings:gauge \
  egressd_events_dropped_total:counter egressd_control_events_dropped_total:counter; do
  grep -qx "# family ${family%%:*} ${family##*:}" "$samples" && ok "family ${family%%:*} is a ${family##*:}" \
    || fail "family $family missing or mistyped"
done
[ "$(grep -c '^# family ' "$samples")" -ge 50 ] && ok "at least 50 families" || fail "too few families"
[ "$(val 'egressd_reloads_total{kind="rules",outcome="success"}')" = 1 ] && ok "one rules load at start-up" \
  || fail "rules reloads at start: $(val 'egressd_reloads_total{kind="rules",outcome="success"}')"
[ "$(val egressd_policy_rule_sets)" = 1 ] && ok "one rule set in force" || fail "rule sets: $(val egressd_policy_rule_sets)"
# NFQUEUE is off: its families exist, without samples.
! grep -q '^egressd_nfq_packets_total' "$samples" && ok "no NFQUEUE samples with nfqueue off" || fail "nfq samples present"

# ---- values follow DNS traffic ---------------------------------------------------
status() { kdig @127.0.0.1 -p "$dns_port" "$@" A +time=2 +retry=0 2> /dev/null | sed -n 's/.*status: \([A-Z]*\).*/\1/p' | head -1; }
[ "$(status api.example.test)" = NOERROR ] && ok "allowed name answered" || fail "allowed name not answered"
[ "$(status api.example.test)" = NOERROR ] && ok "allowed name answered again (cache)" || fail "second allowed query"
[ "$(status evil.example.test)" = NXDOMAIN ] && ok "denied name NXDOMAIN" || fail "denied name not denied"
[ "$(status evil.example.test +tcp)" = NXDOMAIN ] && ok "denied name over TCP" || fail "denied name over TCP"
scrape || fail "second scrape: $(head -3 "$work/lint$n.txt")"
before=$first after=$samples
check "queries_total +4" [ "$(delta egressd_dns_queries_total "$before" "$after")" = 4 ]
check "responses{allowed} +1" [ "$(delta 'egressd_dns_responses_total{outcome="allowed"}' "$before" "$after")" = 1 ]
check "responses{cache_hit} +1" [ "$(delta 'egressd_dns_responses_total{outcome="cache_hit"}' "$before" "$after")" = 1 ]
check "responses{denied} +2" [ "$(delta 'egressd_dns_responses_total{outcome="denied"}' "$before" "$after")" = 2 ]
check "cache lookups{hit} +1" [ "$(delta 'egressd_dns_cache_lookups_total{result="hit"}' "$before" "$after")" = 1 ]
check "cache holds the answer" fgt "$(val egressd_dns_cache_entries)" 0
check "bindings recorded" fgt "$(delta egressd_dns_bindings_recorded_total "$before" "$after")" 0
check "binding table holds api's address" fgt "$(val egressd_dns_bindings)" 0
latency_count="$(delta egressd_dns_upstream_latency_seconds_count "$before" "$after")"
check "upstream latency histogram counted the forwarded query (+$latency_count)" [ "$latency_count" = 1 ]
check "upstream latency sum > 0" fgt "$(val egressd_dns_upstream_latency_seconds_sum)" 0
check "+Inf bucket equals _count" [ "$(val 'egressd_dns_upstream_latency_seconds_bucket{le="+Inf"}')" = "$(val egressd_dns_upstream_latency_seconds_count)" ]

# ---- rules reloads and the policy age ----------------------------------------------
sleep 1.5
scrape || fail "scrape"
age_before="$(val egressd_policy_age_seconds)"
generation_before="$(val egressd_policy_generation)"
check "policy age grows (${age_before}s)" fgt "$age_before" 1.2
before=$samples
write_rules other.yaml 'apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: other, namespace: team}
spec: {targets: ["other.example.test:443"]}'
for _ in $(seq 30); do [ "$(status other.example.test)" = NOERROR ] && break; sleep 0.1; done
scrape || fail "scrape"
check "rules reload counted as success" [ "$(delta 'egressd_reloads_total{kind="rules",outcome="success"}' "$before" "$samples")" -ge 1 ]
check "policy generation advanced" fgt "$(val egressd_policy_generation)" "$generation_before"
check "policy age restarted ($(val egressd_policy_age_seconds)s < ${age_before}s)" fgt "$age_before" "$(val egressd_policy_age_seconds)"
check "two rule sets in force" [ "$(val egressd_policy_rule_sets)" = 2 ]

before=$samples
printf 'apiVersion: [unclosed\n' > "$work/rules/.broken"; mv "$work/rules/.broken" "$work/rules/broken.yaml"
for _ in $(seq 30); do
  scrape || break
  [ "$(delta 'egressd_reloads_total{kind="rules",outcome="failure"}' "$before" "$samples")" -ge 1 ] && break
  sleep 0.1
done
check "a broken rules file counts a failed rules reload" [ "$(delta 'egressd_reloads_total{kind="rules",outcome="failure"}' "$before" "$samples")" -ge 1 ]
check "rules errors reported" fgt "$(val 'egressd_rules_problems{severity="error"}')" 0
check "valid rule sets stay in force" [ "$(val egressd_policy_rule_sets)" = 2 ]
rm -f "$work/rules/broken.yaml"

# SIGHUP: a good file, then a broken one (the running configuration stays).
before=$samples
kill -HUP "$pid"
for _ in $(seq 30); do grep -q config.reloaded "$work/log" && break; sleep 0.1; done
cp "$work/egressd.toml" "$work/good.toml"
printf 'mode = "bogus"\n' >> "$work/egressd.toml"
kill -HUP "$pid"
for _ in $(seq 30); do grep -q config.reload_failed "$work/log" && break; sleep 0.1; done
cp "$work/good.toml" "$work/egressd.toml"
scrape || fail "scrape"
check "SIGHUP reload counted as success" [ "$(delta 'egressd_reloads_total{kind="config",outcome="success"}' "$before" "$samples")" = 1 ]
check "bad SIGHUP counted as failure" [ "$(delta 'egressd_reloads_total{kind="config",outcome="failure"}' "$before" "$samples")" = 1 ]

# ---- HTTP ------------------------------------------------------------------------
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@"; }
for path in / /metricsx /metrics/ /favicon.ico; do
  check "GET $path is 404" [ "$(code "$url$path")" = 404 ]
done
check "POST /metrics is 405" [ "$(code -X POST -d x "$url/metrics")" = 405 ]
check "DELETE /metrics is 405" [ "$(code -X DELETE "$url/metrics")" = 405 ]
check "HEAD /metrics is 200" [ "$(code -I "$url/metrics")" = 200 ]
check "oversized headers are refused" [ "$(code -H "X-Big: $(head -c 20000 /dev/zero | tr '\0' a)" "$url/metrics")" != 200 ]
check "still serving afterwards" [ "$(code "$url/metrics")" = 200 ]

# ---- the dashboard queries only exported metrics -----------------------------------
missing="$(python3 - "$src/deploy/grafana/egressd-dashboard.json" "$samples" << 'EOF'
import json, re, sys
dashboard = json.load(open(sys.argv[1]))
exported = set()
for line in open(sys.argv[2]):
    if line.startswith("# family "):
        _, _, name, kind = line.split()
        exported |= {name + s for s in ("_bucket", "_sum", "_count")} if kind == "histogram" else {name}
used = set()
def walk(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition", "query") and isinstance(value, str):
                used.update(re.findall(r"egressd_[a-zA-Z0-9_:]*", value))
            walk(value)
    elif isinstance(node, list):
        for item in node:
            walk(item)
walk(dashboard)
print(" ".join(sorted(used - exported)) if used else "NOTHING-USED")
EOF
)"
check "every dashboard metric is in the scrape${missing:+ (missing: $missing)}" [ -z "$missing" ]

# deploy/grafana's kustomization ships exactly this dashboard (offline render).
if command -v kubectl > /dev/null && python3 -c "import yaml" 2> /dev/null; then
  if kubectl kustomize "$src/deploy/grafana" > "$work/grafana.yaml" 2> "$work/grafana.err"; then
    same="$(python3 - "$work/grafana.yaml" "$src/deploy/grafana/egressd-dashboard.json" << 'EOF'
import json, sys, yaml
cm = yaml.safe_load(open(sys.argv[1]))
ok = (cm["kind"] == "ConfigMap" and cm["metadata"]["labels"].get("grafana_dashboard") == "1"
      and json.loads(cm["data"]["egressd-dashboard.json"]) == json.load(open(sys.argv[2])))
print("yes" if ok else "no")
EOF
)"
    check "kubectl kustomize deploy/grafana: a sidecar ConfigMap with the dashboard" [ "$same" = yes ]
  else
    fail "kubectl kustomize deploy/grafana: $(cat "$work/grafana.err")"
  fi
fi

# ---- egressctl stats: the same numbers ------------------------------------------------
if [ -x "$bin/egressctl" ]; then
  "$bin/egressctl" stats --json --socket "$work/control.sock" > "$work/stats.json" 2> "$work/stats.err"
  scrape || fail "scrape"
  queries_json="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["dns"]["queries"])' "$work/stats.json" 2> /dev/null)"
  check "egressctl stats reports the DNS queries of /metrics ($queries_json)" [ "$queries_json" = "$(val egressd_dns_queries_total)" ]
else
  echo "note: $bin/egressctl not built; skipping the egressctl stats cross-check"
fi

# ---- /healthz and /readyz ---------------------------------------------------------------
body() { curl -s --max-time 5 "$@"; }
check "GET /healthz is 200 ok" [ "$(code "$url/healthz")" = 200 ] && [ "$(body "$url/healthz")" = ok ]
check "GET /readyz is 200 with rules and DNS up" [ "$(code "$url/readyz")" = 200 ]
check "/readyz names its checks" [ "$(body "$url/readyz" | tr '\n' '|')" = "[+]rules ok|[+]dns ok|readyz check passed|" ]
check "POST /readyz is 405" [ "$(code -X POST -d x "$url/readyz")" = 405 ]
# A rules directory that is not there yet: egressd runs (enforcing the
# others) but is not ready until it can read it.
write_config "$work/late.toml" "$(free_port)" "$(free_port)" 3
sed -i 's|^dirs = \["rules"\]|dirs = ["rules", "late.d"]|' "$work/late.toml"
late_metrics="$(sed -n 's/^listen = "127.0.0.1:\([0-9]*\)"$/\1/p' "$work/late.toml")"
"$bin/egressd" --config "$work/late.toml" > "$work/late.log" 2>&1 &
late=$!
pids+=("$late")
for _ in $(seq 50); do grep -q egressd.started "$work/late.log" && break; sleep 0.1; done
late_url="http://127.0.0.1:$late_metrics"
check "with a rules dir missing, /readyz is 503" [ "$(code "$late_url/readyz")" = 503 ]
body "$late_url/readyz" | grep -qF "[-]rules failed: rules directory not readable (nothing from it is allowed): " \
  && ok "the 503 names the rules check" || fail "503 body: $(body "$late_url/readyz")"
body "$late_url/readyz" | grep -q "late.d" && ok "the 503 names the missing directory" || fail "no late.d in the 503 body"
check "and /healthz is 200 all the same" [ "$(code "$late_url/healthz")" = 200 ]
mkdir "$work/late.d"
for _ in $(seq 50); do [ "$(code "$late_url/readyz")" = 200 ] && break; sleep 0.1; done
check "once the directory is there, /readyz is 200" [ "$(code "$late_url/readyz")" = 200 ]
rmdir "$work/late.d"
for _ in $(seq 100); do [ "$(code "$late_url/readyz")" = 503 ] && break; sleep 0.1; done
check "removed again: 503 again" [ "$(code "$late_url/readyz")" = 503 ]
kill -TERM "$late"; wait "$late"

# ---- a taken metrics port is a start-up error naming the address ------------------------
write_config "$work/second.toml" "$(free_port)" "$metrics_port" 2
"$bin/egressd" --config "$work/second.toml" > "$work/second.log" 2>&1 &
second=$!
pids+=("$second")
for _ in $(seq 50); do kill -0 "$second" 2> /dev/null || break; sleep 0.1; done
wait "$second"; rc=$?
check "second egressd on the same metrics port exits 1 (rc=$rc)" [ "$rc" = 1 ]
grep -q "component=metrics.*metrics.listen 127.0.0.1:$metrics_port" "$work/second.log" \
  && ok "the error names metrics.listen and the address" || { cat "$work/second.log"; fail "bind error message"; }
check "the first egressd still serves" [ "$(code "$url/metrics")" = 200 ]

kill -TERM "$pid"; wait "$pid"; rc=$?
check "SIGTERM exits 0" [ "$rc" = 0 ]
check "the metrics port is closed after exit" [ "$(code "$url/metrics")" = 000 ]

checks_summary

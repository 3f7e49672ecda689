#!/usr/bin/env bash
# Counts the DNS service keeps for later instead of building an event per
# query (issue 17) still reach /metrics and `egressctl stats` with the right
# numbers: a real egressd at log level warn (no event per cache hit or
# denial), unbound serving a test zone, kdig asking, curl scraping.
#   - cache hits credited to the rule sets allowing the name, counted on the
#     cache entry and handed over when /metrics is read;
#   - hits made just before a rules change, under the rules going out;
#   - hits while a watcher listens (events then) counted once, not twice;
#   - DNS denials without attribution, under namespace "_none".
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
checks_init egressd-lazy-counts

# shellcheck source=tests/dns/unbound.sh
. "$src/tests/dns/unbound.sh"

unbound_example_test 'other IN A   192.0.2.11'

dns_port="$(free_port)"
metrics_port="$(free_port)"
mkdir -p "$work/rules"
write_rules app.yaml 'apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: app, namespace: team}
spec: {targets: ["api.example.test:443"]}'
write_rules web.yaml 'apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: web, namespace: team}
spec: {targets: ["*.example.test:443"]}'
cat > "$work/egressd.toml" << TOML
[rules]
dirs = ["$work/rules"]
public_cidrs = ["192.0.2.0/24"]
[dns]
listen = ["127.0.0.1:$dns_port"]
upstreams = ["127.0.0.1:$upstream_port"]
[nfqueue]
enabled = false
[metrics]
listen = "127.0.0.1:$metrics_port"
[control]
socket = "$work/control.sock"
[log]
level = "warn"
TOML
"$bin/egressd" --config "$work/egressd.toml" > "$work/log" 2>&1 &
pids+=("$!")
for _ in $(seq 50); do curl -s --max-time 1 "http://127.0.0.1:$metrics_port/healthz" > /dev/null && break; sleep 0.1; done

n=0
scrape() {
  n=$((n + 1))
  samples="$work/samples$n.txt"
  curl -sS --max-time 5 -o "$work/scrape$n.txt" "http://127.0.0.1:$metrics_port/metrics" || return 1
  "$lint" "$work/scrape$n.txt" > "$samples" 2> "$work/lint$n.txt"
}
val() {
  local v
  v="$(grep -v '^#' "$samples" | awk -v s="$1" '$1 == s {print $2}' | head -1)"
  echo "${v:-0}"
}
hits() { val "egressd_ruleset_decisions_total{kind=\"dns\",ruleset=\"team/$1\",verdict=\"allow\"}"; }
status() { kdig @127.0.0.1 -p "$dns_port" "$@" A +time=2 +retry=0 2> /dev/null | sed -n 's/.*status: \([A-Z]*\).*/\1/p' | head -1; }
ask() {  # NAME COUNT: every answer NOERROR
  local i
  for i in $(seq "$2"); do [ "$(status "$1")" = NOERROR ] || { fail "$1 not answered"; return; }; done
}

# One forwarded answer (an event, counted at once) and five cache hits
# (counted on the cache entry). api is credited to team/app, whose exact
# name is more specific than team/web's wildcard (as connections are).
ask api.example.test 6
scrape || fail "scrape: $(head -3 "$work/lint$n.txt")"
expect_eq "five of the six answers came from the cache" 5 "$(val 'egressd_dns_responses_total{outcome="cache_hit"}')"
expect_eq "team/app credited with all six answers" 6 "$(hits app)"
expect_eq "team/web credited with none" 0 "$(hits web)"
ask other.example.test 3  # only the wildcard
scrape || fail "scrape"
expect_eq "team/web credited with other.example.test's three" 3 "$(hits web)"
expect_eq "team/app unchanged" 6 "$(hits app)"
# Read twice: counts handed over are not handed over again.
scrape || fail "scrape"
expect_eq "a second scrape counts nothing twice" 3 "$(hits web)"

# egressctl stats reads the same counts (hits since the last scrape included).
ask api.example.test 2
if [ -x "$bin/egressctl" ]; then
  "$bin/egressctl" stats --json --socket "$work/control.sock" > "$work/stats.json" 2> "$work/stats.err"
  app_json="$(python3 -c '
import json, sys
for row in json.load(open(sys.argv[1]))["rulesets"]["hits"]:
    if row["ruleset"] == "team/app":
        print(row["dns"]["allow"])' "$work/stats.json")"
  expect_eq "egressctl stats: team/app DNS answers" 8 "$app_json"
else
  echo "note: $bin/egressctl not built; skipping the egressctl stats check"
fi

# Hits just before a rules change belong to the rules going out: a new rule
# set starts a new cache generation, the old entries' hits are handed over.
ask api.example.test 3
write_rules extra.yaml 'apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: extra, namespace: team}
spec: {targets: ["extra.example.test:443"]}'
for _ in $(seq 50); do
  scrape && [ "$(val egressd_policy_rule_sets)" = 3 ] && break
  sleep 0.1
done
expect_eq "three rule sets in force" 3 "$(val egressd_policy_rule_sets)"
ask api.example.test 1  # a miss under the new rules (forwarded), the old hits go first
scrape || fail "scrape"
expect_eq "team/app: 8 + 3 hits before the change + 1 after" 12 "$(hits app)"
ask api.example.test 2  # cached again under the new rules
scrape || fail "scrape"
expect_eq "team/app: +2 hits under the new rules" 14 "$(hits app)"

# A watcher wants every event: cache hits then go out as events and are
# counted from them, not a second time from the cache entry.
if [ -x "$bin/egressctl" ]; then
  timeout 5 "$bin/egressctl" watch --socket "$work/control.sock" > "$work/watch.out" 2>&1 &
  watcher=$!
  watchers() {
    "$bin/egressctl" stats --json --socket "$work/control.sock" 2> /dev/null \
      | python3 -c 'import json, sys; print(json.load(sys.stdin)["control"]["watchers"])' 2> /dev/null
  }
  for _ in $(seq 30); do [ "$(watchers)" = 1 ] && break; sleep 0.1; done
  expect_eq "one watcher listening" 1 "$(watchers)"
  ask api.example.test 4
  sleep 0.3
  scrape || fail "scrape"
  expect_eq "team/app: +4 hits while watched, each once" 18 "$(hits app)"
  wait "$watcher" 2> /dev/null
  [ "$(grep -c 'api\.example\.test' "$work/watch.out")" -ge 4 ] && ok "the watcher saw the cache hits" \
    || fail "the watcher saw $(grep -c 'api\.example\.test' "$work/watch.out") events"
fi

# Denials without attribution: all "_none", counted by the DNS service.
for _ in 1 2 3; do [ "$(status evil.example.net)" = NXDOMAIN ] || fail "evil.example.net not denied"; done
[ "$(status evil.example.net +tcp)" = NXDOMAIN ] || fail "evil.example.net over TCP not denied"
scrape || fail "scrape"
expect_eq "DNS denials under namespace _none" 4 \
  "$(val 'egressd_denials_by_namespace_total{kind="dns",namespace="_none",verdict="deny"}')"
expect_eq "as many as the denied responses" "$(val 'egressd_dns_responses_total{outcome="denied"}')" \
  "$(val 'egressd_denials_by_namespace_total{kind="dns",namespace="_none",verdict="deny"}')"

checks_summary

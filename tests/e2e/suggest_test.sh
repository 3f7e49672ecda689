#!/usr/bin/env bash
# The rollout of docs/rollout.md end to end (issue 15): egressd in audit
# mode with no rule set for the traffic; `egressctl watch --json` records
# a pod's connections (names over TLS and HTTP, a CNAME chain, IPv6, an
# address without a name); `egressctl suggest` turns the recording into
# rule sets, which lint passes; they go into the rules directory, egressd
# switches to enforce, and the same traffic runs again with zero denials.
# `suggest --for` against the live daemon shows its progress and gives the
# same targets. A static pod map names the pod's IPv6 address as a pod of
# team-b; its IPv4 address is no known pod, so those decisions land in
# default/suggested-unattributed. Topology: tests/e2e/topology.sh.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${EGRESSD_BIN:-${1:-}}"
[ -x "$bin/egressd" ] && [ -x "$bin/egressctl" ] || { echo "usage: EGRESSD_BIN=BUILD/bin $0"; exit 2; }
watchers=()
e2e_cleanup_extra() {
  for p in "${watchers[@]}"; do kill "$p" 2> /dev/null; done
}
# shellcheck source=tests/e2e/harness.sh
. "$here/harness.sh"
e2e_start suggest

mkdir -p "$dir/rules" "$dir/out"
# A rule set already in force: suggest leaves its target out.
cat > "$dir/rules/baseline.yaml" << EOF2
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: baseline, namespace: platform}
spec:
  targets:
  - edge.example.net:443
EOF2
# Attribution outside Kubernetes: a static pod map (docs/attribution.md).
printf '%s team-b web-0 StatefulSet/web web\n' "$E2E_POD_IP6" > "$dir/pods.map"
attribution() { printf '\n[attribution]\nmap_file = "%s"\n' "$dir/pods.map" >> "$dir/egressd.toml"; }
E2E_MODE=audit write_egressd_config "$dir/egressd.toml" "$dir/rules"
attribution
sock="$dir/control.sock"
start_egressd "$bin/egressd" "$dir/egressd.toml" || exit 1
ctl() { "$bin/egressctl" "$@"; }

# The traffic: every request must succeed (audit lets it through, enforce
# must allow it after the suggested rule sets are in force).
traffic() {  # PHASE
  expect_eq "$1: a name over TLS" 200 "$(curl_pod https://api.example.com/)"
  expect_eq "$1: the same name over IPv6" 200 "$(curl_pod https://api.example.com/ -6)"
  expect_eq "$1: a second name under example.com" 200 "$(curl_pod https://cdn.example.com/)"
  expect_eq "$1: a name under example.org" 200 "$(curl_pod https://www.example.org/)"
  expect_eq "$1: another name under example.org" 200 "$(curl_pod https://api.example.org/)"
  expect_eq "$1: HTTP on 8080 (Host header)" 200 "$(curl_pod http://other.example.com:8080/)"
  expect_eq "$1: the name the rules in force allow" 200 "$(curl_pod https://edge.example.net/)"
  expect_eq "$1: an address, no name" 200 "$(curl_pod "http://$E2E_IP4_IP_TARGET/")"
}

# --- audit: record --------------------------------------------------------------
# Background commands run the binary itself (not through the ctl function),
# so that $! is egressctl and a signal reaches it.
"$bin/egressctl" watch --socket "$sock" --json > "$dir/out/audit.jsonl" 2> "$dir/out/audit.err" &
watchers+=($!)
# suggest --for listens to the same decisions, with its progress on stderr.
# Its window is longer than the traffic; SIGTERM (as Ctrl-C) ends it early.
"$bin/egressctl" suggest --socket "$sock" --for 5m --wildcard-min 2 > "$dir/out/live.yaml" 2> "$dir/out/live.err" &
live_pid=$!
watchers+=("$live_pid")
sleep 1
traffic audit
sleep 1
kill -TERM "${watchers[0]}"; wait "${watchers[0]}" 2> /dev/null
kill -TERM "$live_pid"
audit_control="$(curl_pod http://other.example.com/)"  # after the recordings: not part of the traffic
expect_ok "the recording holds would-deny decisions" grep -q '"verdict":"audit"' "$dir/out/audit.jsonl"
expect_eq "... and no denial (audit mode)" 0 "$(grep -c '"verdict":"deny"' "$dir/out/audit.jsonl")"

# --- suggest, lint ------------------------------------------------------------------
ctl suggest --socket "$sock" --from "$dir/out/audit.jsonl" --wildcard-min 2 > "$dir/out/suggested.yaml" 2> "$dir/out/suggest.err"
expect_eq "suggest from the recording exits 0" 0 "$?"
suggested="$(cat "$dir/out/suggested.yaml")"
expect_match "the rule set of clients without attribution" 'name: suggested-unattributed' "$suggested"
expect_match "two names under example.org on 443: a wildcard (--wildcard-min 2)" '- "\*\.example\.org:443"' "$suggested"
expect_match "two under example.com: another" '- "\*\.example\.com:443"' "$suggested"
# Port 8080 is in no rule: egressd decides such a connection at its SYN,
# before any name is known, so its verdict has only the address; but the
# pod resolved the name through egressd, whose DNS event lists the answer's
# addresses, so suggest proposes the name (and says how it matched).
expect_match "a connection decided at the SYN: the name its client resolved to the address" \
  '- "other\.example\.com:8080"' "$suggested"
expect_match "... matched through DNS" '1 connection without a name matched through DNS' "$suggested"
expect_eq "... not its address" 0 "$(grep -c -- "- \"$E2E_IP4_OTHER_EXAMPLE_COM:8080\"" "$dir/out/suggested.yaml")"
expect_match "the DNS events carry the answer's addresses" "\"addresses\":\\[[^]]*\"$E2E_IP4_OTHER_EXAMPLE_COM\"" \
  "$(cat "$dir/out/audit.jsonl")"
expect_match "the address-only flow as an address target" "- \"$E2E_IP4_IP_TARGET:80\"" "$suggested"
expect_match "... with its warning" 'WARNING: address only' "$suggested"
expect_match "every target names its source" "from $E2E_POD_IP4" "$suggested"
expect_match "the attributed client has its namespace's rule set" 'namespace: team-b' "$suggested"
expect_match "... with its workload in the comment" 'by StatefulSet/web' "$suggested"
expect_eq "the name the rules in force allow is left out (egressd asked)" 0 "$(grep -c 'edge\.example\.net:443' "$dir/out/suggested.yaml")"
expect_eq "no world access" 0 "$(grep -c -- '- "\*:' "$dir/out/suggested.yaml")"
lint="$(ctl lint "$dir/out/suggested.yaml")"
expect_eq "egressctl lint passes on the suggestion" 0 "$?"
expect_match "... zero errors" ' 0 errors' "$lint"

wait "$live_pid"; live_rc=$?
expect_eq "suggest --for ended early by a signal, exit 0" 0 "$live_rc"
expect_match "... showed its progress on stderr" 'decisions, [0-9]+ names, [0-9hms]+ left' "$(cat "$dir/out/live.err")"
expect_match "... and said it suggests from what it saw" 'interrupted; suggesting from what was seen' "$(cat "$dir/out/live.err")"
expect_eq "... and suggests the same targets" \
  "$(grep -- '    - ' "$dir/out/suggested.yaml")" "$(grep -- '    - ' "$dir/out/live.yaml")"

# --- apply, enforce, replay -------------------------------------------------------------
mark="$(egressd_log_mark)"
cp "$dir/out/suggested.yaml" "$dir/rules/suggested.yaml"
loaded() { egressd_log_since "$mark" | grep -q 'event=policy.loaded'; }
expect_ok "the suggested rule sets load" wait_until 50 loaded
expect_eq "... without errors" "" "$(egressd_log_since "$mark" | grep -E 'level=(error|warn)' | grep -i rule)"
write_egressd_config "$dir/egressd.toml" "$dir/rules"
attribution
kill -HUP "$(cat "$E2E_PIDS/egressd.pid")"
enforcing() { egressd_log_since "$mark" | grep -q 'event=config.reloaded.*mode=enforce'; }
expect_ok "egressd switched to enforce" wait_until 50 enforcing
# Control: what nobody suggested is denied now, so enforce is really on
# (in audit mode this request got through).
expect_eq "control (audit): plain HTTP to a name on port 80 got through" 200 "$audit_control"
expect_match "control (enforce): the same request is refused now" '^curl:(7|52|56)$' "$(curl_pod http://other.example.com/)"

"$bin/egressctl" watch --socket "$sock" --json > "$dir/out/enforce.jsonl" 2> /dev/null &
watchers=($!)
sleep 1
traffic enforce
sleep 1
kill -TERM "${watchers[0]}"; wait "${watchers[0]}" 2> /dev/null
watchers=()
expect_ok "the replay was recorded" grep -q '"verdict":"allow"' "$dir/out/enforce.jsonl"
expect_eq "the same traffic in enforce mode: zero denials" 0 \
  "$(grep -c '"verdict":"deny"\|"verdict":"audit"' "$dir/out/enforce.jsonl")"
expect_match "... allowed by the suggested rule set" 'default/suggested-unattributed' "$(cat "$dir/out/enforce.jsonl")"

# Drift: suggest on the enforce run has nothing new to propose.
ctl suggest --socket "$sock" --from "$dir/out/enforce.jsonl" --wildcard-min 2 > "$dir/out/drift.yaml" 2> /dev/null
expect_eq "suggest after the rollout: no new target" 0 "$(grep -c -- '    - ' "$dir/out/drift.yaml")"
summary

#!/usr/bin/env bash
# egressctl suggest on a recorded audit run (tests/cli/fixtures/suggest:
# dozens of names across three namespaces and a node's host network, made
# by make_audit_run.py): the expected rule sets byte for byte (a golden
# file), lint passes on every output with zero errors, the same decisions
# in another order or through stdin give the same bytes, --all, --per
# workload, the wildcard threshold both ways, and errors that name the bad
# input. No root, no network, no egressd.
set -uo pipefail
bin="${EGRESSD_BIN:?}"
src="${EGRESSD_SOURCE_DIR:?}"
fx="$src/tests/cli/fixtures/suggest"
work="$(mktemp -d /tmp/egressd-suggest-test.XXXXXX)"
trap 'rm -rf "$work"' EXIT
# shellcheck source=tests/cli/expect.sh
. "$src/tests/cli/expect.sh"
suggest() { "$bin/egressctl" suggest --socket "$work/no-egressd.sock" "$@"; }
lint_clean() {  # FILE: lint exits 0 and says 0 errors, 0 warnings
  expect_rc 0 "$2: egressctl lint passes" -- "$bin/egressctl" lint "$1"
  expect_line "$2: no error, no warning" " 0 errors, 0 warnings"
}

# --- the golden file -----------------------------------------------------------
suggest --from "$fx/audit-run.jsonl" --rules-dir "$fx/rules" > "$work/out.yaml" 2> "$work/err"; rc=$?
checks=$((checks + 1))
if [ $rc -eq 0 ] && diff -u "$fx/audit-run.expected.yaml" "$work/out.yaml" > "$work/diff"; then
  echo "ok: the recorded audit run gives the expected rule sets (golden file)"
else
  echo "FAIL: golden file (exit $rc):"; sed 's/^/    /' "$work/diff" "$work/err"; failures=$((failures + 1))
fi
lint_clean "$work/out.yaml" "the suggestion"
out="$(cat "$work/out.yaml")"
expect_line "one rule set per namespace" "  namespace: payments"
expect_line "clients without a pod go to default/suggested-unattributed" "  name: suggested-unattributed"
expect_line "three names under a registrable domain: the narrowest wildcard" '- "*.shipping.example.com:443"'
expect_line "never over a public suffix: three names under co.uk stay" '- "shopone.co.uk:443"'
expect_no_line "... no *.co.uk" '"*.co.uk'
expect_no_line "... no *.github.io" '"*.github.io'
expect_line "... but three under retailer.co.uk collapse" '- "*.retailer.co.uk:443"'
expect_no_line "never world access" '- "*:'
expect_line "an address-only flow is a /32 target with a warning" '- "198.51.100.23:5432"'
expect_line "... IPv6 a /128 one" '- "[2001:db8:5::10]:443"'
expect_line "... the warning" "WARNING: address only"
expect_line "a flow without a name to an address its client resolved through egressd gets the name" \
  '- "db.ledger-partner.example:5432"'
expect_line "... saying so" "# 4 connections without a name matched through DNS: the client had resolved this name (through egressd) to the address it connected to"
expect_no_line "... and no address target for it" '198.51.100.24'
expect_no_line "... nor for its IPv6 address" '2001:db8:5::24'
checks=$((checks + 1))
if [ "$(grep -c 'WARNING: address only' "$work/out.yaml")" = 2 ]; then
  echo "ok: the warning only for the two truly nameless flows"
else
  echo "FAIL: the warning only for the two truly nameless flows"; failures=$((failures + 1))
fi
expect_line "every target has hits, first/last seen and its workloads" \
  "# 12 hits (12 audit), first 2026-12-01T09:00:20Z, last 2026-12-01T09:09:06Z; by Deployment/gateway"
expect_line "a name only resolved is a comment, not a target" "#   unused.example.net: 3 queries"
expect_no_line "... not a target" '- "unused.example.net'
expect_line "UDP that is not QUIC cannot be allowed: a comment" "#   udp to 192.0.2.123:123: 3 decisions"
expect_no_line "names the rules in force allow are left out" 'hooks.slack.com'
expect_line "... and counted" "# Left out: 2 destinations the rules in force already allow"
expect_no_line "cluster names are ignored" 'svc.cluster.local'

# --- same decisions, same bytes ---------------------------------------------------
python3 -c 'import random, sys; lines = open(sys.argv[1]).readlines(); random.Random(4).shuffle(lines); sys.stdout.writelines(lines)' \
  "$fx/audit-run.jsonl" > "$work/shuffled.jsonl"
suggest --rules-dir "$fx/rules" - < "$work/shuffled.jsonl" > "$work/shuffled.yaml" 2> /dev/null
expect_rc 0 "the same decisions in another order, through stdin, give the same bytes" -- \
  cmp "$work/out.yaml" "$work/shuffled.yaml"

# --- options ---------------------------------------------------------------------
suggest "$fx/audit-run.jsonl" --all --rules-dir "$fx/rules" > "$work/all.yaml" 2> /dev/null
lint_clean "$work/all.yaml" "--all"
out="$(cat "$work/all.yaml")"
expect_line "--all lists what the rules in force allow" '- "hooks.slack.com:443"'
expect_line "... marked" "already allowed by the rules in force"
suggest "$fx/audit-run.jsonl" --rules-dir "$fx/rules" --per workload > "$work/workload.yaml" 2> /dev/null
lint_clean "$work/workload.yaml" "--per workload"
out="$(cat "$work/workload.yaml")"
expect_line "--per workload: one rule set per workload" "  name: suggested-statefulset-ledger"
expect_line "... a DaemonSet too" "  name: suggested-daemonset-node-agent"
suggest "$fx/audit-run.jsonl" --rules-dir "$fx/rules" --wildcard-min 5 > "$work/min5.yaml" 2> /dev/null
lint_clean "$work/min5.yaml" "--wildcard-min 5"
out="$(cat "$work/min5.yaml")"
expect_no_line "--wildcard-min 5: four names under shopassets.example stay names" '"*.'
expect_line "... each of them" '- "img4.cdn.shopassets.example:443"'
suggest "$fx/audit-run.jsonl" --rules-dir "$fx/rules" --wildcard-min 2 > "$work/min2.yaml" 2> /dev/null
lint_clean "$work/min2.yaml" "--wildcard-min 2"
out="$(cat "$work/min2.yaml")"
expect_no_line "--wildcard-min 2: still never over a public suffix" '"*.co.uk'
expect_line "... auth.docker.io stays a name: registry-1.docker.io is in force, so one new name is left" \
  '- "auth.docker.io:443"'
suggest "$fx/audit-run.jsonl" --all --wildcard-min 2 > "$work/min2all.yaml" 2> /dev/null
lint_clean "$work/min2all.yaml" "--all --wildcard-min 2"
out="$(cat "$work/min2all.yaml")"
expect_line "--all --wildcard-min 2: the two names under docker.io collapse" '- "*.docker.io:443"'
expect_no_line "... without egressd or --rules-dir nothing is marked" "already allowed by the rules in force"

# --- errors name the bad input -------------------------------------------------------
expect_rc 2 "no source: usage error" -- suggest
expect_line "... says what to give" "give either --for DURATION"
expect_rc 2 "--for and --from together" -- suggest --for 1m --from "$fx/audit-run.jsonl"
expect_rc 2 "--for without a unit" -- suggest --for 10
expect_line "... names it" '--for "10": expected a duration with a unit'
expect_rc 2 "--per something else" -- suggest --per pod "$fx/audit-run.jsonl"
expect_line "... names it" '--per "pod": expected namespace or workload'
expect_rc 2 "--wildcard-min 1" -- suggest --wildcard-min 1 "$fx/audit-run.jsonl"
expect_rc 2 "--rules-dir that is not a directory" -- suggest --rules-dir "$fx/audit-run.jsonl" "$fx/audit-run.jsonl"
expect_line "... names it" "--rules-dir $fx/audit-run.jsonl: not a directory"
expect_rc 1 "a file that does not exist" -- suggest --all "$work/missing.jsonl"
expect_line "... named with the cause" "--from $work/missing.jsonl: cannot open: No such file or directory"
expect_rc 1 "a rule file instead of decisions" -- suggest --all "$fx/rules/in-force.yaml"
expect_line "... names the file and line" "in-force.yaml:1: not a decision event: not JSON"
expect_line "... and what it expected" "no decision events in it (expected the output of egressctl watch --json)"
: > "$work/empty.jsonl"
expect_rc 1 "an empty input is an error, not an empty suggestion" -- suggest --all "$work/empty.jsonl"
expect_line "... says so" "empty.jsonl: no decision events in it (it is empty)"
printf '\n\n' > "$work/blank.jsonl"
expect_rc 1 "blank lines only: no decision either" -- suggest --all "$work/blank.jsonl"
{ head -3 "$fx/audit-run.jsonl"; echo '{"kind":"verdict","src":"10.0.0.1"}'; echo '{"kind":"verdict","time":"2026-12-01T09:00:00Z","src":"10.0.0.1","dst":"203.0.113.1","proto":"tcp","verdict":"audit","dport":99999}'; } > "$work/some-bad.jsonl"
expect_rc 0 "bad lines among good ones are skipped" -- suggest --all "$work/some-bad.jsonl"
expect_line "... each named with its line and the key" "some-bad.jsonl:4: not a decision event: \"time\" is missing"
expect_line "... the next one too" "some-bad.jsonl:5: not a decision event: \"dport\" is not a number in 0..65535"
expect_line "... and counted" "skipped 2 of 5 lines"
expect_rc 1 "without egressd, --rules-dir or --all the rules in force are unknown" -- suggest "$fx/audit-run.jsonl"
expect_line "... says how to go on" "give --rules-dir DIR to compare with rule files offline, or --all"
expect_rc 1 "--for without egressd" -- suggest --for 1s
expect_line "... names the socket" "cannot connect to $work/no-egressd.sock"
expect_rc 0 "--help explains the command" -- "$bin/egressctl" suggest --help
expect_line "... the wildcard rule" "--wildcard-min"
expect_summary

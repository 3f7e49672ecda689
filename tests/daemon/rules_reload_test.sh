#!/usr/bin/env bash
# egressd's live rules reloads as an operator meets them (docs/egressd.md,
# "Rules directories"), loopback only, no root: unbound serves a test zone
# upstream, so an allowed name gets its address (NOERROR) and a denied one
# NXDOMAIN. Checks:
# - one refused target costs only itself: the rule set's other targets keep
#   resolving; the log (rules.targets_refused) and /metrics name it;
# - a document that cannot be read (an unquoted '*') keeps its last good
#   version while the file's other documents take their new content;
# - a file being written in place (open, half written) does not count until
#   it is closed; an emptied file is a removal, and the log names what went;
# - policy.loaded names the rule sets added, removed and changed; a problem
#   is logged once, not again on every reload.
# Control: the same refused target is not in force (its name is denied).
# Needs: unbound, kdig (knot-dnsutils), curl, python3.
set -uo pipefail
bin="${EGRESSD_BIN:?}"
src="${EGRESSD_SOURCE_DIR:?}"
for tool in unbound kdig curl python3; do
  command -v "$tool" > /dev/null || { echo "FAIL: $tool not installed"; exit 1; }
done
# shellcheck source=tests/support/checks.sh
. "$src/tests/support/checks.sh"
checks_init egressd-rules-reload-test
checks_log_lines=8
close_fd3() { exec 3>&- 2> /dev/null; }
checks_on_exit close_fd3

# shellcheck source=tests/dns/unbound.sh
. "$src/tests/dns/unbound.sh"

upstream_port="$(free_port)"
{
  printf '$ORIGIN example.test.\n$TTL 300\n@ IN SOA ns.example.test. admin.example.test. 1 3600 600 86400 60\n'
  printf '@ IN NS ns.example.test.\nns IN A 192.0.2.1\n'
  for n in one two three four five six; do printf '%s IN A 192.0.2.10\n' "$n"; done
} > "$work/example.test.zone"
unbound_auth_conf "$upstream_port" "example.test=$work/example.test.zone" > "$work/unbound.conf"
unbound_start "$work/unbound.conf" unbound
pids+=("$unbound_pid")
unbound_wait "$upstream_port" one.example.test 192.0.2.10

dns_port="$(free_port)"
metrics_port="$(free_port)"
mkdir -p "$work/rules"
cat > "$work/egressd.toml" << TOML
[rules]
dirs = ["rules"]
# The upstream answers with documentation addresses (internal by default).
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
TOML
rules="$work/rules"
doc() { # doc NAME TARGETS...: one EgressRuleSet document
  local name=$1; shift
  printf 'apiVersion: zalando.org/v1\nkind: EgressRuleSet\nmetadata: {name: %s, namespace: team}\nspec:\n  targets:\n' "$name"
  local t; for t in "$@"; do printf '  - %s\n' "$t"; done
}
write_rules app.yaml "$(doc app '"one.example.test:443"' '"two.example.test:443"')
---
$(doc other '"five.example.test:443"')"

egressd_start "$work/egressd.toml" && ok "egressd starts" || { fail "egressd did not start"; exit 1; }

status() { kdig @127.0.0.1 -p "$dns_port" "$1" A +time=2 +retry=0 2> /dev/null | sed -n 's/.*status: \([A-Z]*\).*/\1/p' | head -1; }
wait_status() { # NAME WANT: polls for up to 3 s
  for _ in $(seq 30); do [ "$(status "$1")" = "$2" ] && return 0; sleep 0.1; done; return 1
}
loads() { grep -c 'event=policy.loaded' "$work/log"; }
wait_loads() { # wait until more than N policy.loaded lines
  for _ in $(seq 30); do [ "$(loads)" -gt "$1" ] && return 0; sleep 0.1; done; return 1
}
metric() { curl -sS --max-time 3 "http://127.0.0.1:$metrics_port/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

check "start: one and two allowed" test "$(status one.example.test)" = NOERROR -a "$(status two.example.test)" = NOERROR
check "start: three denied" test "$(status three.example.test)" = NXDOMAIN

# 1. One target refused (a wildcard over a suffix only the public suffix
#    list knows), one added: the others stay in force.
n=$(loads)
write_rules app.yaml "$(doc app '"one.example.test:443"' '"*.github.io:443"' '"three.example.test:443"')
---
$(doc other '"five.example.test:443"')"
wait_loads "$n" || fail "no policy.loaded after the change"
check "refused target: the rule set's other targets stay (one)" wait_status one.example.test NOERROR
check "refused target: the new valid target is in force (three)" wait_status three.example.test NOERROR
check "removed target is gone (two)" wait_status two.example.test NXDOMAIN
check "control: the refused target is not in force" test "$(status pages.github.io)" = NXDOMAIN
check "rules.targets_refused names the rule set, the target and the count in force" \
  grep -q 'event=rules.targets_refused ruleset=team/app .*in_force=2 refused=1 targets=\*.github.io:443' "$work/log"
check "policy.loaded names the changed rule set" grep -q 'event=policy.loaded .*changed=team/app .*refused_targets=1 partial_rulesets=team/app' "$work/log"
check "metric egressd_rules_refused_targets is 1" test "$(metric egressd_rules_refused_targets)" = 1

# 2. A problem is logged once: a reload for another file does not repeat it.
problems=$(grep -c 'event=rules.problem' "$work/log")
n=$(loads)
write_rules extra.yaml "$(doc extra '"six.example.test:443"')"
wait_loads "$n" || fail "no policy.loaded for extra.yaml"
check "policy.loaded names the added rule set" grep -q 'event=policy.loaded .*added=team/extra' "$work/log"
check "problems of an unchanged file are not logged again" test "$(grep -c 'event=rules.problem' "$work/log")" = "$problems"

# 3. Document 2 cannot be read (unquoted '*'), document 1 changes: team/app
#    takes its new version, team/other keeps its last good one.
n=$(loads)
write_rules app.yaml "$(doc app '"one.example.test:443"' '"four.example.test:443"')
---
$(doc other '*.example.test:443')"
wait_loads "$n" || fail "no policy.loaded after breaking document 2"
check "broken document: the file's other document takes its new content (four)" wait_status four.example.test NOERROR
check "broken document: its rule set keeps its last good version (five)" test "$(status five.example.test)" = NOERROR
check "broken document: named at line:col" grep -q "app.yaml:14:5: error: an unquoted" "$work/log"
check "broken document: the kept rule set is named" grep -q 'keeping the last good version of team/other' "$work/log"

# 4. Written in place by a slow writer: nothing counts until it is closed.
#    The first half is itself a valid file (app only); read mid-write it
#    would remove team/other and app's four.
check "before: three denied" test "$(status three.example.test)" = NXDOMAIN
exec 3> "$rules/app.yaml" # truncates: the file is empty while open
doc app '"one.example.test:443"' >&3
n=$(loads)
write_rules extra.yaml "$(doc extra '"six.example.test:443"' '"three.example.test:443"')" # a pass meanwhile
wait_loads "$n" || fail "no pass while app.yaml was open"
check "a pass ran while app.yaml was open (three now allowed)" wait_status three.example.test NOERROR
check "being written: app keeps its last good version (four)" test "$(status four.example.test)" = NOERROR
check "being written: other keeps its rules (five)" test "$(status five.example.test)" = NOERROR
check "the deferral is logged" grep -q "event=rules.file_deferred file=$rules/app.yaml" "$work/log"
printf -- '---\n' >&3
doc other '"two.example.test:443"' >&3
exec 3>&-
check "closed: the new content counts (two)" wait_status two.example.test NOERROR
check "closed: what app no longer has is gone (four)" wait_status four.example.test NXDOMAIN
check "closed: other's old target is gone (five)" wait_status five.example.test NXDOMAIN
check "closed: one stays" test "$(status one.example.test)" = NOERROR

# 5. An intentionally emptied file is a removal, and says what went.
: > "$rules/app.yaml"
check "emptied file: its names are denied" wait_status two.example.test NXDOMAIN
check "emptied file: the warning names the rule sets" \
  grep -q 'the file holds no documents any more: its rule sets team/app, team/other are removed' "$work/log"
check "emptied file: policy.loaded names the removed rule sets" grep -q 'event=policy.loaded .*removed=team/app,team/other' "$work/log"
check "other files untouched (six)" test "$(status six.example.test)" = NOERROR

checks_summary

#!/usr/bin/env bash
# egressctl lint, egressd --check-config and egressctl explain on the same
# inputs: one loader, the same sentences. Refused targets cost only
# themselves, unreadable documents are named with file:line:col and a caret,
# near-miss kinds get a suggestion. Each check prints what it verifies; any
# failure exits 1. No root, no network.
set -uo pipefail
bin="${EGRESSD_BIN:?}"
src="${EGRESSD_SOURCE_DIR:?}"
fx="$src/tests/cli/fixtures/lint"
work="$(mktemp -d /tmp/egressd-lint-test.XXXXXX)"
trap 'rm -rf "$work"' EXIT
# shellcheck source=tests/cli/expect.sh
. "$src/tests/cli/expect.sh"

# Item 3: a refused target costs only itself.
expect_rc 1 "lint: a refused target is an error" -- "$bin/egressctl" lint "$fx/partial.yaml"
expect_line "the refused target is named with its reason" \
  'partial.yaml: document 1 (team-b/pages): target[1] "*.github.io:443": error: wildcard directly over a public suffix'
expect_line "lint says which targets are not in force and how many are" \
  'partial.yaml: document 1 (team-b/pages): warning: 1 of 3 targets will not be in force: target[1] "*.github.io:443"; the other 2 will'
expect_line "the summary counts the targets in force and those refused" \
  "lint: 1 file, 1 rule set, 2 targets in force, 1 error, 1 warning; not in force: 0 rule sets, 1 target"
mkdir -p "$work/rules"
cp "$fx/partial.yaml" "$work/rules/"
expect_rc 0 "explain: the valid targets of a partly refused rule set are in force" -- \
  "$bin/egressctl" explain api.example.com:443 --rules-dir "$work/rules"
expect_line "explain names the rule set" "by team-b/pages  (target api.example.com:443, exact)"
expect_rc 1 "explain: the refused target is not" -- "$bin/egressctl" explain x.github.io:443 --rules-dir "$work/rules"

# Item 4: kind near-miss.
expect_rc 1 "lint: a kind near-miss is an error" -- "$bin/egressctl" lint "$fx/near-miss.yaml"
expect_line "with a suggestion" \
  'near-miss.yaml: document 1 (default/typo): error: kind "EgressRuleset" is not EgressRuleSet; did you mean EgressRuleSet?'
out="$(printf 'apiVersion: zalando.org/v1\nkind: EgressRuleSets\nmetadata: {name: t}\nspec: {targets: ["a.example.com:443"]}\n' |
  "$bin/egressctl" lint - 2>&1)"; rc=$?
checks=$((checks + 1)); [ $rc -eq 1 ] && echo "ok: EgressRuleSets (plural) exits 1" || { echo "FAIL: plural kind exit $rc"; failures=$((failures + 1)); }
expect_line "plural named" 'kind "EgressRuleSets" is not EgressRuleSet; did you mean EgressRuleSet?'

# Item 5: every unquoted '*', at its column, with the user's own target.
expect_rc 1 "lint: unquoted '*' is an error" -- "$bin/egressctl" lint "$fx/aliases.yaml"
expect_line "first alias at line:col" \
  "aliases.yaml:8:5: error: an unquoted '*' starts a YAML alias, so this document cannot be read; quote the target: \"*.example.org:80\""
expect_line "the offending line" "      - *.example.org:80"
expect_line "a caret under the '*'" "$(printf '        ^')"
expect_line "second alias too (not only the first)" \
  "aliases.yaml:23:5: error: an unquoted '*' starts a YAML alias, so this document cannot be read; quote the target: \"*:80\""
expect_line "the valid document in between still loads" "lint: 1 file, 3 rule sets, 1 target in force, 2 errors"

# Small fixes: IPv6 host bits, "*.", U-label, duplicate target, JSON errors.
expect_rc 1 "lint: small fixes file" -- "$bin/egressctl" lint "$fx/small-fixes.yaml"
expect_line "IPv6 host bits: the IPv6 network" 'write "[2001:db8::/32]:443"'
expect_no_line "no IPv4 example for an IPv6 network" "203.0.113.0/24"
expect_line "\"*.:443\" is refused, not world access" 'target[1] "*.:443": error:'
expect_line "U-label gets its A-label" 'write "xn--bcher-kva.example:443"'
expect_line "duplicate target names the earlier one" \
  'target[4] "A.Example.com.:443": warning: duplicate target: same as target[3] "a.example.com:443"'
expect_rc 1 "lint: broken JSON" -- "$bin/egressctl" lint "$fx/broken.json"
expect_line "JSON error with line:col" "broken.json:1:42: error: invalid JSON: unexpected end of input"
expect_no_line "no library prefix" "json.exception"

# Duplicate rule sets across files: lint says what egressd says.
expect_rc 0 "lint: the same rule set in two files is a warning" -- "$bin/egressctl" lint "$fx/dup"
expect_line "lint names both sources" "warning: rule set team/same is also defined in $fx/dup/a.yaml#1; both apply"
expect_line "lint lists the skipped entries" "lint: skipped 2 entries (not *.yaml, *.yml or *.json files): $fx/dup/README.txt $fx/dup/old"

# One code path: --check-config prints the same problem lines as lint.
for dir in "$fx/dup" "$work/rules"; do
  printf '[rules]\ndirs = ["%s"]\n[dns]\nlisten = ["127.0.0.1:5353"]\nupstreams = ["127.0.0.1:53"]\n[nfqueue]\nenabled = false\n' "$dir" > "$work/egressd.toml"
  "$bin/egressd" --check-config --config "$work/egressd.toml" 2>&1 | grep -E ': (error|warning): ' > "$work/check.lines"
  "$bin/egressctl" lint "$dir" 2>&1 | grep -E ': (error|warning): ' > "$work/lint.lines"
  checks=$((checks + 1))
  if [ -s "$work/lint.lines" ] && diff -u "$work/lint.lines" "$work/check.lines" > "$work/diff"; then
    echo "ok: lint and --check-config say the same about $(basename "$dir") ($(wc -l < "$work/lint.lines") lines)"
  else
    echo "FAIL: lint and --check-config differ on $dir"; sed 's/^/    /' "$work/diff"; failures=$((failures + 1))
  fi
done

# Item 7: --check-config --strict gates CI; a rules.dirs file is an error.
printf '[rules]\ndirs = ["%s"]\n[dns]\nlisten = ["127.0.0.1:5353"]\nupstreams = ["127.0.0.1:53"]\n[nfqueue]\nenabled = false\n' "$work/rules" > "$work/egressd.toml"
expect_rc 0 "check-config: refused targets are listed, exit 0 without --strict" -- \
  "$bin/egressd" --check-config --config "$work/egressd.toml"
expect_line "check-config says what is not in force" "NOT in force: 0 rule sets, 1 target (1 error; egressd runs without them, --strict makes this exit 1)"
expect_rc 1 "check-config --strict: refused targets exit 1" -- \
  "$bin/egressd" --check-config --strict --config "$work/egressd.toml"
expect_rc 2 "--strict without --check-config is a usage error" -- "$bin/egressd" --strict --config "$work/egressd.toml"
printf '[rules]\ndirs = ["%s"]\n[dns]\nlisten = ["127.0.0.1:5353"]\nupstreams = ["127.0.0.1:53"]\n[nfqueue]\nenabled = false\n' "$fx/partial.yaml" > "$work/file.toml"
expect_rc 1 "check-config: a rules.dirs entry that is a file is an error" -- \
  "$bin/egressd" --check-config --config "$work/file.toml"
expect_line "named as not a directory" "partial.yaml: error: rules directory is not a directory"

# explain accepts U-labels by converting them.
cat > "$work/rules/idn.yaml" <<'YAML'
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: idn}
spec: {targets: ["xn--bcher-kva.example:443"]}
YAML
expect_rc 0 "explain: a U-label query is converted to its A-label" -- \
  "$bin/egressctl" explain "bücher.example:443" --rules-dir "$work/rules"
expect_line "the conversion is shown" "(bücher.example is xn--bcher-kva.example)"
expect_line "and the answer is for the A-label" "xn--bcher-kva.example:443 ALLOWED"

# Nothing to check is said, and -W (CI) fails on it.
expect_rc 0 "lint: empty stdin is not an error" -- bash -c "\"$bin/egressctl\" lint - < /dev/null"
expect_line "... but is said" "lint: warning: no EgressRuleSet in the input; nothing was checked"
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n' > "$work/configmap.yaml"
expect_rc 1 "lint -W: only other kinds fails" -- "$bin/egressctl" lint -W "$work/configmap.yaml"
expect_line "... with the same sentence" "no EgressRuleSet in the input"

expect_summary

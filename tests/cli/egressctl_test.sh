#!/usr/bin/env bash
# egressctl lint/explain as a user runs them: exit codes and the lines
# users read. Each check prints what it verifies; any failure exits 1.
set -uo pipefail
bin="${EGRESSD_BIN:?}/egressctl"
src="${EGRESSD_SOURCE_DIR:?}"
fixtures="$src/tests/cli/fixtures"
failures=0
checks=0

expect_rc() {  # expect_rc WANT DESCRIPTION -- command...
  local want="$1" what="$2"; shift 3
  out="$("$@" 2>&1)"; rc=$?
  checks=$((checks + 1))
  if [ "$rc" != "$want" ]; then
    echo "FAIL: $what: exit $rc, want $want"; echo "$out" | sed 's/^/    /'; failures=$((failures + 1))
  else
    echo "ok: $what"
  fi
}
expect_line() {  # expect_line DESCRIPTION TEXT (in $out)
  checks=$((checks + 1))
  if ! grep -qF -- "$2" <<<"$out"; then
    echo "FAIL: $1: output lacks: $2"; echo "$out" | sed 's/^/    /'; failures=$((failures + 1))
  else
    echo "ok: $1"
  fi
}

expect_rc 0 "lint accepts the example rules" -- "$bin" lint "$src"/examples/rules/*.yaml
expect_line "lint warns about world access" 'world-access.yaml: document 1 (default/world-access): target[0] "*:80": warning: world access'
expect_line "lint says world access makes every name resolvable, and which guard applies" \
  'target[0] "*:80": warning: world access makes every name resolvable through egressd'"'"'s DNS; for names no exact or wildcard target allows, only A/AAAA queries are answered'
expect_line "lint summary" "lint: 3 files, 4 rule sets"
expect_rc 0 "lint accepts a directory" -- "$bin" lint "$src/examples/rules"

expect_rc 1 "lint refuses a file with errors" -- "$bin" lint "$fixtures/mixed.yaml"
expect_line "port wildcard named with file, document, target" \
  'mixed.yaml: document 2 (team-x/broken): target[1] "api.example.net:*": error: port wildcards are not allowed'
expect_line "public suffix wildcard named" 'target[2] "*.co.uk:443": error: wildcard directly over a public suffix'
expect_line "other kinds are skipped with a warning" 'document 3: warning: skipped: kind "ConfigMap"'
expect_line "summary counts errors" "2 errors"

expect_rc 1 "warnings as errors" -- "$bin" lint -W "$src/examples/rules/world-access.yaml"
expect_rc 1 "missing file is an error" -- "$bin" lint /nonexistent.yaml
expect_line "missing file named" "/nonexistent.yaml: error: cannot read"
out="$(printf 'apiVersion: zalando.org/v1\nkind: EgressRuleSet\nmetadata: {name: s}\nspec: {targets: ["a.example.com:443"]}\n' | "$bin" lint -)"
rc=$?; checks=$((checks + 1))
if [ $rc -ne 0 ]; then echo "FAIL: lint from stdin: exit $rc"; failures=$((failures + 1)); else echo "ok: lint from stdin"; fi
expect_rc 2 "lint without files is a usage error" -- "$bin" lint

rules=(-r "$src/examples/rules")
expect_rc 0 "explain: exact name allowed" -- "$bin" explain mydependency1.example.com:443 "${rules[@]}"
expect_line "explain names the rule set and target" "by default/my-app-targets  (target mydependency1.example.com:443, exact)"
expect_line "explain mentions DNS binding" "strict binding"
expect_rc 0 "explain: wildcard" -- "$bin" explain a.b.example.org:80 "${rules[@]}"
expect_line "explain lists both rule sets" "by default/world-access  (target *:80, world)"
expect_rc 1 "explain: wildcard does not cover the bare suffix on 443" -- "$bin" explain example.org:443 "${rules[@]}"
expect_rc 1 "explain: denied on another port" -- "$bin" explain mydependency1.example.com:8443 "${rules[@]}"
expect_line "explain suggests other ports" "allowed on other ports: 80 443"
expect_rc 0 "explain: IP literal on world port" -- "$bin" explain 198.51.100.7:80 "${rules[@]}"
expect_rc 1 "explain: IPv6 literal denied" -- "$bin" explain "[2001:db8::1]:443" "${rules[@]}"
expect_rc 0 "explain: system rule set" -- "$bin" explain registry-1.docker.io:443 "${rules[@]}"
expect_line "system rule set named" "by kube-system/container-registries"
expect_rc 0 "explain --json" -- "$bin" explain mydependency1.example.com:443 --json "${rules[@]}"
expect_line "json verdict" '"verdict":"allow"'
expect_rc 2 "explain: missing port" -- "$bin" explain mydependency1.example.com "${rules[@]}"
expect_line "missing port explained" "missing port"
expect_rc 2 "explain: bad port" -- "$bin" explain a.example.com:99999 "${rules[@]}"
expect_rc 2 "explain: unbracketed IPv6" -- "$bin" explain 2001:db8::1:443 "${rules[@]}"
expect_rc 2 "explain: missing rules dir" -- "$bin" explain a.example.com:443 -r /nonexistent
expect_rc 0 "--help exits 0" -- "$bin" --help

# A socket the user may not open: the error says who may (mode, owner) and how
# to let a group in. Needs root to make a socket another user cannot open.
if [ "$(id -u)" = 0 ] && id nobody > /dev/null 2>&1 && command -v python3 > /dev/null &&
  su nobody -s /bin/sh -c "test -x '$bin'" 2> /dev/null; then
  sockdir="$(mktemp -d)"
  chmod 755 "$sockdir"
  python3 -c 'import os, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o600); s.listen(); time.sleep(10)' \
    "$sockdir/control.sock" &
  listener=$!
  for _ in $(seq 50); do [ -S "$sockdir/control.sock" ] && break; sleep 0.1; done
  expect_rc 1 "a socket egressctl may not open" -- su nobody -s /bin/sh -c "'$bin' stats --socket '$sockdir/control.sock'"
  expect_line "... names its mode and owner" "the socket is mode 0600, owner root:"
  expect_line "... and the setting that lets a group in" 'control.socket_mode = "0660"'
  kill "$listener" 2> /dev/null
  wait "$listener" 2> /dev/null
  rm -rf "$sockdir"
fi

echo "$((checks - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]

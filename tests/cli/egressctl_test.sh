#!/usr/bin/env bash
# egressctl lint/explain as a user runs them: exit codes and the lines
# users read. Each check prints what it verifies; any failure exits 1.
set -uo pipefail
bin="${EGRESSD_BIN:?}/egressctl"
src="${EGRESSD_SOURCE_DIR:?}"
fixtures="$src/tests/cli/fixtures"
# shellcheck source=tests/cli/expect.sh
. "$src/tests/cli/expect.sh"

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
expect_rc 0 "explain: a pattern the wildcard rule covers" -- "$bin" explain '*.b.example.org:80' "${rules[@]}"
expect_line "explain: says it answers for every name" "(a pattern: the answer holds for every name it covers)"
expect_rc 1 "explain: a pattern no rule covers on 443" -- "$bin" explain '*.example.org:443' "${rules[@]}"
expect_rc 1 "explain: wildcard does not cover the bare suffix on 443" -- "$bin" explain example.org:443 "${rules[@]}"
expect_rc 1 "explain: denied on another port" -- "$bin" explain mydependency1.example.com:8443 "${rules[@]}"
expect_line "explain suggests other ports" "allowed on other ports: 80 443"
expect_rc 0 "explain: public IP literal on world port" -- "$bin" explain 93.184.215.14:80 "${rules[@]}"
expect_line "explain: world access covers a public address" "by default/world-access  (target *:80, world)"
# World access is the public internet only: metadata, private and
# documentation addresses are not covered, and explain says which target is.
expect_rc 1 "explain: metadata address on world port" -- "$bin" explain 169.254.169.254:80 "${rules[@]}"
expect_line "explain: internal range named" \
  "world access (*:80) covers public destinations only, not this internal address: 169.254.0.0/16 link-local"
expect_line "explain: the target that opens it" "to open it on purpose, add the target 169.254.169.254:80"
expect_rc 1 "explain: IPv6 metadata address" -- "$bin" explain "[fd00:ec2::254]:80" "${rules[@]}"
expect_line "explain: IPv6 target in brackets" "add the target [fd00:ec2::254]:80"
expect_rc 1 "explain: NAT64 form of a private address" -- "$bin" explain "[64:ff9b::a00:1]:80" "${rules[@]}"
expect_line "explain: embedded IPv4 named" "NAT64 well-known prefix form of 10.0.0.1, 10.0.0.0/8 private-use"
expect_rc 1 "explain: documentation address" -- "$bin" explain 198.51.100.7:80 "${rules[@]}"
expect_rc 0 "lint: world access warning" -- "$bin" lint "$src/examples/rules/world-access.yaml"
expect_line "lint: world access names the ranges that stay closed" \
  'World access covers public destinations only: loopback, link-local (the cloud metadata services 169.254.169.254 and fd00:ec2::254)'
expect_line "lint: how to open one on purpose" 'add an IP/CIDR target for it (e.g. "10.20.0.0/16:80")'
expect_rc 1 "explain: IPv6 literal denied" -- "$bin" explain "[2001:db8::1]:443" "${rules[@]}"
expect_rc 0 "explain: system rule set" -- "$bin" explain registry-1.docker.io:443 "${rules[@]}"
expect_line "system rule set named" "by kube-system/container-registries"
expect_rc 0 "explain --json" -- "$bin" explain mydependency1.example.com:443 --json "${rules[@]}"
expect_line "json verdict" '"verdict":"allow"'
expect_rc 2 "explain: missing port" -- "$bin" explain mydependency1.example.com "${rules[@]}"
expect_line "missing port explained" "missing port"
expect_rc 2 "explain: bad port" -- "$bin" explain a.example.com:99999 "${rules[@]}"
expect_rc 2 "explain: unbracketed IPv6" -- "$bin" explain 2001:db8::1:443 "${rules[@]}"
expect_rc 2 "explain: a network is not read as a name (world access would allow that)" -- \
  "$bin" explain 203.0.113.0/24:80 "${rules[@]}"
expect_line "... names the address to ask about" 'is a network; ask about one address in it, e.g. 203.0.113.0:80'
expect_rc 2 "explain: a pasted URL" -- "$bin" explain https://mydependency1.example.com/v1 "${rules[@]}"
expect_line "... gives the target meant" 'a URL is not a target; write HOST:PORT, e.g. mydependency1.example.com:443'
expect_rc 0 "explain: a name in capitals with a trailing dot" -- "$bin" explain MyDependency1.Example.COM.:443 "${rules[@]}"
expect_line "... the binding note names it as resolved" "egressd's DNS answer for mydependency1.example.com"
expect_rc 2 "explain: missing rules dir" -- "$bin" explain a.example.com:443 -r /nonexistent
no_rules="$(mktemp -d)"
expect_rc 1 "explain: a rules dir without manifests denies" -- "$bin" explain a.example.com:443 -r "$no_rules"
expect_line "... and says the dir is empty" "warning: --rules-dir $no_rules: no *.yaml, *.yml or *.json files"
rmdir "$no_rules"
expect_rc 0 "--help exits 0" -- "$bin" --help

# Usage: bare egressctl lists what it can do; usage errors are 2 everywhere.
expect_rc 2 "bare egressctl is a usage error" -- "$bin"
for sub in lint explain watch rules stats top; do
  expect_line "bare egressctl lists '$sub'" "  $sub "
done
expect_rc 0 "stats --help" -- "$bin" stats --help
expect_line "stats --help shows --watch [SECONDS]" "--watch [SECONDS]"
checks=$((checks + 1))
if grep -qF -- '--watch{' <<<"$out"; then
  echo "FAIL: stats --help shows CLI11's --watch{...} default syntax"; failures=$((failures + 1))
else
  echo "ok: stats --help does not show --watch{2}"
fi
expect_rc 2 "stats --watch 0 is refused" -- "$bin" stats --watch 0 --socket /nonexistent/sock
expect_line "... naming the value" 'needs a number of seconds above 0, not "0"'
controller="${EGRESSD_BIN}/egress-controller"
if [ -x "$controller" ]; then
  expect_rc 2 "egress-controller: a missing --rules-dir is a usage error (exit 2)" -- "$controller" --in-cluster
  expect_rc 2 "egress-controller: an unknown flag is a usage error (exit 2)" -- "$controller" --frobnicate
  expect_rc 0 "egress-controller --help exits 0" -- "$controller" --help
fi

# -S on something that is not a socket: said plainly, before connecting.
notsock="$(mktemp -d)"
printf '[dns]\nupstreams = ["127.0.0.1:53"]\n[control]\nsocket = "%s/control.sock"\n' "$notsock" > "$notsock/egressd.toml"
expect_rc 1 "-S on a regular file" -- "$bin" stats -S "$notsock/egressd.toml"
expect_line "... says it is a file, not the control socket" \
  "$notsock/egressd.toml is a regular file, not egressd's control socket"
expect_line "... and offers --config for a .toml" "use --config $notsock/egressd.toml"
expect_rc 1 "-S on a directory" -- "$bin" rules -S "$notsock"
expect_line "... says it is a directory" "$notsock is a directory, not egressd's control socket"
# --config FILE and $EGRESSCTL_SOCKET choose the socket (no daemon: the
# error names the path it tried); --socket beats both.
expect_rc 1 "--config takes control.socket from egressd.toml" -- "$bin" stats --config "$notsock/egressd.toml"
expect_line "... and tries it" "cannot connect to $notsock/control.sock"
expect_rc 1 "EGRESSCTL_SOCKET names the socket" -- env EGRESSCTL_SOCKET="$notsock/env.sock" "$bin" rules
expect_line "... and is tried" "cannot connect to $notsock/env.sock"
expect_rc 1 "--socket beats EGRESSCTL_SOCKET" -- env EGRESSCTL_SOCKET="$notsock/env.sock" "$bin" rules -S "$notsock/flag.sock"
expect_line "... the flag's socket is tried" "cannot connect to $notsock/flag.sock"
expect_rc 1 "--config beats EGRESSCTL_SOCKET" -- env EGRESSCTL_SOCKET="$notsock/env.sock" "$bin" rules --config "$notsock/egressd.toml"
expect_line "... the config's socket is tried" "cannot connect to $notsock/control.sock"
printf 'mode = "enforc"\n' > "$notsock/bad.toml"
expect_rc 2 "--config with an invalid egressd.toml" -- "$bin" stats --config "$notsock/bad.toml"
expect_line "... names the problem" 'mode: "enforc" is not one of'
rm -rf "$notsock"

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

expect_summary

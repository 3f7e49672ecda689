#!/usr/bin/env bash
# `make demo`: the allowlist of examples/rules/ as egressd sees it.
# Lints the example rule sets (the two of the original request and the
# system bootstrap set) and asks, for a few destinations, whether a pod may
# connect and which rule sets say so.
set -uo pipefail
build="${1:-build}"
root="$(cd "$(dirname "$0")/.." && pwd)"
ctl="$build/bin/egressctl"
rules="$root/examples/rules"

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

say egressctl lint examples/rules/
"$ctl" lint "$rules"

for target in mydependency1.example.com:443 api.eu.example.org:80 example.org:443 \
              registry-1.docker.io:443 evil.example.net:443 93.184.215.14:80 169.254.169.254:80 \
              mydependency1.example.com:8443; do
  say egressctl explain "$target" --rules-dir examples/rules/
  "$ctl" explain "$target" --rules-dir "$rules"
done

say 'egressctl lint (a rule set with mistakes)'
printf '%s\n' 'apiVersion: zalando.org/v1' 'kind: EgressRuleSet' 'metadata: {name: oops, namespace: team-x}' \
  'spec:' '  targets:' '  - "api.example.com:*"' '  - "*.co.uk:443"' '  - "a*.example.com:443"' '  - "api.example.com"' |
  tee /dev/stderr | "$ctl" lint -
echo
echo "demo: done (the live demo, egressd judging a pod's connections in network namespaces: make demo)"

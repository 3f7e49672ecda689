#!/usr/bin/env bash
# The live demo (`make demo`): egressd as the gateway of a pod that has no
# proxy settings, in throw-away network namespaces (tests/e2e/topology.sh,
# docs/e2e.md). Allowed and denied requests from the pod, then the decision
# lines egressd logged for them. Everything it creates is removed on exit,
# whatever the exit; no packet leaves the namespaces.
#
#   scripts/demo-live.sh [BUILD_DIR]      (root; re-runs itself with sudo)
#   EGRESSD_DEMO_KEEP=1 ...               keep the work dir (logs, config)
set -uo pipefail

# Which egressd log lines are decisions (grep -E on event names).
DECISION_EVENTS='event=(verdict|dns\.query)[a-z_.]*|"event":"(verdict|dns\.query)'

build="${1:-build}"
root="$(cd "$(dirname "$0")/.." && pwd)"
case $build in /*) ;; *) build="$PWD/$build" ;; esac
egressd="$build/bin/egressd"
topo="$root/tests/e2e/topology.sh"

if [ "$(id -u)" != 0 ]; then
  command -v sudo > /dev/null || { echo "demo: needs root (network namespaces, iptables)" >&2; exit 1; }
  exec sudo "$0" "$build"
fi
[ -x "$egressd" ] || { echo "demo: $egressd not found; run 'make' first" >&2; exit 1; }

bold() { printf '\033[1m%s\033[0m\n' "$*"; }
say() { printf '\n\033[1;34m# %s\033[0m\n' "$*"; }
show() { printf '\033[1m(pod)$ %s\033[0m\n' "$*"; }
show_gw() { printf '\033[1m(gateway)$ %s\033[0m\n' "$*"; }
good() { printf '  \033[32m✔ %s\033[0m\n' "$*"; }
bad() { printf '  \033[31m✘ %s\033[0m\n' "$*"; unexpected=$((unexpected + 1)); }
note() { printf '  \033[33m… %s\033[0m\n' "$*"; }

dir="$(mktemp -d /tmp/egressd-demo.XXXXXX)"
unexpected=0
egressd_pid=""
cleaned=0
cleanup() {
  [ "$cleaned" = 1 ] && return
  cleaned=1
  trap - INT TERM
  if [ -n "${E2E_NS_GW:-}" ] && [ -e "/run/netns/$E2E_NS_GW" ]; then
    if [ -n "$egressd_pid" ] && kill -0 "$egressd_pid" 2> /dev/null; then
      say "Stop egressd (SIGTERM keeps its iptables chain in place: fail-closed) and uninstall"
      kill -TERM "$egressd_pid" 2> /dev/null
      for _ in $(seq 50); do kill -0 "$egressd_pid" 2> /dev/null || break; sleep 0.1; done
    fi
    if "$egressd" --help 2>&1 | grep -q -- --uninstall; then
      echo "  egressd --uninstall --config $dir/egressd.toml"
      if ip netns exec "$E2E_NS_GW" "$egressd" --uninstall --config "$dir/egressd.toml" > "$dir/logs/uninstall.log" 2>&1; then
        echo "  done; egressd rules left in the gateway: $(ip netns exec "$E2E_NS_GW" iptables-save | grep -c -- '-j NFQUEUE\|EGRESSD')"
      else
        echo "  egressd --uninstall failed: $(tail -3 "$dir/logs/uninstall.log")"
      fi
    else
      echo "  (this egressd has no --uninstall yet; the namespace goes away anyway)"
    fi
  fi
  "$topo" down "$dir" > /dev/null 2>&1 || echo "demo: topology down failed; run: $topo down $dir" >&2
  if [ "${EGRESSD_DEMO_KEEP:-0}" = 1 ]; then echo "demo: kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "Create the topology: pod -- gateway -- internet (three network namespaces, nothing else reachable)"
"$topo" up "$dir" || { echo "demo: could not create the topology" >&2; exit 1; }
eval "$("$topo" env "$dir")"
. "$root/tests/e2e/lib.sh"

# examples/rules is copied so that the demo can change it while egressd runs.
mkdir -p "$dir/rules.d"
cp -r "$root/examples/rules" "$dir/examples-rules"
cat > "$dir/rules.d/demo.yaml" << 'EOF'
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata:
  name: demo-app
  namespace: demo
spec:
  targets:
  - api.example.com:443
  - "*.example.org:443"
EOF
write_egressd_config "$dir/egressd.toml" "$dir/examples-rules" "$dir/rules.d"
bold "  pod:      $E2E_POD_IP4  $E2E_POD_IP6  (resolver: egressd at $E2E_GW_POD_IP4, no proxy settings)"
bold "  gateway:  $E2E_GW_POD_IP4 | $E2E_GW_INET_IP4  (egressd, routing)"
bold "  internet: DNS $E2E_DNS4, api.example.com $E2E_IP4_API_EXAMPLE_COM, other.example.com $E2E_IP4_OTHER_EXAMPLE_COM, www.example.org $E2E_IP4_WWW_EXAMPLE_ORG"
say "Rule sets: examples/rules/ (my-app-targets, world-access *:80, system) plus the demo's own:"
sed 's/^/  /' "$dir/rules.d/demo.yaml"

say "Start egressd in the gateway namespace"
echo "  egressd --config $dir/egressd.toml"
start_egressd "$egressd" "$dir/egressd.toml" || exit 1
egressd_pid="$(cat "$E2E_PIDS/egressd.pid")"
log="$E2E_LOGS/egressd.log"
enforcing=0
if grep -q -- '-j NFQUEUE' <<< "$(in_gw iptables-save 2> /dev/null)"; then  # read whole: grep -q under pipefail
  enforcing=1
  echo "  started; its iptables chain diverts new outbound flows to NFQUEUE 0:"
  in_gw iptables-save | grep -E '^(:|-A).*[Ee][Gg][Rr][Ee][Ss][Ss]' | sed 's/^/    /'
else
  note "started, but no NFQUEUE rule is installed: this build enforces DNS only;"
  note "connections to an address the pod already knows are not judged (expectations below say so)"
fi

# request DESC EXPECT URL [CURL-ARGS...]: EXPECT is allow, deny-dns or deny-conn
request() {
  local desc=$1 expect=$2 url=$3 result body; shift 3
  say "$desc"
  show "curl ${*:+$* }$url"
  result="$(curl_pod "$url" "$@")"
  body="$(last_body | head -1)"
  case $result in
    2??) echo "  HTTP $result: $body" ;;
    curl:6) echo "  curl: could not resolve host (egressd's DNS answered NXDOMAIN)" ;;
    curl:7 | curl:35 | curl:52 | curl:56) echo "  curl exit ${result#curl:}: $(tr -d '\n' < "$E2E_DIR/last_curl_err")" ;;
    *) echo "  $result: $(tr -d '\n' < "$E2E_DIR/last_curl_err")" ;;
  esac
  case $expect:$result in
    allow:2??) good "allowed, as the rules say" ;;
    deny-dns:curl:6) good "denied at DNS: the pod never learns the address" ;;
    deny-conn:2??)
      if [ $enforcing = 0 ]; then note "went through: needs the NFQUEUE verdicts (not in this build)"; else bad "expected a reset"; fi ;;
    deny-conn:curl:*) good "denied: the connection was reset at once" ;;
    *) bad "expected $expect" ;;
  esac
}

request "An allowed name: api.example.com:443 is in the demo rule set" allow https://api.example.com/
request "No rule set allows other.example.com on 443. The name resolves (world-access *:80 lets every
# name resolve, for port 80), but the TLS connection is judged by its SNI and reset" deny-conn https://other.example.com/
request "The same name with its address hard-coded (no DNS at all)" deny-conn https://other.example.com/ \
  --resolve "other.example.com:443:$E2E_IP4_OTHER_EXAMPLE_COM"
request "Plain HTTP to www.example.org: allowed by world-access (*:80) from examples/rules" allow http://www.example.org/

say "Remove world-access.yaml while egressd runs (rules directories are watched; no restart)"
show_gw "rm $dir/examples-rules/world-access.yaml"
rm "$dir/examples-rules/world-access.yaml"
dns_denied() { [ "$(dns_pod "$1")" = NXDOMAIN ]; }
if wait_until 30 dns_denied other.example.com; then
  echo "  $(grep -E 'event=policy.loaded' "$log" | tail -1 | sed 's/^ts=[^ ]* //')"
else
  bad "other.example.com still resolves 3 s after the change"
fi
request "Now other.example.com is refused by DNS already" deny-dns https://other.example.com/
request "www.example.org on port 80 is still allowed by my-app-targets (*.example.org:80)" allow http://www.example.org/

say "egressd's decisions (log lines matching /$DECISION_EVENTS/)"
# Decision lines are written asynchronously: wait until their count settles.
count=-1
for _ in $(seq 20); do
  now="$(grep -cE "$DECISION_EVENTS" "$log")"
  [ "$now" = "$count" ] && break
  count=$now
  sleep 0.2
done
if ! grep -E "$DECISION_EVENTS" "$log" | sed 's/^/  /'; then
  note "no decision lines in the log; the whole log:"
  sed 's/^/  /' "$log"
fi

if [ "$unexpected" -gt 0 ]; then
  say "demo: $unexpected request(s) did not behave as expected (logs: $dir, kept)"
  EGRESSD_DEMO_KEEP=1
  exit 1
fi
say "demo: done"

#!/usr/bin/env bash
# The whole path, end to end: `kubectl apply` of an EgressRuleSet against a
# real kube-apiserver + etcd (tests/k8s/apiserver.sh) -> egress-controller
# mirrors it into a rules dir -> egressd (in the gateway namespace of the
# tests/e2e/topology.sh network namespaces) reloads -> a curl from the pod
# namespace to that name succeeds; `kubectl delete` makes it fail again.
#
# The controller runs in the root network namespace, where the API server
# listens on 127.0.0.1, as the deployed one does: --in-cluster with a token
# of the egress-controller ServiceAccount and the RBAC of deploy/base/, and
# the Lease arguments of deploy/base/daemonset.yaml. It writes into a
# directory egressd (in the gateway namespace, same filesystem) watches.
#
# Needs root (network namespaces, iptables), the egressd and
# egress-controller binaries in $EGRESSD_BIN, jq, and the topology's
# servers (nginx, unbound). Exits 77 (ctest: skipped) when not root, or when
# neither cached control-plane binaries nor a Go toolchain exist.
# shellcheck source-path=SCRIPTDIR
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="${EGRESSD_SOURCE_DIR:-$(cd "$here/../.." && pwd)}"
bin="${EGRESSD_BIN:-$src/build/bin}"
topology="$src/tests/e2e/topology.sh"

if [[ "$(id -u)" != 0 ]]; then
  echo "SKIP: needs root (network namespaces)"
  exit 77
fi

# shellcheck source=lib.sh
source "$src/tests/k8s/lib.sh"
k8s_test_init k8s.e2e

for b in egressd egress-controller; do
  [[ -x "$bin/$b" ]] || fatal "$bin/$b not built"
done
command -v jq > /dev/null || fatal "jq is needed (Debian package jq)"

topo="$work/topo"
ctl_pid=
on_cleanup() {
  if [[ -n "$ctl_pid" ]]; then
    kill -TERM "$ctl_pid" 2> /dev/null
    wait "$ctl_pid" 2> /dev/null
  fi
  if [[ -n "${E2E_NS_GW:-}" && -e "/run/netns/$E2E_NS_GW" ]]; then
    stop_egressd TERM > /dev/null 2>&1
    ip netns exec "$E2E_NS_GW" "$bin/egressd" --uninstall --config "$topo/egressd.toml" > /dev/null 2>&1
  fi
  if ((failed > 0)); then
    local f
    for f in "$work/controller.log" "$topo/logs/egressd.log"; do
      [[ -f "$f" ]] || continue
      echo "--- last lines of $f"
      tail -n 30 "$f"
    done
  fi
  [[ -f "$topo/topology.state" ]] && "$topology" down "$topo" > /dev/null 2>&1
}

now_ms() { date +%s%3N; }
# poll SECONDS COMMAND...: every 0.1 s until COMMAND succeeds; status 1 on timeout.
poll() {
  local deadline=$(($(now_ms) + $1 * 1000))
  shift
  while true; do
    "$@" > /dev/null 2>&1 && return 0
    (($(now_ms) > deadline)) && return 1
    sleep 0.1
  done
}

k8s_start_control_plane

step "CRD, and the controller's identity and RBAC as deployed (deploy/base/)"
kc apply -f "$src/deploy/crd/egressrulesets.yaml" > /dev/null 2>&1 || fatal "CRD refused"
kc wait --for=condition=Established --timeout=60s crd/egressrulesets.zalando.org > /dev/null 2>&1 ||
  fatal "CRD not Established"
for f in namespace serviceaccounts rbac; do
  kc apply -f "$src/deploy/base/$f.yaml" > /dev/null || fatal "deploy/base/$f.yaml refused"
done
kc create namespace team-a > /dev/null || fatal "namespace team-a"
sa="$work/serviceaccount"
mkdir -p "$sa"
cp "$EGRESSD_K8S_DIR/pki/ca.crt" "$sa/ca.crt"
kc -n egressd-system create token egress-controller --duration 1h > "$sa/token" ||
  fatal "no token for egressd-system/egress-controller"
ok "CRD Established; ServiceAccount egressd-system/egress-controller with deploy/base/rbac.yaml"

step "network namespaces (tests/e2e/topology.sh) and egressd in the gateway"
mkdir -p "$topo"
"$topology" up "$topo" > "$work/topology.log" 2>&1 || fatal "topology up: $(tail -5 "$work/topology.log")"
eval "$("$topology" env "$topo")"
# shellcheck source=../e2e/lib.sh
source "$src/tests/e2e/lib.sh"
rules="$work/rules"
mkdir -p "$rules"
write_egressd_config "$topo/egressd.toml" "$rules"
start_egressd "$bin/egressd" "$topo/egressd.toml" || fatal "egressd did not start"
if grep -q -- '-j NFQUEUE' <<< "$(in_gw iptables-save)"; then  # read whole: grep -q under pipefail
  ok "egressd runs in $E2E_NS_GW with its NFQUEUE rule, rules dir $rules (empty)"
else
  fatal "egressd installed no NFQUEUE rule"
fi

step "egress-controller in the root namespace, as the DaemonSet runs it"
KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT="${EGRESSD_K8S_SERVER##*:}" \
  "$bin/egress-controller" --in-cluster --service-account-dir "$sa" --rules-dir "$rules" \
  --lease-namespace egressd-system --lease-name egress-controller-status --identity node-1 \
  > "$work/controller.log" 2>&1 &
ctl_pid=$!
if poll 20 grep -q 'event=list.done' "$work/controller.log"; then
  ok "controller listed: $(grep -m1 'event=list.done' "$work/controller.log")"
else
  fatal "controller did not list: $(tail -3 "$work/controller.log")"
fi

reset_like() { case $1 in curl:7 | curl:35 | curl:52 | curl:56) echo reset ;; *) echo "$1" ;; esac; }
# The failure modes of a denied name: DNS refusal (curl exit 6), or, when
# the name resolves, a reset connection.
denied_like() { case "$(reset_like "$1")" in curl:6 | reset) echo denied ;; *) echo "$1" ;; esac; }
direct() { # the same HTTPS request without DNS, straight to the address
  curl_pod https://api.example.com/ --resolve "api.example.com:443:$E2E_IP4_API_EXAMPLE_COM"
}
api_ok() { [[ "$(curl_pod https://api.example.com/)" == 200 ]]; }
api_denied() { [[ "$(denied_like "$(curl_pod https://api.example.com/)")" == denied ]]; }

step "before the rule set: api.example.com is denied"
got="$(curl_pod https://api.example.com/)"
if [[ "$(denied_like "$got")" == denied ]]; then
  ok "curl https://api.example.com/ from the pod fails ($got)"
else
  fail "curl https://api.example.com/ before any rule set: $got"
fi
got="$(dns_pod api.example.com)"
if [[ "$got" == NXDOMAIN || "$got" == REFUSED ]]; then
  ok "its DNS query is answered $got"
else
  fail "DNS before any rule set: $got"
fi
got="$(direct)"
if [[ "$(reset_like "$got")" == reset ]]; then
  ok "by address, without DNS: reset ($got)"
else
  fail "direct connection before any rule set: $got"
fi

step "kubectl apply -> the pod's curl succeeds"
cat > "$work/ruleset.yaml" << 'EOF'
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata:
  name: my-app-targets
  namespace: team-a
spec:
  targets:
  - api.example.com:443
EOF
t0=$(now_ms)
kc apply -f "$work/ruleset.yaml" > /dev/null || fatal "kubectl apply refused the rule set"
t1=$(now_ms)
if poll 10 api_ok; then
  ok "curl https://api.example.com/ -> 200 $(($(now_ms) - t1)) ms after kubectl apply returned (kubectl took $((t1 - t0)) ms)"
else
  fail "curl still fails 10 s after kubectl apply: $(curl_pod https://api.example.com/); rules dir: $(ls "$rules")"
fi
if [[ "$(last_body)" == "vhost=api.example.com "* ]]; then
  ok "answered by the api.example.com server: $(last_body)"
else
  fail "body: $(last_body)"
fi
if [[ -f "$rules/team-a_my-app-targets.json" ]] &&
  [[ "$(jq -c .spec.targets "$rules/team-a_my-app-targets.json")" == '["api.example.com:443"]' ]]; then
  ok "mirrored as team-a_my-app-targets.json"
else
  fail "rules dir: $(ls -a "$rules")"
fi
if poll 5 grep -qE 'event=verdict .*dst=203\.0\.113\.10:443 .*verdict=allow.*rulesets=team-a/my-app-targets' \
  "$E2E_LOGS/egressd.log"; then
  ok "egressd's decision: allow by team-a/my-app-targets"
else
  fail "no allow decision naming team-a/my-app-targets in egressd.log"
fi
got="$(curl_pod https://other.example.com/)"
if [[ "$(denied_like "$got")" == denied ]]; then
  ok "a name not in the rule set stays denied (other.example.com: $got)"
else
  fail "other.example.com: $got"
fi
got="$(curl_pod http://api.example.com/)"
if [[ "$(denied_like "$got")" == denied ]]; then
  ok "the allowed name on a port not in the rule set stays denied (port 80: $got)"
else
  fail "api.example.com:80: $got"
fi

step "status: Accepted=True"
accepted() {
  [[ "$(kc -n team-a get ers my-app-targets \
    -o jsonpath='{.status.conditions[?(@.type=="Accepted")].status}')" == True ]]
}
if poll 10 accepted; then
  ok "Accepted=True: $(kc -n team-a get ers my-app-targets -o jsonpath='{.status.conditions[?(@.type=="Accepted")].message}'), observedGeneration $(kc -n team-a get ers my-app-targets -o jsonpath='{.status.observedGeneration}')"
else
  fail "status: $(kc -n team-a get ers my-app-targets -o jsonpath='{.status}')"
fi

step "kubectl apply of a change -> the old name is denied, the new one allowed"
sed 's/- api.example.com:443/- www.example.org:443/' "$work/ruleset.yaml" > "$work/ruleset2.yaml"
kc apply -f "$work/ruleset2.yaml" > /dev/null || fatal "kubectl apply of the change refused"
t1=$(now_ms)
if poll 10 api_denied && [[ "$(curl_pod https://www.example.org/)" == 200 ]]; then
  ok "api.example.com denied, www.example.org allowed $(($(now_ms) - t1)) ms after kubectl apply"
else
  fail "after the change: api $(curl_pod https://api.example.com/), www $(curl_pod https://www.example.org/)"
fi
kc apply -f "$work/ruleset.yaml" > /dev/null || fatal "kubectl apply refused the rule set"
if poll 10 api_ok; then
  ok "and back: api.example.com allowed again"
else
  fail "api.example.com after re-applying: $(curl_pod https://api.example.com/)"
fi

step "kubectl delete -> a new connection fails again"
kc delete -f "$work/ruleset.yaml" > /dev/null || fatal "kubectl delete failed"
t1=$(now_ms)
if poll 10 api_denied; then
  ok "curl https://api.example.com/ fails ($(curl_pod https://api.example.com/)) $(($(now_ms) - t1)) ms after kubectl delete"
else
  fail "curl still works 10 s after kubectl delete"
fi
if [[ ! -e "$rules/team-a_my-app-targets.json" ]]; then
  ok "file removed from the rules dir"
else
  fail "team-a_my-app-targets.json still there"
fi
got="$(direct)"
if [[ "$(reset_like "$got")" == reset ]]; then
  ok "by address, without DNS: reset again ($got)"
else
  fail "direct connection after delete: $got"
fi

step "the controller stops cleanly"
kill -TERM "$ctl_pid"
if wait "$ctl_pid"; then
  ok "exit 0 on SIGTERM"
else
  fail "exit status $? on SIGTERM"
fi
ctl_pid=

echo "k8s.e2e: $passed passed, $failed failed"
((failed == 0))

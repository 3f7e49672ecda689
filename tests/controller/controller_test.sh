#!/usr/bin/env bash
# End-to-end test of egress-controller against a real kube-apiserver + etcd
# (tests/k8s/apiserver.sh): it mirrors create/update/delete into the rules
# dir within 1 s, writes Accepted=True/False as policy/ judges, removes its
# stale files after a relist (and never touches other files), survives an
# API server restart plus an etcd compaction without losing an update, runs
# with least-privilege RBAC (the role of docs/controller.md) and with a
# client certificate, and elects one status writer among two instances.
#
# Exits 77 (ctest: skipped) only when neither cached control-plane binaries
# nor a Go toolchain to build them exist (as tests/k8s/crd_test.sh).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="${EGRESSD_SOURCE_DIR:-$(cd "$here/../.." && pwd)}"
harness="$src/tests/k8s/apiserver.sh"
controller="${EGRESSD_BIN:-$src/build/bin}/egress-controller"

# shellcheck source=../k8s/lib.sh
source "$src/tests/k8s/lib.sh"
k8s_test_init k8s.controller

[[ -x "$controller" ]] || fatal "$controller not built"
command -v jq > /dev/null || fatal "jq is needed (Debian package jq)"

pids=()
on_cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2> /dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2> /dev/null || true; done
  if ((failed > 0)); then
    for f in "$work"/*.log; do
      [[ -f "$f" ]] || continue
      echo "--- last lines of $f"
      tail -n 25 "$f"
    done
  fi
}

# Waits up to SECONDS (fractional) for a shell condition; returns its status.
wait_for() { # SECONDS COMMAND...
  local deadline
  deadline=$(($(date +%s%3N) + $(awk -v s="$1" 'BEGIN{printf "%d", s*1000}')))
  shift
  while true; do
    "$@" && return 0
    (($(date +%s%3N) > deadline)) && return 1
    sleep 0.05
  done
}
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
# "N ms after kubectl returned (kubectl took M ms)": the 1 s budget starts
# when kubectl returns; the API server has the change by then.
latency() { # T_BEFORE_KUBECTL T_AFTER_KUBECTL
  echo "$(ms_since "$2") ms after kubectl returned (kubectl took $((($2 - $1) / 1000000)) ms)"
}

# Automatic compaction off: the test compacts etcd itself.
export EGRESSD_K8S_APISERVER_ARGS="--etcd-compaction-interval=0"
k8s_start_control_plane
admin="$KUBECONFIG"

kc apply -f "$src/deploy/crd/egressrulesets.yaml" > /dev/null 2>&1 || fatal "CRD refused"
kc wait --for=condition=Established --timeout=60s crd/egressrulesets.zalando.org > /dev/null 2>&1 ||
  fatal "CRD not Established"
kc create namespace team-a > /dev/null
kc create namespace team-b > /dev/null
kc create namespace egressd-system > /dev/null
ok "CRD Established, namespaces team-a, team-b, egressd-system"

step "least-privilege RBAC for the controller (docs/controller.md)"
cat > "$work/rbac.yaml" << 'EOF'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: egress-controller}
rules:
- apiGroups: [zalando.org]
  resources: [egressrulesets]
  verbs: [get, list, watch]
- apiGroups: [zalando.org]
  resources: [egressrulesets/status]
  verbs: [patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: egress-controller-lease}
rules:
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, update]
EOF
kc apply -f "$work/rbac.yaml" > /dev/null || fatal "RBAC roles refused"
userkc="$("$harness" user "$EGRESSD_K8S_DIR" egress-controller egress-controller)" || fatal "apiserver.sh user failed"
# The lease role only in the lease's namespace (a RoleBinding to the ClusterRole).
kc -n egressd-system create rolebinding egress-controller-lease --clusterrole egress-controller-lease \
  --serviceaccount egressd-test-users:egress-controller > /dev/null || fatal "lease rolebinding"
if [[ "$(kc auth can-i delete egressrulesets --as system:serviceaccount:egressd-test-users:egress-controller -A)" == no &&
  "$(kc auth can-i update egressrulesets --as system:serviceaccount:egressd-test-users:egress-controller -A)" == no ]]; then
  ok "the controller's account cannot update or delete rule sets"
else
  fail "the controller's account has more rights than documented"
fi

rules="$work/rules"
mkdir -p "$rules"
echo "hand-written, not the controller's" > "$rules/other.yaml"
echo "# someone else's" > "$rules/README"
echo '{}' > "$rules/team-a.json" # no "_": not the controller's pattern
# Sets $last_pid (not a command substitution: the controller must be a
# child of this shell, for wait and for the cleanup).
last_pid=
start_controller() { # LOGNAME KUBECONFIG RULESDIR [ARGS...]
  local name="$1" cfg="$2" dir="$3"
  shift 3
  "$controller" --kubeconfig "$cfg" --rules-dir "$dir" --log-level debug "$@" > "$work/$name.log" 2>&1 &
  last_pid=$!
  pids+=("$last_pid")
}
stop_controller() { # PID -> exit status
  kill -TERM "$1" 2> /dev/null
  local i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$1" 2> /dev/null || break
    sleep 0.05
  done
  if kill -0 "$1" 2> /dev/null; then
    kill -KILL "$1"
    wait "$1" 2> /dev/null
    return 99
  fi
  wait "$1"
}

step "start the controller as that user"
start_controller ctl "$userkc" "$rules"
ctl=$last_pid
if wait_for 20 grep -q 'event=list.done' "$work/ctl.log"; then
  ok "listed: $(grep -m1 'event=list.done' "$work/ctl.log")"
else
  fatal "controller did not list: $(tail -5 "$work/ctl.log")"
fi

# file_matches FILE NS NAME: the file holds exactly what the API server has.
file_matches() {
  local file="$1" ns="$2" name="$3" want got
  [[ -f "$file" ]] || return 1
  want="$(kc -n "$ns" get ers "$name" -o json |
    jq -cS '{apiVersion, kind, metadata: {name: .metadata.name, namespace: .metadata.namespace,
             generation: .metadata.generation}, spec}')"
  got="$(jq -cS . "$file" 2> /dev/null)" || return 1
  [[ "$want" == "$got" ]]
}

cond() { kc -n "$1" get ers "$2" -o jsonpath='{.status.conditions[?(@.type=="Accepted")].'"$3"'}'; }
status_is() { [[ "$(cond "$1" "$2" status)" == "$3" ]]; }

step "create -> file within 1 s with the API server's content"
cat > "$work/app.yaml" << 'EOF'
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: my-app, namespace: team-a}
spec:
  targets: ["api.example.com:443", "*.example.org:80"]
EOF
t0=$(date +%s%N)
kc apply -f "$work/app.yaml" > /dev/null || fatal "create refused"
t1=$(date +%s%N)
if wait_for 1 test -f "$rules/team-a_my-app.json"; then
  ok "team-a_my-app.json appeared $(latency "$t0" "$t1")"
else
  fail "team-a_my-app.json not there 1 s after create: $(ls "$rules")"
fi
if wait_for 5 file_matches "$rules/team-a_my-app.json" team-a my-app; then
  ok "content: apiVersion, kind, metadata (name, namespace, generation), spec as stored"
else
  fail "content differs: $(cat "$rules/team-a_my-app.json")"
fi
# The status write that follows the create changes the object's
# resourceVersion, not the file: egressd must not reload for it.
if wait_for 5 status_is team-a my-app True && sleep 0.5 &&
  [[ "$(grep -c 'event=file.written file=team-a_my-app.json' "$work/ctl.log")" == 1 ]]; then
  ok "the status write did not rewrite the file (written once)"
else
  fail "team-a_my-app.json written $(grep -c 'event=file.written file=team-a_my-app.json' "$work/ctl.log") times"
fi
if policy_out="$(jq -r .spec.targets[1] "$rules/team-a_my-app.json")" && [[ "$policy_out" == "*.example.org:80" ]]; then
  ok "targets as written"
else
  fail "targets: $policy_out"
fi

step "update -> file changes"
t0=$(date +%s%N)
kc -n team-a patch ers my-app --type=merge -p '{"spec":{"targets":["api.example.com:443","new.example.com:8443"]}}' > /dev/null
t1=$(date +%s%N)
if wait_for 1 grep -q 'new.example.com:8443' "$rules/team-a_my-app.json"; then
  ok "new target in the file $(latency "$t0" "$t1")"
else
  fail "file not updated 1 s after the patch: $(cat "$rules/team-a_my-app.json")"
fi
if wait_for 5 file_matches "$rules/team-a_my-app.json" team-a my-app &&
  [[ "$(jq .metadata.generation "$rules/team-a_my-app.json")" == 2 ]]; then
  ok "generation 2, content matches"
else
  fail "after update: $(cat "$rules/team-a_my-app.json")"
fi

step "status: Accepted=True for valid rule sets, Accepted=False with policy/'s reason otherwise"
cat > "$work/gh.yaml" << 'EOF'
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: pages, namespace: team-b}
spec:
  targets: ["docs.example.com:443", "*.github.io:443"]
EOF
if kc apply -f "$work/gh.yaml" > "$work/gh.out" 2>&1; then
  ok "'*.github.io:443' passes admission (the CRD checks only common suffixes)"
else
  fail "'*.github.io:443' refused at admission: $(cat "$work/gh.out")"
fi
if wait_for 5 status_is team-b pages False; then
  reason="$(cond team-b pages reason)"
  msg="$(cond team-b pages message)"
  if [[ "$reason" == InvalidTargets && "$msg" == *'spec.targets[1] "*.github.io:443"'* && "$msg" == *"public suffix"* &&
    "$msg" == *"1 of 2 targets will not be in force"* ]]; then
    ok "pages: Accepted=False $reason: $msg"
  else
    fail "pages: reason '$reason' message '$msg'"
  fi
else
  fail "pages has no Accepted=False: $(kc -n team-b get ers pages -o jsonpath='{.status}')"
fi
if [[ -f "$rules/team-b_pages.json" ]]; then
  ok "the refused rule set is still mirrored (egressd refuses it itself, with the same loader)"
else
  fail "team-b_pages.json missing"
fi
gen="$(kc -n team-a get ers my-app -o jsonpath='{.metadata.generation}')"
if wait_for 5 status_is team-a my-app True &&
  [[ "$(cond team-a my-app reason)" == Valid ]] &&
  [[ "$(kc -n team-a get ers my-app -o jsonpath='{.status.observedGeneration} {.status.targetCount}')" == "$gen 2" ]]; then
  ok "my-app: Accepted=True Valid, observedGeneration $gen, targetCount 2 ($(cond team-a my-app message))"
else
  fail "my-app status: $(kc -n team-a get ers my-app -o jsonpath='{.status}')"
fi
if [[ "$(kc -n team-b get ers pages -o jsonpath='{.status.targetCount} {.status.targetsInForce}')" == "2 1" ]]; then
  ok "pages: targetsInForce 1 of targetCount 2 (the valid target stays in force)"
else
  fail "pages targetsInForce: $(kc -n team-b get ers pages -o jsonpath='{.status}')"
fi
row="$(kc get ers -A --no-headers | tr -s ' ' | cut -d' ' -f1-5 | sort | tr '\n' ',')"
if [[ "$row" == "team-a my-app 2 2 True,team-b pages 2 1 False," ]]; then
  ok "kubectl get ers -A: $row"
else
  fail "kubectl get ers -A: $row"
fi
# Only changes are written: the status write itself must not cause another.
sleep 1
writes_before="$(grep -c 'event=status.written' "$work/ctl.log")"
sleep 2
writes_after="$(grep -c 'event=status.written' "$work/ctl.log")"
if [[ "$writes_before" == "$writes_after" ]]; then
  ok "no status write when nothing changed ($writes_after writes in all)"
else
  fail "status keeps being rewritten: $writes_before -> $writes_after"
fi
kc -n team-b patch ers pages --type=merge -p '{"spec":{"targets":["docs.example.com:443","*.pages.github.io:443"]}}' > /dev/null
if wait_for 5 status_is team-b pages True; then
  ok "fixed rule set turns Accepted=True ($(cond team-b pages message))"
else
  fail "pages after the fix: $(kc -n team-b get ers pages -o jsonpath='{.status}')"
fi

step "delete -> file removed"
t0=$(date +%s%N)
kc -n team-b delete ers pages > /dev/null
t1=$(date +%s%N)
if wait_for 1 test ! -e "$rules/team-b_pages.json"; then
  ok "team-b_pages.json removed $(latency "$t0" "$t1")"
else
  fail "team-b_pages.json still there 1 s after delete"
fi

others_intact() {
  [[ "$(cat "$rules/other.yaml" 2> /dev/null)" == "hand-written, not the controller's" &&
    -f "$rules/README" && -f "$rules/team-a.json" ]]
}
if others_intact; then
  ok "files not matching <ns>_<name>.json left alone"
else
  fail "other files touched: $(ls -a "$rules")"
fi
if [[ -z "$(find "$rules" -name '.tmp-*')" ]]; then
  ok "no temp files left behind"
else
  fail "temp files: $(find "$rules" -name '.tmp-*')"
fi

step "SIGTERM: clean exit"
if stop_controller "$ctl"; then
  ok "exit status 0 after SIGTERM"
else
  fail "exit status $? after SIGTERM"
fi

step "restart with a stale file: removed after the relist"
echo '{"stale": true}' > "$rules/team-x_deleted-while-down.json"
kc -n team-a create -f - > /dev/null << 'EOF'
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: created-while-down, namespace: team-a}
spec: {targets: ["down.example.com:443"]}
EOF
start_controller ctl2 "$userkc" "$rules"
ctl=$last_pid
if wait_for 10 test ! -e "$rules/team-x_deleted-while-down.json"; then
  ok "stale team-x_deleted-while-down.json removed"
else
  fail "stale file still there: $(ls "$rules")"
fi
if wait_for 5 file_matches "$rules/team-a_created-while-down.json" team-a created-while-down; then
  ok "object created while the controller was down mirrored"
else
  fail "team-a_created-while-down.json: $(ls "$rules")"
fi
if others_intact; then
  ok "the relist left other files alone"
else
  fail "relist touched other files: $(ls -a "$rules")"
fi

step "kill -9 the API server, restart it, change and compact: no update lost"
# shellcheck source=/dev/null
source "$EGRESSD_K8S_DIR/state"
tr '\0' '\n' < "/proc/$API_PID/cmdline" > "$work/apiserver.args"
mapfile -t apiargs < "$work/apiserver.args"
old_rv="$(kc get ers -A -o json | jq -r .metadata.resourceVersion)"
kill -KILL "$API_PID"
if wait_for 10 grep -q 'event=watch.failed' "$work/ctl2.log"; then
  ok "controller noticed: $(grep -m1 'event=watch.failed' "$work/ctl2.log")"
else
  fail "no watch.failed in the log after the kill"
fi
sleep 3 # a few failed reconnects: the backoff grows
"${apiargs[@]}" >> "$EGRESSD_K8S_DIR/kube-apiserver.log" 2>&1 < /dev/null &
new_api=$!
# The harness's stop reads the last API_PID of its state file.
echo "API_PID=$new_api" >> "$EGRESSD_K8S_DIR/state"
if wait_for 120 curl -fsS --max-time 5 -o /dev/null --cacert "$EGRESSD_K8S_DIR/pki/ca.crt" \
  -H "Authorization: Bearer $(cut -d, -f1 "$EGRESSD_K8S_DIR/pki/tokens.csv")" "$EGRESSD_K8S_SERVER/readyz" 2> /dev/null; then
  ok "kube-apiserver restarted on the same port"
else
  fatal "kube-apiserver did not come back"
fi
kc -n team-a patch ers my-app --type=merge -p '{"spec":{"targets":["after-restart.example.com:443"]}}' > /dev/null
kc -n team-a delete ers created-while-down > /dev/null
kc -n team-b create -f - > /dev/null << 'EOF'
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: after-restart, namespace: team-b}
spec: {targets: ["b.example.com:443"]}
EOF
# Compact etcd at its newest revision: every older resourceVersion is gone.
rev="$("$EGRESSD_K8S_BIN/etcdctl" --endpoints "$EGRESSD_K8S_ETCD" endpoint status -w json | jq '.[0].Status.header.revision')"
if "$EGRESSD_K8S_BIN/etcdctl" --endpoints "$EGRESSD_K8S_ETCD" compact "$rev" > /dev/null 2>&1; then
  ok "etcd compacted at revision $rev (controller's last version was <= $old_rv)"
else
  fail "etcdctl compact $rev failed"
fi
converged() {
  grep -q 'after-restart.example.com:443' "$rules/team-a_my-app.json" 2> /dev/null &&
    [[ ! -e "$rules/team-a_created-while-down.json" ]] &&
    file_matches "$rules/team-b_after-restart.json" team-b after-restart
}
# The backoff is capped at 30 s.
if wait_for 45 converged; then
  ok "update, delete and create made around the restart all mirrored"
else
  fail "not converged: $(ls "$rules"); my-app: $(cat "$rules/team-a_my-app.json")"
fi
if wait_for 10 status_is team-b after-restart True; then
  ok "status written after the restart"
else
  fail "after-restart status: $(kc -n team-b get ers after-restart -o jsonpath='{.status}')"
fi
lists="$(grep -c 'event=list.done' "$work/ctl2.log")"
gone="$(grep -c 'event=watch.gone' "$work/ctl2.log")"
echo "  note: $lists lists, $gone times 410 Gone (a relist), since the controller started"
# Changes after the reconnect still arrive promptly.
t0=$(date +%s%N)
kc -n team-b patch ers after-restart --type=merge -p '{"spec":{"targets":["c.example.com:443"]}}' > /dev/null
t1=$(date +%s%N)
if wait_for 1 grep -q 'c.example.com:443' "$rules/team-b_after-restart.json"; then
  ok "watching again: update mirrored $(latency "$t0" "$t1")"
else
  fail "update after reconnect not mirrored within 1 s"
fi
if stop_controller "$ctl"; then ok "exit 0 on SIGTERM"; else fail "exit status $? on SIGTERM"; fi

step "client certificate authentication (inline *-data in the kubeconfig)"
pki="$EGRESSD_K8S_DIR/pki"
if openssl req -newkey rsa:2048 -nodes -keyout "$work/client.key" -out "$work/client.csr" \
  -subj "/O=system:masters/CN=egress-controller-cert" > /dev/null 2>&1 &&
  openssl x509 -req -in "$work/client.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -out "$work/client.crt" -days 1 > /dev/null 2>&1; then
  cat > "$work/cert.kubeconfig" << EOF
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: $EGRESSD_K8S_SERVER
    certificate-authority-data: $(base64 -w0 < "$pki/ca.crt")
users:
- name: u
  user:
    client-certificate-data: $(base64 -w0 < "$work/client.crt")
    client-key-data: $(base64 -w0 < "$work/client.key")
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
EOF
  mkdir -p "$work/rules-cert"
  start_controller cert "$work/cert.kubeconfig" "$work/rules-cert"
p=$last_pid
  if wait_for 10 file_matches "$work/rules-cert/team-b_after-restart.json" team-b after-restart; then
    ok "mirrored with a client certificate"
  else
    fail "client certificate: $(tail -3 "$work/cert.log")"
  fi
  stop_controller "$p"
else
  fail "could not issue a client certificate"
fi

step "in-cluster: service account folder and KUBERNETES_SERVICE_HOST/PORT"
sa="$work/serviceaccount"
mkdir -p "$sa" "$work/rules-incluster"
cp "$EGRESSD_K8S_DIR/pki/ca.crt" "$sa/ca.crt"
if kc -n egressd-test-users create token egress-controller --duration 1h > "$sa/token" 2> "$work/token.err"; then
  KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT="${EGRESSD_K8S_SERVER##*:}" \
    "$controller" --in-cluster --service-account-dir "$sa" --rules-dir "$work/rules-incluster" \
    > "$work/incluster.log" 2>&1 &
  p=$!
  pids+=("$p")
  if wait_for 10 file_matches "$work/rules-incluster/team-b_after-restart.json" team-b after-restart; then
    ok "mirrored with the service account token (least-privilege role)"
  else
    fail "in-cluster: $(tail -3 "$work/incluster.log")"
  fi
  stop_controller "$p"
else
  fail "kubectl create token: $(cat "$work/token.err")"
fi

step "wrong CA: refused (TLS verification is on)"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/other-ca.key" -out "$work/other-ca.crt" -days 1 \
  -subj "/CN=not-the-cluster-ca" > /dev/null 2>&1
sed "s#certificate-authority: .*#certificate-authority: $work/other-ca.crt#" "$userkc" > "$work/wrongca.kubeconfig"
mkdir -p "$work/rules-wrongca"
start_controller wrongca "$work/wrongca.kubeconfig" "$work/rules-wrongca"
p=$last_pid
if wait_for 10 grep -q 'event=list.failed' "$work/wrongca.log" && [[ -z "$(ls "$work/rules-wrongca")" ]]; then
  ok "list refused: $(grep -m1 'event=list.failed' "$work/wrongca.log" | sed 's/.*error=//')"
else
  fail "with a wrong CA: $(tail -3 "$work/wrongca.log"); $(ls "$work/rules-wrongca")"
fi
stop_controller "$p"

step "two controllers with a Lease: both mirror, one writes status"
mkdir -p "$work/rules-a" "$work/rules-b"
lease=(--lease-namespace egressd-system --lease-name egress-controller --lease-duration 4)
start_controller lease-a "$userkc" "$work/rules-a" "${lease[@]}" --identity ctl-a
pa=$last_pid
if wait_for 10 grep -q 'event=lease.acquired' "$work/lease-a.log"; then
  ok "ctl-a acquired the lease"
else
  fail "ctl-a did not acquire the lease: $(grep lease "$work/lease-a.log" | tail -3)"
fi
start_controller lease-b "$userkc" "$work/rules-b" "${lease[@]}" --identity ctl-b
pb=$last_pid
holder() { kc -n egressd-system get lease egress-controller -o jsonpath='{.spec.holderIdentity}'; }
kc -n team-a create -f - > /dev/null << 'EOF'
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: leased, namespace: team-a}
spec: {targets: ["lease.example.com:443"]}
EOF
if wait_for 5 test -f "$work/rules-a/team-a_leased.json" && wait_for 5 test -f "$work/rules-b/team-a_leased.json"; then
  ok "both instances mirror"
else
  fail "mirrors: a=$(ls "$work/rules-a") b=$(ls "$work/rules-b")"
fi
if wait_for 5 status_is team-a leased True; then
  ok "status written once the object exists"
else
  fail "leased: no status"
fi
sleep 6 # longer than the lease duration: a follower would have taken over by now
if [[ "$(holder)" == ctl-a ]] && ! grep -q 'event=lease.acquired' "$work/lease-b.log" &&
  ! grep -q 'event=status.written' "$work/lease-b.log" &&
  grep -q 'event=status.written ruleset=team-a/leased' "$work/lease-a.log"; then
  ok "holder ctl-a; ctl-b follows and writes no status"
else
  fail "holder '$(holder)'; b: $(grep -E 'lease|status' "$work/lease-b.log" | tail -3)"
fi
stop_controller "$pa"
if grep -q 'event=lease.released ok=true' "$work/lease-a.log"; then
  ok "ctl-a released the lease on SIGTERM"
else
  fail "ctl-a did not release: $(grep lease "$work/lease-a.log" | tail -3)"
fi
t0=$(date +%s%N)
if wait_for 15 grep -q 'event=lease.acquired' "$work/lease-b.log" && [[ "$(holder)" == ctl-b ]]; then
  ok "ctl-b took over after $(ms_since "$t0") ms"
else
  fail "ctl-b did not take over: holder '$(holder)'"
fi
kc -n team-a patch ers leased --type=merge -p '{"spec":{"targets":["*.blogspot.com:443"]}}' > /dev/null
if wait_for 10 status_is team-a leased False &&
  grep -q 'event=status.written ruleset=team-a/leased generation=2 accepted=false' "$work/lease-b.log"; then
  ok "ctl-b writes status now: $(cond team-a leased message)"
else
  fail "after takeover: $(kc -n team-a get ers leased -o jsonpath='{.status}')"
fi
stop_controller "$pb"

echo "k8s.controller: $passed passed, $failed failed"
((failed == 0))

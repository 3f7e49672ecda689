#!/usr/bin/env bash
# egress-controller's pod map (attribution, issue 15) against a real
# kube-apiserver + etcd (tests/k8s/apiserver.sh). There is no kubelet or
# scheduler: pods are created with spec.nodeName set and their status
# (podIP, podIPs, phase Running) patched through the status subresource,
# as a kubelet would. The map file follows:
#   - create (no address yet: not in the map), IP assignment (in the map
#     within 1 s), workloads from ownerReferences (ReplicaSet -> Deployment,
#     StatefulSet, Job of a CronJob, bare pod), service accounts;
#   - the node-local shape (--node-name): another node's pods are left out;
#   - delete; an address reused by a new pod while the old one is still
#     terminating: the new pod, never the old one;
#   - relist after 410 Gone: the controller is frozen (SIGSTOP), the API
#     server restarted, pods changed and etcd compacted, then the
#     controller continues: its watch from a compacted resourceVersion gets
#     410, it relists and the map is right again;
#   - RBAC: a service account with get/list/watch on pods only is enough.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="${EGRESSD_SOURCE_DIR:-$(cd "$here/../.." && pwd)}"
controller="${EGRESSD_BIN:-$src/build/bin}/egress-controller"

# shellcheck source=../k8s/lib.sh
source "$src/tests/k8s/lib.sh"
k8s_test_init k8s.pod_watch
command -v jq > /dev/null || fatal "jq is not installed"
[[ -x "$controller" ]] || fatal "no egress-controller at $controller (build it; EGRESSD_BIN)"

controller_pid=
on_cleanup() {
  if [[ -n "$controller_pid" ]]; then
    kill -CONT "$controller_pid" 2> /dev/null || true
    kill -TERM "$controller_pid" 2> /dev/null || true
    wait "$controller_pid" 2> /dev/null || true
  fi
  if ((failed > 0)) && [[ -f "$work/controller.log" ]]; then
    echo "--- last lines of the controller's log"
    tail -n 30 "$work/controller.log"
  fi
}
wait_for() { # TRIES(0.1 s) COMMAND...
  local i
  for ((i = 0; i < $1; i++)); do
    "${@:2}" > /dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

# The test compacts etcd itself.
export EGRESSD_K8S_APISERVER_ARGS="--etcd-compaction-interval=0"
k8s_start_control_plane

step "namespaces, service accounts, and a controller that may only read pods"
for ns in team-a team-b jobs; do kc create namespace "$ns" > /dev/null; done
kc -n team-a create serviceaccount web-sa > /dev/null
kc -n team-b create serviceaccount db > /dev/null
for ns in team-a team-b jobs; do kc -n "$ns" create serviceaccount default > /dev/null 2>&1 || true; done
kc create clusterrole pod-reader --verb=get,list,watch --resource=pods > /dev/null
user_kubeconfig="$("$src/tests/k8s/apiserver.sh" user "$EGRESSD_K8S_DIR" pod-watcher pod-reader)" ||
  fatal "apiserver.sh user failed"
ok "service account pod-watcher bound to get/list/watch pods"
kc auth can-i list pods --all-namespaces --kubeconfig "$user_kubeconfig" > /dev/null && ok "... it can list pods" ||
  fail "pod-watcher cannot list pods"
if kc auth can-i list replicasets --all-namespaces --kubeconfig "$user_kubeconfig" > /dev/null 2>&1; then
  fail "pod-watcher can list replicasets: the test would not show that pods are enough"
fi

map="$work/pods/pods.map"
mkdir -p "$work/pods" "$work/rules"
"$controller" --kubeconfig "$user_kubeconfig" --rules-dir "$work/rules" --pod-map "$map" --node-name node-1 \
  --log-level debug > "$work/controller.log" 2>&1 &
controller_pid=$!
if wait_for 100 test -f "$map"; then ok "the map file is written after the first list"; else fatal "no map file"; fi

# pod NS NAME NODE SA OWNER-JSON LABELS-JSON
create_pod() {
  kc create -f - > /dev/null << EOF
{"apiVersion": "v1", "kind": "Pod",
 "metadata": {"namespace": "$1", "name": "$2", "labels": $6, "ownerReferences": $5},
 "spec": {"nodeName": "$3", "serviceAccountName": "$4", "automountServiceAccountToken": false,
          "containers": [{"name": "c", "image": "registry.invalid/none:1"}]}}
EOF
}
owner() { # KIND NAME
  echo "[{\"apiVersion\": \"apps/v1\", \"kind\": \"$1\", \"name\": \"$2\", \"uid\": \"$(cat /proc/sys/kernel/random/uuid)\", \"controller\": true}]"
}
# running NS NAME IP...: what a kubelet reports once the sandbox is up
running() {
  local ns=$1 name=$2 ips="" ip; shift 2
  for ip in "$@"; do ips="$ips${ips:+,}{\"ip\":\"$ip\"}"; done
  kc -n "$ns" patch pod "$name" --subresource=status --type=merge \
    -p "{\"status\":{\"phase\":\"Running\",\"podIP\":\"$1\",\"podIPs\":[$ips],\"startTime\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"}}" > /dev/null
}
line_of() { grep -E "^$1 " "$map" 2> /dev/null; }
has_line() { [[ "$(line_of "$1")" == "$1 $2" ]]; }
lacks() { ! grep -Eq -- "$1" "$map"; }

step "create: no address yet, nothing in the map"
create_pod team-a web-7d9c6b5f4-x2x9q node-1 web-sa "$(owner ReplicaSet web-7d9c6b5f4)" '{"pod-template-hash": "7d9c6b5f4", "app": "web"}'
create_pod team-b db-0 node-1 db "$(owner StatefulSet db)" '{}'
create_pod jobs nightly-29430000-abcde node-1 default "$(owner Job nightly-29430000)" '{}'
create_pod team-a bare node-1 default '[]' '{}'
create_pod team-a elsewhere node-2 default '[]' '{}'
sleep 1
if [[ "$(grep -vc '^#' "$map")" == 0 ]]; then ok "pods without addresses name none"; else fail "map: $(cat "$map")"; fi

step "IP assignment: in the map within 1 s, with the workloads and service accounts"
t0=$(date +%s%N)
running team-a web-7d9c6b5f4-x2x9q 10.244.1.7 fd00:244::7
if wait_for 10 has_line 10.244.1.7 "team-a web-7d9c6b5f4-x2x9q Deployment/web web-sa"; then
  ok "ReplicaSet web-7d9c6b5f4 with pod-template-hash -> Deployment/web, $((($(date +%s%N) - t0) / 1000000)) ms after the status patch"
else
  fail "10.244.1.7: '$(line_of 10.244.1.7)'"
fi
has_line fd00:244::7 "team-a web-7d9c6b5f4-x2x9q Deployment/web web-sa" && ok "... its IPv6 address too" ||
  fail "fd00:244::7: '$(line_of fd00:244::7)'"
running team-b db-0 10.244.1.2
running jobs nightly-29430000-abcde 10.244.1.3
running team-a bare 10.244.1.4
running team-a elsewhere 10.244.2.9
wait_for 10 has_line 10.244.1.4 "team-a bare Pod/bare default"
has_line 10.244.1.2 "team-b db-0 StatefulSet/db db" && ok "StatefulSet/db" || fail "db-0: '$(line_of 10.244.1.2)'"
has_line 10.244.1.3 "jobs nightly-29430000-abcde CronJob/nightly default" && ok "Job nightly-29430000 -> CronJob/nightly" ||
  fail "nightly: '$(line_of 10.244.1.3)'"
has_line 10.244.1.4 "team-a bare Pod/bare default" && ok "a bare pod -> Pod/bare" || fail "bare: '$(line_of 10.244.1.4)'"
sleep 0.5
lacks 10.244.2.9 && ok "node-local: the pod of node-2 is not in node-1's map" || fail "node-2's pod mapped: $(cat "$map")"

step "delete, and an address reused while the old pod is still terminating"
kc -n team-a delete pod bare --grace-period=0 --force > /dev/null 2>&1
if wait_for 10 lacks "team-a bare"; then ok "deleted pod gone from the map"; else fail "bare still there: $(cat "$map")"; fi
# No kubelet confirms the shutdown: db-0 stays Terminating, with its address.
kc -n team-b delete pod db-0 --wait=false > /dev/null
wait_for 20 test -n "$(kc -n team-b get pod db-0 -o jsonpath='{.metadata.deletionTimestamp}')"
create_pod team-b cache-0 node-1 db "$(owner StatefulSet cache)" '{}'
running team-b cache-0 10.244.1.2
if wait_for 10 has_line 10.244.1.2 "team-b cache-0 StatefulSet/cache db"; then
  ok "10.244.1.2 names the new pod while the old one is still terminating"
else
  fail "10.244.1.2: '$(line_of 10.244.1.2)'"
fi
kc -n team-b delete pod db-0 --grace-period=0 --force > /dev/null 2>&1
sleep 0.5
has_line 10.244.1.2 "team-b cache-0 StatefulSet/cache db" && ok "... and still after the old pod is gone" ||
  fail "after db-0's delete: '$(line_of 10.244.1.2)'"
lacks " db-0 " && ok "db-0 is named nowhere" || fail "db-0 still mapped: $(cat "$map")"

step "relist after 410 Gone"
lists_before="$(grep -c 'event=pods.list.done' "$work/controller.log")"
kill -STOP "$controller_pid"
# shellcheck source=/dev/null
source "$EGRESSD_K8S_DIR/state"
tr '\0' '\n' < "/proc/$API_PID/cmdline" > "$work/apiserver.args"
mapfile -t apiargs < "$work/apiserver.args"
restart_apiserver() {
  # shellcheck source=/dev/null
  source "$EGRESSD_K8S_DIR/state"
  kill -KILL "$API_PID"
  # Its port is free once the process is gone; a start that still finds it
  # taken exits at once and is retried.
  wait_for 100 sh -c "! kill -0 $API_PID 2> /dev/null || grep -q '^State:.*Z' /proc/$API_PID/status"
  local started="" new_api
  for _ in 1 2 3 4 5; do
    "${apiargs[@]}" >> "$EGRESSD_K8S_DIR/kube-apiserver.log" 2>&1 < /dev/null &
    new_api=$!
    echo "API_PID=$new_api" >> "$EGRESSD_K8S_DIR/state"
    sleep 2
    if kill -0 "$new_api" 2> /dev/null; then started=1; break; fi
  done
  [[ -n "$started" ]] || fatal "kube-apiserver did not start again: $(tail -2 "$EGRESSD_K8S_DIR/kube-apiserver.log")"
  wait_for 1200 kc get --raw /readyz || fatal "kube-apiserver did not come back"
}
# The first restart cuts the controller's watch (it is frozen and sees
# nothing); the pods change; the second restart starts a watch cache that
# begins after those changes, and etcd is compacted, so the controller's
# resourceVersion is gone everywhere: its next watch gets 410.
restart_apiserver
ok "kube-apiserver restarted while the controller was frozen"
kc -n team-a delete pod web-7d9c6b5f4-x2x9q --grace-period=0 --force > /dev/null 2>&1
create_pod team-a web-7d9c6b5f4-zzzzz node-1 web-sa "$(owner ReplicaSet web-7d9c6b5f4)" '{"pod-template-hash": "7d9c6b5f4"}'
running team-a web-7d9c6b5f4-zzzzz 10.244.1.7 fd00:244::7
rev="$("$EGRESSD_K8S_BIN/etcdctl" --endpoints "$EGRESSD_K8S_ETCD" endpoint status -w json | jq '.[0].Status.header.revision')"
"$EGRESSD_K8S_BIN/etcdctl" --endpoints "$EGRESSD_K8S_ETCD" compact "$rev" > /dev/null 2>&1 &&
  ok "etcd compacted at revision $rev" || fail "etcdctl compact $rev failed"
restart_apiserver
ok "kube-apiserver restarted again: its watch cache starts after the changes"
kill -CONT "$controller_pid"
relisted() { [[ "$(grep -c 'event=pods.list.done' "$work/controller.log")" -gt "$lists_before" ]]; }
if wait_for 450 relisted; then ok "the controller relisted"; else fail "no relist: $(grep 'event=pods' "$work/controller.log" | tail -5)"; fi
grep -q 'event=pods.watch.gone' "$work/controller.log" && ok "... because its watch got 410 Gone" ||
  fail "no pods.watch.gone in the log"
if wait_for 50 has_line 10.244.1.7 "team-a web-7d9c6b5f4-zzzzz Deployment/web web-sa"; then
  ok "after the relist 10.244.1.7 names the pod created while the controller was away"
else
  fail "10.244.1.7 after the relist: '$(line_of 10.244.1.7)'"
fi
lacks "x2x9q" && ok "the pod deleted while it was away is named nowhere" || fail "x2x9q still mapped: $(cat "$map")"

step "restart of the controller: the map is rewritten whole"
kill -TERM "$controller_pid"
wait "$controller_pid" 2> /dev/null
before="$(cat "$map")"
"$controller" --kubeconfig "$user_kubeconfig" --rules-dir "$work/rules" --pod-map "$map" --node-name node-1 \
  >> "$work/controller.log" 2>&1 &
controller_pid=$!
sleep 2
[[ "$(cat "$map")" == "$before" ]] && ok "the same map after a restart (deterministic)" || fail "map changed: $(cat "$map")"
create_pod team-b late node-1 db '[]' '{}'
running team-b late 10.244.1.30
wait_for 10 has_line 10.244.1.30 "team-b late Pod/late db" && ok "changes after the restart arrive" ||
  fail "late: '$(line_of 10.244.1.30)'"
if ls -a "$work/pods" | grep -q '\.tmp$'; then fail "a temporary file was left behind"; else ok "no temporary file left"; fi

echo "k8s.pod_watch: $passed passed, $failed failed"
((failed == 0))

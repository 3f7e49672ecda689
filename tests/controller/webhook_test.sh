#!/usr/bin/env bash
# The proxy-variable injection webhook (docs/injection.md) against a real
# kube-apiserver + etcd (tests/k8s/apiserver.sh): the API server itself
# calls egress-controller's webhook on 127.0.0.1 (a url clientConfig: there
# is no kube-proxy to route a Service) with the caBundle the controller
# wrote, and the pods as stored are checked:
#   - every container and init container gets EGRESSD_NODE_IP (downward
#     API) and the six proxy variables, NO_PROXY exactly as configured;
#   - a container that sets one of them keeps its env untouched;
#   - opted-out namespace, pod label, pod annotation, hostNetwork and
#     kube-system pods are stored unchanged;
#   - a review after 12 s of quiet comes over the same kept-alive connection
#     (its peer port, and the webhook's handshake counter on GET /metrics);
#   - with the webhook down, pods are still created (failurePolicy Ignore);
#   - certificates rotated every few seconds (CA included) never make an
#     admission miss, and the served certificate really changes;
#   - the controller runs with exactly the shipped RBAC (deploy/base/
#     webhook-rbac.yaml), which reaches no other Secret and creates nothing;
#   - with the flags of deploy/overlays/central-gateway, pods get the
#     gateways' proxy URL and no node address.
# No kubelet: pods stay Pending, which is all admission needs.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="${EGRESSD_SOURCE_DIR:-$(cd "$here/../.." && pwd)}"
harness="$src/tests/k8s/apiserver.sh"
controller="${EGRESSD_BIN:-$src/build/bin}/egress-controller"

# shellcheck source=../k8s/lib.sh
source "$src/tests/k8s/lib.sh"
k8s_test_init k8s.webhook

[[ -x "$controller" ]] || fatal "$controller not built"
command -v jq > /dev/null || fatal "jq is needed (Debian package jq)"

ctl_pid=""
finished=0
on_cleanup() {
  stop_controller
  if ((failed > 0 || finished == 0)); then
    for f in "$work"/*.log; do
      [[ -f "$f" ]] || continue
      echo "--- last lines of $f"
      tail -n 30 "$f"
    done
  fi
}
stop_controller() {
  if [[ -n "$ctl_pid" ]]; then
    kill -TERM "$ctl_pid" 2> /dev/null || true
    wait "$ctl_pid" 2> /dev/null || true
    ctl_pid=""
  fi
}

wait_for() { # SECONDS COMMAND...
  local deadline=$((SECONDS + $1))
  shift
  while true; do
    "$@" && return 0
    ((SECONDS > deadline)) && return 1
    sleep 0.2
  done
}

k8s_start_control_plane

step "namespaces, the shipped Secret, Lease, webhook configuration and RBAC"
for ns in egressd-system team-a opted-out; do
  kc create namespace "$ns" > /dev/null || fatal "namespace $ns"
done
kc label namespace opted-out egressd.io/inject=disabled > /dev/null
# No controller-manager here: the ServiceAccount admission plugin needs
# each namespace's "default" account to exist before a pod is admitted.
for ns in team-a opted-out kube-system; do
  kc -n "$ns" create serviceaccount default > /dev/null 2>&1 || true
done
kc -n egressd-system create secret generic other-secret --from-literal=k=v > /dev/null
# The webhook configuration as shipped, but called by URL on loopback.
port=$((20000 + RANDOM % 40000))
while [[ -n "$(ss -Htan "( sport = :$port )" 2> /dev/null)" ]]; do port=$((20000 + RANDOM % 40000)); done
url="https://127.0.0.1:$port/inject"
kc create --dry-run=client -o json -f "$src/deploy/base/webhook-configuration.yaml" > "$work/shipped.json" ||
  fatal "deploy/base/webhook-configuration.yaml does not parse"
jq -s --arg url "$url" '{apiVersion: "v1", kind: "List", items: map(if .kind == "MutatingWebhookConfiguration"
    then .webhooks |= map(.clientConfig = {url: $url}) else . end)}' "$work/shipped.json" > "$work/webhook.json"
kc apply -f "$work/webhook.json" > /dev/null || fatal "webhook configuration, Secret, Lease refused"
jq -e '.items[] | select(.kind == "MutatingWebhookConfiguration") | .webhooks[0] |
    .failurePolicy == "Ignore" and .sideEffects == "None" and .timeoutSeconds == 2 and
    .reinvocationPolicy == "IfNeeded" and .admissionReviewVersions == ["v1"]' "$work/webhook.json" > /dev/null &&
  ok "shipped webhook: failurePolicy Ignore, sideEffects None, timeout 2 s, reinvocation IfNeeded, v1" ||
  fail "shipped webhook settings"
kc apply -f "$src/deploy/base/webhook-rbac.yaml" > /dev/null || fatal "webhook RBAC refused"
# The shipped roles, bound to a test account instead of the pod's.
user="$("$harness" user "$EGRESSD_K8S_DIR" egressd-webhook egressd-webhook)" || fatal "test account"
kc -n egressd-system create rolebinding test-webhook --role egressd-webhook \
  --serviceaccount egressd-test-users:egressd-webhook > /dev/null || fatal "rolebinding"
as_user=(--as system:serviceaccount:egressd-test-users:egressd-webhook)
can() { [[ "$(kc auth can-i "${as_user[@]}" "$@" 2> /dev/null)" == yes ]]; }
if can get secret/egressd-webhook-tls -n egressd-system && can update secret/egressd-webhook-tls -n egressd-system &&
  can update mutatingwebhookconfigurations/egressd-inject && can update leases/egressd-webhook-certs -n egressd-system; then
  ok "RBAC: get/update on the one Secret, Lease and webhook configuration"
else
  fail "RBAC lacks what the webhook needs"
fi
if can get secret/other-secret -n egressd-system || can create secrets -n egressd-system || can list secrets -n egressd-system ||
  can update mutatingwebhookconfigurations/other || can get secret/x -n team-a || can create leases -n egressd-system ||
  can list pods -A; then
  fail "RBAC grants more than the one Secret, Lease and webhook configuration"
else
  ok "RBAC: no other Secret, no create, no list, no other webhook configuration, no pods"
fi

start_controller() { # LOG extra-args...
  local logf="$1"
  shift
  "$controller" --kubeconfig "$user" --webhook-listen "127.0.0.1:$port" --webhook-cert-san 127.0.0.1 \
    --webhook-cert-poll 500ms --identity "test-$RANDOM" \
    --inject-service-cidr 10.96.0.0/24 --inject-pod-cidr 10.244.0.0/16 --inject-pod-cidr fd00:10:244::/56 \
    --inject-apiserver kubernetes.default.svc --inject-apiserver 10.96.0.1 --inject-cluster-domain example.internal \
    "$@" > "$work/$logf" 2>&1 &
  ctl_pid=$!
}

# A dry-run create goes through admission (sideEffects None allows it):
# true once the API server has the caBundle and the webhook answers.
probe_injected() {
  kc -n team-a run "probe-$RANDOM" --image=busybox --restart=Never --dry-run=server -o json 2> /dev/null |
    jq -e '.spec.containers[0].env // [] | map(.name) | index("HTTP_PROXY") != null' > /dev/null
}
cabundle() {
  kc get mutatingwebhookconfiguration egressd-inject -o jsonpath='{.webhooks[0].clientConfig.caBundle}'
}

step "egress-controller serves the webhook; certificates created in the shipped Secret"
start_controller controller.log
wait_for 60 grep -q 'event=webhook.listening' "$work/controller.log" && ok "listening on 127.0.0.1:$port" ||
  fatal "the webhook did not start listening"
[[ -n "$(cabundle)" ]] && ok "caBundle written into egressd-inject" || fail "no caBundle"
kc -n egressd-system get secret egressd-webhook-tls -o json > "$work/secret.json"
if jq -e '.data | has("ca.crt") and has("ca.key") and has("tls.crt") and has("tls.key") and has("ca-bundle.crt")' \
  "$work/secret.json" > /dev/null; then
  ok "Secret holds ca.crt, ca.key, tls.crt, tls.key, ca-bundle.crt"
else
  fail "Secret content: $(jq -c '.data | keys' "$work/secret.json")"
fi
jq -r '.data["tls.crt"]' "$work/secret.json" | base64 -d > "$work/tls.crt"
cabundle | base64 -d > "$work/bundle.pem"
if openssl verify -CAfile "$work/bundle.pem" "$work/tls.crt" > /dev/null 2>&1 &&
  openssl x509 -in "$work/tls.crt" -noout -ext subjectAltName | grep -q 'egressd-webhook.egressd-system.svc' &&
  openssl x509 -in "$work/tls.crt" -noout -ext subjectAltName | grep -q 'IP Address:127.0.0.1'; then
  ok "serving certificate verifies against the caBundle; SANs: the Service's name and 127.0.0.1"
else
  fail "serving certificate: $(openssl x509 -in "$work/tls.crt" -noout -subject -ext subjectAltName 2>&1 | tr '\n' ' ')"
fi
wait_for 30 probe_injected && ok "the API server calls the webhook (dry-run pod injected)" ||
  fatal "the API server never got an injected pod from the webhook"

expected_no_proxy="localhost,127.0.0.1,::1,.cluster.local,.example.internal,.svc,10.96.0.0/24,10.244.0.0/16,fd00:10:244::/56,169.254.20.11,kubernetes.default.svc,10.96.0.1"
proxy_url='http://$(EGRESSD_NODE_IP):3128'

step "a pod with two containers and an init container"
kc -n team-a apply -f - > /dev/null << 'EOF' || fail "pod plain refused"
apiVersion: v1
kind: Pod
metadata: {name: plain}
spec:
  initContainers:
  - {name: init, image: busybox}
  containers:
  - name: app
    image: busybox
    env:
    - {name: OTHER, value: kept}
  - {name: sidecar, image: busybox}
EOF
kc -n team-a get pod plain -o json > "$work/plain.json"
check_injected() { # FILE KIND INDEX LABEL
  local f="$1" kind="$2" i="$3" label="$4" env
  env="$(jq -c ".spec.$kind[$i].env" "$f")"
  if jq -e --arg url "$proxy_url" --arg np "$expected_no_proxy" '
      (map(.name) | index("EGRESSD_NODE_IP")) as $n |
      (map(.name) | index("HTTP_PROXY")) as $h |
      $n != null and $h != null and $n < $h and
      (.[$n].valueFrom.fieldRef.fieldPath == "status.hostIP") and
      ([.[] | select(.name == "HTTP_PROXY" or .name == "HTTPS_PROXY" or .name == "http_proxy" or .name == "https_proxy") | .value]
        == [$url, $url, $url, $url]) and
      ([.[] | select(.name == "NO_PROXY" or .name == "no_proxy") | .value] == [$np, $np])' <<< "$env" > /dev/null; then
    ok "$label: EGRESSD_NODE_IP from status.hostIP first, then the six variables, NO_PROXY as configured"
  else
    fail "$label: env $env"
  fi
}
check_injected "$work/plain.json" initContainers 0 "init container"
check_injected "$work/plain.json" containers 0 "container app"
check_injected "$work/plain.json" containers 1 "container sidecar"
[[ "$(jq -r '.spec.containers[0].env[0] | "\(.name)=\(.value)"' "$work/plain.json")" == "OTHER=kept" ]] &&
  ok "the container's own variable stays first and unchanged" || fail "OTHER lost or moved"

step "kept alive: a review after a quiet spell reuses the API server's connection"
# The webhook keeps a connection that carried a review open for 120 s idle,
# longer than the API server (90 s): no TCP and TLS handshake on the pod
# path after a quiet spell (bench/webhook). With the former 10 s, the
# review after 12 s came over a new connection (another peer port).
last_peer() { grep -o 'event=inject.review .* peer=[^ ]*' "$work/controller.log" | tail -1 | sed 's/.* peer=//'; }
# The webhook's own counters (GET /metrics on its port); each scrape is a
# connection and a handshake of its own.
metric() { curl -sk --max-time 10 "https://127.0.0.1:$port/metrics" | awk -v n="$1" '$1 == n { print $2 }'; }
peer_before="$(last_peer)"
handshakes_before="$(metric egressd_webhook_tls_handshakes_total)"
injected_before="$(metric 'egressd_webhook_reviews_total{outcome="injected"}')"
sleep 12
probe_injected || fail "the pod after 12 s of quiet was not injected"
peer_after="$(last_peer)"
handshakes_after="$(metric egressd_webhook_tls_handshakes_total)"
injected_after="$(metric 'egressd_webhook_reviews_total{outcome="injected"}')"
if [[ -n "$peer_before" && "$peer_before" == "$peer_after" ]]; then
  ok "after 12 s idle the review came over the same connection ($peer_after)"
else
  fail "after 12 s idle: a new connection (before '$peer_before', after '$peer_after')"
fi
# Between the two readings: one review, and two handshakes, the scrapes'
# own (the second completes before it is answered); a new connection from
# the API server would be a third.
if [[ -n "$handshakes_before" && -n "$injected_before" && $((handshakes_after - handshakes_before)) -eq 2 &&
  $((injected_after - injected_before)) -eq 1 ]]; then
  ok "/metrics: the review counted, no handshake for it ($handshakes_after handshakes in all)"
else
  fail "/metrics: handshakes $handshakes_before -> $handshakes_after, injected $injected_before -> $injected_after (want +2, +1)"
fi

step "user-set variables win"
kc -n team-a apply -f - > /dev/null << 'EOF' || fail "pod user-set refused"
apiVersion: v1
kind: Pod
metadata: {name: user-set}
spec:
  containers:
  - name: own
    image: busybox
    env:
    - {name: https_proxy, value: "http://corp-proxy:8080"}
  - {name: plain, image: busybox}
EOF
kc -n team-a get pod user-set -o json > "$work/user-set.json"
[[ "$(jq -c '.spec.containers[0].env' "$work/user-set.json")" == '[{"name":"https_proxy","value":"http://corp-proxy:8080"}]' ]] &&
  ok "a container setting https_proxy keeps exactly its own env" ||
  fail "user-set container changed: $(jq -c '.spec.containers[0].env' "$work/user-set.json")"
check_injected "$work/user-set.json" containers 1 "its neighbour without proxy settings"

step "opt-outs and skips leave pods untouched"
untouched() { # NS NAME LABEL
  local env
  env="$(kc -n "$1" get pod "$2" -o json | jq -c '[.spec.containers[], (.spec.initContainers // [])[] | .env // []] | add')"
  [[ "$env" == "[]" ]] && ok "$3: stored without proxy variables" || fail "$3: env $env"
}
kc -n opted-out run ns-opt-out --image=busybox --restart=Never > /dev/null || fail "pod in opted-out refused"
untouched opted-out ns-opt-out "namespace labelled egressd.io/inject=disabled"
kc -n team-a run label-opt-out --image=busybox --restart=Never --labels egressd.io/inject=disabled > /dev/null ||
  fail "labelled pod refused"
untouched team-a label-opt-out "pod labelled egressd.io/inject=disabled"
kc -n team-a apply -f - > /dev/null << 'EOF' || fail "annotated pod refused"
apiVersion: v1
kind: Pod
metadata:
  name: annotation-opt-out
  annotations: {egressd.io/inject: "false"}
spec:
  containers:
  - {name: app, image: busybox}
EOF
untouched team-a annotation-opt-out "pod annotated egressd.io/inject=false"
kc -n team-a apply -f - > /dev/null << 'EOF' || fail "hostNetwork pod refused"
apiVersion: v1
kind: Pod
metadata: {name: host-network}
spec:
  hostNetwork: true
  containers:
  - {name: app, image: busybox}
EOF
untouched team-a host-network "hostNetwork pod"
kc -n kube-system run system-pod --image=busybox --restart=Never > /dev/null || fail "kube-system pod refused"
untouched kube-system system-pod "kube-system pod (namespaceSelector)"
kc -n team-a apply -f - > /dev/null << 'EOF' || fail "annotated extra NO_PROXY pod refused"
apiVersion: v1
kind: Pod
metadata:
  name: extra-no-proxy
  annotations: {egressd.io/no-proxy: "my-svc, my-svc.team-b ,bad value"}
spec:
  containers:
  - {name: app, image: busybox}
EOF
np="$(kc -n team-a get pod extra-no-proxy -o json | jq -r '.spec.containers[0].env[] | select(.name == "NO_PROXY") | .value')"
[[ "$np" == "$expected_no_proxy,my-svc,my-svc.team-b" ]] &&
  ok "annotation egressd.io/no-proxy appends its valid entries, drops the bad one" || fail "NO_PROXY with annotation: $np"
grep -q 'ignored' <(kc -n team-a run warn-probe --image=busybox --restart=Never --dry-run=server \
  --annotations='egressd.io/no-proxy=bad value' 2>&1) && ok "the bad entry is reported as a kubectl warning" ||
  fail "no warning for the bad annotation entry"

step "hostile requests to the webhook port: refused, and it keeps serving"
hcurl() { curl -sk --max-time 10 -o /dev/null -w '%{http_code}' "$@"; }
[[ "$(hcurl -X POST -H 'Content-Type: application/json' --data 'not json' "$url")" == 400 ]] &&
  ok "a body that is not an AdmissionReview: 400" || fail "garbage body not answered 400"
[[ "$(hcurl "$url")" == 405 ]] && ok "GET /inject: 405" || fail "GET /inject not 405"
[[ "$(hcurl "https://127.0.0.1:$port/other")" == 404 ]] && ok "another path: 404" || fail "other path not 404"
head -c $((4 * 1024 * 1024)) /dev/zero | tr '\0' 'a' > "$work/big.body"
code="$(hcurl -X POST --data-binary @"$work/big.body" "$url")"
[[ "$code" == 413 || "$code" == 000 ]] && ok "a 4 MiB body is refused ($code)" || fail "4 MiB body answered $code"
curl -s --max-time 5 -o /dev/null "http://127.0.0.1:$port/inject" 2> /dev/null
[[ "$(hcurl "https://127.0.0.1:$port/healthz")" == 200 ]] && probe_injected &&
  ok "still serving after plain HTTP, garbage and oversized requests" || fail "webhook stopped serving"

step "the webhook down: pods are still created (failurePolicy Ignore)"
stop_controller
start=$(date +%s%N)
if kc -n team-a run while-down --image=busybox --restart=Never > /dev/null 2>&1; then
  ok "pod created while the webhook is down ($((($(date +%s%N) - start) / 1000000)) ms)"
  untouched team-a while-down "pod created while the webhook is down"
else
  fail "pod creation failed while the webhook is down"
fi

step "rotation: serving certificate every ~7 s, CA every ~14 s; admission never misses"
serial_before="$(openssl x509 -in "$work/tls.crt" -noout -serial)"
ca_before="$(cabundle)"
start_controller rotation.log --webhook-cert-validity 10s --webhook-ca-validity 21s
wait_for 60 grep -q 'event=webhook.listening' "$work/rotation.log" || fatal "restarted webhook not listening"
wait_for 30 probe_injected || fatal "restarted webhook not called"
misses=0
total=0
end=$((SECONDS + 45))
while ((SECONDS < end)); do
  total=$((total + 1))
  if ! kc -n team-a run "rot-$total" --image=busybox --restart=Never > /dev/null 2>&1; then
    misses=$((misses + 1))
    echo "    pod rot-$total refused"
    continue
  fi
  names="$(kc -n team-a get pod "rot-$total" -o json | jq -c '[.spec.containers[0].env // [] | .[].name]')"
  if [[ "$names" != '["EGRESSD_NODE_IP","HTTP_PROXY","HTTPS_PROXY","http_proxy","https_proxy","NO_PROXY","no_proxy"]' ]]; then
    misses=$((misses + 1))
    echo "    pod rot-$total stored with $names ($(date +%T.%N))"
  fi
  sleep 0.3
done
rotations="$(grep -c 'event=webhook.cert.rotated' "$work/rotation.log")"
ca_rotations="$(grep -c 'event=webhook.cert.rotated.*new_ca=true' "$work/rotation.log")"
reloads="$(grep -c 'event=webhook.certificate.reloaded' "$work/rotation.log")"
((misses == 0 && total >= 20)) && ok "$total pods over 45 s of rotations, every one injected" ||
  fail "$misses of $total pods created during rotation were not injected"
((rotations >= 4 && ca_rotations >= 2 && reloads >= 3)) &&
  ok "$rotations rotations ($ca_rotations of the CA), $reloads reloads without restart" ||
  fail "rotations $rotations, CA $ca_rotations, reloads $reloads"
served="$(openssl s_client -connect "127.0.0.1:$port" -servername 127.0.0.1 < /dev/null 2> /dev/null |
  openssl x509 -noout -serial 2> /dev/null)"
[[ -n "$served" && "$served" != "$serial_before" ]] && ok "the served certificate changed ($served)" ||
  fail "served certificate: '$served' (before: $serial_before)"
[[ "$(cabundle)" != "$ca_before" ]] && ok "caBundle follows the CA" || fail "caBundle unchanged after CA rotation"
kc -n egressd-system get secret egressd-webhook-tls -o json | jq -r '.data["tls.crt"]' | base64 -d > "$work/tls2.crt"
cabundle | base64 -d > "$work/bundle2.pem"
openssl verify -CAfile "$work/bundle2.pem" "$work/tls2.crt" > /dev/null 2>&1 &&
  ok "the current serving certificate verifies against the current caBundle" || fail "Secret and caBundle disagree"
stop_controller
grep -q 'event=controller.bug\|event=webhook.certificate.refused' "$work"/*.log &&
  fail "bug or refused certificate in the logs" || ok "no bug or refused certificate logged"

step "deploy/overlays/central-gateway: the overlay's webhook flags inject the gateways' proxy"
# The command of the overlay's egressd-webhook as rendered, run here with
# a kubeconfig and on loopback instead of --in-cluster on 0.0.0.0.
kc kustomize "$src/deploy/overlays/central-gateway" 2> "$work/render.err" |
  kc create --dry-run=client -o json -f - 2>> "$work/render.err" | jq -s '.' > "$work/central.json" ||
  fail "kustomize deploy/overlays/central-gateway: $(cat "$work/render.err")"
mapfile -t central_args < <(jq -r '.[] | select(.kind == "Deployment" and .metadata.name == "egressd-webhook") |
  .spec.template.spec.containers[0].command[1:][] | select(test("^--(in-cluster$|webhook-listen=|identity=)") | not)' \
  "$work/central.json")
gateway_url="$(printf '%s\n' "${central_args[@]}" | sed -n 's/^--inject-proxy-url=//p')"
if [[ "$gateway_url" == http://*:3128 && "$gateway_url" != *EGRESSD_NODE_IP* ]]; then
  ok "central-gateway: --inject-proxy-url=$gateway_url"
else
  fail "central-gateway: proxy URL '$gateway_url' in ${central_args[*]}"
fi
if printf '%s\n' "${central_args[@]}" | grep -qx -- '--inject-node-ip-env='; then
  ok "central-gateway: no node address, written --inject-node-ip-env="
else
  fail "central-gateway: no empty --inject-node-ip-env= in ${central_args[*]}"
fi
# A name the API server would refuse in every pod is refused at start.
"$controller" --kubeconfig "$user" --inject-node-ip-env=--inject-no-proxy=x > "$work/badenv.log" 2>&1
rc=$?
if ((rc == 2)) && grep -q '"--inject-no-proxy=x" is not an environment variable name' "$work/badenv.log"; then
  ok "--inject-node-ip-env with a flag-like value is refused at start (exit 2)"
else
  fail "--inject-node-ip-env=--inject-no-proxy=x: exit $rc, $(head -c 300 "$work/badenv.log")"
fi
"$controller" --kubeconfig "$user" --webhook-listen "127.0.0.1:$port" --webhook-cert-san 127.0.0.1 \
  --webhook-cert-poll 500ms --identity "test-central-$RANDOM" "${central_args[@]}" > "$work/central.log" 2>&1 &
ctl_pid=$!
wait_for 60 grep -qE 'event=webhook.listening|"event":"webhook.listening"' "$work/central.log" || fatal "the central-gateway webhook did not start"
wait_for 30 probe_injected ||
  fatal "central-gateway: no injected pod; a dry-run pod gives: $(kc -n team-a run probe-central --image=busybox --restart=Never \
    --dry-run=server -o json 2>&1 | head -c 800)"
kc -n team-a run central --image=busybox --restart=Never > /dev/null 2>&1 || fail "pod central refused"
env="$(kc -n team-a get pod central -o json | jq -c '.spec.containers[0].env // []')"
if jq -e --arg url "$gateway_url" '
    (map(.name) == ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy"]) and
    ([.[0:4][].value] == [$url, $url, $url, $url]) and
    (.[4].value | split(",") | index("10.0.0.0/16") != null and index("172.20.0.0/16") != null and index(".svc") != null)' \
  <<< "$env" > /dev/null; then
  ok "central-gateway: the pod gets the gateways' proxy URL, no node address, the VPC range in NO_PROXY"
else
  fail "central-gateway: pod env $env"
fi
stop_controller

step "deploy/: the base's webhook Deployment and the cert-manager component render"
render_dir="$src/build/.webhook-render-$$"
mkdir -p "$render_dir"
cat > "$render_dir/kustomization.yaml" << 'EOF'
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- ../../deploy/base
components:
- ../../deploy/components/webhook-cert-manager
EOF
kc kustomize "$src/deploy/base" > "$work/base.yaml" 2> "$work/render.err" ||
  fail "kustomize deploy/base: $(cat "$work/render.err")"
kc kustomize "$render_dir" > "$work/cm.yaml" 2> "$work/render.err" ||
  fail "kustomize with webhook-cert-manager: $(cat "$work/render.err")"
rm -rf "$render_dir"
kc create --dry-run=client -o json -f "$work/base.yaml" 2> /dev/null | jq -s '.' > "$work/base.json"
jq -e '.[] | select(.kind == "Deployment" and .metadata.name == "egressd-webhook") | .spec.template.spec |
    (.hostNetwork // false) == false and .securityContext.runAsNonRoot == true and
    (.containers[0].command | index("--inject-proxy-url=http://$$(EGRESSD_NODE_IP):3128") != null) and
    (.containers[0].command | index("--webhook-listen=0.0.0.0:9443") != null)' "$work/base.json" > /dev/null &&
  ok "base: egressd-webhook Deployment on the pod network, non-root, proxy URL kept from expansion (\$\$)" ||
  fail "base: egressd-webhook Deployment"
jq -e '[.[] | select(.kind == "Secret" and .metadata.name == "egressd-webhook-tls")] | length == 1' \
  "$work/base.json" > /dev/null && ok "base: ships the empty Secret (no create permission needed)" ||
  fail "base: Secret egressd-webhook-tls missing"
if grep -q -- '--webhook-certs=external' "$work/cm.yaml" &&
  grep -q 'cert-manager.io/inject-ca-from: egressd-system/egressd-webhook-tls' "$work/cm.yaml" &&
  ! grep -q '^kind: Lease' "$work/cm.yaml" && [[ -z "$(awk 'BEGIN { RS = "\n---\n" } /(^|\n)kind: ClusterRole(Binding)?\n/ && /\n  name: egressd-webhook\n/' "$work/cm.yaml")" ]] &&
  [[ "$(grep -c '^kind: Certificate$' "$work/cm.yaml")" == 2 ]]; then
  ok "component webhook-cert-manager: external certs, CA injection, no Lease, no ClusterRole, two Certificates"
else
  fail "component webhook-cert-manager renders wrong"
fi

finished=1
echo "k8s.webhook: $passed passed, $failed failed"
((failed == 0))

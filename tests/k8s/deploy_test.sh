#!/usr/bin/env bash
# End-to-end test of deploy/ (the node-local DaemonSet, RBAC, config, the
# bootstrap-rules component, the node-local DNS snippet) against a real
# kube-apiserver + etcd (tests/k8s/apiserver.sh):
#   - the copies under deploy/ equal their sources in examples/rules/;
#   - `kubectl kustomize` renders deploy/base and deploy/overlays/node-local,
#     the overlay carries the bootstrap rule sets, the base does not;
#     deploy/overlays/central-gateway renders no DaemonSet, the status
#     writer Deployment and the webhook injecting the gateways' proxy URL;
#   - the egressd.toml inside the rendered ConfigMap passes
#     `egressd --check-config`, and egressd's loader puts the ConfigMap's
#     system rule sets in force; the uninstall config is valid too, and
#     the uninstall needs no image but egressd's;
#   - `kubectl apply --dry-run=server -k` of both, and of every plain YAML
#     file under deploy/ (not kustomization.yaml, not component patches
#     named patch-*.yaml), after the CRD and the namespace exist for real;
#   - the applied DaemonSet has the properties docs/deploy.md promises
#     (hostNetwork, capabilities, token only in the controller container,
#     shared emptyDir, rolling update one node at a time, every node);
#   - RBAC: `kubectl auth can-i` as egress-controller for what it needs
#     (yes) and for what it must not do (no); egressd's account can do
#     nothing and no binding names it.
#
# Needs jq, and egressd in $EGRESSD_BIN (set by ctest; default build/bin).
# Exits 77 (ctest: skipped) only when neither cached control-plane binaries
# nor a Go toolchain to build them exist.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="${EGRESSD_SOURCE_DIR:-$(cd "$here/../.." && pwd)}"
deploy="$src/deploy"
egressd="${EGRESSD_BIN:-$src/build/bin}/egressd"
ns="egressd-system"
controller_sa="system:serviceaccount:$ns:egress-controller"
egressd_sa="system:serviceaccount:$ns:egressd"

# shellcheck source=lib.sh
source "$here/lib.sh"
k8s_test_init k8s.deploy

command -v jq > /dev/null || fatal "jq is not installed"

k8s_start_control_plane

step "copies under deploy/ are their sources in examples/rules/"
for pair in \
  "components/bootstrap-rules/system-bootstrap.yaml:system-bootstrap.yaml" \
  "examples/my-app-targets.yaml:my-app-targets.yaml" \
  "examples/world-access.yaml:world-access.yaml"; do
  copy="$deploy/${pair%%:*}"
  orig="$src/examples/rules/${pair#*:}"
  if cmp -s "$copy" "$orig"; then
    ok "deploy/${pair%%:*} = examples/rules/${pair#*:}"
  else
    fail "deploy/${pair%%:*} differs from examples/rules/${pair#*:} (or is missing)"
  fi
done

step "kubectl kustomize renders the base and the node-local overlay"
tolist() { jq -s '{kind: "List", items: [.[] | if .kind == "List" then .items[] else . end]}'; }
render() { # NAME DIR: YAML in $work/NAME.yaml, JSON List in $work/NAME.json
  if ! kc kustomize "$2" > "$work/$1.yaml" 2> "$work/$1.err"; then
    fail "kubectl kustomize ${2#"$src"/}: $(cat "$work/$1.err")"
    return 1
  fi
  # kustomize prints YAML; a client-side dry run turns it into a JSON List.
  # It prints one object per document (or a List); jq -s makes one List.
  if ! kc create --dry-run=client -o json -f "$work/$1.yaml" 2> "$work/$1.err" | tolist > "$work/$1.json" ||
    [[ "$(jq '.items | length' "$work/$1.json")" == 0 ]]; then
    fail "${2#"$src"/}: rendered YAML not readable by kubectl: $(cat "$work/$1.err")"
    return 1
  fi
  ok "${2#"$src"/} renders: $(jq -r '[.items[] | .kind + "/" + .metadata.name] | join(" ")' "$work/$1.json")"
}
render base "$deploy/base"
render overlay "$deploy/overlays/node-local"
render linklocal "$deploy/overlays/node-local-link-local"
render uninstall "$deploy/uninstall"
render central "$deploy/overlays/central-gateway"
for r in base overlay linklocal uninstall central; do
  [[ -s "$work/$r.json" ]] || fatal "cannot continue without the rendered $r"
done
obj() { # NAME KIND NAME-PREFIX -> the object (generated names have a hash suffix)
  jq --arg k "$2" --arg n "$3" '[.items[] | select(.kind == $k and (.metadata.name == $n or (.metadata.name | startswith($n + "-"))))] | first // empty' "$work/$1.json"
}
for kind_name in "CustomResourceDefinition egressrulesets.zalando.org" "Namespace $ns" \
  "ServiceAccount egress-controller" "ServiceAccount egressd" "ClusterRole egress-controller" \
  "ClusterRoleBinding egress-controller" "Role egress-controller-lease" \
  "RoleBinding egress-controller-lease" "ConfigMap egressd-config" \
  "ConfigMap egressd-system-rules" "ConfigMap egressd-node-dns" "DaemonSet egressd"; do
  # shellcheck disable=SC2086
  if [[ -n "$(obj overlay $kind_name)" ]]; then
    ok "overlay has $kind_name"
  else
    fail "overlay lacks $kind_name"
  fi
done
sysrules="$(obj overlay ConfigMap egressd-system-rules | jq -r '.data["system-bootstrap.yaml"] // empty')"
if [[ -n "$sysrules" ]] && cmp -s <(printf '%s\n' "$sysrules") "$src/examples/rules/system-bootstrap.yaml"; then
  ok "overlay: ConfigMap egressd-system-rules holds system-bootstrap.yaml verbatim"
else
  fail "overlay: ConfigMap egressd-system-rules lacks system-bootstrap.yaml: $(obj overlay ConfigMap egressd-system-rules)"
fi
if [[ "$(obj base ConfigMap egressd-system-rules | jq '.data // {} | length')" == 0 ]]; then
  ok "base: the system rules ConfigMap is empty (the component fills it)"
else
  fail "base: the system rules ConfigMap is not empty"
fi
# The DaemonSet mounts exactly the generated (hash-suffixed) ConfigMaps.
for r in base overlay linklocal; do
  want="$(obj $r ConfigMap egressd-system-rules | jq -r .metadata.name) $(obj $r ConfigMap egressd-config | jq -r .metadata.name)"
  got="$(obj $r DaemonSet egressd | jq -r '[.spec.template.spec.volumes[] | select(.name == "system-rules" or .name == "config") | .configMap.name] | sort | reverse | join(" ")')"
  if [[ -n "$want" && "$got" == "$want" ]]; then
    ok "$r: DaemonSet mounts the generated ConfigMaps $got"
  else
    fail "$r: DaemonSet mounts '$got', generated '$want'"
  fi
done

step "the central-gateway overlay: nothing on the nodes, the controller and the injection towards the gateways"
# egressd runs on gateway hosts there (deploy/aws/, docs/aws.md).
for kind_name in "DaemonSet egressd" "ConfigMap egressd-config" "ConfigMap egressd-node-dns" \
  "ConfigMap egressd-system-rules"; do
  # shellcheck disable=SC2086
  if [[ -z "$(obj central $kind_name)" ]]; then
    ok "central: no $kind_name"
  else
    fail "central: has $kind_name"
  fi
done
# By exact name: obj's hash-suffix match would take egressd-gateway for it.
if [[ "$(jq '[.items[] | select(.kind == "ServiceAccount" and .metadata.name == "egressd")] | length' "$work/central.json")" == 0 ]]; then
  ok "central: no ServiceAccount egressd (nothing runs egressd in the cluster)"
else
  fail "central: has ServiceAccount egressd"
fi
if [[ "$(jq '[.items[] | select(.kind == "DaemonSet")] | length' "$work/central.json")" == 0 ]]; then
  ok "central: no DaemonSet at all"
else
  fail "central: renders a DaemonSet: $(jq -c '[.items[] | select(.kind == "DaemonSet") | .metadata.name]' "$work/central.json")"
fi
for kind_name in "CustomResourceDefinition egressrulesets.zalando.org" "ClusterRole egress-controller" \
  "MutatingWebhookConfiguration egressd-inject" "Service egressd-webhook" "ServiceAccount egressd-gateway" \
  "Secret egressd-gateway-token" "ClusterRoleBinding egressd-gateway" "RoleBinding egressd-gateway-lease"; do
  # shellcheck disable=SC2086
  if [[ -n "$(obj central $kind_name)" ]]; then
    ok "central has $kind_name"
  else
    fail "central lacks $kind_name"
  fi
done
got="$(obj central Deployment egress-controller | jq -r '.spec.template.spec.containers[0].command | join(" ")')"
if [[ "$got" == "egress-controller --in-cluster --log-format=json --rules-dir=/var/lib/egressd/rules.d --lease-namespace=egressd-system --lease-name=egress-controller-status --identity=\$(POD_NAME)" ]] &&
  [[ "$(obj central Deployment egress-controller | jq -r '.spec.template.spec | .serviceAccountName + " " + (.automountServiceAccountToken | tostring)')" == "egress-controller true" ]]; then
  ok "central: Deployment egress-controller writes status under the Lease egress-controller-status"
else
  fail "central: Deployment egress-controller: '$got'"
fi
# The injected proxy URL is the one written in patch-gateway.yaml, and no
# per-node address is injected.
want_url="$(sed -n 's/^  - --inject-proxy-url=//p' "$deploy/overlays/central-gateway/patch-gateway.yaml")"
webhook_cmd() { obj "$1" Deployment egressd-webhook | jq -r '.spec.template.spec.containers[0].command[]'; }
if [[ -n "$want_url" && "$want_url" != *EGRESSD_NODE_IP* ]] &&
  [[ "$(webhook_cmd central | grep -c '^--inject-proxy-url=')" == 1 ]] &&
  webhook_cmd central | grep -qxF -- "--inject-proxy-url=$want_url" &&
  webhook_cmd central | grep -qx -- '--inject-node-ip-env=' &&
  webhook_cmd central | grep -qx -- '--webhook-listen=0.0.0.0:9443'; then
  ok "central: the webhook injects $want_url (patch-gateway.yaml), no node address"
else
  fail "central: webhook command: $(webhook_cmd central | tr '\n' ' ')"
fi
if webhook_cmd overlay | grep -qxF -- '--inject-proxy-url=http://$$(EGRESSD_NODE_IP):3128'; then
  ok "node-local: the webhook still injects the node's own proxy"
else
  fail "node-local: webhook command: $(webhook_cmd overlay | tr '\n' ' ')"
fi

step "egressd --check-config on the egressd.toml of the rendered ConfigMap"
if [[ ! -x "$egressd" ]]; then
  fail "no egressd binary at $egressd (build the egressd target; EGRESSD_BIN)"
else
  obj overlay ConfigMap egressd-config | jq -j '.data["egressd.toml"] // empty' > "$work/egressd.toml"
  if [[ -s "$work/egressd.toml" ]] && cmp -s "$work/egressd.toml" "$deploy/base/egressd.toml"; then
    ok "ConfigMap egressd-config holds deploy/base/egressd.toml"
  else
    fail "ConfigMap egressd-config does not hold deploy/base/egressd.toml"
  fi
  # dns.upstreams_from is the node's resolv.conf (a hostPath mount): here a
  # node-like one stands in for it. No documentation-address warning: the shipped file names no
  # such address.
  printf 'search example.internal\nnameserver 10.0.0.2\noptions edns0\n' > "$work/node-resolv.conf"
  sed -e "s#\"/etc/egressd/node-resolv.conf\"#\"$work/node-resolv.conf\"#" "$work/egressd.toml" > "$work/node.toml"
  if grep -q '^upstreams_from = "/etc/egressd/node-resolv.conf"' "$work/egressd.toml" &&
    "$egressd" --check-config --config "$work/node.toml" > "$work/check.out" 2>&1 &&
    grep -q 'configuration valid (mode enforce)' "$work/check.out" && ! grep -q 'documentation address' "$work/check.out"; then
    ok "egressd --check-config, no documentation-address warning: $(tail -1 "$work/check.out")"
  else
    fail "egressd --check-config: $(cat "$work/check.out")"
  fi
  # The same file with the two rules dirs pointing at a copy of what the pod
  # mounts: the ConfigMap's system rule sets must load and be in force.
  mkdir -p "$work/pod/system.d" "$work/pod/rules.d"
  printf '%s\n' "$sysrules" > "$work/pod/system.d/system-bootstrap.yaml"
  sed -e "s#\"/etc/egressd/system.d\"#\"$work/pod/system.d\"#g" \
    -e "s#\"/var/lib/egressd/rules.d\"#\"$work/pod/rules.d\"#g" "$work/node.toml" > "$work/pod.toml"
  want_sets="$(grep -c '^kind: EgressRuleSet' "$src/examples/rules/system-bootstrap.yaml")"
  if "$egressd" --check-config --config "$work/pod.toml" > "$work/pod.out" 2>&1 &&
    grep -q " $want_sets rule sets in force" "$work/pod.out" && ! grep -q 'rejected' "$work/pod.out"; then
    ok "system rules as mounted: $(tail -1 "$work/pod.out")"
  else
    fail "system rules as mounted (want $want_sets rule sets in force): $(cat "$work/pod.out")"
  fi
  # A broken copy must be refused: the check above can fail.
  # (dns.listen, the first listen key, as its first address alone)
  sed '0,/^listen = \[/s/^listen = \["\([^"]*\)".*\]$/listen = "\1"/' "$work/egressd.toml" > "$work/bad.toml"
  if ! cmp -s "$work/egressd.toml" "$work/bad.toml" &&
    ! "$egressd" --check-config --config "$work/bad.toml" > "$work/bad.out" 2>&1 &&
    grep -q 'dns.listen' "$work/bad.out"; then
    ok "a broken copy is refused: $(head -1 "$work/bad.out")"
  else
    fail "a broken copy (listen as a string) was not refused: $(cat "$work/bad.out")"
  fi
  kc create --dry-run=client -o json -f "$deploy/uninstall/daemonset.yaml" 2> /dev/null | tolist |
    jq -r '[.items[] | select(.kind == "ConfigMap")][0].data["egressd.toml"] // empty' > "$work/uninstall.toml"
  if [[ -s "$work/uninstall.toml" ]] &&
    "$egressd" --check-config --config "$work/uninstall.toml" > "$work/uninstall.out" 2>&1; then
    ok "deploy/uninstall config is valid: $(tail -1 "$work/uninstall.out")"
  else
    fail "deploy/uninstall config: $(cat "$work/uninstall.out" 2> /dev/null)"
  fi
fi

step "DNS wiring: the kube-dns take-over by default, the link-local address as the other overlay"
toml_of() { obj "$1" ConfigMap egressd-config | jq -j '.data["egressd.toml"] // empty'; }
key_of() { sed -n "/^\\[dns\\]\$/,/^\\[/s/^$2 = //p" <(toml_of "$1"); } # NAME KEY: the [dns] value as written
init_of() { obj "$1" DaemonSet egressd | jq -c '.spec.template.spec.initContainers[0] | {name, command, env, mounts: [.volumeMounts[].name]}'; }
dns_case() { # NAME LISTEN INTERCEPT CLUSTER_UPSTREAMS ADDRESSES
  local got
  got="$(key_of "$1" listen)|$(key_of "$1" intercept)|$(key_of "$1" cluster_upstreams)"
  if [[ "$got" == "$2|$3|$4" ]]; then
    ok "$1: dns.listen $2, dns.intercept ${3:-(none)}, dns.cluster_upstreams $4"
  else
    fail "$1: dns.listen|intercept|cluster_upstreams = $got, want $2|$3|$4"
  fi
  got="$(init_of "$1")"
  if [[ "$got" == '{"name":"node-dns","command":["/bin/sh","/etc/egressd/node-dns/node-dns.sh","add"],"env":[{"name":"EGRESSD_DNS_ADDRESSES","value":"'"$5"'"}],"mounts":["node-dns"]}' ]]; then
    ok "$1: the init container puts $5 on the node with node-dns.sh"
  else
    fail "$1: init container: $got"
  fi
  local cm
  cm="$(obj "$1" ConfigMap egressd-node-dns | jq -r .metadata.name)"
  if [[ "$(obj "$1" DaemonSet egressd | jq -r '.spec.template.spec.volumes[] | select(.name == "node-dns") | .configMap.name')" == "$cm" ]] &&
    cmp -s <(obj "$1" ConfigMap egressd-node-dns | jq -j '.data["node-dns.sh"]') "$deploy/node-dns/node-dns.sh"; then
    ok "$1: ConfigMap $cm holds deploy/node-dns/node-dns.sh, mounted by the DaemonSet"
  else
    fail "$1: ConfigMap egressd-node-dns ($cm) is not deploy/node-dns/node-dns.sh or not mounted"
  fi
}
dns_case overlay '["10.96.0.10:53", "127.0.0.1:53"]' '["10.96.0.10:53"]' '["10.96.0.10:53"]' 10.96.0.10
dns_case linklocal '["169.254.20.11:53"]' '' '["10.96.0.10:53"]' 169.254.20.11
if cmp -s <(toml_of linklocal) "$deploy/overlays/node-local-link-local/egressd.toml"; then
  ok "linklocal: ConfigMap egressd-config holds its own egressd.toml (replacing the base's)"
else
  fail "linklocal: ConfigMap egressd-config is not deploy/overlays/node-local-link-local/egressd.toml"
fi
# Outside their comment headers, the two files differ only in the [dns] table.
body() { sed -n '/^mode = /,$p' "$1" | sed '/^\[dns\]$/,/^\[/{/^\[dns\]$/!{/^\[/!d}}'; }
if diff <(body "$deploy/base/egressd.toml") <(body "$deploy/overlays/node-local-link-local/egressd.toml") > "$work/toml.diff"; then
  ok "the link-local egressd.toml differs from the base's only in [dns]"
else
  fail "the link-local egressd.toml differs outside [dns]: $(cat "$work/toml.diff")"
fi
if [[ -x "$egressd" ]]; then
  toml_of linklocal | sed -e "s#\"/etc/egressd/node-resolv.conf\"#\"$work/node-resolv.conf\"#" > "$work/linklocal.toml"
  if "$egressd" --check-config --config "$work/linklocal.toml" > "$work/linklocal.out" 2>&1; then
    ok "linklocal: egressd --check-config: $(tail -1 "$work/linklocal.out")"
  else
    fail "linklocal: egressd --check-config: $(cat "$work/linklocal.out")"
  fi
fi
got="$(obj uninstall DaemonSet egressd-uninstall | jq -r '.spec.template.spec.initContainers[0].command | join(" ")')"
if [[ "$got" == *"egressd --uninstall --config /etc/egressd/egressd.toml"* && "$got" == *"node-dns.sh remove"* ]] &&
  [[ "$(obj uninstall ConfigMap egressd-node-dns | jq -r .metadata.name)" == "$(obj overlay ConfigMap egressd-node-dns | jq -r .metadata.name)" ]] &&
  [[ "$(obj uninstall DaemonSet egressd-uninstall | jq -r '.spec.template.spec.volumes[] | select(.name == "node-dns") | .configMap.name')" == "$(obj overlay ConfigMap egressd-node-dns | jq -r .metadata.name)" ]]; then
  ok "uninstall: egressd --uninstall, then node-dns.sh remove from the install's own ConfigMap"
else
  fail "uninstall: init container '$got' or its node-dns ConfigMap differs from the install's"
fi

step "the CRD and the namespace, applied for real"
if kc apply -k "$deploy/crd" > "$work/crd.out" 2>&1 &&
  kc wait --for=condition=Established --timeout=60s crd/egressrulesets.zalando.org > /dev/null 2>&1; then
  ok "CRD applied from deploy/crd (kustomize) and Established"
else
  fatal "CRD: $(cat "$work/crd.out")"
fi
for ((i = 0; i < 30; i++)); do
  kc api-resources --api-group=zalando.org 2> /dev/null | grep -q '^egressrulesets' && break
  sleep 1
done
if kc apply -f "$deploy/base/namespace.yaml" > "$work/ns.out" 2>&1; then
  ok "namespace: $(cat "$work/ns.out")"
else
  fatal "namespace: $(cat "$work/ns.out")"
fi

step "kubectl apply --dry-run=server -k"
for dir in base overlays/node-local overlays/node-local-link-local overlays/central-gateway uninstall; do
  if kc apply --dry-run=server -k "$deploy/$dir" > "$work/dry-k.out" 2>&1; then
    ok "deploy/$dir: $(grep -c 'server dry run' "$work/dry-k.out") objects"
  else
    fail "deploy/$dir: $(cat "$work/dry-k.out")"
  fi
done

step "kubectl apply --dry-run=server -f of every plain YAML file under deploy/"
# Files of cert-manager kinds need its CRDs, which this control plane does
# not have (components/webhook-cert-manager; k8s.webhook renders it).
# deploy/aws/ holds CloudFormation, not Kubernetes objects (deploy.aws_lint).
mapfile -t files < <(find "$deploy" -path "$deploy/aws" -prune -o -type f \( -name '*.yaml' -o -name '*.yml' \) \
  ! -name kustomization.yaml ! -name kustomization.yml ! -name 'patch-*.yaml' -print0 |
  xargs -0 grep -L '^apiVersion: cert-manager.io/' | sort)
if ((${#files[@]} >= 8)); then
  ok "${#files[@]} plain YAML files"
else
  fail "only ${#files[@]} plain YAML files found under deploy/: ${files[*]}"
fi
for f in "${files[@]}"; do
  if kc apply --dry-run=server -f "$f" > "$work/dry.out" 2>&1; then
    ok "${f#"$src"/}: $(tr '\n' ' ' < "$work/dry.out")"
  else
    fail "${f#"$src"/}: $(cat "$work/dry.out")"
  fi
done

step "apply the node-local overlay for real; the DaemonSet as stored"
if kc apply -k "$deploy/overlays/node-local" > "$work/apply.out" 2>&1; then
  ok "applied: $(grep -c . "$work/apply.out") objects"
else
  fail "kubectl apply -k overlays/node-local: $(cat "$work/apply.out")"
fi
kc -n "$ns" get ds egressd -o json > "$work/ds.json" 2> "$work/ds.err" || fail "get ds: $(cat "$work/ds.err")"
check_ds() { # DESCRIPTION JQ-EXPRESSION (must print true)
  if [[ "$(jq -r "$2" "$work/ds.json" 2>&1)" == true ]]; then
    ok "DaemonSet: $1"
  else
    fail "DaemonSet: $1 (jq: $2)"
  fi
}
pod='.spec.template.spec'
c_egressd="$pod.containers[] | select(.name == \"egressd\")"
c_ctrl="$pod.containers[] | select(.name == \"controller\")"
check_ds "hostNetwork, dnsPolicy ClusterFirstWithHostNet" \
  "$pod.hostNetwork == true and $pod.dnsPolicy == \"ClusterFirstWithHostNet\""
check_ds "runs on every node (tolerates every taint)" \
  "any($pod.tolerations[]; .operator == \"Exists\" and (.key // \"\") == \"\" and (.effect // \"\") == \"\")"
check_ds "RollingUpdate, maxUnavailable 1" \
  '.spec.updateStrategy.type == "RollingUpdate" and .spec.updateStrategy.rollingUpdate.maxUnavailable == 1'
check_ds "terminationGracePeriodSeconds set" "$pod.terminationGracePeriodSeconds >= 10"
check_ds "egressd: capabilities drop ALL, add exactly NET_ADMIN NET_RAW NET_BIND_SERVICE BPF PERFMON, no privilege" \
  "[$c_egressd | .securityContext | (.capabilities.drop == [\"ALL\"]) and ((.capabilities.add | sort) == [\"BPF\", \"NET_ADMIN\", \"NET_BIND_SERVICE\", \"NET_RAW\", \"PERFMON\"]) and (.privileged != true) and .allowPrivilegeEscalation == false] == [true]"
check_ds "controller: no capabilities, non-root" \
  "[$c_ctrl | .securityContext | (.capabilities.drop == [\"ALL\"]) and ((.capabilities.add // []) == []) and .runAsNonRoot == true] == [true]"
check_ds "egressd: readiness and liveness probes" \
  "[$c_egressd | (.readinessProbe != null) and (.livenessProbe != null)] == [true]"
check_ds "egressd: resources requests and memory limit" \
  "[$c_egressd | (.resources.requests.cpu != null) and (.resources.limits.memory != null)] == [true]"
check_ds "no token automount; the token volume is mounted in the controller only" \
  "$pod.automountServiceAccountToken == false and $pod.serviceAccountName == \"egress-controller\" and ([$c_egressd | .volumeMounts[] | select(.name == \"controller-token\" or (.mountPath | startswith(\"/var/run/secrets\")))] == []) and ([$c_ctrl | .volumeMounts[] | select(.name == \"controller-token\") | .mountPath] == [\"/var/run/secrets/kubernetes.io/serviceaccount\"])"
check_ds "rules.d: one emptyDir, written by the controller, read-only in egressd" \
  "($pod.volumes[] | select(.name == \"rules\") | .emptyDir != null) and ([$c_egressd | .volumeMounts[] | select(.name == \"rules\") | [.mountPath, .readOnly]] == [[\"/var/lib/egressd/rules.d\", true]]) and ([$c_ctrl | .volumeMounts[] | select(.name == \"rules\") | [.mountPath, (.readOnly // false)]] == [[\"/var/lib/egressd/rules.d\", false]])"
check_ds "system rules ConfigMap at /etc/egressd/system.d" \
  "[$c_egressd | .volumeMounts[] | select(.name == \"system-rules\") | .mountPath] == [\"/etc/egressd/system.d\"]"
check_ds "controller: --in-cluster, rules dir, Lease, --identity and --node-name \$(NODE_NAME) from spec.nodeName, the pod map" \
  "[$c_ctrl | (.command + (.args // [])) | join(\" \")] == [\"egress-controller --in-cluster --log-format=json --rules-dir /var/lib/egressd/rules.d --lease-namespace $ns --lease-name egress-controller-status --identity \$(NODE_NAME) --pod-map /var/lib/egressd/pods/pods.map --node-name \$(NODE_NAME)\"] and ([$c_ctrl | .env[] | select(.name == \"NODE_NAME\") | .valueFrom.fieldRef.fieldPath] == [\"spec.nodeName\"])"
version="$(sed -n 's/^project(egressd VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")"
check_ds "image localhost/egressd:$version (make image) everywhere" \
  "[$pod.initContainers[], $pod.containers[] | .image] | unique == [\"localhost/egressd:$version\"]"
# The uninstall runs where egressd ran: the egressd image is all it may need
# (offline nodes cannot pull anything else, e.g. a registry's pause).
uninstall_images="$(jq -c '[.items[] | select(.kind == "DaemonSet") | .spec.template.spec |
  (.initContainers // [])[], .containers[] | .image] | unique' "$work/uninstall.json")"
[[ "$uninstall_images" == "[\"localhost/egressd:$version\"]" ]] &&
  ok "deploy/uninstall: only the image localhost/egressd:$version, nothing else to pull" ||
  fail "deploy/uninstall needs other images: $uninstall_images"
metrics_port="$(sed -n 's/^listen = "[0-9.]*:\([0-9]*\)"$/\1/p' "$deploy/base/egressd.toml")"
check_ds "probes: GET /readyz and /healthz on 127.0.0.1:$metrics_port (metrics.listen)" \
  "[$c_egressd | .readinessProbe.httpGet, .livenessProbe.httpGet | [.host, .port, .path]] == [[\"127.0.0.1\", $metrics_port, \"/readyz\"], [\"127.0.0.1\", $metrics_port, \"/healthz\"]]"

step "RBAC: egress-controller gets what it needs and nothing more"
can() { # EXPECT(yes|no) AS ARGS...
  local want="$1" as="$2" got
  shift 2
  got="$(kc auth can-i --as="$as" "$@" 2> /dev/null)"
  if [[ "$got" == "$want" ]]; then
    ok "${as##*:} can-i $*: $got"
  else
    fail "${as##*:} can-i $*: got '$got', want $want"
  fi
}
kc create namespace team-a > /dev/null 2>&1
for verb in get list watch; do
  can yes "$controller_sa" "$verb" egressrulesets.zalando.org --all-namespaces
  can yes "$controller_sa" "$verb" egressrulesets.zalando.org -n team-a
done
can yes "$controller_sa" patch egressrulesets.zalando.org --subresource=status -n team-a
for verb in get create update; do
  can yes "$controller_sa" "$verb" leases.coordination.k8s.io -n "$ns"
  can no "$controller_sa" "$verb" leases.coordination.k8s.io -n kube-system
done
for verb in create update patch delete deletecollection; do
  can no "$controller_sa" "$verb" egressrulesets.zalando.org -n team-a
done
can no "$controller_sa" delete leases.coordination.k8s.io -n "$ns"
can no "$controller_sa" get secrets -n "$ns"
can no "$controller_sa" list secrets --all-namespaces
can no "$controller_sa" get configmaps -n "$ns"
can no "$controller_sa" create pods -n "$ns"
# Attribution: pods read (only), never changed; their owners not read at all.
for verb in get list watch; do can yes "$controller_sa" "$verb" pods --all-namespaces; done
for verb in update patch delete; do can no "$controller_sa" "$verb" pods -n team-a; done
can no "$controller_sa" list replicasets.apps --all-namespaces
can no "$controller_sa" get pods --subresource=log -n team-a
can no "$controller_sa" patch daemonsets.apps -n "$ns"

step "RBAC: the gateways' account (central-gateway) gets what the controller gets"
gateway_sa="system:serviceaccount:$ns:egressd-gateway"
if kc apply -k "$deploy/overlays/central-gateway" > "$work/apply-central.out" 2>&1; then
  ok "applied overlays/central-gateway: $(grep -c . "$work/apply-central.out") objects"
else
  fail "kubectl apply -k overlays/central-gateway: $(cat "$work/apply-central.out")"
fi
for verb in get list watch; do
  can yes "$gateway_sa" "$verb" egressrulesets.zalando.org --all-namespaces
  can yes "$gateway_sa" "$verb" pods --all-namespaces
done
can yes "$gateway_sa" patch egressrulesets.zalando.org --subresource=status -n team-a
can yes "$gateway_sa" update leases.coordination.k8s.io -n "$ns"
can no "$gateway_sa" create egressrulesets.zalando.org -n team-a
can no "$gateway_sa" get secrets -n "$ns"
can no "$gateway_sa" get leases.coordination.k8s.io -n kube-system
can no "$gateway_sa" patch deployments.apps -n "$ns"

step "RBAC: egressd's account can do nothing"
for args in "get egressrulesets.zalando.org -n team-a" "list egressrulesets.zalando.org --all-namespaces" \
  "patch egressrulesets.zalando.org --subresource=status -n team-a" "get leases.coordination.k8s.io -n $ns" \
  "get secrets -n $ns" "get configmaps -n $ns" "list pods --all-namespaces" "get nodes"; do
  # shellcheck disable=SC2086
  can no "$egressd_sa" $args
done
bound="$(kc get rolebindings,clusterrolebindings --all-namespaces -o json |
  jq -r '[.items[] | select(any(.subjects[]?; .kind == "ServiceAccount" and .name == "egressd" and .namespace == "'"$ns"'")) | .metadata.name] | join(" ")')"
if [[ -z "$bound" ]]; then
  ok "no RoleBinding or ClusterRoleBinding names ServiceAccount $ns/egressd"
else
  fail "bindings name $ns/egressd: $bound"
fi
if [[ "$(kc -n "$ns" get sa egressd -o jsonpath='{.automountServiceAccountToken}')" == false ]]; then
  ok "ServiceAccount egressd: automountServiceAccountToken false"
else
  fail "ServiceAccount egressd mounts tokens"
fi
# The controller's role is exactly the one in docs/controller.md.
rules="$(kc get clusterrole egress-controller -o json | jq -c '[.rules[] | {g: .apiGroups, r: .resources, v: (.verbs | sort)}]')"
if [[ "$rules" == '[{"g":["zalando.org"],"r":["egressrulesets"],"v":["get","list","watch"]},{"g":["zalando.org"],"r":["egressrulesets/status"],"v":["patch"]},{"g":[""],"r":["pods"],"v":["get","list","watch"]}]' ]]; then
  ok "ClusterRole egress-controller as documented: $rules"
else
  fail "ClusterRole egress-controller: $rules"
fi

echo "k8s.deploy: $passed passed, $failed failed"
((failed == 0))

#!/usr/bin/env bash
# End-to-end test of deploy/crd/ against a real kube-apiserver + etcd
# (tests/k8s/apiserver.sh): the CRD is accepted (CEL cost budget included),
# the original request's examples are accepted verbatim, invalid targets are
# refused at admission with a message that names target, index and reason,
# printer columns and the status subresource work, RBAC through a non-admin
# user, and every file in deploy/crd/ passes a server-side dry run.
#
# Builds the pinned binaries first if they are not cached (tests/k8s/build.sh;
# the first build takes tens of minutes). Exits 77 (ctest: skipped) only when
# neither cached binaries nor a Go toolchain exist.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="${EGRESSD_SOURCE_DIR:-$(cd "$here/../.." && pwd)}"
crd="$src/deploy/crd/egressrulesets.yaml"

# shellcheck source=lib.sh
source "$here/lib.sh"
k8s_test_init k8s.crd
k8s_start_control_plane

step "versions: client and server are the pinned release"
# shellcheck source=versions.env
source "$here/versions.env"
if kc version -o json > "$work/version.json" 2> "$work/version.err" &&
  grep -q "\"gitVersion\": \"$KUBE_VERSION\"" "$work/version.json" &&
  [[ "$(grep -c "\"gitVersion\": \"$KUBE_VERSION\"" "$work/version.json")" == 2 ]]; then
  ok "kubectl and kube-apiserver report $KUBE_VERSION"
else
  fail "kubectl version does not report $KUBE_VERSION twice: $(cat "$work/version.json" "$work/version.err")"
fi
if "$EGRESSD_K8S_BIN/etcdctl" --endpoints "$EGRESSD_K8S_ETCD" endpoint status -w simple > "$work/etcd.txt" 2>&1 &&
  grep -q "${ETCD_VERSION#v}" "$work/etcd.txt"; then
  ok "etcdctl talks to etcd ${ETCD_VERSION}"
else
  fail "etcdctl endpoint status: $(cat "$work/etcd.txt")"
fi

step "apply the CRD and wait for Established"
if kc apply -f "$crd" > "$work/crd.out" 2>&1; then
  ok "CRD accepted (schema and CEL cost within budget): $(cat "$work/crd.out")"
else
  fatal "CRD refused by kube-apiserver: $(cat "$work/crd.out")"
fi
if kc wait --for=condition=Established --timeout=60s crd/egressrulesets.zalando.org > /dev/null 2>&1; then
  ok "egressrulesets.zalando.org is Established"
else
  fatal "CRD not Established: $(kc get crd egressrulesets.zalando.org -o jsonpath='{.status.conditions}')"
fi
names="$(kc get crd egressrulesets.zalando.org -o jsonpath='{.spec.names.kind} {.spec.names.plural} {.spec.names.singular} {.spec.names.shortNames} {.spec.scope}')"
if [[ "$names" == 'EgressRuleSet egressrulesets egressruleset ["ers"] Namespaced' ]]; then
  ok "names and scope: $names"
else
  fail "names and scope: got '$names'"
fi
# Discovery can lag behind Established for a moment.
for ((i = 0; i < 30; i++)); do
  kc api-resources --api-group=zalando.org 2> /dev/null | grep -q '^egressrulesets' && break
  sleep 1
done

step "the original request's two examples, verbatim, are accepted"
orig="$here/testdata/original-examples.yaml"
mission="$src/../shared/design/MISSION.md"
if [[ -f "$mission" ]]; then
  if diff <(awk '/^```yaml$/{f=1;next} /^```$/{if(f){exit}} f' "$mission") "$orig" > "$work/diff" 2>&1; then
    ok "testdata/original-examples.yaml is byte-for-byte the YAML of MISSION.md"
  else
    fail "testdata/original-examples.yaml differs from MISSION.md: $(cat "$work/diff")"
  fi
fi
kc create namespace team-a > /dev/null
if kc -n team-a apply -f "$orig" > "$work/orig.out" 2>&1; then
  ok "applied: $(tr '\n' ' ' < "$work/orig.out")"
else
  fail "original examples refused: $(cat "$work/orig.out")"
fi
got="$(kc -n team-a get egressruleset my-app-targets -o jsonpath='{.spec.targets}' 2>&1)"
if [[ "$got" == '["mydependency1.example.com:443","mydependency2.example.com:443","*.example.org:80"]' ]]; then
  ok "my-app-targets stored as written: $got"
else
  fail "my-app-targets stored as $got"
fi

step "every valid form of docs/rules.md is accepted"
valid=(
  api.example.com:443 "*.example.org:80" "*:80" 203.0.113.7:443 "[2001:db8::1]:443"
  203.0.113.0/24:443 "[2001:db8::/32]:443" API.Example.COM:443 api.example.com.:443
  xn--bcher-kva.example:443 a-b.example.com:65535 x.example.com:1 "*.sts.amazonaws.com:443"
  10.0.0.0/8:443 "[2001:db8::]:8443" "*.example.co.uk:443"
  "$(printf 'a%.0s' {1..63}).$(printf 'b%.0s' {1..63}).$(printf 'c%.0s' {1..63}).$(printf 'd%.0s' {1..53}).example:443"
)
{
  echo "apiVersion: zalando.org/v1"
  echo "kind: EgressRuleSet"
  echo "metadata: {name: all-valid-forms, namespace: team-a}"
  echo "spec:"
  echo "  targets:"
  for t in "${valid[@]}"; do echo "  - \"$t\""; done
} > "$work/valid.yaml"
if kc apply -f "$work/valid.yaml" > "$work/valid.out" 2>&1; then
  ok "${#valid[@]} valid targets accepted: ${valid[*]}"
else
  fail "valid targets refused: $(cat "$work/valid.out")"
fi

step "invalid targets are refused at admission with a clear message"
# target | text the message must contain
invalid=(
  'api.example.com:*|port wildcards are not allowed'
  '*:*|port wildcards are not allowed'
  '*.com:443|wildcard directly over a public suffix'
  '*.co.uk:443|wildcard directly over a public suffix'
  '*.IO:443|wildcard directly over a public suffix'
  'api.example.com|missing port'
  'api.example.com:|missing port'
  '[2001:db8::1]|missing port'
  'a*.x.com:443|a wildcard is only allowed as the whole first label'
  'x.*.com:443|a wildcard is only allowed as the whole first label'
  '*.*.example.com:443|a wildcard is only allowed as the whole first label'
  'api.example.com:0|port must be one number from 1 to 65535'
  'api.example.com:65536|port must be one number from 1 to 65535'
  'api.example.com:https|port must be one number from 1 to 65535'
  'api.example.com:0443|port must be one number from 1 to 65535'
  ' api.example.com:443|whitespace'
  'api.example.com :443|whitespace'
  'api_x.example.com:443|invalid character'
  'bücher.example:443|invalid character'
  '2001:db8::1:443|IPv6 addresses must be in brackets'
  'a..b.example.com:443|invalid host name'
  '-a.example.com:443|invalid host name'
  'example.123:443|invalid host name'
  "$(printf 'a%.0s' {1..64}).example.com:443|invalid host name"
  "$(printf 'a%.0s' {1..63}).$(printf 'b%.0s' {1..63}).$(printf 'c%.0s' {1..63}).$(printf 'd%.0s' {1..54}).example:443|invalid host name"
  '300.1.2.3:443|invalid IPv4 address'
  '203.0.113.7/24:443|invalid IPv4 network'
  '[2001:db8::1/32]:443|brackets hold an IPv6 address or network'
  '[203.0.113.7]:443|brackets hold an IPv6 address or network'
)
n=0
for entry in "${invalid[@]}"; do
  target="${entry%%|*}"
  want="${entry#*|}"
  n=$((n + 1))
  name="invalid-$n"
  cat > "$work/$name.yaml" << EOF
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: $name, namespace: team-a}
spec:
  targets:
  - ok.example.com:443
  - "$target"
EOF
  if kc apply -f "$work/$name.yaml" > "$work/$name.out" 2>&1; then
    fail "'$target' was accepted; expected: $want"
    continue
  fi
  msg="$(cat "$work/$name.out")"
  # One message for the target, at index 1, naming it and the reason.
  count="$(grep -o 'spec.targets\[[0-9]*\]' <<< "$msg" | wc -l)"
  if [[ "$msg" == *"spec.targets[1]"* && "$msg" == *"target \"$target\""* && "$msg" == *"$want"* &&
    "$count" == 1 && "$msg" != *"spec.targets[0]"* ]]; then
    ok "'$target' refused: ${msg#*spec.targets\[1\]: }"
  else
    fail "'$target': expected one message at spec.targets[1] with '$want', got: $msg"
  fi
done
msg="$(cat "$work/invalid-3.out")"
if [[ "$msg" == *"Accepted=False"* && "$msg" == *'use "*:443"'* ]]; then
  ok "public-suffix message points to *:PORT and to the controller's Accepted=False"
else
  fail "public-suffix message lacks the hint: $msg"
fi
if ! kc -n team-a get ers -o name | grep -q invalid-; then
  ok "no refused rule set was stored"
else
  fail "refused rule sets were stored: $(kc -n team-a get ers -o name)"
fi
# Schema limits outside CEL.
printf 'apiVersion: zalando.org/v1\nkind: EgressRuleSet\nmetadata: {name: empty, namespace: team-a}\nspec: {targets: []}\n' > "$work/empty.yaml"
if ! kc apply -f "$work/empty.yaml" > "$work/empty.out" 2>&1 && grep -q 'spec.targets' "$work/empty.out"; then
  ok "an empty target list is refused: $(cat "$work/empty.out")"
else
  fail "empty target list: $(cat "$work/empty.out")"
fi
printf 'apiVersion: zalando.org/v1\nkind: EgressRuleSet\nmetadata: {name: nospec, namespace: team-a}\n' > "$work/nospec.yaml"
if ! kc apply -f "$work/nospec.yaml" > "$work/nospec.out" 2>&1 && grep -q 'spec' "$work/nospec.out"; then
  ok "a rule set without spec is refused"
else
  fail "rule set without spec: $(cat "$work/nospec.out")"
fi

step "a maximal rule set (1000 targets of maximal length) fits the runtime CEL budget"
label63="$(printf 'a%.0s' {1..63})"
long="$label63.$label63.$label63.$(printf 'b%.0s' {1..53}).example" # 253 bytes
[[ ${#long} == 253 ]] || fatal "test bug: long name has ${#long} bytes"
{
  echo "apiVersion: zalando.org/v1"
  echo "kind: EgressRuleSet"
  echo "metadata: {name: maximal, namespace: team-a}"
  echo "spec:"
  echo "  targets:"
  for ((i = 0; i < 1000; i++)); do echo "  - \"*.$long.:$((10000 + i))\""; done
} > "$work/maximal.yaml"
# create, not apply: apply's last-applied annotation would pass the 256 KiB
# annotation limit before CEL is even reached.
if kc create -f "$work/maximal.yaml" > "$work/maximal.out" 2>&1; then
  ok "1000 targets '*.<${#long}-byte name>.:PORT' accepted"
else
  fail "maximal rule set refused: $(head -c 2000 "$work/maximal.out")"
fi
sed -i 's/name: maximal/name: too-many/' "$work/maximal.yaml"
echo "  - \"*.$long.:443\"" >> "$work/maximal.yaml"
if ! kc create -f "$work/maximal.yaml" > "$work/too-many.out" 2>&1 &&
  grep -q 'must have at most 1000 items' "$work/too-many.out"; then
  ok "1001 targets refused: $(grep -o 'spec.targets: Too many[^.]*' "$work/too-many.out" | head -1)"
else
  fail "1001 targets: $(head -c 2000 "$work/too-many.out")"
fi

step "status subresource and printer columns"
now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
status='{"status":{"observedGeneration":1,"targetCount":3,"targetsInForce":3,"conditions":[{"type":"Accepted","status":"True","reason":"Valid","message":"3 targets in force","lastTransitionTime":"'"$now"'","observedGeneration":1}]}}'
if kc -n team-a patch ers my-app-targets --subresource=status --type=merge -p "$status" > "$work/patch.out" 2>&1; then
  ok "status written through the status subresource"
else
  fail "status patch: $(cat "$work/patch.out")"
fi
kc -n team-a patch ers world-access --type=merge -p '{"status":{"targetCount":99}}' > /dev/null 2>&1
if [[ -z "$(kc -n team-a get ers world-access -o jsonpath='{.status.targetCount}')" ]]; then
  ok "status in a main-resource patch is ignored (subresource enabled)"
else
  fail "status was written through the main resource"
fi
bad='{"status":{"conditions":[{"type":"Accepted","status":"Maybe","reason":"x","message":"","lastTransitionTime":"'"$now"'"}]}}'
if ! kc -n team-a patch ers world-access --subresource=status --type=merge -p "$bad" > "$work/bad.out" 2>&1 &&
  grep -q 'status.conditions\[0\].status' "$work/bad.out"; then
  ok "condition status outside True/False/Unknown refused"
else
  fail "bad condition status: $(cat "$work/bad.out")"
fi
kc -n team-a get egressrulesets > "$work/get.txt" 2>&1
sed 's/^/    /' "$work/get.txt"
header="$(head -1 "$work/get.txt" | tr -s ' ')"
if [[ "$header" == "NAME TARGETS IN FORCE ACCEPTED WORLD AGE" ]]; then
  ok "columns: $header"
else
  fail "columns: expected 'NAME TARGETS IN FORCE ACCEPTED WORLD AGE', got '$header'"
fi
row="$(grep '^my-app-targets ' "$work/get.txt" | tr -s ' ' | cut -d' ' -f1-4)"
if [[ "$row" == "my-app-targets 3 3 True" ]]; then
  ok "row from status: $row"
else
  fail "row for my-app-targets: '$row'"
fi
wide="$(kc -n team-a get ers my-app-targets -o wide | tr -s ' ')"
if [[ "$wide" == *"REASON"* && "$wide" == *"Valid"* ]]; then
  ok "short name ers and -o wide Reason column work"
else
  fail "kubectl get ers -o wide: $wide"
fi

step "RBAC through a non-admin user (apiserver.sh user)"
kc create clusterrole egressruleset-reader --verb=get,list,watch --resource=egressrulesets.zalando.org > /dev/null
if userkc="$("$here/apiserver.sh" user "$EGRESSD_K8S_DIR" reader egressruleset-reader)"; then
  if kc --kubeconfig "$userkc" -n team-a get ers -o name > "$work/user.out" 2>&1 &&
    grep -q my-app-targets "$work/user.out"; then
    ok "reader can list rule sets"
  else
    fail "reader cannot list: $(cat "$work/user.out")"
  fi
  if ! kc --kubeconfig "$userkc" -n team-a delete ers world-access > "$work/user-del.out" 2>&1 &&
    grep -q -i forbidden "$work/user-del.out"; then
    ok "reader cannot delete (Forbidden)"
  else
    fail "reader delete: $(cat "$work/user-del.out")"
  fi
else
  fail "apiserver.sh user failed"
fi

step "server-side dry run of every file in deploy/crd/ and examples/rules/"
shopt -s nullglob
files=("$src"/deploy/crd/*.yaml "$src"/deploy/crd/*.yml "$src"/examples/rules/*.yaml)
for f in "${files[@]}"; do
  # kustomization.yaml is kustomize's input, not an object (deploy_test.sh
  # renders and dry-runs the kustomizations).
  case "$(basename "$f")" in kustomization.yaml | kustomization.yml) continue ;; esac
  # Objects without a namespace go to "default"; kube-system exists too.
  if kc apply --dry-run=server -f "$f" > "$work/dry.out" 2>&1; then
    ok "${f#"$src"/}: $(tr '\n' ' ' < "$work/dry.out")"
  else
    fail "${f#"$src"/}: $(cat "$work/dry.out")"
  fi
done

echo "$k8s_test_name: $passed passed, $failed failed"
((failed == 0))

#!/usr/bin/env bash
# Who may open the cluster's egress (docs/governance.md), against a real
# kube-apiserver + etcd (tests/k8s/apiserver.sh), impersonating people with
# `kubectl --as USER [--as-group GROUP]`:
#   - every new manifest (people's roles, the admission policy, both
#     components) passes `kubectl apply --dry-run=server`;
#   - a namespace admin (built-in `admin` role through a RoleBinding) reads
#     rule sets but cannot create one; with egressrulesets-editor bound, or
#     with components/editor-aggregation, they can;
#   - rule sets that exist before the policy is installed are not touched by
#     installing it, and can still be edited;
#   - audit mode (the shipped binding, [Audit, Warn]): a world-access rule
#     set of an editor gets the policy's warning in kubectl's output and is
#     stored;
#   - deny mode (components/world-access-deny): `*:80` and internal ranges
#     from an editor are refused with the policy's message; the same request
#     from a member of the approvers group, or in the approved namespace, is
#     accepted; the ConfigMap's values are what counts;
#   - egress-controller marks world access in status (WORLD column);
#   - removing the policy restores the old behaviour.
#
# Aggregation into the built-in roles is the job of kube-controller-manager's
# ClusterRole aggregation controller, which this harness does not run. The
# test does that controller's copy step itself (aggregate_builtin_roles):
# the API server selects the ClusterRoles with each built-in role's own
# aggregationRule selectors, the test writes the union of their rules into
# the built-in role, exactly what the controller does. The step is shown to
# matter: without it the namespace admin can do nothing at all.
#
# Needs jq, and egress-controller in $EGRESSD_BIN (set by ctest; default
# build/bin). Exits 77 (ctest: skipped) only when neither cached
# control-plane binaries nor a Go toolchain to build them exist.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="${EGRESSD_SOURCE_DIR:-$(cd "$here/../.." && pwd)}"
deploy="$src/deploy"
controller="${EGRESSD_BIN:-$src/build/bin}/egress-controller"
policy="$deploy/base/world-access-policy.yaml"

# shellcheck source=lib.sh
source "$here/lib.sh"
k8s_test_init k8s.governance

command -v jq > /dev/null || fatal "jq is not installed"
[[ -x "$controller" ]] || fatal "no egress-controller at $controller (build it; EGRESSD_BIN)"

controller_pid=
on_cleanup() {
  if [[ -n "$controller_pid" ]]; then
    kill -TERM "$controller_pid" 2> /dev/null || true
    wait "$controller_pid" 2> /dev/null || true
  fi
  if ((failed > 0)) && [[ -f "$work/controller.log" ]]; then
    echo "--- last lines of the controller's log"
    tail -n 20 "$work/controller.log"
  fi
}

k8s_start_control_plane

# --- helpers ------------------------------------------------------------
# Writes an EgressRuleSet manifest and prints its path, for
#   kubectl create -f "$(ers NAME TARGET...)"
ers() {
  local name="$1" t f
  shift
  f="$work/manifests/$name.yaml"
  mkdir -p "$work/manifests"
  {
    printf 'apiVersion: zalando.org/v1\nkind: EgressRuleSet\nmetadata:\n  name: %s\nspec:\n  targets:\n' "$name"
    for t in "$@"; do printf '  - "%s"\n' "$t"; done
  } > "$f"
  echo "$f"
}
# Runs a command, its output (stdout and stderr) in $work/out.
run() { "$@" > "$work/out" 2>&1; }
out() { tr '\n' ' ' < "$work/out" | head -c 600; }
# accepted DESCRIPTION COMMAND...: the command succeeds.
accepted() {
  if run "${@:2}"; then ok "$1: $(out)"; else fail "$1: $(out)"; fi
}
# refused DESCRIPTION PATTERN COMMAND...: the command fails, saying PATTERN.
refused() {
  if ! run "${@:3}" && grep -q -- "$2" "$work/out"; then
    ok "$1: $(out)"
  else
    fail "$1 (want a refusal saying '$2'): $(out)"
  fi
}
# can EXPECT(yes|no) USER ARGS...: kubectl auth can-i --as USER ARGS.
can() {
  local want="$1" user="$2" got
  shift 2
  got="$(kc auth can-i --as="$user" "$@" 2> /dev/null)"
  if [[ "$got" == "$want" ]]; then
    ok "$user can-i $*: $got"
  else
    fail "$user can-i $*: got '$got', want $want"
  fi
}
stored() { kc -n "$1" get ers "$2" > /dev/null 2>&1; }
# The policy as the API server applies it, probed with a server-side dry run
# of a world-access rule set by carol (an editor in team-a, no approver):
# deny (refused), warn (stored with a warning) or off (stored silently).
policy_mode() {
  kc --as carol -n team-a create --dry-run=server -f "$(ers probe '*:80')" > "$work/probe" 2>&1
  local rc=$?
  if ((rc != 0)) && grep -q 'opens world access' "$work/probe"; then
    echo deny
  elif ((rc == 0)) && grep -q 'Warning: Validation failed' "$work/probe"; then
    echo warn
  elif ((rc == 0)) && ! grep -q -i warning "$work/probe"; then
    echo off
  else
    echo "other: $(tr '\n' ' ' < "$work/probe")"
  fi
}
# Policies and bindings reach the admission plugin through an informer:
# wait (at most 30 s) until the mode is the one wanted.
wait_mode() { # MODE
  local i mode
  for ((i = 0; i < 60; i++)); do
    mode="$(policy_mode)"
    [[ "$mode" == "$1" ]] && break
    sleep 0.5
  done
  if [[ "$mode" == "$1" ]]; then
    ok "policy in effect: $1 (after about $((i / 2)) s)"
  else
    fatal "policy mode: want $1, got $mode"
  fi
}
# kube-controller-manager's ClusterRole aggregation, done here (see the
# header): for view, edit and admin, the rules of every ClusterRole their
# own aggregationRule selects (by name, duplicates dropped), repeated until
# nothing changes (admin aggregates edit, which aggregates view).
aggregate_builtin_roles() {
  local pass role changed selectors s rules
  for ((pass = 0; pass < 5; pass++)); do
    changed=0
    for role in view edit admin; do
      selectors="$(kc get clusterrole "$role" -o json |
        jq -r '.aggregationRule.clusterRoleSelectors[].matchLabels | to_entries | map("\(.key)=\(.value)") | join(",")')"
      rules="$(for s in $selectors; do kc get clusterroles -l "$s" -o json; done |
        jq -s -c --arg self "$role" '[.[].items[] | select(.metadata.name != $self)] | unique_by(.metadata.name)
          | [.[].rules[]?] | reduce .[] as $r ([]; if any(.[]; . == $r) then . else . + [$r] end)')"
      if [[ "$(kc get clusterrole "$role" -o json | jq -c '.rules // []')" != "$rules" ]]; then
        kc patch clusterrole "$role" --type=merge -p "{\"rules\": $rules}" > /dev/null || return 1
        changed=1
      fi
    done
    ((changed == 0)) && return 0
  done
  return 1
}
# Renders deploy/base with components into $work/NAME.json (a List).
render_with() { # NAME COMPONENT...
  local name="$1" c dir="$work/$1"
  shift
  mkdir -p "$dir"
  {
    echo "apiVersion: kustomize.config.k8s.io/v1beta1"
    echo "kind: Kustomization"
    echo "resources:"
    echo "- $(realpath --relative-to="$dir" "$deploy/base")"
    echo "components:"
    for c in "$@"; do echo "- $(realpath --relative-to="$dir" "$deploy/components/$c")"; done
  } > "$dir/kustomization.yaml"
  kc kustomize "$dir" > "$dir/rendered.yaml" 2> "$work/out" &&
    kc create --dry-run=client -o json -f "$dir/rendered.yaml" 2>> "$work/out" |
    jq -s '{kind: "List", apiVersion: "v1", items: [.[] | if .kind == "List" then .items[] else . end]}' \
      > "$work/$name.json"
}
obj() { # NAME KIND OBJECT-NAME -> JSON of that object in the rendering NAME
  jq --arg k "$2" --arg n "$3" '.items[] | select(.kind == $k and .metadata.name == $n)' "$work/$1.json"
}

# --- install --------------------------------------------------------------
step "the CRD, the namespace and the people's roles (deploy/base/rbac-people.yaml)"
if kc apply -k "$deploy/crd" > "$work/out" 2>&1 &&
  kc wait --for=condition=Established --timeout=60s crd/egressrulesets.zalando.org > /dev/null 2>&1; then
  ok "CRD applied and Established"
else
  fatal "CRD: $(out)"
fi
for ((i = 0; i < 30; i++)); do
  kc api-resources --api-group=zalando.org 2> /dev/null | grep -q '^egressrulesets' && break
  sleep 1
done
accepted "namespace egressd-system" kc apply -f "$deploy/base/namespace.yaml"
accepted "kubectl apply -f deploy/base/rbac-people.yaml" kc apply -f "$deploy/base/rbac-people.yaml"
accepted "kubectl apply -f deploy/base/rbac.yaml (the controller's role)" kc apply -f "$deploy/base/rbac.yaml"
for ns in team-a team-b; do kc create namespace "$ns" > /dev/null; done

step "every new manifest passes kubectl apply --dry-run=server"
for f in base/rbac-people.yaml base/world-access-policy.yaml; do
  accepted "deploy/$f" kc apply --dry-run=server -f "$deploy/$f"
done
if render_with aggregation editor-aggregation && render_with deny world-access-deny &&
  render_with both editor-aggregation world-access-deny; then
  ok "deploy/base renders with each component and with both"
else
  fatal "kubectl kustomize: $(out)"
fi
accepted "deploy/base + both components (-k)" kc apply --dry-run=server -k "$work/both"
labels="$(obj aggregation ClusterRole egressrulesets-editor | jq -c '.metadata.labels | with_entries(select(.key | startswith("rbac.")))')"
if [[ "$labels" == '{"rbac.authorization.k8s.io/aggregate-to-admin":"true","rbac.authorization.k8s.io/aggregate-to-edit":"true"}' ]]; then
  ok "components/editor-aggregation labels the editor role: $labels"
else
  fail "editor role with the aggregation component: labels $labels"
fi
if [[ "$(kc get clusterrole egressrulesets-editor -o json | jq -c '.metadata.labels | with_entries(select(.key | startswith("rbac.")))')" == '{}' ]]; then
  ok "without the component the editor role has no aggregation label"
else
  fail "the base's editor role is aggregated"
fi
actions="$(obj deny ValidatingAdmissionPolicyBinding egressd-world-access | jq -c .spec.validationActions)"
if [[ "$actions" == '["Deny","Audit"]' ]]; then
  ok "components/world-access-deny: validationActions $actions"
else
  fail "binding with world-access-deny: validationActions $actions"
fi
actions="$(kc create --dry-run=client -o json -f "$policy" | jq -s -c '[.[] | if .kind == "List" then .items[] else . end | select(.kind == "ValidatingAdmissionPolicyBinding") | .spec.validationActions]')"
if [[ "$actions" == '[["Audit","Warn"]]' ]]; then
  ok "the shipped binding is in audit mode: $actions"
else
  fail "the shipped binding: validationActions $actions"
fi

# --- people ---------------------------------------------------------------
step "aggregation into the built-in roles (the controller-manager's step, done here)"
if [[ "$(kc get clusterrole admin -o json | jq '.rules // [] | length')" == 0 ]]; then
  ok "no kube-controller-manager here: the built-in admin role has no rules yet"
fi
kc -n team-a create rolebinding alice-admin --clusterrole admin --user alice > /dev/null
can no alice get pods -n team-a # before aggregation: admin is empty
if aggregate_builtin_roles; then
  ok "view, edit and admin aggregated: admin has $(kc get clusterrole admin -o json | jq '.rules | length') rules"
else
  fatal "aggregation did not settle"
fi
can yes alice get pods -n team-a # the aggregation step works for the built-in parts
for role in view edit admin; do
  if kc get clusterrole "$role" -o json |
    jq -e '[.rules[] | select(.apiGroups == ["zalando.org"])] == [{"apiGroups":["zalando.org"],"resources":["egressrulesets","egressrulesets/status"],"verbs":["get","list","watch"]}]' > /dev/null; then
    ok "built-in $role: egressrulesets get/list/watch (from egressrulesets-viewer), nothing more"
  else
    fail "built-in $role rules for zalando.org: $(kc get clusterrole "$role" -o json | jq -c '[.rules[] | select(.apiGroups == ["zalando.org"])]')"
  fi
done

step "a namespace admin (RoleBinding to the built-in admin role in team-a)"
kc -n team-a create -f "$(ers existing api.example.com:443)" > /dev/null
can yes alice list egressrulesets.zalando.org -n team-a
can yes alice get egressrulesets.zalando.org -n team-a
can no alice create egressrulesets.zalando.org -n team-a
can no alice list egressrulesets.zalando.org -n team-b
accepted "alice lists the rule sets of team-a" kc --as alice -n team-a get ers
grep -q '^existing ' "$work/out" || fail "alice's list lacks team-a/existing"
accepted "alice reads one" kc --as alice -n team-a get ers existing -o yaml
refused "alice cannot create one (RBAC)" 'forbidden' \
  kc --as alice -n team-a create -f "$(ers alice-app api.example.com:443)"
refused "alice cannot delete one (RBAC)" 'forbidden' kc --as alice -n team-a delete ers existing

step "bind egressrulesets-editor to alice in team-a: now she can"
accepted "kubectl -n team-a create rolebinding alice-ers-editor --clusterrole egressrulesets-editor --user alice" \
  kc -n team-a create rolebinding alice-ers-editor --clusterrole egressrulesets-editor --user alice
can yes alice create egressrulesets.zalando.org -n team-a
can no alice create egressrulesets.zalando.org -n team-b
can no alice patch egressrulesets.zalando.org --subresource=status -n team-a
accepted "alice creates team-a/alice-app" \
  kc --as alice -n team-a create -f "$(ers alice-app api.example.com:443)"
accepted "alice deletes it" kc --as alice -n team-a delete ers alice-app

step "components/editor-aggregation: every namespace admin may create rule sets"
kc -n team-b create rolebinding bob-admin --clusterrole admin --user bob > /dev/null
can no bob create egressrulesets.zalando.org -n team-b
obj aggregation ClusterRole egressrulesets-editor > "$work/editor-aggregated.json"
accepted "apply the editor role as rendered with the component" kc apply -f "$work/editor-aggregated.json"
aggregate_builtin_roles || fail "aggregation did not settle"
can yes bob create egressrulesets.zalando.org -n team-b
can yes bob delete egressrulesets.zalando.org -n team-b
can no bob create egressrulesets.zalando.org -n team-a
accepted "the base's editor role again (no aggregation)" kc apply -f "$deploy/base/rbac-people.yaml"
if [[ "$(kc get clusterrole egressrulesets-editor -o json | jq -c '.metadata.labels | with_entries(select(.key | startswith("rbac.")))')" != '{}' ]]; then
  # kubectl apply removes labels it added itself (last-applied), not others.
  kc label clusterrole egressrulesets-editor rbac.authorization.k8s.io/aggregate-to-edit- \
    rbac.authorization.k8s.io/aggregate-to-admin- > /dev/null
fi
aggregate_builtin_roles || fail "aggregation did not settle"
can no bob create egressrulesets.zalando.org -n team-b

# --- the admission policy ---------------------------------------------------
step "before the policy: world access and internal ranges from any editor (the old behaviour)"
kc -n team-a create rolebinding carol-ers-editor --clusterrole egressrulesets-editor --user carol > /dev/null
kc -n egressd-system create rolebinding dave-ers-editor --clusterrole egressrulesets-editor --user dave > /dev/null
accepted "carol (editor, team-a) creates team-a/old-world with *:80" \
  kc --as carol -n team-a create -f "$(ers old-world '*:80')"
accepted "carol creates team-a/old-db with 10.1.2.3:5432" \
  kc --as carol -n team-a create -f "$(ers old-db 10.1.2.3:5432)"
wait_mode off
snapshot() { kc get ers -A -o json | jq -c '[.items[] | {ns: .metadata.namespace, n: .metadata.name, rv: .metadata.resourceVersion, g: .metadata.generation, spec, status}]'; }
before="$(snapshot)"

step "install the policy (audit mode, as shipped): kubectl apply -f deploy/base/world-access-policy.yaml"
accepted "kubectl apply -f deploy/base/world-access-policy.yaml" kc apply -f "$policy"
wait_mode warn
if [[ "$(snapshot)" == "$before" ]]; then
  ok "installing the policy touched no rule set (resourceVersion, generation, spec, status unchanged)"
else
  fail "rule sets changed: before $before, after $(snapshot)"
fi
accepted "audit mode: carol creates team-a/crawler with *:80" \
  kc --as carol -n team-a create -f "$(ers crawler '*:80')"
if grep -q "Warning: Validation failed for ValidatingAdmissionPolicy 'egressd-world-access'" "$work/out" &&
  grep -q '"\*:80" opens world access' "$work/out" && grep -q 'egress-world-approvers' "$work/out"; then
  ok "kubectl prints the policy's warning"
else
  fail "no policy warning in kubectl's output: $(out)"
fi
if stored team-a crawler; then ok "team-a/crawler is stored (audit mode lets it through)"; else fail "team-a/crawler missing"; fi

step "deny mode: components/world-access-deny"
obj deny ValidatingAdmissionPolicyBinding egressd-world-access > "$work/binding-deny.json"
accepted "apply the binding as rendered with the component" kc apply -f "$work/binding-deny.json"
wait_mode deny
refused "carol's *:80 is refused with the policy's message" \
  'opens world access (every destination on that port, for the whole cluster). Only members of the group(s) egress-world-approvers may add it, or put the rule set in namespace(s) egressd-system' \
  kc --as carol -n team-a create -f "$(ers crawler2 api.example.com:443 '*:80')"
if stored team-a crawler2; then fail "team-a/crawler2 stored although refused"; else ok "nothing stored"; fi
for t in 10.1.2.3:5432 169.254.169.254:80 100.64.0.0/10:443 172.16.5.0/24:443 0.0.0.0/0:443 \
  '[fd00:ec2::254]:80' '[fe80::/10]:443' '[::1]:8080'; do
  refused "carol's internal target $t is refused" 'opens an internal range' \
    kc --as carol -n team-a create --dry-run=server -f "$(ers internal "$t")"
done
# Controls: addresses outside the internal ranges, names and wildcards pass.
accepted "carol's public and documentation addresses, names and wildcards pass" \
  kc --as carol -n team-a create -f "$(ers public 203.0.113.7:443 198.51.100.0/24:443 '[2001:db8::1]:443' 8.8.8.8:53 api.example.com:443 '*.example.org:80')"
grep -q -i warning "$work/out" && fail "a warning for a rule set without world access: $(out)"
accepted "an approver (carol --as-group egress-world-approvers) adds *:80" \
  kc --as carol --as-group egress-world-approvers -n team-a create -f "$(ers crawler2 '*:80' 10.1.2.3:5432)"
accepted "dave (editor in the approved namespace egressd-system) adds *:443" \
  kc --as dave -n egressd-system create -f "$(ers platform-world '*:443')"
refused "the approvers group is no RBAC grant: eve (approver, no editor role) is forbidden" 'forbidden' \
  kc --as eve --as-group egress-world-approvers -n team-a create -f "$(ers eve '*:80')"

step "deny mode: existing rule sets stay editable; only added targets are checked"
accepted "carol adds a name to team-a/old-world (its *:80 predates her edit)" \
  kc --as carol -n team-a patch ers old-world --type=json -p '[{"op": "add", "path": "/spec/targets/-", "value": "api.example.com:443"}]'
refused "carol adds *:443 to team-a/old-world" '"\*:443" opens world access' \
  kc --as carol -n team-a patch ers old-world --type=json -p '[{"op": "add", "path": "/spec/targets/-", "value": "*:443"}]'
accepted "carol removes world access from team-a/old-world" \
  kc --as carol -n team-a patch ers old-world --type=merge -p '{"spec": {"targets": ["api.example.com:443"]}}'
refused "carol puts it back" 'opens world access' \
  kc --as carol -n team-a patch ers old-world --type=merge -p '{"spec": {"targets": ["*:80"]}}'
accepted "carol deletes team-a/old-db (deletes are not checked)" kc --as carol -n team-a delete ers old-db

step "the parameters: ConfigMap egressd-system/egress-world-access"
accepted "approverGroups: platform-team" \
  kc -n egressd-system patch configmap egress-world-access --type=merge -p '{"data": {"approverGroups": "platform-team, sre"}}'
for ((i = 0; i < 40; i++)); do
  kc --as carol --as-group sre -n team-a create --dry-run=server -f "$(ers crawler3 '*:80')" > /dev/null 2>&1 && break
  sleep 0.5
done
refused "egress-world-approvers no longer approves; the message names the new groups" \
  'Only members of the group(s) platform-team, sre may add it' \
  kc --as carol --as-group egress-world-approvers -n team-a create -f "$(ers crawler3 '*:80')"
accepted "a member of sre adds *:80" \
  kc --as carol --as-group sre -n team-a create -f "$(ers crawler3 '*:80')"
accepted "approvedNamespaces: team-a as well" \
  kc -n egressd-system patch configmap egress-world-access --type=merge -p '{"data": {"approvedNamespaces": "egressd-system team-a"}}'
for ((i = 0; i < 40; i++)); do
  kc --as carol -n team-a create --dry-run=server -f "$(ers crawler4 '*:80')" > /dev/null 2>&1 && break
  sleep 0.5
done
accepted "carol (no approver) adds *:80 in team-a, now an approved namespace" \
  kc --as carol -n team-a create -f "$(ers crawler4 '*:80')"
accepted "delete the ConfigMap" kc -n egressd-system delete configmap egress-world-access
for ((i = 0; i < 40; i++)); do
  kc --as carol -n team-a create --dry-run=server -f "$(ers plain api.example.com:443)" > /dev/null 2>&1 || break
  sleep 0.5
done
refused "without its parameters the policy refuses every rule set write (fail closed)" 'no params found' \
  kc --as carol -n team-a create -f "$(ers plain api.example.com:443)"
obj deny ConfigMap egress-world-access > "$work/params.json"
accepted "restore the shipped ConfigMap" kc apply -f "$work/params.json"
wait_mode deny

# --- status ---------------------------------------------------------------
step "egress-controller marks world access in status: kubectl get ers -A, column WORLD"
userkc="$("$here/apiserver.sh" user "$EGRESSD_K8S_DIR" egress-controller egress-controller)" ||
  fatal "apiserver.sh user egress-controller failed"
mkdir -p "$work/rules"
"$controller" --kubeconfig "$userkc" --rules-dir "$work/rules" > "$work/controller.log" 2>&1 &
controller_pid=$!
# NAMESPACE NAME WORLD of each row (cells read at the WORLD header's offset,
# so other columns may come and go).
rows=("team-a crawler True" "team-a crawler2 True" "egressd-system platform-world True"
  "team-a public False" "team-a existing False" "team-a old-world False")
# Every object judged: no empty WORLD cell left (at most 20 s).
for ((i = 0; i < 100; i++)); do
  kc get ers -A -o json | jq -e '[.items[] | select(any(.status.conditions[]?; .type == "WorldAccess") | not)] == []' \
    > /dev/null && break
  sleep 0.2
done
kc get ers -A > "$work/get.txt" 2>&1
sed 's/^/    /' "$work/get.txt"
header="$(head -1 "$work/get.txt" | tr -s ' ')"
if [[ "$header" == "NAMESPACE NAME TARGETS "*"ACCEPTED WORLD AGE" ]]; then
  ok "columns: $header"
else
  fail "columns: $header"
fi
world_cell() { # NAMESPACE NAME
  awk -v ns="$1" -v n="$2" 'NR == 1 { c = index($0, " WORLD ") + 1 }
    NR > 1 && $1 == ns && $2 == n { split(substr($0, c), cell, " "); print cell[1] }' "$work/get.txt"
}
for row in "${rows[@]}"; do
  read -r ns name want <<< "$row"
  got="$(world_cell "$ns" "$name")"
  if [[ "$got" == "$want" ]]; then
    ok "$ns/$name: WORLD $got"
  else
    fail "$ns/$name: WORLD '$got', want $want"
  fi
done
msg="$(kc -n team-a get ers crawler2 -o jsonpath='{.status.conditions[?(@.type=="WorldAccess")].message}')"
if [[ "$msg" == '"*:80" in force: every destination on that port is allowed for the whole cluster' ]]; then
  ok "WorldAccess message: $msg"
else
  fail "WorldAccess message: '$msg'"
fi

# --- removal ----------------------------------------------------------------
step "remove the policy: kubectl delete -f deploy/base/world-access-policy.yaml"
accepted "kubectl delete -f deploy/base/world-access-policy.yaml" kc delete -f "$policy"
wait_mode off
accepted "carol adds *:80 without approval again (the old behaviour)" \
  kc --as carol -n team-a create -f "$(ers crawler5 '*:80')"
grep -q -i warning "$work/out" && fail "a warning after removal: $(out)"
gone=""
for name in crawler crawler2 crawler3 crawler4 crawler5 public existing old-world; do
  stored team-a "$name" || gone+=" team-a/$name"
done
if [[ -z "$gone" ]]; then
  ok "every rule set stored meanwhile is still there"
else
  fail "gone:$gone"
fi

echo "k8s.governance: $passed passed, $failed failed"
((failed == 0))

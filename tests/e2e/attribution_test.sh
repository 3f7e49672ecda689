#!/usr/bin/env bash
# Attribution with a static pod map file (issue 15): two clients in the pod
# namespace (10.77.0.2 and a second address, 10.77.0.3, plus their IPv6
# twins) mapped to two pods of different namespaces and workloads. Their
# decisions (connections and DNS) carry the right namespace, pod, workload
# and service account; watch filters (namespace, pod, workload) select
# exactly their lines; the line shows ns/pod. Then the mapping changes as
# Kubernetes would change it (the first pod deleted and its address given
# to a new pod, the second pod deleted): within a second no event names
# the old pods. Topology: tests/e2e/topology.sh.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${EGRESSD_BIN:-${1:-}}"
[ -x "$bin/egressd" ] && [ -x "$bin/egressctl" ] || { echo "usage: EGRESSD_BIN=BUILD/bin $0"; exit 2; }
watchers=()
e2e_cleanup_extra() {
  for p in "${watchers[@]}"; do kill "$p" 2> /dev/null; done
}
# shellcheck source=tests/e2e/harness.sh
. "$here/harness.sh"
e2e_start attribution

A4=10.77.0.2 A6=fd00:77::2 B4=10.77.0.3 B6=fd00:77::3
in_pod ip addr add "$B4/24" dev eth0
in_pod ip addr add "$B6/64" dev eth0 nodad

mkdir -p "$dir/rules" "$dir/out" "$dir/pods"
cat > "$dir/rules/app.yaml" << EOF2
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: app, namespace: team-a}
spec:
  targets:
  - api.example.com:443
EOF2
map="$dir/pods/pods.map"
cat > "$map" << EOF2
# IP NAMESPACE POD WORKLOAD SERVICE_ACCOUNT
$A4 team-a web-7d9c6b5f4-x2x9q Deployment/web web-sa
$A6 team-a web-7d9c6b5f4-x2x9q Deployment/web web-sa
$B4 team-b db-0 StatefulSet/db -
$B6 team-b db-0 StatefulSet/db -
EOF2
write_egressd_config "$dir/egressd.toml" "$dir/rules"
printf '\n[attribution]\nmap_file = "%s"\n' "$map" >> "$dir/egressd.toml"
sock="$E2E_DIR/control.sock"
start_egressd "$bin/egressd" "$dir/egressd.toml" || exit 1
expect_match "the map is loaded at start" 'event=pods.map.loaded .*pods=4 problems=0' "$(cat "$E2E_LOGS/egressd.log")"

declare -A filters=(
  [all]=""
  [nsa]="namespace team-a"
  [nsb]="namespace team-b"
  [poda]="pod team-a/web-*"
  [podb]="pod team-b/db-0"
  [wla]="workload Deployment/web"
  [wlb]="workload StatefulSet/db"
  [none]="not namespace *"
)
start_watchers() {  # SUFFIX
  set -f  # the filter words are split, never globbed ("namespace *")
  for key in "${!filters[@]}"; do
    # shellcheck disable=SC2086 # the filter words are split on purpose
    "$bin/egressctl" watch --socket "$sock" --no-colour ${filters[$key]} > "$dir/out/$key$1" 2>&1 &
    watchers+=($!)
  done
  set +f
  "$bin/egressctl" watch --socket "$sock" --json > "$dir/out/json$1" 2>&1 &
  watchers+=($!)
  sleep 1
}
stop_watchers() {
  sleep 1
  for p in "${watchers[@]}"; do kill -TERM "$p" 2> /dev/null; done
  for p in "${watchers[@]}"; do wait "$p" 2> /dev/null; done
  watchers=()
}
# Traffic from both clients: allowed and denied connections, allowed and
# denied DNS, over IPv4 and IPv6.
traffic() {
  expect_eq "A: allowed name" 200 "$(curl_pod https://api.example.com/ --interface "$A4")"
  expect_eq "B: allowed name" 200 "$(curl_pod https://api.example.com/ --interface "$B4")"
  expect_eq "A: allowed name over IPv6" 200 "$(curl_pod https://api.example.com/ -6 --interface "$A6")"
  expect_eq "B: allowed name over IPv6" 200 "$(curl_pod https://api.example.com/ -6 --interface "$B6")"
  # An allowed name sent to an address egressd's DNS never gave for it:
  # sni_not_bound, a denial.
  expect_match "B: an allowed name at an unbound address is denied" '^curl:(7|28|35|52|56)$' \
    "$(curl_pod https://api.example.com/ --resolve "api.example.com:443:$E2E_IP4_EDGE_EXAMPLE_NET" --interface "$B4")"
  in_pod dig +time=2 +tries=1 -b "$A4" "@$E2E_GW_POD_IP4" edge.example.net > /dev/null
  in_pod dig +time=2 +tries=1 -b "$B4" "@$E2E_GW_POD_IP4" www.example.org > /dev/null
}

start_watchers ""
traffic
stop_watchers

out="$dir/out"
nonempty_and_all() {  # FILE ERE: at least one line, and every line matches
  [ -s "$out/$1" ] && ! grep -Ev -- "$2" "$out/$1" | grep -q .
}
none() { ! grep -Eq -- "$2" "$out/$1"; }
count() { grep -Ec -- "$2" "$out/$1"; }
# JSON: every event of a client carries its pod, and only its pod.
json_of() {  # SRC-ADDRESS...: the attribution fields of that source's events, unique
  local sel
  sel="$(printf '.src == "%s" or ' "$@")"
  jq -r "select(${sel% or }) | [.namespace, .pod, .workload, .service_account] | join(\" \")" "$out/json" | sort -u
}
expect_eq "JSON: A's events (IPv4 and IPv6) name team-a's pod, its workload and service account" \
  "team-a web-7d9c6b5f4-x2x9q Deployment/web web-sa" "$(json_of "$A4" "$A6")"
expect_eq "JSON: B's events name team-b/db-0, a StatefulSet, no service account" \
  "team-b db-0 StatefulSet/db " "$(json_of "$B4" "$B6")"
expect_ok "JSON: both kinds of event from A are attributed" \
  test "$(jq -r "select(.src == \"$A4\" and .namespace == \"team-a\") | .kind" "$out/json" | sort -u | tr '\n' ' ')" = "dns verdict "
expect_eq "JSON: B's denial is attributed" "team-b db-0 sni_not_bound" \
  "$(jq -r "select(.src == \"$B4\" and .verdict == \"deny\" and .kind == \"verdict\") | [.namespace, .pod, .reason] | join(\" \")" "$out/json" | sort -u)"
# Lines: ns/pod instead of the address.
expect_match "the line shows team-a/web-... instead of 10.77.0.2" \
  '^[0-9:.]+ team-a/web-7d9c6b5f4-x2x9q:[0-9]+ > 203\.0\.113\.10:443 tcp sni=api\.example\.com ALLOW' "$(cat "$out/all")"
expect_match "... and team-b/db-0 for the second client, DNS too" \
  '^[0-9:.]+ team-b/db-0:[0-9]+ > 10\.77\.0\.1:53 dns A www\.example\.org' "$(cat "$out/all")"
expect_ok "no line shows the clients' bare addresses" none all "^[0-9:.]+ (10\.77\.0\.[23]|\[fd00:77::[23]\]):"
# Filters select exactly their client's lines: as many as the unfiltered
# stream has for that pod, and nothing else.
for key in nsa poda wla; do
  expect_ok "filter '${filters[$key]}': only team-a's pod" nonempty_and_all "$key" ' team-a/web-7d9c6b5f4-x2x9q:'
  expect_eq "filter '${filters[$key]}': every one of its lines" "$(count all ' team-a/web-7d9c6b5f4-x2x9q:')" "$(count "$key" .)"
done
for key in nsb podb wlb; do
  expect_ok "filter '${filters[$key]}': only team-b's pod" nonempty_and_all "$key" ' team-b/db-0:'
  expect_eq "filter '${filters[$key]}': every one of its lines" "$(count all ' team-b/db-0:')" "$(count "$key" .)"
done
expect_ok "filter 'not namespace *': nothing while every client is a known pod" none none .

# --- the mapping changes ---------------------------------------------------------
# web-... deleted and its address given to a new pod of another namespace;
# db-0 deleted (its address unmapped). Written as the controller writes:
# a new file renamed into place.
mark="$(egressd_log_mark)"
cat > "$dir/pods/.pods.map.new" << EOF2
$A4 team-c api-5f6d7c8b9-abcde Deployment/api api-sa
$A6 team-c api-5f6d7c8b9-abcde Deployment/api api-sa
EOF2
mv "$dir/pods/.pods.map.new" "$map"
expect_ok "the new map is in force within 1 s" \
  wait_until 10 sh -c "tail -c +$((mark + 1)) '$E2E_LOGS/egressd.log' | grep -q 'event=pods.map.loaded .*pods=2 '"
start_watchers ".after"
traffic
stop_watchers
expect_eq "after: A's address names the new pod" \
  "team-c api-5f6d7c8b9-abcde Deployment/api api-sa" "$(out="$dir/out"; jq -r "select(.src == \"$A4\" or .src == \"$A6\") | [.namespace, .pod, .workload, .service_account] | join(\" \")" "$out/json.after" | sort -u)"
expect_eq "after: B's address names nobody" \
  "   " "$(jq -r "select(.src == \"$B4\" or .src == \"$B6\") | [.namespace, .pod, .workload, .service_account] | join(\" \")" "$out/json.after" | sort -u)"
expect_ok "after: events were seen from both addresses" \
  test "$(jq -r '.src' "$out/json.after" | sort -u | grep -c '^\(10\.77\.0\.[23]\|fd00:77::[23]\)$')" -eq 4
expect_ok "after: no event names a deleted pod" none json.after 'web-7d9c6b5f4|"pod":"db-0"|"namespace":"team-[ab]"'
expect_ok "after: no line names a deleted pod" none all.after 'web-7d9c6b5f4|db-0'
expect_ok "after: B's lines show its bare address" grep -Eq "^[0-9:.]+ 10\.77\.0\.3:[0-9]+ > " "$out/all.after"
expect_ok "after: 'namespace team-a' selects nothing" none nsa.after .
expect_ok "after: 'not namespace *' selects exactly B's lines (no pod)" \
  nonempty_and_all none.after '^[0-9:.]+ (10\.77\.0\.3|\[fd00:77::3\]):'
expect_ok "after: 'pod team-b/db-0' selects nothing" none podb.after .

# --- a bad line is named, the rest stays; a deleted file empties the map -----------
mark="$(egressd_log_mark)"
printf '%s team-c api-1 - -\n10.77.0.300 x y - -\n' "$A4" > "$dir/pods/.pods.map.new" && mv "$dir/pods/.pods.map.new" "$map"
expect_ok "a bad line is logged with its number" \
  wait_until 20 sh -c "tail -c +$((mark + 1)) '$E2E_LOGS/egressd.log' | grep 'event=pods.map.problem' | grep -q 'line 2: .*10.77.0.300.* is not an IPv4 or IPv6 address'"
expect_ok "... the good line is in force" \
  wait_until 20 sh -c "tail -c +$((mark + 1)) '$E2E_LOGS/egressd.log' | grep -q 'event=pods.map.loaded .*pods=1 problems=1'"
mark="$(egressd_log_mark)"
rm "$map"
expect_ok "a removed map file is an empty map" \
  wait_until 20 sh -c "tail -c +$((mark + 1)) '$E2E_LOGS/egressd.log' | grep -q 'event=pods.map.loaded .*pods=0 .*present=false'"
expect_ok "egressd is still running" egressd_running
summary

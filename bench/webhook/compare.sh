#!/usr/bin/env bash
# bench/webhook/compare.sh: two egress-controller binaries as webhooks in
# the same run, against one real kube-apiserver + etcd. Namespace bench-a
# is sent only to binary A's webhook, bench-b only to B's (two webhook
# configurations, a namespaceSelector each); pod_latency.py alternates the
# two pod by pod, so "added" is A's extra time over B's at the same
# moments: a before/after that a loaded machine cannot tilt. Prints the
# pooled and per-round figures, each binary's admit() time (log us=) and
# the API server's histogram of each webhook's calls (names
# a.inject.egressd.io, b.inject.egressd.io). About one minute.
#
# Usage: bench/webhook/compare.sh CONTROLLER_A CONTROLLER_B
# Knobs: WEBHOOK_BENCH_ROUNDS (10), WEBHOOK_BENCH_PAIRS (100).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
declare -A bin port
bin[a]="$(realpath "${1:?controller binary A}")"
bin[b]="$(realpath "${2:?controller binary B}")"
log() { echo "bench/webhook/compare: $*" >&2; }
k8sbin="$("$root/tests/k8s/build.sh")" || {
  log "no kube-apiserver/etcd binaries (tests/k8s/build.sh failed)"
  exit 1
}
work="$(mktemp -d /tmp/egressd-webhook-compare.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do
    kill -TERM "$p" 2> /dev/null || true
    wait "$p" 2> /dev/null || true
  done
  [[ -d "$work/cluster" ]] && "$root/tests/k8s/apiserver.sh" stop "$work/cluster" > /dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
eval "$(EGRESSD_K8S_BIN="$k8sbin" EGRESSD_K8S_OWNER_PID=$$ "$root/tests/k8s/apiserver.sh" start "$work/cluster" 2> "$work/apiserver.err")" || {
  cat "$work/apiserver.err" >&2
  exit 1
}
kc() { "$k8sbin/kubectl" "$@"; }
kc create namespace egressd-system > /dev/null
for v in a b; do
  kc create namespace "bench-$v" > /dev/null
  kc label namespace "bench-$v" "egressd.io/bench-webhook=$v" > /dev/null
  kc -n "bench-$v" create serviceaccount default > /dev/null
  kc -n egressd-system create secret generic "egressd-webhook-tls-$v" > /dev/null
  taken="${port[a]:-0}"  # B's port differs from A's
  while :; do
    port[$v]=$((20000 + RANDOM % 40000))
    [[ -z "$(ss -Htan "( sport = :${port[$v]} )" 2> /dev/null)" && "${port[$v]}" != "$taken" ]] && break
  done
done
for v in a b; do
  kc create --dry-run=client -o json -f "$root/deploy/base/webhook-configuration.yaml" |
    jq -s --arg url "https://127.0.0.1:${port[$v]}/inject" --arg v "$v" '{apiVersion: "v1", kind: "List",
      items: [.[] | select(.kind == "MutatingWebhookConfiguration") | .metadata.name = "egressd-inject-" + $v |
        .webhooks |= map(.name = $v + ".inject.egressd.io" | .clientConfig = {url: $url} |
          .namespaceSelector.matchExpressions += [{key: "egressd.io/bench-webhook", operator: "In", values: [$v]}])]}' |
    kc apply -f - > /dev/null
  "${bin[$v]}" --kubeconfig "$KUBECONFIG" --webhook-listen "127.0.0.1:${port[$v]}" --webhook-cert-san 127.0.0.1 \
    --webhook-cert-poll 1s --webhook-secret "egressd-webhook-tls-$v" --webhook-config "egressd-inject-$v" \
    --webhook-lease-name "" > "$work/controller-$v.log" 2>&1 &
  pids+=($!)
done
for v in a b; do
  for ((i = 0; i < 300; i++)); do
    kc -n "bench-$v" run probe --image=busybox --restart=Never --dry-run=server -o json 2> /dev/null |
      jq -e '.spec.containers[0].env // [] | map(.name) | index("HTTP_PROXY") != null' > /dev/null && break
    sleep 0.2
  done
done
token="$(cut -d, -f1 "$EGRESSD_K8S_DIR/pki/tokens.csv")"
log "A: ${bin[a]}"
log "B: ${bin[b]}"
python3 "$root/bench/webhook/pod_latency.py" "$EGRESSD_K8S_SERVER" "$EGRESSD_K8S_DIR/pki/ca.crt" "$token" \
  bench-a bench-b b.inject.egressd.io "https://127.0.0.1:${port[b]}" --both-injected \
  --rounds "${WEBHOOK_BENCH_ROUNDS:-10}" --pairs "${WEBHOOK_BENCH_PAIRS:-100}" --concurrency "" --sparse 0 \
  > "$work/out.json"
admit() {
  grep -o 'event=inject.review .* us=[0-9]*' "$1" | sed 's/.*us=//' | sort -n |
    awk '{ v[NR] = $1 } END { printf "{\"p50_us\": %d, \"p99_us\": %d}", v[int(NR * 0.5 + 0.5)], v[int(NR * 0.99 + 0.5)] }'
}
# Each webhook's calls as the API server counted them (warm-up included).
kc get --raw /metrics > "$work/apiserver.metrics"
histogram() {
  grep "^apiserver_admission_webhook_admission_duration_seconds_bucket{.*name=\"$1.inject.egressd.io\".*operation=\"CREATE\"" \
    "$work/apiserver.metrics" | sed 's/.*le="\([^"]*\)".* \([0-9.e+]*\)$/\1 \2/' |
    awk '{ c[$1] += $2 } END { printf "{\"calls\": %d, \"share_le_5ms\": %.4f, \"share_le_25ms\": %.4f}", c["+Inf"], c["0.005"] / c["+Inf"], c["0.025"] / c["+Inf"] }'
}
jq --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --argjson admit_a "$(admit "$work/controller-a.log")" \
  --argjson admit_b "$(admit "$work/controller-b.log")" --argjson hist_a "$(histogram a)" \
  --argjson hist_b "$(histogram b)" '{loadavg_at_end: $load,
    a: .sequential.pooled.with_webhook, b: .sequential.pooled.without_webhook,
    a_minus_b_ms: {p50: .sequential.pooled.added_p50_ms, p90: .sequential.pooled.added_p90_ms,
      p99: .sequential.pooled.added_p99_ms},
    a_minus_b_p99_per_round: .sequential.spread_added_p99_ms,
    admit_a: $admit_a, admit_b: $admit_b, apiserver_a: $hist_a, apiserver_b: $hist_b}' "$work/out.json"

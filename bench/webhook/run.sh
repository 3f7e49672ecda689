#!/usr/bin/env bash
# bench/webhook: what the injection webhook (docs/injection.md) adds to pod
# creation. A real kube-apiserver + etcd (tests/k8s/apiserver.sh) calls
# egress-controller's webhook on 127.0.0.1 (url clientConfig, the shipped
# webhook settings). Each round, pod_latency.py creates pods alternately in
# a namespace the webhook is called for and in one its namespaceSelector
# leaves out (the order flipping every pair), over one kept-alive
# connection, and reports per side p50/p99 end to end, plus the API
# server's own histogram of the webhook call
# (apiserver_admission_webhook_admission_duration_seconds: exactly the added
# admission time, far less noisy than the difference of two end-to-end
# tails) and how many TLS connections carried the reviews. Then a sparse
# phase: a few pods with the webhook idle longer than 10 s before each.
# Goal (issue 14): added p99 <= 10 ms. Writes RESULTS_DIR/webhook.json.
# About three minutes on 2 busy cores.
#
# Usage: bench/webhook/run.sh BUILD_DIR RESULTS_DIR
# Knobs: WEBHOOK_BENCH_PODS (pods per side and round, default 500),
# WEBHOOK_BENCH_ROUNDS (3), WEBHOOK_BENCH_SPARSE (sparse pods per side and
# round, 3), WEBHOOK_BENCH_IDLE (the webhook's idle seconds before each
# sparse pod, 12).
set -euo pipefail
build="$(cd "${1:?build dir}" && pwd)"
results="${2:?results dir}"
mkdir -p "$results"
results="$(cd "$results" && pwd)"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
pods="${WEBHOOK_BENCH_PODS:-500}"
rounds="${WEBHOOK_BENCH_ROUNDS:-3}"
sparse="${WEBHOOK_BENCH_SPARSE:-3}"
idle="${WEBHOOK_BENCH_IDLE:-12}"
controller="$build/bin/egress-controller"
[[ -x "$controller" ]] || {
  echo "bench/webhook: $controller not built" >&2
  exit 1
}
command -v jq > /dev/null || {
  echo "bench/webhook: jq missing" >&2
  exit 1
}
log() { echo "bench/webhook: $*" >&2; }

k8sbin="$("$root/tests/k8s/build.sh")" || {
  log "no kube-apiserver/etcd binaries (tests/k8s/build.sh failed)"
  exit 1
}
work="$(mktemp -d /tmp/egressd-webhook-bench.XXXXXX)"
ctl=
cleanup() {
  if [[ -n "$ctl" ]]; then
    kill -TERM "$ctl" 2> /dev/null || true
    wait "$ctl" 2> /dev/null || true
  fi
  [[ -d "$work/cluster" ]] && "$root/tests/k8s/apiserver.sh" stop "$work/cluster" > /dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

log "starting kube-apiserver + etcd"
eval "$(EGRESSD_K8S_BIN="$k8sbin" EGRESSD_K8S_OWNER_PID=$$ "$root/tests/k8s/apiserver.sh" start "$work/cluster" 2> "$work/apiserver.err")" || {
  cat "$work/apiserver.err" >&2
  exit 1
}
kc() { "$k8sbin/kubectl" "$@"; }
kc create namespace egressd-system > /dev/null
kc create namespace bench-with > /dev/null
kc create namespace bench-without > /dev/null
kc label namespace bench-without egressd.io/inject=disabled > /dev/null
for ns in bench-with bench-without; do kc -n "$ns" create serviceaccount default > /dev/null; done

port=$((20000 + RANDOM % 40000))
while [[ -n "$(ss -Htan "( sport = :$port )" 2> /dev/null)" ]]; do port=$((20000 + RANDOM % 40000)); done
kc create --dry-run=client -o json -f "$root/deploy/base/webhook-configuration.yaml" |
  jq -s --arg url "https://127.0.0.1:$port/inject" '{apiVersion: "v1", kind: "List", items: map(
    if .kind == "MutatingWebhookConfiguration" then .webhooks |= map(.clientConfig = {url: $url}) else . end)}' |
  kc apply -f - > /dev/null
# Production logging (info: one line per review) into a file.
"$controller" --kubeconfig "$KUBECONFIG" --webhook-listen "127.0.0.1:$port" --webhook-cert-san 127.0.0.1 \
  --webhook-cert-poll 1s > "$work/controller.log" 2>&1 &
ctl=$!
for ((i = 0; i < 300; i++)); do
  kc -n bench-with run probe --image=busybox --restart=Never --dry-run=server -o json 2> /dev/null |
    jq -e '.spec.containers[0].env // [] | map(.name) | index("HTTP_PROXY") != null' > /dev/null && break
  sleep 0.2
done
token="$(cut -d, -f1 "$EGRESSD_K8S_DIR/pki/tokens.csv")"
webhook_name="$(kc get mutatingwebhookconfiguration egressd-inject -o jsonpath='{.webhooks[0].name}')"
runs=()
for ((r = 1; r <= rounds; r++)); do
  log "round $r: $pods pods per side, then $sparse per side with the webhook idle ${idle}s before each"
  kc delete pods --all -n bench-with --wait=false > /dev/null
  kc delete pods --all -n bench-without --wait=false > /dev/null
  out="$(python3 "$root/bench/webhook/pod_latency.py" "$EGRESSD_K8S_SERVER" "$EGRESSD_K8S_DIR/pki/ca.crt" "$token" \
    bench-with bench-without "$pods" "$sparse" "$idle" "$webhook_name" "$work/controller.log")"
  log "$(jq -c '{burst: (.burst | {added_p50_ms, added_p99_ms, apiserver_webhook_histogram, tls_connections}),
    sparse: (.sparse | {with_webhook_ms, without_webhook_ms, tls_connections})}' <<< "$out")"
  runs+=("$out")
done
reviews="$(grep -c 'event=inject.review' "$work/controller.log" || true)"
# The webhook's own time per review (parse, patch, answer; from its log),
# to tell it apart from the API server's side of the call.
processing="$(grep -o 'event=inject.review .* us=[0-9]*' "$work/controller.log" | sed 's/.*us=//' | sort -n |
  awk '{ v[NR] = $1 } END { if (NR == 0) { print "{}"; exit }
    printf "{\"p50_us\": %d, \"p99_us\": %d, \"max_us\": %d}", v[int(NR * 0.5 + 0.5)], v[int(NR * 0.99 + 0.5)], v[NR] }')"
printf '%s\n' "${runs[@]}" | jq -s --arg date "$(date -u +%FT%TZ)" --arg host "$(hostname)" \
  --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --arg cpus "$(nproc)" --argjson reviews "$reviews" \
  --argjson processing "$processing" 'def median: sort | .[length / 2 | floor]; {
    bench: "webhook", date: $date, host: $host, cpus: ($cpus | tonumber), loadavg_at_end: $load,
    reviews_served: $reviews, webhook_processing: $processing,
    goal: "added p99 <= 10 ms",
    rounds: .,
    apiserver_webhook_p99_ms_at_most_max: ([.[].burst.apiserver_webhook_histogram.p99_ms_at_most] | max),
    apiserver_webhook_p99_ms_interpolated_median: ([.[].burst.apiserver_webhook_histogram.p99_ms_interpolated] | median),
    apiserver_webhook_mean_ms_median: ([.[].burst.apiserver_webhook_histogram.mean_ms] | median),
    added_p99_ms_median: ([.[].burst.added_p99_ms] | median),
    added_p50_ms_median: ([.[].burst.added_p50_ms] | median),
    sparse_apiserver_webhook_max_ms_at_most: ([.[].sparse.apiserver_webhook_histogram.p99_ms_at_most // empty] | max),
    sparse_tls_connections: ([.[].sparse.tls_connections // empty] | add)}' > "$results/webhook.json"
log "wrote $results/webhook.json"
jq -c 'del(.rounds)' "$results/webhook.json" >&2

#!/usr/bin/env bash
# bench/controller: egress-controller against a real kube-apiserver + etcd
# (tests/k8s/apiserver.sh, binaries cached by tests/k8s/build.sh):
#   1. latency: 100 sequential changes (create, update, delete, ...) sent to
#      the API, each timed until the rules dir shows it (inotify): median,
#      p99; plus 10 creates with `kubectl apply`, timed from kubectl's start;
#   2. 1,000 rule sets created from 8 connections at once: seconds from the
#      first create to the last file;
#   3. 9,000 more (10,000 in all), then the controller's peak and current
#      resident memory (VmHWM, VmRSS from /proc/PID/status).
# Goals (issue 4): p99 <= 1 s, 1,000 in <= 10 s, <= 100 MiB.
# Writes RESULTS_DIR/controller.json. About 2 minutes on 2 busy cores.
#
# Usage: bench/controller/run.sh BUILD_DIR RESULTS_DIR
# Knobs: CONTROLLER_BENCH_CHANGES (100), CONTROLLER_BENCH_BULK (1000),
# CONTROLLER_BENCH_TOTAL (10000), CONTROLLER_BENCH_THREADS (8).
set -euo pipefail
build="$(cd "${1:?build dir}" && pwd)"
results="${2:?results dir}"
mkdir -p "$results"
results="$(cd "$results" && pwd)"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
changes="${CONTROLLER_BENCH_CHANGES:-100}"
bulk="${CONTROLLER_BENCH_BULK:-1000}"
total="${CONTROLLER_BENCH_TOTAL:-10000}"
threads="${CONTROLLER_BENCH_THREADS:-8}"
controller="$build/bin/egress-controller"
helper="$build/bin/controller_bench"
for b in "$controller" "$helper"; do
  [[ -x "$b" ]] || {
    echo "bench/controller: $b not built" >&2
    exit 1
  }
done
command -v jq > /dev/null || {
  echo "bench/controller: jq missing" >&2
  exit 1
}
log() { echo "bench/controller: $*" >&2; }

k8sbin="$("$root/tests/k8s/build.sh")" || {
  log "no kube-apiserver/etcd binaries (tests/k8s/build.sh failed)"
  exit 1
}
work="$(mktemp -d /tmp/egressd-controller-bench.XXXXXX)"
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
kc apply -f "$root/deploy/crd/egressrulesets.yaml" > /dev/null
kc wait --for=condition=Established --timeout=60s crd/egressrulesets.zalando.org > /dev/null
kc create namespace bench > /dev/null

rules="$work/rules"
mkdir -p "$rules"
"$controller" --kubeconfig "$KUBECONFIG" --rules-dir "$rules" > "$work/controller.log" 2>&1 &
ctl=$!
for ((i = 0; i < 200; i++)); do
  grep -q 'event=list.done' "$work/controller.log" && break
  sleep 0.1
done
grep -q 'event=list.done' "$work/controller.log" || {
  log "controller did not list: $(tail -3 "$work/controller.log")"
  exit 1
}

log "latency: $changes changes through the API"
"$helper" latency "$KUBECONFIG" "$rules" "$changes" > "$work/latency.json"
log "latency: 10 creates with kubectl apply"
"$helper" kubectl "$k8sbin/kubectl" "$KUBECONFIG" "$rules" 10 > "$work/kubectl.json"
log "bulk: $bulk rule sets from $threads connections"
"$helper" bulk "$KUBECONFIG" "$rules" "$bulk" bulk- "$threads" > "$work/bulk.json"
more=$((total - bulk))
log "memory: $more more ($total in all)"
"$helper" bulk "$KUBECONFIG" "$rules" "$more" mem- "$threads" > "$work/more.json"
# Let the status writer catch up (one PATCH per new object) before reading
# the current RSS; VmHWM is the peak over the whole run anyway.
objects="$(kc get ers -n bench --no-headers 2> /dev/null | wc -l)"
status_done() { (($(grep -c 'event=status.written' "$work/controller.log") >= objects)); }
for ((i = 0; i < 600; i++)); do
  status_done && break
  sleep 0.2
done
status_written="$(grep -c 'event=status.written' "$work/controller.log")"
hwm_kib="$(awk '/^VmHWM:/ {print $2}' "/proc/$ctl/status")"
rss_kib="$(awk '/^VmRSS:/ {print $2}' "/proc/$ctl/status")"
files="$(find "$rules" -maxdepth 1 -name 'bench_*.json' | wc -l)"

kill -TERM "$ctl"
ctl_status=0
wait "$ctl" || ctl_status=$?
ctl=

jq -n --slurpfile lat "$work/latency.json" --slurpfile kubectl "$work/kubectl.json" \
  --slurpfile bulk "$work/bulk.json" --slurpfile more "$work/more.json" \
  --argjson hwm "$hwm_kib" --argjson rss "$rss_kib" --argjson files "$files" \
  --argjson objects "$objects" --argjson status_written "$status_written" \
  --argjson exit_status "$ctl_status" --arg date "$(date -u +%FT%TZ)" \
  --arg host "$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)" '
{
  component: "controller",
  date: $date,
  machine: $host,
  apply_to_file: $lat[0],
  kubectl_apply_to_file: $kubectl[0],
  bulk_1000: $bulk[0],
  memory: {
    rulesets: $objects,
    files_in_rules_dir: $files,
    status_writes: $status_written,
    vm_hwm_mib: ($hwm / 1024),
    vm_rss_mib: ($rss / 1024),
    create_more: $more[0]
  },
  controller_exit_status: $exit_status,
  goals: {
    p99_ms_max: 1000,
    bulk_seconds_max: 10,
    memory_mib_max: 100,
    p99_met: ($lat[0].from_request_sent.p99_ms <= 1000),
    bulk_met: ($bulk[0].mirrored_seconds <= 10),
    memory_met: ($hwm / 1024 <= 100)
  }
}' > "$results/controller.json"
jq -r '"apply->file: median \(.apply_to_file.from_request_sent.median_ms|floor) ms, p99 \(.apply_to_file.from_request_sent.p99_ms|floor) ms (\(.apply_to_file.changes) changes); kubectl apply->file median \(.kubectl_apply_to_file.from_kubectl_start.median_ms|floor) ms; \(.bulk_1000.objects) created in \(.bulk_1000.create_seconds*100|floor/100) s, mirrored in \(.bulk_1000.mirrored_seconds*100|floor/100) s; \(.memory.rulesets) rule sets: VmHWM \(.memory.vm_hwm_mib*10|floor/10) MiB, VmRSS \(.memory.vm_rss_mib*10|floor/10) MiB"' \
  "$results/controller.json" >&2
[[ "$ctl_status" == 0 ]]

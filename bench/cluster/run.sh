#!/usr/bin/env bash
# bench/cluster: how fast a rule-set change reaches a pod on a real node
# (issue goal: p99 <= 1 s from `kubectl apply` to the first successful
# connection). Runs tests/k8s/node_local_test.sh (a single-node cluster
# from tests/k8s/cluster.sh with the DaemonSet as users deploy it) with
# EGRESSD_NODE_LOCAL_CHANGES rounds of apply/delete of one EgressRuleSet,
# and reports p50/p99 of apply -> first successful HTTPS connection and of
# delete -> the name no longer resolving. Each figure includes one
# `kubectl exec` round trip per try (the test's client runs in a pod).
#
# Usage: bench/cluster/run.sh BUILD_DIR [OUT_DIR]   (root; about 4 minutes)
set -euo pipefail
build="$(cd "${1:?build dir}" && pwd)"
out="${2:-$(dirname "$0")/../results}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
rounds="${CLUSTER_BENCH_CHANGES:-20}"
log="$(mktemp /tmp/egressd-bench-cluster.XXXXXX)"
trap 'rm -f "$log"' EXIT
echo "bench/cluster: $rounds rule-set changes on a single-node cluster (tests/k8s/node_local_test.sh)" >&2
rc=0
EGRESSD_BIN="$build/bin" EGRESSD_NODE_LOCAL_CHANGES="$rounds" "$root/tests/k8s/node_local_test.sh" > "$log" 2>&1 || rc=$?
if ((rc == 77)); then
  echo "bench/cluster: skipped: $(grep -m1 SKIP "$log")" >&2
  exit 0
fi
line="$(grep -m1 '^k8s.node_local: changes:' "$log" || true)"
[[ -n "$line" ]] || { tail -n 30 "$log" >&2; echo "bench/cluster: no timings (exit $rc)" >&2; exit 1; }
mkdir -p "$out"
python3 - "$line" "$out/cluster.json" "$rc" << 'PYEOF'
import json, sys, datetime, os
line, path, rc = sys.argv[1], sys.argv[2], int(sys.argv[3])
opened_part, closed_part = line.split("apply->open ms ", 1)[1].split("; delete->closed ms ")
def values(text):
    return sorted(int(v) for v in text.split() if v.isdigit())
def pct(v, p):
    return v[min(len(v) - 1, max(0, int(round(p / 100 * len(v) + 0.5)) - 1))] if v else None
opened, closed = values(opened_part), values(closed_part)
result = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "load_average": os.getloadavg()[0],
    "rounds": len(opened),
    "apply_to_open_ms": {"p50": pct(opened, 50), "p99": pct(opened, 99), "max": max(opened, default=None)},
    "delete_to_closed_ms": {"p50": pct(closed, 50), "p99": pct(closed, 99), "max": max(closed, default=None)},
    "goal_apply_p99_le_1000ms": bool(opened) and pct(opened, 99) <= 1000,
    "test_exit": rc,
}
json.dump(result, open(path, "w"), indent=2)
print(json.dumps(result, indent=2))
PYEOF
exit "$rc"

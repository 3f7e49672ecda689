#!/usr/bin/env bash
# nfq benchmark: bench/nfq/nfq_bench.cc explains what it measures (the
# user-space work per queued packet; the kernel round trip is not in it).
set -euo pipefail
build="$1"; results="$2"
"$build/bin/nfq_bench" "$results/nfq.json"
# The kernel round trip needs root and network namespaces.
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null; then
  bash "$(dirname "$0")/queue_bench.sh" "$build" "$results"
else
  echo "nfq: skipping the queue benchmark (needs root for network namespaces)"
fi

#!/usr/bin/env bash
# `make bench`: runs every bench/<component>/run.sh with the build directory,
# each writing bench/results/<component>*.json, then draws the plots.
# Ratios are measured side by side in the same run (shared, noisy machines).
set -euo pipefail
build="$(cd "${1:-build}" && pwd)"
root="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$root/bench/results"
status=0
for script in "$root"/bench/*/run.sh; do
  component="$(basename "$(dirname "$script")")"
  echo "== bench: $component"
  if ! bash "$script" "$build" "$root/bench/results"; then
    echo "bench: $component FAILED" >&2
    status=1
  fi
done
if [ -x "$root/bench/plot.py" ]; then
  python3 "$root/bench/plot.py" "$root/bench/results" || status=1
fi
exit $status

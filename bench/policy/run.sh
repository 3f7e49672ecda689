#!/usr/bin/env bash
# Policy benchmark: bench/policy/policy_bench.cc explains what it measures.
set -euo pipefail
build="$1"; results="$2"
"$build/bin/policy_bench" "$results/policy.json"

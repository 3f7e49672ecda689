#!/usr/bin/env bash
# sni/ benchmark: bench/sni/sni_bench.cc explains what it measures.
set -euo pipefail
build="$1"; results="$2"
here="$(cd "$(dirname "$0")" && pwd)"
"$build/bin/sni_bench" "$here/../../tests/sni/fixtures" "$results/sni.json"

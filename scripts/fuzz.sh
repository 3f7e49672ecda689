#!/usr/bin/env bash
# Runs every libFuzzer target of a fuzz build (make build-fuzz) for N seconds,
# starting from its committed corpus. New inputs go to a scratch copy; a
# crash leaves its reproducer in .fuzz-artifacts/ and fails the run: add it
# to the corpus once fixed, so the replay tests keep it forever.
set -euo pipefail
build="${1:?usage: fuzz.sh BUILD_DIR SECONDS}"
seconds="${2:-20}"
root="$(cd "$(dirname "$0")/.." && pwd)"
list="$build/fuzzers.txt"
[ -s "$list" ] || { echo "fuzz.sh: no fuzzers listed in $list" >&2; exit 1; }
mkdir -p "$root/.fuzz-artifacts"
status=0
ran=0
while IFS='=' read -r name corpus; do
  [ -n "$name" ] || continue
  scratch="$(mktemp -d)"
  cp -r "$corpus"/. "$scratch"/ 2>/dev/null || true
  echo "fuzz.sh: $name for ${seconds}s (corpus $corpus)"
  if ! ASAN_OPTIONS=detect_leaks=1 "$build/bin/$name" -max_total_time="$seconds" -rss_limit_mb=2048 \
      -timeout=10 -print_final_stats=1 -artifact_prefix="$root/.fuzz-artifacts/$name-" "$scratch" \
      > "$build/fuzz-$name.log" 2>&1; then
    echo "fuzz.sh: $name FAILED; see $build/fuzz-$name.log and .fuzz-artifacts/" >&2
    tail -40 "$build/fuzz-$name.log" >&2
    status=1
  else
    grep -E 'stat::number_of_executed_units' "$build/fuzz-$name.log" || true
  fi
  ran=$((ran + 1))
  rm -rf "$scratch"
done < "$list"
echo "fuzz.sh: $ran fuzzers run, $([ $status -eq 0 ] && echo 'no findings' || echo 'FINDINGS')"
exit $status

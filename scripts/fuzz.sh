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
# Each fuzzer is one process on one core: run as many at once as there are
# cores (FUZZ_JOBS), so `make test`'s smoke run costs 22 x 10 s / cores.
jobs="${FUZZ_JOBS:-$(nproc)}"

# One fuzzer, its log in BUILD_DIR/fuzz-NAME.log; the exit status says
# whether it found something.
run_one() {
  local name="$1" corpus="$2" scratch
  scratch="$(mktemp -d)"
  cp -r "$corpus"/. "$scratch"/ 2>/dev/null || true
  local rc=0
  ASAN_OPTIONS=detect_leaks=1 "$build/bin/$name" -max_total_time="$seconds" -rss_limit_mb=2048 \
    -timeout=10 -print_final_stats=1 -artifact_prefix="$root/.fuzz-artifacts/$name-" "$scratch" \
    > "$build/fuzz-$name.log" 2>&1 || rc=$?
  rm -rf "$scratch"
  return $rc
}

# Reports a finished fuzzer (its log's tail when it failed).
report() {
  local name="$1" rc="$2"
  if [ "$rc" -ne 0 ]; then
    echo "fuzz.sh: $name FAILED; see $build/fuzz-$name.log and .fuzz-artifacts/" >&2
    tail -40 "$build/fuzz-$name.log" >&2
    status=1
  else
    echo "fuzz.sh: $name: $(grep -E 'stat::number_of_executed_units' "$build/fuzz-$name.log" || echo 'no stats')"
  fi
}

status=0
ran=0
declare -A running=()  # pid -> fuzzer name
# Waits for any one running fuzzer and reports it.
reap_one() {
  local pid rc=0
  wait -n -p pid "${!running[@]}" || rc=$?
  report "${running[$pid]}" "$rc"
  unset "running[$pid]"
}
while IFS='=' read -r name corpus; do
  [ -n "$name" ] || continue
  while [ "${#running[@]}" -ge "$jobs" ]; do reap_one; done
  echo "fuzz.sh: $name for ${seconds}s (corpus $corpus)"
  run_one "$name" "$corpus" &
  running[$!]="$name"
  ran=$((ran + 1))
done < "$list"
while [ "${#running[@]}" -gt 0 ]; do reap_one; done
echo "fuzz.sh: $ran fuzzers run, $([ $status -eq 0 ] && echo 'no findings' || echo 'FINDINGS')"
exit $status

# shellcheck shell=bash disable=SC2034  # the variables are the caller's
# Sourced by the loopback daemon tests (a real egressd on 127.0.0.1 with a
# real unbound upstream from tests/dns/unbound.sh): one work directory,
# removed at exit after every pid in $pids is killed, and the check counters.
#
#   checks_init NAME       work=/tmp/NAME.XXXXXX, pids=(), the exit trap
#   checks_on_exit CMD     CMD also runs at exit, before the kills
#   ok TEXT                a passed check
#   fail TEXT [DETAIL]     a failed check, then DETAIL or (without it) the
#                          last $checks_log_lines (5) lines of $work/log,
#                          indented
#   check TEXT CMD...      ok or fail on CMD's exit status
#   expect_eq TEXT WANT GOT
#   write_rules FILE TEXT  FILE in $rules_dir ($work/rules), written to a
#                          temp file and renamed, as the controller does
#   egressd_start CONFIG [LOG]
#                          $bin/egressd --config CONFIG in the background,
#                          output to LOG ($work/log), its pid in $egressd_pid
#                          and $pids; waits up to 5 s for egressd.started and
#                          returns 1 (LOG on stderr) if it did not come
#   checks_summary         "N passed, M failed"; returns 1 if any failed

checks_init() {
  work="$(mktemp -d "/tmp/$1.XXXXXX")"
  pids=()
  checks=0
  failures=0
  checks_log_lines=5
  checks_exit_hook=:
  trap checks_cleanup EXIT
}

checks_on_exit() { checks_exit_hook=$1; }

checks_cleanup() {
  $checks_exit_hook
  local p
  for p in "${pids[@]}"; do kill -9 "$p" 2> /dev/null; done
  wait 2> /dev/null
  rm -rf "$work"
}

ok() {
  checks=$((checks + 1))
  echo "ok: $1"
}

fail() {
  checks=$((checks + 1))
  failures=$((failures + 1))
  echo "FAIL: $1"
  if [ -n "${2:-}" ]; then
    printf '%s\n' "$2" | sed 's/^/    /'
  elif [ -f "$work/log" ]; then
    tail -"$checks_log_lines" "$work/log" | sed 's/^/    /'
  fi
}

check() {
  local text=$1
  shift
  if "$@"; then ok "$text"; else fail "$text"; fi
}

expect_eq() { if [ "$2" = "$3" ]; then ok "$1 ($3)"; else fail "$1: want $2, got $3"; fi; }

write_rules() {
  local dir="${rules_dir:-$work/rules}"
  printf '%s\n' "$2" > "$dir/.tmp" && mv "$dir/.tmp" "$dir/$1"
}

egressd_start() {
  local log="${2:-$work/log}"
  "$bin/egressd" --config "$1" > "$log" 2>&1 &
  egressd_pid=$!
  pids+=("$egressd_pid")
  for _ in $(seq 50); do grep -q egressd.started "$log" && return 0; sleep 0.1; done
  cat "$log" >&2
  return 1
}

checks_summary() {
  echo "$((checks - failures)) passed, $failures failed"
  [ "$failures" -eq 0 ]
}

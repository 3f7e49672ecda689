# shellcheck shell=bash
# Sourced by the egressctl script tests: checks on a command's exit code and
# on the lines it printed, counted in $checks and $failures; `expect_summary`
# ends the test ("N passed, M failed", exit 1 on any failure).
#
#   expect_rc WANT DESCRIPTION -- command...   run it; output in $out, exit in $rc
#   expect_line DESCRIPTION TEXT               $out holds TEXT (fixed string)
#   expect_no_line DESCRIPTION TEXT            $out does not hold TEXT
failures=0
checks=0

expect_rc() {
  local want="$1" what="$2"; shift 3
  out="$("$@" 2>&1)"; rc=$?
  checks=$((checks + 1))
  if [ "$rc" != "$want" ]; then
    echo "FAIL: $what: exit $rc, want $want"; echo "$out" | sed 's/^/    /'; failures=$((failures + 1))
  else
    echo "ok: $what"
  fi
}
expect_line() {
  checks=$((checks + 1))
  if ! grep -qF -- "$2" <<<"$out"; then
    echo "FAIL: $1: output lacks: $2"; echo "$out" | sed 's/^/    /'; failures=$((failures + 1))
  else
    echo "ok: $1"
  fi
}
expect_no_line() {
  checks=$((checks + 1))
  if grep -qF -- "$2" <<<"$out"; then
    echo "FAIL: $1: output has: $2"; echo "$out" | sed 's/^/    /'; failures=$((failures + 1))
  else
    echo "ok: $1"
  fi
}
expect_summary() {
  echo "$((checks - failures)) passed, $failures failed"
  [ "$failures" -eq 0 ]
}

# shellcheck shell=bash
# Sourced by every test that runs egressd on the e2e topology:
#
#   . "$EGRESSD_SOURCE_DIR/tests/e2e/harness.sh"   (or a relative path)
#   e2e_start NAME
#
# `bin` must name the directory with egressd. e2e_start makes the work
# directory $dir (/tmp/egressd-NAME.XXXXXX), brings the topology up, loads
# its variables and lib.sh. On exit, e2e_cleanup calls the test's
# e2e_cleanup_extra (if it defines one: its own background processes),
# stops egressd, runs `egressd --uninstall` in the gateway, takes the
# topology down and removes $dir (kept with E2E_KEEP=1).
e2e_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

e2e_cleanup() {
  if declare -F e2e_cleanup_extra > /dev/null; then e2e_cleanup_extra; fi
  if [ -n "${E2E_NS_GW:-}" ] && [ -e "/run/netns/$E2E_NS_GW" ]; then
    stop_egressd TERM > /dev/null 2>&1
    ip netns exec "$E2E_NS_GW" "$bin/egressd" --uninstall --config "$dir/egressd.toml" > /dev/null 2>&1
  fi
  "$e2e_dir/topology.sh" down "$dir" > /dev/null 2>&1
  if [ "${E2E_KEEP:-0}" = 1 ]; then echo "kept $dir"; else rm -rf "$dir"; fi
}

e2e_start() {
  dir="$(mktemp -d "/tmp/egressd-$1.XXXXXX")"
  trap e2e_cleanup EXIT
  trap 'exit 130' INT TERM
  "$e2e_dir/topology.sh" up "$dir" || { echo "FAIL: topology up"; exit 1; }
  eval "$("$e2e_dir/topology.sh" env "$dir")"
  # shellcheck source=tests/e2e/lib.sh
  . "$e2e_dir/lib.sh"
}

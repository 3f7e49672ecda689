#!/usr/bin/env bash
# Shared by the Kubernetes test scripts (tests/k8s/*_test.sh,
# tests/controller/controller_test.sh): result counting, a work dir that is
# always cleaned up, and the real control plane from tests/k8s/.
#
#   source "$src/tests/k8s/lib.sh"
#   k8s_test_init k8s.name          # counters, $work, traps
#   k8s_start_control_plane         # exits 77 when it cannot exist here
#   kc get crds                     # kubectl as admin
#
# A script may define `on_cleanup` (called first on exit) to stop what it
# started itself.
k8s_lib_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

passed=0
failed=0
ok() {
  echo "  ok: $*"
  passed=$((passed + 1))
}
fail() {
  echo "  FAIL: $*"
  failed=$((failed + 1))
}
fatal() {
  echo "FATAL: $*"
  echo "$k8s_test_name: $passed passed, $((failed + 1)) failed"
  exit 1
}
step() { echo "== $*"; }

k8s_cleanup() {
  if declare -F on_cleanup > /dev/null; then on_cleanup; fi
  if [[ -n "${EGRESSD_K8S_DIR:-}" && -d "$EGRESSD_K8S_DIR" ]]; then
    "$k8s_lib_dir/apiserver.sh" stop "$EGRESSD_K8S_DIR" || true
  fi
  rm -rf "$work"
}

k8s_test_init() { # NAME
  k8s_test_name="$1"
  work="$(mktemp -d "${TMPDIR:-/tmp}/egressd-$1.XXXXXX")"
  trap k8s_cleanup EXIT
  trap 'exit 130' INT TERM
}

# Builds (or reuses) the pinned binaries, starts etcd + kube-apiserver on
# loopback and defines kc. Extra apiserver flags: EGRESSD_K8S_APISERVER_ARGS.
k8s_start_control_plane() {
  step "build or reuse kube-apiserver, etcd, kubectl (tests/k8s/build.sh)"
  local go bin envlines
  go="$(command -v go || echo /usr/local/go/bin/go)"
  if ! bin="$("$k8s_lib_dir/build.sh")"; then
    if [[ ! -x "$go" ]]; then
      echo "SKIP: no cached control-plane binaries and no Go toolchain to build them"
      exit 77
    fi
    fatal "tests/k8s/build.sh failed"
  fi
  export EGRESSD_K8S_BIN="$bin"
  ok "binaries in $bin"

  step "start etcd + kube-apiserver on 127.0.0.1 (tests/k8s/apiserver.sh)"
  export EGRESSD_K8S_OWNER_PID=$$
  envlines="$("$k8s_lib_dir/apiserver.sh" start "$work/cluster")" || fatal "apiserver.sh start failed"
  eval "$envlines" # exports KUBECONFIG (admin) among others
  ok "kube-apiserver at $EGRESSD_K8S_SERVER"
}

# kubectl of the pinned release; KUBECONFIG (admin) comes from apiserver.sh.
kc() { "$EGRESSD_K8S_BIN/kubectl" "$@"; }

# Log lines as key=value text whatever log.format says: the shipped config
# logs JSON, so a JSON object becomes `key=value ...` (in its field order)
# and any other line is passed through. grep 'event=X .*field=Y' then
# works on both.
flat_logs() {
  jq -rR '(fromjson? // .) | if type == "object" then (to_entries | map("\(.key)=\(.value | tostring)") | join(" ")) else . end'
}

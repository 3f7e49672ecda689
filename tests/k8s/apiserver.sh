#!/usr/bin/env bash
# A throwaway Kubernetes control plane for tests: etcd + kube-apiserver on
# 127.0.0.1 only, on free ports, with their own certificates, in one folder.
# No controller-manager, scheduler or kubelet: enough for CRDs, RBAC and
# controllers that only talk to the API.
#
#   apiserver.sh start [DIR]   start both, wait for /readyz, print the
#                              `export ...` lines of `env` (eval them)
#   apiserver.sh env   [DIR]   print KUBECONFIG=..., the bin dir on PATH, ...
#   apiserver.sh user  DIR NAME CLUSTERROLE [NAMESPACE]
#                              a ServiceAccount NAME bound to CLUSTERROLE
#                              (cluster-wide, or in NAMESPACE only) and a
#                              kubeconfig that acts as it; prints its path
#   apiserver.sh stop  [DIR]   stop both and remove DIR
#
# DIR defaults to $EGRESSD_K8S_DIR for env/user/stop, and to a new mktemp
# folder for start. A DIR given to start must be empty or absent.
#
# Environment: EGRESSD_K8S_BIN (folder with kube-apiserver, etcd, kubectl;
# default: what build.sh prints, building if needed), EGRESSD_K8S_OWNER_PID
# (if set, a watchdog stops everything when that process is gone, so a test
# killed by a timeout leaves no servers behind), EGRESSD_K8S_READY_TIMEOUT
# (seconds, default 180: the first start on a loaded 2-core machine is slow),
# EGRESSD_K8S_APISERVER_ARGS (extra kube-apiserver flags, split on spaces,
# e.g. "--etcd-compaction-interval=0" for a test that compacts with etcdctl).
#
# Logs: DIR/etcd.log, DIR/kube-apiserver.log. Certificates: DIR/pki.
# etcd and kube-apiserver are started as in tests/k8s/cluster.sh, by the
# functions of tests/k8s/control_plane.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=control_plane.sh
source "$here/control_plane.sh"
marker=".egressd-k8s-harness"

die() {
  echo "apiserver.sh: $*" >&2
  exit 1
}
log() { echo "apiserver.sh: $*" >&2; }

# A TCP port on 127.0.0.1 that nothing listens on right now (and not one we
# already picked). A race with another process remains; start() retries.
picked=" "
free_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 40000))
    [[ "$picked" == *" $p "* ]] && continue
    if [[ -z "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ]]; then
      picked+="$p "
      echo "$p"
      return 0
    fi
  done
  die "no free port found"
}

resolve_dir() { # [DIR] -> absolute DIR of a running (or started) harness
  local d="${1:-${EGRESSD_K8S_DIR:-}}"
  [[ -n "$d" ]] || die "no DIR given and EGRESSD_K8S_DIR is not set"
  [[ -f "$d/$marker" ]] || die "$d is not a harness folder (no $marker)"
  (cd "$d" && pwd)
}

print_env() { # DIR
  local d="$1" BIN API_PORT ETCD_PORT
  # shellcheck source=/dev/null
  source "$d/state"
  echo "export EGRESSD_K8S_DIR='$d'"
  echo "export EGRESSD_K8S_BIN='$BIN'"
  echo "export KUBECONFIG='$d/admin.kubeconfig'"
  echo "export EGRESSD_K8S_SERVER='https://127.0.0.1:$API_PORT'"
  echo "export EGRESSD_K8S_ETCD='http://127.0.0.1:$ETCD_PORT'"
  echo "export PATH='$BIN':\"\$PATH\""
}

alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

do_stop() { # DIR
  local d="$1"
  [[ -f "$d/$marker" ]] || die "$d is not a harness folder (no $marker)"
  if [[ -f "$d/state" ]]; then
    # shellcheck source=/dev/null
    source "$d/state"
    # The watchdog itself calls stop with EGRESSD_K8S_FROM_WATCHDOG=1.
    if [[ -n "${WATCHDOG_PID:-}" && -z "${EGRESSD_K8S_FROM_WATCHDOG:-}" ]]; then
      kill -TERM "$WATCHDOG_PID" 2>/dev/null || true
    fi
    control_plane_stop "${API_PID:-}" "${ETCD_PID:-}"
  fi
  rm -rf "$d"
}

# LAUNCH of control_plane.sh: a background job of this script, its output in
# DIR/NAME.log.
launch() { # NAME CMD...
  "${@:2}" > "$harness_dir/$1.log" 2>&1 < /dev/null &
  CONTROL_PLANE_PID=$!
}

do_start() { # [DIR]
  local d bin
  d="$(control_plane_new_dir "${1:-}" egressd-k8s.XXXXXX "$marker")"
  bin="$(control_plane_bin etcd kube-apiserver kubectl)"
  control_plane_certs "$d/pki" "$d/openssl.log" egressd-test-ca \
    "IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc"
  local token
  # The admin is in system:masters (RBAC bypass).
  token="$(control_plane_add_token "$d/pki" egressd-test-admin system:masters)"

  local timeout="${EGRESSD_K8S_READY_TIMEOUT:-180}" extra=()
  read -r -a extra <<< "${EGRESSD_K8S_APISERVER_ARGS:-}"
  # No controller-manager, no nodes: no endpoint reconciler, no privileged pods.
  local flags=(--authorization-mode=RBAC
    --service-account-issuer=https://kubernetes.default.svc
    --service-cluster-ip-range=10.96.0.0/24
    --endpoint-reconciler-type=none --allow-privileged=false
    "${extra[@]}")
  harness_dir="$d"
  local attempt etcd_port peer_port api_port etcd_pid api_pid
  for attempt in 1 2 3; do
    etcd_port="$(free_port)"
    peer_port="$(free_port)"
    api_port="$(free_port)"
    rm -rf "$d/etcd"
    control_plane_start_etcd launch "$bin" "$d/etcd" egressd-test "$etcd_port" "$peer_port"
    etcd_pid="$CONTROL_PLANE_PID"
    printf 'BIN=%q\nETCD_PID=%s\nETCD_PORT=%s\n' "$bin" "$etcd_pid" "$etcd_port" > "$d/state"
    if ! control_plane_wait_ready etcd "$etcd_pid" 60 "$d/etcd.log" \
      curl -fsS --max-time 5 "http://127.0.0.1:$etcd_port/health"; then
      control_plane_stop "" "$etcd_pid"
      grep -q 'address already in use' "$d/etcd.log" && continue
      do_stop "$d"
      die "etcd did not start"
    fi

    control_plane_start_apiserver launch "$bin" "$d/pki" "http://127.0.0.1:$etcd_port" \
      127.0.0.1 127.0.0.1 "$api_port" "${flags[@]}"
    api_pid="$CONTROL_PLANE_PID"
    printf 'API_PID=%s\nAPI_PORT=%s\n' "$api_pid" "$api_port" >> "$d/state"
    if control_plane_wait_ready kube-apiserver "$api_pid" "$timeout" "$d/kube-apiserver.log" \
      control_plane_readyz "https://127.0.0.1:$api_port" "$d/pki/ca.crt" "$token"; then
      break
    fi
    control_plane_stop "$api_pid" "$etcd_pid"
    if ((attempt < 3)) && grep -q 'address already in use' "$d/kube-apiserver.log"; then
      continue
    fi
    do_stop "$d"
    die "kube-apiserver did not become ready"
  done
  alive "${api_pid:-}" || {
    do_stop "$d"
    die "could not start on free ports after 3 attempts"
  }

  control_plane_kubeconfig "$d/admin.kubeconfig" "https://127.0.0.1:$api_port" "$d/pki/ca.crt" \
    egressd-test-admin "$token"

  if [[ -n "${EGRESSD_K8S_OWNER_PID:-}" ]]; then
    control_plane_watchdog "$EGRESSD_K8S_OWNER_PID" "$d" "$here/apiserver.sh" stop "$d"
    echo "WATCHDOG_PID=$CONTROL_PLANE_PID" >> "$d/state"
  fi
  log "etcd 127.0.0.1:$etcd_port, kube-apiserver https://127.0.0.1:$api_port, folder $d"
  print_env "$d"
}

do_user() { # DIR NAME CLUSTERROLE [NAMESPACE]
  local d
  d="$(resolve_dir "$1")"
  local name="$2" role="$3" ns="${4:-}"
  # shellcheck source=/dev/null
  source "$d/state"
  local k=("$BIN/kubectl" --kubeconfig "$d/admin.kubeconfig")
  "${k[@]}" create namespace egressd-test-users --dry-run=client -o yaml | "${k[@]}" apply -f - > /dev/null
  "${k[@]}" -n egressd-test-users create serviceaccount "$name" --dry-run=client -o yaml |
    "${k[@]}" apply -f - > /dev/null
  if [[ -n "$ns" ]]; then
    "${k[@]}" -n "$ns" create rolebinding "test-user-$name" --clusterrole "$role" \
      --serviceaccount "egressd-test-users:$name" --dry-run=client -o yaml |
      "${k[@]}" apply -f - > /dev/null
  else
    "${k[@]}" create clusterrolebinding "test-user-$name" --clusterrole "$role" \
      --serviceaccount "egressd-test-users:$name" --dry-run=client -o yaml |
      "${k[@]}" apply -f - > /dev/null
  fi
  local token
  token="$("${k[@]}" -n egressd-test-users create token "$name" --duration 2h)"
  control_plane_kubeconfig "$d/user-$name.kubeconfig" "https://127.0.0.1:$API_PORT" "$d/pki/ca.crt" \
    "$name" "$token"
  echo "$d/user-$name.kubeconfig"
}

cmd="${1:-}"
shift || true
case "$cmd" in
  start) do_start "${1:-}" ;;
  env) print_env "$(resolve_dir "${1:-}")" ;;
  user)
    (($# >= 3)) || die "usage: apiserver.sh user DIR NAME CLUSTERROLE [NAMESPACE]"
    do_user "$@"
    ;;
  stop) do_stop "$(resolve_dir "${1:-}")" ;;
  *) die "usage: apiserver.sh start|env|user|stop [DIR] (see the header of this script)" ;;
esac

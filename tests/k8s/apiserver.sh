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
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
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

gen_certs() { # DIR
  local d="$1/pki"
  mkdir -p "$d"
  (
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 \
      -subj "/CN=egressd-test-ca" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
      -subj "/CN=kube-apiserver"
    cat > server.ext <<'EOF'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc
EOF
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -out server.crt -days 2 -extfile server.ext
    # Service-account token signing key pair (TokenRequest, `kubectl create token`).
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key
    openssl pkey -in sa.key -pubout -out sa.pub
  ) > "$1/openssl.log" 2>&1 || {
    cat "$1/openssl.log" >&2
    die "certificate generation failed"
  }
}

write_kubeconfig() { # FILE SERVER CA USER TOKEN
  cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: egressd-test
  cluster:
    server: $2
    certificate-authority: $3
users:
- name: $4
  user:
    token: $5
contexts:
- name: $4@egressd-test
  context:
    cluster: egressd-test
    user: $4
current-context: $4@egressd-test
EOF
  chmod 600 "$1"
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

stop_pid() { # PID NAME
  local pid="$1" i
  alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  log "$2 ($pid) did not stop on TERM; killing"
  kill -KILL "$pid" 2>/dev/null || true
}

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
    stop_pid "${API_PID:-}" kube-apiserver
    stop_pid "${ETCD_PID:-}" etcd
  fi
  rm -rf "$d"
}

# Waits until URL answers 200 (extra curl args after URL), or the process
# PID dies, or TIMEOUT seconds pass.
wait_url() { # NAME PID TIMEOUT LOG URL curl-args...
  local name="$1" pid="$2" timeout="$3" logf="$4" url="$5"
  shift 5
  local start=$SECONDS
  while ((SECONDS - start < timeout)); do
    if ! alive "$pid"; then
      log "$name exited during startup; last lines of $logf:"
      tail -n 30 "$logf" >&2 || true
      return 1
    fi
    if curl -fsS --max-time 5 -o /dev/null "$@" "$url" 2>/dev/null; then
      log "$name ready after $((SECONDS - start)) s"
      return 0
    fi
    sleep 0.5
  done
  log "$name not ready after ${timeout} s; last lines of $logf:"
  tail -n 30 "$logf" >&2 || true
  return 1
}

do_start() { # [DIR]
  local d="${1:-}"
  if [[ -z "$d" ]]; then
    d="$(mktemp -d "${TMPDIR:-/tmp}/egressd-k8s.XXXXXX")"
  else
    mkdir -p "$d"
    [[ -z "$(ls -A "$d")" ]] || die "$d is not empty"
  fi
  d="$(cd "$d" && pwd)"
  touch "$d/$marker"
  local bin="${EGRESSD_K8S_BIN:-}"
  if [[ -z "$bin" ]]; then
    bin="$("$here/build.sh")" || die "building the control plane failed"
  fi
  local b
  for b in etcd kube-apiserver kubectl; do
    [[ -x "$bin/$b" ]] || die "$bin/$b missing (run tests/k8s/build.sh)"
  done
  gen_certs "$d"
  local token
  token="$(openssl rand -hex 24)"
  # token,user,uid,"groups": the admin is in system:masters (RBAC bypass).
  echo "$token,egressd-test-admin,egressd-test-admin,\"system:masters\"" > "$d/pki/tokens.csv"
  chmod 600 "$d/pki/tokens.csv"

  local timeout="${EGRESSD_K8S_READY_TIMEOUT:-180}" extra=()
  read -r -a extra <<< "${EGRESSD_K8S_APISERVER_ARGS:-}"
  local attempt etcd_port peer_port api_port etcd_pid api_pid
  for attempt in 1 2 3; do
    etcd_port="$(free_port)"
    peer_port="$(free_port)"
    api_port="$(free_port)"
    rm -rf "$d/etcd"
    "$bin/etcd" --name egressd-test --data-dir "$d/etcd" \
      --listen-client-urls "http://127.0.0.1:$etcd_port" \
      --advertise-client-urls "http://127.0.0.1:$etcd_port" \
      --listen-peer-urls "http://127.0.0.1:$peer_port" \
      --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
      --initial-cluster "egressd-test=http://127.0.0.1:$peer_port" \
      --unsafe-no-fsync --log-level warn \
      > "$d/etcd.log" 2>&1 < /dev/null &
    etcd_pid=$!
    printf 'BIN=%q\nETCD_PID=%s\nETCD_PORT=%s\n' "$bin" "$etcd_pid" "$etcd_port" > "$d/state"
    if ! wait_url etcd "$etcd_pid" 60 "$d/etcd.log" "http://127.0.0.1:$etcd_port/health"; then
      stop_pid "$etcd_pid" etcd
      grep -q 'address already in use' "$d/etcd.log" && continue
      do_stop "$d"
      die "etcd did not start"
    fi

    "$bin/kube-apiserver" \
      --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
      --secure-port="$api_port" \
      --etcd-servers="http://127.0.0.1:$etcd_port" \
      --cert-dir="$d/pki" \
      --tls-cert-file="$d/pki/server.crt" --tls-private-key-file="$d/pki/server.key" \
      --client-ca-file="$d/pki/ca.crt" \
      --token-auth-file="$d/pki/tokens.csv" \
      --authorization-mode=RBAC \
      --service-account-issuer=https://kubernetes.default.svc \
      --service-account-key-file="$d/pki/sa.pub" \
      --service-account-signing-key-file="$d/pki/sa.key" \
      --service-cluster-ip-range=10.96.0.0/24 \
      --endpoint-reconciler-type=none \
      --allow-privileged=false --profiling=false \
      --v=1 \
      "${extra[@]}" \
      > "$d/kube-apiserver.log" 2>&1 < /dev/null &
    api_pid=$!
    printf 'API_PID=%s\nAPI_PORT=%s\n' "$api_pid" "$api_port" >> "$d/state"
    if wait_url kube-apiserver "$api_pid" "$timeout" "$d/kube-apiserver.log" \
      "https://127.0.0.1:$api_port/readyz" --cacert "$d/pki/ca.crt" \
      -H "Authorization: Bearer $token"; then
      break
    fi
    stop_pid "$api_pid" kube-apiserver
    stop_pid "$etcd_pid" etcd
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

  write_kubeconfig "$d/admin.kubeconfig" "https://127.0.0.1:$api_port" "$d/pki/ca.crt" \
    egressd-test-admin "$token"

  if [[ -n "${EGRESSD_K8S_OWNER_PID:-}" ]]; then
    local owner="$EGRESSD_K8S_OWNER_PID"
    # The watchdog runs this script's stop when the owner is gone.
    (
      exec > /dev/null 2>&1 < /dev/null
      while kill -0 "$owner" 2>/dev/null && [[ -d "$d" ]]; do sleep 2; done
      [[ -d "$d" ]] && EGRESSD_K8S_FROM_WATCHDOG=1 "$here/apiserver.sh" stop "$d"
    ) &
    echo "WATCHDOG_PID=$!" >> "$d/state"
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
  write_kubeconfig "$d/user-$name.kubeconfig" "https://127.0.0.1:$API_PORT" "$d/pki/ca.crt" \
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

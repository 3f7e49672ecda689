# shellcheck shell=bash
# The Kubernetes control plane of the test harnesses, in one place: the
# certificates, static tokens and kubeconfigs, etcd, kube-apiserver, the
# readiness wait and the stop. Sourced by tests/k8s/apiserver.sh (etcd and
# kube-apiserver alone, on loopback, on free ports) and tests/k8s/cluster.sh
# (the same two inside the node's namespaces of a single-node cluster).
#
#   source "$here/control_plane.sh"
#   d="$(control_plane_new_dir DIR TEMPLATE MARKER)"
#   bin="$(control_plane_bin etcd kube-apiserver kubectl ...)"
#   control_plane_certs PKI LOG CA_NAME SAN         # ca, apiserver, sa keys
#   token="$(control_plane_add_token PKI USER GROUPS)"
#   control_plane_start_etcd LAUNCH BIN DATA NAME CLIENT_PORT PEER_PORT
#   control_plane_wait_ready etcd PID TIMEOUT LOG curl -fsS URL/health
#   control_plane_start_apiserver LAUNCH BIN PKI ETCD_URL BIND ADVERTISE PORT FLAG...
#   control_plane_wait_ready kube-apiserver PID TIMEOUT LOG control_plane_readyz URL CA TOKEN
#   control_plane_kubeconfig FILE URL CA USER TOKEN
#   control_plane_watchdog OWNER PATH CMD...
#   control_plane_stop API_PID ETCD_PID
#
# What differs between the harnesses is passed in, not copied: the serving
# certificate's names (SAN), the kube-apiserver flags of one harness only
# (authorization modes, admission plugins, service-account issuer, service
# range, kubelet client), and how a process is started. LAUNCH is a function
# of the sourcing script, called as `LAUNCH NAME CMD...`: it starts CMD in the
# background with its output in NAME's log and sets CONTROL_PLANE_PID to the
# pid of CMD itself (tests read its /proc/PID/cmdline to restart it). The
# sourcing script also defines `log MESSAGE` and `die MESSAGE`.

CONTROL_PLANE_PID=""
control_plane_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# ---- folder and binaries ---------------------------------------------------
# DIR (made if absent; it must be empty), or a new mktemp folder named after
# TEMPLATE; marked with the file MARKER (what stop/down check before they
# remove a folder). Prints its absolute path.
control_plane_new_dir() { # DIR TEMPLATE MARKER
  local d="$1"
  if [[ -z "$d" ]]; then
    d="$(mktemp -d "${TMPDIR:-/tmp}/$2")" || die "cannot make a folder in ${TMPDIR:-/tmp}"
  else
    mkdir -p "$d" || die "cannot make $d"
    [[ -z "$(ls -A "$d")" ]] || die "$d is not empty"
  fi
  d="$(cd "$d" && pwd)"
  touch "$d/$3"
  echo "$d"
}

# $EGRESSD_K8S_BIN, or the folder tests/k8s/build.sh builds or reuses; each
# NAME must be an executable in it. Prints the folder.
control_plane_bin() { # NAME...
  local bin="${EGRESSD_K8S_BIN:-}" b
  if [[ -z "$bin" ]]; then
    bin="$("$control_plane_here/build.sh")" || die "building the Kubernetes binaries failed (tests/k8s/build.sh)"
  fi
  for b in "$@"; do
    [[ -x "$bin/$b" ]] || die "$bin/$b missing (run tests/k8s/build.sh)"
  done
  echo "$bin"
}

# ---- certificates, tokens, kubeconfigs --------------------------------------
# PKI/NAME.{key,crt}: a P-256 key and a certificate signed by PKI/ca, valid
# two days, for serverAuth unless EKU says otherwise.
control_plane_cert() { # PKI NAME SUBJECT [SAN] [EKU]
  local d="$1" n="$2"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=${5:-serverAuth}"
    if [[ -n "${4:-}" ]]; then echo "subjectAltName=$4"; fi
  } > "$d/$n.ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$3" \
    -keyout "$d/$n.key" -out "$d/$n.csr" &&
    openssl x509 -req -in "$d/$n.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
      -days 2 -extfile "$d/$n.ext" -out "$d/$n.crt"
}

# In PKI: the CA (ca.{key,crt}, common name CA_NAME), kube-apiserver's
# serving certificate for SAN (apiserver.{key,crt}) and the service-account
# token signing key pair (sa.{key,pub}). openssl's output goes to LOG, shown
# if a step fails. (A chain of &&: errexit does not apply left of ||.)
control_plane_certs() { # PKI LOG CA_NAME SAN
  local d="$1" logf="$2"
  mkdir -p "$d"
  {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
      -subj "/CN=$3" -keyout "$d/ca.key" -out "$d/ca.crt" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" &&
      control_plane_cert "$d" apiserver "/CN=kube-apiserver" "$4" &&
      openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/sa.key" &&
      openssl pkey -in "$d/sa.key" -pubout -out "$d/sa.pub"
  } > "$logf" 2>&1 || {
    cat "$logf" >&2
    die "certificate generation failed"
  }
}

# Appends a random static token for USER (in the comma-separated GROUPS) to
# PKI/tokens.csv, kube-apiserver's --token-auth-file, and prints it.
control_plane_add_token() { # PKI USER GROUPS
  local token
  token="$(openssl rand -hex 24)" || die "openssl rand failed"
  echo "$token,$2,$2,\"$3\"" >> "$1/tokens.csv"
  chmod 600 "$1/tokens.csv"
  echo "$token"
}

control_plane_kubeconfig() { # FILE SERVER CA USER TOKEN
  cat > "$1" << EOF
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

# ---- etcd and kube-apiserver ------------------------------------------------
# One etcd member on 127.0.0.1 (of whichever network namespace LAUNCH runs
# it in). --unsafe-no-fsync: the data is thrown away anyway.
control_plane_start_etcd() { # LAUNCH BIN DATA NAME CLIENT_PORT PEER_PORT
  local launch="$1" bin="$2" data="$3" name="$4" client="http://127.0.0.1:$5" peer="http://127.0.0.1:$6"
  "$launch" etcd "$bin/etcd" --name "$name" --data-dir "$data" \
    --listen-client-urls "$client" --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
    --initial-cluster "$name=$peer" --unsafe-no-fsync --log-level warn
}

# kube-apiserver with the certificates of control_plane_certs and the static
# tokens of PKI/tokens.csv. FLAGs are the caller's own (they come last, so
# they may also override one of these).
control_plane_start_apiserver() { # LAUNCH BIN PKI ETCD_URL BIND ADVERTISE PORT FLAG...
  local launch="$1" bin="$2" pki="$3" etcd="$4" bind="$5" advertise="$6" port="$7"
  shift 7
  "$launch" kube-apiserver "$bin/kube-apiserver" \
    --bind-address="$bind" --advertise-address="$advertise" --secure-port="$port" \
    --etcd-servers="$etcd" --cert-dir="$pki" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" --token-auth-file="$pki/tokens.csv" \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --profiling=false --v=1 \
    "$@"
}

# ---- readiness -------------------------------------------------------------
control_plane_readyz() { # SERVER CA TOKEN
  curl -fsS --max-time 5 -o /dev/null --cacert "$2" -H "Authorization: Bearer $3" "$1/readyz"
}

# Polls CMD every 0.2 s until it succeeds (0), NAME's process PID dies or
# TIMEOUT seconds pass (1, with the last lines of LOG).
control_plane_wait_ready() { # NAME PID TIMEOUT LOG CMD...
  local name="$1" pid="$2" timeout="$3" logf="$4" start=$SECONDS
  shift 4
  until "$@" > /dev/null 2>&1; do
    if [[ -z "$pid" ]] || ! kill -0 "$pid" 2> /dev/null; then
      log "$name exited during startup; last lines of $logf:"
      tail -n 30 "$logf" >&2 || true
      return 1
    fi
    if ((SECONDS - start >= timeout)); then
      log "$name not ready after $timeout s; last lines of $logf:"
      tail -n 30 "$logf" >&2 || true
      return 1
    fi
    sleep 0.2
  done
  log "$name ready after $((SECONDS - start)) s"
}

# ---- stop ------------------------------------------------------------------
# A background watchdog: once process OWNER is gone, runs CMD (the harness's
# stop or down, with EGRESSD_K8S_FROM_WATCHDOG=1) if PATH still exists, so a
# test killed by a timeout leaves nothing behind. Sets CONTROL_PLANE_PID to
# the watchdog (stop kills it).
control_plane_watchdog() { # OWNER PATH CMD...
  local owner="$1" path="$2"
  shift 2
  (
    exec > /dev/null 2>&1 < /dev/null
    while kill -0 "$owner" 2> /dev/null && [[ -e "$path" ]]; do sleep 2; done
    if [[ -e "$path" ]]; then EGRESSD_K8S_FROM_WATCHDOG=1 "$@"; fi
  ) &
  CONTROL_PLANE_PID=$!
}

# TERM, then KILL after 10 s. An empty or dead PID is nothing to do.
control_plane_stop_pid() { # PID NAME
  local pid="$1" i
  [[ -n "$pid" ]] && kill -TERM "$pid" 2> /dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2> /dev/null || return 0
    sleep 0.1
  done
  log "$2 ($pid) did not stop on TERM; killing"
  kill -KILL "$pid" 2> /dev/null || true
}

# The API server first, so it does not log etcd errors on its way out.
control_plane_stop() { # API_PID ETCD_PID
  control_plane_stop_pid "$1" kube-apiserver
  control_plane_stop_pid "$2" etcd
}

#!/usr/bin/env bash
# A single-node Kubernetes cluster for tests, from real parts, inside two
# network namespaces of its own (docs/kubernetes-testing.md):
#
#   host (root netns)          node netns                    internet netns
#   kubectl -> 127.0.0.1:P ==> etcd, kube-apiserver,    eth0 -- eth0  unbound (auth + resolver)
#   ctr -> containerd.sock     controller-manager,           nginx (HTTPS/HTTP vhosts)
#                              scheduler, kubelet,           services.py
#                              kube-proxy (iptables),
#                              containerd + runc,
#                              cni0 bridge -> pods
#
# The node also has a mount namespace of its own (see start_holder), where
# /etc/resolv.conf names the internet's resolver.
# The host's own interfaces, routes and iptables are never touched: the
# node's iptables (kube-proxy, the CNI's masquerade, egressd's) live in the
# node namespace, and the internet namespace has no route anywhere else.
# kubectl reaches the API server through tests/k8s/nsforward.py, which
# listens on 127.0.0.1 of the host on a free port.
#
#   cluster.sh up [DIR]     build or reuse the binaries (build.sh) and test
#                           images, start everything, wait for the node to be
#                           Ready and CoreDNS to serve; print `export` lines
#   cluster.sh env [DIR]    print them again: KUBECONFIG, CONTAINERD_ADDRESS,
#                           CONTAINERD_NAMESPACE, PATH (kubectl, ctr) ...
#   cluster.sh load TAR...  import image archives (docker-archive or OCI) into
#                           the node's containerd (pods use imagePullPolicy: Never)
#   cluster.sh node CMD...  run CMD in the node's network namespace
#   cluster.sh down [DIR]   remove every process, mount, namespace, cgroup,
#                           file and directory the cluster made; idempotent,
#                           also after a failed or killed `up`
#   cluster.sh gc           `down` for clusters whose owner process is gone
#
# DIR defaults to $EGRESSD_K8S_CLUSTER_DIR for env/load/node/down, and to a
# new mktemp folder for up. kubelet and containerd write to a few fixed
# places whatever their flags say (/var/log/pods, /var/log/containers,
# /var/lib/cni, /run/containerd, /run/netns/cni-*), so one cluster runs on a
# machine at a time: `up` waits for a live one (EGRESSD_K8S_CLUSTER_WAIT
# seconds, default 1800) and collects a dead one first.
#
# Environment: EGRESSD_K8S_OWNER_PID (a watchdog runs `down` when that
# process is gone, so a test killed by a timeout leaves nothing behind),
# EGRESSD_K8S_IMAGES (more image archives to import before pods start),
# EGRESSD_K8S_READY_TIMEOUT (seconds per wait, default 180).
# Needs root, containerd, runc, containernetworking-plugins, and what
# scripts/image/build.py needs
# (scripts/install-deps.sh test).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
# etcd and kube-apiserver as in tests/k8s/apiserver.sh, with the flags of a
# node-backed cluster added.
# shellcheck source=control_plane.sh
source "$here/control_plane.sh"

# ---- addresses (inside the namespaces only) --------------------------------
NODE_NAME=egressd-node
NODE_IP=198.51.100.1   # node eth0; topology.sh's gateway address
INET_IP=198.51.100.2   # internet eth0 (topology.sh INET_IP4): the node's default route
INET_DNS=198.51.100.53 # the internet's resolver: the node's resolv.conf
POD_CIDR=10.244.0.0/24
CLUSTER_CIDR=10.244.0.0/16
SERVICE_CIDR=10.96.0.0/16
API_SVC_IP=10.96.0.1
DNS_SVC_IP=10.96.0.10
CLUSTER_DOMAIN=cluster.local

REG=/run/egressd-k8s-cluster
marker=".egressd-k8s-cluster"
# Fixed places kubelet, containerd, runc, CNI or the apiserver may create
# whatever their flags say; `down` removes those that did not exist before.
GLOBAL_PATHS="/var/lib/kubelet /var/log/pods /var/log/containers /var/lib/cni /run/containerd
/run/xtables.lock /etc/cni /opt/cni /opt/containerd /var/lib/containerd /usr/libexec/kubernetes
/etc/kubernetes /run/kubernetes"

die() {
  echo "cluster.sh: $*" >&2
  exit 1
}
t_start="$EPOCHREALTIME"
log() { # with the seconds since this script started
  local us=$((${EPOCHREALTIME/./} - ${t_start/./}))
  printf 'cluster.sh: [%d.%01ds] %s\n' $((us / 1000000)) $((us / 100000 % 10)) "$*" >&2
}
alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2> /dev/null; }
state_get() { sed -n "s/^$1=//p" "$2/cluster.state" 2> /dev/null | tail -1; }
state_set() { echo "$1=$2" >> "$3/cluster.state"; }

resolve_dir() { # [DIR] -> absolute DIR of a cluster
  local d="${1:-${EGRESSD_K8S_CLUSTER_DIR:-}}"
  [[ -n "$d" ]] || die "no DIR given and EGRESSD_K8S_CLUSTER_DIR is not set"
  [[ -f "$d/$marker" ]] || die "$d is not a cluster folder (no $marker)"
  (cd "$d" && pwd)
}

wait_for() { # DESC TIMEOUT CMD...: poll every 0.2 s
  local desc="$1" timeout="$2" start=$SECONDS
  shift 2
  until "$@" > /dev/null 2>&1; do
    ((SECONDS - start < timeout)) || return 1
    sleep 0.2
  done
  log "$desc after $((SECONDS - start)) s"
}

# ---- certificates and kubeconfigs -----------------------------------------
# The control plane's certificates (control_plane.sh), and those of the
# kubelet: its serving certificate and its client one for the API server.
gen_pki() { # DIR
  local d="$1/pki"
  control_plane_certs "$d" "$1/logs/openssl.log" egressd-test-cluster-ca \
    "IP:127.0.0.1,IP:$NODE_IP,IP:$API_SVC_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN"
  {
    control_plane_cert "$d" apiserver-kubelet-client "/CN=kube-apiserver-kubelet-client" "" clientAuth &&
      control_plane_cert "$d" kubelet "/CN=$NODE_NAME" "IP:$NODE_IP,DNS:$NODE_NAME"
  } >> "$1/logs/openssl.log" 2>&1 || {
    cat "$1/logs/openssl.log" >&2
    die "certificate generation failed"
  }
}

# One static token per component, each with the identity a kubeadm cluster
# gives it, so the default RBAC bindings and the Node authorizer apply.
gen_tokens() { # DIR
  local d="$1" who user groups token
  for who in admin kubelet kube-proxy controller-manager scheduler; do
    case $who in
      admin) user=egressd-test-admin groups=system:masters ;;
      kubelet) user=system:node:$NODE_NAME groups=system:nodes ;;
      kube-proxy) user=system:kube-proxy groups="" ;;
      controller-manager) user=system:kube-controller-manager groups="" ;;
      scheduler) user=system:kube-scheduler groups="" ;;
    esac
    token="$(control_plane_add_token "$d/pki" "$user" "$groups")"
    control_plane_kubeconfig "$d/$who.kubeconfig" "https://$NODE_IP:6443" "$d/pki/ca.crt" "$user" "$token"
    [[ $who == admin ]] && echo "$token" > "$d/pki/admin.token"
  done
  chmod 600 "$d/pki/admin.token"
}

# ---- configuration files ---------------------------------------------------
write_configs() { # DIR
  local d="$1" cg="$2"
  mkdir -p "$d/cni/net.d" "$d/containerd" "$d/kubelet"
  printf 'nameserver %s\noptions timeout:2 attempts:2\n' "$INET_DNS" > "$d/node-resolv.conf"

  # containerd 1.6 (Debian's). Root, state, socket and runc root in DIR;
  # shim sockets still go to /run/containerd/s. No CAP_SYS_RESOURCE in
  # this sandbox: restrict_oom_score_adj, or runc fails raising it.
  cat > "$d/containerd/config.toml" << EOF
version = 2
root = "$d/containerd/root"
state = "$d/containerd/state"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$d/containerd/containerd.sock"
[ttrpc]
  address = "$d/containerd/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$(image_name pause)"
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$d/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$d/cni/net.d"
EOF

  # Pods on a bridge, masqueraded when they leave the pod network (ipMasq),
  # portmap for hostPort; containerd adds loopback itself.
  cat > "$d/cni/net.d/10-egressd-test.conflist" << EOF
{
  "cniVersion": "1.0.0",
  "name": "egressd-test",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$d/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF

  # cgroup v1 (hybrid) with the cgroupfs driver and no CAP_SYS_RESOURCE:
  # failCgroupV1 false, oomScoreAdj 0. Pods under cgroupRoot, a cgroup of
  # this cluster only. No image garbage collection: images are imported,
  # never pulled back.
  cat > "$d/kubelet/config.yaml" << EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $d/pki/kubelet.crt
tlsPrivateKeyFile: $d/pki/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $d/pki/ca.crt}
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://$d/containerd/containerd.sock
imageServiceEndpoint: unix://$d/containerd/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: /$cg
failCgroupV1: false
oomScoreAdj: 0
failSwapOn: false
clusterDNS: [$DNS_SVC_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: /etc/resolv.conf
volumePluginDir: $d/kubelet/volume-plugins
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "64Mi", nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%"}
serializeImagePulls: false
nodeStatusUpdateFrequency: 2s
syncFrequency: 5s
fileCheckFrequency: 5s
logging: {format: text}
EOF

  # Conntrack sysctls left as they are (0): some are per host, not per
  # network namespace.
  cat > "$d/kube-proxy.yaml" << EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $d/kube-proxy.kubeconfig
mode: iptables
clusterCIDR: $CLUSTER_CIDR
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  minSyncPeriod: 0s
  syncPeriod: 30s
EOF
}

image_name() { "$here/images.sh" name "$1"; }

# ---- processes -------------------------------------------------------------
# The node has a mount namespace of its own (a slave of the host's: host
# mounts show inside, the node's never leak out), in which /etc/resolv.conf
# is the node's resolv.conf: a DaemonSet's hostPath /etc/resolv.conf (as
# egressd's) then names the internet's resolver, as on a real node, not the
# machine's. A holder process keeps that namespace; every part of the node
# joins it and the node's network namespace, so kubelet, containerd and runc
# see each other's mounts, and all of them vanish with the last process.
# A bpffs at /sys/fs/bpf, as systemd mounts it on a real node (this
# machine has none): egressd's DaemonSet pins its eBPF programs there.
start_holder() { # DIR
  local d="$1" ns cg
  ns="$(state_get ns_node "$d")"
  cg="$(state_get cgroup "$d")"
  (
    echo "$BASHPID" > "/sys/fs/cgroup/pids/$cg/daemons/cgroup.procs"
    exec setsid nsenter --net="/run/netns/$ns" -- unshare --mount --propagation slave -- \
      sh -c 'mount --bind "$1" /etc/resolv.conf &&
        { [ "$(stat -f -c %T /sys/fs/bpf)" = bpf_fs ] || mount -t bpf bpf /sys/fs/bpf; } &&
        exec sleep infinity' sh "$d/node-resolv.conf"
  ) > "$d/logs/holder.log" 2>&1 < /dev/null &
  echo $! > "$d/pids/holder.pid"
  state_set holder $! "$d"
  wait_for "node mount namespace" 10 holder_ready "$d" || die "the node's mount namespace did not come up: $(cat "$d/logs/holder.log")"
}

holder_ready() { # the holder has exec'd sleep, with the bind mount in place
  local pid
  pid="$(state_get holder "$1")"
  [[ "$(cat "/proc/$pid/comm" 2> /dev/null)" == sleep ]]
}

node_ns_args() { # DIR -> nsenter options for the node's namespaces
  echo "--mount=/proc/$(state_get holder "$1")/ns/mnt --net=/run/netns/$(state_get ns_node "$1")"
}

# Starts CMD in the node's namespaces, detached in its own session, inside
# the cluster's pids cgroup, so `down` finds it and everything it starts
# (shims, containers) by cgroup, not by pid file.
start_node() { # DIR NAME CMD...
  local d="$1" name="$2" cg nsargs
  shift 2
  cg="$(state_get cgroup "$d")"
  read -r -a nsargs <<< "$(node_ns_args "$d")"
  (
    echo "$BASHPID" > "/sys/fs/cgroup/pids/$cg/daemons/cgroup.procs"
    exec setsid nsenter "${nsargs[@]}" -- "$@"
  ) > "$d/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$d/pids/$name.pid"
}

node_pid() { cat "$1/pids/$2.pid" 2> /dev/null || true; }

wait_started() { # DIR NAME TIMEOUT CMD...: CMD succeeds, or NAME died
  control_plane_wait_ready "$2" "$(node_pid "$1" "$2")" "$3" "$1/logs/$2.log" "${@:4}"
}

# LAUNCH of control_plane.sh: in the node, as start_node.
launch_node() { # NAME CMD...
  start_node "$DIR" "$@"
  CONTROL_PLANE_PID="$(node_pid "$DIR" "$1")"
}

in_node() { # DIR CMD...
  local d="$1" nsargs
  shift
  read -r -a nsargs <<< "$(node_ns_args "$d")"
  nsenter "${nsargs[@]}" -- "$@"
}

kc() { "$BIN/kubectl" --kubeconfig "$DIR/admin.kubeconfig" "$@"; }
ctr_() { ctr --address "$DIR/containerd/containerd.sock" -n k8s.io "$@"; }

# ---- up ----------------------------------------------------------------------
# Waits until no live cluster is registered, collecting dead ones, then
# registers DIR. Under a lock, so two `up`s cannot both pass.
claim_machine() { # DIR
  local d="$1" waited=0 limit="${EGRESSD_K8S_CLUSTER_WAIT:-1800}" other
  mkdir -p "$REG"
  while :; do
    exec 8> "$REG/lock"
    flock 8
    cmd_gc_locked
    other="$(cat "$REG"/*.dir 2> /dev/null | head -1 || true)"
    if [[ -z "$other" ]]; then
      echo "$d" > "$REG/$(state_get id "$d").dir"
      exec 8>&-
      return 0
    fi
    exec 8>&-
    ((waited == 0)) && log "another cluster is up ($other); waiting for it to go"
    ((waited < limit)) || die "another cluster ($other) is still up after $limit s"
    sleep 5
    waited=$((waited + 5))
  done
}

cmd_up() { # [DIR]
  [[ "$(id -u)" == 0 ]] || die "must run as root"
  local d
  d="$(control_plane_new_dir "${1:-}" egressd-cluster.XXXXXX "$marker")"
  DIR="$d"
  local t0=$SECONDS timeout="${EGRESSD_K8S_READY_TIMEOUT:-180}"
  mkdir -p "$d/logs" "$d/pids" "$d/images"

  BIN="$(control_plane_bin etcd kube-apiserver kube-controller-manager kube-scheduler kubelet \
    kube-proxy kubectl coredns)"
  local b
  for b in containerd containerd-shim-runc-v2 runc ctr nsenter python3; do
    command -v "$b" > /dev/null || die "$b not found (scripts/install-deps.sh test)"
  done
  [[ -x /usr/lib/cni/bridge ]] || die "no CNI plugins in /usr/lib/cni (containernetworking-plugins)"

  local id cg ns_node ns_inet p created="" cni_before
  id="$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
  cg="egressd-k8s-$id"
  ns_node="egressd-k8s-$id-node"
  ns_inet="egressd-k8s-$id-inet"
  for p in $GLOBAL_PATHS; do [[ -e "$p" ]] || created+="$p "; done
  cni_before="$(cd /run/netns 2> /dev/null && ls -d cni-* 2> /dev/null | tr '\n' ' ' || true)"
  # Recorded before anything exists, so `down` can always undo a partial up.
  cat > "$d/cluster.state" << EOF
id=$id
owner=${EGRESSD_K8S_OWNER_PID:-}
bin=$BIN
cgroup=$cg
ns_node=$ns_node
ns_inet=$ns_inet
created=$created
cni_before=$cni_before
EOF
  claim_machine "$d"
  # A failed or interrupted `up` leaves nothing behind: its background jobs
  # are stopped, then `down` removes what it made.
  trap 'exit 143' TERM
  trap 'exit 130' INT
  trap 'rc=$?; if ((rc != 0)); then log "up failed; removing what it made"; kill $(jobs -p) 2> /dev/null; wait; cmd_down "'"$d"'" || true; fi' EXIT

  if [[ -n "${EGRESSD_K8S_OWNER_PID:-}" ]]; then
    control_plane_watchdog "$EGRESSD_K8S_OWNER_PID" "$d/cluster.state" "$here/cluster.sh" down "$d"
    state_set watchdog "$CONTROL_PLANE_PID" "$d"
  fi

  log "network namespaces $ns_node and $ns_inet"
  ip netns add "$ns_node"
  ip netns add "$ns_inet"
  ip -n "$ns_node" link set lo up
  ip -n "$ns_inet" link set lo up
  ip netns exec "$ns_inet" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
  ip link add eth0 netns "$ns_node" type veth peer name eth0 netns "$ns_inet"
  ip -n "$ns_node" addr add "$NODE_IP/24" dev eth0
  ip -n "$ns_node" link set eth0 up
  ip -n "$ns_node" route add default via "$INET_IP"
  # Routing for pods; bridged pod-to-pod traffic through iptables, as
  # kube-proxy needs for a Service whose endpoint is on the same bridge.
  ip netns exec "$ns_node" sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 \
    net.bridge.bridge-nf-call-ip6tables=1
  # The internet's servers and the images are made while the control plane
  # starts (each takes seconds); waited for before they are needed.
  local inet_job images_job
  "$here/../e2e/topology.sh" internet "$d" "$ns_inet" > "$d/logs/internet.log" 2>&1 &
  inet_job=$!
  (
    "$here/images.sh" pause "$d/images/pause.tar" &&
      "$here/images.sh" coredns "$d/images/coredns.tar" "$BIN/coredns"
  ) > "$d/logs/images.log" 2>&1 &
  images_job=$!

  local h
  mkdir -p "/sys/fs/cgroup/pids/$cg/daemons"
  for h in /sys/fs/cgroup/*/; do
    [[ -f "$h/cgroup.procs" ]] && mkdir -p "$h$cg"
  done
  # A new cpuset cgroup (v1) starts with no CPUs and no memory nodes.
  if [[ -d "/sys/fs/cgroup/cpuset/$cg" ]]; then
    cat /sys/fs/cgroup/cpuset/cpuset.cpus > "/sys/fs/cgroup/cpuset/$cg/cpuset.cpus"
    cat /sys/fs/cgroup/cpuset/cpuset.mems > "/sys/fs/cgroup/cpuset/$cg/cpuset.mems"
  fi

  gen_pki "$d"
  gen_tokens "$d"
  write_configs "$d" "$cg"

  start_holder "$d"
  start_node "$d" containerd containerd --config "$d/containerd/config.toml"
  # etcd and kube-apiserver on the node's fixed ports, the API server on all
  # of the node's addresses (kubelet, kube-proxy and pods reach it there).
  control_plane_start_etcd launch_node "$BIN" "$d/etcd" "$NODE_NAME" 2379 2380
  wait_started "$d" etcd "$timeout" in_node "$d" curl -fsS http://127.0.0.1:2379/health
  control_plane_start_apiserver launch_node "$BIN" "$d/pki" http://127.0.0.1:2379 \
    0.0.0.0 "$NODE_IP" 6443 \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --service-account-issuer="https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --kubelet-client-certificate="$d/pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$d/pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$d/pki/ca.crt" \
    --kubelet-preferred-address-types=InternalIP \
    --allow-privileged=true

  # kubectl on the host: 127.0.0.1:<free port> -> NODE_IP:6443 in the node.
  /usr/bin/env python3 "$here/nsforward.py" "/run/netns/$ns_node" "$NODE_IP" 6443 "$d/apiserver.port" \
    > "$d/logs/nsforward.log" 2>&1 < /dev/null &
  echo $! > "$d/pids/nsforward.pid"
  wait_for "API forwarder listening" 10 test -s "$d/apiserver.port" || die "nsforward.py did not start"
  local port
  port="$(cat "$d/apiserver.port")"
  control_plane_kubeconfig "$d/admin.kubeconfig" "https://127.0.0.1:$port" "$d/pki/ca.crt" \
    egressd-test-admin "$(cat "$d/pki/admin.token")"

  # The pods' images before the kubelet, which would otherwise try to pull.
  wait "$images_job" || die "building the test images failed: $(tail -n 20 "$d/logs/images.log")"
  wait_started "$d" containerd "$timeout" ctr_ version
  # shellcheck disable=SC2086 # a list of paths
  cmd_load "$d" "$d/images/pause.tar" "$d/images/coredns.tar" ${EGRESSD_K8S_IMAGES:-}

  # The other components retry until the API server answers.
  start_node "$d" kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig="$d/controller-manager.kubeconfig" --use-service-account-credentials=true \
    --service-account-private-key-file="$d/pki/sa.key" --root-ca-file="$d/pki/ca.crt" \
    --cluster-cidr="$CLUSTER_CIDR" --service-cluster-ip-range="$SERVICE_CIDR" \
    --leader-elect=false --bind-address=127.0.0.1 --cert-dir="$d/pki/controller-manager" --v=1
  start_node "$d" kube-scheduler "$BIN/kube-scheduler" \
    --kubeconfig="$d/scheduler.kubeconfig" --leader-elect=false --bind-address=127.0.0.1 \
    --cert-dir="$d/pki/scheduler" --v=1
  start_node "$d" kubelet "$BIN/kubelet" --config="$d/kubelet/config.yaml" \
    --kubeconfig="$d/kubelet.kubeconfig" --root-dir="$d/kubelet/root" \
    --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=1
  start_node "$d" kube-proxy "$BIN/kube-proxy" --config="$d/kube-proxy.yaml" --v=1

  wait_started "$d" kube-apiserver "$timeout" control_plane_readyz "https://127.0.0.1:$port" \
    "$d/pki/ca.crt" "$(cat "$d/pki/admin.token")"
  # The API server's calls to the kubelet (logs, exec, port-forward).
  kc create clusterrolebinding egressd-test:apiserver-kubelet \
    --clusterrole=system:kubelet-api-admin --user=kube-apiserver-kubelet-client > /dev/null
  log "CoreDNS as kube-dns ($DNS_SVC_IP)"
  sed -e "s|@DNS_SVC_IP@|$DNS_SVC_IP|" -e "s|@IMAGE@|$(image_name coredns)|" \
    -e "s|@CLUSTER_DOMAIN@|$CLUSTER_DOMAIN|" "$here/cluster/coredns.yaml" | kc apply -f - > /dev/null

  wait_started "$d" kubelet "$timeout" kc get node "$NODE_NAME" || die "the node did not register"
  wait_started "$d" kubelet "$timeout" node_ready || die "the node did not become Ready"
  wait "$inet_job" || die "the internet namespace's servers did not start: $(tail -n 20 "$d/logs/internet.log")"
  kc -n kube-system rollout status deployment/coredns --timeout="${timeout}s" > /dev/null ||
    die "CoreDNS did not become ready: $(kc -n kube-system get pods -o wide 2>&1)"
  # kube-proxy has the Service's rules once the kubernetes.io/... iptables
  # chain for it exists; one query through the ClusterIP proves the path.
  wait_for "kube-dns answers on $DNS_SVC_IP" 60 in_node "$d" \
    dig +time=1 +tries=1 +short "@$DNS_SVC_IP" "kubernetes.default.svc.$CLUSTER_DOMAIN" A ||
    die "kube-dns does not answer on $DNS_SVC_IP"

  trap - EXIT
  log "up in $((SECONDS - t0)) s: node $NODE_NAME Ready, folder $d"
  print_env "$d"
}

node_ready() {
  [[ "$(kc get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}

cmd_load() { # DIR TAR...
  local d="$1" t
  shift
  DIR="$d"
  for t in "$@"; do
    [[ -f "$t" ]] || die "no image archive $t"
    # --all-platforms: an image of another platform is not silently dropped.
    ctr_ images import --all-platforms --no-unpack "$t" > "$d/logs/ctr-import.log" 2>&1 ||
      die "ctr images import $t failed: $(cat "$d/logs/ctr-import.log")"
    log "imported $(basename "$t")"
  done
}

print_env() { # DIR
  local d="$1"
  cat << EOF
export EGRESSD_K8S_CLUSTER_DIR='$d'
export EGRESSD_K8S_BIN='$(state_get bin "$d")'
export KUBECONFIG='$d/admin.kubeconfig'
export CONTAINERD_ADDRESS='$d/containerd/containerd.sock'
export CONTAINERD_NAMESPACE='k8s.io'
export EGRESSD_K8S_NODE_NETNS='$(state_get ns_node "$d")'
export EGRESSD_K8S_INET_NETNS='$(state_get ns_inet "$d")'
export EGRESSD_K8S_NODE_NAME='$NODE_NAME'
export EGRESSD_K8S_NODE_IP='$NODE_IP'
export EGRESSD_K8S_DNS_IP='$DNS_SVC_IP'
export EGRESSD_K8S_TEST_CA='$d/certs/ca.pem'
export PATH='$(state_get bin "$d")':"\$PATH"
EOF
}

# ---- down ------------------------------------------------------------------
# Every pid in the cgroup tree (the daemons and all they started: shims,
# runc, pods), whichever hierarchy still has it.
cgroup_pids() { # CGROUP
  local h
  for h in /sys/fs/cgroup/*/; do
    [[ -d "$h$1" ]] && find "$h$1" -name cgroup.procs -exec cat {} + 2> /dev/null
  done | sort -un
}

# SIGKILL at once: nothing of a test cluster needs a graceful stop, and a
# kubelet left running a moment longer would restart what was just stopped
# (so not control_plane_stop's TERM-then-wait of apiserver.sh).
# Repeated until nothing is left (a process may fork meanwhile).
kill_tree() { # CGROUP NS...: everything of the cluster
  local cg="$1" pids ns i
  shift
  for ((i = 0; i < 50; i++)); do
    pids="$(cgroup_pids "$cg" | tr '\n' ' ')"
    for ns in "$@"; do
      [[ -e "/run/netns/$ns" ]] && pids+=" $(ip netns pids "$ns" 2> /dev/null | tr '\n' ' ')"
    done
    read -r -a pids <<< "$pids"
    ((${#pids[@]} == 0)) && return 0
    kill -KILL "${pids[@]}" 2> /dev/null || true
    sleep 0.1
  done
  log "processes left: $(cgroup_pids "$cg" | tr '\n' ' ')"
}

# Mount points below any of the given paths, deepest first.
mounts_under() { # PATH...
  local p
  awk '{print $5}' /proc/self/mountinfo | while read -r m; do
    m="$(printf '%b' "$m")" # mountinfo writes a space as \040
    for p in "$@"; do
      if [[ "$m" == "$p" || "$m" == "$p"/* ]]; then
        echo "$m"
        break
      fi
    done
  done | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-
}

# Best effort: every step runs even when an earlier one failed, and what
# could not be removed is named at the end (status 1).
cmd_down() { # DIR
  local -
  set +e
  local d="$1"
  [[ -f "$d/$marker" ]] || return 0
  if [[ ! -f "$d/cluster.state" ]]; then
    rm -rf "$d"
    return 0
  fi
  local id cg ns_node ns_inet created cni_before wd p m n
  id="$(state_get id "$d")"
  cg="$(state_get cgroup "$d")"
  ns_node="$(state_get ns_node "$d")"
  ns_inet="$(state_get ns_inet "$d")"
  created="$(state_get created "$d")"
  cni_before=" $(state_get cni_before "$d") "
  wd="$(state_get watchdog "$d")"
  if [[ -n "$wd" && -z "${EGRESSD_K8S_FROM_WATCHDOG:-}" ]]; then kill "$wd" 2> /dev/null || true; fi
  p="$(node_pid "$d" nsforward)"
  alive "$p" && kill "$p" 2> /dev/null

  [[ -n "$cg" ]] && kill_tree "$cg" "$ns_node" "$ns_inet"
  log "down: processes gone"

  # Mounts: overlay rootfs and shm under containerd's state, tmpfs volumes
  # under the kubelet root, network namespaces of pods, and whatever the
  # fixed places hold.
  local roots=("$d" /run/containerd)
  for p in $created; do roots+=("$p"); done
  for n in /run/netns/cni-*; do
    [[ -e "$n" && "$cni_before" != *" ${n#/run/netns/} "* ]] && roots+=("$n")
  done
  while read -r m; do
    [[ -n "$m" ]] || continue
    umount "$m" 2> /dev/null || umount -l "$m" 2> /dev/null || log "cannot unmount $m"
  done < <(mounts_under "${roots[@]}")
  for n in /run/netns/cni-*; do
    [[ -e "$n" && "$cni_before" != *" ${n#/run/netns/} "* ]] && rm -f "$n"
  done

  log "down: mounts gone"
  for n in "$ns_node" "$ns_inet"; do
    [[ -n "$n" && -e "/run/netns/$n" ]] && { ip netns del "$n" 2> /dev/null || log "cannot delete netns $n"; }
    [[ -n "$n" ]] && rm -rf "/etc/netns/$n"
  done

  # cgroups, deepest first (a cgroup with processes cannot go; kill_tree
  # emptied them).
  if [[ -n "$cg" ]]; then
    local h
    for h in /sys/fs/cgroup/*/; do
      [[ -d "$h$cg" ]] && find "$h$cg" -depth -type d -exec rmdir {} + 2> /dev/null
      [[ -d "$h$cg" ]] && log "cannot remove cgroup $h$cg"
    done
  fi

  for p in $created; do rm -rf "$p"; done
  rm -f "$REG/$id.dir"
  rm -rf "$d"
  local left=""
  for n in "$ns_node" "$ns_inet"; do [[ -n "$n" && -e "/run/netns/$n" ]] && left+=" netns:$n"; done
  [[ -n "$cg" ]] && for p in /sys/fs/cgroup/*/"$cg"; do [[ -d "$p" ]] && left+=" cgroup:$p"; done
  left+="$(mounts_under "${roots[@]}" | sed 's/^/ mount:/' | tr -d '\n')"
  [[ -e "$d" ]] && left+=" folder:$d"
  if [[ -n "$left" ]]; then
    log "down: cluster $id NOT completely removed; left:$left"
    return 1
  fi
  log "down: cluster $id removed"
}

# ---- gc ------------------------------------------------------------------------
# A registered cluster is dead when its owner (if it had one) is gone, or,
# without an owner, when its kubelet is gone.
cluster_alive() { # DIR
  local d="$1" owner pid
  [[ -f "$d/cluster.state" ]] || return 1
  owner="$(state_get owner "$d")"
  if [[ -n "$owner" ]]; then
    alive "$owner"
    return
  fi
  pid="$(node_pid "$d" kubelet)"
  [[ -z "$pid" ]] && return 0 # still starting
  alive "$pid"
}

cmd_gc_locked() {
  local f d
  for f in "$REG"/*.dir; do
    [[ -f "$f" ]] || continue
    d="$(cat "$f")"
    if [[ -d "$d" ]] && cluster_alive "$d"; then continue; fi
    log "collecting the leftovers of dead cluster $d"
    if [[ -d "$d" ]]; then cmd_down "$d"; fi
    rm -f "$f"
  done
}

cmd_gc() {
  mkdir -p "$REG"
  exec 8> "$REG/lock"
  flock 8
  cmd_gc_locked
}

cmd="${1:-}"
shift || true
case "$cmd" in
  up) cmd_up "${1:-}" ;;
  env) print_env "$(resolve_dir "${1:-}")" ;;
  load)
    DIR="$(resolve_dir "")"
    cmd_load "$DIR" "$@"
    ;;
  node)
    DIR="$(resolve_dir "")"
    in_node "$DIR" "$@"
    ;;
  down) cmd_down "$(resolve_dir "${1:-}")" ;;
  gc) cmd_gc ;;
  *) die "usage: cluster.sh up|env|down [DIR] | load TAR... | node CMD... | gc (see the header)" ;;
esac

#!/usr/bin/env bash
# k8s.cluster: the single-node test cluster of tests/k8s/cluster.sh works and
# leaves nothing behind (docs/kubernetes-testing.md).
#
#  1. `cluster.sh up`: the node is Ready, client and server report the pinned
#     version, CoreDNS serves behind kube-dns;
#  2. an ordinary pod (the test client image: curl and CA certificates from
#     Debian's packages) resolves a cluster Service by name through CoreDNS
#     and reaches it through kube-proxy, resolves a test name of the
#     "internet" namespace and fetches from its HTTPS and HTTP servers;
#     `kubectl exec` and `kubectl logs` work (API server -> kubelet);
#  3. `cluster.sh down`: no process, mount, network namespace, interface,
#     cgroup, iptables rule of the host, file or directory is left;
#  4. a second cluster in a row, whose owner process is then killed: the
#     watchdog removes it as `down` would.
#
# Needs root and the cluster's parts (scripts/install-deps.sh test). Exits
# 77 (skipped) when not root, or when neither cached Kubernetes binaries nor
# a Go toolchain exist.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="${EGRESSD_SOURCE_DIR:-$(cd "$here/../.." && pwd)}"
cluster="$src/tests/k8s/cluster.sh"

if [[ "$(id -u)" != 0 ]]; then
  echo "SKIP: needs root (network namespaces, cgroups, mounts)"
  exit 77
fi
# shellcheck source=lib.sh
source "$src/tests/k8s/lib.sh"
k8s_test_init k8s.cluster

on_cleanup() {
  if [[ -n "${EGRESSD_K8S_CLUSTER_DIR:-}" && -d "$EGRESSD_K8S_CLUSTER_DIR" ]]; then
    if ((failed > 0)); then
      local f
      for f in "$EGRESSD_K8S_CLUSTER_DIR"/logs/{kubelet,containerd,kube-apiserver}.log; do
        [[ -f "$f" ]] && { echo "--- last lines of $f"; tail -n 20 "$f"; }
      done
    fi
    "$cluster" down "$EGRESSD_K8S_CLUSTER_DIR" > /dev/null 2>&1
  fi
}

step "build or reuse the Kubernetes binaries and CoreDNS (tests/k8s/build.sh)"
if ! bin="$("$here/build.sh")"; then
  if ! command -v go > /dev/null && [[ ! -x /usr/local/go/bin/go ]]; then
    echo "SKIP: no cached Kubernetes binaries and no Go toolchain to build them"
    exit 77
  fi
  fatal "tests/k8s/build.sh failed"
fi
export EGRESSD_K8S_BIN="$bin"
ok "binaries in $bin"

step "test images (tests/k8s/images.sh)"
images="$work/images"
mkdir -p "$images"
"$here/images.sh" client "$images/client.tar" || fatal "the client image did not build"
client_image="$("$here/images.sh" name client)"
ok "client image $client_image"

# What the machine looks like without a cluster: the things `down` must
# restore. Other tests may run beside this one, so only names this cluster
# uses are compared (its namespaces, cgroups, mounts, processes, paths).
snapshot() { # the cluster's traces on the host, one per line
  ip netns list 2> /dev/null | awk '/^egressd-k8s-/ {print "netns " $1}'
  ls -d /run/netns/cni-* 2> /dev/null | sed 's/^/netns-file /'
  ls -d /sys/fs/cgroup/*/egressd-k8s-* 2> /dev/null | sed 's/^/cgroup /'
  awk '$5 ~ /egressd-cluster\.|^\/run\/containerd|^\/var\/lib\/kubelet|^\/run\/netns\/cni-/ {print "mount " $5}' /proc/self/mountinfo
  local p
  for p in /var/lib/kubelet /var/log/pods /var/log/containers /var/lib/cni /run/containerd \
    /run/xtables.lock /etc/cni /opt/cni /opt/containerd /var/lib/containerd /usr/libexec/kubernetes \
    /etc/kubernetes /run/kubernetes; do
    [[ -e "$p" ]] && echo "path $p"
  done
  ls -d "${TMPDIR:-/tmp}"/egressd-cluster.* 2> /dev/null | sed 's/^/dir /'
  # Processes of a cluster: every daemon and shim names the cluster's
  # folder in its arguments (pods are in its cgroup, checked above).
  ps -eo pid=,args= | awk '/egressd-cluster\.|nsforward\.py/ && !/awk / {print "process " $0}'
  ip -o link show | awk -F': ' '$2 ~ /^cni0/ {print "link " $2}'
  iptables-save 2> /dev/null | grep -E 'KUBE-|CNI-' | sed 's/^/iptables /' || true
}
before="$(snapshot)"

up_cluster() { # exports the env of a new cluster owned by this shell
  local envlines
  envlines="$(EGRESSD_K8S_OWNER_PID=$$ "$cluster" up)" || return 1
  eval "$envlines"
}

step "cluster.sh up"
t0=$(date +%s%N)
up_cluster || fatal "cluster.sh up failed"
up_ms=$((($(date +%s%N) - t0) / 1000000))
ok "up in $up_ms ms (folder $EGRESSD_K8S_CLUSTER_DIR)"

kc() { "$bin/kubectl" "$@"; }

[[ "$(kc get node "$EGRESSD_K8S_NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]] &&
  ok "node $EGRESSD_K8S_NODE_NAME Ready" || fail "node not Ready: $(kc get nodes 2>&1)"
source "$here/versions.env"
ver="$(kc version -o json 2> /dev/null)"
[[ "$(jq -r .serverVersion.gitVersion <<< "$ver")" == "$KUBE_VERSION" &&
  "$(jq -r .clientVersion.gitVersion <<< "$ver")" == "$KUBE_VERSION" ]] &&
  ok "kubectl and the server are $KUBE_VERSION" || fail "versions: $ver"
kubelet_ver="$(kc get node "$EGRESSD_K8S_NODE_NAME" -o jsonpath='{.status.nodeInfo.kubeletVersion} {.status.nodeInfo.containerRuntimeVersion}')"
[[ "$kubelet_ver" == "$KUBE_VERSION containerd://"* ]] && ok "kubelet $kubelet_ver" ||
  fail "node info: $kubelet_ver"
[[ "$(kc -n kube-system get deploy coredns -o jsonpath='{.status.readyReplicas}')" == 1 ]] &&
  ok "CoreDNS ready" || fail "CoreDNS: $(kc -n kube-system get pods 2>&1)"
[[ "$(kc -n kube-system get svc kube-dns -o jsonpath='{.spec.clusterIP}')" == "$EGRESSD_K8S_DNS_IP" ]] &&
  ok "kube-dns at $EGRESSD_K8S_DNS_IP" || fail "kube-dns Service: $(kc -n kube-system get svc 2>&1)"
# grep without -q reads to the end: an early exit could SIGPIPE ctr, which
# pipefail would count as a failure.
ctr images ls -q 2> /dev/null | grep -x "$("$here/images.sh" name pause)" > /dev/null &&
  ok "ctr reaches the node's containerd (CONTAINERD_ADDRESS)" || fail "ctr images ls: $(ctr images ls 2>&1)"

step "an ordinary pod: cluster DNS, a Service by name, the internet namespace"
"$cluster" load "$images/client.tar" > /dev/null || fail "cluster.sh load client image"
kc create namespace egressd-test > /dev/null
kc -n egressd-test create configmap test-ca --from-file=ca.pem="$EGRESSD_K8S_TEST_CA" > /dev/null
kc apply -f - > /dev/null << EOF || fail "client pod refused"
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: egressd-test
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: client
    image: $client_image
    imagePullPolicy: Never
    command: [sleep, infinity]
    volumeMounts:
    - {name: test-ca, mountPath: /test-ca, readOnly: true}
  volumes:
  - name: test-ca
    configMap: {name: test-ca}
EOF
t0=$(date +%s%N)
if kc -n egressd-test wait --for=condition=Ready pod/client --timeout=120s > /dev/null; then
  ok "client pod Ready in $((($(date +%s%N) - t0) / 1000000)) ms"
else
  fail "client pod not Ready: $(kc -n egressd-test describe pod client 2>&1 | tail -n 15)"
fi
in_pod() { kc -n egressd-test exec client -- "$@"; }

resolv="$(in_pod cat /etc/resolv.conf 2>&1)"
grep -q "^nameserver $EGRESSD_K8S_DNS_IP$" <<< "$resolv" && ok "the pod's resolver is kube-dns" ||
  fail "pod resolv.conf: $resolv"
# kubernetes.default: a Service name only CoreDNS knows, then kube-proxy's
# DNAT to the API server; /version is public.
out="$(in_pod curl -sS --max-time 10 --cacert /var/run/secrets/kubernetes.io/serviceaccount/ca.crt \
  https://kubernetes.default.svc/version 2>&1)"
[[ "$(jq -r .gitVersion <<< "$out" 2> /dev/null)" == "$KUBE_VERSION" ]] &&
  ok "Service kubernetes.default by name (CoreDNS, kube-proxy)" || fail "kubernetes.default.svc: $out"
# A Service whose endpoint is a pod on the same bridge (CoreDNS's metrics).
out="$(in_pod curl -sS --max-time 10 http://kube-dns.kube-system.svc.cluster.local:9153/metrics 2>&1)"
grep -q '^coredns_build_info' <<< "$out" && ok "Service kube-dns by name, endpoint a pod on the bridge" ||
  fail "kube-dns:9153: $(head -c 300 <<< "$out")"
out="$(in_pod curl -sS --max-time 10 --cacert /test-ca/ca.pem https://api.example.com/ 2>&1)"
[[ "$out" == "vhost=api.example.com scheme=https port=443" ]] &&
  ok "HTTPS to api.example.com in the internet namespace (name via CoreDNS -> its resolver)" ||
  fail "https://api.example.com/: $out"
out="$(in_pod curl -sS --max-time 10 http://www.example.org/ 2>&1)"
[[ "$out" == "vhost=www.example.org scheme=http port=80" ]] && ok "HTTP to www.example.org" ||
  fail "http://www.example.org/: $out"
out="$(in_pod curl -sS --max-time 10 https://nonexistent.example.com/ 2>&1)"
[[ "$out" == *"Could not resolve host"* ]] && ok "a name the internet does not have: NXDOMAIN" ||
  fail "nonexistent.example.com: $out"
logs="$(kc -n kube-system logs deploy/coredns 2>&1)"
grep -q 'CoreDNS-' <<< "$logs" && ok "kubectl logs (CoreDNS says $(grep -o 'CoreDNS-[0-9.]*' <<< "$logs" | head -1))" ||
  fail "kubectl logs coredns: $(head -c 300 <<< "$logs")"

step "cluster.sh down: nothing left"
t0=$(date +%s%N)
"$cluster" down > /dev/null 2>&1 || fail "cluster.sh down failed"
down_ms=$((($(date +%s%N) - t0) / 1000000))
first_dir="$EGRESSD_K8S_CLUSTER_DIR"
after="$(snapshot)"
if [[ "$after" == "$before" ]]; then
  ok "down in $down_ms ms; nothing of the cluster is left"
else
  fail "left after down: $(diff <(echo "$before") <(echo "$after") | grep '^>' | head -n 20)"
fi
[[ ! -e "$first_dir" ]] && ok "its folder is gone" || fail "$first_dir still exists"

step "a second cluster in a row; its owner dies: the watchdog removes it"
owner_pid=
sleep 600 &
owner_pid=$!
t0=$(date +%s%N)
if envlines="$(EGRESSD_K8S_OWNER_PID=$owner_pid "$cluster" up)"; then
  eval "$envlines"
  ok "second up in $((($(date +%s%N) - t0) / 1000000)) ms"
  [[ "$(kc get node "$EGRESSD_K8S_NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]] &&
    ok "node Ready again" || fail "second node not Ready"
  kill -9 "$owner_pid"
  wait "$owner_pid" 2> /dev/null
  # The watchdog's `down` removes the folder before it exits: wait for
  # the process too, not just the folder.
  for _ in $(seq 150); do
    after="$(snapshot)"
    [[ ! -e "$EGRESSD_K8S_CLUSTER_DIR" && "$after" == "$before" ]] && break
    sleep 0.2
  done
  [[ ! -e "$EGRESSD_K8S_CLUSTER_DIR" && "$after" == "$before" ]] &&
    ok "owner killed: the cluster is gone, nothing left" ||
    fail "after the owner died: $(diff <(echo "$before") <(echo "$after") | grep '^>' | head -n 20)"
else
  kill "$owner_pid" 2> /dev/null
  fail "second cluster.sh up failed"
fi

echo "k8s.cluster: timings: up ${up_ms} ms, down ${down_ms} ms"
echo "k8s.cluster: $passed passed, $failed failed"
((failed == 0))

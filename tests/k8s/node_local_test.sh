#!/usr/bin/env bash
# k8s.node_local: egressd deployed as users deploy it, on a real node
# (tests/k8s/cluster.sh), judged from an ordinary pod (docs/kubernetes-testing.md).
#
#  1. the image `make image` builds (scripts/image/egressd.sh) is imported
#     into the node's containerd; `kubectl apply -k` of a kustomize overlay
#     over deploy/overlays/node-local that changes the image tag and declares
#     the test internet's documentation ranges public (rules.public_cidrs);
#  2. the DaemonSet becomes Ready; egressd and the controller log that they
#     run; `kubectl get ers` shows the example rule set (deploy/examples)
#     and the test's rule set Accepted;
#  3. from a pod with no proxy settings and the cluster's default DNS:
#     allowed names over HTTPS and HTTP work; a name no rule allows does not
#     resolve; the same name's address hard-coded does not connect; a
#     cluster Service by name works;
#  4. `egressctl watch` through `kubectl exec` into the egressd container
#     shows the pod's refused queries live;
#  5. `kubectl apply` of a new EgressRuleSet makes the refused name work
#     (time from apply to the first successful connection measured), and
#     `kubectl delete` makes it fail again;
#  6. `kubectl rollout restart ds/egressd`, then SIGKILL of the egressd
#     container (ctr tasks kill), each during a 64 MiB download over one
#     connection: the download completes, new connections to a denied
#     address never get through meanwhile, allowed names work afterwards;
#  7. the uninstall of docs/deploy.md (delete the DaemonSet, the uninstall
#     DaemonSet, delete -k) leaves no EGRESSD chain, ipset, address or
#     interface of egressd's on the node.
#
# Needs root and the cluster's parts; exits 77 (skipped) when not root or
# without Kubernetes binaries and a Go toolchain to build them.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="${EGRESSD_SOURCE_DIR:-$(cd "$here/../.." && pwd)}"
bindir="${EGRESSD_BIN:-$src/build/bin}"
cluster="$src/tests/k8s/cluster.sh"

if [[ "$(id -u)" != 0 ]]; then
  echo "SKIP: needs root (network namespaces, cgroups, mounts)"
  exit 77
fi
# shellcheck source=lib.sh
source "$src/tests/k8s/lib.sh"
k8s_test_init k8s.node_local

on_cleanup() {
  if [[ -n "${EGRESSD_K8S_CLUSTER_DIR:-}" && -d "$EGRESSD_K8S_CLUSTER_DIR" ]]; then
    if ((failed > 0)); then
      echo "--- pods"
      kc get pods -A -o wide 2>&1 | tail -n 20
      echo "--- egressd (last lines)"
      kc -n egressd-system logs ds/egressd -c egressd --tail=30 2>&1
      echo "--- controller (last lines)"
      kc -n egressd-system logs ds/egressd -c controller --tail=15 2>&1
    fi
    "$cluster" down "$EGRESSD_K8S_CLUSTER_DIR" > /dev/null 2>&1
  fi
}
kc() { "$EGRESSD_K8S_BIN/kubectl" "$@"; }
now_ms() { date +%s%3N; }

for b in egressd egress-controller egressctl; do
  [[ -x "$bindir/$b" ]] || fatal "$bindir/$b not built"
done

step "binaries and images"
if ! bin="$("$here/build.sh")"; then
  if ! command -v go > /dev/null && [[ ! -x /usr/local/go/bin/go ]]; then
    echo "SKIP: no cached Kubernetes binaries and no Go toolchain to build them"
    exit 77
  fi
  fatal "tests/k8s/build.sh failed"
fi
export EGRESSD_K8S_BIN="$bin"
t0=$(now_ms)
IMAGE_OUT="$work/egressd-image.tar" "$src/scripts/image/egressd.sh" "$bindir/.." > "$work/image.log" 2>&1 ||
  fatal "scripts/image/egressd.sh failed: $(tail -n 20 "$work/image.log")"
version="$("$bindir/egressd" --version | awk '{print $2}')"
ok "egressd image localhost/egressd:$version (scripts/image/egressd.sh, $(($(now_ms) - t0)) ms)"
"$here/images.sh" client "$work/client.tar" || fatal "the client image did not build"
client_image="$("$here/images.sh" name client)"

step "cluster.sh up, with both images imported"
t0=$(now_ms)
envlines="$(EGRESSD_K8S_OWNER_PID=$$ EGRESSD_K8S_IMAGES="$work/egressd-image.tar $work/client.tar" "$cluster" up)" ||
  fatal "cluster.sh up failed"
eval "$envlines"
up_ms=$(($(now_ms) - t0))
ok "cluster up in $up_ms ms"

step "kubectl apply -k: deploy/overlays/node-local, the image tag and the test internet's ranges"
# The overlay changes the image tag, and one thing a test cannot avoid: its
# "internet" is documentation address space (no real public address may be
# used here), which egressd treats as internal, refusing DNS answers that
# point into it. So the shipped egressd.toml is used as it is, with
# rules.public_cidrs declaring those ranges public, as an operator would for
# a network of their own. Nothing else differs from what users deploy.
overlay="$work/overlay"
mkdir -p "$overlay"
awk '{print} /^\[rules\]$/ {print "public_cidrs = [\"198.51.100.0/24\", \"203.0.113.0/24\", \"2001:db8::/32\"]"}' \
  "$src/deploy/base/egressd.toml" > "$overlay/egressd.toml"
[[ "$(diff "$src/deploy/base/egressd.toml" "$overlay/egressd.toml" | grep -c '^[<>]')" == 1 ]] ||
  fatal "the test's egressd.toml differs from deploy/base/egressd.toml in more than public_cidrs"
cat > "$overlay/kustomization.yaml" << EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- $(realpath --relative-to="$overlay" "$src/deploy/overlays/node-local")
images:
- name: localhost/egressd
  newTag: "$version"
configMapGenerator:
- name: egressd-config
  namespace: egressd-system
  behavior: replace
  files:
  - egressd.toml
EOF
t0=$(now_ms)
# The CRD and the objects of its kind come in one apply: the first may
# refuse the latter until the CRD is established, as for any user.
if ! kc apply -k "$overlay" > "$work/apply.log" 2>&1; then
  kc wait --for=condition=Established --timeout=60s crd/egressrulesets.zalando.org > /dev/null 2>&1
  kc apply -k "$overlay" > "$work/apply.log" 2>&1 || fail "kubectl apply -k: $(tail -n 5 "$work/apply.log")"
fi
images="$(kc -n egressd-system get ds egressd -o jsonpath='{.spec.template.spec.initContainers[*].image} {.spec.template.spec.containers[*].image}')"
[[ "$(tr ' ' '\n' <<< "$images" | sort -u)" == "localhost/egressd:$version" ]] &&
  ok "every container runs localhost/egressd:$version" || fail "DaemonSet images: $images"
if kc -n egressd-system rollout status ds/egressd --timeout=180s > /dev/null 2>&1; then
  ds_ms=$(($(now_ms) - t0))
  ok "DaemonSet egressd Ready in $ds_ms ms"
else
  fail "DaemonSet not ready: $(kc -n egressd-system get pods -o wide 2>&1 | tail -n 3)"
  fatal "no egressd on the node; the pod checks cannot run"
fi
logs="$(kc -n egressd-system logs ds/egressd -c egressd 2>&1 | flat_logs)"
grep -q 'event=egressd.started' <<< "$logs" && grep -q "event=dns.intercepting address=$EGRESSD_K8S_DNS_IP:53" <<< "$logs" &&
  ok "egressd logs that it started and took $EGRESSD_K8S_DNS_IP:53 over" ||
  fail "egressd log: $(head -c 600 <<< "$logs")"
# The shipped configuration's data path: the kernel fast path, the kernel
# guard (bpffs from the host) and the kernel verdict (one queue).
chain_line="$(grep -m1 'event=nfq.chain_installed' <<< "$logs")"
grep -q 'fast_path=on kernel_guard=/sys/fs/bpf/[^ ]* kernel_verdict=on' <<< "$chain_line" &&
  ok "the DaemonSet runs the fast path, the kernel guard and the kernel verdict" ||
  fail "chain: ${chain_line:-no nfq.chain_installed line} $(grep -m1 'kernel_verdict_unavailable\|kernel_guard_unavailable' <<< "$logs")"
logs="$(kc -n egressd-system logs ds/egressd -c controller 2>&1 | flat_logs)"
grep -q 'event=lease.acquired' <<< "$logs" && grep -q 'event=list.done' <<< "$logs" &&
  ok "egress-controller logs its Lease and its first list" || fail "controller log: $(head -c 600 <<< "$logs")"

step "rule sets: the example of deploy/examples and the test's own"
kc create namespace egressd-test > /dev/null
kc -n egressd-test apply -f "$src/deploy/examples/my-app-targets.yaml" > /dev/null || fail "example refused"
kc -n egressd-test apply -f - > /dev/null << 'EOF' || fail "test rule set refused"
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata:
  name: api-https
spec:
  targets:
  - api.example.com:443
EOF
accepted() { # NAME: Accepted=True
  [[ "$(kc -n egressd-test get ers "$1" -o jsonpath='{.status.conditions[?(@.type=="Accepted")].status}' 2> /dev/null)" == True ]]
}
for rs in my-app-targets api-https; do
  for _ in $(seq 100); do accepted "$rs" && break; sleep 0.2; done
  accepted "$rs" && ok "ers $rs Accepted" || fail "ers $rs: $(kc -n egressd-test get ers "$rs" -o wide 2>&1)"
done

step "an ordinary pod: no proxy, the cluster's default DNS"
kc -n egressd-test create configmap test-ca --from-file=ca.pem="$EGRESSD_K8S_TEST_CA" > /dev/null
# A test client pod (curl and the test CA) named $1 in egressd-test; the
# rest of the arguments are YAML lines added under its metadata.
apply_client_pod() {
  local name=$1
  shift
  {
    printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: egressd-test\n' "$name"
    printf '  %s\n' "$@"
    cat << EOF
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: client
    image: $client_image
    imagePullPolicy: Never
    volumeMounts:
    - {name: test-ca, mountPath: /test-ca, readOnly: true}
  volumes:
  - name: test-ca
    configMap: {name: test-ca}
EOF
  } | kc apply -f - > /dev/null
}
# The transparent path alone: the injection webhook leaves this pod without
# proxy variables (docs/injection.md); "proxied" below gets them.
apply_client_pod client 'labels: {egressd.io/inject: disabled}' || fail "client pod refused"
kc -n egressd-test wait --for=condition=Ready pod/client --timeout=120s > /dev/null ||
  fatal "client pod not Ready: $(kc -n egressd-test describe pod client 2>&1 | tail -n 10)"
in_pod() { kc -n egressd-test exec client -- "$@"; }
curl_pod() { # curl in the pod; prints "exit=N body"
  local out rc
  out="$(in_pod curl -sS --max-time 5 --cacert /test-ca/ca.pem "$@" 2>&1)"
  rc=$?
  echo "exit=$rc $out"
}
grep -q "^nameserver $EGRESSD_K8S_DNS_IP$" <<< "$(in_pod cat /etc/resolv.conf)" &&
  ok "the pod's resolver is the kube-dns address $EGRESSD_K8S_DNS_IP (unchanged)" || fail "pod resolv.conf"

out="$(curl_pod https://api.example.com/)"
[[ "$out" == "exit=0 vhost=api.example.com scheme=https port=443" ]] &&
  ok "allowed name over HTTPS (api.example.com:443, rule set api-https)" || fail "https://api.example.com/: $out"
out="$(curl_pod http://www.example.org/)"
[[ "$out" == "exit=0 vhost=www.example.org scheme=http port=80" ]] &&
  ok "allowed name over HTTP (www.example.org:80, the example's *.example.org:80)" || fail "http://www.example.org/: $out"
# The shipped data path at work: of two connections in a row, the second
# is judged by the kernel verdict (the first after a quiet moment may be
# queued: its verdict renews the program's consumer lease).
kernel_verdicts() {
  "$cluster" node curl -s --max-time 3 http://127.0.0.1:9153/metrics |
    awk '$1 == "egressd_nfq_kernel_verdicts_total{queue=\"0\"}" { print $2 }'
}
kv0="$(kernel_verdicts)"
out="$(curl_pod -H 'Connection: close' https://api.example.com/ https://api.example.com/)"
kv1="$(kernel_verdicts)"
[[ "$out" == "exit=0 "* && "${kv1:-0}" -gt "${kv0:-0}" ]] &&
  ok "the kernel verdict judged $((${kv1:-0} - ${kv0:-0})) of two HTTPS connections in a row" ||
  fail "two connections: $out; kernel verdicts ${kv0:-none} -> ${kv1:-none}"
out="$(curl_pod https://other.example.com/)"
[[ "$out" == "exit=6 "* ]] && ok "a name no rule allows does not resolve (other.example.com)" ||
  fail "https://other.example.com/: $out"
out="$(curl_pod --resolve other.example.com:443:203.0.113.11 https://other.example.com/)"
[[ "$out" != "exit=0 "* && "$out" != *vhost=* ]] &&
  ok "its address hard-coded does not connect (${out%% *})" || fail "other.example.com by address: $out"
out="$(curl_pod --resolve api.example.com:80:203.0.113.10 http://api.example.com/)"
[[ "$out" != "exit=0 "* && "$out" != *vhost=* ]] &&
  ok "an allowed name on a port no rule allows does not connect (api.example.com:80, ${out%% *})" ||
  fail "http://api.example.com/: $out"
out="$(in_pod curl -sS --max-time 5 --cacert /var/run/secrets/kubernetes.io/serviceaccount/ca.crt \
  https://kubernetes.default.svc/version 2>&1)"
grep -q '"gitVersion"' <<< "$out" && ok "a cluster Service by name (kubernetes.default.svc)" ||
  fail "kubernetes.default.svc: $out"
out="$(in_pod curl -sS --max-time 5 http://kube-dns.kube-system.svc.cluster.local:9153/metrics 2>&1)"
grep -q '^coredns_build_info' <<< "$out" && ok "a cluster Service whose endpoint is a pod (kube-dns:9153)" ||
  fail "kube-dns:9153: $(head -c 200 <<< "$out")"

step "egressctl watch through kubectl exec shows the pod's decisions live"
pod_ip="$(kc -n egressd-test get pod client -o jsonpath='{.status.podIP}')"
kc -n egressd-system exec ds/egressd -c egressd -- egressctl watch -c 3 --no-colour 'name other.example.com' \
  > "$work/watch.out" 2>&1 &
watch_pid=$!
# Refused queries until watch has printed its three lines (it may take a
# moment to attach: a query before that is not seen).
for _ in $(seq 30); do
  kill -0 "$watch_pid" 2> /dev/null || break
  curl_pod https://other.example.com/ > /dev/null
  sleep 0.3
done
kill "$watch_pid" 2> /dev/null
wait "$watch_pid" 2> /dev/null
# The line names the pod (attribution: the controller's pod map), not
# its address $pod_ip.
if grep -q "^[0-9:.]* egressd-test/client:[0-9]* > .* dns A other.example.com DENY" "$work/watch.out"; then
  ok "egressctl watch names the pod: $(grep -m1 ' dns A other.example.com' "$work/watch.out")"
else
  fail "egressctl watch printed: $(head -c 500 "$work/watch.out")"
fi

step "an injected pod: proxy variables from the webhook, egressd's proxy on the node"
if kc -n egressd-system rollout status deploy/egressd-webhook --timeout=120s > /dev/null 2>&1; then
  ok "the injection webhook's Deployment is Ready"
else
  fail "webhook not ready: $(kc -n egressd-system get pods -o wide 2>&1 | grep webhook | tail -n 3)"
fi
node_ip="$(kc get node -o jsonpath='{.items[0].status.addresses[?(@.type=="InternalIP")].address}')"
proxied_env=""
for _ in $(seq 20); do # the API server may need a moment for the new caBundle
  kc -n egressd-test delete pod proxied --now --ignore-not-found > /dev/null 2>&1
  apply_client_pod proxied || fail "proxied pod refused"
  proxied_env="$(kc -n egressd-test get pod proxied -o jsonpath='{.spec.containers[0].env[?(@.name=="HTTPS_PROXY")].value}')"
  [[ -n "$proxied_env" ]] && break
  sleep 1
done
# shellcheck disable=SC2016 # $(EGRESSD_NODE_IP) is the kubelet's expansion
[[ "$proxied_env" == 'http://$(EGRESSD_NODE_IP):3128' ]] &&
  ok "a new pod is stored with HTTPS_PROXY=$proxied_env" ||
  fail "pod proxied: HTTPS_PROXY '$proxied_env'; env $(kc -n egressd-test get pod proxied -o jsonpath='{.spec.containers[0].env}')"
kc -n egressd-test wait --for=condition=Ready pod/proxied --timeout=120s > /dev/null ||
  fail "proxied pod not Ready: $(kc -n egressd-test describe pod proxied 2>&1 | tail -n 5)"
out="$(kc -n egressd-test exec proxied -- curl -sS --max-time 5 --cacert /test-ca/ca.pem https://api.example.com/ 2>&1)"
[[ "$out" == "vhost=api.example.com scheme=https port=443" ]] &&
  ok "allowed name through the proxy (CONNECT api.example.com:443)" || fail "proxied https://api.example.com/: $out"
out="$(kc -n egressd-test exec proxied -- curl -sS --max-time 5 --cacert /test-ca/ca.pem https://other.example.com/ 2>&1)"
[[ "$out" == *403* && "$out" != *vhost=* ]] &&
  ok "a name no rule allows is refused by the proxy (${out:0:90})" || fail "proxied https://other.example.com/: $out"
# Through the proxy, not around it: egressd's proxy logged both requests
# (the image has no shell to print the variables; the kubelet expanded
# $(EGRESSD_NODE_IP) to the node's address $node_ip or curl would not have
# reached the proxy).
logs="$(kc -n egressd-system logs ds/egressd -c egressd 2>&1 | flat_logs)"
for name in api.example.com other.example.com; do
  grep -q "event=proxy.request.*$name" <<< "$logs" &&
    ok "egressd's proxy logged the request for $name" || fail "no proxy.request line for $name"
done
kc -n egressd-test delete pod proxied --now > /dev/null 2>&1

step "kubectl apply of a new rule set opens a refused name; delete closes it"
# EGRESSD_NODE_LOCAL_CHANGES rounds (1 by default; bench/cluster asks for
# 20 and reports p50/p99). Each time runs from the API call to the first
# curl (through kubectl exec, which adds its own round trip) that succeeds.
opened_all=() closed_all=()
# ms_until PATTERN URL: curl URL in the pod every 0.1 s until its
# "exit=N body" matches PATTERN; prints the ms since $t0 (nothing after
# 30 s, when the last output goes to $work/ms_until.last for the message).
ms_until() {
  while (($(now_ms) - t0 < 30000)); do
    out="$(curl_pod "$2")"
    # shellcheck disable=SC2053 # PATTERN is a glob on purpose
    if [[ "$out" == $1 ]]; then
      echo $(($(now_ms) - t0))
      return
    fi
    sleep 0.1
  done
  echo "$out" > "$work/ms_until.last"
}
for round in $(seq "${EGRESSD_NODE_LOCAL_CHANGES:-1}"); do
  t0=$(now_ms)
  kc -n egressd-test apply -f - > /dev/null << 'EOF' || fail "rule set other-https refused"
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata:
  name: other-https
spec:
  targets:
  - other.example.com:443
EOF
  opened="$(ms_until "exit=0 vhost=other.example.com*" https://other.example.com/)"
  [[ -n "$opened" ]] && ok "round $round: apply -> first successful connection in $opened ms (through kubectl exec)" ||
    fail "round $round: other.example.com still refused 30 s after apply: $(cat "$work/ms_until.last")"
  t0=$(now_ms)
  kc -n egressd-test delete ers other-https > /dev/null || fail "delete other-https"
  closed="$(ms_until "exit=6 *" https://other.example.com/)"
  [[ -n "$closed" ]] && ok "round $round: delete -> the name no longer resolves in $closed ms" ||
    fail "round $round: other.example.com still resolves 30 s after delete: $(cat "$work/ms_until.last")"
  opened_all+=("${opened:-?}") closed_all+=("${closed:-?}")
done
out="$(curl_pod --resolve other.example.com:443:203.0.113.11 https://other.example.com/)"
[[ "$out" != "exit=0 "* ]] && ok "and its address does not connect (${out%% *})" || fail "after delete, by address: $out"

step "kubectl rollout restart ds/egressd during a long download"
# 64 MiB at 4 MB/s over one connection to an allowed name: about 16 s.
kc -n egressd-test exec client -- curl -sS --max-time 120 --limit-rate 4M --cacert /test-ca/ca.pem \
  -o /dev/null -w '%{http_code} %{size_download}' https://api.example.com/bulk > "$work/download.out" 2>&1 &
dl_pid=$!
sleep 2
kc -n egressd-system rollout restart ds/egressd > /dev/null || fail "rollout restart"
t0=$(now_ms)
tries=0
leaks=0
restarted=""
while (($(now_ms) - t0 < 120000)); do
  # A denied name by address, a new connection each time: never through.
  out="$(in_pod curl -sS --max-time 2 --cacert /test-ca/ca.pem --resolve other.example.com:443:203.0.113.11 \
    https://other.example.com/ 2>&1)" && leaks=$((leaks + 1))
  tries=$((tries + 1))
  if kc -n egressd-system rollout status ds/egressd --timeout=1s > /dev/null 2>&1; then
    restarted=$(($(now_ms) - t0))
    break
  fi
done
[[ -n "$restarted" ]] && ok "the DaemonSet rolled over in $restarted ms" || fail "rollout did not finish in 120 s"
((leaks == 0 && tries > 0)) && ok "during the restart: $tries new connections to a denied address, none through" ||
  fail "during the restart $leaks of $tries connections to a denied address went through"
wait "$dl_pid"
[[ "$(cat "$work/download.out")" == "200 67108864" ]] &&
  ok "the download over one connection completed across the restart (64 MiB)" ||
  fail "download across the restart: $(cat "$work/download.out")"
out="$(curl_pod https://api.example.com/)"
[[ "$out" == "exit=0 vhost=api.example.com scheme=https port=443" ]] &&
  ok "after the restart: a new connection to an allowed name works" || fail "after the restart: $out"

step "the egressd container killed (SIGKILL) during a long download"
cid="$(kc -n egressd-system get pods -l app.kubernetes.io/name=egressd \
  -o jsonpath='{.items[0].status.containerStatuses[?(@.name=="egressd")].containerID}')"
cid="${cid#containerd://}"
restarts0="$(kc -n egressd-system get pods -l app.kubernetes.io/name=egressd \
  -o jsonpath='{.items[0].status.containerStatuses[?(@.name=="egressd")].restartCount}')"
kc -n egressd-test exec client -- curl -sS --max-time 120 --limit-rate 4M --cacert /test-ca/ca.pem \
  -o /dev/null -w '%{http_code} %{size_download}' https://api.example.com/bulk > "$work/download2.out" 2>&1 &
dl_pid=$!
sleep 2
ctr tasks kill -s SIGKILL "$cid" > /dev/null 2>&1 || fail "ctr tasks kill $cid"
t0=$(now_ms)
tries=0
leaks=0
back=""
while (($(now_ms) - t0 < 120000)); do
  out="$(in_pod curl -sS --max-time 2 --cacert /test-ca/ca.pem --resolve other.example.com:443:203.0.113.11 \
    https://other.example.com/ 2>&1)" && leaks=$((leaks + 1))
  tries=$((tries + 1))
  st="$(kc -n egressd-system get pods -l app.kubernetes.io/name=egressd \
    -o jsonpath='{.items[0].status.containerStatuses[?(@.name=="egressd")].restartCount} {.items[0].status.containerStatuses[?(@.name=="egressd")].ready}')"
  if [[ "$st" == "$((restarts0 + 1)) true" ]]; then
    back=$(($(now_ms) - t0))
    break
  fi
  sleep 0.2
done
[[ -n "$back" ]] && ok "egressd restarted by the kubelet and Ready again in $back ms" ||
  fail "egressd not back 120 s after SIGKILL: $st"
((leaks == 0 && tries > 0)) && ok "while it was gone: $tries new connections to a denied address, none through" ||
  fail "while egressd was gone $leaks of $tries connections to a denied address went through"
wait "$dl_pid"
[[ "$(cat "$work/download2.out")" == "200 67108864" ]] &&
  ok "the download over one connection completed across the kill (64 MiB)" ||
  fail "download across the kill: $(cat "$work/download2.out")"
out="$(curl_pod https://api.example.com/)"
[[ "$out" == "exit=0 vhost=api.example.com scheme=https port=443" ]] &&
  ok "after the kill: a new connection to an allowed name works" || fail "after the kill: $out"

step "uninstall as docs/deploy.md says: nothing of egressd's left on the node"
on_node() { "$cluster" node "$@"; }
node_traces() { # egressd's chains, ipsets, addresses and interface on the node
  on_node iptables-save 2> /dev/null | grep -E '^:EGRESSD|-j EGRESSD' | sed 's/^/iptables: /'
  on_node ip6tables-save 2> /dev/null | grep -E '^:EGRESSD|-j EGRESSD' | sed 's/^/ip6tables: /'
  on_node ipset list -n 2> /dev/null | grep -i egressd | sed 's/^/ipset: /'
  on_node ip -o addr show 2> /dev/null | grep -E "egressd|$EGRESSD_K8S_DNS_IP/" | awk '{print "address: " $2 " " $4}'
  on_node ip -o link show egressd-dns 2> /dev/null | sed 's/^/link: /'
}
before_uninstall="$(node_traces)"
grep -q '^iptables: :EGRESSD ' <<< "$before_uninstall" && grep -q "^address: lo $EGRESSD_K8S_DNS_IP/32" <<< "$before_uninstall" &&
  ok "while installed: the EGRESSD chain and $EGRESSD_K8S_DNS_IP on lo are on the node" ||
  fail "egressd's traces on the node while installed: $before_uninstall"
# The uninstall DaemonSet needs no image but egressd's (its idle container
# is egressd-pause from that image; this node has no registry): the
# overlay only sets the tag of the image the install used.
uninstall="$work/uninstall"
mkdir -p "$uninstall"
cat > "$uninstall/kustomization.yaml" << EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- $(realpath --relative-to="$uninstall" "$src/deploy/uninstall")
images:
- name: localhost/egressd
  newTag: "$version"
EOF
kc -n egressd-system delete ds egressd --wait=true --timeout=60s > /dev/null || fail "delete ds egressd"
kc apply -k "$uninstall" > "$work/uninstall.log" 2>&1 || fail "apply -k deploy/uninstall: $(tail -n 3 "$work/uninstall.log")"
kc -n egressd-system rollout status ds/egressd-uninstall --timeout=120s > /dev/null 2>&1 ||
  fail "uninstall DaemonSet not ready: $(kc -n egressd-system get pods 2>&1 | tail -n 3)"
kc delete -k "$uninstall" --wait=true --timeout=60s > /dev/null 2>&1 || fail "delete -k deploy/uninstall"
kc delete -k "$overlay" --ignore-not-found --wait=false > "$work/delete.log" 2>&1 ||
  fail "delete -k the overlay: $(tail -n 3 "$work/delete.log")"
after_uninstall="$(node_traces)"
[[ -z "$after_uninstall" ]] && ok "after uninstall: no EGRESSD chain, ipset, address or interface of egressd's" ||
  fail "left on the node after uninstall: $after_uninstall"

echo "k8s.node_local: timings: cluster up ${up_ms} ms, DaemonSet Ready ${ds_ms:-?} ms, apply->open ${opened:-?} ms, delete->closed ${closed:-?} ms"
echo "k8s.node_local: changes: apply->open ms ${opened_all[*]}; delete->closed ms ${closed_all[*]}"
echo "k8s.node_local: $passed passed, $failed failed"
((failed == 0))

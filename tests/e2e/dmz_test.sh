#!/usr/bin/env bash
# e2e.dmz: the central-gateway ("DMZ") shape in network namespaces, with
# real parts (docs/dmz-simulation.md): two nodes whose "security group"
# (the VPC router's FORWARD rules) lets them reach only the gateways' DNS
# and proxy port; gateways running egressd and egress-controller against a
# real kube-apiserver (tests/k8s/apiserver.sh); HAProxy (proxy port, health
# checks on /readyz) and dnsdist (DNS) as the Network Load Balancer; the
# internet of tests/e2e/topology.sh.
#
# The gateways run what the Debian package installs: the .deb of `make
# deb` (scripts/deb/build.sh, built here from the build tree), unpacked
# with dpkg-deb -x, its programs started with its shipped /etc/egressd
# files and its units' command lines (tests/e2e/dmz/package.py). With
# EGRESSD_BIN set (a quick run) the programs come from there instead, the
# files and units still from scripts/deb/.
#
#   - from a node: an allowed name through the proxy works, a denied one is
#     403, a direct connection is dropped (and counted) by the security
#     group, DNS through the load balancer answers allowed names only;
#   - kubectl apply is enforced by both gateways within 1 s;
#   - SIGKILL of a gateway, then its link down: new requests keep working
#     through the other (failure gap measured, at most 3 s), its tunnels end
#     with a reset or EOF (not a hang), it takes traffic again when back;
#   - a request from a pod names the pod, straight to a gateway and
#     through HAProxy (a PROXY v2 header, believed from HAProxy only; the
#     package's controller keeps a pod map of all pods);
#   - a third gateway added to the load balancer takes its share.
#
# Needs root, haproxy, dnsdist, the topology's servers (nginx, unbound), jq,
# dig, curl, python3, dpkg-dev (make deb), and the control plane of tests/k8s
# (77 without it).
# shellcheck source-path=SCRIPTDIR
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="${EGRESSD_SOURCE_DIR:-$(cd "$here/../.." && pwd)}"
# What runs on the gateways: the package built from EGRESSD_BUILD_DIR (ctest
# sets it) by default; EGRESSD_BIN: that folder's programs, no package.
build_dir="${EGRESSD_BUILD_DIR:-$src/build}"
quick_bin="${EGRESSD_BIN:-}"

if [[ "$(id -u)" != 0 ]]; then
  echo "SKIP: needs root (network namespaces)"
  exit 77
fi
# shellcheck source=../k8s/lib.sh
source "$src/tests/k8s/lib.sh"
k8s_test_init e2e.dmz
# shellcheck source=dmz/network.sh
source "$here/dmz/network.sh"

for b in egressd egress-controller egressctl; do
  [[ -x "${quick_bin:-$build_dir/bin}/$b" ]] || fatal "${quick_bin:-$build_dir/bin}/$b not built"
done
for t in haproxy dnsdist jq dig curl python3 dpkg-deb; do
  command -v "$t" > /dev/null || fatal "$t is needed (scripts/install-deps.sh test)"
done

on_cleanup() {
  if ((failed > 0)) && [[ -n "${DMZ_DIR:-}" ]]; then
    local f
    for f in "$DMZ_DIR"/logs/egressd-gw*.log "$DMZ_DIR"/logs/controller-gw*.log \
      "$DMZ_DIR/logs/haproxy.log" "$DMZ_DIR/logs/dnsdist.log"; do
      [[ -f "$f" ]] || continue
      echo "--- last lines of $f"
      tail -n 15 "$f"
    done
  fi
  dmz_down
}

now_ms() { date +%s%3N; }
probe_py() { local n=$1; shift; in_node "$n" python3 "$here/dmz/probe.py" "$@"; }
ca() { echo "$DMZ_DIR/certs/ca.pem"; }
lb_proxy="http://$DMZ_LB:$DMZ_PROXY_PORT"

# via_proxy N PROXY URL: curl on node N through PROXY; prints the status,
# "connect:CODE" when a CONNECT was refused, or curl:N
via_proxy() {
  local out rc
  out="$(in_node "$1" curl -sS -o "$work/body" -w '%{http_code} %{http_connect}' --cacert "$(ca)" \
    --connect-timeout 2 --max-time 4 -x "$2" "$3" 2> /dev/null)"
  rc=$?
  if [[ "$out" == "000 "[1-9]* ]]; then echo "connect:${out#* }"; elif ((rc != 0)); then echo "curl:$rc"; else echo "${out%% *}"; fi
}
allowed_on() { [[ "$(via_proxy 1 "http://$(dmz_gw_ip "$1"):$DMZ_PROXY_PORT" "$2")" == 200 ]]; }
dns_status() { # N SERVER NAME [dig args]
  local n=$1 server=$2 name=$3; shift 3
  in_node "$n" dig +time=1 +tries=2 "@$server" "$name" A "$@" 2>&1 |
    sed -n 's/.*status: \([A-Z]*\).*/\1/p' | head -1 | grep . || echo timeout
}
# metric N NAME: gateway N's counter (asked from the load balancer)
metric() {
  in_ns lb curl -fsS --max-time 2 "http://$(dmz_gw_ip "$1"):$DMZ_HEALTH_PORT/metrics" |
    awk -v m="$2" '$1 == m {print $2}' | head -1
}
# sessions: "PORT SERVER" for each HAProxy session (client port, gateway)
sessions() {
  haproxy_cmd "show sess" | sed -n 's/.* src=[0-9.]*:\([0-9]*\) fe=proxy be=gateways srv=\(gw[0-9]\).*/\1 \2/p'
}

step "the package the gateways run"
if [[ -n "$quick_bin" ]]; then
  dmz_root_from_build "$quick_bin" "$work/root" || fatal "no package layout from $quick_bin"
  ok "EGRESSD_BIN=$quick_bin: its programs, with scripts/deb/'s config and units (no .deb)"
else
  deb="$(DEB_OUT="$work/egressd.deb" "$src/scripts/deb/build.sh" "$build_dir" 2> "$work/deb.log")" ||
    fatal "scripts/deb/build.sh $build_dir failed: $(tail -5 "$work/deb.log")"
  dmz_root_from_deb "$deb" "$work/root" || fatal "dpkg-deb -x $deb failed"
  ok "make deb's package $(dpkg-deb -f "$deb" Package)_$(dpkg-deb -f "$deb" Version) unpacked into $work/root"
fi
egressctl="$DMZ_ROOT/usr/bin/egressctl"

k8s_start_control_plane

step "CRD, the controller's ServiceAccount and RBAC (deploy/base/), a first rule set"
kc apply -f "$src/deploy/crd/egressrulesets.yaml" > /dev/null 2>&1 || fatal "CRD refused"
kc wait --for=condition=Established --timeout=60s crd/egressrulesets.zalando.org > /dev/null 2>&1 ||
  fatal "CRD not Established"
for f in namespace serviceaccounts rbac; do
  kc apply -f "$src/deploy/base/$f.yaml" > /dev/null || fatal "deploy/base/$f.yaml refused"
done
kc create namespace team-a > /dev/null || fatal "namespace team-a"
token="$(kc -n egressd-system create token egress-controller --duration 1h)" ||
  fatal "no token for egressd-system/egress-controller"
DMZ_KUBECONFIG_TEMPLATE="$work/controller.kubeconfig"
cat > "$DMZ_KUBECONFIG_TEMPLATE" << EOF
apiVersion: v1
kind: Config
clusters:
- name: dmz
  cluster:
    server: $EGRESSD_K8S_SERVER
    certificate-authority-data: $(base64 -w0 "$EGRESSD_K8S_DIR/pki/ca.crt")
users:
- name: egress-controller
  user:
    token: $token
contexts:
- name: dmz
  context: {cluster: dmz, user: egress-controller}
current-context: dmz
EOF
DMZ_API_PORT="${EGRESSD_K8S_SERVER##*:}"
cat > "$work/app.yaml" << 'EOF'
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata:
  name: app
  namespace: team-a
spec:
  targets:
  - api.example.com:443
  - ssh.example.com:22
EOF
kc apply -f "$work/app.yaml" > /dev/null || fatal "rule set refused"
ok "controller token, kubeconfig (credentials inline, as the package wants), rule set team-a/app"

step "the network: nodes, VPC router, load balancer, gateways, internet"
mkdir -p "$work/dmz"
dmz_up "$work/dmz" || fatal "network up failed"
for n in 1 2; do dmz_gateway_start "$n" || fatal "gateway $n did not start"; done
dmz_lb_start 1 2 || fatal "load balancer did not start: $(tail -5 "$DMZ_DIR/logs/haproxy.log")"
ok "gateways 1 and 2 ready (/readyz 200); HAProxy sees both UP; dnsdist answers at $DMZ_LB"
mirrored() { jq -e 'any(.spec.targets[]; . == "api.example.com:443")' "$(dmz_rules_dir "$1")/team-a_app.json"; }
mirrored 1 > /dev/null 2>&1 && mirrored 2 > /dev/null 2>&1 &&
  ok "each gateway's controller mirrored team-a/app into its own rules dir" ||
  fail "rules dirs: gw1 $(ls "$(dmz_rules_dir 1)") gw2 $(ls "$(dmz_rules_dir 2)")"
for n in 1 2; do
  dmz_unit_argv "$n" egress-controller.service ExecStart
  echo "    gw$n: ${dmz_argv[*]}"
  dmz_unit_argv "$n" egressd.service ExecStart
  echo "    gw$n: ${dmz_argv[*]}"
done

step "from a node: allowed, denied, bypassing the proxy, DNS"
got="$(via_proxy 1 "$lb_proxy" https://api.example.com/)"
if [[ "$got" == 200 && "$(cat "$work/body")" == "vhost=api.example.com "* ]]; then
  ok "node1 -> LB proxy -> https://api.example.com/: 200 ($(cat "$work/body"))"
else
  fail "allowed name through the proxy: $got $(cat "$work/body" 2> /dev/null)"
fi
got="$(via_proxy 2 "$lb_proxy" https://other.example.com/)"
[[ "$got" == connect:403 ]] && ok "node2 -> https://other.example.com/ (no rule): CONNECT answered 403" ||
  fail "denied name through the proxy: $got"
got="$(via_proxy 2 "$lb_proxy" http://other.example.com/)"
[[ "$got" == 403 ]] && ok "node2 -> http://other.example.com/ (absolute-form GET): 403" ||
  fail "denied plain-HTTP name: $got"
before="$(dmz_dropped NODES)"
got="$(in_node 1 curl -sS -o /dev/null -w '%{http_code}' --cacert "$(ca)" --connect-timeout 1 \
  --resolve api.example.com:443:203.0.113.10 https://api.example.com/ 2> /dev/null; echo " rc=$?")"
after="$(dmz_dropped NODES)"
if [[ "$got" == *"rc=28" ]] && ((after > before)); then
  ok "node1 -> 203.0.113.10:443 directly: timed out; the nodes' security group dropped $((after - before)) packets"
else
  fail "direct connection from a node: $got, drops $before -> $after"
fi
before="$(dmz_dropped NODES)"
got="$(dns_status 2 "$DMZ_INET_DNS" api.example.com)"
after="$(dmz_dropped NODES)"
[[ "$got" == timeout ]] && ((after > before)) &&
  ok "node2 -> the internet's resolver directly: no answer, dropped ($((after - before)) packets)" ||
  fail "direct DNS from a node: $got, drops $before -> $after"
got="$(in_node 1 dig +time=1 +tries=2 +short "@$DMZ_LB" api.example.com A)"
[[ "$got" == 203.0.113.10 ]] && ok "DNS via the LB (UDP): api.example.com A $got" ||
  fail "allowed name via the LB's DNS: '$got'"
got="$(in_node 1 dig +tcp +time=1 +tries=2 +short "@$DMZ_LB" api.example.com A)"
[[ "$got" == 203.0.113.10 ]] && ok "DNS via the LB (TCP): api.example.com A $got" ||
  fail "allowed name via the LB's DNS over TCP: '$got'"
got="$(dns_status 2 "$DMZ_LB" other.example.com)"
[[ "$got" == NXDOMAIN ]] && ok "DNS via the LB: other.example.com (no rule) $got" ||
  fail "denied name via the LB's DNS: $got"
got="$(in_node 2 getent ahostsv4 api.example.com | awk 'NR == 1 {print $1}')"
[[ "$got" == 203.0.113.10 ]] && ok "node2's own resolver (resolv.conf: the LB only): api.example.com $got" ||
  fail "node2's resolver: api.example.com '$got'"
in_node 2 getent ahostsv4 other.example.com > /dev/null &&
  fail "node2's resolver resolves other.example.com (no rule)" ||
  ok "node2's own resolver: other.example.com (no rule) does not resolve"

got="$(via_proxy pod1 "$lb_proxy" https://api.example.com/)"
[[ "$got" == 200 ]] && ok "pod1 (behind node1) -> LB proxy -> https://api.example.com/: 200" ||
  fail "pod1 through the proxy: $got"
got="$(via_proxy pod1 "$lb_proxy" https://other.example.com/)"
[[ "$got" == connect:403 ]] && ok "pod1 -> https://other.example.com/: CONNECT answered 403" ||
  fail "pod1, denied name: $got"
before="$(dmz_dropped NODES)"
got="$(in_node pod1 curl -sS -o /dev/null --cacert "$(ca)" --connect-timeout 1 \
  --resolve api.example.com:443:203.0.113.10 https://api.example.com/ 2> /dev/null; echo "rc=$?")"
after="$(dmz_dropped NODES)"
[[ "$got" == rc=28 ]] && ((after > before)) &&
  ok "pod1 -> 203.0.113.10:443 directly: timed out, dropped by the nodes' security group" ||
  fail "pod1 direct: $got, drops $before -> $after"

step "attribution: a request from a pod names the pod, straight to a gateway and through HAProxy"
# The package's controller keeps a pod map of all the cluster's pods
# (--pod-map, no --node-name), egressd reads it ([attribution] map_file).
# The Pod object as a scheduler and a kubelet leave it: created with its
# node, then its status patched with the address (as tests/controller/
# pod_watch_test.sh does). Straight to the gateway first, then through
# HAProxy, which names the client in a PROXY v2 header.
pod_ns=team-a pod_name=web-7d9c6b5f4-x2x9q
kc -n "$pod_ns" create serviceaccount web-sa > /dev/null || fatal "serviceaccount team-a/web-sa"
kc -n "$pod_ns" create serviceaccount default > /dev/null 2>&1 || true
kc create -f - > /dev/null << EOF2 || fatal "pod $pod_ns/$pod_name refused"
{"apiVersion": "v1", "kind": "Pod",
 "metadata": {"namespace": "$pod_ns", "name": "$pod_name", "labels": {"pod-template-hash": "7d9c6b5f4"},
   "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9c6b5f4",
     "uid": "$(cat /proc/sys/kernel/random/uuid)", "controller": true}]},
 "spec": {"nodeName": "node1", "serviceAccountName": "web-sa", "automountServiceAccountToken": false,
   "containers": [{"name": "c", "image": "registry.invalid/none:1"}]}}
EOF2
t0=$(now_ms)
kc -n "$pod_ns" patch pod "$pod_name" --subresource=status --type=merge -p "{\"status\": {\"phase\": \"Running\",
  \"podIP\": \"$(dmz_pod_ip)\", \"podIPs\": [{\"ip\": \"$(dmz_pod_ip)\"}],
  \"startTime\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"}}" > /dev/null || fatal "status patch of $pod_name refused"
pod_line="$(dmz_pod_ip) $pod_ns $pod_name Deployment/web web-sa"
mapped() { grep -qx "$pod_line" "$(dmz_pod_map "$1")"; }
if dmz_wait "pod maps" 100 eval 'mapped 1 && mapped 2'; then
  ok "both gateways' pod maps have '$pod_line' $(($(now_ms) - t0)) ms after the status patch"
else
  fail "pod maps: gw1 '$(grep -v '^#' "$(dmz_pod_map 1)" 2> /dev/null)' gw2 '$(grep -v '^#' "$(dmz_pod_map 2)" 2> /dev/null)'"
fi
loaded() { [[ "$(metric "$1" egressd_pod_map_pods)" == 1 ]]; }
dmz_wait "egressd loaded the map" 20 eval 'loaded 1 && loaded 2' &&
  ok "both egressd hold it (egressd_pod_map_pods 1)" ||
  fail "egressd_pod_map_pods: gw1 $(metric 1 egressd_pod_map_pods) gw2 $(metric 2 egressd_pod_map_pods)"
timeout 15 "$egressctl" watch --config "$(dmz_gw_config 1)" --json -c 2 "pod $pod_ns/$pod_name" \
  > "$work/watch-pod.json" 2> "$work/watch-pod.err" &
watch_pid=$!
timeout 15 "$egressctl" watch --config "$(dmz_gw_config 1)" --json -c 2 "src host $(dmz_pod_ip)" \
  > "$work/watch-src.json" 2>&1 &
watch_src_pid=$!
sleep 0.5
gw1_proxy="http://$(dmz_gw_ip 1):$DMZ_PROXY_PORT"
a="$(via_proxy pod1 "$gw1_proxy" https://api.example.com/)"
d="$(via_proxy pod1 "$gw1_proxy" https://other.example.com/)"
[[ "$a $d" == "200 connect:403" ]] && ok "pod1 -> gw1's proxy directly: api.example.com 200, other.example.com 403" ||
  fail "pod1 straight to gw1: $a, $d"
wait "$watch_pid" "$watch_src_pid"
# Both decisions, selected by the pod filter, and each naming the pod.
if jq -se --arg src "$(dmz_pod_ip)" --arg ns "$pod_ns" --arg pod "$pod_name" '
    length == 2 and all(.[]; .src == $src and .namespace == $ns and .pod == $pod and
      .workload == "Deployment/web" and .service_account == "web-sa")' "$work/watch-pod.json" > /dev/null; then
  ok "egressctl watch --json 'pod $pod_ns/$pod_name' on gw1: both decisions, src $(dmz_pod_ip), $pod_ns/$pod_name, Deployment/web, web-sa"
else
  fail "watch by pod: $(cat "$work/watch-pod.json" "$work/watch-pod.err")"
fi
cmp -s <(jq -c 'del(.time, .ts, .timestamp)' "$work/watch-pod.json") \
  <(jq -c 'del(.time, .ts, .timestamp)' "$work/watch-src.json") &&
  ok "the same two decisions as 'src host $(dmz_pod_ip)' (the filter selects exactly the pod's)" ||
  fail "by pod vs by address: $(cat "$work/watch-pod.json") / $(cat "$work/watch-src.json")"
# Through the load balancer too: HAProxy sends a PROXY v2 header
# (send-proxy-v2), gw1 believes it from HAProxy's address only, and the
# decision names pod1, not the balancer. Round robin over two gateways:
# four requests give gw1 two.
timeout 10 "$egressctl" watch --config "$(dmz_gw_config 1)" --json -c 1 "proxy and verdict deny" \
  > "$work/watch-lb.json" 2>&1 &
watch_pid=$!
sleep 0.5
for _ in 1 2 3 4; do via_proxy pod1 "$lb_proxy" https://other.example.com/ > /dev/null; done
wait "$watch_pid"
jq -se --arg src "$(dmz_pod_ip)" --arg pod "$pod_name" \
  'length == 1 and .[0].src == $src and .[0].pod == $pod and .[0].reason == "name_not_allowed"' \
  "$work/watch-lb.json" > /dev/null &&
  ok "through HAProxy (PROXY v2): the decision names pod1 ($(dmz_pod_ip), $pod_ns/$pod_name), not the balancer" ||
  fail "through the LB: $(cat "$work/watch-lb.json")"
[[ "$(metric 1 'egressd_proxy_protocol_headers_total{command="proxy"}')" -ge 1 ]] &&
  ok "... gw1 counted the headers it honoured (egressd_proxy_protocol_headers_total)" ||
  fail "egressd_proxy_protocol_headers_total on gw1: $(metric 1 'egressd_proxy_protocol_headers_total{command="proxy"}')"
# A forged header straight from pod1 (not the balancer) is not believed,
# and HAProxy's address without a header is refused (400).
forged="$(in_node pod1 python3 -c "
import socket, struct, sys
s = socket.create_connection(('$(dmz_gw_ip 1)', $DMZ_PROXY_PORT), timeout=3)
block = socket.inet_aton('10.244.1.99') + socket.inet_aton('$(dmz_gw_ip 1)') + struct.pack('>HH', 1, $DMZ_PROXY_PORT)
s.sendall(b'\\r\\n\\r\\n\\x00\\r\\nQUIT\\n\\x21\\x11' + struct.pack('>H', 12) + block +
          b'CONNECT api.example.com:443 HTTP/1.1\\r\\n\\r\\n')
print(s.recv(200).split(b'\\r\\n')[0].decode())" 2>&1)"
[[ "$forged" == "HTTP/1.1 400 Bad Request" ]] &&
  ok "a PROXY header from pod1 straight to gw1 (not from the balancer): 400, not believed" ||
  fail "forged header from pod1: $forged"
bare="$(in_ns lb curl -sS -o /dev/null -w '%{http_code}' --max-time 3 -x "$gw1_proxy" http://api.example.com/ 2>&1)"
[[ "$bare" == 400 ]] &&
  ok "a request from the balancer's address without a PROXY header: 400 (proxy_protocol_invalid)" ||
  fail "balancer without a header: $bare"
# DNS through dnsdist (useProxyProtocol=true): its PROXY v2 header names
# pod1, so gw1's DNS decision (and its tunnel budget) is pod1's, not the
# balancer's. Round robin: four queries give gw1 two (its health checks
# name dnsdist: LOCAL headers, selected out by the name).
timeout 10 "$egressctl" watch --config "$(dmz_gw_config 1)" --json -c 1 "dns and name other.example.com" \
  > "$work/watch-dns.json" 2>&1 &
watch_pid=$!
sleep 0.5
for _ in 1 2 3 4; do in_node pod1 dig +time=1 +tries=1 "@$DMZ_LB" other.example.com A > /dev/null; done
wait "$watch_pid"
jq -se --arg src "$(dmz_pod_ip)" --arg pod "$pod_name" \
  'length == 1 and .[0].src == $src and .[0].pod == $pod and .[0].name == "other.example.com"' \
  "$work/watch-dns.json" > /dev/null &&
  ok "through dnsdist (PROXY v2): the DNS decision names pod1 ($(dmz_pod_ip), $pod_ns/$pod_name), not the balancer" ||
  fail "DNS through the LB: $(cat "$work/watch-dns.json")"
[[ "$(metric 1 'egressd_dns_proxy_protocol_headers_total{command="local"}')" -ge 1 ]] &&
  ok "... and gw1 took dnsdist's health checks as LOCAL headers (egressd_dns_proxy_protocol_headers_total)" ||
  fail "LOCAL headers on gw1: $(metric 1 'egressd_dns_proxy_protocol_headers_total{command="local"}')"
# From the balancer's address without a header: dropped, counted.
got="$(in_ns lb dig +time=1 +tries=1 +short "@$(dmz_gw_ip 1)" api.example.com A 2>&1)"
missing="$(metric 1 'egressd_dns_proxy_protocol_refused_total{reason="missing"}')"
[[ "$got" != 203.0.113.10 && "${missing:-0}" -ge 1 ]] &&
  ok "a DNS query from the balancer's address without a PROXY header: dropped (refused{reason=missing} $missing)" ||
  fail "balancer's DNS query without a header: '$got', refused{reason=missing} '$missing'"

step "kubectl apply is enforced by both gateways within 1 s"
for n in 1 2; do
  allowed_on "$n" https://www.example.org/ && fail "www.example.org allowed on gw$n before the apply"
done
sed 's/  - ssh.example.com:22/  - ssh.example.com:22\n  - www.example.org:443/' "$work/app.yaml" > "$work/app2.yaml"
kc apply -f "$work/app2.yaml" > /dev/null || fatal "kubectl apply refused the change"
t0=$(now_ms)
declare -A took=()
while ((${#took[@]} < 2 && $(now_ms) - t0 < 10000)); do
  for n in 1 2; do
    [[ -z "${took[$n]:-}" ]] && allowed_on "$n" https://www.example.org/ && took[$n]=$(($(now_ms) - t0))
  done
done
if [[ -n "${took[1]:-}" && -n "${took[2]:-}" ]] && ((took[1] <= 1000 && took[2] <= 1000)); then
  ok "www.example.org allowed on gw1 after ${took[1]} ms, on gw2 after ${took[2]} ms (from kubectl apply's return)"
else
  fail "enforcement after kubectl apply: gw1 ${took[1]:-never} ms, gw2 ${took[2]:-never} ms (want <= 1000)"
fi
got="$(via_proxy 1 "$lb_proxy" https://www.example.org/)"
[[ "$got" == 200 ]] && ok "and through the LB: 200" || fail "www.example.org via LB: $got"
for n in 1 2; do
  got="$("$egressctl" explain --config "$(dmz_gw_config "$n")" www.example.org:443 2>&1)"
  if [[ $? == 0 && "$got" == *team-a/app* ]]; then
    ok "egressctl explain on gw$n: $(echo "$got" | head -1)"
  else
    fail "egressctl explain www.example.org:443 on gw$n: $got"
  fi
done

# failover KIND: KIND is "sigkill" or "linkdown" on gateway 1; then back.
failover() {
  local kind=$1
  local hold_out=$work/hold-$kind loop_out=$work/loop-$kind t_kill hold_pid loop_pid
  step "failover: gateway 1 $kind while node1 sends a request every 100 ms and node2 holds tunnels"
  probe_py 2 hold "$DMZ_LB:$DMZ_PROXY_PORT" ssh.example.com:22 8 9 "$hold_out" > "$hold_out.ready" 2>&1 &
  hold_pid=$!
  dmz_wait "tunnels open" 100 grep -q '^ready' "$hold_out.ready" || {
    fail "tunnels did not open: $(cat "$hold_out.ready")"
    return
  }
  sessions > "$work/sess-$kind"
  local on1 on2
  on1="$(awk '$2 == "gw1"' "$work/sess-$kind" | wc -l)" on2="$(awk '$2 == "gw2"' "$work/sess-$kind" | wc -l)"
  ok "8 tunnels open through the LB: $on1 on gw1, $on2 on gw2"
  probe_py 1 loop "$DMZ_LB:$DMZ_PROXY_PORT" api.example.com:443 "$(ca)" 7 0.1 "$loop_out" &
  loop_pid=$!
  # Control: one tunnel straight to gw1, no load balancer in between. With
  # the link down nothing will end it, and the probe must call it hung.
  local direct_pid=
  if [[ $kind == linkdown ]]; then
    probe_py 1 hold "$(dmz_gw_ip 1):$DMZ_PROXY_PORT" ssh.example.com:22 1 9 "$work/hold-direct" \
      > "$work/hold-direct.ready" 2>&1 &
    direct_pid=$!
  fi
  python3 "$here/dmz/probe.py" hastate "$DMZ_DIR/lb/haproxy.sock" gateways/gw1 6 "$work/state-$kind" &
  local state_pid=$!
  sleep 1.5
  # The control tunnel must be open before the link goes down (a loaded
  # machine can take longer than the 1.5 s to start it).
  if [[ -n "$direct_pid" ]]; then
    dmz_wait "the direct tunnel open" 30 grep -q '^ready' "$work/hold-direct.ready" ||
      fail "control: the direct tunnel to gw1 did not open: $(cat "$work/hold-direct.ready")"
  fi
  t_kill=$(now_ms)
  if [[ $kind == sigkill ]]; then
    dmz_egressd_kill 1 KILL
  else
    ip -n "$(dmz_ns vpc)" link set gw1 down
  fi
  wait "$loop_pid" "$hold_pid" "$state_pid"
  local t_down
  t_down="$(awk -v t="$t_kill" '$1 >= t && $2 ~ /^DOWN/ {print $1 - t; exit}' "$work/state-$kind")"
  [[ -n "$t_down" ]] && ok "HAProxy marked gw1 DOWN ${t_down} ms after the $kind" ||
    fail "HAProxy did not mark gw1 DOWN within 4.5 s of the $kind: $(tr '\n' ';' < "$work/state-$kind")"
  # New requests: the failures after t_kill, and the gap they span.
  local total fails gap
  total="$(awk -v t="$t_kill" '$1 >= t - 2000' "$loop_out" | wc -l)"
  fails="$(awk -v t="$t_kill" '$2 >= t && $3 == "fail"' "$loop_out" | wc -l)"
  gap="$(awk -v t="$t_kill" '$2 >= t && $3 == "fail" {if ($2 > e) e = $2} END {print e ? e - t : 0}' "$loop_out")"
  # slowest: the longest successful request after t_kill; dry: the longest
  # stretch after t_kill with no request completing successfully.
  local slowest dry
  slowest="$(awk -v t="$t_kill" '$2 >= t && $3 == "ok" {d = $2 - $1; if (d > m) m = d} END {print m + 0}' "$loop_out")"
  dry="$(awk -v t="$t_kill" '$3 == "ok" {if ($2 >= t) {s = (p > t ? p : t); if ($2 - s > m) m = $2 - s} p = $2} END {print m + 0}' "$loop_out")"
  if ((total > 20 && gap <= 3000 && dry <= 3000)); then
    ok "new requests: $fails of $total failed after the $kind, failure gap ${gap} ms (goal <= 3000), slowest success ${slowest} ms, longest stretch without a success ${dry} ms"
  else
    fail "new requests after the $kind: $fails of $total failed, gap ${gap} ms: $(grep fail "$loop_out" | head -3 | tr '\n' ';')"
  fi
  echo "DMZ_RESULT failover=$kind failed_requests=$fails of=$total gap_ms=$gap marked_down_ms=${t_down:-none} slowest_ok_ms=$slowest no_success_ms=$dry"
  # Tunnels: those on gw1 must have ended cleanly, the others lived on.
  local port outcome end srv bad=0 ended=0 lived=0 worst=0
  while read -r port outcome end; do
    srv="$(awk -v p="$port" '$1 == p {print $2}' "$work/sess-$kind")"
    if [[ $srv == gw1 ]]; then
      if [[ $outcome == eof || $outcome == reset ]]; then
        ended=$((ended + 1))
        ((end - t_kill > worst)) && worst=$((end - t_kill))
      else
        bad=$((bad + 1)); echo "    tunnel $port on gw1: $outcome"
      fi
    elif [[ $outcome == alive ]]; then
      lived=$((lived + 1))
    else
      bad=$((bad + 1)); echo "    tunnel $port on ${srv:-?}: $outcome"
    fi
  done < "$hold_out"
  if ((bad == 0 && ended == on1 && lived == on2 && on1 > 0)); then
    ok "tunnels: $ended on gw1 ended cleanly (reset or EOF; the last ${worst} ms after the $kind), $lived on gw2 alive"
  else
    fail "tunnels: $ended ended, $lived alive, $bad wrong (gw1 had $on1, gw2 $on2): $(tr '\n' ';' < "$hold_out")"
  fi
  echo "DMZ_RESULT tunnels=$kind on_dead=$on1 ended_cleanly=$ended last_end_ms=$worst hung=$bad"
  if [[ -n "$direct_pid" ]]; then
    wait "$direct_pid"
    if [[ "$(awk '{print $2}' "$work/hold-direct" 2> /dev/null)" == hung ]]; then
      ok "control: a tunnel straight to gw1 (no load balancer) hung, as the probe must report it"
    else
      fail "control: the direct tunnel to gw1 was '$(cat "$work/hold-direct" 2> /dev/null)', not hung ($(tail -2 "$work/hold-direct.ready"))"
    fi
  fi

  step "gateway 1 comes back after the $kind and takes traffic again"
  local t_back
  t_back=$(now_ms)
  if [[ $kind == sigkill ]]; then
    dmz_egressd_start 1 || { fail "egressd did not restart in gw1"; return; }
  else
    ip -n "$(dmz_ns vpc)" link set gw1 up
  fi
  if dmz_wait "gw1 UP" 100 eval '[ "$(haproxy_state 1)" = UP ]'; then
    ok "HAProxy has gw1 UP again $(($(now_ms) - t_back)) ms after the restart"
  else
    fail "gw1 not UP again: $(haproxy_state 1)"
  fi
  local c1 c2
  c1="$(metric 1 egressd_proxy_connections_total)"
  for _ in 1 2 3 4 5 6; do via_proxy 1 "$lb_proxy" https://api.example.com/ > /dev/null; done
  c2="$(metric 1 egressd_proxy_connections_total)"
  if [[ -n "$c2" ]] && ((${c2%.*} - ${c1:-0} >= 2)); then
    ok "gw1 served $((${c2%.*} - ${c1:-0})) of 6 new requests"
  else
    fail "gw1 took no new requests ($c1 -> $c2)"
  fi
}
step "a gateway that answers but is not ready takes no DNS and no proxy traffic"
# Without one of its rules directories egressd keeps serving, with nothing
# from that directory allowed (fail closed), and /readyz says 503: the load
# balancer's /readyz checks (HAProxy's, and dnsdist's maintenance() poll)
# must take it out although its DNS still answers.
sysd="$(dmz_gw_dir 1)/etc/egressd/system.d"
mv "$sysd" "$sysd.away"
if dmz_wait "gw1 /readyz not 200" 150 eval '! dmz_readyz 1'; then
  ok "gw1 is not ready once a rules directory is gone"
else
  fail "gw1's /readyz still 200 without $sysd"
fi
dmz_wait "HAProxy: gw1 not UP" 100 eval '[ "$(haproxy_state 1)" != UP ]' &&
  ok "HAProxy took gw1 out ($(haproxy_state 1))" || fail "HAProxy still has gw1 $(haproxy_state 1)"
dmz_wait "dnsdist: readyz gw1 down" 50 grep -q 'readyz gw1 down' "$DMZ_DIR/logs/dnsdist.log" &&
  ok "dnsdist forced gw1 down on its /readyz" || fail "dnsdist did not take gw1 out on /readyz"
own="$(dns_status 2 "$(dmz_gw_ip 1)" api.example.com)"
[[ "$own" != timeout ]] && ok "gw1 itself still answers DNS ($own), so only /readyz can take it out" ||
  fail "gw1's DNS stopped answering: the check would not tell /readyz from DNS"
bad=0
q1="$(metric 1 egressd_dns_queries_total)" p1="$(metric 1 egressd_proxy_connections_total)"
for _ in 1 2 3 4 5 6 7 8 9 10; do
  [[ "$(in_node 2 dig +time=1 +tries=1 +short "@$DMZ_LB" api.example.com A)" == 203.0.113.10 ]] || bad=$((bad + 1))
  [[ "$(via_proxy 1 "$lb_proxy" https://api.example.com/)" == 200 ]] || bad=$((bad + 1))
done
q2="$(metric 1 egressd_dns_queries_total)" p2="$(metric 1 egressd_proxy_connections_total)"
((bad == 0)) && ok "10 lookups and 10 requests through the load balancer all served" ||
  fail "$bad of 20 lookups and requests failed while gw1 was not ready"
# dnsdist's own DNS health check goes on (about one query a second).
if [[ -n "$q2" && -n "$p2" ]] && ((${q2%.*} - ${q1%.*} <= 3 && ${p2%.*} == ${p1%.*})); then
  ok "none of them reached gw1 (its queries $q1 -> $q2: health checks only; its proxy connections $p1 -> $p2)"
else
  fail "gw1 got traffic while not ready: queries $q1 -> $q2, proxy connections $p1 -> $p2"
fi
mv "$sysd.away" "$sysd"
dmz_wait "gw1 ready again" 150 dmz_readyz 1 || fail "gw1 not ready after its directory came back"
dmz_wait "HAProxy: gw1 UP" 100 eval '[ "$(haproxy_state 1)" = UP ]' || fail "HAProxy did not take gw1 back"
dmz_wait "dnsdist: readyz gw1 up" 50 grep -q 'readyz gw1 up' "$DMZ_DIR/logs/dnsdist.log" &&
  ok "gw1 ready again: back in HAProxy and dnsdist" || fail "dnsdist did not take gw1 back on /readyz"

failover sigkill
failover linkdown

step "DNS failover through dnsdist (gateway 1's link down)"
# dnsdist has no state query without a console key: its log says when it
# marks a server up or down, by its DNS check ("Marking downstream gwN ...
# 'up'") or by the /readyz poll ("readyz gwN up"), whichever came last.
dnsdist_up() {
  grep -E "Marking downstream gw$1 |readyz gw$1 " "$DMZ_DIR/logs/dnsdist.log" | tail -1 |
    grep -qE "'up'|readyz gw$1 up$"
}
dmz_wait "dnsdist: gw1 up" 100 dnsdist_up 1 || fail "dnsdist did not mark gw1 up again"
t_kill=$(now_ms)
ip -n "$(dmz_ns vpc)" link set gw1 down
dns_fail=0 dns_last=0 dns_total=0
while (($(now_ms) - t_kill < 5000)); do
  t=$(now_ms)
  # As the nodes' resolv.conf has it: 1 s timeout, 2 attempts.
  r="$(in_node 2 dig +time=1 +tries=2 +short "@$DMZ_LB" api.example.com A)"
  dns_total=$((dns_total + 1))
  if [[ "$r" != 203.0.113.10 ]]; then dns_fail=$((dns_fail + 1)); dns_last=$(($(now_ms) - t_kill)); fi
  sleep 0.1
done
dnsdist_up 1 && fail "dnsdist never marked gw1 down" ||
  ok "dnsdist marked gw1 down ($(grep -E 'Marking downstream gw1 |readyz gw1 ' "$DMZ_DIR/logs/dnsdist.log" | tail -1))"
ip -n "$(dmz_ns vpc)" link set gw1 up
echo "DMZ_RESULT failover=dns-linkdown failed_queries=$dns_fail of=$dns_total gap_ms=$dns_last"
if ((dns_last <= 3000)); then
  ok "DNS: $dns_fail of $dns_total lookups (1 s timeout, 2 tries) failed, the last ${dns_last} ms after the link went down"
else
  fail "DNS via dnsdist still failing ${dns_last} ms after the link went down ($dns_fail of $dns_total)"
fi
dmz_wait "gw1 UP" 100 eval '[ "$(haproxy_state 1)" = UP ]' || fail "gw1 not UP after the DNS test"

step "scale: a third gateway added to the load balancer"
dmz_gateway_start 3 || fatal "gateway 3 did not start"
haproxy_cmd "add server gateways/gw3 $(dmz_gw_ip 3):$DMZ_PROXY_PORT send-proxy-v2 check port $DMZ_HEALTH_PORT inter ${DMZ_CHECK_INTER_MS}ms fastinter ${DMZ_CHECK_FASTINTER_MS}ms fall $DMZ_CHECK_FALL rise $DMZ_CHECK_RISE on-marked-down shutdown-sessions" > "$work/add.out"
haproxy_cmd "enable health gateways/gw3" >> "$work/add.out"
haproxy_cmd "enable server gateways/gw3" >> "$work/add.out"
if dmz_wait "gw3 UP" 100 eval '[ "$(haproxy_state 3)" = UP ]'; then
  ok "gw3 added at runtime (HAProxy's add server) and UP after its /readyz checks"
else
  fail "gw3 not UP: $(haproxy_state 3) $(cat "$work/add.out")"
fi
declare -A base=()
declare -a d=()
for n in 1 2 3; do base[$n]="$(metric "$n" egressd_proxy_connections_total)"; done
probe_py 1 hold "$DMZ_LB:$DMZ_PROXY_PORT" ssh.example.com:22 30 0.3 "$work/hold-scale" > /dev/null 2>&1 ||
  fail "30 new tunnels did not all open"
share=""
for n in 1 2 3; do
  c="$(metric "$n" egressd_proxy_connections_total)"
  d[$n]=$((${c%.*} - ${base[$n]%.*}))
  share="$share gw$n=${d[$n]}"
done
echo "DMZ_RESULT scale tunnels_per_gateway:$share"
if ((d[3] >= 7 && d[1] + d[2] + d[3] == 30)); then
  ok "30 new tunnels:$share (gw3 took its share)"
else
  fail "30 new tunnels spread as$share"
fi

echo "e2e.dmz: $passed passed, $failed failed"
((failed == 0))

#!/usr/bin/env bash
# The default node-local DNS wiring (docs/deploy.md "Node-local DNS wiring"):
# egressd takes the kube-dns ClusterIP over on its node, pods keep asking
# the ClusterIP, and no kubelet setting changes. On a "node" network
# namespace with hand-written kube-proxy (iptables mode) nat rules that DNAT
# the ClusterIP to a real DNS server playing CoreDNS, which runs behind a
# second node that also has the ClusterIP (egressd runs on every node):
#   - before egressd: the ClusterIP reaches CoreDNS (unfiltered; a control);
#   - egressd up: the pod's queries to the ClusterIP (UDP and TCP, any
#     source port) are answered by egressd (a denied name is NXDOMAIN),
#     cluster names resolve through egressd -> ClusterIP -> CoreDNS with the
#     node's address as source (an answer to the ClusterIP would end on the
#     other node, where that address is local too),
#     the pod reaches an allowed name and not a denied address, the node's
#     own queries still go to CoreDNS, no conntrack entry is made;
#   - egressd stopped with SIGTERM, then with SIGKILL (rules left behind):
#     cluster names resolve (from CoreDNS, also from a source port egressd
#     answered before), while connections out stay dropped;
#   - restarted: filtering again, also for a source port whose conntrack
#     entry still DNATs to CoreDNS;
#   - egressd --uninstall and node-dns.sh remove leave nothing of egressd's.
# The node's address is set by the very script the DaemonSet runs
# (deploy/node-dns/node-dns.sh; on this kernel without dummy: on lo).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="${EGRESSD_SOURCE_DIR:-$(cd "$here/../.." && pwd)}"
bin="${EGRESSD_BIN:-${1:-}}"
[ -x "$bin/egressd" ] || { echo "usage: EGRESSD_BIN=BUILD/bin $0 (or $0 BUILD/bin)"; exit 2; }
[ "$(id -u)" = 0 ] || { echo "must run as root"; exit 2; }
for tool in unbound dig curl conntrack python3 iptables-save; do
  command -v "$tool" > /dev/null || { echo "missing $tool (scripts/install-deps.sh test)"; exit 2; }
done

id="$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
NODE="egressd-cdns-$id-node" POD="egressd-cdns-$id-pod" DNS="egressd-cdns-$id-dns" INET="egressd-cdns-$id-inet"
NODE2="egressd-cdns-$id-node2"
dir="$(mktemp -d "/tmp/egressd-cluster-dns.XXXXXX")"
CIP=10.96.0.10 POD_IP=10.244.0.2 COREDNS_IP=10.244.1.2 NODE_IP=10.0.0.1 NODE2_IP=10.0.0.2
ALLOWED_IP=203.0.113.10 DENIED_IP=203.0.113.11
CLUSTER_NAME=kubernetes.default.svc.cluster.local CLUSTER_ANSWER=10.96.0.1
egressd_pid=""
pids=()

cleanup() {
  [ -n "$egressd_pid" ] && kill -9 "$egressd_pid" 2> /dev/null
  for p in "${pids[@]}"; do kill "$p" 2> /dev/null; done
  wait 2> /dev/null
  for ns in "$NODE" "$NODE2" "$POD" "$DNS" "$INET"; do ip netns del "$ns" 2> /dev/null; done
  if [ "${E2E_KEEP:-0}" = 1 ]; then echo "kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok: $1"; }
fail() { failed=$((failed + 1)); echo "FAIL: $1${2:+ ($2)}"; }
expect_eq() { if [ "$2" = "$3" ]; then ok "$1"; else fail "$1" "want '$2', got '$3'"; fi; }
expect_ne() { if [ "$2" != "$3" ]; then ok "$1 ($3)"; else fail "$1" "got '$3'"; fi; }
in_node() { ip netns exec "$NODE" "$@"; }
in_pod() { ip netns exec "$POD" "$@"; }

# ---- topology -----------------------------------------------------------------
#   pod 10.244.0.2 --- node 10.0.0.1 --- node2 10.0.0.2 --- "CoreDNS" 10.244.1.2
#                        |  (both: 10.96.0.10 local)
#                        \--- internet 198.51.100.2 (203.0.113.10, .11)
for ns in "$NODE" "$NODE2" "$POD" "$DNS" "$INET"; do
  ip netns add "$ns" || { echo "FAIL: ip netns add $ns"; exit 1; }
  ip -n "$ns" link set lo up
done
veth() { # NS-A IF-A ADDR-A NS-B IF-B ADDR-B
  ip link add "$2" netns "$1" type veth peer name "$5" netns "$4" &&
    ip -n "$1" addr add "$3" dev "$2" && ip -n "$1" link set "$2" up &&
    ip -n "$4" addr add "$6" dev "$5" && ip -n "$4" link set "$5" up
}
veth "$NODE" vpod 10.244.0.1/24 "$POD" eth0 "$POD_IP/24" &&
  veth "$NODE" vnode2 "$NODE_IP/24" "$NODE2" vnode1 "$NODE2_IP/24" &&
  veth "$NODE2" vdns 10.244.1.1/24 "$DNS" eth0 "$COREDNS_IP/24" &&
  veth "$NODE" vinet 198.51.100.1/24 "$INET" eth0 198.51.100.2/24 &&
  ip -n "$POD" route add default via 10.244.0.1 &&
  ip -n "$DNS" route add default via 10.244.1.1 &&
  ip -n "$NODE" route add 10.244.1.0/24 via "$NODE2_IP" &&
  ip -n "$NODE2" route add 10.244.0.0/24 via "$NODE_IP" &&
  ip netns exec "$NODE2" sysctl -qw net.ipv4.ip_forward=1 &&
  ip -n "$INET" route add 10.244.0.0/16 via 198.51.100.1 &&
  ip -n "$INET" addr add "$ALLOWED_IP/32" dev lo && ip -n "$INET" addr add "$DENIED_IP/32" dev lo &&
  ip -n "$NODE" route add 203.0.113.0/24 via 198.51.100.2 &&
  in_node sysctl -qw net.ipv4.ip_forward=1 || { echo "FAIL: topology"; exit 1; }

# kube-proxy, iptables mode, for the kube-dns Service (UDP and TCP 53), as it
# writes them (no --cluster-cidr: it masquerades nothing by itself here, so
# the node's own queries reach CoreDNS from a node address only through
# egressd's rule).
in_node iptables-restore --noflush << EOF || { echo "FAIL: kube-proxy rules"; exit 1; }
*nat
:KUBE-SERVICES - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SVC-TCOU7JCQXEZGVUNU - [0:0]
:KUBE-SVC-ERIFXISQEP7F7OF4 - [0:0]
:KUBE-SEP-DNSUDP - [0:0]
:KUBE-SEP-DNSTCP - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -j MASQUERADE
-A KUBE-SERVICES -d $CIP/32 -p udp -m comment --comment "kube-system/kube-dns:dns cluster IP" -m udp --dport 53 -j KUBE-SVC-TCOU7JCQXEZGVUNU
-A KUBE-SERVICES -d $CIP/32 -p tcp -m comment --comment "kube-system/kube-dns:dns-tcp cluster IP" -m tcp --dport 53 -j KUBE-SVC-ERIFXISQEP7F7OF4
-A KUBE-SVC-TCOU7JCQXEZGVUNU -j KUBE-SEP-DNSUDP
-A KUBE-SVC-ERIFXISQEP7F7OF4 -j KUBE-SEP-DNSTCP
-A KUBE-SEP-DNSUDP -s $COREDNS_IP/32 -j KUBE-MARK-MASQ
-A KUBE-SEP-DNSUDP -p udp -m udp -j DNAT --to-destination $COREDNS_IP:53
-A KUBE-SEP-DNSTCP -s $COREDNS_IP/32 -j KUBE-MARK-MASQ
-A KUBE-SEP-DNSTCP -p tcp -m tcp -j DNAT --to-destination $COREDNS_IP:53
COMMIT
EOF

# The address, exactly as the DaemonSet's init container sets it.
if in_node env EGRESSD_DNS_ADDRESSES="$CIP" sh "$src/deploy/node-dns/node-dns.sh" add > "$dir/node-dns.out" 2>&1 &&
  in_node env EGRESSD_DNS_ADDRESSES="$CIP" sh "$src/deploy/node-dns/node-dns.sh" add >> "$dir/node-dns.out" 2>&1 &&
  in_node ip -4 -o addr show | grep " $CIP/32 " > /dev/null; then
  ok "node-dns.sh add (twice) makes $CIP local: $(grep ' on ' "$dir/node-dns.out" | tail -1)"
else
  fail "node-dns.sh add" "$(cat "$dir/node-dns.out")"
fi
ip netns exec "$NODE2" env EGRESSD_DNS_ADDRESSES="$CIP" sh "$src/deploy/node-dns/node-dns.sh" add > /dev/null ||
  fail "node-dns.sh add on node2"

# "CoreDNS": unbound with the cluster zone and the test names. A node
# process that asked the ClusterIP and was not masqueraded is answered at
# the ClusterIP, which node2 delivers to itself: the answer never returns.
cat > "$dir/coredns.conf" << EOF
server:
  interface: $COREDNS_IP
  port: 53
  do-daemonize: no
  use-syslog: no
  logfile: ""
  log-queries: yes
  verbosity: 1
  chroot: ""
  username: ""
  directory: "$dir"
  pidfile: "$dir/unbound.pid"
  num-threads: 1
  module-config: "iterator"
  access-control: 0.0.0.0/0 allow
  local-zone: "." refuse
  local-zone: "cluster.local." static
  local-zone: "example.com." static
  local-data: "$CLUSTER_NAME. 30 IN A $CLUSTER_ANSWER"
  local-data: "allowed.example.com. 300 IN A $ALLOWED_IP"
  local-data: "denied.example.com. 300 IN A $DENIED_IP"
EOF
setsid ip netns exec "$DNS" unbound -d -c "$dir/coredns.conf" > "$dir/coredns.log" 2>&1 < /dev/null &
pids+=($!)
for ip in "$ALLOWED_IP" "$DENIED_IP"; do
  setsid ip netns exec "$INET" python3 -m http.server --bind "$ip" 80 --directory "$dir" > "$dir/http-$ip.log" 2>&1 < /dev/null &
  pids+=($!)
done
for _ in $(seq 100); do
  in_node dig +time=1 +tries=1 +short @"$COREDNS_IP" "$CLUSTER_NAME" 2> /dev/null | grep . > /dev/null &&
    in_node curl -s -o /dev/null --max-time 1 "http://$ALLOWED_IP/" && break
  sleep 0.1
done

# dns_status [dig args...]: the status of the pod's query to the ClusterIP
dns_status() {
  local out
  out="$(in_pod dig +time=2 +tries=1 @"$CIP" "$@" 2>&1)"
  echo "$out" | sed -n 's/.*status: \([A-Z]*\).*/\1/p' | head -1 | grep . || echo timeout
}
dns_answer() { in_pod dig +time=2 +tries=1 +short @"$CIP" "$@" 2> /dev/null | tail -1; }
# http_to IP NAME: a new HTTP connection from the pod, by address (curl code)
http_to() {
  local code
  code="$(in_pod curl -s -o /dev/null -w '%{http_code}' --connect-timeout 2 --max-time 3 \
    --resolve "$2:80:$1" "http://$2/" 2> /dev/null)"
  local rc=$?
  if [ $rc -ne 0 ]; then echo "curl:$rc"; else echo "$code"; fi
}

# ---- before egressd: the ClusterIP is CoreDNS --------------------------------------
expect_eq "no egressd: a cluster name resolves (kube-proxy DNAT to CoreDNS)" "$CLUSTER_ANSWER" "$(dns_answer "$CLUSTER_NAME")"
expect_eq "no egressd: CoreDNS answers the denied name (the harness sees unfiltered DNS)" "$DENIED_IP" "$(dns_answer denied.example.com)"
expect_eq "no egressd: the denied address is reachable (the harness sees a leak)" 200 "$(http_to "$DENIED_IP" denied.example.com)"

# ---- egressd -------------------------------------------------------------------
mkdir -p "$dir/rules"
cat > "$dir/rules/allow.yaml" << EOF
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: allow, namespace: team-a}
spec:
  targets:
  - allowed.example.com:80
EOF
cat > "$dir/egressd.toml" << EOF
mode = "enforce"
[rules]
dirs = ["$dir/rules"]
# The test's internet uses a documentation range, internal by default.
public_cidrs = ["203.0.113.0/24"]
[dns]
listen = ["$CIP:53"]
intercept = ["$CIP:53"]
upstreams = ["$COREDNS_IP:53"]
cluster_domains = ["cluster.local"]
cluster_upstreams = ["$CIP:53"]
[nfqueue]
queues = [0]
protected_cidrs = ["10.244.0.0/16", "10.96.0.0/12"]
[control]
socket = "$dir/control.sock"
[metrics]
enabled = false
EOF
starts=0
start_egressd() {
  starts=$((starts + 1))
  rm -f "$dir/control.sock"
  # Started from a subshell, so this shell has no job to report on SIGKILL.
  egressd_pid="$(
    setsid ip netns exec "$NODE" "$bin/egressd" --config "$dir/egressd.toml" > "$dir/egressd-$starts.log" 2>&1 < /dev/null &
    echo $!
  )"
  for _ in $(seq 100); do
    grep -q 'egressd.started' "$dir/egressd-$starts.log" && return 0
    kill -0 "$egressd_pid" 2> /dev/null || break
    sleep 0.1
  done
  fail "egressd start $starts" "$(tail -5 "$dir/egressd-$starts.log")"
  return 1
}
stop_egressd() { # SIGNAL
  kill -"$1" "$egressd_pid"
  for _ in $(seq 100); do kill -0 "$egressd_pid" 2> /dev/null || break; sleep 0.1; done
  if kill -0 "$egressd_pid" 2> /dev/null; then fail "egressd did not exit on SIG$1"; fi
  egressd_pid=""
}

filtering() { # WHEN
  expect_eq "$1: the pod's query for a denied name is answered by egressd: NXDOMAIN" NXDOMAIN "$(dns_status denied.example.com)"
  expect_eq "$1: ... also over TCP" NXDOMAIN "$(dns_status denied.example.com +tcp)"
  expect_eq "$1: an allowed name resolves" "$ALLOWED_IP" "$(dns_answer allowed.example.com)"
  expect_eq "$1: a cluster name resolves through egressd, the ClusterIP and CoreDNS" "$CLUSTER_ANSWER" "$(dns_answer "$CLUSTER_NAME")"
  expect_eq "$1: ... also over TCP" "$CLUSTER_ANSWER" "$(dns_answer "$CLUSTER_NAME" +tcp)"
  expect_eq "$1: the allowed name is reachable" 200 "$(http_to "$ALLOWED_IP" allowed.example.com)"
  expect_ne "$1: the denied name's address is not" 200 "$(http_to "$DENIED_IP" denied.example.com)"
}
start_egressd || exit 1
if grep -q "event=dns.intercepting.*address=$CIP:53" "$dir/egressd-1.log"; then
  ok "egressd logs the take-over of $CIP:53"
else
  fail "egressd log lacks dns.intercepting" "$(head -20 "$dir/egressd-1.log")"
fi
filtering "egressd running"
if grep -q "client=$POD_IP:[0-9]* name=denied.example.com" "$dir/egressd-1.log"; then
  ok "egressd's log names the pod as the client of the denied query"
else
  fail "egressd's log has no denied.example.com query from $POD_IP" "$(grep -c dns.query "$dir/egressd-1.log") query lines"
fi
expect_eq "a pod query from source port 40001 is egressd's" NXDOMAIN "$(dns_status denied.example.com -b "$POD_IP#40001")"
expect_eq "... and leaves no conntrack entry (NOTRACK, both directions)" "" \
  "$(in_node conntrack -L -p udp --orig-port-src 40001 2> /dev/null)"
expect_eq "the node's own query to the ClusterIP is not taken over (CoreDNS answers the denied name)" \
  "$DENIED_IP" "$(in_node dig +time=2 +tries=1 +short @"$CIP" denied.example.com 2> /dev/null | tail -1)"
if grep -q "$NODE_IP.*$CLUSTER_NAME" "$dir/coredns.log" && ! grep -Eq "info: 10\.96\.[0-9.]+ " "$dir/coredns.log"; then
  ok "CoreDNS saw egressd's and the node's queries from the node's address $NODE_IP, never from the ClusterIP"
else
  fail "CoreDNS's query log" "$(grep 'info:' "$dir/coredns.log" | tail -5)"
fi

down() { # WHEN
  local saved
  saved="$(in_node iptables-save -t raw)"
  if echo "$saved" | grep -- "-A EGRESSD-DNS -d $CIP/32 -p udp -m udp --dport 53 -m socket -j CT --notrack" > /dev/null; then
    ok "$1: the take-over rules are still there"
  else
    fail "$1: the take-over rules are gone" "$saved"
  fi
  expect_eq "$1: a cluster name still resolves (CoreDNS through kube-proxy)" "$CLUSTER_ANSWER" "$(dns_answer "$CLUSTER_NAME")"
  expect_eq "$1: ... also over TCP" "$CLUSTER_ANSWER" "$(dns_answer "$CLUSTER_NAME" +tcp)"
  expect_eq "$1: ... also from source port 40001, which egressd answered before" "$CLUSTER_ANSWER" \
    "$(dns_answer "$CLUSTER_NAME" -b "$POD_IP#40001")"
  expect_ne "$1: a new connection to the allowed address is not let out" 200 "$(http_to "$ALLOWED_IP" allowed.example.com)"
  expect_ne "$1: nor to the denied one" 200 "$(http_to "$DENIED_IP" denied.example.com)"
  # A query from a fixed port now: its conntrack entry DNATs to CoreDNS and
  # outlives the restart; egressd must still get the port's next query.
  expect_eq "$1: a query from source port $2 goes to CoreDNS" "$DENIED_IP" "$(dns_answer denied.example.com -b "$POD_IP#$2")"
  if in_node conntrack -L -p udp --orig-port-src "$2" 2> /dev/null | grep "src=$COREDNS_IP" > /dev/null; then
    ok "$1: ... and left a conntrack entry DNATed to CoreDNS"
  else
    fail "$1: no conntrack entry for port $2" "$(in_node conntrack -L -p udp 2> /dev/null)"
  fi
}
back() { # WHEN PORT
  start_egressd || return
  filtering "$1"
  expect_eq "$1: the query from source port $2, still DNATed in conntrack, is egressd's" NXDOMAIN \
    "$(dns_status denied.example.com -b "$POD_IP#$2")"
}

stop_egressd TERM
down "after SIGTERM" 40002
back "restarted after SIGTERM" 40002
stop_egressd KILL
# The kernel verdict's program allows until the worker's 2 s consumer
# lease ends (docs/nfq.md "Fail-closed"): wait that out.
sleep 2.2
down "after SIGKILL" 40003
back "restarted after SIGKILL" 40003

# ---- the loop guard: nothing translates the ClusterIP for the node ----------------------
# Without kube-proxy's OUTPUT jump, egressd's own query to the ClusterIP
# (its cluster upstream) would come back to its listener, and again.
in_node iptables -t nat -D OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
mark=$(wc -l < "$dir/egressd-$starts.log")
expect_eq "no DNAT for the node: a cluster name fails (SERVFAIL), it does not loop" SERVFAIL \
  "$(in_pod dig +time=5 +tries=1 @"$CIP" loop-check.svc.cluster.local 2>&1 | sed -n 's/.*status: \([A-Z]*\).*/\1/p')"
expect_eq "... egressd never got its own query back" 0 \
  "$(tail -n +"$((mark + 1))" "$dir/egressd-$starts.log" | grep -c "client=$CIP:")"
if in_node iptables -t raw -L EGRESSD-DNS -v -x -n | grep -E '^ *[1-9][0-9]* .*DROP .*dpt:53' > /dev/null; then
  ok "... the loop guard dropped it"
else
  fail "the loop guard counted nothing" "$(in_node iptables -t raw -L EGRESSD-DNS -v -x -n)"
fi
in_node iptables -t nat -A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES

# ---- uninstall --------------------------------------------------------------------
stop_egressd TERM
if in_node "$bin/egressd" --uninstall --config "$dir/egressd.toml" > "$dir/uninstall.out" 2>&1 &&
  in_node env EGRESSD_DNS_ADDRESSES="$CIP" sh "$src/deploy/node-dns/node-dns.sh" remove >> "$dir/uninstall.out" 2>&1; then
  ok "egressd --uninstall and node-dns.sh remove: $(tr '\n' ' ' < "$dir/uninstall.out")"
else
  fail "uninstall" "$(cat "$dir/uninstall.out")"
fi
left="$(in_node sh -c 'iptables-save; ip6tables-save' | grep -E 'EGRESSD' || true)"
expect_eq "no EGRESSD chain or jump is left (raw, nat, filter; IPv4 and IPv6)" "" "$left"
expect_eq "no egressd address is left on the node" "" "$(in_node ip -4 -o addr show | grep -E " $CIP/| lo:egressd" || true)"
expect_eq "kube-proxy's rules are untouched" 2 "$(in_node iptables-save -t nat | grep -c -- '-j KUBE-SVC-')"
expect_eq "after uninstall: a cluster name resolves through kube-proxy" "$CLUSTER_ANSWER" "$(dns_answer "$CLUSTER_NAME")"

echo "e2e.cluster_dns: $passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]

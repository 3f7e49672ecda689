# shellcheck shell=bash
# The central-gateway ("DMZ") shape of docs/deploy.md, simulated in network
# namespaces with real parts (docs/dmz-simulation.md). Sourced by
# tests/e2e/dmz_test.sh and bench/dmz/run.sh:
#
#   pod1                  (a pod on node1: its own address towards the VPC,
#     |                    masqueraded to its node's only outside it)
#   node1  node2          (clients: nodes)
#      \    /
#       vpc ---- lb       (router: the security groups are its FORWARD rules;
#      / | \              lb: HAProxy for the proxy port, dnsdist for DNS,
#   gw1 gw2 gw3           both health-checking the gateways; the NLB)
#       |
#    internet             (tests/e2e/topology.sh's servers: unbound, nginx)
#
# Each gateway runs what the egressd Debian package installs (make deb;
# docs/gateway.md): egressd (proxy + DNS, no NFQUEUE: nodes reach the world
# only through the proxy) and its own egress-controller, from the package's
# programs, with its shipped /etc/egressd files and the command lines of
# its systemd units (tests/e2e/dmz/package.py reads them). The controller's
# API connection leaves the gateway namespace through a loopback forwarder
# (tests/k8s/nsforward.py) to the kube-apiserver of tests/k8s/apiserver.sh.
#
#   dmz_root_from_deb DEB DIR   DMZ_ROOT: the package unpacked (dpkg-deb -x)
#   dmz_root_from_build BIN DIR DMZ_ROOT: the same files from the source tree
#                               (scripts/deb/) around BIN's programs
#   dmz_up DIR                  namespaces, links, router rules, internet
#   dmz_gateway_start N         egress-controller + egressd in gateway N
#   dmz_lb_start N...           HAProxy and dnsdist in front of gateways N...
#   dmz_down                    everything above (idempotent; for traps)
#
# Needs: DMZ_ROOT, and DMZ_KUBECONFIG_TEMPLATE (a kubeconfig of the
# controller's ServiceAccount, credentials inline as the package wants; its
# server is rewritten to each gateway's forwarder) before
# dmz_gateway_start; without it the gateways run egressd alone.
dmz_lib_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dmz_src="$(cd "$dmz_lib_dir/../../.." && pwd)"

# ---- addresses --------------------------------------------------------------
DMZ_VPC=10.80.0.0/16
DMZ_LB=10.80.10.10          # the "Network Load Balancer" address nodes use
DMZ_PROXY_PORT=3128
DMZ_HEALTH_PORT=9153        # egressd's metrics.listen: /readyz
dmz_node_ip() { echo "10.80.$1.2"; }      # node N
dmz_gw_ip() { echo "10.80.1$1.2"; }       # gateway N (1..3)
DMZ_INET_DNS=198.51.100.53  # the internet's resolver (tests/e2e/topology.sh)
DMZ_POD_CIDR=10.244.1.0/24  # node1's pods
dmz_pod_ip() { echo 10.244.1.2; }         # pod1

# Health checks (docs/dmz-simulation.md): HAProxy checks /readyz every
# 500 ms (250 ms while a check is failing), 500 ms timeout, down after 2
# failures, up after 2 successes; dnsdist sends a DNS query every 1 s
# (its minimum), 500 ms timeout, down after 1 failure (its interval is
# twice HAProxy's, so one miss already takes as long), up after 2.
DMZ_CHECK_INTER_MS=500 DMZ_CHECK_FASTINTER_MS=250 DMZ_CHECK_TIMEOUT_MS=500
DMZ_CHECK_FALL=2 DMZ_CHECK_RISE=2 DMZ_DNS_CHECK_FALL=1

dmz_die() { echo "dmz: $*" >&2; return 1; }
dmz_ns() { echo "egressd-dmz-$DMZ_ID-$1"; }
in_ns() { local ns; ns="$(dmz_ns "$1")"; shift; ip netns exec "$ns" "$@"; }
# A client on node N (or "pod1": the pod on node 1): never any proxy
# variable from the caller.
in_node() {
  local role=node$1; shift
  [ "$role" = nodepod1 ] && role=pod1
  ip netns exec "$(dmz_ns "$role")" env -u http_proxy -u https_proxy -u HTTP_PROXY \
    -u HTTPS_PROXY -u all_proxy -u ALL_PROXY -u no_proxy -u NO_PROXY "$@"
}

dmz_wait() { # DESC TRIES CMD...: poll every 0.1 s
  local desc=$1 tries=$2; shift 2
  for _ in $(seq "$tries"); do "$@" > /dev/null 2>&1 && return 0; sleep 0.1; done
  dmz_die "timed out waiting for $desc"
}

# start CMD in namespace ROLE, detached, log DIR/logs/NAME.log, pid DIR/pids/NAME.pid
dmz_start_in() {
  local role=$1 name=$2; shift 2
  setsid ip netns exec "$(dmz_ns "$role")" "$@" > "$DMZ_DIR/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$DMZ_DIR/pids/$name.pid"
  disown $!
}

dmz_link() { # ROUTER_IF ROLE ROUTER_ADDR/LEN PEER_ADDR/LEN: a veth router<->ROLE
  local vpc ns
  vpc="$(dmz_ns vpc)" ns="$(dmz_ns "$2")"
  ip link add "$1" netns "$vpc" type veth peer name eth0 netns "$ns"
  ip -n "$vpc" addr add "$3" dev "$1"
  ip -n "$vpc" link set "$1" up
  ip -n "$ns" addr add "$4" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default via "${3%/*}"
}

dmz_up() { # DIR
  dmz_gc
  DMZ_DIR="$(cd "$1" && pwd)"
  DMZ_ID="$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
  mkdir -p "$DMZ_DIR/logs" "$DMZ_DIR/pids" "$DMZ_DIR/inet" /run/egressd-dmz
  # Recorded before anything exists, so dmz_down can undo a partial up,
  # and dmz_gc can remove what a killed run (its owner gone) left behind.
  echo "$DMZ_ID" > "$DMZ_DIR/dmz.id"
  printf 'owner=%s\ndir=%s\n' "$$" "$DMZ_DIR" > "/run/egressd-dmz/$DMZ_ID"
  local role
  for role in vpc node1 node2 pod1 lb gw1 gw2 gw3 inet; do
    ip netns add "$(dmz_ns "$role")"
    ip -n "$(dmz_ns "$role")" link set lo up
  done
  in_ns vpc sysctl -qw net.ipv4.ip_forward=1
  dmz_link node1 node1 10.80.1.1/24 "$(dmz_node_ip 1)/24"
  dmz_link node2 node2 10.80.2.1/24 "$(dmz_node_ip 2)/24"
  dmz_link lb0 lb 10.80.10.1/24 "$DMZ_LB/24"
  local n
  for n in 1 2 3; do dmz_link "gw$n" "gw$n" "10.80.1$n.1/24" "$(dmz_gw_ip "$n")/24"; done
  # The internet: tests/e2e/topology.sh's servers on the far side of the
  # router; it routes the VPC back, and has no default route.
  ip link add inet0 netns "$(dmz_ns vpc)" type veth peer name eth0 netns "$(dmz_ns inet)"
  ip -n "$(dmz_ns vpc)" addr add 198.51.100.1/24 dev inet0
  ip -n "$(dmz_ns vpc)" link set inet0 up
  "$dmz_src/tests/e2e/topology.sh" internet "$DMZ_DIR" "$(dmz_ns inet)" \
    > "$DMZ_DIR/logs/internet.log" 2>&1 || dmz_die "internet: $(tail -3 "$DMZ_DIR/logs/internet.log")" || return 1
  ip -n "$(dmz_ns inet)" route add "$DMZ_VPC" via 198.51.100.1
  ip -n "$(dmz_ns vpc)" route add 203.0.113.0/24 via 198.51.100.2
  # A pod on node1, routed through it: the security group judges it as
  # the node (the router's rules go by the node's link).
  ip link add pod0 netns "$(dmz_ns node1)" type veth peer name eth0 netns "$(dmz_ns pod1)"
  ip -n "$(dmz_ns node1)" addr add 10.244.1.1/24 dev pod0
  ip -n "$(dmz_ns node1)" link set pod0 up
  ip -n "$(dmz_ns pod1)" addr add "$(dmz_pod_ip)/24" dev eth0
  ip -n "$(dmz_ns pod1)" link set eth0 up
  ip -n "$(dmz_ns pod1)" route add default via 10.244.1.1
  in_ns node1 sysctl -qw net.ipv4.ip_forward=1
  # As the AWS VPC CNI does by default: pods keep their own address inside
  # the VPC (the gateways see the pod, so decisions name it), and are
  # masqueraded to the node's address only towards the outside.
  in_ns node1 iptables -w -t nat -A POSTROUTING -s "$DMZ_POD_CIDR" ! -d "$DMZ_VPC" -o eth0 -j MASQUERADE
  ip -n "$(dmz_ns vpc)" route add "$DMZ_POD_CIDR" via "$(dmz_node_ip 1)"
  dmz_security_groups
  for role in node1 node2 pod1; do  # all resolve through the load balancer
    mkdir -p "/etc/netns/$(dmz_ns "$role")"
    printf 'nameserver %s\noptions timeout:1 attempts:2\n' "$DMZ_LB" > "/etc/netns/$(dmz_ns "$role")/resolv.conf"
  done
}

# The security groups, as the router's FORWARD chain (policy DROP). Each
# group's last rule is a counted DROP, read by dmz_dropped.
#   nodes:    egress only to the load balancer and the gateways, on DNS
#             (UDP and TCP 53) and the proxy port; nothing else.
#   lb:       to the gateways on DNS, the proxy port and the health port.
#   gateways: full egress.
#   internet: nothing unsolicited into the VPC.
dmz_security_groups() {
  local gws
  gws="$(dmz_gw_ip 1),$(dmz_gw_ip 2),$(dmz_gw_ip 3)"
  in_ns vpc iptables-restore << EOF
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:SG-NODES - [0:0]
:SG-LB - [0:0]
:SG-GATEWAYS - [0:0]
:SG-INTERNET - [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -i node+ -j SG-NODES
-A FORWARD -i lb0 -j SG-LB
-A FORWARD -i gw+ -j SG-GATEWAYS
-A FORWARD -i inet0 -j SG-INTERNET
-A SG-NODES -d $DMZ_LB,$gws -p tcp -m multiport --dports 53,$DMZ_PROXY_PORT -j ACCEPT
-A SG-NODES -d $DMZ_LB,$gws -p udp --dport 53 -j ACCEPT
-A SG-NODES -m comment --comment dmz-drop -j DROP
-A SG-LB -d $gws -p tcp -m multiport --dports 53,$DMZ_PROXY_PORT,$DMZ_HEALTH_PORT -j ACCEPT
-A SG-LB -d $gws -p udp --dport 53 -j ACCEPT
-A SG-LB -m comment --comment dmz-drop -j DROP
-A SG-GATEWAYS -j ACCEPT
-A SG-INTERNET -m comment --comment dmz-drop -j DROP
COMMIT
EOF
}

# dmz_dropped GROUP: packets the group's counted DROP rule dropped so far
dmz_dropped() {
  in_ns vpc iptables -w -nvxL "SG-$1" | awk '/dmz-drop/ {print $1}'
}

# ---- gateways ---------------------------------------------------------------

# ---- the package --------------------------------------------------------------

# dmz_root_from_deb DEB DIR: DMZ_ROOT=DIR, the package's files as dpkg
# would install them (no maintainer scripts: they only talk to systemd).
dmz_root_from_deb() {
  rm -rf "$2" && mkdir -p "$2" && dpkg-deb -x "$1" "$2" || dmz_die "dpkg-deb -x $1 failed" || return 1
  DMZ_ROOT="$(cd "$2" && pwd)"
}

# dmz_root_from_build BIN DIR: DMZ_ROOT=DIR laid out like the package
# (scripts/deb/build.sh's file list) from the source tree's scripts/deb/
# and BIN's programs, linked not copied: a quick run without `make deb`.
dmz_root_from_build() {
  local bin deb=$dmz_src/scripts/deb r
  bin="$(cd "$1" && pwd)" || return 1
  rm -rf "$2" && mkdir -p "$2/usr/sbin" "$2/usr/bin" "$2/lib/systemd/system" "$2/etc/egressd/system.d"
  r="$(cd "$2" && pwd)"
  ln -s "$bin/egressd" "$r/usr/sbin/egressd"
  ln -s "$bin/egress-controller" "$r/usr/sbin/egress-controller"
  ln -s "$bin/egressctl" "$r/usr/bin/egressctl"
  cp "$deb/egressd.service" "$deb/egress-controller.service" "$r/lib/systemd/system/"
  cp "$deb/egressd.toml" "$deb/controller.env" "$r/etc/egressd/"
  DMZ_ROOT=$r
}

dmz_pkg() { python3 "$dmz_lib_dir/package.py" "$@"; }
dmz_gw_dir() { echo "$DMZ_DIR/gw$1"; }
# Gateway N's files where the package puts them on a host (/etc/egressd,
# /var/lib/egressd, /run/egressd), under its own folder.
dmz_gw_config() { echo "$DMZ_DIR/gw$1/etc/egressd/egressd.toml"; }
dmz_rules_dir() { echo "$DMZ_DIR/gw$1/var/lib/egressd/rules.d"; }
dmz_pod_map() { echo "$DMZ_DIR/gw$1/var/lib/egressd/pods/pods.map"; }

# dmz_unit_argv N UNIT KEY: the unit's command line for gateway N, into
# the array dmz_argv
dmz_unit_argv() {
  local out
  out="$(dmz_pkg argv "${DMZ_ROOT:?}" "$(dmz_gw_dir "$1")" "$2" "$3" "gw$1")" || return 1
  mapfile -t dmz_argv <<< "$out"
}

# dmz_gateway_config N: gateway N's /etc/egressd from the package's, with
# only what a gateway host changes (deploy/aws/egress-gateway.yaml's user
# data writes the same file with its own upstream): the package's paths
# moved under the gateway's folder (package.py), the test internet's
# documentation ranges declared public (as every e2e test does), and the
# log level when DMZ_LOG_LEVEL asks. The listeners stay the package's
# (0.0.0.0: every address of the gateway's namespace). The upstream stays
# the package's upstreams_from = /etc/resolv.conf: the gateway's
# resolv.conf (ip netns exec's /etc/netns) names the internet's resolver,
# as a host's names the VPC resolver. Also the controller's StateDirectory
# rules.d, so that a gateway without a controller (bench/dmz) is ready.
dmz_gateway_config() {
  local n=$1 g sets=()
  g="$(dmz_gw_dir "$n")"
  sets+=(--set 'rules.public_cidrs=["198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"]')
  # HAProxy names each client in a PROXY v2 header (send-proxy-v2 below):
  # believed from its address only (docs/gateway.md "Attribution").
  sets+=(--set "proxy.proxy_protocol_from=[\"$DMZ_LB/32\"]")
  # dnsdist does the same for DNS (useProxyProtocol below): a PROXY v2
  # header before every query, LOCAL on its health checks.
  sets+=(--set "dns.proxy_protocol_from=[\"$DMZ_LB/32\"]")
  [ -n "${DMZ_LOG_LEVEL:-}" ] && sets+=(--set "log.level=\"$DMZ_LOG_LEVEL\"")
  dmz_pkg config "${DMZ_ROOT:?}" "$g" "${sets[@]}" || return 1
  mkdir -p "$(dmz_rules_dir "$n")" "/etc/netns/$(dmz_ns "gw$n")"
  printf 'nameserver %s\n' "$DMZ_INET_DNS" > "/etc/netns/$(dmz_ns "gw$n")/resolv.conf"
}

dmz_readyz() { # N: gateway N's /readyz answers 200 (asked from the lb)
  in_ns lb curl -fsS --max-time 1 -o /dev/null "http://$(dmz_gw_ip "$1"):$DMZ_HEALTH_PORT/readyz"
}

# dmz_egressd_start N: (re)start egressd in gateway N as egressd.service
# does (its RuntimeDirectory, ExecStartPre, ExecStart), wait for /readyz
dmz_egressd_start() {
  local n=$1 log
  log=$DMZ_DIR/logs/egressd-gw$n.log
  [ -f "$(dmz_gw_config "$n")" ] || dmz_gateway_config "$n" || return 1
  dmz_pkg prepare "$DMZ_ROOT" "$(dmz_gw_dir "$n")" egressd.service || return 1
  dmz_unit_argv "$n" egressd.service ExecStartPre || return 1
  in_ns "gw$n" "${dmz_argv[@]}" >> "$log" 2>&1 < /dev/null || {
    tail -5 "$log" >&2
    dmz_die "gateway $n: ExecStartPre (${dmz_argv[*]}) failed"
    return 1
  }
  dmz_unit_argv "$n" egressd.service ExecStart || return 1
  setsid ip netns exec "$(dmz_ns "gw$n")" "${dmz_argv[@]}" >> "$log" 2>&1 < /dev/null &
  echo $! > "$DMZ_DIR/pids/egressd-gw$n.pid"
  disown $!
  dmz_wait "gateway $n /readyz" 100 dmz_readyz "$n" || {
    tail -5 "$log" >&2
    return 1
  }
}

dmz_egressd_kill() { # N SIGNAL: signal gateway N's egressd and wait for it to go
  local pid
  pid="$(cat "$DMZ_DIR/pids/egressd-gw$1.pid")"
  kill "-$2" "$pid" 2> /dev/null || return 0
  for _ in $(seq 50); do [ -e "/proc/$pid" ] || return 0; sleep 0.1; done
}

# dmz_controller_start N: egress-controller in gateway N as
# egress-controller.service runs it (kubeconfig as a credential,
# controller.env's arguments, StateDirectory), its API connection through
# a forwarder listening on the gateway's loopback.
dmz_controller_start() {
  local n=$1 g port py=python3
  g="$(dmz_gw_dir "$n")"
  [ -x /usr/bin/python3 ] && py=/usr/bin/python3
  rm -f "$g/api.port"
  # nsforward.py listens where it starts (the gateway's loopback), then
  # enters this script's namespace to connect to the API server.
  setsid ip netns exec "$(dmz_ns "gw$n")" "$py" "$dmz_src/tests/k8s/nsforward.py" \
    "/proc/$$/ns/net" 127.0.0.1 "${DMZ_API_PORT:?}" "$g/api.port" \
    > "$DMZ_DIR/logs/apifwd-gw$n.log" 2>&1 < /dev/null &
  echo $! > "$DMZ_DIR/pids/apifwd-gw$n.pid"
  disown $!
  dmz_wait "gateway $n API forwarder" 100 test -s "$g/api.port" || return 1
  port="$(cat "$g/api.port")"
  # /etc/egressd/kubeconfig, root-only, as docs/gateway.md has it.
  (umask 077 && sed "s#server: https://127.0.0.1:[0-9]*#server: https://127.0.0.1:$port#" \
    "${DMZ_KUBECONFIG_TEMPLATE:?}" > "$g/etc/egressd/kubeconfig")
  dmz_pkg prepare "$DMZ_ROOT" "$g" egress-controller.service || return 1
  dmz_unit_argv "$n" egress-controller.service ExecStart || return 1
  dmz_start_in "gw$n" "controller-gw$n" "${dmz_argv[@]}"
  dmz_wait "gateway $n controller list" 300 grep -qE 'event=list\.done|"event":"list\.done"' \
    "$DMZ_DIR/logs/controller-gw$n.log" || {
    tail -5 "$DMZ_DIR/logs/controller-gw$n.log" >&2
    return 1
  }
}

dmz_gateway_start() { # N: controller first (rules), then egressd
  dmz_gateway_config "$1" || return 1
  if [ -n "${DMZ_KUBECONFIG_TEMPLATE:-}" ]; then dmz_controller_start "$1" || return 1; fi
  dmz_egressd_start "$1"
}

# ---- the load balancer ------------------------------------------------------

dmz_haproxy_config() { # N...: gateways behind it
  local n f=$DMZ_DIR/lb/haproxy.cfg
  mkdir -p "$DMZ_DIR/lb"
  cat > "$f" << EOF
# The Network Load Balancer's proxy listener: TCP only (CONNECT and the
# tunnels pass through untouched), health checks on egressd's /readyz.
# Each connection to a gateway starts with a PROXY protocol v2 header
# naming the client (send-proxy-v2; the checks go without it), as an NLB
# with proxy_protocol_v2.enabled does.
global
  log stdout format raw local0 info
  stats socket $DMZ_DIR/lb/haproxy.sock mode 600 level admin
  maxconn 8000
defaults
  mode tcp
  log global
  option tcplog
  timeout connect 500ms
  timeout client 10m
  timeout server 10m
  timeout check ${DMZ_CHECK_TIMEOUT_MS}ms
  # A connect that fails (gateway killed: reset; link down: timeout) is
  # retried on another gateway at once, before the checks mark it down.
  retries 2
  option redispatch 1
frontend proxy
  bind $DMZ_LB:$DMZ_PROXY_PORT
  default_backend gateways
backend gateways
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  default-server check port $DMZ_HEALTH_PORT inter ${DMZ_CHECK_INTER_MS}ms fastinter ${DMZ_CHECK_FASTINTER_MS}ms downinter ${DMZ_CHECK_INTER_MS}ms fall $DMZ_CHECK_FALL rise $DMZ_CHECK_RISE on-marked-down shutdown-sessions
EOF
  for n in "$@"; do echo "  server gw$n $(dmz_gw_ip "$n"):$DMZ_PROXY_PORT send-proxy-v2" >> "$f"; done
}

dmz_dnsdist_config() { # N...
  local n f=$DMZ_DIR/lb/dnsdist.conf
  mkdir -p "$DMZ_DIR/lb"
  cat > "$f" << EOF
-- The Network Load Balancer's DNS listener (UDP and TCP). Two checks,
-- like the NLB's target group plus what dnsdist does itself:
--   - /readyz, as the NLB checks it: maintenance() (run by dnsdist every
--     second) asks each gateway's /readyz; a gateway that does not answer
--     200 is forced down (setDown), one that does is left to the DNS check
--     (setAuto). A gateway whose DNS answers but that is not ready (its
--     rules failed to load: it would deny every name) takes no queries.
--   - a DNS query to the gateway's DNS listener (a name no rule allows,
--     answered by egressd itself, so the check does not depend on the
--     internet's resolver): any answer but SERVFAIL is up, no answer within
--     checkTimeout is a failure.
-- useProxyProtocol: every query to a gateway starts with a PROXY v2
-- header naming the client (its health checks: LOCAL), so the gateway's
-- decisions name the pod, not this balancer (dns.proxy_protocol_from).
setSecurityPollSuffix("")
setLocal("$DMZ_LB:53")
setServerPolicy(roundrobin)
readyz = {}
function maintenance()
  for i, gw in ipairs(readyz) do
    -- popen, not os.execute: dnsdist ignores SIGCHLD, so system()'s
    -- status is always -1; curl's output is read instead.
    local curl = io.popen("curl -s -o /dev/null -w '%{http_code}' --max-time 0.5 " .. gw.url)
    local ready = curl:read("*a") == "200"
    curl:close()
    if ready ~= gw.ready then
      gw.ready = ready
      if ready then getServer(i - 1):setAuto() else getServer(i - 1):setDown() end
      infolog("readyz " .. gw.name .. (ready and " up" or " down"))
    end
  end
end
EOF
  for n in "$@"; do
    cat >> "$f" << EOF
newServer({address="$(dmz_gw_ip "$n"):53", name="gw$n", useProxyProtocol=true, checkName="health.dmz.invalid.", checkInterval=1, checkTimeout=$DMZ_CHECK_TIMEOUT_MS, maxCheckFailures=$DMZ_DNS_CHECK_FALL, rise=$DMZ_CHECK_RISE})
table.insert(readyz, {name="gw$n", ready=true, url="http://$(dmz_gw_ip "$n"):$DMZ_HEALTH_PORT/readyz"})
EOF
  done
}

# haproxy_cmd CMD: one command on HAProxy's runtime API (stats socket)
haproxy_cmd() {
  python3 - "$DMZ_DIR/lb/haproxy.sock" "$1" << 'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
out = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    out += b
sys.stdout.write(out.decode())
EOF
}

# haproxy_state N: UP, DOWN, MAINT... of server gwN as HAProxy sees it
haproxy_state() {
  haproxy_cmd "show stat" | awk -F, -v s="gw$1" '$1 == "gateways" && $2 == s {print $18}'
}

dmz_lb_start() { # N...
  dmz_haproxy_config "$@"
  dmz_dnsdist_config "$@"
  haproxy -c -f "$DMZ_DIR/lb/haproxy.cfg" > "$DMZ_DIR/logs/haproxy-check.log" 2>&1 ||
    dmz_die "haproxy.cfg: $(tail -5 "$DMZ_DIR/logs/haproxy-check.log")" || return 1
  dmz_start_in lb haproxy haproxy -db -f "$DMZ_DIR/lb/haproxy.cfg"
  dmz_start_in lb dnsdist dnsdist --supervised --disable-syslog -C "$DMZ_DIR/lb/dnsdist.conf"
  local n
  for n in "$@"; do
    dmz_wait "HAProxy: gw$n UP" 100 eval '[ "$(haproxy_state '"$n"')" = UP ]' || return 1
  done
  dmz_wait "dnsdist" 100 in_ns lb dig +time=1 +tries=1 @"$DMZ_LB" health.dmz.invalid A
}

# ---- teardown ---------------------------------------------------------------

dmz_down() {
  [ -n "${DMZ_DIR:-}" ] && [ -f "$DMZ_DIR/dmz.id" ] || return 0
  local f
  # Forwarders left the gateway namespaces (setns): kill them by pid.
  for f in "$DMZ_DIR"/pids/apifwd-*.pid; do
    [ -f "$f" ] && kill "$(cat "$f")" 2> /dev/null
  done
  dmz_remove_namespaces "$DMZ_ID"
  rm -f "$DMZ_DIR/dmz.id" "/run/egressd-dmz/$DMZ_ID"
}

# Leftovers of runs whose owner process is gone (a test killed by a
# timeout): their namespaces, and their API forwarders, found by the run's
# folder on their command line (they live in the host's namespace).
dmz_gc() {
  local f id owner dir p
  for f in /run/egressd-dmz/*; do
    [ -f "$f" ] || continue
    id="${f##*/}"
    owner="$(sed -n 's/^owner=//p' "$f")" dir="$(sed -n 's/^dir=//p' "$f")"
    if [ -n "$owner" ] && kill -0 "$owner" 2> /dev/null; then continue; fi
    echo "dmz: removing leftover run $id" >&2
    for p in $(pgrep -f "nsforward.py .*$dir/" 2> /dev/null); do kill "$p" 2> /dev/null; done
    dmz_remove_namespaces "$id"
    rm -f "$f"
  done
}

dmz_remove_namespaces() { # ID
  local role ns pids
  for role in vpc node1 node2 pod1 lb gw1 gw2 gw3 inet; do
    ns="egressd-dmz-$1-$role"
    [ -e "/run/netns/$ns" ] || continue
    pids="$(ip netns pids "$ns" 2> /dev/null)"
    # shellcheck disable=SC2086 # one argument per pid
    [ -n "$pids" ] && kill -TERM $pids 2> /dev/null
  done
  sleep 0.5
  for role in vpc node1 node2 pod1 lb gw1 gw2 gw3 inet; do
    ns="egressd-dmz-$1-$role"
    [ -e "/run/netns/$ns" ] || rm -rf "/etc/netns/$ns"
    [ -e "/run/netns/$ns" ] || continue
    pids="$(ip netns pids "$ns" 2> /dev/null)"
    # shellcheck disable=SC2086
    [ -n "$pids" ] && kill -KILL $pids 2> /dev/null
    ip netns del "$ns" 2> /dev/null
    rm -rf "/etc/netns/$ns"
  done
  return 0
}

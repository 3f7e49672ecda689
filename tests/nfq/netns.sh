# shellcheck shell=bash disable=SC2154  # fail() and $src are the caller's
# Sourced by the nfq network-namespace tests: three namespaces
#
#   client 10.200.1.2 fd10:1::2 -- gateway (routes) -- server 10.200.2.2/.3 fd10:2::2
#
# named PREFIX-{c,g,s}PID, a temp dir $work, a cleanup trap (kills $gwpid
# and everything in the namespaces, deletes them and $work), and C/G/S to
# run a command in client, gateway or server. The test defines fail().
#
#   nfq_netns_up PREFIX        the namespaces, $work and the trap
#   nfq_gateway_start ARGS...  the nfq_gateway driver (stop_gateway, expect_event)

C() { ip netns exec "$client" "$@"; }
G() { ip netns exec "$gw" "$@"; }
S() { ip netns exec "$server" "$@"; }

nfq_netns_cleanup() {
  set +e
  [ -n "$gwpid" ] && kill "$gwpid" 2> /dev/null && wait "$gwpid" 2> /dev/null
  for ns in "$client" "$gw" "$server"; do
    for pid in $(ip netns pids "$ns" 2> /dev/null); do kill "$pid" 2> /dev/null; done
  done
  sleep 0.2
  for ns in "$client" "$gw" "$server"; do ip netns del "$ns" 2> /dev/null; done
  rm -rf "$work"
}

nfq_netns_up() {
  id=$$
  client="$1-c$id" gw="$1-g$id" server="$1-s$id"
  work="$(mktemp -d)"
  gwpid=""
  trap nfq_netns_cleanup EXIT
  for ns in "$client" "$gw" "$server"; do ip netns add "$ns"; done
  ip link add "c$id" netns "$client" type veth peer name "gc$id" netns "$gw"
  ip link add "s$id" netns "$server" type veth peer name "gs$id" netns "$gw"
  C ip addr add 10.200.1.2/24 dev "c$id"; C ip link set "c$id" up; C ip link set lo up
  C ip route add default via 10.200.1.1
  G ip addr add 10.200.1.1/24 dev "gc$id"; G ip link set "gc$id" up
  G ip addr add 10.200.2.1/24 dev "gs$id"; G ip link set "gs$id" up; G ip link set lo up
  G sysctl -qw net.ipv4.ip_forward=1
  S ip addr add 10.200.2.2/24 dev "s$id"; S ip addr add 10.200.2.3/24 dev "s$id"
  S ip link set "s$id" up; S ip link set lo up
  S ip route add default via 10.200.2.1
  # IPv6 as well (nodad: usable at once).
  C ip -6 addr add fd10:1::2/64 dev "c$id" nodad; C ip -6 route add default via fd10:1::1
  G ip -6 addr add fd10:1::1/64 dev "gc$id" nodad; G ip -6 addr add fd10:2::1/64 dev "gs$id" nodad
  G sysctl -qw net.ipv6.conf.all.forwarding=1
  S ip -6 addr add fd10:2::2/64 dev "s$id" nodad; S ip -6 route add default via fd10:2::1
}

# nfq_gateway_start ARGS...: the nfq_gateway driver in the gateway with
# ARGS, log in $work/gateway.log, pid in $gwpid (not through G(): $! must
# be the driver itself, to stop or kill it); waits for "ready".
nfq_gateway_start() {
  : > "$work/gateway.log"
  ip netns exec "$gw" "$bin/nfq_gateway" "$@" > "$work/gateway.log" 2>&1 &
  gwpid=$!
  for _ in $(seq 50); do
    grep -q ready "$work/gateway.log" && return 0
    kill -0 "$gwpid" 2> /dev/null || fail "gateway exited"
    sleep 0.1
  done
  fail "gateway did not start"
}
stop_gateway() { kill "$gwpid"; wait "$gwpid" || true; gwpid=""; }

# expect_event REGEX: the gateway logged a matching decision line (2 s).
expect_event() {
  for _ in $(seq 20); do grep -Eq "$1" "$work/gateway.log" && return 0; sleep 0.1; done
  fail "no event matching: $1"
}

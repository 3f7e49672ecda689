#!/usr/bin/env bash
# Rule evaluations of egressd's chains per connection to a protected range
# (nfqueue.protected_cidrs: the cluster's own traffic, never judged), for
# the chain layout of this build and the one before the -NEW chains
# (tests/nfq/ruleset_legacy.cc), measured from the rules' counters with
# chain_cost.py on real connections through a gateway namespace.
#
# Usage: bench/gateway/protected_cost.sh BUILD_DIR [CONNECTIONS] (root).
# Three network namespaces (client -> gateway -> server), created and
# removed here; the gateway's chain comes from nfq_ruleset_tool with the
# insertion guard and the fast path, as egressd installs it (the kernel
# guard's and kernel verdict's programs are not pinned here, so their rules
# are left out: a protected connection's client packets never reach them,
# its server packets walk one more rule before the protected RETURNs in
# EGRESSD-REPLY of the layout before). Nothing here is queued: no egressd
# runs. Prints "layout ranges packets evaluations/packet evaluations/connection".
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$(cd "${1:?usage: protected_cost.sh BUILD_DIR [CONNECTIONS]}" && pwd)"
connections="${2:-50}"
tool="$build/bin/nfq_ruleset_tool"
[ -x "$tool" ] || { echo "protected_cost: $tool missing (build it first)" >&2; exit 1; }
id="pc$$"
c="$id-c" g="$id-g" s="$id-s"
cleanup() {
  [ -n "${server:-}" ] && kill "$server" 2> /dev/null
  for ns in "$c" "$g" "$s"; do ip netns del "$ns" 2> /dev/null || true; done
}
trap cleanup EXIT
for ns in "$c" "$g" "$s"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add "${id}c" netns "$c" type veth peer name "${id}gc" netns "$g"
ip link add "${id}s" netns "$s" type veth peer name "${id}gs" netns "$g"
ip -n "$c" addr add 10.98.1.2/24 dev "${id}c"
ip -n "$g" addr add 10.98.1.1/24 dev "${id}gc"
ip -n "$g" addr add 10.99.2.1/24 dev "${id}gs"
ip -n "$s" addr add 10.99.2.2/24 dev "${id}s"
for link in "$c ${id}c" "$g ${id}gc" "$g ${id}gs" "$s ${id}s"; do
  read -r ns dev <<< "$link"
  ip -n "$ns" link set "$dev" up
done
ip -n "$c" route add default via 10.98.1.1
ip -n "$s" route add default via 10.99.2.1
ip netns exec "$g" sysctl -q -w net.ipv4.ip_forward=1
echo ok > "/tmp/$id-index.html"
ip netns exec "$s" python3 -m http.server --bind 10.99.2.2 --directory /tmp 8080 > /dev/null 2>&1 &
server=$!
for _ in $(seq 50); do ip netns exec "$c" curl -s -o /dev/null "http://10.99.2.2:8080/$id-index.html" && break; sleep 0.1; done

measure() {  # measure LAYOUT RANGES...: one line of figures
  local layout="$1" args=(--confirm --fast-path --queues 0)
  shift
  for range in "$@"; do args+=(--protect "$range"); done
  ip netns exec "$g" "$tool" apply "${args[@]}"
  if [ "$layout" = before ]; then
    # The same chains, refilled with the layout before (v4 only: this
    # bench is IPv4); the -NEW chains stay, unreachable.
    { printf '*filter\n:EGRESSD - [0:0]\n:EGRESSD-VERDICT - [0:0]\n:EGRESSD-REPLY - [0:0]\n'
      "$tool" print-legacy "${args[@]}" |
        awk '/^-A EGRESSD -m connmark --mark 0x100000\/0x700000 -j RETURN$/ { n++ } n == 1'
      printf 'COMMIT\n'; } | ip netns exec "$g" iptables-restore --noflush
  fi
  ip netns exec "$g" iptables-save -c -t filter > "/tmp/$id.before"
  for _ in $(seq "$connections"); do
    ip netns exec "$c" curl -s -o /dev/null "http://10.99.2.2:8080/$id-index.html"
  done
  ip netns exec "$g" iptables-save -c -t filter > "/tmp/$id.after"
  read -r packets per total < <(python3 "$here/chain_cost.py" "/tmp/$id.before" "/tmp/$id.after" EGRESSD)
  echo "$layout $# $packets $per $(python3 -c "print('%.1f' % ($total / $connections))")"
  ip netns exec "$g" "$tool" remove
}
# The server's range last of several (in real clusters 2-6 ranges), and alone.
for layout in before after; do
  measure "$layout" 10.99.0.0/16
  measure "$layout" 172.16.0.0/12 192.168.0.0/16 10.99.0.0/16
done
rm -f "/tmp/$id.before" "/tmp/$id.after" "/tmp/$id-index.html"

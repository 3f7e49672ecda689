#!/bin/sh
# The DNS addresses egressd answers on, made local on the node. Run by the
# egressd DaemonSet's init container (`node-dns.sh add`) and by the
# uninstall DaemonSet (`node-dns.sh remove`), both on the host network with
# NET_ADMIN; docs/deploy.md "Node-local DNS wiring".
#
#   EGRESSD_DNS_ADDRESSES  the addresses of dns.listen in egressd.toml,
#                          space separated: the kube-dns ClusterIP (default
#                          install) or the link-local 169.254.20.11
#
# Where: the dummy interface egressd-dns, as NodeLocal DNSCache does, where
# the kernel has the dummy link type; else lo (kernels built without it, e.g.
# some VM and sandbox kernels). IPv4 addresses on lo carry the label
# lo:egressd, so `remove` finds exactly them. Idempotent: a restarted pod
# finds everything in place and changes nothing.
#
# Needs only /bin/sh and iproute2's `ip`.
set -eu

dev=egressd-dns
label=lo:egressd

add() {
  if ip link show "$dev" > /dev/null 2>&1 || ip link add "$dev" type dummy 2> /dev/null; then
    ip link set "$dev" up
    where=$dev
  else
    echo "node-dns: this kernel has no dummy link type; using lo"
    where=lo
  fi
  for address in $EGRESSD_DNS_ADDRESSES; do
    case $address in
      *:*) ip -6 addr replace "$address/128" dev "$where" nodad ;;
      *)
        if [ "$where" = lo ]; then
          ip -4 addr replace "$address/32" dev lo label "$label"
        else
          ip -4 addr replace "$address/32" dev "$where"
        fi
        ;;
    esac
    echo "node-dns: $address on $where"
  done
}

remove() {
  if ip link show "$dev" > /dev/null 2>&1; then
    ip link del "$dev"
    echo "node-dns: removed interface $dev"
  fi
  # "1: lo    inet 10.96.0.10/32 scope global lo:egressd ..." -> 10.96.0.10/32
  ip -4 -o addr show dev lo label "$label" | while read -r _ _ _ address _; do
    ip -4 addr del "$address" dev lo
    echo "node-dns: removed $address from lo"
  done
  for address in ${EGRESSD_DNS_ADDRESSES:-}; do
    case $address in
      *:*)
        # Absent (never added, or on the dummy interface): nothing to do.
        if ip -6 addr del "$address/128" dev lo 2> /dev/null; then
          echo "node-dns: removed $address from lo"
        fi
        ;;
    esac
  done
}

case ${1:-} in
  add) add ;;
  remove) remove ;;
  *)
    echo "usage: EGRESSD_DNS_ADDRESSES='10.96.0.10' $0 add|remove" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# The kernel guard's programs (nfq/kernel_guard.h) in a real kernel, without
# egressd: a gateway namespace routes a real TCP connection, a FORWARD rule
# per program counts its matches, and nfq_kernel_guard_tool reads and
# writes the maps. Checks: the SYN-ACK records client ISN + 1 (the first
# payload's sequence number, as tcpdump-free as it gets: the confirm entry
# built from it is confirmed by exactly the server's ACK of the bytes); an
# acknowledgment short of the judged end, and one that comes in on the
# client's interface, confirm nothing. IPv4 and IPv6.
set -euo pipefail
src="${EGRESSD_SOURCE_DIR:?}"
bin="${EGRESSD_BIN:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
# shellcheck source=netns.sh
. "$src/tests/nfq/netns.sh"
nfq_netns_up kgt
dir=/sys/fs/bpf/egressd-kgt$$

S python3 -c '
import socket, sys, threading
def serve(family, address):
    s = socket.socket(family); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((address, 8080)); s.listen(16)
    while True:
        c, _ = s.accept()
        threading.Thread(target=lambda c=c: [c.recv(100) for _ in range(3)], daemon=True).start()
threading.Thread(target=serve, args=(socket.AF_INET6, "fd10:2::2"), daemon=True).start()
serve(socket.AF_INET, "10.200.2.2")
' &

# The whole gateway side in one `ip netns exec` (one mount namespace: the
# bpffs the tool mounts is the one iptables resolves the pins in). Requests
# come through a FIFO; answers go to $work/out.
mkfifo "$work/in"
cat > "$work/gateway.sh" << EOS
set -e
"$bin/nfq_kernel_guard_tool" "$dir" < "$work/in" > "$work/out" 2>&1 &
for _ in \$(seq 50); do grep -q ready "$work/out" && break; sleep 0.1; done
for t in iptables ip6tables; do
  f=4; [ \$t = ip6tables ] && f=6
  \$t -A FORWARD -p tcp --tcp-flags SYN,RST,ACK SYN,ACK -m bpf --object-pinned $dir/synack\$f -j ACCEPT
  \$t -A FORWARD -p tcp -m conntrack --ctdir REPLY -m bpf --object-pinned $dir/confirm\$f -j ACCEPT
done
echo rules > "$work/rules"
wait
EOS
G bash "$work/gateway.sh" 2> "$work/gateway.err" &
exec 9> "$work/in"
for _ in $(seq 50); do [ -f "$work/rules" ] && break; sleep 0.1; done
[ -f "$work/rules" ] || fail "gateway side did not start: $(cat "$work/out" "$work/gateway.err")"

ask() {  # ask REQUEST: the tool's answer line
  local before
  before="$(wc -l < "$work/out")"
  echo "$*" >&9
  for _ in $(seq 50); do
    [ "$(wc -l < "$work/out")" -gt "$before" ] && { tail -n 1 "$work/out"; return; }
    sleep 0.05
  done
  fail "no answer to: $*"
}
ifindex() { G cat "/sys/class/net/$1/ifindex"; }
client_if="$(ifindex "gc$id")"
server_if="$(ifindex "gs$id")"

# One connection: CLIENT SERVER, a judged end relative to ISN + 1, and the
# client interface written into the confirm entry. Prints the confirm state.
connection() {
  local from="$1" to="$2" extra="$3" claimed_if="$4"
  coproc CONN { C python3 -c '
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family); s.connect((sys.argv[1], 8080))
print(s.getsockname()[1], flush=True)
sys.stdin.readline(); s.sendall(b"hello judged bytes"); sys.stdin.readline()
' "$to"; }
  local port
  read -r port <&"${CONN[0]}"
  local start
  start="$(ask start "$from" "$port" "$to" 8080)"
  read -r _ seq indev <<< "$start"
  [ "$seq" != none ] || fail "$to: the SYN-ACK recorded no start"
  [ "$indev" = "$server_if" ] || fail "$to: start recorded interface $indev, not the server side's $server_if"
  [ "$(ask expect "$from" "$port" "$to" 8080 $(((seq + 18 + extra) % 4294967296)) "$claimed_if")" = "expect ok" ] || fail "map write"
  echo >&"${CONN[1]}"
  sleep 0.3
  ask confirm "$from" "$port" "$to" 8080
  echo >&"${CONN[1]}"
  wait "$CONN_PID" 2> /dev/null || true
}

for pair in "10.200.1.2 10.200.2.2" "fd10:1::2 fd10:2::2"; do
  read -r from to <<< "$pair"
  [ "$(connection "$from" "$to" 0 "$client_if")" = "confirm 1" ] ||
    fail "$to: the server's ACK of the judged bytes did not confirm"
  [ "$(connection "$from" "$to" 1 "$client_if")" = "confirm 0" ] ||
    fail "$to: an ACK short of the judged end confirmed"
  [ "$(connection "$from" "$to" 0 "$server_if")" = "confirm 0" ] ||
    fail "$to: an ACK from the interface named as the client's confirmed"
done
echo "PASS kernel guard programs"

#!/usr/bin/env bash
# The kernel verdict's programs (nfq/kernel_verdict.h) in a real kernel,
# without egressd: a gateway namespace routes real curl and openssl
# connections, iptables' bpf match runs the kernel guard's synack program
# (which records the start) and the verdict program in FORWARD, and
# nfq_kernel_verdict_tool fills the names map and reads the ring and the
# confirm map. Checks, IPv4 and IPv6: an allowed Host and an allowed SNI
# are judged in the kernel (the rule matched, one ring record with the
# client's first payload, the client's interface, the confirm entry's
# judged end = its sequence number + length); a name not in the map is not
# (no match, no record).
set -euo pipefail
src="${EGRESSD_SOURCE_DIR:?}"
bin="${EGRESSD_BIN:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
# shellcheck source=netns.sh
. "$src/tests/nfq/netns.sh"
nfq_netns_up kvp
dir=/sys/fs/bpf/egressd-kvp$$

S python3 -c '
import socket, threading
def answer(c):
    try:
        c.recv(4096); c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    finally:
        c.close()
def serve(family, address, port):
    s = socket.socket(family); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((address, port)); s.listen(16)
    while True:
        c, _ = s.accept()
        threading.Thread(target=answer, args=(c,), daemon=True).start()
for family, address in ((socket.AF_INET, "10.200.2.2"), (socket.AF_INET6, "fd10:2::2")):
    for port in (8080, 8443):
        threading.Thread(target=serve, args=(family, address, port), daemon=True).start()
threading.Event().wait()
' &

# The gateway side in one `ip netns exec` (one mount namespace: the bpffs
# the tool mounts is the one iptables resolves the pins in).
mkfifo "$work/in"
cat > "$work/gateway.sh" << EOS
set -e
"$bin/nfq_kernel_verdict_tool" "$dir" < "$work/in" > "$work/out" 2>&1 &
for _ in \$(seq 50); do grep -q ready "$work/out" && break; sleep 0.1; done
for t in iptables ip6tables; do
  f=4; [ \$t = ip6tables ] && f=6
  \$t -A FORWARD -p tcp --tcp-flags SYN,RST,ACK SYN,ACK -m bpf --object-pinned $dir/synack\$f -j ACCEPT
  \$t -A FORWARD -p tcp -m conntrack --ctdir ORIGINAL -m bpf --object-pinned $dir/verdict\$f -j ACCEPT
done
echo rules > "$work/rules"
wait
EOS
G bash "$work/gateway.sh" 2> "$work/gateway.err" &
exec 9> "$work/in"
for _ in $(seq 50); do [ -f "$work/rules" ] && break; sleep 0.1; done
[ -f "$work/rules" ] || fail "gateway side did not start: $(cat "$work/out" "$work/gateway.err")"

ask() {  # ask REQUEST [LINES]: the tool's last LINES answer lines (default 1)
  local before want="${2:-1}"
  before="$(wc -l < "$work/out")"
  echo "$1" >&9
  for _ in $(seq 50); do
    [ "$(wc -l < "$work/out")" -ge $((before + want)) ] && { tail -n "$want" "$work/out"; return; }
    sleep 0.05
  done
  fail "no answer to: $1"
}
drain() {  # the records of one drain, one per line
  local before n=-1
  before="$(wc -l < "$work/out")"
  echo drain >&9
  for _ in $(seq 50); do
    if [ "$n" -lt 0 ] && [ "$(wc -l < "$work/out")" -gt "$before" ]; then
      n="$(sed -n "$((before + 1))s/^records //p" "$work/out")"
    fi
    if [ "$n" -ge 0 ] && [ "$(wc -l < "$work/out")" -ge $((before + 1 + n)) ]; then
      sed -n "$((before + 2)),$((before + 1 + n))p" "$work/out"
      return
    fi
    sleep 0.05
  done
  fail "no answer to drain"
}
matches() { G "$1" -L FORWARD -v -x -n | awk '/verdict/ { print $1 }'; }
client_if="$(G cat "/sys/class/net/gc$id/ifindex")"

for target in 10.200.2.2 fd10:2::2; do
  t=iptables; [[ $target == *:* ]] && t=ip6tables
  url_host="$target"; [[ $target == *:* ]] && url_host="[$target]"
  for port in 8080 8443; do
    [ "$(ask "allow $target $port api.example.com")" = "allow ok" ] || fail "allow"
  done

  # HTTP: curl's request head names api.example.com:8080.
  before="$(matches $t)"
  C curl -s -m 5 --resolve "api.example.com:8080:$target" http://api.example.com:8080/ > "$work/body" ||
    fail "$target: curl failed"
  [ "$(cat "$work/body")" = ok ] || fail "$target: no answer"
  [ "$(matches $t)" -eq $((before + 1)) ] || fail "$target: the verdict rule matched $(($(matches $t) - before)) packets"
  records="$(drain)"
  [ "$(wc -l <<< "$records")" -eq 1 ] || fail "$target: records: $records"
  read -r _ source ifindex _ peer cport dst dport seq length first <<< "$records"
  [ "$source $dst $dport $first" = "host $target 8080 71" ] || fail "$target: record $records"
  [ "$ifindex" = "$client_if" ] || fail "$target: record interface $ifindex, not the client side's $client_if"
  [ "$(ask "confirm $peer $cport $dst $dport")" = "confirm $(((seq + length) % 4294967296)) $client_if" ] ||
    fail "$target: confirm entry $(tail -n 1 "$work/out"), expected end $((seq + length))"

  # TLS: openssl's ClientHello names api.example.com (the handshake itself
  # fails: the server is not TLS).
  before="$(matches $t)"
  C timeout 5 openssl s_client -connect "$url_host:8443" -servername api.example.com < /dev/null > "$work/tls.log" 2>&1 || true
  [ "$(matches $t)" -eq $((before + 1)) ] || fail "$target: TLS: the verdict rule matched $(($(matches $t) - before)): $(head -c 300 "$work/tls.log")"
  records="$(drain)"
  read -r _ source ifindex _ _ _ dst dport _ _ first <<< "$records"
  [ "$source $dst $dport $first $ifindex" = "sni $target 8443 22 $client_if" ] || fail "$target: TLS record $records"

  # A name not in the map: no match, no record; the connection itself works.
  before="$(matches $t)"
  C curl -s -m 5 --resolve "other.example.com:8080:$target" http://other.example.com:8080/ > /dev/null ||
    fail "$target: curl other failed"
  [ "$(matches $t)" -eq "$before" ] || fail "$target: a name not in the map matched"
  [ -z "$(drain)" ] || fail "$target: a record for a name not in the map"
done
echo "PASS kernel verdict programs"

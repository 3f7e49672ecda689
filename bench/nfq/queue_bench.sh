#!/usr/bin/env bash
# Verdicts per second through one NFQUEUE worker (kernel round trip
# included): a client namespace sends TCP SYNs from ever new source ports
# (so each is a new flow the chain queues) through a gateway namespace that
# runs nfq_gateway on queue 0; half go to a port no rule uses (deny, reset
# by the kernel), half to a world-access port (allow, marked). Counts the
# worker's packets and the kernel's queue drops over a fixed time.
#   queue_bench.sh BUILD_DIR RESULTS_DIR [SECONDS]
set -euo pipefail
build="$1"; results="$2"; seconds="${3:-5}"
id=$$
client="egressd-bench-c$id" gw="egressd-bench-g$id" server="egressd-bench-s$id"
work="$(mktemp -d)"
gwpid=""
cleanup() {
  set +e
  [ -n "$gwpid" ] && kill "$gwpid" 2>/dev/null && wait "$gwpid" 2>/dev/null
  for ns in "$client" "$gw" "$server"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null; done
  done
  for ns in "$client" "$gw" "$server"; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
for ns in "$client" "$gw" "$server"; do ip netns add "$ns"; done
ip link add "c$id" netns "$client" type veth peer name "gc$id" netns "$gw"
ip link add "s$id" netns "$server" type veth peer name "gs$id" netns "$gw"
ip -n "$client" addr add 10.201.1.2/24 dev "c$id"; ip -n "$client" link set "c$id" up
ip -n "$client" route add default via 10.201.1.1
ip -n "$gw" addr add 10.201.1.1/24 dev "gc$id"; ip -n "$gw" link set "gc$id" up
ip -n "$gw" addr add 10.201.2.1/24 dev "gs$id"; ip -n "$gw" link set "gs$id" up
ip netns exec "$gw" sysctl -qw net.ipv4.ip_forward=1
ip -n "$server" addr add 10.201.2.2/24 dev "s$id"; ip -n "$server" link set "s$id" up
ip -n "$server" route add default via 10.201.2.1
ip netns exec "$gw" "$build/bin/nfq_ruleset_tool" apply --queues 0
cat >"$work/rules.yaml" <<'YAML'
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: bench, namespace: bench}
spec:
  targets: ["*:8080", "api.example.com:443"]
YAML
ip netns exec "$gw" "$build/bin/nfq_gateway" --rules "$work/rules.yaml" --queues 0 >/dev/null 2>"$work/gw.err" &
gwpid=$!
for _ in $(seq 50); do grep -q ready "$work/gw.err" && break; sleep 0.1; done
# Raw SYN sender: new source port (and so a new flow) for every packet.
ip netns exec "$client" python3 - "$seconds" >"$work/sent" <<'PY'
import socket, struct, sys, time
seconds = float(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
src, dst = socket.inet_aton("10.201.1.2"), socket.inet_aton("10.201.2.2")
def syn(sport, dport):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 0x50, 0x02, 65535, 0, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
    data = pseudo + tcp
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xffff) + (total >> 16)
    tcp = tcp[:16] + struct.pack("!H", ~total & 0xffff) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, src, dst)
    return ip + tcp
packets = [syn(1024 + i, 25 if i % 2 else 8080) for i in range(60000)]
end = time.time() + seconds
sent = 0
while time.time() < end:
    for p in packets[sent % 60000: sent % 60000 + 1000]:
        s.sendto(p, ("10.201.2.2", 0))
    sent += 1000
print(sent)
PY
sleep 0.5
# CPU the gateway used (user and system ticks), to tell user-space cost
# from the kernel's share.
read -r utime stime < <(awk '{print $14, $15}' "/proc/$gwpid/stat")
ticks="$(getconf CLK_TCK)"
queue_line="$(ip netns exec "$gw" cat /proc/net/netfilter/nfnetlink_queue | awk '$1 == 0')"
kill "$gwpid"; wait "$gwpid" || true; gwpid=""
packets="$(sed -n 's/.*packets=\([0-9]*\).*/\1/p' "$work/gw.err" | head -1)"
batches="$(sed -n 's/.*batches=\([0-9]*\).*/\1/p' "$work/gw.err" | head -1)"
sent="$(cat "$work/sent")"
dropped="$(awk '{print $6 + $7}' <<<"$queue_line")"
echo "queue line: $queue_line (id portid waiting mode range queue_dropped user_dropped last_id)"
rate=$((packets / seconds))
cpu_user="$(awk -v t="$utime" -v k="$ticks" 'BEGIN{printf "%.2f", t/k}')"
cpu_sys="$(awk -v t="$stime" -v k="$ticks" 'BEGIN{printf "%.2f", t/k}')"
echo "nfq queue: sent=$sent queued+decided=$packets in ${seconds}s -> $rate verdicts/s (batches=$batches, kernel queue drops=$dropped, gateway cpu user=${cpu_user}s sys=${cpu_sys}s)"
cat >"$results/nfq_queue.json" <<JSON
{"benchmark": "nfq_queue", "seconds": $seconds, "sent": $sent, "decided": $packets,
 "verdicts_per_second": $rate, "verdict_batches": $batches, "kernel_queue_drops": $dropped,
 "gateway_cpu_user_seconds": $cpu_user, "gateway_cpu_system_seconds": $cpu_sys,
 "note": "one queue, one worker; raw SYNs from new source ports (python sender: usually the limit), half denied (reset), half allowed; cpu seconds / decided = per-packet cost"}
JSON

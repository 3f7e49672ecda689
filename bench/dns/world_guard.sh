#!/usr/bin/env bash
# bench/dns/world_guard.sh: what the world-access guard (address-only
# queries, the DNS tunnel budget; docs/dns.md "World access and DNS
# tunnels") costs per query, measured as instructions under callgrind,
# which is stable on a shared, noisy machine where CPU time is not.
#
# Runs two egressd binaries one after the other with the same
# configuration (DNS only, a `*:443` rule set, log level warn) in front of
# the same scripted upstream on 127.0.0.1, and sends each the same query
# stream: QUERIES address queries for names allowed only by world access
# (200 names over 40 registrable domains, so nearly all are cache hits, the
# cheapest path and so the one where the guard weighs most). Reports the
# instructions per query of each and the ratio NEW/BASE (the acceptance
# bound is 1.03). Everything stays on loopback.
#
# WORLD_GUARD_CASE=uncached: every query a new name (20 per registrable
# domain, within the budget), so every query is forwarded, charged and
# needs a public suffix lookup: the guard's worst case per query.
#
# WORLD_GUARD_TOOL=cpu: no callgrind; the server's CPU time (user + system,
# /proc/PID/stat) over the query stream instead, in clock ticks per 1000
# queries (noisy on a shared machine: repeat and compare medians).
#
# Usage: bench/dns/world_guard.sh BASE_EGRESSD NEW_EGRESSD [QUERIES]
#   e.g. bench/dns/world_guard.sh /tmp/egressd-main build/bin/egressd 20000
# Needs: valgrind, python3.
set -euo pipefail
base_bin="${1:?base egressd}"
new_bin="${2:?new egressd}"
queries="${3:-20000}"
for tool in valgrind python3; do
  command -v "$tool" >/dev/null || { echo "world_guard: $tool missing" >&2; exit 1; }
done

work="$(mktemp -d /tmp/egressd-world-guard.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${WORLD_GUARD_KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# The upstream: answers every A query with one public address, TTL 1 h
# (not documentation space, which egressd treats as internal by default
# and the binary before world-internal does not know how to declare public).
python3 - "$work/upstream.port" <<'PY' &
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
while True:
    q, peer = s.recvfrom(4096)
    if len(q) < 12:
        continue
    end = 12
    while q[end] != 0:
        end += q[end] + 1
    question = q[12:end + 5]
    header = q[:2] + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 0)
    answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 3600, 4) + bytes([93, 184, 215, 14])
    s.sendto(header + question + answer, peer)
PY
pids+=($!)
for _ in $(seq 50); do [ -s "$work/upstream.port" ] && break; sleep 0.1; done
upstream_port="$(cat "$work/upstream.port")"

mkdir -p "$work/rules"
cat > "$work/rules/world.yaml" <<'YAML'
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: world, namespace: bench}
spec:
  targets: ["*:443", "api.example.org:443"]
YAML

run() {  # run NAME BINARY: prints instructions per query
  local name="$1" binary="$2"
  local port
  port="$(python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  cat > "$work/$name.toml" <<TOML
[rules]
dirs = ["rules"]
[dns]
listen = ["127.0.0.1:$port"]
upstreams = ["127.0.0.1:$upstream_port"]
[nfqueue]
enabled = false
[metrics]
enabled = false
[control]
socket = "$name.sock"
[log]
level = "warn"
TOML
  # --toggle-collect: only the query path counts, not start-up (rules,
  # public suffix list) or shutdown.
  if [ "${WORLD_GUARD_TOOL:-callgrind}" = cpu ]; then
    "$binary" --config "$work/$name.toml" > "$work/$name.stdout" 2> "$work/$name.log" &
  else
    valgrind --tool=callgrind --callgrind-out-file="$work/$name.out" \
      --toggle-collect='dns::DnsService::onUdpReadable*' --toggle-collect='dns::DnsService::onUpstreamUdp*' \
      "$binary" --config "$work/$name.toml" > "$work/$name.stdout" 2> "$work/$name.log" &
  fi
  local pid=$!
  pids+=("$pid")
  # Ready when it answers (start-up under callgrind takes a while; the
  # warm-up query is outside the collected functions' count only in part,
  # and the same for both binaries).
  local ready=0
  for _ in $(seq 300); do
    if kill -0 "$pid" 2>/dev/null && python3 - "$port" <<'PY'
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
s.sendto(struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\x03api\x07example\x03org\x00" + struct.pack(">HH", 1, 1),
         ("127.0.0.1", int(sys.argv[1])))
try:
    s.recv(512)
except OSError:
    sys.exit(1)
PY
    then
      ready=1
      break
    fi
    sleep 0.5
  done
  [ "$ready" = 1 ] || { cat "$work/$name.log" >&2; echo "world_guard: $name did not start" >&2; exit 1; }
  local ticks_before
  ticks_before="$(awk '{print $14 + $15}' "/proc/$pid/stat")"
  python3 - "$port" "$queries" "${WORLD_GUARD_CASE:-cached}" <<'PY'
import random, socket, struct, sys
port, total, case = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
if case == "uncached":
    names = [f"h{j}.site{i}.example" for i in range(total // 20 + 1) for j in range(20)]
else:
    names = [f"h{j}.site{i}.example" for i in range(40) for j in range(5)]
rng = random.Random(1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.connect(("127.0.0.1", port))
answered = 0
for n in range(total):
    name = names[n % len(names)] if n >= len(names) else names[n]
    qname = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    s.send(struct.pack(">HHHHHH", n & 0xffff, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", 1, 1))
    reply = s.recv(4096)
    if struct.unpack(">H", reply[6:8])[0] == 1:
        answered += 1
if answered != total:
    sys.exit(f"only {answered} of {total} queries were answered")
PY
  if [ "${WORLD_GUARD_TOOL:-callgrind}" = cpu ]; then
    echo $(( $(awk '{print $14 + $15}' "/proc/$pid/stat") - ticks_before ))
    kill -TERM "$pid"
    wait "$pid" || true
    return
  fi
  kill -TERM "$pid"
  wait "$pid" || true
  callgrind_annotate "$work/$name.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
}

base_ir="$(run base "$base_bin")"
new_ir="$(run new "$new_bin")"
python3 - "$base_ir" "$new_ir" "$queries" "${WORLD_GUARD_TOOL:-callgrind}" <<'PY'
import sys
base, new, queries = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
unit = "clock ticks per 1000 queries" if sys.argv[4] == "cpu" else "instructions/query"
scale = 1000 if unit.startswith("clock") else 1
print(f"base: {base * scale / queries:.1f} {unit}")
print(f"new:  {new * scale / queries:.1f} {unit}")
print(f"ratio new/base: {new / base:.4f} (bound 1.03)")
PY

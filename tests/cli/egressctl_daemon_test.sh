#!/usr/bin/env bash
# egressctl against a real egressd in the DNS-only shape (NFQUEUE off, no
# root), loopback only, unbound as the upstream, kdig as the client: the
# egressd.started line says what is enforced; `stats --watch 1`; stats
# grouped and aligned, --json for machines; EGRESSCTL_SOCKET and --config
# find the socket; `top` shows the allowed names too when DNS is all egressd
# sees; watch filters on qtype, rcode, reason and port names.
# Needs: unbound, kdig (knot-dnsutils), jq, python3.
set -uo pipefail
bin="${EGRESSD_BIN:?}"
src="${EGRESSD_SOURCE_DIR:?}"
for tool in unbound kdig jq python3; do
  command -v "$tool" > /dev/null || { echo "FAIL: $tool not installed"; exit 1; }
done
# shellcheck source=tests/support/checks.sh
. "$src/tests/support/checks.sh"
checks_init egressctl-daemon-test
jqe() { jq -e "$@" > /dev/null; }

# shellcheck source=tests/dns/unbound.sh
. "$src/tests/dns/unbound.sh"

unbound_example_test 'api   IN TXT "hello"' 'evil  IN A   203.0.113.66'

dns_port="$(free_port)"
mkdir -p "$work/rules"
cat > "$work/rules/app.yaml" << 'EOF'
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: app, namespace: team}
spec: {targets: ["api.example.test:443"]}
EOF
cat > "$work/egressd.toml" << TOML
[rules]
dirs = ["rules"]
# The upstream answers with documentation addresses (internal by default).
public_cidrs = ["192.0.2.0/24", "203.0.113.0/24"]
[dns]
listen = ["127.0.0.1:$dns_port"]
upstreams = ["127.0.0.1:$upstream_port"]
[nfqueue]
enabled = false
[metrics]
enabled = false
[control]
socket = "control.sock"
TOML
sock="$work/control.sock"
egressd_start "$work/egressd.toml" || { fail "egressd did not start" "$(cat "$work/log")"; exit 1; }
started="$(grep egressd.started "$work/log")"

# ---- the started line says what is enforced ---------------------------------
for field in "mode=enforce" "enforces=dns_only" "dns=127.0.0.1:$dns_port" "upstreams=127.0.0.1:$upstream_port" \
  'nfqueue="off: connections are not judged"' 'proxy=off' "strict_binding=true"; do
  if grep -qF -- "$field" <<< "$started"; then ok "egressd.started has $field"; else fail "egressd.started lacks $field" "$started"; fi
done

q() { kdig @127.0.0.1 -p "$dns_port" +timeout=2 +retry=0 "$@" > /dev/null 2>&1; }

# ---- stats ---------------------------------------------------------------------
q api.example.test A
start=$(date +%s.%N)
out="$("$bin/egressctl" stats --watch 1 --iterations 2 --socket "$sock" 2>&1)"; rc=$?
elapsed=$(python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$start" "$(date +%s.%N)")
check "stats --watch 1 (a space, not =) exits 0" [ "$rc" = 0 ]
check "... refreshed twice" [ "$(grep -c '^mode enforce, up ' <<< "$out")" = 2 ]
check "... one second apart ($elapsed s)" python3 -c "import sys; sys.exit(0 if 0.9 <= float(sys.argv[1]) < 5 else 1)" "$elapsed"
out="$("$bin/egressctl" stats --socket "$sock")"
check "stats: a dns block" grep -qx 'dns' <<< "$out"
check "stats: aligned 'queries' under it" grep -Eq '^  queries +[1-9][0-9]*$' <<< "$out"
check "stats: histograms as quantiles" grep -Eq '^  upstream_latency +count [0-9]+(: p50 .*, p90 .*, p99 .*)?$' <<< "$out"
check "stats: no raw buckets for humans" bash -c '! grep -q buckets <<< "$1"' _ "$out"
queries="$("$bin/egressctl" stats --json --socket "$sock" | jq '.dns.queries')"
check "stats --json: .dns.queries is a number ($queries)" [ "$queries" -ge 1 ]
out="$(EGRESSCTL_SOCKET="$sock" "$bin/egressctl" stats --json 2>&1)"
check "EGRESSCTL_SOCKET finds the daemon" jqe '.dns.queries >= 1' <<< "$out"
out="$("$bin/egressctl" stats --json --config "$work/egressd.toml" 2>&1)"
check "--config egressd.toml finds the daemon (a relative control.socket too)" jqe '.dns.queries >= 1' <<< "$out"

# ---- top in the DNS-only shape: the allowed names are there -----------------
"$bin/egressctl" top --socket "$sock" -i 2 --iterations 1 --json > "$work/top.json" 2>&1 &
top_pid=$!
sleep 0.5
q api.example.test A
q api.example.test AAAA
q evil.example.test A
wait "$top_pid"
top="$(cat "$work/top.json")"
check "top --json: the allowed name, counted as allowed" \
  jqe '.dns_names[] | select(.key == "api.example.test" and .allow == 2)' <<< "$top"
check "top --json: the denied name is there too" jqe '.dns_names[] | select(.key == "evil.example.test" and .deny == 1)' <<< "$top"
"$bin/egressctl" top --socket "$sock" -i 1 --iterations 1 > "$work/top.txt" 2>&1 &
top_pid=$!
sleep 0.3
q api.example.test A
wait "$top_pid"
check "top: a DNS NAME table with the allowed name" grep -Eq '^api\.example\.test +1 +1 +0 +0$' "$work/top.txt"

# ---- watch: qtype, rcode, reason, port names ---------------------------------
watch_one() {  # FILTER... -> the first matching line (within 3 s)
  timeout 3 "$bin/egressctl" watch -c 1 --socket "$sock" "$@" > "$work/watch.out" 2>&1 &
  local p=$!
  sleep 0.4
  q api.example.test A; q api.example.test TXT; q evil.example.test A; q evil.example.test TXT
  wait "$p"
  cat "$work/watch.out"
}
line="$(watch_one qtype TXT and rcode NXDOMAIN)"
check "watch 'qtype TXT and rcode NXDOMAIN': the denied TXT query" grep -Eq ' dns TXT evil\.example\.test DENY ' <<< "$line"
line="$(watch_one 'qtype TXT and verdict allow')"
check "watch 'qtype TXT and verdict allow': the allowed TXT query" grep -Eq ' dns TXT api\.example\.test ALLOW' <<< "$line"
line="$(watch_one 'reason not_* and qtype A')"
check "watch 'reason not_*': the denied A query" grep -Eq ' dns A evil\.example\.test DENY not_allowed' <<< "$line"
# (DNS events go to egressd's listener, a random port here: no port name.)
line="$(watch_one 'rcode NOERROR and qtype a and not port https')"
check "watch 'rcode NOERROR and qtype a and not port https': the allowed A query" grep -Eq ' dns A api\.example\.test ALLOW' <<< "$line"
# A control: a filter nothing matches gives no line (the harness sees misses).
line="$(watch_one 'sni api.example.test')"
check "watch 'sni ...' matches no DNS event" [ -z "$line" ]

# ---- explain says when egressd only audits (mode is live: SIGHUP) -------------
out="$("$bin/egressctl" explain evil.example.test:443 --socket "$sock" 2>&1)"
check "explain in enforce mode: denied" grep -q 'evil.example.test:443 DENIED' <<< "$out"
if grep -q "audit mode" <<< "$out"; then fail "... without an audit note" "$out"; else ok "... without an audit note"; fi
sed -i '1i mode = "audit"' "$work/egressd.toml"
kill -HUP "$egressd_pid"
for _ in $(seq 30); do grep -q 'event=config.reloaded mode=audit' "$work/log" && break; sleep 0.1; done
out="$("$bin/egressctl" explain evil.example.test:443 --socket "$sock" 2>&1)"; rc=$?
check "explain after SIGHUP to audit: still the rules' verdict (exit 1)" [ "$rc" = 1 ]
check "... and says the connection is let through" grep -q \
  'egressd runs in audit mode (mode = "audit"): it reports this as "would deny" and lets it through' <<< "$out"
sed -i '1d' "$work/egressd.toml"
kill -HUP "$egressd_pid"

# ---- watch -w: DNS decisions carry no packet, and watch says so ------------------
timeout 3 "$bin/egressctl" watch -c 1 -w "$work/dns.pcap" --socket "$sock" 'dns and qtype A' \
  > "$work/pcap.out" 2> "$work/pcap.err" &
p=$!
sleep 0.4
q api.example.test A
wait "$p"; rc=$?
check "watch -w -c 1 on a DNS decision exits 0" [ "$rc" = 0 ]
check "... the file is a pcap file with its header only" [ "$(stat -c %s "$work/dns.pcap")" = 24 ]
check "... and watch says why it holds no packet" grep -q \
  "0 packets written to $work/dns.pcap for 1 matching decision (DNS answers and proxy decisions carry no packet" \
  "$work/pcap.err"

checks_summary

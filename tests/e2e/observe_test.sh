#!/usr/bin/env bash
# egressctl against a running egressd (issue 5): watch with a matrix of
# filters (valid and invalid), -c, --json, -w FILE.pcap read back with
# tcpdump, rules, stats, explain through the control socket, the socket's
# mode, and a client that subscribes and never reads: decisions go on, its
# events are dropped and counted. Topology: tests/e2e/topology.sh.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${EGRESSD_BIN:-${1:-}}"
[ -x "$bin/egressd" ] && [ -x "$bin/egressctl" ] || { echo "usage: EGRESSD_BIN=BUILD/bin $0"; exit 2; }
watchers=()
e2e_cleanup_extra() {
  for p in "${watchers[@]}"; do kill "$p" 2> /dev/null; done
}
# shellcheck source=tests/e2e/harness.sh
. "$here/harness.sh"
e2e_start observe

mkdir -p "$dir/rules" "$dir/out"
cat > "$dir/rules/app.yaml" << EOF2
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: app, namespace: team-a}
spec:
  targets:
  - api.example.com:443
  - other.example.com:8080
  - $E2E_IP4_IP_TARGET:80
EOF2
cat > "$dir/rules/web.yaml" << EOF2
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: web, namespace: team-b}
spec:
  targets:
  - api.example.com:443
  - "*.example.org:443"
EOF2
write_egressd_config "$dir/egressd.toml" "$dir/rules"
# The control socket lives in a directory egressd creates, with the
# configured mode (the default, 0600, is checked by the unit tests).
sed -i "s|^socket = .*|socket = \"$dir/run/control.sock\"\nsocket_mode = \"0660\"|" "$dir/egressd.toml"
sock="$dir/run/control.sock"
start_egressd "$bin/egressd" "$dir/egressd.toml" || exit 1
ctl() { "$bin/egressctl" "$@"; }

expect_eq "the control socket has the configured mode 0660" 660 "$(stat -c %a "$sock")"
expect_eq "its directory was created 0755" 755 "$(stat -c %a "$dir/run")"
expect_match "the socket is logged" 'event=control.listening' "$(cat "$E2E_LOGS/egressd.log")"

# --- a second egressd refuses the same socket -------------------------------
sed -e "s|^listen = \[.*\]|listen = [\"127.0.0.1:0\"]|" -e 's|^enabled = true|enabled = false|' "$dir/egressd.toml" > "$dir/second.toml"
second="$(in_gw timeout 5 "$bin/egressd" --config "$dir/second.toml" 2>&1)"
expect_match "a second egressd refuses a socket someone listens on" "already listening on $sock" "$second"
expect_eq "... and leaves it in place" 660 "$(stat -c %a "$sock")"

# --- watch: a matrix of filters ----------------------------------------------
# Each filter gets its own watch client (lines, no colour); traffic runs;
# then the clients are interrupted and their output checked.
declare -A filters=(
  [all]=""
  [deny]="verdict deny"
  [allow]="verdict allow"
  [dns]="dns"
  [notdns]="not dns"
  [p443]="port 443"
  [p80]="dst port 80"
  [apihost]="dst host $E2E_IP4_API_EXAMPLE_COM"
  [inet]="net 203.0.113.0/24"
  [name]="name api.example.com"
  [wild]="name *.example.com"
  [tcpdeny]="proto tcp and verdict deny"
  [rsb]="ruleset team-b/web"
  [paren]="src net $E2E_POD_NET4 and (port 443 or port 80)"
  [v6]="src net $E2E_POD_NET6"
  [notallow]="not verdict allow and not dns"
  [udp]="udp and port 53"
)
for key in "${!filters[@]}"; do
  # shellcheck disable=SC2086 # the filter words are split on purpose, as tcpdump's
  "$bin/egressctl" watch --socket "$sock" --no-colour ${filters[$key]} > "$dir/out/$key" 2> "$dir/out/$key.err" &
  watchers+=($!)
done
"$bin/egressctl" watch --socket "$sock" --json > "$dir/out/json" 2>&1 &
watchers+=($!)
"$bin/egressctl" watch --socket "$sock" -w "$dir/out/tls.pcap" port 443 > "$dir/out/pcap.out" 2>&1 &
pcap_pid=$!
watchers+=("$pcap_pid")
"$bin/egressctl" watch --socket "$sock" -c 2 --no-colour > "$dir/out/count2" 2>&1 &
count_pid=$!
sleep 1

expect_eq "traffic: allowed name" 200 "$(curl_pod https://api.example.com/)"
expect_eq "traffic: allowed name over IPv6" 200 "$(curl_pod https://api.example.com/ -6)"
expect_eq "traffic: wildcard name" 200 "$(curl_pod https://www.example.org/)"
expect_eq "traffic: IP target" 200 "$(curl_pod "http://$E2E_IP4_IP_TARGET/")"
expect_match "traffic: name allowed on 8080 only, reset on 443" '^curl:(7|35|52|56)$' "$(curl_pod https://other.example.com/)"
expect_eq "traffic: denied name" NXDOMAIN "$(dns_pod edge.example.net)"
sleep 1
for p in "${watchers[@]}"; do kill -TERM "$p" 2> /dev/null; done
for p in "${watchers[@]}"; do wait "$p" 2> /dev/null; done
watchers=()
wait "$count_pid"; count_rc=$?

out() { cat "$dir/out/$1"; }
nonempty_and_all() {  # FILE ERE: at least one line, and every line matches
  [ -s "$dir/out/$1" ] && ! grep -Ev -- "$2" "$dir/out/$1" | grep -q .
}
none() { ! grep -Eq -- "$2" "$dir/out/$1"; }
# The line format: "TIME SRC > DST PROTO ... VERDICT ..."
expect_match "watch: an allow line, tcpdump style" \
  "^[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6} 10\.77\.0\.2:[0-9]+ > $E2E_IP4_API_EXAMPLE_COM:443 tcp sni=api\.example\.com ALLOW by team-a/app,team-b/web" "$(out all)"
expect_match "watch: a DNS refusal line" "dns A edge\.example\.net DENY" "$(out all)"
expect_match "watch: the SNI denial" "sni=other\.example\.com DENY" "$(out all)"
expect_ok "filter 'verdict deny': only denials" nonempty_and_all deny ' DENY '
expect_ok "filter 'verdict allow': only allows" nonempty_and_all allow ' ALLOW '
expect_ok "filter 'dns': only DNS" nonempty_and_all dns ' dns '
expect_ok "filter 'not dns': no DNS" nonempty_and_all notdns ' (tcp|udp|icmp) '
expect_ok "filter 'port 443': only port 443" nonempty_and_all p443 ':443 '
expect_ok "filter 'dst port 80': the IP target only" nonempty_and_all p80 "> $E2E_IP4_IP_TARGET:80 "
expect_ok "filter 'dst host': one address" nonempty_and_all apihost "> $E2E_IP4_API_EXAMPLE_COM:"
expect_ok "filter 'net 203.0.113.0/24': no DNS to egressd" nonempty_and_all inet '> 203\.0\.113\.'
expect_ok "filter 'name api.example.com'" nonempty_and_all name 'api\.example\.com'
expect_ok "filter 'name *.example.com': names under example.com" nonempty_and_all wild '[a-z]+\.example\.com'
expect_ok "... and not example.org or .net" none wild 'example\.(org|net)'
expect_ok "filter 'proto tcp and verdict deny'" nonempty_and_all tcpdeny ' tcp .* DENY'
expect_match "... has the SNI denial" 'other\.example\.com' "$(out tcpdeny)"
expect_ok "filter 'ruleset team-b/web'" nonempty_and_all rsb 'team-b/web'
expect_match "... includes the wildcard match" 'www\.example\.org' "$(out rsb)"
expect_ok "filter with parentheses" nonempty_and_all paren '^[^ ]+ 10\.77\.0\.2:[0-9]+ > [^ ]+:(443|80) '
expect_ok "filter 'src net' IPv6" nonempty_and_all v6 '^[^ ]+ \[?fd00:77::'
expect_ok "filter 'not verdict allow and not dns'" nonempty_and_all notallow ' DENY '
expect_ok "filter 'udp and port 53': DNS over UDP" nonempty_and_all udp ' dns '
expect_eq "watch -c 2 stops after two lines" "0 2" "$count_rc $(wc -l < "$dir/out/count2")"
expect_eq "watch --json: one object per line" 0 "$(jq -c . "$dir/out/json" > /dev/null 2>&1; echo $?)"
# (grep on the file: lib.sh's expect_match pipes through grep -q, which
# under pipefail fails on outputs above one 4 KiB printf buffer.)
expect_ok "watch --json: verdict fields" grep -q '"kind":"verdict".*"rulesets":\["team-a/app","team-b/web"\]' "$dir/out/json"

# Invalid filters: exit 2 before connecting, with a caret under the bad token.
bad() { ctl watch --socket /nonexistent/sock "$@" 2>&1; echo "rc=$?"; }
expect_match "invalid filter 'verdict maybe'" "expected allow, deny or audit" "$(bad verdict maybe)"
expect_match "... points at the token" $'\n        \\^{5}' "$(bad verdict maybe)"
expect_match "... exit 2" 'rc=2$' "$(bad verdict maybe)"
expect_match "invalid filter 'port 99999'" 'out of range.*|rc=2' "$(bad port 99999)"
expect_match "invalid filter 'port 99999' exits 2" 'rc=2$' "$(bad port 99999)"
expect_match "invalid filter '( port 443'" 'rc=2$' "$(bad '(' port 443)"
expect_match "invalid filter 'host' without an address" 'rc=2$' "$(bad host)"
expect_match "invalid filter 'frobnicate'" 'rc=2$' "$(bad frobnicate)"
expect_match "invalid filter 'net 10.0.0.1/8' (host bits)" 'rc=2$' "$(bad net 10.0.0.1/8)"

# -w: the deciding packets as pcap
expect_ok "watch -w wrote a pcap file" test -s "$dir/out/tls.pcap"
pcap_text="$(tcpdump -nn -r "$dir/out/tls.pcap" 2>&1)"
expect_match "tcpdump -r reads it: a packet to port 443" "IP 10\.77\.0\.2\.[0-9]+ > $E2E_IP4_API_EXAMPLE_COM\.443: " "$pcap_text"
expect_match "... the IPv6 one too" "IP6 fd00:77::2\.[0-9]+ > .*\.443: " "$pcap_text"
expect_eq "... nothing but port 443" "" "$(echo "$pcap_text" | grep -E '^[0-9]' | grep -Ev '\.443: ' || true)"

# --- rules, stats, explain ---------------------------------------------------
rules="$(ctl rules --socket "$sock")"
expect_match "rules: both rule sets with their source" "team-a/app +3 +$dir/rules/app.yaml" "$rules"
expect_match "rules: the union names every contributor" 'api\.example\.com:443 +team-a/app, team-b/web' "$rules"
expect_eq "rules --json: targets" 5 "$(ctl rules --socket "$sock" --json | jq '.targets')"
stats="$(ctl stats --socket "$sock" --json)"
expect_eq "stats --json is an object" object "$(echo "$stats" | jq -r type)"
expect_match "stats: human form, grouped and aligned" '^  queries +[0-9]+$' "$(ctl stats --socket "$sock")"
expect_eq "stats --watch refreshes" 2 "$(ctl stats --socket "$sock" --json --watch=0.2 --iterations 2 | wc -l)"
explain="$(ctl explain api.example.com:443 --socket "$sock")"; rc=$?
expect_eq "explain from the daemon: allowed" 0 "$rc"
expect_match "... by both rule sets" 'by team-b/web' "$explain"
explain="$(ctl explain other.example.com:443 --socket "$sock")"; rc=$?
expect_eq "explain from the daemon: denied" 1 "$rc"
expect_match "... suggests the allowed port" 'allowed on other ports: 8080' "$explain"
expect_match "explain with no daemon: names the socket" 'cannot connect to /nonexistent/sock' \
  "$(ctl explain a.example.com:443 --socket /nonexistent/sock 2>&1)"
top="$("$bin/egressctl" top --socket "$sock" -i 2 --iterations 1 --json & sleep 0.5; curl_pod https://api.example.com/ > /dev/null; dns_pod edge.example.net > /dev/null; wait)"
expect_match "top: busiest destination" '"key":"api\.example\.com:443"' "$top"
expect_match "top: most-denied name" '"denied":\[\{[^}]*"deny":1,"key":"edge\.example\.net"' "$top"

# --- a client that subscribes and never reads ---------------------------------
python3 - "$sock" > "$dir/out/stuck.log" 2>&1 << 'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(sys.argv[1])
s.sendall(b'{"op":"watch"}\n')
print("subscribed", flush=True)
time.sleep(120)  # never reads
PY
stuck_pid=$!
watchers+=("$stuck_pid")
wait_until 50 grep -q subscribed "$dir/out/stuck.log"
# Enough events to fill its socket buffer and its 1 MiB in egressd: denied
# names are answered at once.
in_pod python3 - "$E2E_GW_POD_IP4" << 'PY'
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
for i in range(8000):
    name = b"".join(bytes([len(l)]) + l for l in [b"n%d" % i, b"blocked", b"example"]) + b"\0"
    s.sendto(struct.pack(">HHHHHH", i, 0x0100, 1, 0, 0, 0) + name + b"\0\1\0\1", (sys.argv[1], 53))
    try:
        s.recv(512)
    except socket.timeout:
        pass
PY
expect_eq "with a stuck client, DNS still answers" NXDOMAIN "$(dns_pod edge.example.net)"
expect_eq "... and connections are still decided" 200 "$(curl_pod https://api.example.com/)"
expect_ok "egressd is still running" egressd_running
dropped="$(ctl stats --socket "$sock" --json | jq '[.. | objects | to_entries[] | select(.key | test("drop"; "i")) | select(.key | test("watch|control|client"; "i")) | .value | numbers] | add // 0')"
expect_match "the stuck client's events were dropped and counted" '^[1-9][0-9]*$' "$dropped"
kill "$stuck_pid" 2> /dev/null

# --- clean exit removes the socket ---------------------------------------------
expect_ok "egressd stopped with SIGTERM" stop_egressd TERM
expect_eq "the control socket is removed on a clean exit" no "$([ -e "$sock" ] && echo yes || echo no)"
summary

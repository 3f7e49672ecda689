#!/usr/bin/env bash
# The explicit proxy end to end (issue 14), on the e2e topology: egressd in
# the gateway with [proxy] listen on the pod-side address, real clients in
# the pod that honour HTTP_PROXY/HTTPS_PROXY (curl, Python urllib and
# requests, Node, Go and Java built here), real servers in the internet
# namespace. The servers' access log is the judge of what got through.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${EGRESSD_BIN:-${1:-}}"
[ -x "$bin/egressd" ] || { echo "usage: EGRESSD_BIN=BUILD/bin $0 (or $0 BUILD/bin)"; exit 2; }
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3
# 1,000 tunnels: two descriptors each in egressd, one in nginx and the client.
ulimit -n 65536 2> /dev/null || ulimit -n "$(ulimit -Hn)"

# shellcheck source=tests/e2e/harness.sh
. "$here/../e2e/harness.sh"
e2e_start e2e-proxy
client="$here/proxy_client.py"
proxy="$E2E_GW_POD_IP4:3128"
sock="$E2E_DIR/control.sock"
access="$E2E_LOGS/nginx-access.log"

# The metadata address and a private one really answer in the internet
# namespace (nginx listens on every address): a bypass would show in its log.
in_inet ip addr add 169.254.169.254/32 dev eth0
in_inet ip addr add 10.123.0.5/32 dev eth0

mkdir -p "$dir/rules"
cat > "$dir/rules/app.yaml" << EOF
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: app, namespace: team-a}
spec:
  targets:
  - api.example.com:443
  - api.example.com:80
  - "*.example.org:443"
  - other.example.com:8080
  - metadata.example.com:443
  - private.example.com:80
  - $E2E_IP4_WWW_EXAMPLE_ORG/32:8080
  - $E2E_IP4_WWW_EXAMPLE_ORG/32:9099
  - $E2E_IP4_WWW_EXAMPLE_ORG/32:9098
  - $E2E_IP4_WWW_EXAMPLE_ORG/32:9097
  - $E2E_IP4_WWW_EXAMPLE_ORG/32:9095
  - api.example.com:9096
  - api.example.org:80
EOF
cat > "$dir/rules/temp.yaml" << EOF
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: temp, namespace: team-b}
spec:
  targets: ["other.example.com:80"]
EOF
write_egressd_config "$dir/egressd.toml" "$dir/rules"
cat >> "$dir/egressd.toml" << EOF

[proxy]
listen = ["$E2E_GW_POD_IP4", "[$E2E_GW_POD_IP6]:3128"]
header_timeout = "2s"
connect_timeout = "3s"
EOF
start_egressd "$bin/egressd" "$dir/egressd.toml" || exit 1
expect_match "the proxy listens on port 3128 by default" "proxy.listening address=$E2E_GW_POD_IP4:3128" \
  "$(cat "$E2E_LOGS/egressd.log")"

# A watcher of proxy decisions for the whole run (egressctl watch proxy).
setsid "$bin/egressctl" watch proxy --json --socket "$sock" > "$E2E_LOGS/watch.json" 2>&1 < /dev/null &
echo $! > "$E2E_PIDS/watch.pid"
disown $!
sleep 0.3

via() { curl_pod "$@" -x "http://$proxy"; }
raw() { in_pod "$py" "$client" raw "$proxy" "$1"; }
logged() { grep -qE "$1" "$E2E_LOGS/egressd.log"; }
served() { grep -c -- "$1" "$access" 2> /dev/null || true; }

# ---- curl: CONNECT and absolute-form ---------------------------------------------------
expect_eq "curl CONNECT to an allowed name" 200 "$(via https://api.example.com/)"
expect_match "... reached the api vhost over TLS" '^vhost=api.example.com scheme=https' "$(last_body)"
expect_eq "curl with HTTPS_PROXY in the environment (wildcard *.example.org)" 200 \
  "$(in_pod env HTTPS_PROXY="http://$proxy" curl -sS -o /dev/null -w '%{http_code}' --cacert "$E2E_CA" \
    --max-time 5 https://www.example.org/)"
expect_eq "curl absolute-form GET http:// to an allowed name" 200 "$(via http://api.example.com/)"
expect_match "... served in origin-form with the judged Host" '^vhost=api.example.com scheme=http' "$(last_body)"
expect_eq "curl through the IPv6 listener" 200 "$(curl_pod https://api.example.com/ -x "http://[$E2E_GW_POD_IP6]:3128")"
expect_eq "POST with a body through absolute-form" 200 \
  "$(via http://api.example.com/ --data-binary "hello proxy")"
expect_eq "chunked POST through absolute-form" 200 \
  "$(via http://api.example.com/ -H 'Transfer-Encoding: chunked' --data-binary "hello chunks")"
# A tunnel held open for 3 s, to look at the proxy's upstream socket.
in_pod "$py" -c "
import socket, time
s = socket.create_connection(('$E2E_GW_POD_IP4', 3128))
s.sendall(b'CONNECT $E2E_IP4_WWW_EXAMPLE_ORG:8080 HTTP/1.1\\r\\n\\r\\n')
s.recv(100)
time.sleep(3)" &
marked() { in_gw ss -tnie "dst $E2E_IP4_WWW_EXAMPLE_ORG:8080" | grep -q 'fwmark:0x400000'; }
expect_ok "the proxy's upstream sockets carry the bypass mark (never queued by egressd's chain)" wait_until 25 marked
wait
# A tunnel carries bulk data both ways intact and passes a half-close on:
# 64 MiB up, the client's FIN, then the server's digest of what it got and
# 64 MiB down, spliced through the relay's pipes (zero-copy).
setsid ip netns exec "$E2E_NS_INET" "$py" "$client" bulk-server 9099 64 > "$E2E_LOGS/bulk-server.log" 2>&1 < /dev/null &
echo $! > "$E2E_PIDS/bulk-server.pid"
disown $!
wait_until 50 grep -q listening "$E2E_LOGS/bulk-server.log"
expect_match "a tunnel relays 64 MiB each way intact, across the client's half-close" '^up ok, down ok' \
  "$(in_pod "$py" "$client" bulk "$proxy" "$E2E_IP4_WWW_EXAMPLE_ORG:9099" 64)"
proxy_metric() { in_gw curl -s http://127.0.0.1:9153/metrics | awk -v m="$1" '$1 == m {print $2}'; }
expect_eq "... spliced: no tunnel fell back to copying" 0 "$(proxy_metric egressd_proxy_tunnels_unspliced_total)"
# Out of descriptors for pipes (EMFILE): the tunnel is still served, through
# the copying path. Once the pool's idle pipes are closed (a tick of 1 s
# without a taker), egressd's limit is set so that exactly two descriptor
# numbers are free below it: the client's and the upstream's sockets take
# them, and pipe2() is what fails.
epid="$(cat "$E2E_PIDS/egressd.pid")"
sleep 2.5
hard="$(prlimit --pid "$epid" --nofile --output HARD --noheadings | tr -d ' ')"
limit="$("$py" -c '
import os, sys
used = {int(fd) for fd in os.listdir(f"/proc/{sys.argv[1]}/fd")}
limit = free = 0
while free < 2:
    free += limit not in used
    limit += 1
print(limit)' "$epid")"
prlimit --pid "$epid" --nofile="$limit:$hard"
out="$(in_pod "$py" "$client" bulk "$proxy" "$E2E_IP4_WWW_EXAMPLE_ORG:9099" 64)"
prlimit --pid "$epid" --nofile="$hard:$hard"
expect_match "without descriptors for pipes a tunnel is still served, intact, half-close and all" \
  '^up ok, down ok' "$out"
expect_ok "... through the copying path (egressd_proxy_tunnels_unspliced_total)" \
  test "$(proxy_metric egressd_proxy_tunnels_unspliced_total)" -ge 1
# A reset on one side reaches the other as a reset, not as an orderly EOF.
setsid ip netns exec "$E2E_NS_INET" "$py" "$client" reset-server 9098 > "$E2E_LOGS/reset-server.log" 2>&1 < /dev/null &
echo $! > "$E2E_PIDS/reset-server.pid"
disown $!
wait_until 50 grep -q listening "$E2E_LOGS/reset-server.log"
expect_eq "the server's reset reaches the client through the tunnel" reset \
  "$(in_pod "$py" "$client" reset "$proxy" "$E2E_IP4_WWW_EXAMPLE_ORG:9098")"
# A server that speaks first (SMTP, SSH) needs the handshake's last ACK,
# which the proxy's upstream socket holds back for the client's first
# bytes: the tunnel sends it alone after 10 ms, not the kernel's 200.
setsid ip netns exec "$E2E_NS_INET" "$py" "$client" banner-server 9095 > "$E2E_LOGS/banner-server.log" 2>&1 < /dev/null &
echo $! > "$E2E_PIDS/banner-server.pid"
disown $!
wait_until 50 grep -q listening "$E2E_LOGS/banner-server.log"
out="$(in_pod "$py" "$client" banner "$proxy" "$E2E_IP4_WWW_EXAMPLE_ORG:9095")"
expect_match "a server that speaks first is heard through a tunnel ($out)" '^200 220 banner.example ESMTP after' "$out"
expect_ok "... well before the kernel's 200 ms delayed ACK ($out)" \
  test "$(sed -n 's/.* after \([0-9]*\) ms$/\1/p' <<< "$out")" -lt 150
# A client with Nagle's algorithm on writing in small pieces (a CONNECT
# head, a request through the tunnel, a forwarded POST's body) waits for
# the proxy's ACK of each piece before the next: the proxy's sockets start
# in the delayed-ACK mode, which would make that 40 ms a piece.
out="$(in_pod "$py" "$client" pieces "$proxy" api.example.com)"
expect_match "a client writing small pieces with Nagle on is answered without a delayed-ACK wait ($out)" \
  '^connect 200 ([0-9]|[12][0-9]|3[0-4]) tunnel 200 ([0-9]|[12][0-9]|3[0-4]) post 200 ([0-9]|[12][0-9]|3[0-4])$' "$out"
expect_ok "allowed requests are logged as proxy.request allow" \
  wait_until 20 logged "event=proxy.request .*target=api.example.com:443 .*method=CONNECT verdict=allow reason=name_allowed rulesets=team-a/app"
expect_ok "the address connected to became a binding (the transparent path agrees)" \
  bash -c "'$bin/egressctl' stats --socket '$sock' --json | grep -q '\"bindings\"'"

# ---- denials ------------------------------------------------------------------------------
out="$(raw 'CONNECT edge.example.net:443 HTTP/1.1\r\nHost: edge.example.net:443\r\n\r\n')"
expect_match "CONNECT to a denied name: 403 name_not_allowed" '^403 name_not_allowed ' "$out"
expect_match "... the body says how to allow it" 'egressctl explain edge.example.net:443' "$out"
expect_eq "curl absolute-form to a denied name: 403" 403 "$(via http://edge.example.net/)"
expect_match "... with the target and the reason in the body" \
  'egressd denied GET edge.example.net:80: no rule allows edge.example.net on port 80 \(name_not_allowed\)' \
  "$(last_body)"
expect_match "curl CONNECT to a denied name fails with the proxy's 403" '^curl:56' "$(via https://edge.example.net/)"
expect_eq "... and edge.example.net was never served" 0 "$(served 'edge.example.net')"
out="$(raw 'CONNECT api.example.com:8443 HTTP/1.1\r\n\r\n')"
expect_match "a port no rule allows: 403 port_not_in_policy" '^403 port_not_in_policy ' "$out"
out="$(raw 'CONNECT other.example.com:443 HTTP/1.1\r\n\r\n')"
expect_match "a name allowed on another port only: 403 name_not_allowed" '^403 name_not_allowed ' "$out"

# ---- internal addresses -----------------------------------------------------------------------
before="$(served '169.254.169.254')"
out="$(raw 'CONNECT metadata.example.com:443 HTTP/1.1\r\n\r\n')"
expect_match "a name that resolves to 169.254.169.254 is refused" '^(403 internal_address|502 no_address) ' "$out"
out="$(raw 'GET http://private.example.com/ HTTP/1.1\r\nHost: private.example.com\r\n\r\n')"
expect_match "a name that resolves to a private address is refused" '^(403 internal_address|502 no_address) ' "$out"
out="$(raw 'CONNECT 169.254.169.254:443 HTTP/1.1\r\n\r\n')"
expect_match "CONNECT to the metadata address: 403 internal_address" '^403 internal_address ' "$out"
out="$(raw 'GET http://10.123.0.5/ HTTP/1.1\r\n\r\n')"
expect_match "GET to a private address: 403" '^403 ' "$out"
out="$(raw 'CONNECT [::ffff:169.254.169.254]:443 HTTP/1.1\r\n\r\n')"
expect_match "the IPv4-mapped metadata address: 403 internal_address" '^403 internal_address ' "$out"
expect_eq "... and the metadata server saw none of it" "$before" "$(served '169.254.169.254')"
expect_eq "... nor the private one" 0 "$(served '10.123.0.5')"

# ---- IP literals only through IP/CIDR targets ----------------------------------------------------
expect_eq "CONNECT to an IP an IP/CIDR target allows" 200 \
  "$(via "http://$E2E_IP4_WWW_EXAMPLE_ORG:8080/" --proxytunnel)"
expect_match "... reached it" 'vhost=default' "$(last_body)"
out="$(raw "CONNECT $E2E_IP4_API_EXAMPLE_COM:443 HTTP/1.1\r\n\r\n")"
expect_match "CONNECT to the IP of an allowed name (no IP target): 403 address_not_allowed" \
  '^403 address_not_allowed ' "$out"

# ---- bytes right behind CONNECT ------------------------------------------------------------------
# A client may send its first bytes (a TLS ClientHello) without waiting
# for the 200: they reach the server first, whether the name has to be
# resolved (the head waits in a bufferevent) or is in the proxy's copy of
# the answers (the tunnel starts from the connection's first read).
expect_match "CONNECT with a request right behind it, name not resolved yet: both answered" \
  '^200 200 vhost=api.example.org scheme=http' "$(in_pod "$py" "$client" early "$proxy" api.example.org:80)"
# Each proxy loop keeps its own copy of the answers and the kernel picks
# the loop: with at most 4 loops ("auto"), 4 more connections make at
# least one cache hit.
hits="$(proxy_metric egressd_proxy_resolver_cache_hits_total)"
answered=0
for _ in 1 2 3 4; do
  case "$(in_pod "$py" "$client" early "$proxy" api.example.org:80)" in
    "200 200 vhost=api.example.org scheme=http"*) answered=$((answered + 1)) ;;
  esac
done
expect_eq "... and again, four times" 4 "$answered"
expect_ok "... the name's answer cached at least once" \
  test "$(proxy_metric egressd_proxy_resolver_cache_hits_total)" -gt "$hits"

# ---- upstreams that refuse -------------------------------------------------------------------
# Nothing listens on 9097: the server's reset comes back while connect()
# runs, and the proxy must see it then (the second connect() that checks
# the handshake reports it), not after proxy.connect_timeout (3s).
started=$(date +%s%N)
out="$(raw "CONNECT $E2E_IP4_WWW_EXAMPLE_ORG:9097 HTTP/1.1\r\n\r\n")"
elapsed=$((($(date +%s%N) - started) / 1000000))
expect_match "CONNECT to an allowed address where nothing listens: 502 upstream_unreachable" \
  '^502 upstream_unreachable ' "$out"
expect_ok "... at once (${elapsed} ms), not after proxy.connect_timeout" test "$elapsed" -lt 1500
# api.example.com:9096 listens on IPv4 only: the IPv6 address, tried
# first (RFC 8305), refuses, and the IPv4 one is tried next.
setsid ip netns exec "$E2E_NS_INET" "$py" -c "import socket, time
s = socket.socket(); s.bind(('$E2E_IP4_API_EXAMPLE_COM', 9096)); s.listen(8); print('listening', flush=True)
time.sleep(120)" > "$E2E_LOGS/v4-only-server.log" 2>&1 < /dev/null &
echo $! > "$E2E_PIDS/v4-only-server.pid"
disown $!
wait_until 50 grep -q listening "$E2E_LOGS/v4-only-server.log"
out="$(raw 'CONNECT api.example.com:9096 HTTP/1.1\r\n\r\n')"
expect_match "a name whose IPv6 address refuses is reached over IPv4" '^200 ' "$out"

# ---- malformed and oversized: 400/431, and the proxy keeps serving ---------------------------------
expect_match "bare LF line ends: 400" '^400 malformed_request ' \
  "$(raw 'CONNECT api.example.com:443 HTTP/1.1\nHost: x\n\n')"
expect_match "CONNECT without a port: 400" '^400 malformed_request .*host:port' \
  "$(raw 'CONNECT api.example.com HTTP/1.1\r\n\r\n')"
expect_match "Content-Length with Transfer-Encoding: 400" '^400 malformed_request ' \
  "$(raw 'POST http://api.example.com/ HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n')"
expect_match "userinfo in the URI: 400" '^400 malformed_request .*userinfo' \
  "$(raw 'GET http://api.example.com@evil.example/ HTTP/1.1\r\n\r\n')"
expect_match "origin-form (not a proxy request): 400" '^400 not_proxy_request ' \
  "$(raw 'GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n')"
expect_match "GET https:// (use CONNECT): 400" '^400 https_scheme ' \
  "$(raw 'GET https://api.example.com/ HTTP/1.1\r\n\r\n')"
big="$(head -c 20000 /dev/zero | tr '\0' a)"
expect_match "a 20 KB request head: 431" '^431 head_too_large ' \
  "$(raw "GET http://api.example.com/ HTTP/1.1\r\nX-Big: $big\r\n\r\n")"
expect_eq "the proxy still serves after all that" 200 "$(via https://api.example.com/)"

# ---- keep-alive: each request judged on its own, against the rules of its time -------------------
flag="$E2E_DIR/temp-removed"
in_pod "$py" "$client" keepalive "$proxy" other.example.com "$flag" > "$E2E_DIR/keepalive.out" 2>&1 &
kpid=$!
sleep 1
rm "$dir/rules/temp.yaml"
wait_until 50 bash -c "! '$bin/egressctl' explain other.example.com:80 --socket '$sock' > /dev/null"
touch "$flag"
wait "$kpid"
expect_eq "a rule set removed while a kept-alive connection is open refuses its next request" \
  "200 403 name_not_allowed" "$(cat "$E2E_DIR/keepalive.out")"

# ---- Python: urllib and requests (HTTP_PROXY/HTTPS_PROXY) -------------------------------------------
expect_match "python urllib over CONNECT" '^200 vhost=api.example.com scheme=https' \
  "$(in_pod "$py" "$client" urllib "$proxy" https://api.example.com/ "$E2E_CA")"
expect_match "python urllib absolute-form" '^200 vhost=api.example.com scheme=http' \
  "$(in_pod "$py" "$client" urllib "$proxy" http://api.example.com/ "$E2E_CA")"
expect_match "python urllib to a denied name: 403 with the reason" '^403 egressd denied GET edge.example.net:80' \
  "$(in_pod "$py" "$client" urllib "$proxy" http://edge.example.net/ "$E2E_CA")"
expect_match "python urllib CONNECT to a denied name fails with 403" '403' \
  "$(in_pod "$py" "$client" urllib "$proxy" https://edge.example.net/ "$E2E_CA")"
if "$py" -c 'import requests' 2> /dev/null; then
  expect_match "python requests over CONNECT" '^200 vhost=www.example.org scheme=https' \
    "$(in_pod "$py" "$client" requests "$proxy" https://www.example.org/ "$E2E_CA")"
  expect_match "python requests absolute-form, denied: 403" '^403 egressd denied' \
    "$(in_pod "$py" "$client" requests "$proxy" http://edge.example.net/ "$E2E_CA")"
else
  echo "skip: python3-requests is not installed (scripts/install-deps.sh test)"
fi

# ---- Node, Go, Java ---------------------------------------------------------------------------
. "$here/clients.sh"
run_other_clients

# ---- limits: 1,000 tunnels at once, a slowloris client ---------------------------------------------
out="$(in_pod "$py" "$client" tunnels "$proxy" 1000 api.example.com 80)"
expect_match "1,000 concurrent CONNECT tunnels, each answered" '^open_at_once=1000 ok=1000' "$out"
in_pod "$py" "$client" slowloris "$proxy" 10 > "$E2E_DIR/slowloris.out" 2>&1 &
spid=$!
# A client that connects and says nothing: the listener's TCP_DEFER_ACCEPT
# keeps it in the kernel about a second, then proxy.header_timeout (2s)
# closes it without a word (an idle connection, not a 408).
in_pod "$py" "$client" silent "$proxy" 12 > "$E2E_DIR/silent.out" 2>&1 &
silentpid=$!
sleep 0.5
start=$(date +%s%N)
expect_eq "while a slowloris client dribbles its head, others are served" 200 "$(via https://api.example.com/)"
elapsed=$((($(date +%s%N) - start) / 1000000))
expect_ok "... promptly (${elapsed} ms)" test "$elapsed" -lt 1500
wait "$spid"
expect_match "the slowloris client gets 408 after proxy.header_timeout (2s)" \
  '^answered after [23]\.[0-9]s: HTTP/1.1 408' "$(cat "$E2E_DIR/slowloris.out")"
wait "$silentpid"
expect_match "a silent client is closed without a word within header_timeout plus the deferred accept ($(cat "$E2E_DIR/silent.out"))" \
  '^ended after [2-8]\.[0-9]s: closed' "$(cat "$E2E_DIR/silent.out")"

# ---- observability: watch, metrics ----------------------------------------------------------------
expect_ok "egressctl watch proxy shows proxy decisions" grep -q '"kind":"proxy"' "$E2E_LOGS/watch.json"
expect_match "... a denial with its reason and target" \
  '"name":"edge.example.net".*"reason":"name_not_allowed".*"verdict":"deny"|"reason":"name_not_allowed".*"verdict":"deny"' \
  "$(grep edge.example.net "$E2E_LOGS/watch.json" | head -1)"
expect_eq "... and nothing but proxy events" 0 "$(grep -vc '"kind":"proxy"' "$E2E_LOGS/watch.json")"
metrics="$(in_gw curl -s http://127.0.0.1:9153/metrics)"
expect_match "/metrics counts 403 name_not_allowed" \
  'egressd_proxy_responses_total\{reason="name_not_allowed",status="403"\} [1-9]' "$metrics"
expect_match "/metrics counts 431" 'egressd_proxy_responses_total\{reason="head_too_large",status="431"\} 1' "$metrics"
expect_match "/metrics counts 408" 'egressd_proxy_responses_total\{reason="header_timeout",status="408"\} 1' "$metrics"
expect_match "/metrics counts proxy decisions per rule set" \
  'egressd_rule_set_hits_total\{.*ruleset="team-a/app".*\} [1-9]|ruleset="team-a/app"' "$metrics"

# ---- audit mode: denied requests go through, recorded as would-deny ---------------------------------
stop_egressd TERM
E2E_MODE=audit write_egressd_config "$dir/egressd.toml" "$dir/rules"
cat >> "$dir/egressd.toml" << EOF

[proxy]
listen = ["$E2E_GW_POD_IP4"]
idle_timeout = "2s"
EOF
start_egressd "$bin/egressd" "$dir/egressd.toml" || exit 1
# proxy.idle_timeout is about silence, not length: a plain-HTTP download
# that keeps moving for twice the timeout (400 KB at 100 KB/s; the client
# only reads) is served whole.
code="$(E2E_MAX_TIME=15 via http://api.example.com/slow -r 0-409599)"
expect_eq "absolute-form: a download longer than proxy.idle_timeout (2s) that keeps moving is served whole" \
  "206 409600" "$code $(wc -c < "$E2E_LAST_BODY")"
expect_eq "audit: a denied name is let through the proxy" 200 "$(via https://edge.example.net/)"
expect_match "... it reached the server" 'vhost=edge.example.net' "$(last_body)"
expect_ok "... and is logged as would-deny" \
  wait_until 20 logged "event=proxy.request .*target=edge.example.net:443 .*verdict=audit would=deny reason=name_not_allowed"
out="$(raw 'CONNECT metadata.example.com:443 HTTP/1.1\r\n\r\n')"
expect_match "audit: internal addresses are still refused (they protect the pod)" \
  '^(403 internal_address|502 no_address) ' "$out"

summary

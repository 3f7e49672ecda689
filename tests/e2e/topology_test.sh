#!/usr/bin/env bash
# Self-test of the e2e topology without egressd: the pod's resolver points
# straight at the internet's DNS resolver, and every service the egressd
# tests rely on must answer from the pod; then `down` must leave no
# namespace, veth, /etc/netns entry or process behind, and a second `down`
# must be harmless.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="$(mktemp -d /tmp/egressd-e2e-topo.XXXXXX)"
cleanup() { "$here/topology.sh" down "$dir" > /dev/null 2>&1; rm -rf "$dir"; }
trap cleanup EXIT

"$here/topology.sh" up "$dir" || { echo "FAIL: topology up"; cat "$dir"/logs/*.log 2> /dev/null | tail -20; exit 1; }
eval "$("$here/topology.sh" env "$dir")"
# shellcheck source=tests/e2e/lib.sh
. "$here/lib.sh"
set_pod_resolver "$E2E_DNS4"

# The pod has no proxy settings and only the route via the gateway.
expect_eq "pod environment has no proxy variables" "" "$(in_pod env | grep -i '_proxy=' || true)"
expect_eq "pod default route is the gateway" "$E2E_GW_POD_IP4" \
  "$(in_pod ip -4 route show default | awk '{print $3}')"
expect_eq "gateway forwards IPv4" 1 "$(in_gw sysctl -n net.ipv4.ip_forward)"
expect_eq "gateway forwards IPv6" 1 "$(in_gw sysctl -n net.ipv6.conf.all.forwarding)"
expect_eq "nothing routes beyond the internet namespace" "" "$(in_inet ip route show default)"
expect_fail "an outside address is unreachable from the pod" in_pod ping -c1 -W1 192.0.2.1

# HTTPS by name, per vhost, IPv4 and IPv6.
expect_eq "https://api.example.com answers" 200 "$(curl_pod https://api.example.com/)"
expect_match "... from the api vhost" '^vhost=api.example.com scheme=https port=443$' "$(last_body)"
expect_eq "https://www.example.org answers" 200 "$(curl_pod https://www.example.org/)"
expect_match "... from the www.example.org vhost" '^vhost=www.example.org ' "$(last_body)"
expect_eq "https over IPv6" 200 "$(curl_pod https://api.example.com/ -6)"
expect_eq "... from the pod's IPv6 address" "$E2E_IP6_API_EXAMPLE_COM" \
  "$(in_pod curl -6 -sS -o /dev/null -w '%{remote_ip}' --cacert "$E2E_CA" --max-time 5 https://api.example.com/)"
expect_eq "the never-handed-out address serves the same certificate" 200 \
  "$(curl_pod https://api.example.com/ --resolve "api.example.com:443:$E2E_IP4_SPOOF")"
expect_match "... and the api vhost" '^vhost=api.example.com ' "$(last_body)"
expect_eq "an unknown SNI gets the default certificate, which curl rejects" curl:60 \
  "$(curl_pod https://unknown.example.com/ --resolve "unknown.example.com:443:$E2E_IP4_API_EXAMPLE_COM")"
expect_eq "plain HTTP on 80" 200 "$(curl_pod http://www.example.org/)"
expect_match "... names its vhost and port" '^vhost=www.example.org scheme=http port=80$' "$(last_body)"
expect_eq "plain HTTP on 8080" 200 "$(curl_pod http://api.example.com:8080/)"
expect_match "... names its vhost and port" '^vhost=api.example.com scheme=http port=8080$' "$(last_body)"
expect_eq "HTTP to a bare IP (no DNS) answers from the default vhost" 200 "$(curl_pod "http://$E2E_IP4_IP_TARGET/")"
expect_match "... default vhost" "^vhost=default host=$E2E_IP4_IP_TARGET " "$(last_body)"
expect_eq "bulk download (64 MiB)" 67108864 \
  "$(in_pod curl -sS -o /dev/null -w '%{size_download}' --max-time 20 http://api.example.com/bulk)"

# DNS
expect_eq "api.example.com A" "$E2E_IP4_API_EXAMPLE_COM" "$(dns_answers api.example.com A)"
expect_eq "api.example.com AAAA" "$E2E_IP6_API_EXAMPLE_COM" "$(dns_answers api.example.com AAAA)"
expect_eq "CNAME chain across zones comes back whole" \
  "$(printf 'cdn.example.com.\nedge.example.net.\n203.0.113.30')" "$(dns_answers chain.example.com A)"
expect_eq "https through the CNAME chain" 200 "$(curl_pod https://cdn.example.com/)"
expect_match "... cdn vhost" '^vhost=cdn.example.com ' "$(last_body)"
expect_eq "rebind.example.com points into private space" 10.0.0.1 "$(dns_answers rebind.example.com A)"
expect_eq "unknown name in a test zone: NXDOMAIN" NXDOMAIN "$(dns_pod nosuch.example.com)"
expect_eq "name outside the test zones: REFUSED (nothing recursed outside)" REFUSED "$(dns_pod www.egressd-nowhere.io)"
expect_match "big answer truncated over UDP without EDNS" 'flags: qr[a-z ]* tc' \
  "$(in_pod dig +noedns +ignore +time=2 +tries=1 big.example.com A)"
expect_match "big TXT truncated over UDP without EDNS" 'flags: qr[a-z ]* tc' \
  "$(in_pod dig +noedns +ignore +time=2 +tries=1 bigtxt.example.com TXT)"
expect_eq "big answer complete over TCP" 60 "$(in_pod dig +tcp +short +time=2 +tries=1 big.example.com A | wc -l)"
expect_match "authoritative server sets AA" 'flags: qr aa' \
  "$(in_pod dig @"$E2E_DNS_AUTH4" +time=2 +tries=1 api.example.com A)"
expect_eq "DNS over IPv6" "$E2E_IP4_API_EXAMPLE_COM" "$(in_pod dig @"$E2E_DNS6" +short +time=2 +tries=1 api.example.com A)"

# Server-speaks-first services and UDP echo.
expect_eq "SSH banner" "SSH-2.0-egressd-test" "$(banner_pod ssh.example.com 22)"
expect_eq "SMTP greeting" "220 mail.example.com ESMTP egressd-test" "$(banner_pod mail.example.com 25)"
expect_match "MySQL handshake" '5\.7\.99-egressd-test' "$(in_pod timeout 5 nc -w 2 db.example.com 3306 < /dev/null | tr -d '\0')"
expect_eq "TCP echo on 7" "hello" "$(echo hello | in_pod timeout 5 nc -q 1 -w 2 api.example.com 7)"
expect_eq "UDP echo on 443" "quic?" "$(echo 'quic?' | in_pod timeout 5 nc -u -w 1 api.example.com 443)"
expect_eq "UDP echo on 9999 over IPv6" "udp6" "$(echo udp6 | in_pod timeout 5 nc -6 -u -w 1 api.example.com 9999)"
expect_eq "SSH banner over IPv6" "SSH-2.0-egressd-test" "$(banner_pod "$E2E_IP6_SSH_EXAMPLE_COM" 22)"

# down removes everything, twice is harmless.
pids="$(cat "$E2E_PIDS"/*.pid)"
expect_ok "topology down" "$here/topology.sh" down "$dir"
expect_eq "no namespace left" "" "$(ip netns list | grep -F "egressd-e2e-$E2E_ID-" || true)"
expect_eq "no /etc/netns entry left" "" "$(ls -d /etc/netns/egressd-e2e-"$E2E_ID"-* 2> /dev/null || true)"
expect_eq "no veth in the host namespace" "" "$(ip -o link show type veth | grep -E 'pod0|inet0' || true)"
# (a zombie waiting for init to reap it is not running)
left=""; for p in $pids; do st="$(awk '/^State:/ {print $2}' "/proc/$p/status" 2> /dev/null)"; [ -n "$st" ] && [ "$st" != Z ] && left="$left $p:$st"; done
expect_eq "no service process left" "" "$left"
expect_eq "no process of this run's config left" "" "$(pgrep -f "$dir/inet" || true)"
expect_ok "a second down is harmless" "$here/topology.sh" down "$dir"
summary

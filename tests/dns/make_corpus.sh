#!/usr/bin/env bash
# Regenerates the seed corpora of fuzz_dns_query and fuzz_dns_answer from
# real traffic: kdig queries (various types and EDNS options) relayed by a
# recording proxy to a local unbound serving a test zone; each query and
# each answer becomes one file. Usage: make_corpus.sh (from anywhere).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
# shellcheck source=tests/dns/unbound.sh
. "$here/unbound.sh"
port="$(free_port)"
cat > "$work/zone" <<'ZONE'
$ORIGIN example.test.
$TTL 300
@ IN SOA ns.example.test. admin.example.test. 1 3600 600 86400 60
@ IN NS ns.example.test.
ns IN A 192.0.2.1
api IN A 192.0.2.10
api IN AAAA 2001:db8::10
www IN CNAME lb.example.test.
lb IN CNAME edge.example.test.
edge 60 IN A 192.0.2.30
svc IN HTTPS 1 . alpn=h2,h3 ech=AEX+DQBBpQAgACB/w== ipv4hint=192.0.2.40 ipv6hint=2001:db8::40
_sip._tcp IN SRV 10 5 5060 sip.example.test.
mail IN MX 10 mx.example.test.
txt IN TXT "hello" "world"
rebind IN A 169.254.169.254
ZONE
unbound_auth_conf "$port" "example.test=$work/zone" > "$work/unbound.conf"
unbound_start "$work/unbound.conf" unbound
sleep 1
proxy_port_file="$work/proxy.port"
python3 - "$port" "$here/corpus" "$proxy_port_file" <<'PY' &
import hashlib, os, socket, sys
upstream = ("127.0.0.1", int(sys.argv[1])); corpus = sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
open(sys.argv[3], "w").write(str(s.getsockname()[1]))
def save(kind, data):
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(corpus, kind, name), "wb") as f:
        f.write(data)
while True:
    query, client = s.recvfrom(65535)
    save("fuzz_dns_query", query)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2)
    u.sendto(query, upstream)
    try:
        answer = u.recv(65535)
        save("fuzz_dns_answer", answer)
        s.sendto(answer, client)
    except socket.timeout:
        pass
PY
for _ in $(seq 50); do [ -s "$proxy_port_file" ] && break; sleep 0.1; done
proxy="$(cat "$proxy_port_file")"
q() { kdig @127.0.0.1 -p "$proxy" +timeout=2 +retry=0 +notcp "$@" > /dev/null 2>&1 || true; }
q api.example.test A
q API.Example.Test AAAA +edns
q www.example.test A +dnssec
q svc.example.test HTTPS +edns +nsid
q _sip._tcp.example.test SRV +cookie
q mail.example.test MX +subnet=192.0.2.0/24
q txt.example.test TXT +padding=64
q nx.example.test A +edns
q example.test SOA
q example.test NS +bufsize=4096
q rebind.example.test A
q example.test ANY
q evil.example.com A +norecurse
q . NS
q 10.2.0.192.in-addr.arpa PTR
q version.bind CH TXT
echo "corpus: $(ls "$here/corpus/fuzz_dns_query" | wc -l) queries, $(ls "$here/corpus/fuzz_dns_answer" | wc -l) answers"

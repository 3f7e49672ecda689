#!/usr/bin/env bash
# The end-to-end test topology: three network namespaces joined by veths,
# with nothing connected to the host's own interfaces (docs/e2e.md).
#
#   pod  --veth--  gateway  --veth--  internet
#   (client)       (egressd, routing) (DNS, HTTPS/HTTP, banners, UDP echo)
#
#   topology.sh up DIR     create it; DIR (the caller's temp dir, must exist)
#                          receives certs, configs, logs/, pids/ and the state
#   topology.sh down DIR   remove everything DIR/topology.state says was
#                          created; idempotent, works after a crash of `up`
#                          or of the caller (the state is written before the
#                          first namespace is created)
#   topology.sh env DIR    print shell variables for `eval`
#   topology.sh gc         remove leftovers of runs whose owner process is
#                          gone (namespaces named egressd-e2e-*)
#   topology.sh internet DIR NS
#                          only the internet side: its addresses on eth0 of
#                          the existing namespace NS and its services, files
#                          in DIR (tests/k8s/cluster.sh); the caller removes
#                          NS
#
# Namespace names carry a random id, so parallel runs never collide. All
# addresses exist only inside the namespaces: the internet namespace has no
# default route, so a packet to anything else is dropped there.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# ---- addresses (also printed by `env`) -------------------------------------
POD_NET4=10.77.0.0/24 POD_IP4=10.77.0.2 GW_POD_IP4=10.77.0.1
POD_NET6=fd00:77::/64 POD_IP6=fd00:77::2 GW_POD_IP6=fd00:77::1
GW_INET_IP4=198.51.100.1 INET_IP4=198.51.100.2 INET_DNS4=198.51.100.53 INET_AUTH4=198.51.100.54
GW_INET_IP6=2001:db8:1::1 INET_IP6=2001:db8:1::2 INET_DNS6=2001:db8:1::53 INET_AUTH6=2001:db8:1::54
SVC_NET4=203.0.113.0/24 SVC_NET6=2001:db8:113::/64
# name  last-octet (203.0.113.X and 2001:db8:113::X)
SERVICES="api.example.com:10 other.example.com:11 www.example.org:12 api.example.org:13
spoof:20 ssh.example.com:22 mail.example.com:25 edge.example.net:30 db.example.com:33
ip-target:50"
# Names with a certificate and an nginx vhost (HTTPS 443, HTTP 80 and 8080).
TLS_NAMES="api.example.com other.example.com www.example.org api.example.org cdn.example.com
edge.example.net"

die() { echo "topology: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"

state_get() { sed -n "s/^$1=//p" "$2/topology.state" 2>/dev/null | tail -1; }

# Start CMD in namespace NS in the background, detached into its own
# session; stdout/stderr to DIR/logs/NAME.log, pid to DIR/pids/NAME.pid.
start_in() {
  local dir=$1 ns=$2 name=$3; shift 3
  setsid ip netns exec "$ns" "$@" > "$dir/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$dir/pids/$name.pid"
}

wait_for() {  # wait_for DESC TRIES CMD...: poll every 0.1 s
  local desc=$1 tries=$2; shift 2
  for _ in $(seq "$tries"); do "$@" > /dev/null 2>&1 && return 0; sleep 0.1; done
  die "timed out waiting for $desc"
}

ip6() { printf '2001:db8:113::%s' "$1"; }

make_certs() {
  local dir=$1 d=$1/certs
  mkdir -p "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \
    -subj "/CN=egressd e2e test CA" -keyout "$d/ca.key" -out "$d/ca.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    2> /dev/null
  local n
  for n in $TLS_NAMES default.invalid; do
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$n" \
      -keyout "$d/$n.key" -out "$d/$n.csr" 2> /dev/null
    printf 'subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$n" > "$d/$n.ext"
    openssl x509 -req -in "$d/$n.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
      -days 7 -extfile "$d/$n.ext" -out "$d/$n.pem" 2> /dev/null
  done
}

write_unbound_conf() {
  local dir=$1 f entry name oct z i
  # The authoritative server: local-data for the three test zones (unbound
  # serves local-data with AA set, but does not chase a CNAME itself).
  f=$dir/inet/unbound-auth.conf
  {
    unbound_server_conf "$dir" auth "$INET_AUTH4" "$INET_AUTH6"
    cat <<EOF
  local-zone: "." refuse
  local-zone: "example.com." static
  local-zone: "example.org." static
  local-zone: "example.net." static
  local-data: "example.com. 300 IN SOA ns.example.com. hostmaster.example.com. 1 3600 600 86400 60"
  local-data: "example.org. 300 IN SOA ns.example.com. hostmaster.example.com. 1 3600 600 86400 60"
  local-data: "example.net. 300 IN SOA ns.example.com. hostmaster.example.com. 1 3600 600 86400 60"
  local-data: "example.com. 300 IN NS ns.example.com."
  local-data: "example.org. 300 IN NS ns.example.com."
  local-data: "example.net. 300 IN NS ns.example.com."
  local-data: "ns.example.com. 300 IN A $INET_AUTH4"
EOF
    for entry in $SERVICES; do
      name=${entry%%:*} oct=${entry##*:}
      case $name in *.*) ;; *) continue ;; esac   # spoof, ip-target: no name
      echo "  local-data: \"$name. 300 IN A 203.0.113.$oct\""
      echo "  local-data: \"$name. 300 IN AAAA $(ip6 "$oct")\""
    done
    cat <<EOF
  # CNAME chain across zones: chain.example.com -> cdn.example.com -> edge.example.net
  local-data: "cdn.example.com. 300 IN CNAME edge.example.net."
  local-data: "chain.example.com. 300 IN CNAME cdn.example.com."
  # A short TTL (binding expiry tests)
  local-data: "short.example.com. 2 IN A 203.0.113.10"
  # DNS rebinding: a public name answering with private addresses
  local-data: "rebind.example.com. 300 IN A 10.0.0.1"
  local-data: "rebind.example.com. 300 IN AAAA fd00::1"
  # Names of internal addresses (tests/e2e/internal_test.sh adds servers there)
  local-data: "metadata.example.com. 300 IN A 169.254.169.254"
  local-data: "metadata.example.com. 300 IN AAAA fd00:ec2::254"
  local-data: "nat64.example.com. 300 IN AAAA 64:ff9b::a9fe:a9fe"
  local-data: "private.example.com. 300 IN A 10.123.0.5"
  local-data: "db.vpc.example.com. 300 IN A 10.123.0.6"
  local-data: "alias.vpc.example.net. 300 IN A 10.123.0.6"
  # IPv6 only
  local-data: "v6only.example.com. 300 IN AAAA $(ip6 10)"
  local-data: "api.example.com. 300 IN TXT \"egressd e2e\""
EOF
    # Answers too large for 512-byte UDP: TC=1 without EDNS, then TCP.
    for i in $(seq 100 159); do echo "  local-data: \"big.example.com. 300 IN A 203.0.113.$i\""; done
    local filler
    filler="$(printf 'x%.0s' $(seq 1 200))"
    for i in $(seq 10 21); do
      echo "  local-data: 'bigtxt.example.com. 300 IN TXT \"$filler-$i\"'"
    done
  } > "$f"

  # The resolver that egressd (or the self-test's pod) asks: recursive, with
  # stubs to the authoritative server, so CNAME chains come back whole;
  # every other name is refused at once.
  f=$dir/inet/unbound-resolver.conf
  {
    unbound_server_conf "$dir" resolver "$INET_DNS4" "$INET_DNS6"
    echo '  qname-minimisation: no'
    echo '  local-zone: "." refuse'
    for z in example.com example.org example.net; do
      echo "  local-zone: \"$z.\" transparent"
    done
    for z in example.com example.org example.net; do
      printf 'stub-zone:\n  name: "%s."\n  stub-addr: %s\n' "$z" "$INET_AUTH4"
    done
  } > "$f"
}

unbound_server_conf() {  # DIR NAME ADDR4 ADDR6: the common server: clause
  cat <<EOF
server:
  interface: $3
  interface: $4
  port: 53
  do-ip6: yes
  do-daemonize: no
  use-syslog: no
  logfile: ""
  log-queries: yes
  verbosity: 1
  chroot: ""
  username: ""
  directory: "$1/inet"
  pidfile: "$1/inet/unbound-$2.pid"
  num-threads: 1
  module-config: "iterator"
  access-control: 0.0.0.0/0 allow
  access-control: ::/0 allow
  minimal-responses: no
EOF
}

write_nginx_conf() {
  local dir=$1 f=$1/inet/nginx.conf n workers=${E2E_NGINX_WORKERS:-1}
  mkdir -p "$dir/inet/nginx/tmp" "$dir/inet/www"
  # A sparse 64 MiB file for bulk transfer tests (/bulk).
  truncate -s 64M "$dir/inet/www/bulk.bin"
  {
    cat <<EOF
# Per-name vhosts on 443 (TLS, ECDSA P-256), 80 and 8080; each body names
# the vhost that answered.
user root;
worker_processes $workers;
pid $dir/inet/nginx.pid;
error_log $dir/logs/nginx-error.log info;
events { worker_connections 4096; }
http {
  log_format e2e '\$remote_addr:\$remote_port -> \$server_addr:\$server_port \$scheme://\$host\$request_uri \$status';
  access_log $dir/logs/nginx-access.log e2e;
  client_body_temp_path $dir/inet/nginx/tmp/body;
  proxy_temp_path $dir/inet/nginx/tmp/proxy;
  fastcgi_temp_path $dir/inet/nginx/tmp/fastcgi;
  uwsgi_temp_path $dir/inet/nginx/tmp/uwsgi;
  scgi_temp_path $dir/inet/nginx/tmp/scgi;
  default_type text/plain;
  keepalive_requests 100000;
  ssl_protocols TLSv1.2 TLSv1.3;
  server {
    listen 80 default_server; listen [::]:80 default_server;
    listen 8080 default_server; listen [::]:8080 default_server;
    listen 443 ssl default_server; listen [::]:443 ssl default_server;
    server_name _;
    ssl_certificate $dir/certs/default.invalid.pem;
    ssl_certificate_key $dir/certs/default.invalid.key;
    location = /bulk { alias $dir/inet/www/bulk.bin; }
    location = /slow { alias $dir/inet/www/bulk.bin; limit_rate 100k; }
    location / { return 200 "vhost=default host=\$host scheme=\$scheme port=\$server_port\n"; }
  }
EOF
    for n in $TLS_NAMES; do
      cat <<EOF
  server {
    listen 80; listen [::]:80; listen 8080; listen [::]:8080;
    listen 443 ssl; listen [::]:443 ssl;
    server_name $n;
    ssl_certificate $dir/certs/$n.pem;
    ssl_certificate_key $dir/certs/$n.key;
    location = /bulk { alias $dir/inet/www/bulk.bin; }
    location = /slow { alias $dir/inet/www/bulk.bin; limit_rate 100k; }
    location / { return 200 "vhost=$n scheme=\$scheme port=\$server_port\n"; }
  }
EOF
    done
    echo "}"
  } > "$f"
}

# The internet's addresses on eth0 of namespace NS (which must exist) and
# its services: the authoritative and the resolving unbound, nginx with the
# per-name vhosts, services.py. DIR (existing) receives certs/, inet/, logs/
# and pids/. Also used by tests/k8s/cluster.sh for its internet namespace.
internet_up() {  # DIR NS
  local dir=$1 ns_inet=$2 entry oct
  mkdir -p "$dir/logs" "$dir/pids" "$dir/inet"
  ip -n "$ns_inet" addr add "$INET_IP4/24" dev eth0
  ip -n "$ns_inet" addr add "$INET_DNS4/24" dev eth0
  ip -n "$ns_inet" -6 addr add "$INET_IP6/64" dev eth0 nodad
  ip -n "$ns_inet" -6 addr add "$INET_DNS6/64" dev eth0 nodad
  ip -n "$ns_inet" addr add "$INET_AUTH4/24" dev eth0
  ip -n "$ns_inet" -6 addr add "$INET_AUTH6/64" dev eth0 nodad
  for entry in $SERVICES; do
    oct=${entry##*:}
    ip -n "$ns_inet" addr add "203.0.113.$oct/24" dev eth0
    ip -n "$ns_inet" -6 addr add "$(ip6 "$oct")/64" dev eth0 nodad
  done
  ip -n "$ns_inet" link set eth0 up

  make_certs "$dir"
  write_unbound_conf "$dir"
  write_nginx_conf "$dir"
  local u
  for u in auth resolver; do
    unbound-checkconf "$dir/inet/unbound-$u.conf" > "$dir/logs/unbound-checkconf.log" 2>&1 \
      || die "bad unbound-$u.conf: $(cat "$dir/logs/unbound-checkconf.log")"
    start_in "$dir" "$ns_inet" "unbound-$u" unbound -d -c "$dir/inet/unbound-$u.conf"
  done
  start_in "$dir" "$ns_inet" nginx nginx -e "$dir/logs/nginx-error.log" -p "$dir/inet/nginx" \
    -c "$dir/inet/nginx.conf" -g 'daemon off;'
  local py=python3
  [ -x /usr/bin/python3 ] && py=/usr/bin/python3   # the system one: stdlib only, no shims
  # shellcheck disable=SC2046 # one argument per address
  start_in "$dir" "$ns_inet" services "$py" -u "$here/services.py" \
    $(ip -n "$ns_inet" -o addr show dev eth0 scope global | awk '{sub("/.*", "", $4); print $4}')

  wait_for "DNS" 50 ip netns exec "$ns_inet" dig +time=1 +tries=1 @"$INET_DNS4" api.example.com A
  wait_for "nginx" 50 ip netns exec "$ns_inet" bash -c "exec 3<>/dev/tcp/203.0.113.10/443"
  wait_for "test services" 50 grep -q "services ready" "$dir/logs/services.log"
}

cmd_up() {
  local dir=$1
  [ -d "$dir" ] || die "no such directory: $dir"
  dir="$(cd "$dir" && pwd)"
  [ -e "$dir/topology.state" ] && die "$dir already holds a topology (run down first)"
  mkdir -p "$dir/logs" "$dir/pids" "$dir/inet"
  local id ns_pod ns_gw ns_inet
  id="$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
  ns_pod="egressd-e2e-$id-pod" ns_gw="egressd-e2e-$id-gw" ns_inet="egressd-e2e-$id-inet"
  # Recorded before anything exists, so `down` can always undo a partial up.
  cat > "$dir/topology.state" <<EOF
id=$id
owner=${E2E_OWNER_PID:-$PPID}
ns_pod=$ns_pod
ns_gw=$ns_gw
ns_inet=$ns_inet
EOF
  mkdir -p /run/egressd-e2e
  echo "$dir" > "/run/egressd-e2e/$id.dir"
  # A failed `up` leaves nothing behind.
  # shellcheck disable=SC2154 # rc is assigned inside the trap
  trap 'rc=$?; if [ $rc -ne 0 ]; then cmd_down "'"$dir"'"; fi' EXIT
  local ns
  for ns in "$ns_pod" "$ns_gw" "$ns_inet"; do
    ip netns add "$ns"
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    ip -n "$ns" link set lo up
  done
  # veths are created directly inside the namespaces: no name in the host's.
  ip link add eth0 netns "$ns_pod" type veth peer name pod0 netns "$ns_gw"
  ip link add inet0 netns "$ns_gw" type veth peer name eth0 netns "$ns_inet"

  # pod
  ip -n "$ns_pod" addr add "$POD_IP4/24" dev eth0
  ip -n "$ns_pod" -6 addr add "$POD_IP6/64" dev eth0 nodad
  ip -n "$ns_pod" link set eth0 up
  ip -n "$ns_pod" route add default via "$GW_POD_IP4"
  ip -n "$ns_pod" -6 route add default via "$GW_POD_IP6"
  # ip netns exec bind-mounts /etc/netns/NAME/* over /etc/*.
  mkdir -p "/etc/netns/$ns_pod"
  printf 'nameserver %s\noptions timeout:2 attempts:1\n' "$GW_POD_IP4" > "/etc/netns/$ns_pod/resolv.conf"
  printf '127.0.0.1 localhost\n::1 localhost\n' > "/etc/netns/$ns_pod/hosts"

  # gateway
  ip -n "$ns_gw" addr add "$GW_POD_IP4/24" dev pod0
  ip -n "$ns_gw" -6 addr add "$GW_POD_IP6/64" dev pod0 nodad
  ip -n "$ns_gw" addr add "$GW_INET_IP4/24" dev inet0
  ip -n "$ns_gw" -6 addr add "$GW_INET_IP6/64" dev inet0 nodad
  ip -n "$ns_gw" link set pod0 up
  ip -n "$ns_gw" link set inet0 up
  ip -n "$ns_gw" route add default via "$INET_IP4"
  ip -n "$ns_gw" -6 route add default via "$INET_IP6"
  ip netns exec "$ns_gw" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

  # internet: no default route, so nothing it receives can go further.
  internet_up "$dir" "$ns_inet"
  ip -n "$ns_inet" route add "$POD_NET4" via "$GW_INET_IP4"
  ip -n "$ns_inet" -6 route add "$POD_NET6" via "$GW_INET_IP6"
  trap - EXIT
  echo "topology: up ($ns_pod, $ns_gw, $ns_inet)" >&2
}

# Every process whose network namespace is NS (the services, egressd,
# nginx workers, anything a test left behind). Pid files are not used for
# this: after a crash and a late `down`, a recorded pid may be reused by an
# unrelated process; membership of the namespace cannot be.
kill_ns_procs() {
  local ns=$1 sig=$2 pids
  [ -e "/run/netns/$ns" ] || return 0
  pids="$(ip netns pids "$ns" 2> /dev/null || true)"
  # shellcheck disable=SC2086 # one argument per pid
  if [ -n "$pids" ]; then kill "-$sig" $pids 2> /dev/null || true; fi
}

remove_ns() {  # remove_ns NS...: processes, namespace, /etc/netns entry
  local ns
  for ns in "$@"; do kill_ns_procs "$ns" TERM; done
  for _ in $(seq 30); do
    local left=""
    for ns in "$@"; do [ -e "/run/netns/$ns" ] && left="$left$(ip netns pids "$ns" 2> /dev/null)"; done
    [ -z "$left" ] && break
    sleep 0.1
  done
  for ns in "$@"; do kill_ns_procs "$ns" KILL; done
  for ns in "$@"; do
    if [ -e "/run/netns/$ns" ]; then ip netns del "$ns" 2> /dev/null || true; fi
    rm -rf "/etc/netns/$ns"
  done
}

cmd_down() {
  local dir=$1
  [ -f "$dir/topology.state" ] || return 0
  remove_ns "$(state_get ns_pod "$dir")" "$(state_get ns_gw "$dir")" "$(state_get ns_inet "$dir")"
  rm -f "/run/egressd-e2e/$(state_get id "$dir").dir"
  mv "$dir/topology.state" "$dir/topology.state.down"
  echo "topology: down" >&2
}

# Leftovers of runs whose owner process is gone (e.g. a killed ctest).
cmd_gc() {
  local ns id dir owner
  for ns in $(ip netns list | awk '{print $1}' | grep '^egressd-e2e-.*-gw$' || true); do
    id=${ns#egressd-e2e-}; id=${id%-gw}
    dir="$(cat "/run/egressd-e2e/$id.dir" 2> /dev/null || true)"
    owner=""
    if [ -n "$dir" ]; then owner="$(state_get owner "$dir")"; fi
    if [ -n "$owner" ] && kill -0 "$owner" 2> /dev/null; then continue; fi
    echo "topology: removing leftover run $id" >&2
    remove_ns "egressd-e2e-$id-pod" "egressd-e2e-$id-gw" "egressd-e2e-$id-inet"
    rm -f "/run/egressd-e2e/$id.dir"
  done
}

cmd_env() {
  local dir entry name oct var
  dir="$(cd "$1" && pwd)"
  [ -f "$dir/topology.state" ] || die "no topology in $dir"
  cat <<EOF
E2E_DIR='$dir'
E2E_ID='$(state_get id "$dir")'
E2E_NS_POD='$(state_get ns_pod "$dir")'
E2E_NS_GW='$(state_get ns_gw "$dir")'
E2E_NS_INET='$(state_get ns_inet "$dir")'
E2E_POD_RESOLV='/etc/netns/$(state_get ns_pod "$dir")/resolv.conf'
E2E_POD_NET4='$POD_NET4'
E2E_POD_NET6='$POD_NET6'
E2E_POD_IP4='$POD_IP4'
E2E_POD_IP6='$POD_IP6'
E2E_GW_POD_IP4='$GW_POD_IP4'
E2E_GW_POD_IP6='$GW_POD_IP6'
E2E_GW_INET_IP4='$GW_INET_IP4'
E2E_GW_INET_IP6='$GW_INET_IP6'
E2E_INET_IP4='$INET_IP4'
E2E_INET_IP6='$INET_IP6'
E2E_DNS4='$INET_DNS4'
E2E_DNS6='$INET_DNS6'
E2E_DNS_AUTH4='$INET_AUTH4'
E2E_DNS_AUTH6='$INET_AUTH6'
E2E_SVC_NET4='$SVC_NET4'
E2E_SVC_NET6='$SVC_NET6'
E2E_CA='$dir/certs/ca.pem'
E2E_CERTS='$dir/certs'
E2E_LOGS='$dir/logs'
E2E_PIDS='$dir/pids'
EOF
  # One pair per service: E2E_IP4_API_EXAMPLE_COM, E2E_IP6_API_EXAMPLE_COM, E2E_IP4_SPOOF...
  for entry in $SERVICES; do
    name=${entry%%:*} oct=${entry##*:}
    var="$(echo "$name" | tr 'a-z.-' 'A-Z__')"
    echo "E2E_IP4_$var='203.0.113.$oct'"
    echo "E2E_IP6_$var='$(ip6 "$oct")'"
  done
  echo "export E2E_DIR E2E_NS_POD E2E_NS_GW E2E_NS_INET E2E_CA"
}

case "${1:-}" in
  up) [ $# -eq 2 ] || die "usage: topology.sh up DIR"; cmd_up "$2" ;;
  down) [ $# -eq 2 ] || die "usage: topology.sh down DIR"; cmd_down "$2" ;;
  env) [ $# -eq 2 ] || die "usage: topology.sh env DIR"; cmd_env "$2" ;;
  gc) cmd_gc ;;
  internet) [ $# -eq 3 ] || die "usage: topology.sh internet DIR NS"; internet_up "$(cd "$2" && pwd)" "$3" ;;
  *) die "usage: topology.sh up|down|env DIR | gc | internet DIR NS" ;;
esac

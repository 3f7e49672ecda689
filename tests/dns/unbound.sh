# shellcheck shell=bash disable=SC2154,SC2034  # $work is the caller's temp dir
# Sourced by the tests and benchmarks that need a real DNS server on
# loopback (unbound). Needs $work, the caller's temp dir.
#
#   free_port                  a port free for both UDP and TCP on 127.0.0.1
#   unbound_server_conf PORT   the common `server:` block: loopback only, one
#                              thread, foreground, no chroot/syslog/pidfile
#   unbound_auth_conf PORT ZONE=FILE... [LINE...]
#                              a config authoritative for each ZONE from its
#                              zone FILE; other arguments are extra `server:`
#                              lines (e.g. "max-udp-size: 512")
#   unbound_start CONF NAME    starts `unbound -d -c CONF` in the background,
#                              log in $work/NAME.log, pid in $unbound_pid
#   unbound_wait PORT NAME ADDR
#                              waits (up to 5 s) until the server on PORT
#                              answers NAME with ADDR; returns 1 if it never does
#   unbound_example_test [RECORD...]
#                              the loopback tests' upstream: unbound on a free
#                              port ($upstream_port), authoritative for
#                              example.test with ns and api (192.0.2.10)
#                              plus each RECORD line ("other IN A 192.0.2.11");
#                              its pid joins $pids; the test exits if it does
#                              not answer

free_port() {
  python3 - << 'PY'
import socket
while True:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
    port = u.getsockname()[1]
    t = socket.socket()
    try:
        t.bind(("127.0.0.1", port)); print(port); break
    except OSError:
        pass
    finally:
        t.close(); u.close()
PY
}

unbound_server_conf() {
  cat << CONF
server:
  interface: 127.0.0.1
  port: $1
  do-daemonize: no
  use-syslog: no
  logfile: ""
  username: ""
  chroot: ""
  directory: "$work"
  pidfile: ""
  do-ip6: no
  num-threads: 1
  access-control: 127.0.0.0/8 allow
CONF
}

unbound_auth_conf() {
  local port=$1 arg zone tld zones=() tlds=()
  shift
  unbound_server_conf "$port"
  echo '  module-config: "iterator"'
  for arg in "$@"; do
    case $arg in
      *=*) zones+=("$arg") ;;
      *) echo "  $arg" ;;
    esac
  done
  # unbound refuses local-use names (test., local.) unless told otherwise.
  for arg in "${zones[@]}"; do
    zone=${arg%%=*}
    tld=${zone##*.}
    case " ${tlds[*]} " in
      *" $tld "*) ;;
      *)
        tlds+=("$tld")
        echo "  local-zone: \"$tld.\" nodefault"
        ;;
    esac
  done
  for arg in "${zones[@]}"; do
    printf 'auth-zone:\n  name: "%s."\n  zonefile: "%s"\n  for-downstream: yes\n  for-upstream: no\n' \
      "${arg%%=*}" "${arg#*=}"
  done
  printf 'remote-control:\n  control-enable: no\n'
}

unbound_start() {
  unbound -d -c "$1" > "$work/$2.log" 2>&1 &
  unbound_pid=$!
}

unbound_wait() {
  local port=$1 name=$2 addr=$3
  for _ in $(seq 50); do
    kdig @127.0.0.1 -p "$port" +timeout=1 +retry=0 "$name" +short 2> /dev/null | grep -qx "$addr" && return 0
    sleep 0.1
  done
  return 1
}

unbound_example_test() {
  upstream_port="$(free_port)"
  {
    printf '%s\n' '$ORIGIN example.test.' '$TTL 300' \
      '@     IN SOA ns.example.test. admin.example.test. 1 3600 600 86400 60' \
      '@     IN NS  ns.example.test.' 'ns    IN A   192.0.2.1' 'api   IN A   192.0.2.10'
    printf '%s\n' "$@"
  } > "$work/example.test.zone"
  unbound_auth_conf "$upstream_port" "example.test=$work/example.test.zone" > "$work/unbound.conf"
  unbound_start "$work/unbound.conf" unbound
  pids+=("$unbound_pid")
  unbound_wait "$upstream_port" api.example.test 192.0.2.10 ||
    { cat "$work/unbound.log"; echo "FAIL: unbound did not start"; exit 1; }
}

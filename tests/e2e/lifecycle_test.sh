#!/usr/bin/env bash
# egressd end to end: what reloads, restarts and crashes do to traffic
# (issue 7: "established allowed connections are not cut by a reload";
# "killed with SIGKILL, or stopped with SIGTERM: new connections fail,
# established allowed connections keep working; after restart new allowed
# connections work again").
#
# Two long-lived allowed connections run through the whole test: a line
# echo (client speaks first; allowed through the DNS binding) and a
# rate-limited 64 MiB HTTPS download. After every event the echo must
# answer and the download must keep growing, while new connections follow
# the new rules within 1 s:
#   (a) an unrelated rule set changed, then removed;
#   (b) SIGHUP, unchanged and with a live setting changed;
#   (c) the very rule set that allowed both connections removed
#       (docs/architecture.md / docs/egressd.md: a rule change applies to new
#       connections, established ones keep their connection mark);
#   (d) SIGTERM, then a restart; SIGKILL, then a restart.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${EGRESSD_BIN:-${1:-}}"
[ -x "$bin/egressd" ] || { echo "usage: EGRESSD_BIN=BUILD/bin $0 (or $0 BUILD/bin)"; exit 2; }
e2e_cleanup_extra() {
  [ -n "${bulk_pid:-}" ] && kill "$bulk_pid" 2> /dev/null
  [ -n "${ECHO_PID:-}" ] && kill "$ECHO_PID" 2> /dev/null
}
# shellcheck source=tests/e2e/harness.sh
. "$here/harness.sh"
e2e_start e2e-life

ruleset() { # ruleset FILE NAME TARGET...: an EgressRuleSet manifest
  local file=$1 name=$2 t; shift 2
  { printf 'apiVersion: zalando.org/v1\nkind: EgressRuleSet\nmetadata: {name: %s, namespace: team-a}\nspec:\n  targets:\n' "$name"
    for t in "$@"; do printf '  - "%s"\n' "$t"; done; } > "$file.tmp"
  mv "$file.tmp" "$file" # renamed into place: the watcher never sees half a file
}
mkdir -p "$dir/rules"
# "keep" allows both long-lived connections; "extra" is unrelated to them.
ruleset "$dir/rules/keep.yaml" keep api.example.com:443 ssh.example.com:7
ruleset "$dir/rules/extra.yaml" extra mail.example.com:25
write_egressd_config "$dir/egressd.toml" "$dir/rules"
start_egressd "$bin/egressd" "$dir/egressd.toml" || exit 1
egressd_pid() { cat "$E2E_PIDS/egressd.pid"; }

api="api.example.com:443:$E2E_IP4_API_EXAMPLE_COM"
# new_https: a new TLS connection to the api vhost, by address (no DNS), so
# it shows the connection verdict alone: 200, or "reset"/"curl:28".
new_https() {
  reset_like "$(E2E_MAX_TIME=2 E2E_CONNECT_TIMEOUT=2 curl_pod https://api.example.com/ --resolve "$api")"
}
https_is() { [ "$(new_https)" = "$1" ]; }
# denied_https: other.example.com is allowed nowhere on 443
denied_https() {
  reset_like "$(curl_pod https://other.example.com/ --resolve "other.example.com:443:$E2E_IP4_OTHER_EXAMPLE_COM")"
}
reset_like() { case $1 in curl:7 | curl:35 | curl:52 | curl:56) echo reset ;; *) echo "$1" ;; esac; }
# new_echo: a new connection to the echo service (port 7) by address
new_echo() { echo new | in_pod timeout 3 nc -w 2 "$E2E_IP4_SSH_EXAMPLE_COM" 7 2> /dev/null | head -1; }
echo_fails() { [ -z "$(new_echo)" ]; }

# within_1s DESC CMD...: CMD holds within 1 s of now (polled back to back)
within_1s() {
  local desc=$1 t0 ms; shift
  t0=$(date +%s%N)
  while :; do
    if "$@" > /dev/null 2>&1; then
      ms=$((($(date +%s%N) - t0) / 1000000))
      if [ "$ms" -le 1000 ]; then _e2e_ok "$desc (${ms} ms)"; else _e2e_fail "$desc" "took ${ms} ms"; fi
      return
    fi
    if [ $(($(date +%s%N) - t0)) -gt 5000000000 ]; then _e2e_fail "$desc" "not within 5 s"; return; fi
    sleep 0.05
  done
}
# logged_since MARK ERE: a line after MARK in egressd's log matches ERE
logged_since() { egressd_log_since "$1" | grep -qE "$2"; }
dns_is() { [ "$(dns_pod "$1")" = "$2" ]; }

# ---- the two long-lived connections ------------------------------------------
expect_eq "the api name resolves through egressd" "$E2E_IP4_API_EXAMPLE_COM" "$(dns_answers api.example.com | tail -1)"
expect_eq "the echo name resolves through egressd" "$E2E_IP4_SSH_EXAMPLE_COM" "$(dns_answers ssh.example.com | tail -1)"
bulk="$dir/bulk.out"
# Started with ip netns exec (which execs curl), so $! is curl itself.
ip netns exec "$E2E_NS_POD" env -u https_proxy -u HTTPS_PROXY -u all_proxy -u ALL_PROXY \
  curl -sS --cacert "$E2E_CA" --limit-rate 1M -o "$bulk" https://api.example.com/bulk 2> "$dir/bulk.err" &
bulk_pid=$!
coproc ECHO { in_pod timeout 120 nc ssh.example.com 7; }
exec 7>&"${ECHO[1]}" 8<&"${ECHO[0]}"
bulk_size() { stat -c %s "$bulk" 2> /dev/null || echo 0; }
bulk_size_over() { [ "$(bulk_size)" -gt "$1" ]; }
n=0
# established DESC: both long-lived connections still carry data
established() {
  local line="" s
  n=$((n + 1))
  echo "line $n" >&7 2> /dev/null
  read -r -t 3 line <&8
  expect_eq "$1: the established echo connection answers" "line $n" "$line"
  s="$(bulk_size)"
  expect_ok "$1: the established download keeps going (at $((s / 1048576)) MiB)" wait_until 30 bulk_size_over "$s"
}
established "at the start"

# ---- (a) an unrelated rule set changed, then removed -------------------------
expect_eq "before: db.example.com is denied" NXDOMAIN "$(dns_pod db.example.com)"
ruleset "$dir/rules/extra.yaml" extra mail.example.com:25 db.example.com:3306
within_1s "(a) an unrelated rule set changed: its new name resolves" dns_is db.example.com NOERROR
expect_match "... and its new target is reachable" '5\.7\.99-egressd-test' \
  "$(in_pod timeout 5 nc -w 3 db.example.com 3306 < /dev/null | tr -d '\0')"
established "(a) unrelated rule set changed"
rm "$dir/rules/extra.yaml"
within_1s "(a) an unrelated rule set removed: its names are denied" dns_is mail.example.com NXDOMAIN
expect_eq "... and a new connection to its address is refused" "" "$(banner_pod "$E2E_IP4_MAIL_EXAMPLE_COM" 25)"
established "(a) unrelated rule set removed"

# ---- (b) SIGHUP ----------------------------------------------------------------
mark="$(egressd_log_mark)"
kill -HUP "$(egressd_pid)"
expect_ok "(b) SIGHUP without changes is applied" wait_until 30 logged_since "$mark" 'event=config\.reloaded' 
established "(b) SIGHUP, nothing changed"
expect_eq "... a new allowed connection works" 200 "$(new_https)"
# A live NFQUEUE setting: egressd restarts its queue workers for it.
mark="$(egressd_log_mark)"
sed -i '/^\[nfqueue\]/a hold_timeout = "1500ms"' "$dir/egressd.toml"
kill -HUP "$(egressd_pid)"
expect_ok "(b) SIGHUP with a changed nfqueue.hold_timeout is applied" wait_until 30 logged_since "$mark" 'event=config\.reloaded' 
established "(b) SIGHUP, queue workers restarted"
expect_eq "... a new allowed connection works" 200 "$(new_https)"
expect_eq "... a new denied connection is still reset" reset \
  "$(denied_https)"

# ---- (c) the rule set that allowed both connections removed --------------------
expect_eq "before: a new echo connection works" new "$(new_echo)"
rm "$dir/rules/keep.yaml"
within_1s "(c) the allowing rule set removed: a new TLS connection is reset" https_is reset
within_1s "(c) ... a new echo connection fails" echo_fails
expect_eq "(c) ... and the names are denied" NXDOMAIN "$(dns_pod api.example.com)"
established "(c) the allowing rule set removed"
ruleset "$dir/rules/keep.yaml" keep api.example.com:443 ssh.example.com:7
within_1s "the rule set added back: the name resolves again" dns_is api.example.com NOERROR
expect_eq "... and a new connection works" 200 "$(new_https)"

# ---- (d) SIGTERM and SIGKILL, each followed by a restart -------------------------
for sig in TERM KILL; do
  expect_ok "(d) egressd stopped with SIG$sig" stop_egressd "$sig"
  expect_fail "(d) ... it is gone" egressd_running
  # SIGTERM voided the kernel verdict's names; after SIGKILL its program
  # allows until the worker's 2 s consumer lease ends (docs/nfq.md
  # "Fail-closed"): wait that out.
  [ "$sig" = KILL ] && sleep 2.2
  expect_eq "(d) after SIG$sig: a new allowed connection fails (nothing leaks)" curl:28 "$(new_https)"
  expect_eq "(d) ... a new echo connection fails" "" "$(new_echo)"
  expect_eq "(d) ... DNS gets no answer" timeout "$(dns_pod api.example.com)"
  established "(d) after SIG$sig"
  expect_ok "(d) egressd restarted after SIG$sig" start_egressd "$bin/egressd" "$dir/egressd.toml"
  established "(d) after the restart that followed SIG$sig"
  expect_eq "(d) ... a new allowed connection works again" 200 "$(curl_pod https://api.example.com/)"
  expect_eq "(d) ... and a denied one is still reset" reset \
    "$(denied_https)"
done

# The download ran through everything above and never failed.
expect_ok "the download is still running at the end" kill -0 "$bulk_pid"
expect_eq "... with nothing on curl's stderr" "" "$(cat "$dir/bulk.err")"
kill "$bulk_pid" 2> /dev/null
exec 7>&- 8<&-
kill "$ECHO_PID" 2> /dev/null
wait 2> /dev/null
summary

#!/usr/bin/env bash
# nfq/ruleset against the real iptables-restore (nf_tables backend) in a
# network namespace this test creates and removes: the chain is installed
# exactly as rendered, applying twice changes nothing, and removal leaves
# every other chain and rule as it was.
set -euo pipefail
tool="${EGRESSD_BIN:?}/nfq_ruleset_tool"
ns="egressd-test-$$"
cleanup() { ip netns del "$ns" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$ns"
in_ns() { ip netns exec "$ns" "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# Someone else's rules, before and after ours.
in_ns iptables -N OTHER
in_ns iptables -A OTHER -p tcp --dport 22 -j ACCEPT
in_ns iptables -A FORWARD -j OTHER
in_ns ip6tables -N OTHER6
in_ns ip6tables -A FORWARD -j OTHER6
before4="$(in_ns iptables-save -t filter | grep -v '^#')"
before6="$(in_ns ip6tables-save -t filter | grep -v '^#')"

args=(--output --queues 0:1 --protect 10.0.0.0/8 --protect fd00::/8)
in_ns "$tool" apply "${args[@]}"
save4="$(in_ns iptables-save -t filter)"
save6="$(in_ns ip6tables-save -t filter)"

# The installed chains are exactly the rendered ones, per family (the print
# has each chain's v4 rules before its v6 ones).
print="$("$tool" print "${args[@]}")"
for chain in EGRESSD EGRESSD-NEW EGRESSD-VERDICT; do
  got4="$(grep "^-A $chain " <<<"$save4")"
  n4="$(wc -l <<<"$got4")"
  [ "$n4" -ge 4 ] || fail "$chain has only $n4 rules"
  expected4="$(grep "^-A $chain " <<<"$print" | head -n "$n4")"
  [ "$got4" = "$expected4" ] || { diff <(echo "$got4") <(echo "$expected4") >&2; fail "v4 $chain differs from the rendering"; }
  got6="$(grep "^-A $chain " <<<"$save6")"
  expected6="$(grep "^-A $chain " <<<"$print" | tail -n "$(wc -l <<<"$got6")")"
  [ "$got6" = "$expected6" ] || { diff <(echo "$got6") <(echo "$expected6") >&2; fail "v6 $chain differs from the rendering"; }
done
grep -q -- '-A EGRESSD -j NFQUEUE --queue-balance 0:1$' <<<"$save4" || fail "no NFQUEUE rule"
grep -q -- '-A EGRESSD-NEW -j NFQUEUE --queue-balance 0:1$' <<<"$save4" || fail "no NFQUEUE rule in EGRESSD-NEW"
grep -q -- 'queue-bypass' <<<"$save4$save6" && fail "--queue-bypass present (must fail closed)"
# Our jump comes first in FORWARD; OUTPUT has one too.
[ "$(grep '^-A FORWARD' <<<"$save4" | head -1)" = "-A FORWARD -m comment --comment egressd -j EGRESSD" ] || fail "jump not first in FORWARD"
[ "$(grep -c -- '-j EGRESSD' <<<"$save4")" = 2 ] || fail "expected 2 jumps (FORWARD, OUTPUT)"
[ "$(grep -c -- '-j EGRESSD' <<<"$save6")" = 2 ] || fail "expected 2 v6 jumps"

# Idempotent: a second apply leaves the same rule set.
in_ns "$tool" apply "${args[@]}"
[ "$(in_ns iptables-save -t filter | grep -v '^#')" = "$(grep -v '^#' <<<"$save4")" ] || fail "second apply changed v4"
[ "$(in_ns ip6tables-save -t filter | grep -v '^#')" = "$(grep -v '^#' <<<"$save6")" ] || fail "second apply changed v6"

# A changed configuration replaces the chain's rules in place.
in_ns "$tool" apply --output --queues 3 --protect 10.0.0.0/8
grep -q -- '-A EGRESSD -j NFQUEUE --queue-num 3$' <(in_ns iptables-save -t filter) || fail "reapply did not refill the chain"
[ "$(in_ns iptables-save -t filter | grep -c -- '-j EGRESSD')" = 2 ] || fail "reapply duplicated a jump"

# Removal restores exactly what was there before.
in_ns "$tool" remove
[ "$(in_ns iptables-save -t filter | grep -v '^#')" = "$before4" ] || { diff <(echo "$before4") <(in_ns iptables-save -t filter | grep -v '^#') >&2; fail "v4 not restored"; }
[ "$(in_ns ip6tables-save -t filter | grep -v '^#')" = "$before6" ] || fail "v6 not restored"
# Removing again is a no-op, not an error.
in_ns "$tool" remove

# The insertion guard's reply rules (--confirm): installed exactly as
# rendered (the chain, then its reply chain: one line each per family in
# the print, v4 first), a reply-only jump in INPUT for local clients,
# removed cleanly.
cargs=(--output --confirm --queues 0:1 --protect 10.0.0.0/8 --protect fd00::/8)
in_ns "$tool" apply "${cargs[@]}"
csave4="$(in_ns iptables-save -t filter)"
csave6="$(in_ns ip6tables-save -t filter)"
cprint="$("$tool" print "${cargs[@]}")"
for chain in EGRESSD EGRESSD-NEW EGRESSD-VERDICT EGRESSD-REPLY EGRESSD-REPLY-NEW; do
  cgot4="$(grep "^-A $chain " <<<"$csave4")"
  cexpected4="$(grep "^-A $chain " <<<"$cprint" | head -n "$(wc -l <<<"$cgot4")")"
  [ "$cgot4" = "$cexpected4" ] || { diff <(echo "$cgot4") <(echo "$cexpected4") >&2; fail "v4 $chain with --confirm differs from the rendering"; }
  cgot6="$(grep "^-A $chain " <<<"$csave6")"
  cexpected6="$(grep "^-A $chain " <<<"$cprint" | tail -n "$(wc -l <<<"$cgot6")")"
  [ "$cgot6" = "$cexpected6" ] || { diff <(echo "$cgot6") <(echo "$cexpected6") >&2; fail "v6 $chain with --confirm differs from the rendering"; }
done
# Decided connections leave first; server packets go to the reply chain.
[ "$(grep '^-A EGRESSD ' <<<"$csave4" | head -1)" = "-A EGRESSD -m connmark --mark 0x100000/0x700000 -j RETURN" ] || fail "connmark ALLOW is not the first rule"
grep -qx -- '-A EGRESSD -m conntrack --ctdir REPLY -g EGRESSD-REPLY' <<<"$csave4" || fail "no goto to the reply chain"
grep -q -- '^-A EGRESSD-REPLY -m mark --mark 0x600000/0x700000 -j NFQUEUE --queue-balance 0:1$' <<<"$csave4" || fail "no reply queue rule"
grep -qx -- '-A INPUT -m conntrack --ctdir REPLY -m comment --comment egressd -j EGRESSD' <<<"$csave4" || fail "no reply-only INPUT jump"
in_ns "$tool" apply "${cargs[@]}"
[ "$(in_ns iptables-save -t filter | grep -v '^#')" = "$(grep -v '^#' <<<"$csave4")" ] || fail "second --confirm apply changed v4"
# Without the guard the reply chain goes (it was left by the run before).
in_ns "$tool" apply --output --queues 0:1 --protect 10.0.0.0/8
grep -q 'EGRESSD-REPLY' <<< "$(in_ns iptables-save -t filter)" && fail "an apply without --confirm left a reply chain"
in_ns "$tool" apply "${cargs[@]}"
in_ns "$tool" remove
[ "$(in_ns iptables-save -t filter | grep -v '^#')" = "$before4" ] || { diff <(echo "$before4") <(in_ns iptables-save -t filter | grep -v '^#') >&2; fail "v4 not restored after --confirm"; }
[ "$(in_ns ip6tables-save -t filter | grep -v '^#')" = "$before6" ] || fail "v6 not restored after --confirm"

# Over the layout before the -NEW chains (an older egressd's, installed by
# iptables-restore as it did): one apply replaces it, one remove of this
# build removes whatever layout is there.
legacy() {  # legacy FAMILY(4|6) ARGS...: that layout's restore input, with its FORWARD jump
  local family="$1" rules
  shift
  rules="$("$tool" print-legacy "$@")"
  printf '*filter\n:EGRESSD - [0:0]\n:EGRESSD-VERDICT - [0:0]\n:EGRESSD-REPLY - [0:0]\n'
  # The print has the v4 rules, then the v6 ones: split where the v6 chain starts again.
  awk -v want="$family" '/^-A EGRESSD -m connmark --mark 0x100000\/0x700000 -j RETURN$/ { n++ } n == (want == 4 ? 1 : 2)' <<<"$rules"
  printf -- '-I FORWARD 1 -m comment --comment egressd -j EGRESSD\nCOMMIT\n'
}
for family in 4 6; do
  t=iptables; [ "$family" = 6 ] && t=ip6tables
  legacy "$family" "${cargs[@]}" | in_ns "$t-restore" --noflush || fail "the older layout did not install (v$family)"
done
grep -q -- '-A EGRESSD -m mark --mark 0x400000/0x700000 -j RETURN' <<< "$(in_ns iptables-save -t filter)" || fail "no older layout to replace"
grep -q 'EGRESSD-NEW' <<< "$(in_ns iptables-save -t filter)" && fail "the older layout has -NEW chains"
in_ns "$tool" apply "${cargs[@]}"
[ "$(in_ns iptables-save -t filter | grep -v '^#')" = "$(grep -v '^#' <<<"$csave4")" ] || { diff <(grep -v '^#' <<<"$csave4") <(in_ns iptables-save -t filter | grep -v '^#') >&2; fail "apply over the older layout differs from a fresh one (v4)"; }
[ "$(in_ns ip6tables-save -t filter | grep -v '^#')" = "$(grep -v '^#' <<<"$csave6")" ] || fail "apply over the older layout differs from a fresh one (v6)"
in_ns "$tool" remove
[ "$(in_ns iptables-save -t filter | grep -v '^#')" = "$before4" ] || fail "v4 not restored after the upgrade"
for family in 4 6; do
  t=iptables; [ "$family" = 6 ] && t=ip6tables
  legacy "$family" "${cargs[@]}" | in_ns "$t-restore" --noflush || fail "the older layout did not install (v$family)"
done
in_ns "$tool" remove
[ "$(in_ns iptables-save -t filter | grep -v '^#')" = "$before4" ] || { diff <(echo "$before4") <(in_ns iptables-save -t filter | grep -v '^#') >&2; fail "v4: this build's remove left some of the older layout"; }
[ "$(in_ns ip6tables-save -t filter | grep -v '^#')" = "$before6" ] || fail "v6: this build's remove left some of the older layout"
echo "ok: ruleset apply/reapply/remove in $ns"

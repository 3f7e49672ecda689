#!/usr/bin/env python3
"""Rule evaluations the gateway's EGRESSD chains cost between two snapshots.

usage: chain_cost.py BEFORE AFTER CHAIN
BEFORE, AFTER: `iptables-save -c -t filter` output. Every packet that jumps
to CHAIN (the hooks' jump counters) walks its rules until one ends its walk
(RETURN, NFQUEUE, REJECT, DROP, ACCEPT, a goto); a goto's packets walk the
target chain the same way (a chain several gotos reach, once, with all their
packets). From the per-rule match counters, rule by rule:
evaluations = packets that entered - packets an earlier rule ended.
Prints "packets EVALUATIONS_PER_ENTERING_PACKET total_evaluations".
"""
import re
import sys

ENDS = re.compile(r" -(j (RETURN|NFQUEUE|REJECT|DROP|ACCEPT)|g \S+)\b")


def rules(path):
    out = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"\[(\d+):\d+\] -A (\S+) (.*)", line)
            if m:
                out.setdefault(m.group(2), []).append((int(m.group(1)), m.group(3)))
    return out


def delta(before, after):
    out = {}
    for chain, rows in after.items():
        old = before.get(chain, [])
        out[chain] = [(n - (old[i][0] if i < len(old) and old[i][1] == text else 0), text)
                      for i, (n, text) in enumerate(rows)]
    return out


def walk(chains, chain, entering):
    """Evaluations in CHAIN and in the chains it reaches by goto. A chain
    reached by several goto rules is walked once, entered by all their
    packets: its rules' counters are the sum over them (walking it once per
    goto with that goto's packets would subtract the other gotos' RETURNs
    too and undercount)."""
    entering_of = {chain: entering}
    order = [chain]
    for name in order:  # grows while it is walked: every chain reached
        for matched, text in chains.get(name, []):
            goto = re.search(r" -g (\S+)", " " + text)
            if goto:
                target = goto.group(1)
                if target not in entering_of:
                    entering_of[target] = 0
                    order.append(target)
                entering_of[target] += matched
    evaluations = 0
    for name in order:
        left = entering_of[name]
        for matched, text in chains.get(name, []):
            evaluations += left
            if ENDS.search(" " + text):
                left -= matched
    return evaluations


def main():
    chains = delta(rules(sys.argv[1]), rules(sys.argv[2]))
    chain = sys.argv[3]
    entering = sum(n for name, rows in chains.items() if name in ("FORWARD", "OUTPUT", "INPUT")
                   for n, text in rows if re.search(r"-j %s$" % re.escape(chain), text))
    total = walk(chains, chain, entering)
    print(entering, "%.2f" % (total / entering if entering else 0), total)


if __name__ == "__main__":
    main()

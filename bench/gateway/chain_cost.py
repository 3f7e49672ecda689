#!/usr/bin/env python3
"""Rule evaluations the gateway's EGRESSD chains cost between two snapshots.

usage: chain_cost.py BEFORE AFTER CHAIN
BEFORE, AFTER: `iptables-save -c -t filter` output. Every packet that jumps
to CHAIN (the hooks' jump counters) walks its rules until one ends its walk
(RETURN, NFQUEUE, REJECT, DROP, ACCEPT, a goto); a goto's packets walk the
target chain the same way. From the per-rule match counters, rule by rule:
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
    evaluations = 0
    for matched, text in chains.get(chain, []):
        evaluations += entering
        goto = re.search(r" -g (\S+)", text)
        if goto:
            evaluations += walk(chains, goto.group(1), matched)
        if ENDS.search(" " + text):
            entering -= matched
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

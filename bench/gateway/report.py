#!/usr/bin/env python3
"""Summarises bench/gateway's raw outputs into gateway.json.

Reads RAW/r<round>-<config>-<proto>.{wrk,lat,bulk} as run.sh writes them
(wrk's report plus the gateway's queue and CPU counters; curl's per-
connection timings; curl's bulk download), computes per-round numbers,
medians, ratios against the goals of issue 7 (and, with the egressd-world
configuration, issue 19's world-access ratios), and prints a short table.
Exit status 1 when a configuration did not work (no request completed, or
more than 1 % errors), or, with --strict 1, when a goal was missed.
"""
import argparse
import json
import os
import re
import statistics
import sys
import time

GOALS = {  # ratio egressd / unfiltered, at least
    "http_conn_rate": 0.75,
    "https_conn_rate": 0.85,
    "bulk_throughput": 0.95,
}
# Issue 17's connection-rate goals (a quiet machine), printed beside issue 7's.
GOALS_CLOSER = {"http_conn_rate": 0.9, "https_conn_rate": 0.98}
MAX_ERROR_RATE = 0.01
NAME_RE = re.compile(r"^r(\d+)-([a-z]+(?:-[a-z]+)*)-(http|https)\.(wrk|lat|bulk)$")
# egressd with named rules / world access / named rules by a baseline binary
EGRESSD_CONFIGS = ("egressd", "egressd-world", "egressd-base")


def wrk_duration_ms(text):
    """wrk prints latencies as 7.80ms, 512.00us, 1.02s."""
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    if not m:
        return None
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[m.group(2)]
    return float(m.group(1)) * scale


def parse_wrk(path):
    out = {"requests": 0, "errors": 0, "rate": 0.0}
    with open(path) as f:
        for line in f:
            words = line.split()
            if "requests in" in line:
                out["requests"] = int(words[0])
            elif line.startswith("Requests/sec:"):
                out["rate"] = float(words[1])
            elif line.strip().startswith("Socket errors:"):
                nums = [int(x) for x in re.findall(r"\d+", line)]
                out["socket_errors"] = dict(zip(["connect", "read", "write", "timeout"], nums))
                out["errors"] += sum(nums)
            elif line.strip().startswith("Non-2xx"):
                out["non_2xx"] = int(words[-1])
                out["errors"] += int(words[-1])
            elif re.match(r"\s+(50|99)%\s", line):
                out["wrk_latency_p" + words[0].rstrip("%") + "_ms"] = wrk_duration_ms(words[1])
            elif words and words[0] == "queued":
                out["queued_packets"] = int(words[1])
            elif words and words[0] == "chain_packets_evaluations_per_packet_total" and words[3:4] != ["-"]:
                out["chain_packets"], out["chain_rule_evaluations"] = int(words[1]), int(words[3])
            elif words and words[0] == "queue_drops":
                out["queue_drops"] = int(words[1])
            elif words and words[0] in ("gateway_cpu_ticks", "server_cpu_ticks"):
                out[words[0].replace("_ticks", "_seconds")] = int(words[1]) / int(words[2])
            elif words and words[0] in ("egressd_counters_before", "egressd_counters_after") and len(words) == 4:
                out[words[0]] = [int(x) if x.isdigit() else None for x in words[1:]]
            elif words and words[0] == "client_cpu_seconds" and len(words) == 3:
                out["client_cpu_seconds"] = round(float(words[1]) + float(words[2]), 3)
    return out


def parse_lat(path):
    """Per connection: time to TCP connect, to TLS done, to first byte (ms)."""
    conns = []
    with open(path) as f:
        for line in f:
            w = line.split()
            if len(w) == 5 and w[3] == "200" and w[4] == "1":
                conns.append(float(w[2]) * 1000.0)
    return conns


def parse_bulk(path):
    with open(path) as f:
        w = f.read().split()
    size, total, first = int(w[0]), float(w[1]), float(w[2])
    return size / max(total - first, 1e-6)


def percentile(values, p):
    """Nearest-rank percentile."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return round(s[k], 3)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def rounded(v, digits=3):
    return round(v, digits) if v is not None else None


def ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--nfq-queue", default="")
    ap.add_argument("--param", action="append", default=[])
    ap.add_argument("--strict", default="0")
    args = ap.parse_args()

    params = dict(p.split("=", 1) for p in args.param)
    for k in ("rounds", "seconds", "wrk_threads", "wrk_connections", "latency_connections",
              "bulk_seconds", "nginx_workers", "squid_workers", "nproc", "wall_seconds"):
        if k in params:
            params[k] = int(params[k])
    for k in ("loadavg_start", "loadavg_end"):
        if k in params:
            params[k] = [float(x) for x in params[k].split()]

    wrk, lat, bulk = {}, {}, {}
    for fn in sorted(os.listdir(args.raw)):
        m = NAME_RE.match(fn)
        if not m:
            continue
        rnd, cfg, proto, kind = int(m.group(1)), m.group(2), m.group(3), m.group(4)
        if rnd == 0:
            continue  # run.sh's profiled run (GATEWAY_BENCH_PERF=1): perf's own cost is in it
        path = os.path.join(args.raw, fn)
        if kind == "wrk":
            wrk.setdefault(proto, {}).setdefault(cfg, {})[rnd] = parse_wrk(path)
        elif kind == "lat":
            lat.setdefault(proto, {}).setdefault(cfg, {})[rnd] = parse_lat(path)
        else:
            bulk.setdefault(cfg, {})[rnd] = parse_bulk(path)

    problems = []
    report = {
        "benchmark": "gateway",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "params": params,
        "what": {
            "conn_rate": "new connections/s from the pod, one request each (wrk -H 'Connection: close'), "
                         "median of the rounds",
            "connect_latency": "ms from the start of connect() to the first response byte, one fresh "
                               "connection at a time (curl, full TLS 1.3 handshake with ECDSA P-256, "
                               "no session reuse, no DNS), percentiles over all rounds' connections",
            "wrk_latency": "wrk --latency under saturation: from writing the request to the response; "
                           "excludes TCP connect and the TLS handshake",
            "bulk": "bytes/s of one HTTP download on one connection (transfer phase), median of the rounds",
            "queued_packets_per_connection": "egressd: packets its NFQUEUE handed to user space per "
                                             "connection during the rate runs",
            "client_packets_per_connection": "of egressd's queued packets (its own counters), those the "
                                             "client sent; server_syn_acks_ and server_other_packets_"
                                             "per_connection: the server packets the insertion guard read",
            "chain_rule_evaluations_per_connection": "egressd: rules of its chains evaluated per connection "
                                                     "(bench/gateway/chain_cost.py, from the rules' counters; "
                                                     "chain_packets_per_connection: packets that entered them)",
            "egressd-base": "the egressd configuration run by a second binary (GATEWAY_BENCH_EGRESSD_BASE), "
                            "alternating with egressd round by round: what a change moved, in the same run",
            "egressd-world": "egressd enforcing world access (*:PORT on the bench's ports) instead of "
                             "the bench name: every connection takes the world-access path (public "
                             "destination, final allow at the SYN)",
        },
        "rounds": {},
    }

    for proto in ("http", "https"):
        per_cfg = {}
        for cfg, rounds in sorted(wrk.get(proto, {}).items()):
            rows = [dict(round=r, **rounds[r]) for r in sorted(rounds)]
            for row in rows:
                conns = row["requests"] + row.get("socket_errors", {}).get("connect", 0)
                if row["requests"] == 0:
                    problems.append(f"{cfg} {proto} round {row['round']}: no request completed")
                elif row["errors"] > MAX_ERROR_RATE * row["requests"]:
                    problems.append(f"{cfg} {proto} round {row['round']}: {row['errors']} errors in "
                                    f"{row['requests']} requests")
                if cfg in EGRESSD_CONFIGS and "queued_packets" in row and conns:
                    row["queued_packets_per_connection"] = round(row["queued_packets"] / conns, 3)
                    row["queued_packets_per_second"] = round(row["queued_packets"] / params.get("seconds", 1))
                # egressd's own counters: where the queued packets came from.
                before, after = row.pop("egressd_counters_before", None), row.pop("egressd_counters_after", None)
                if before and after and conns and None not in before[:1] + after[:1]:
                    packets = after[0] - before[0]
                    row["egressd_packets_per_connection"] = round(packets / conns, 3)
                    if None not in before + after:
                        replies, syn_acks = after[1] - before[1], after[2] - before[2]
                        row["client_packets_per_connection"] = round((packets - replies) / conns, 3)
                        row["server_syn_acks_per_connection"] = round(syn_acks / conns, 3)
                        row["server_other_packets_per_connection"] = round((replies - syn_acks) / conns, 3)
                if "chain_rule_evaluations" in row and conns:
                    row["chain_packets_per_connection"] = round(row.pop("chain_packets") / conns, 2)
                    row["chain_rule_evaluations_per_connection"] = round(row.pop("chain_rule_evaluations") / conns, 1)
                if "gateway_cpu_seconds" in row and conns and cfg != "unfiltered":
                    row["gateway_cpu_us_per_connection"] = round(row["gateway_cpu_seconds"] / conns * 1e6, 1)
                parts = [row.get(k) for k in ("client_cpu_seconds", "server_cpu_seconds", "gateway_cpu_seconds")]
                if conns and None not in parts:
                    row["path_cpu_us_per_connection"] = round(sum(parts) / conns * 1e6, 1)
            samples = [c for r in sorted(lat.get(proto, {}).get(cfg, {})) for c in lat[proto][cfg][r]]
            entry = {
                "conn_per_second": round(median([x["rate"] for x in rows]), 1),
                "connect_latency_ms": {
                    "p50": percentile(samples, 50),
                    "p99": percentile(samples, 99),
                    "samples": len(samples),
                    "per_round_p50": [percentile(lat[proto][cfg][r], 50) for r in sorted(lat[proto][cfg])]
                    if cfg in lat.get(proto, {}) else [],
                },
                "wrk_latency_ms": {
                    "p50": rounded(median([x.get("wrk_latency_p50_ms") for x in rows])),
                    "p99": rounded(median([x.get("wrk_latency_p99_ms") for x in rows])),
                },
                "rounds": rows,
            }
            for key in ("queued_packets_per_connection", "queued_packets_per_second",
                        "gateway_cpu_us_per_connection", "path_cpu_us_per_connection",
                        "egressd_packets_per_connection", "client_packets_per_connection",
                        "server_syn_acks_per_connection", "server_other_packets_per_connection",
                        "chain_packets_per_connection", "chain_rule_evaluations_per_connection"):
                vals = [x[key] for x in rows if key in x]
                if vals:
                    entry[key] = rounded(median(vals))
            per_cfg[cfg] = entry
        report[proto] = per_cfg

    report["bulk"] = {
        cfg: {"bytes_per_second": round(median(list(rounds.values()))),
              "rounds": [round(rounds[r]) for r in sorted(rounds)]}
        for cfg, rounds in sorted(bulk.items())
    }

    def rate(proto, cfg):
        return report.get(proto, {}).get(cfg, {}).get("conn_per_second")

    def lat_p(proto, cfg, p):
        return report.get(proto, {}).get(cfg, {}).get("connect_latency_ms", {}).get(p)

    ratios = {}
    for proto in ("http", "https"):
        ratios[f"{proto}_egressd_vs_unfiltered"] = ratio(rate(proto, "egressd"), rate(proto, "unfiltered"))
        ratios[f"{proto}_egressd_vs_squid"] = ratio(rate(proto, "egressd"), rate(proto, "squid"))
        ratios[f"{proto}_squid_vs_unfiltered"] = ratio(rate(proto, "squid"), rate(proto, "unfiltered"))
        # Same-round ratios show how much of the spread is the machine.
        eg = {x["round"]: x["rate"] for x in report.get(proto, {}).get("egressd", {}).get("rounds", [])}
        un = {x["round"]: x["rate"] for x in report.get(proto, {}).get("unfiltered", {}).get("rounds", [])}
        ratios[f"{proto}_egressd_vs_unfiltered_per_round"] = [ratio(eg[r], un[r]) for r in sorted(eg) if r in un]
        # World access (issue 19): the same run's world-access rate against
        # unfiltered and against egressd with a named rule, per round too.
        wo = {x["round"]: x["rate"] for x in report.get(proto, {}).get("egressd-world", {}).get("rounds", [])}
        if wo:
            ratios[f"{proto}_egressd_world_vs_unfiltered"] = ratio(rate(proto, "egressd-world"),
                                                                   rate(proto, "unfiltered"))
            ratios[f"{proto}_egressd_world_vs_egressd"] = ratio(rate(proto, "egressd-world"), rate(proto, "egressd"))
            ratios[f"{proto}_egressd_world_vs_unfiltered_per_round"] = [ratio(wo[r], un[r]) for r in sorted(wo)
                                                                        if r in un]
            ratios[f"{proto}_egressd_world_vs_egressd_per_round"] = [ratio(wo[r], eg[r]) for r in sorted(wo)
                                                                     if r in eg]
            # Medians of the same-round ratios: each pairs measurements a
            # few seconds apart, so slow drifts of the machine's load cancel.
            for key in ("vs_unfiltered", "vs_egressd"):
                per = [x for x in ratios[f"{proto}_egressd_world_{key}_per_round"] if x is not None]
                ratios[f"{proto}_egressd_world_{key}_median_of_rounds"] = rounded(median(per))
        # CPU-bound estimate: the rate ratio if the CPU time of the whole
        # path (client + server + gateway processes) per connection were
        # the only limit; less sensitive to other load on the machine.
        for cfg in ("egressd", "egressd-world", "squid"):
            mine = report.get(proto, {}).get(cfg, {}).get("path_cpu_us_per_connection")
            base = report.get(proto, {}).get("unfiltered", {}).get("path_cpu_us_per_connection")
            if mine is not None or cfg != "egressd-world":
                ratios[f"{proto}_{cfg.replace('-', '_')}_vs_unfiltered_cpu_estimate"] = ratio(base, mine)
        # A change against its base build, same run: per-round rate ratios
        # and their median, and the gateway CPU per connection of each.
        ba = {x["round"]: x["rate"] for x in report.get(proto, {}).get("egressd-base", {}).get("rounds", [])}
        if ba:
            per = [ratio(eg[r], ba[r]) for r in sorted(eg) if r in ba]
            ratios[f"{proto}_egressd_vs_base_per_round"] = per
            ratios[f"{proto}_egressd_vs_base_median_of_rounds"] = rounded(median(per))
            ratios[f"{proto}_egressd_base_vs_unfiltered"] = ratio(rate(proto, "egressd-base"),
                                                                 rate(proto, "unfiltered"))
            mine = report.get(proto, {}).get("egressd", {}).get("gateway_cpu_us_per_connection")
            base = report.get(proto, {}).get("egressd-base", {}).get("gateway_cpu_us_per_connection")
            ratios[f"{proto}_egressd_vs_base_gateway_cpu"] = ratio(mine, base)
        per = [x for x in ratios[f"{proto}_egressd_vs_unfiltered_per_round"] if x is not None]
        ratios[f"{proto}_egressd_vs_unfiltered_median_of_rounds"] = rounded(median(per))
    bulk_eg = report["bulk"].get("egressd", {}).get("bytes_per_second")
    bulk_un = report["bulk"].get("unfiltered", {}).get("bytes_per_second")
    ratios["bulk_egressd_vs_unfiltered"] = ratio(bulk_eg, bulk_un)
    report["ratios"] = ratios

    added = {}
    for proto in ("http", "https"):
        for cfg in ("egressd", "egressd-world", "squid"):
            for p in ("p50", "p99"):
                a, b = lat_p(proto, cfg, p), lat_p(proto, "unfiltered", p)
                if a is not None and b is not None:
                    added.setdefault(proto, {}).setdefault(cfg, {})[p] = round(a - b, 3)
    report["added_connect_latency_ms"] = added

    goals = {}
    for key, proto in (("http_conn_rate", "http"), ("https_conn_rate", "https")):
        value = ratios.get(f"{proto}_egressd_vs_unfiltered")
        goals[key] = {"goal_min": GOALS[key], "value": value,
                      "pass": value is not None and value >= GOALS[key]}
    value = ratios.get("bulk_egressd_vs_unfiltered")
    goals["bulk_throughput"] = {"goal_min": GOALS["bulk_throughput"], "value": value,
                                "pass": value is not None and value >= GOALS["bulk_throughput"]}
    closer = {}
    for key, proto in (("http_conn_rate", "http"), ("https_conn_rate", "https")):
        value = ratios.get(f"{proto}_egressd_vs_unfiltered_median_of_rounds")
        closer[key] = {"goal_min": GOALS_CLOSER[key], "value": value,
                       "pass": value is not None and value >= GOALS_CLOSER[key]}
    report["goals_issue17"] = closer
    report["goals"] = goals
    report["goals_met"] = all(g["pass"] for g in goals.values())

    # Verdicts per second per queue: bench/nfq's queue benchmark measures it
    # with a SYN flood into one queue (egressd's worker code, nfq_gateway).
    verdicts = {"source": "bench/nfq/queue_bench.sh (results/nfq_queue.json)", "measured": False}
    if args.nfq_queue and os.path.exists(args.nfq_queue):
        with open(args.nfq_queue) as f:
            q = json.load(f)
        verdicts.update(measured=True, verdicts_per_second=q.get("verdicts_per_second"),
                        kernel_queue_drops=q.get("kernel_queue_drops"),
                        file_time=time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                time.gmtime(os.path.getmtime(args.nfq_queue))))
    eg_http = report.get("http", {}).get("egressd", {})
    if "queued_packets_per_second" in eg_http:
        # What the HTTP rate run made the queue carry (not its maximum).
        verdicts["observed_during_http_rate_run_per_second"] = eg_http["queued_packets_per_second"]
        verdicts["observed_packets_per_connection"] = eg_http.get("queued_packets_per_connection")
    report["verdicts_per_queue"] = verdicts
    report["problems"] = problems
    report["ok"] = not problems

    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    os.replace(tmp, args.out)

    # A table for the console.
    print(f"gateway bench (load average at start {params.get('loadavg_start')}, "
          f"{params.get('rounds')} rounds x {params.get('seconds')} s)")
    print(f"{'':8} {'config':13} {'conn/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'pkts/conn':>9} "
          f"{'gw us/conn':>10} {'path us/conn':>12}")
    for proto in ("http", "https"):
        for cfg, e in report.get(proto, {}).items():
            lm = e["connect_latency_ms"]
            fmt = lambda v, spec: format(v, spec) if v is not None else "-".rjust(int(spec.split(".")[0]))  # noqa: E731
            print(f"{proto:8} {cfg:13} {e['conn_per_second']:9.0f} {fmt(lm['p50'], '8.2f')} "
                  f"{fmt(lm['p99'], '8.2f')} {fmt(e.get('queued_packets_per_connection'), '9.2f')} "
                  f"{fmt(e.get('gateway_cpu_us_per_connection'), '10.1f')} "
                  f"{fmt(e.get('path_cpu_us_per_connection'), '12.1f')}")
    for proto in ("http", "https"):
        for cfg, e in report.get(proto, {}).items():
            if "client_packets_per_connection" in e:
                print(f"{proto:8} {cfg:13} queued per connection: client {e['client_packets_per_connection']:.2f}, "
                      f"server SYN-ACK {e['server_syn_acks_per_connection']:.2f}, "
                      f"other server {e['server_other_packets_per_connection']:.2f}")
    for cfg, b in report["bulk"].items():
        print(f"bulk     {cfg:13} {b['bytes_per_second'] / 1e6:9.0f} MB/s")
    for key, g in goals.items():
        print(f"goal {key}: egressd/unfiltered = {g['value']} (>= {g['goal_min']}): "
              f"{'pass' if g['pass'] else 'MISSED'}")
    for key, g in closer.items():
        print(f"goal (issue 17, median of same-round ratios) {key}: {g['value']} (>= {g['goal_min']}): "
              f"{'pass' if g['pass'] else 'MISSED'}")
    for proto in ("http", "https"):
        k = f"{proto}_egressd_vs_base"
        if k + "_per_round" in ratios:
            print(f"{k}: median of rounds {ratios[k + '_median_of_rounds']} (per round {ratios[k + '_per_round']}), "
                  f"gateway CPU per connection {ratios[k + '_gateway_cpu']}x; "
                  f"base vs unfiltered {ratios[f'{proto}_egressd_base_vs_unfiltered']}")
    for key in ("http_egressd_vs_squid", "https_egressd_vs_squid", "http_egressd_vs_unfiltered_cpu_estimate",
                "https_egressd_vs_unfiltered_cpu_estimate"):
        print(f"{key}: {ratios.get(key)}")
    for proto in ("http", "https"):
        for key in ("vs_unfiltered", "vs_egressd"):
            k = f"{proto}_egressd_world_{key}"
            if k in ratios:
                print(f"{k}: {ratios[k]} (per round {ratios[k + '_per_round']}, "
                      f"median of rounds {ratios[k + '_median_of_rounds']})")
        k = f"{proto}_egressd_world_vs_unfiltered_cpu_estimate"
        if k in ratios:
            print(f"{k}: {ratios[k]}")
    for proto, cfgs in added.items():
        for cfg, v in cfgs.items():
            print(f"added connect latency {proto} {cfg}: p50 {v.get('p50')} ms, p99 {v.get('p99')} ms")
    for p in problems:
        print(f"PROBLEM: {p}", file=sys.stderr)
    if problems:
        return 1
    if args.strict == "1" and not report["goals_met"]:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

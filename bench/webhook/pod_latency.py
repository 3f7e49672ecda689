#!/usr/bin/env python3
"""Pod creation latency through kube-apiserver, with and without the
injection webhook, in the same run, measured three ways.

Same-run A/B: pods are created in a namespace the webhook is called for
and in one its namespaceSelector leaves out (egressd.io/inject=disabled),
alternating pod by pod (the order flipping every pair), so both sides see
the same API server, etcd and machine load at the same moments. Many short
rounds rather than one long one: the p50/p90/p99 of each side and their
difference are given per round (the spread says how much one round can be
trusted) and over all rounds pooled (the figure for the goal).

Three views of one webhook call:
  end to end:  the client's POST, with minus without;
  API server:  its histogram apiserver_admission_webhook_admission_duration_seconds
               for the webhook (building the AdmissionReview, the HTTPS round
               trip, decoding the answer, applying the patch), read from its
               /metrics before and after each round; fixed buckets (5 ms,
               25 ms, 100 ms, ...), so its p99 is the bucket bound it is
               under (exact) and interpolated inside it (histogram_quantile);
  webhook:     egress-controller's own GET /metrics on the webhook port:
               connections and TLS handshakes it accepted, and
               egressd_webhook_review_duration_seconds (review received to
               answer written; buckets down to 100 us).

Phases:
  sequential: ROUNDS rounds of PAIRS pairs over one kept-alive connection
              (after 20 warm-up pairs);
  concurrent: for each level C, C clients at once (each its own connection
              to the API server), together PODS pods alternating the sides.
              The API server's webhook client keeps at most 25 idle
              connections per host (client-go's transport); with more calls
              in flight than that it opens new ones and closes the extras,
              so the handshakes counted here show whether a burst pays TLS
              handshakes;
  sparse:     SPARSE pairs with the webhook idle IDLE seconds before each of
              its pods (longer than the webhook used to keep a connection).

Usage: pod_latency.py SERVER CA_FILE TOKEN NS_WITH NS_WITHOUT WEBHOOK_NAME WEBHOOK_BASE_URL
       [--rounds N] [--pairs N] [--concurrency C,C] [--concurrent-pods N] [--sparse N] [--idle S]
       [--both-injected]
compare.sh uses it with two webhooks, one per namespace (--both-injected):
then "with" is the first binary, "without" the second, and "added" the
first's extra time.
Prints one JSON object.
"""
import argparse
import http.client
import json
import re
import ssl
import sys
import threading
import time
import urllib.parse

APISERVER_METRIC = "apiserver_admission_webhook_admission_duration_seconds"
WEBHOOK_METRIC = "egressd_webhook_review_duration_seconds"


def pod(name):
    # Two containers and an init container: what a typical app pod has.
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench", "tier": "web"}},
        "spec": {
            "initContainers": [{"name": "init", "image": "busybox", "command": ["true"]}],
            "containers": [
                {"name": "app", "image": "busybox", "env": [{"name": "MODE", "value": "bench"}],
                 "ports": [{"containerPort": 8080}],
                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}},
                {"name": "sidecar", "image": "busybox"},
            ],
        },
    }


def percentile(values, p):
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(p / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def quantiles(values):
    return {"n": len(values), "p50_ms": round(percentile(values, 50), 2), "p90_ms": round(percentile(values, 90), 2),
            "p99_ms": round(percentile(values, 99), 2), "max_ms": round(max(values), 2)}


def ab_summary(with_ms, without_ms):
    out = {"with_webhook": quantiles(with_ms), "without_webhook": quantiles(without_ms)}
    for q in ("p50", "p90", "p99"):
        out["added_%s_ms" % q] = round(out["with_webhook"][q + "_ms"] - out["without_webhook"][q + "_ms"], 2)
    return out


class Https:
    """One kept-alive HTTPS connection; reconnects (and counts it) when the far end closed it."""

    def __init__(self, url, context, headers=None):
        self.url = urllib.parse.urlparse(url)
        self.context = context
        self.headers = headers or {}
        self.conn = None
        self.connections = 0

    def call(self, method, path, body=None):
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection(self.url.hostname, self.url.port, context=self.context,
                                                        timeout=30)
                self.connections += 1
            try:
                self.conn.request(method, path, body, headers)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")


def parse_histogram(text, metric, match=lambda line: True):
    """{le: cumulative count}, sum of one Prometheus histogram (label sets added up)."""
    buckets, total = {}, 0.0
    for line in text.splitlines():
        if not line.startswith(metric) or not match(line):
            continue
        value = float(line.rsplit(" ", 1)[1])
        if line.startswith(metric + "_bucket"):
            le = re.search(r'le="([^"]+)"', line).group(1)
            le = float("inf") if le == "+Inf" else float(le)
            buckets[le] = buckets.get(le, 0) + value
        elif line.startswith(metric + "_sum"):
            total += value
    return buckets, total


def counter(text, name):
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return int(float(m.group(1))) if m else 0


def histogram_delta(before, after, shares=(0.005, 0.025)):
    (b0, s0), (b1, s1) = before, after
    buckets = {le: b1.get(le, 0) - b0.get(le, 0) for le in b1}
    count = buckets.get(float("inf"), 0)
    out = {"calls": int(count)}
    if count == 0:
        return out
    out["mean_ms"] = round((s1 - s0) / count * 1000.0, 3)
    for le in shares:
        if le in buckets:
            out["share_le_%gms" % (le * 1000)] = round(buckets[le] / count, 4)
    for q in (0.5, 0.99):
        rank, lower, below = q * count, 0.0, 0.0
        for le in sorted(buckets):
            if buckets[le] >= rank:
                key = "p%d_ms" % round(q * 100)
                if le == float("inf"):
                    out[key + "_at_most"] = None
                    out[key + "_interpolated"] = round(lower * 1000.0, 3)
                else:
                    inside = buckets[le] - below
                    fraction = (rank - below) / inside if inside > 0 else 1.0
                    out[key + "_at_most"] = round(le * 1000.0, 3)
                    out[key + "_interpolated"] = round((lower + (le - lower) * fraction) * 1000.0, 3)
                break
            lower, below = le, buckets[le]
    return out


class Observer:
    """Before/after snapshots of the API server's and the webhook's metrics."""

    def __init__(self, api, webhook_url, webhook_name):
        self.api = api
        self.webhook = Https(webhook_url, ssl._create_unverified_context())  # loopback, counters only
        self.name = webhook_name

    def snapshot(self):
        status, data = self.api.call("GET", "/metrics")
        if status != 200:
            sys.exit("API server GET /metrics: HTTP %d %s" % (status, data[:200]))
        apiserver = parse_histogram(
            data.decode(), APISERVER_METRIC,
            lambda l: 'name="%s"' % self.name in l and 'type="admit"' in l and 'operation="CREATE"' in l)
        status, data = self.webhook.call("GET", "/metrics")
        if status == 404:  # a webhook from before its metrics: the API server's view only
            return {"apiserver": apiserver}
        if status != 200:
            sys.exit("webhook GET /metrics: HTTP %d %s" % (status, data[:200]))
        text = data.decode()
        return {"apiserver": apiserver, "webhook": parse_histogram(text, WEBHOOK_METRIC),
                "connections": counter(text, "egressd_webhook_connections_total"),
                "handshakes": counter(text, "egressd_webhook_tls_handshakes_total"),
                "own_connections": self.webhook.connections}

    @staticmethod
    def delta(before, after):
        out = {"apiserver_webhook_histogram": histogram_delta(before["apiserver"], after["apiserver"])}
        if "webhook" not in before:
            return out
        own = after["own_connections"] - before["own_connections"]  # this scraper's reconnections
        return {**out, "webhook_review_histogram": histogram_delta(before["webhook"], after["webhook"],
                                                            (0.0005, 0.001, 0.0025, 0.005)),
                "webhook_tls_handshakes": after["handshakes"] - before["handshakes"] - own,
                "webhook_connections": after["connections"] - before["connections"] - own}


class Creator:
    def __init__(self, api, run):
        self.api, self.run = api, run

    def create(self, ns, name):
        """Milliseconds, and whether the stored pod carries the variables."""
        start = time.perf_counter()
        status, data = self.api.call("POST", "/api/v1/namespaces/%s/pods" % ns, json.dumps(pod(name)))
        elapsed = (time.perf_counter() - start) * 1000.0
        if status != 201:
            sys.exit("pod %s/%s: HTTP %d %s" % (ns, name, status, data[:200]))
        env = json.loads(data)["spec"]["containers"][1].get("env", [])
        return elapsed, any(e["name"] == "HTTP_PROXY" for e in env)


BOTH_INJECTED = False  # --both-injected: two webhooks compared (compare.sh), both sides injected


def check_injected(phase, ns_with, with_injected, with_count, without_injected):
    if with_injected != with_count or without_injected != (with_count if BOTH_INJECTED else 0):
        sys.exit("%s: %d of %d pods in %s injected, %d in the opted-out namespace" %
                 (phase, with_injected, with_count, ns_with, without_injected))


def sequential(creator, observer, ns_with, ns_without, rounds, pairs):
    pooled = {ns_with: [], ns_without: []}
    per_round = []
    for r in range(rounds):
        times = {ns_with: [], ns_without: []}
        injected = {ns_with: 0, ns_without: 0}
        before = observer.snapshot()
        for i in range(pairs):
            order = (ns_with, ns_without) if i % 2 == 0 else (ns_without, ns_with)
            for ns in order:
                ms, has = creator.create(ns, "s%d-%s-%d" % (r, creator.run, i))
                times[ns].append(ms)
                injected[ns] += has
        check_injected("round %d" % r, ns_with, injected[ns_with], pairs, injected[ns_without])
        summary = ab_summary(times[ns_with], times[ns_without])
        summary.update(Observer.delta(before, observer.snapshot()))
        per_round.append(summary)
        for ns in pooled:
            pooled[ns].extend(times[ns])
    out = {"rounds": rounds, "pairs_per_round": pairs, "pooled": ab_summary(pooled[ns_with], pooled[ns_without]),
           "per_round": per_round}
    for key in ("added_p50_ms", "added_p90_ms", "added_p99_ms"):
        values = sorted(r[key] for r in per_round)
        out["spread_" + key] = {"min": values[0], "median": values[len(values) // 2], "max": values[-1]}
    return out


def concurrent(api_factory, run, observer, ns_with, ns_without, clients, total):
    times = {ns_with: [], ns_without: []}
    injected = {ns_with: 0, ns_without: 0}
    lock = threading.Lock()
    next_index = [0]
    errors = []

    def worker(k):
        creator = Creator(api_factory(), run)
        try:
            while True:
                with lock:
                    i = next_index[0]
                    next_index[0] += 1
                if i >= total:
                    return
                ns = ns_with if (i + k) % 2 == 0 else ns_without
                ms, has = creator.create(ns, "c%d-%s-%d" % (clients, run, i))
                with lock:
                    times[ns].append(ms)
                    injected[ns] += has
        except BaseException as e:  # noqa: BLE001 - reported after join
            errors.append(repr(e))

    before = observer.snapshot()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    if errors:
        sys.exit("concurrent %d: %s" % (clients, errors[0]))
    check_injected("concurrent %d" % clients, ns_with, injected[ns_with], len(times[ns_with]), injected[ns_without])
    out = {"clients": clients, "pods": total, "pods_per_second": round(total / wall, 1)}
    out.update(ab_summary(times[ns_with], times[ns_without]))
    out.update(Observer.delta(before, observer.snapshot()))
    return out


def sparse_phase(creator, observer, ns_with, ns_without, count, idle):
    before = observer.snapshot()
    with_ms, without_ms = [], []
    for i in range(count):
        time.sleep(idle / 2)
        without_ms.append(creator.create(ns_without, "q-%s-%d" % (creator.run, i))[0])
        time.sleep(idle / 2)
        with_ms.append(creator.create(ns_with, "q-%s-%d" % (creator.run, i))[0])
    out = {"pairs": count, "webhook_idle_s": idle, "with_webhook_ms": [round(v, 2) for v in with_ms],
           "without_webhook_ms": [round(v, 2) for v in without_ms]}
    # The webhook's idle connection may have been closed by the scraper's
    # own 10 s idle limit, never by the API server's: only handshakes count.
    out.update(Observer.delta(before, observer.snapshot()))
    return out


def main():
    parser = argparse.ArgumentParser()
    for name in ("server", "ca", "token", "ns_with", "ns_without", "webhook_name", "webhook_url"):
        parser.add_argument(name)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--concurrency", default="8,64")
    parser.add_argument("--concurrent-pods", type=int, default=400)
    parser.add_argument("--sparse", type=int, default=3)
    parser.add_argument("--idle", type=float, default=12)
    parser.add_argument("--both-injected", action="store_true",
                        help="NS_WITHOUT is injected too, by a second webhook (compare.sh)")
    args = parser.parse_args()
    global BOTH_INJECTED
    BOTH_INJECTED = args.both_injected

    context = ssl.create_default_context(cafile=args.ca)
    headers = {"Authorization": "Bearer " + args.token, "Accept": "application/json"}

    def api_factory():
        return Https(args.server, context, headers)

    api = api_factory()
    run = str(int(time.time() * 1000) % 100000000)
    creator = Creator(api, run)
    observer = Observer(api_factory(), args.webhook_url, args.webhook_name)
    for i in range(20):  # warm-up: connections, caches
        for ns in (args.ns_with, args.ns_without):
            creator.create(ns, "w-%s-%d" % (run, i))

    out = {"sequential": sequential(creator, observer, args.ns_with, args.ns_without, args.rounds, args.pairs)}
    out["concurrent"] = [
        concurrent(api_factory, run, observer, args.ns_with, args.ns_without, int(c), args.concurrent_pods)
        for c in args.concurrency.split(",") if c.strip() and int(c) > 0]
    if args.sparse > 0:
        out["sparse"] = sparse_phase(creator, observer, args.ns_with, args.ns_without, args.sparse, args.idle)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Pod creation latency through kube-apiserver, with and without the
injection webhook, in the same run, measured two ways.

End to end: pods are created alternately in a namespace the webhook is
called for and one its namespaceSelector leaves out (egressd.io/inject=
disabled), the order flipping every pair, over one kept-alive HTTPS
connection, so both sides see the same API server, etcd and machine load.
The difference of two tails is noisy on a shared machine, so also:

The API server's own histogram apiserver_admission_webhook_admission_duration_seconds
for the webhook (read from its /metrics before and after each phase): the
time of the webhook call as the API server sees it (building the
AdmissionReview, the HTTPS round trip, decoding the answer, applying the
patch), i.e. exactly what the webhook adds to admission. Its buckets are
fixed by Kubernetes (5 ms, 25 ms, 100 ms, ...), so its p99 is reported as
the bucket bound it is under (exact) and interpolated within it (as
Prometheus' histogram_quantile does).

Two phases:
  burst:  COUNT pairs back to back (after 20 warm-up pairs);
  sparse: SPARSE pairs, the webhook idle IDLE seconds between two of its
          pods (longer than the webhook used to keep an idle connection),
          the case of a cluster that creates a pod now and then.
Each phase also reports how many TLS connections the webhook accepted for
its reviews (distinct peer= address:port in its inject.review log lines): one
connection for the whole phase means no handshake on the pod path.

Usage: pod_latency.py SERVER CA_FILE TOKEN NS_WITH NS_WITHOUT COUNT SPARSE IDLE WEBHOOK CONTROLLER_LOG
Prints one JSON object.
"""
import http.client
import json
import re
import ssl
import sys
import time
import urllib.parse

METRIC = "apiserver_admission_webhook_admission_duration_seconds"


def pod(name):
    # Two containers and an init container: what a typical app pod has.
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "initContainers": [{"name": "init", "image": "busybox"}],
            "containers": [
                {"name": "app", "image": "busybox", "env": [{"name": "MODE", "value": "bench"}]},
                {"name": "sidecar", "image": "busybox"},
            ],
        },
    }


def percentile(values, p):
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(p / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


class Api:
    def __init__(self, server, ca, token):
        url = urllib.parse.urlparse(server)
        context = ssl.create_default_context(cafile=ca)
        self.conn = http.client.HTTPSConnection(url.hostname, url.port, context=context, timeout=30)
        self.headers = {"Authorization": "Bearer " + token, "Accept": "application/json"}

    def call(self, method, path, body=None):
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body, headers)
        response = self.conn.getresponse()
        return response.status, response.read()

    def histogram(self, webhook):
        """The webhook's admit/CREATE buckets: {le (float): cumulative count}, plus sum."""
        status, data = self.call("GET", "/metrics")
        if status != 200:
            sys.exit("GET /metrics: HTTP %d %s" % (status, data[:200]))
        buckets, total = {}, 0.0
        for line in data.decode().splitlines():
            if not line.startswith(METRIC) or 'name="%s"' % webhook not in line:
                continue
            if 'type="admit"' not in line or 'operation="CREATE"' not in line:
                continue
            value = float(line.rsplit(" ", 1)[1])
            if line.startswith(METRIC + "_bucket"):
                le = re.search(r'le="([^"]+)"', line).group(1)
                le = float("inf") if le == "+Inf" else float(le)
                buckets[le] = buckets.get(le, 0) + value  # rejected="false" and "true" together
            elif line.startswith(METRIC + "_sum"):
                total += value
        return buckets, total


def histogram_delta(before, after):
    (b0, s0), (b1, s1) = before, after
    buckets = {le: b1.get(le, 0) - b0.get(le, 0) for le in b1}
    count = buckets.get(float("inf"), 0)
    out = {"calls": int(count)}
    if count == 0:
        return out
    out["mean_ms"] = round((s1 - s0) / count * 1000.0, 2)
    bounds = sorted(buckets)
    for le in bounds:
        if le != float("inf") and le <= 0.1:
            out["share_le_%gms" % (le * 1000)] = round(buckets[le] / count, 4)
    # p99: the first bucket holding 99% of the calls; interpolate linearly
    # inside it (histogram_quantile).
    rank = 0.99 * count
    lower, below = 0.0, 0.0
    for le in bounds:
        if buckets[le] >= rank:
            if le == float("inf"):
                out["p99_ms_at_most"] = None
                out["p99_ms_interpolated"] = round(lower * 1000.0, 2)
            else:
                inside = buckets[le] - below
                fraction = (rank - below) / inside if inside > 0 else 1.0
                out["p99_ms_at_most"] = round(le * 1000.0, 1)
                out["p99_ms_interpolated"] = round((lower + (le - lower) * fraction) * 1000.0, 2)
            break
        lower, below = le, buckets[le]
    return out


def log_offset(path):
    with open(path, "rb") as f:
        f.seek(0, 2)
        return f.tell()


def connections_since(path, offset):
    """Distinct connections and reviews in the webhook's log after offset."""
    with open(path, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    serials = re.findall(r"event=inject\.review .*peer=(\S+)", text)
    return {"reviews": len(serials), "tls_connections": len(set(serials))}


def create(api, ns, name, times, injected):
    start = time.perf_counter()
    status, data = api.call("POST", "/api/v1/namespaces/%s/pods" % ns, json.dumps(pod(name)))
    elapsed = (time.perf_counter() - start) * 1000.0
    if status != 201:
        sys.exit("pod %s/%s: HTTP %d %s" % (ns, name, status, data[:200]))
    if times is not None:
        times[ns].append(elapsed)
        stored = json.loads(data)
        names = [e["name"] for e in stored["spec"]["containers"][1].get("env", [])]
        if "HTTP_PROXY" in names:
            injected[ns] += 1
    return elapsed


def side_summary(values, injected):
    return {
        "p50_ms": round(percentile(values, 50), 2),
        "p90_ms": round(percentile(values, 90), 2),
        "p99_ms": round(percentile(values, 99), 2),
        "max_ms": round(max(values), 2),
        "injected": injected,
    }


def main():
    server, ca, token, ns_with, ns_without, count, sparse, idle, webhook, log = sys.argv[1:11]
    count, sparse, idle = int(count), int(sparse), float(idle)
    api = Api(server, ca, token)
    run = str(int(time.time() * 1000) % 100000000)

    # Burst: warm-up pairs (not counted), then COUNT pairs.
    times = {ns_with: [], ns_without: []}
    injected = {ns_with: 0, ns_without: 0}
    warmup = 20
    for i in range(warmup):
        for ns in (ns_with, ns_without):
            create(api, ns, "w-%s-%d" % (run, i), None, None)
    offset = log_offset(log)
    before = api.histogram(webhook)
    for i in range(count):
        order = (ns_with, ns_without) if i % 2 == 0 else (ns_without, ns_with)
        for ns in order:
            create(api, ns, "b-%s-%d" % (run, i), times, injected)
    burst = {"pods_per_side": count}
    burst["apiserver_webhook_histogram"] = histogram_delta(before, api.histogram(webhook))
    burst.update(connections_since(log, offset))
    for side, ns in (("with_webhook", ns_with), ("without_webhook", ns_without)):
        burst[side] = side_summary(times[ns], injected[ns])
    burst["added_p50_ms"] = round(burst["with_webhook"]["p50_ms"] - burst["without_webhook"]["p50_ms"], 2)
    burst["added_p99_ms"] = round(burst["with_webhook"]["p99_ms"] - burst["without_webhook"]["p99_ms"], 2)
    out = {"burst": burst}

    # Sparse: the webhook idle `idle` seconds before each of its pods.
    if sparse > 0:
        offset = log_offset(log)
        before = api.histogram(webhook)
        with_ms, without_ms = [], []
        for i in range(sparse):
            time.sleep(idle / 2)
            without_ms.append(create(api, ns_without, "s-%s-%d" % (run, i), None, None))
            time.sleep(idle / 2)
            with_ms.append(create(api, ns_with, "s-%s-%d" % (run, i), None, None))
        phase = {"pods_per_side": sparse, "webhook_idle_s": idle,
                 "with_webhook_ms": [round(v, 2) for v in with_ms],
                 "without_webhook_ms": [round(v, 2) for v in without_ms]}
        phase["apiserver_webhook_histogram"] = histogram_delta(before, api.histogram(webhook))
        phase.update(connections_since(log, offset))
        out["sparse"] = phase
    print(json.dumps(out))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Pod creation latency through kube-apiserver, with and without the
injection webhook, in the same run: pods are created alternately in a
namespace the webhook is called for and one its namespaceSelector leaves
out (egressd.io/inject=disabled), over one kept-alive HTTPS connection, so
both sides see the same API server, etcd and machine load.

Usage: pod_latency.py SERVER CA_FILE TOKEN NS_WITH NS_WITHOUT COUNT
Prints one JSON object: p50/p90/p99/max per side (ms), the added p50/p99,
and how many pods of each side were stored with the proxy variables (the
check that the webhook really ran, and only where it should).
"""
import http.client
import json
import ssl
import sys
import time
import urllib.parse


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


def main():
    server, ca, token, ns_with, ns_without, count = sys.argv[1:7]
    count = int(count)
    url = urllib.parse.urlparse(server)
    context = ssl.create_default_context(cafile=ca)
    conn = http.client.HTTPSConnection(url.hostname, url.port, context=context, timeout=30)
    headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json",
               "Accept": "application/json"}
    times = {ns_with: [], ns_without: []}
    injected = {ns_with: 0, ns_without: 0}
    warmup = 20
    for i in range(count + warmup):
        order = (ns_with, ns_without) if i % 2 == 0 else (ns_without, ns_with)
        for ns in order:
            body = json.dumps(pod("p-%d" % i))
            start = time.perf_counter()
            conn.request("POST", "/api/v1/namespaces/%s/pods" % ns, body, headers)
            response = conn.getresponse()
            data = response.read()
            elapsed = (time.perf_counter() - start) * 1000.0
            if response.status != 201:
                sys.exit("pod %s/p-%d: HTTP %d %s" % (ns, i, response.status, data[:200]))
            if i < warmup:
                continue
            times[ns].append(elapsed)
            stored = json.loads(data)
            names = [e["name"] for e in stored["spec"]["containers"][1].get("env", [])]
            if "HTTP_PROXY" in names:
                injected[ns] += 1
    out = {"pods_per_side": count}
    for side, ns in (("with_webhook", ns_with), ("without_webhook", ns_without)):
        values = times[ns]
        out[side] = {
            "p50_ms": round(percentile(values, 50), 2),
            "p90_ms": round(percentile(values, 90), 2),
            "p99_ms": round(percentile(values, 99), 2),
            "max_ms": round(max(values), 2),
            "injected": injected[ns],
        }
    out["added_p50_ms"] = round(out["with_webhook"]["p50_ms"] - out["without_webhook"]["p50_ms"], 2)
    out["added_p99_ms"] = round(out["with_webhook"]["p99_ms"] - out["without_webhook"]["p99_ms"], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

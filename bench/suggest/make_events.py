#!/usr/bin/env python3
"""Writes N decision events (egressctl watch --json lines) to stdout for
the suggest benchmark: an audit run of a busy cluster, 20 namespaces of 5
workloads each, 3,000 distinct names under 400 registrable domains on 4
ports, 200 destinations without a name, and one DNS query for every four
connections. Deterministic (fixed seed). Usage: make_events.py N
"""
import random
import sys

count = int(sys.argv[1])
random.seed(1)
namespaces = ["team-%02d" % i for i in range(20)]
workloads = [("Deployment/app-%d" % i) for i in range(4)] + ["StatefulSet/db"]
domains = ["domain%03d.example%s" % (i, [".com", ".co.uk", ".io", ".net"][i % 4]) for i in range(400)]
names = ["svc%d.%s" % (i, domains[i % len(domains)]) for i in range(3000)]
ports = [443, 443, 443, 80, 8443, 5432]
addresses = ["198.51.100.%d" % (i % 250 + 1) if i < 150 else "2001:db8::%x" % i for i in range(200)]
verdicts = ["audit"] * 8 + ["allow", "deny"]
out = sys.stdout
line_prefix = '{"dport":%d,"dst":"%s","kind":"verdict","match":"","name":"%s","name_from":"%s","namespace":"%s",' \
              '"pod":"%s-0","proto":"tcp","queue":0,"reason":"sni_not_allowed","rulesets":[],' \
              '"service_account":"default","sport":%d,"src":"10.42.%d.%d","time":"2026-12-01T%02d:%02d:%02d.%06dZ",' \
              '"verdict":"%s","workload":"%s"}\n'
dns_line = '{"answers":1,"dport":53,"dst":"10.42.0.10","kind":"dns","match":"","name":"%s","name_from":"",' \
           '"namespace":"%s","outcome":"allowed","pod":"%s-0","proto":"udp","qtype":"A","rcode":"NOERROR",' \
           '"reason":"not_allowed","rulesets":[],"service_account":"default","sport":%d,"src":"10.42.%d.%d",' \
           '"time":"2026-12-01T%02d:%02d:%02d.%06dZ","verdict":"audit","workload":"%s"}\n'
buf = []
for i in range(count):
    ns_index = random.randrange(20)
    ns = namespaces[ns_index]
    workload = random.choice(workloads)
    pod = workload.split("/")[1]
    seconds = i * 3600 // count
    t = (9 + seconds // 3600, seconds // 60 % 60, seconds % 60, random.randrange(1000000))
    src = (ns_index, random.randrange(1, 250))
    if i % 5 == 4:
        buf.append(dns_line % ((random.choice(names), ns, pod, random.randrange(30000, 60000)) + src + t + (workload,)))
    elif i % 50 == 7:
        buf.append(line_prefix % ((random.choice(ports), random.choice(addresses), "", "", ns, pod,
                                   random.randrange(30000, 60000)) + src + t + (random.choice(verdicts), workload)))
    else:
        # A skewed mix: a few names are busy, most are rare.
        name = names[min(int(random.paretovariate(1.2)) - 1, len(names) - 1) * 7 % len(names)] \
            if random.random() < 0.7 else random.choice(names)
        port = ports[hash(name) % len(ports)] if random.random() < 0.9 else random.choice(ports)
        buf.append(line_prefix % ((port, "203.0.113.%d" % (i % 200 + 1), name, "sni", ns, pod,
                                   random.randrange(30000, 60000)) + src + t + (random.choice(verdicts), workload)))
    if len(buf) >= 10000:
        out.write("".join(buf))
        buf = []
out.write("".join(buf))

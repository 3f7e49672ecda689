// Command coredns is the cluster DNS of tests/k8s/cluster.sh: CoreDNS at
// COREDNS_VERSION (versions.env) with only the plugins the Corefile in
// tests/k8s/cluster/coredns.yaml uses, plus `log` for debugging.
//
// Upstream's main package imports every plugin (route53, azure, clouddns,
// ... with whole cloud SDKs), which makes a cold build take about 20
// minutes on 2 cores. This is CoreDNS's documented way to build a smaller
// server: set the directive list and import just those plugins.
//
// Adding a plugin: add its name to directives (at its place in upstream's
// plugin.cfg, which fixes the execution order) and blank-import its
// package, then run tests/k8s/gen-gomod.sh (build.sh also does that, and
// rebuilds the binary, when this file changes).
package main

import (
	"fmt"
	"os"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

// directives is the subset of upstream's plugin.cfg, in its order (the
// order plugins see a query, whatever the order in the Corefile).
// `prometheus` is the directive of package plugin/metrics.
var directives = []string{
	"reload",
	"ready",
	"health",
	"prometheus",
	"errors",
	"log",
	"loadbalance",
	"cache",
	"kubernetes",
	"loop",
	"forward",
}

func main() {
	if err := dnsserver.SetDirectives(directives); err != nil {
		fmt.Fprintf(os.Stderr, "coredns: directive list in main.go: %v\n", err)
		os.Exit(1)
	}
	coremain.Run()
}

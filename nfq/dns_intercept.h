// Taking over a Service address for DNS on one node (dns.intercept): pods
// keep sending their queries to the kube-dns ClusterIP, and on a node whose
// egressd listens on that address they reach egressd instead of kube-proxy's
// DNAT to CoreDNS. No kubelet change (docs/deploy.md "Node-local DNS wiring").
//
// The address is local on the node (the DaemonSet's init container puts it
// on a dummy interface or on lo). The rules, per family, in egressd's own
// chains (docs/deploy.md has the reasoning and the rejected designs):
//
//   raw PREROUTING -> EGRESSD-DNS
//     from the address to the address, dport  DROP     (loop guard: only the
//                                                      node sends from it, and
//                                                      only when nothing DNATs it)
//     to the address, dport, -m socket         CT --notrack  (udp, tcp)
//   raw OUTPUT -> EGRESSD-DNS-OUT
//     from the address, sport                  CT --notrack  (egressd's answers)
//   nat POSTROUTING -> EGRESSD-DNS-SNAT
//     from the address, DNATed from it          MASQUERADE (a node process, e.g.
//                                                      egressd forwarding a cluster
//                                                      name, reaches CoreDNS with the
//                                                      node's address as source)
//
// `-m socket` (xt_socket, without --nowildcard: a socket bound to exactly the
// address, never a wildcard listener) makes the take-over last exactly as
// long as egressd's socket: while egressd is stopped, restarting or killed,
// no socket matches, the query is tracked, kube-proxy DNATs it and CoreDNS
// answers (cluster names keep resolving). The raw table runs before
// conntrack, so no conntrack entry outlives a switch in either direction,
// and kube-proxy never touches it, so there is no ordering race. The rules
// therefore stay in place when egressd stops; only removeDnsIntercept()
// (egressd --uninstall, or a start with dns.intercept empty) removes them.
//
// Host processes (OUTPUT) are not taken over: xt_socket cannot be used in
// OUTPUT, and an unconditional NOTRACK there would cut the node off DNS
// while egressd is down. hostNetwork pods resolve through CoreDNS, as the
// host's own traffic is not judged either.
//
// Thread-safety: pure functions; apply/remove run external programs, from
// one thread (start-up, uninstall).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/socket_address.h"
#include "nfq/ruleset.h"

namespace nfq {

struct DnsInterceptOptions {
  std::vector<common::SocketAddress> addresses;  // dns.intercept
  std::string chain = "EGRESSD-DNS";             // raw PREROUTING; "-OUT", "-SNAT" for the others
};

// The two tables egressd writes to (each its own iptables-restore input).
enum class InterceptTable : uint8_t { Raw, Nat };

// The rules of each chain for `family` exactly as iptables-save prints them
// ("-A CHAIN ..."), raw table then nat table. Addresses of the other family
// are skipped; no address of the family gives no rule.
std::vector<std::string> renderInterceptRules(const DnsInterceptOptions& options, IpTablesFamily family,
                                              InterceptTable table);

// The `iptables-restore --noflush` input for `table` that creates (or
// flushes and refills) the chains and adds each missing jump (first in the
// hook) given the current `iptables-save -t <table>` text; removes them all
// when the family has no address.
std::string renderInterceptApply(const DnsInterceptOptions& options, IpTablesFamily family,
                                 InterceptTable table, std::string_view currentSave);
// The input that removes the jumps and the chains found in `currentSave`;
// empty when there is nothing to remove.
std::string renderInterceptRemove(const DnsInterceptOptions& options, InterceptTable table,
                                  std::string_view currentSave);

// Installs (idempotently) for both families and both tables; a family with
// no address gets its chains removed. Stops at the first failure, naming
// the program and its stderr.
CommandResult applyDnsIntercept(const DnsInterceptOptions& options);
// Removes the jumps and chains (both families, both tables); missing ones
// are fine.
CommandResult removeDnsIntercept(const DnsInterceptOptions& options);

}  // namespace nfq

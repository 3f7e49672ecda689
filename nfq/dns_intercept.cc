#include "nfq/dns_intercept.h"

#include <array>
#include <initializer_list>

namespace nfq {
namespace {

struct ChainHook {
  const char* table;  // "raw", "nat"
  const char* hook;   // PREROUTING, OUTPUT, POSTROUTING
  std::string chain;
};

std::vector<ChainHook> chainsOf(const DnsInterceptOptions& options, InterceptTable table) {
  if (table == InterceptTable::Raw) {
    return {{"raw", "PREROUTING", options.chain}, {"raw", "OUTPUT", options.chain + "-OUT"}};
  }
  return {{"nat", "POSTROUTING", options.chain + "-SNAT"}};
}

bool sameFamily(const common::SocketAddress& address, IpTablesFamily family) {
  return (address.ip.family == common::IpFamily::V4) == (family == IpTablesFamily::V4);
}

std::string hostPrefix(const common::SocketAddress& address) {
  return address.ip.toString() + (address.ip.family == common::IpFamily::V4 ? "/32" : "/128");
}

std::vector<std::string_view> splitLines(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    out.push_back(text.substr(0, end));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return out;
}

// Jump lines ("-A HOOK ... -j CHAIN") in `save`, as "-D HOOK ..." lines.
std::string deleteJumps(std::string_view save, const char* hook, const std::string& chain) {
  std::string out;
  const std::string prefix = std::string("-A ") + hook + " ";
  const std::string target = " -j " + chain;
  for (std::string_view line : splitLines(save)) {
    if (line.substr(0, prefix.size()) != prefix) continue;
    if (line.size() < target.size() || line.substr(line.size() - target.size()) != target) continue;
    out += "-D" + std::string(line.substr(2)) + "\n";
  }
  return out;
}

// One rule from its words, joined by single spaces (as iptables-save prints).
std::string rule(std::initializer_list<std::string_view> words) {
  std::string out;
  for (std::string_view word : words) {
    if (!out.empty()) out += ' ';
    out += word;
  }
  return out;
}

bool hasAddress(const DnsInterceptOptions& options, IpTablesFamily family) {
  for (const common::SocketAddress& address : options.addresses) {
    if (sameFamily(address, family)) return true;
  }
  return false;
}

}  // namespace

std::vector<std::string> renderInterceptRules(const DnsInterceptOptions& options, IpTablesFamily family,
                                              InterceptTable table) {
  std::vector<std::string> rules;
  const std::vector<ChainHook> chains = chainsOf(options, table);
  for (const common::SocketAddress& address : options.addresses) {
    if (!sameFamily(address, family)) continue;
    const std::string host = hostPrefix(address);
    const std::string port = std::to_string(address.port);
    if (table == InterceptTable::Raw) {
      // Loop guard first: a query from the address to itself is the node
      // talking to its own listener because nothing translated the Service
      // address (egressd forwarding a cluster name to it without kube-proxy).
      for (const char* proto : {"udp", "tcp"}) {
        rules.push_back(rule({"-A", chains[0].chain, "-s", host, "-d", host, "-p", proto, "-m", proto,
                              "--dport", port, "-j DROP"}));
      }
      for (const char* proto : {"udp", "tcp"}) {
        rules.push_back(rule({"-A", chains[0].chain, "-d", host, "-p", proto, "-m", proto, "--dport", port,
                              "-m socket -j CT --notrack"}));
      }
    }
  }
  // The OUTPUT and POSTROUTING rules after all PREROUTING ones, so the list
  // reads chain by chain as iptables-save prints it.
  for (const common::SocketAddress& address : options.addresses) {
    if (!sameFamily(address, family)) continue;
    const std::string host = hostPrefix(address);
    const std::string port = std::to_string(address.port);
    if (table == InterceptTable::Raw) {
      // egressd's answers: untracked like the queries, so no conntrack
      // entry (original direction address -> pod) is left to catch the
      // pod's next query from the same port once egressd is gone.
      for (const char* proto : {"udp", "tcp"}) {
        rules.push_back(rule({"-A", chains[1].chain, "-s", host, "-p", proto, "-m", proto, "--sport", port,
                              "-j CT --notrack"}));
      }
    } else {
      // The address is local, so a node process asking it picks it as its
      // source; kube-proxy DNATs the query to a CoreDNS pod, whose answer
      // would go to the address, which is local on every node running
      // egressd, so on another node it would never come back. iptables-save
      // prints --ctorigdst without the prefix length.
      rules.push_back(rule({"-A", chains[0].chain, "-s", host, "-m conntrack --ctstate DNAT --ctorigdst",
                            address.ip.toString(), "-j MASQUERADE"}));
    }
  }
  return rules;
}

std::string renderInterceptApply(const DnsInterceptOptions& options, IpTablesFamily family,
                                 InterceptTable table, std::string_view currentSave) {
  if (!hasAddress(options, family)) return renderInterceptRemove(options, table, currentSave);
  const std::vector<ChainHook> chains = chainsOf(options, table);
  std::string out = std::string("*") + chains[0].table + "\n";
  // Under --noflush, declaring a user chain creates or flushes it: the
  // refill replaces an earlier egressd's rules in one COMMIT.
  for (const ChainHook& c : chains) out += ":" + c.chain + " - [0:0]\n";
  for (const std::string& rule : renderInterceptRules(options, family, table)) out += rule + "\n";
  for (const ChainHook& c : chains) {
    if (countJumps(currentSave, c.hook, c.chain) == 0) {
      // First in the hook: in raw, ahead of anything that could mark or
      // drop the query; in nat POSTROUTING order does not matter (the
      // first NAT binding wins, and kube-proxy's own masquerade is as good).
      out += std::string("-I ") + c.hook + " 1 -m comment --comment egressd -j " + c.chain + "\n";
    }
  }
  out += "COMMIT\n";
  return out;
}

std::string renderInterceptRemove(const DnsInterceptOptions& options, InterceptTable table,
                                  std::string_view currentSave) {
  std::string body;
  const std::vector<ChainHook> chains = chainsOf(options, table);
  for (const ChainHook& c : chains) body += deleteJumps(currentSave, c.hook, c.chain);
  for (const ChainHook& c : chains) {
    if (chainExists(currentSave, c.chain)) body += "-F " + c.chain + "\n";
  }
  for (const ChainHook& c : chains) {
    if (chainExists(currentSave, c.chain)) body += "-X " + c.chain + "\n";
  }
  if (body.empty()) return {};
  return std::string("*") + chains[0].table + "\n" + body + "COMMIT\n";
}

namespace {

CommandResult forEachTable(const DnsInterceptOptions& options, bool apply) {
  for (const IpTablesFamily family : {IpTablesFamily::V4, IpTablesFamily::V6}) {
    const std::string prefix = family == IpTablesFamily::V4 ? "iptables" : "ip6tables";
    for (const auto& [table, name] : std::array<std::pair<InterceptTable, const char*>, 2>{
             {{InterceptTable::Raw, "raw"}, {InterceptTable::Nat, "nat"}}}) {
      CommandResult save = runCommand({prefix + "-save", "-t", name});
      if (!save.ok) {
        // Removing from a family the node does not have is nothing to do
        // (an IPv4-only node without ip6tables' tables).
        if (!apply || !hasAddress(options, family)) continue;
        save.error = prefix + "-save -t " + name + ": " + save.error;
        return save;
      }
      const std::string input = apply ? renderInterceptApply(options, family, table, save.output)
                                      : renderInterceptRemove(options, table, save.output);
      if (input.empty()) continue;
      CommandResult restore = runCommand({prefix + "-restore", "--noflush"}, input);
      if (!restore.ok) {
        restore.error = prefix + "-restore (" + name + " table): " + restore.error;
        return restore;
      }
    }
  }
  return {true, {}, {}};
}

}  // namespace

CommandResult applyDnsIntercept(const DnsInterceptOptions& options) {
  return forEachTable(options, true);
}

CommandResult removeDnsIntercept(const DnsInterceptOptions& options) {
  return forEachTable(options, false);
}

}  // namespace nfq

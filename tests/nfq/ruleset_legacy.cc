// The chain layout before issue 17's dispatch to EGRESSD-NEW (main at
// 6b936a9), kept (its comments dropped) as the reference the outcome-equivalence test
// (ruleset_equivalence_test.cc) compares nfq::renderChainRules against.
// Not product code: never installed, never changed.
#include "tests/nfq/ruleset_legacy.h"

#include <cstdio>

namespace nfqtest {
namespace {

std::string hex(uint32_t value) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "0x%x", value);
  return buffer;
}

std::string markMatch(const char* module, uint32_t value, uint32_t mask) {
  return std::string("-m ") + module + " --mark " + hex(value) + "/" + hex(mask);
}

}  // namespace

std::vector<std::string> legacyChainRules(const nfq::RulesetOptions& options, nfq::IpTablesFamily family) {
  using nfq::IpTablesFamily;
  using nfq::MarkScheme;
  using nfq::NoPayloadTests;
  const auto replyChainName = [](const nfq::RulesetOptions& o) { return o.chain + "-REPLY"; };
  const auto verdictChainName = [](const nfq::RulesetOptions& o) { return o.chain + "-VERDICT"; };
  const bool v4 = family == IpTablesFamily::V4;
  const MarkScheme& m = options.marks;
  const std::string a = "-A " + options.chain + " ";
  const std::string icmp = v4 ? "-p icmp" : "-p ipv6-icmp";
  std::vector<std::string> rules;
  std::vector<std::string> replyRules;  // <chain>-REPLY's, after the chain's own
  rules.push_back(a + markMatch("connmark", m.allow, m.mask) + " -j RETURN");
  rules.push_back(a + markMatch("mark", m.bypass, m.mask) + " -j RETURN");
  const std::string save = " -j CONNMARK --save-mark --nfmask " + hex(m.mask) + " --ctmask " + hex(m.mask);
  const std::string queue = options.queueLast > options.queueFirst
                                ? "-j NFQUEUE --queue-balance " + std::to_string(options.queueFirst) + ":" +
                                      std::to_string(options.queueLast)
                                : "-j NFQUEUE --queue-num " + std::to_string(options.queueFirst);
  if (!options.confirmFirstPayload) {
    rules.push_back(a + "-m conntrack --ctdir REPLY -j RETURN");  // only client→server is judged
  } else {
    const std::string replyChain = replyChainName(options);
    rules.push_back(a + "-m conntrack --ctdir REPLY -g " + replyChain);
    const std::string r = "-A " + replyChain + " ";
    const char* suffix = v4 ? "4" : "6";
    if (!options.kernelGuardDir.empty()) {
      replyRules.push_back(r + "-p tcp " + markMatch("connmark", m.confirm, m.mask) + " " +
                           markMatch("mark", 0, m.mask) + " -m bpf --object-pinned " +
                           options.kernelGuardDir + "/confirm" + suffix + " -j MARK --set-xmark " +
                           hex(m.allow) + "/" + hex(m.mask));
    }
    replyRules.push_back(r + markMatch("mark", m.allow, m.mask) + save);
    replyRules.push_back(r + "-m mark ! --mark 0x0/" + hex(m.mask) + " -j RETURN");
    const std::string setReply = " -j MARK --set-xmark " + hex(m.reply) + "/" + hex(m.mask);
    replyRules.push_back(r + "-p tcp " + markMatch("connmark", m.confirm, m.mask) + setReply);
    for (const common::IpNetwork& network : options.protectedCidrs) {
      if ((network.address.family == common::IpFamily::V4) != v4) continue;
      replyRules.push_back(r + "-m conntrack --ctorigdst " + network.toString() + " -j RETURN");
    }
    const std::string synAck =
        r + "-p tcp -m tcp --tcp-flags SYN,RST,ACK SYN,ACK " + markMatch("connmark", 0, m.mask);
    if (!options.kernelGuardDir.empty()) {
      replyRules.push_back(synAck + " -m bpf --object-pinned " + options.kernelGuardDir + "/synack" + suffix +
                           " -j RETURN");
    }
    replyRules.push_back(synAck + setReply);
    replyRules.push_back(r + markMatch("mark", m.reply, m.mask) + " " + queue);
  }
  rules.push_back(a + icmp + " -m conntrack --ctstate RELATED -j RETURN");
  for (const common::IpNetwork& network : options.protectedCidrs) {
    if ((network.address.family == common::IpFamily::V4) != v4) continue;
    rules.push_back(a + "-d " + network.toString() + " -j RETURN");
  }
  const std::string verdictChain = verdictChainName(options);
  rules.push_back(a + "-m mark ! --mark 0x0/" + hex(m.mask) + " -g " + verdictChain);
  const std::string v = "-A " + verdictChain + " ";
  std::vector<std::string> verdictRules;
  verdictRules.push_back(v + markMatch("mark", m.allow, m.mask) + save);
  verdictRules.push_back(v + markMatch("mark", m.allow, m.mask) + " -j RETURN");
  if (options.confirmFirstPayload) {
    verdictRules.push_back(v + markMatch("mark", m.confirm, m.mask) + save);
    verdictRules.push_back(v + markMatch("mark", m.confirm, m.mask) + " -j RETURN");
  }
  verdictRules.push_back(v + markMatch("mark", m.deny, m.mask) + save);
  verdictRules.push_back(v + markMatch("mark", m.pass, m.mask) + " -j RETURN");
  const auto rejectDenied = [&](const std::string& chain, std::vector<std::string>& into) {
    into.push_back(chain + "-p tcp " + markMatch("connmark", m.deny, m.mask) +
                   " -j REJECT --reject-with tcp-reset");
    into.push_back(chain + "-p udp " + markMatch("connmark", m.deny, m.mask) + " -j REJECT --reject-with " +
                   (v4 ? "icmp-port-unreachable" : "icmp6-port-unreachable"));
    into.push_back(chain + markMatch("connmark", m.deny, m.mask) + " -j DROP");
  };
  rejectDenied(v, verdictRules);
  verdictRules.push_back(v + markMatch("mark", m.deny, m.mask) + " -j DROP");
  verdictRules.push_back(v + queue);
  rejectDenied(a, rules);
  rules.push_back(a + icmp + (v4 ? " -m icmp --icmp-type 8" : " -m icmp6 --icmpv6-type 128") + " -j DROP");
  const std::string set = boundSetName(options, family);
  if (options.kernelFastPath && !set.empty()) {
    const NoPayloadTests empty = noPayloadTests(family);
    const std::string noPayload =
        " -m u32 --u32 \"" + empty.shape + "\" -m u32 ! --u32 \"" + empty.payloadWord + "\"";
    rules.push_back(a + "-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN" + noPayload + " -m set --match-set " +
                    set + " dst,dst -j RETURN");
    rules.push_back(a + "-p tcp -m tcp --tcp-flags SYN NONE -m conntrack --ctstate ESTABLISHED" + noPayload +
                    " -j RETURN");
  }
  if (options.kernelVerdict && !options.kernelGuardDir.empty()) {
    rules.push_back(a + "-p tcp " + markMatch("connmark", 0, m.mask) + " " + markMatch("mark", 0, m.mask) +
                    " -m bpf --object-pinned " + options.kernelGuardDir + "/verdict" + (v4 ? "4" : "6") +
                    " -j MARK --set-xmark " + hex(m.confirm) + "/" + hex(m.mask));
    rules.push_back(a + markMatch("mark", m.confirm, m.mask) + " -g " + verdictChainName(options));
  }
  rules.push_back(a + queue);
  rules.insert(rules.end(), verdictRules.begin(), verdictRules.end());
  rules.insert(rules.end(), replyRules.begin(), replyRules.end());
  return rules;
}

}  // namespace nfqtest

// egressd's own iptables/ip6tables chain: what diverts new outbound flows
// to NFQUEUE, and what lets decided connections pass in the kernel.
//
// Pure part: render the `iptables-restore --noflush` input that installs or
// removes the chain, given the current `iptables-save -t filter` text (so
// applying twice adds no second jump, and removal touches nothing else).
// I/O part (applyRuleset/removeRuleset): runs iptables-save and
// iptables-restore (the nf_tables backend; the xtables NFQUEUE target works
// on kernels without nftables' native `queue` expression).
//
// The chain (docs/nfq.md "Chain layout"), in order:
//   bypass mark (egressd's own sockets)     RETURN
//   reply direction                          RETURN  (only client→server is judged)
//   ICMP related to a connection             RETURN
//   protected/cluster destinations           RETURN
//   connmark ALLOW                           RETURN  (the kernel fast path)
//   connmark DENY                            REJECT tcp-reset / port unreachable / DROP
//   packet mark ALLOW|DENY from a verdict    CONNMARK --save-mark, then as above
//   packet mark PASS from a verdict          RETURN  (undecided; next packet queued again)
//   ICMP echo request                        DROP
//   everything else                          NFQUEUE --queue-balance a:b, no --queue-bypass
// No --queue-bypass: with no egressd reading the queue, new flows are
// dropped (fail-closed); decided connections keep their connmark.
//
// Thread-safety: pure functions; the I/O functions run external programs
// and should be called from one thread (start-up, uninstall).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip_address.h"

namespace nfq {

// The verdict marks. The queue worker sets them on the packet (keeping the
// bits outside `mask`) and repeats it through the chain, which saves ALLOW
// and DENY into the connection mark. Bits outside the mask belong to others
// (kube-proxy uses 0x4000/0x8000, Calico the upper 16 bits by default).
struct MarkScheme {
  uint32_t mask = 0x00700000;
  uint32_t allow = 0x00100000;
  uint32_t deny = 0x00200000;
  uint32_t pass = 0x00300000;
  uint32_t bypass = 0x00400000;  // SO_MARK on egressd's own upstream sockets
};

enum class IpTablesFamily : uint8_t { V4, V6 };

struct RulesetOptions {
  std::string chain = "EGRESSD";
  bool hookForward = true;                        // pod traffic through the node / gateway
  bool hookOutput = false;                        // the host's own processes (tests, gateway-local clients)
  std::vector<common::IpNetwork> protectedCidrs;  // never diverted
  uint16_t queueFirst = 0;
  uint16_t queueLast = 0;  // == queueFirst: --queue-num
  MarkScheme marks;
};

// The `*filter ... COMMIT` input that creates (or flushes and refills) the
// chain and adds each configured hook's jump unless `currentSave` (the
// output of `iptables-save -t filter`) already has it. Protected CIDRs of
// the other family are skipped.
std::string renderApply(const RulesetOptions& options, IpTablesFamily family, std::string_view currentSave);

// The input that removes the jumps found in `currentSave` (all hooks, also
// ones no longer configured) and then the chain. Empty when there is
// nothing to remove.
std::string renderRemove(const RulesetOptions& options, IpTablesFamily family, std::string_view currentSave);

// The chain's rules exactly as iptables-save prints them ("-A CHAIN ..."),
// for comparing with what is installed.
std::vector<std::string> renderChainRules(const RulesetOptions& options, IpTablesFamily family);

// Lines of `save` that append to `chain` ("-A <chain> ...").
std::vector<std::string> savedRules(std::string_view save, std::string_view chain);
bool chainExists(std::string_view save, std::string_view chain);
// Jump rules from `hook` (FORWARD, OUTPUT) to `chain`.
size_t countJumps(std::string_view save, std::string_view hook, std::string_view chain);

struct CommandResult {
  bool ok = false;
  std::string output;  // stdout
  std::string error;   // stderr, or why the program could not run
};

// Runs argv[0] (searched in PATH) with `input` on stdin; waits for it.
CommandResult runCommand(const std::vector<std::string>& argv, std::string_view input = {});

// Installs (idempotently) for both families; stops at the first failure,
// whose message names the program and its stderr.
CommandResult applyRuleset(const RulesetOptions& options);
// Removes the jumps and the chain for both families; missing ones are fine.
CommandResult removeRuleset(const RulesetOptions& options);

}  // namespace nfq

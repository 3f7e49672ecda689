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
// The chains (docs/nfq.md "Chain layout"), in order:
//   connmark ALLOW                           RETURN  (the kernel fast path: decided
//                                                     connections, both directions)
//   reply direction                          RETURN; with the insertion guard
//                                            (confirmFirstPayload) goto <chain>-REPLY:
//     undecided, unmarked                      goto <chain>-REPLY-NEW:
//       protected/cluster destinations           RETURN
//       (kernel guard) SYN-ACK                   RETURN when the program recorded
//                                                where the stream starts
//       SYN-ACK                                  mark REPLY, NFQUEUE
//       anything else                            RETURN (the end of the chain)
//     (kernel guard) reply of a CONFIRM      mark ALLOW (saved below) when the
//       connection, unmarked                   program says it confirms
//     reply with a verdict mark              ALLOW saved; RETURN
//     any reply of a CONFIRM connection      mark REPLY, NFQUEUE (did the server
//       (not to a protected destination)       acknowledge the judged bytes?)
//     anything else                          RETURN (the end of <chain>-REPLY)
//   undecided (connmark 0), unmarked         goto <chain>-NEW (SYN, handshake ACK,
//                                            first payload of a new connection):
//     protected/cluster destinations           RETURN
//     (kernel fast path, as below)             RETURN
//     (kernel verdict, when enabled) TCP       mark CONFIRM, saved, RETURN (a
//       the program allows (a first payload      provisional allow; the worker
//       naming a bound allowed name)             adopts the program's ring record)
//     ICMP related to a connection             RETURN
//     ICMP echo request                        DROP
//     everything else                          NFQUEUE
//   (the rest: denied and CONFIRM connections, marked and untracked packets)
//   ICMP related to a connection             RETURN
//   protected/cluster destinations           RETURN
//   a mark (any but 0)                       goto <chain>-VERDICT:
//     packet mark ALLOW                        CONNMARK --save-mark, RETURN
//     packet mark CONFIRM                      CONNMARK --save-mark, RETURN (allowed
//                                              until the server confirms; payload
//                                              segments still queued)
//     packet mark DENY                         CONNMARK --save-mark, then as below
//     packet mark PASS                         RETURN  (undecided; next packet queued again)
//     bypass mark (egressd's own sockets)      RETURN
//     connmark DENY                            REJECT tcp-reset / port unreachable / DROP
//     packet mark DENY without a connection    DROP (conntrack INVALID)
//     any other mark                           NFQUEUE (judged, never passed)
//   connmark DENY                            REJECT tcp-reset / port unreachable / DROP
//   ICMP echo request                        DROP
//   (kernel fast path, when enabled; both carry no payload byte)
//   SYN to a DNS-bound (address, tcp port)   RETURN  (ipset <chain>-bound4/6; no mark:
//                                                     the first payload is still queued)
//   payload-less non-SYN of an ESTABLISHED   RETURN  (handshake ACK, FIN, RST; the
//     connection not yet decided                      client's pure ACKs while CONFIRM)
//   everything else                          NFQUEUE --queue-balance a:b, no --queue-bypass
// Every packet ends as it did before the -NEW chains (same target, packet
// mark and connection mark; tests/nfq/ruleset_equivalence_test.cc): a goto
// takes a packet to the rules that can match it, in their former order.
// No --queue-bypass: with no egressd reading the queue, new flows are
// dropped (fail-closed); decided connections keep their connmark.
// The fast-path rules only ever pass segments without a single payload
// byte (docs/nfq.md "Kernel fast path" has the reasoning), so every byte
// a client sends is still judged in user space before it leaves.
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
  // An allow waiting for the server to acknowledge the judged bytes
  // (nfq/insertion_guard.h): client segments with payload are still queued.
  uint32_t confirm = 0x00500000;
  // Set by the chain on the server packets it queues (SYN-ACKs of undecided
  // connections, replies of CONFIRM connections): the worker knows they
  // came through the reply rules, not from a client.
  uint32_t reply = 0x00600000;
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
  // The kernel fast path: SYNs to DNS-bound (address, port) pairs and
  // payload-less handshake segments pass without user space. Needs the
  // ipsets (created by applyRuleset, filled by the daemon, nfq/ipset.h).
  bool kernelFastPath = false;
  uint32_t boundSetMaxElements = 131072;  // per family; a full set sends SYNs to user space
  // The insertion guard (nfq/insertion_guard.h): queue the server's
  // SYN-ACK of undecided TCP connections and the replies of connections
  // waiting for confirmation (CONFIRM), and save the worker's verdict on
  // them. With hookOutput, replies to local clients come in through INPUT:
  // a jump for the reply direction is added there.
  bool confirmFirstPayload = false;
  // The kernel guard (nfq/kernel_guard.h), with confirmFirstPayload: the
  // directory its programs are pinned in. Empty: off (every SYN-ACK and
  // confirmation is queued). With it, an undecided SYN-ACK whose start the
  // program recorded passes, and a CONFIRM connection's server packet the
  // program finds confirming gets ALLOW (saved); the rest is queued.
  std::string kernelGuardDir;
  // The kernel verdict (nfq/kernel_verdict.h), with kernelGuardDir: its
  // programs are pinned there too (verdict4/verdict6). Right before
  // <chain>-NEW's queueing rules, an undecided client packet the program
  // allows is marked CONFIRM and saved (a provisional allow, as from user
  // space); the rest is queued.
  bool kernelVerdict = false;
};

// "<chain>-bound4" / "<chain>-bound6": the hash:ip,port sets of DNS-bound
// destinations. Empty when the name would exceed ipset's 31 characters.
std::string boundSetName(const RulesetOptions& options, IpTablesFamily family);

// The two u32 tests that together say "this TCP segment carries no payload
// byte" (docs/nfq.md), exactly as iptables-save prints them: `shape` must
// match (lengths a multiple of 4, not a fragment, TCP right after the
// IPv6 header) and `payloadWord` must NOT match (no 4 bytes after the TCP
// header). Exposed for the table tests.
struct NoPayloadTests {
  std::string shape;
  std::string payloadWord;
};
NoPayloadTests noPayloadTests(IpTablesFamily family);

// The `*filter ... COMMIT` input that creates (or flushes and refills) the
// chain and adds each configured hook's jump unless `currentSave` (the
// output of `iptables-save -t filter`) already has it. Protected CIDRs of
// the other family are skipped.
std::string renderApply(const RulesetOptions& options, IpTablesFamily family, std::string_view currentSave);

// The input that removes the jumps found in `currentSave` (all hooks, also
// ones no longer configured) and then egressd's chains (<chain>, -NEW,
// -VERDICT, -REPLY, -REPLY-NEW: whichever exist, so also an older
// layout's). Empty when there is nothing to remove.
std::string renderRemove(const RulesetOptions& options, IpTablesFamily family, std::string_view currentSave);

// The chain's rules exactly as iptables-save prints them ("-A CHAIN ..."),
// for comparing with what is installed; followed by <chain>-NEW's, the
// verdict chain's ("-A <chain>-VERDICT ...") and, with
// confirmFirstPayload, the reply chains' (<chain>-REPLY, <chain>-REPLY-NEW).
std::vector<std::string> renderChainRules(const RulesetOptions& options, IpTablesFamily family);

// "<chain>-REPLY": the server packets' chain of the insertion guard.
std::string replyChainName(const RulesetOptions& options);
// "<chain>-VERDICT": the client packets a verdict marked (NF_REPEAT).
std::string verdictChainName(const RulesetOptions& options);
// "<chain>-NEW": client packets of undecided connections, unmarked.
std::string newChainName(const RulesetOptions& options);
// "<chain>-REPLY-NEW": server packets of undecided connections, unmarked.
std::string replyNewChainName(const RulesetOptions& options);

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
// whose message names the program and its stderr. With kernelFastPath the
// bound sets are created first (an existing one is reused and flushed).
CommandResult applyRuleset(const RulesetOptions& options);
// Removes the jumps and the chains for both families, then the bound sets;
// missing ones are fine.
CommandResult removeRuleset(const RulesetOptions& options);

}  // namespace nfq

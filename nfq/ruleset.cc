#include "nfq/ruleset.h"
#include "common/errno_text.h"
#include "nfq/ipset.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

extern char** environ;

namespace nfq {
namespace {

std::string hex(uint32_t value) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "0x%x", value);
  return buffer;
}

std::string markMatch(const char* module, uint32_t value, uint32_t mask) {
  return std::string("-m ") + module + " --mark " + hex(value) + "/" + hex(mask);
}

std::vector<std::string_view> lines(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    out.push_back(text.substr(0, end));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return out;
}

std::vector<std::string_view> tokens(std::string_view line) {
  std::vector<std::string_view> out;
  size_t at = 0;
  while (at < line.size()) {
    const size_t start = line.find_first_not_of(' ', at);
    if (start == std::string_view::npos) break;
    const size_t end = line.find(' ', start);
    out.push_back(line.substr(start, end - start));
    if (end == std::string_view::npos) break;
    at = end;
  }
  return out;
}

bool isJump(std::string_view line, std::string_view hook, std::string_view chain) {
  const auto t = tokens(line);
  if (t.size() < 4 || t[0] != "-A" || t[1] != hook) return false;
  for (size_t i = 2; i + 1 < t.size(); ++i) {
    if (t[i] == "-j" && t[i + 1] == chain) return true;
  }
  return false;
}

constexpr std::array<const char*, 3> kHooks = {"FORWARD", "OUTPUT", "INPUT"};

std::vector<const char*> configuredHooks(const RulesetOptions& options) {
  std::vector<const char*> hooks;
  if (options.hookForward) hooks.push_back("FORWARD");
  if (options.hookOutput) hooks.push_back("OUTPUT");
  // Replies to local clients arrive through INPUT, never FORWARD or OUTPUT.
  if (options.hookOutput && options.confirmFirstPayload) hooks.push_back("INPUT");
  return hooks;
}

}  // namespace

std::string boundSetName(const RulesetOptions& options, IpTablesFamily family) {
  std::string name = options.chain + (family == IpTablesFamily::V4 ? "-bound4" : "-bound6");
  return name.size() <= kIpSetMaxNameLength ? name : std::string();
}

NoPayloadTests noPayloadTests(IpTablesFamily family) {
  // u32 (xt_u32.c) reads 4-byte words; "@" moves to the offset just
  // computed and a read past skb->len makes the test fail. So payloadWord
  // matches exactly when at least 4 bytes follow the TCP header; negated,
  // it leaves payloads of 0..3 bytes. shape adds: the IP length is a
  // multiple of 4 — IP and TCP header lengths are, so the payload length is
  // too — leaving exactly 0. The IP length is the field (not 0, as in BIG
  // TCP), which the stack trimmed skb->len to; a fragment (IPv4 MF/offset,
  // IPv6 next header other than TCP) never matches.
  if (family == IpTablesFamily::V4) {
    return {"0x0&0xffff=0x28:0xffff&&0x0&0x3=0x0&&0x4&0x3fff=0x0",
            "0x0>>0x16&0x3c@0xc>>0x1a&0x3c@0x0&0x0=0x0"};
  }
  return {"0x4>>0x10=0x14:0xffff&&0x4>>0x8&0xff=0x6&&0x4>>0x10&0x3=0x0", "0x34>>0x1a&0x3c@0x28&0x0=0x0"};
}

std::string replyChainName(const RulesetOptions& options) {
  return options.chain + "-REPLY";
}

std::string verdictChainName(const RulesetOptions& options) {
  return options.chain + "-VERDICT";
}

std::string newChainName(const RulesetOptions& options) {
  return options.chain + "-NEW";
}

std::string replyNewChainName(const RulesetOptions& options) {
  return options.chain + "-REPLY-NEW";
}

namespace {

// What every chain's rules are made of, for one family.
struct Parts {
  const RulesetOptions& options;
  bool v4;
  const MarkScheme& m;
  std::string icmp;
  std::string echoDrop;  // "<icmp> echo request -j DROP": ICMP echo out is denied in the kernel
  std::string save;      // CONNMARK --save-mark of the verdict bits
  std::string queue;     // the NFQUEUE target, no --queue-bypass
  // "-m connmark --mark 0x0/M -m mark --mark 0x0/M": a packet of a
  // connection no verdict decided, and no verdict marked.
  std::string undecided;
  std::string setReply;
  std::vector<std::string> protectedRanges;  // this family's
  std::string boundSet;                      // empty: no fast-path rules
  bool kernelVerdict;
};

Parts parts(const RulesetOptions& options, IpTablesFamily family) {
  const bool v4 = family == IpTablesFamily::V4;
  const MarkScheme& m = options.marks;
  Parts p{options, v4, m, v4 ? "-p icmp" : "-p ipv6-icmp", {}, {}, {}, {}, {}, {}, {}, false};
  p.echoDrop = p.icmp + (v4 ? " -m icmp --icmp-type 8" : " -m icmp6 --icmpv6-type 128") + " -j DROP";
  p.save = " -j CONNMARK --save-mark --nfmask " + hex(m.mask) + " --ctmask " + hex(m.mask);
  p.queue = options.queueLast > options.queueFirst
                ? "-j NFQUEUE --queue-balance " + std::to_string(options.queueFirst) + ":" +
                      std::to_string(options.queueLast)
                : "-j NFQUEUE --queue-num " + std::to_string(options.queueFirst);
  p.undecided = markMatch("connmark", 0, m.mask) + " " + markMatch("mark", 0, m.mask);
  p.setReply = " -j MARK --set-xmark " + hex(m.reply) + "/" + hex(m.mask);
  for (const common::IpNetwork& network : options.protectedCidrs) {
    if ((network.address.family == common::IpFamily::V4) == v4)
      p.protectedRanges.push_back(network.toString());
  }
  if (options.kernelFastPath) p.boundSet = boundSetName(options, family);
  p.kernelVerdict = options.kernelVerdict && !options.kernelGuardDir.empty();
  return p;
}

// "-m bpf" running one of the programs pinned in the kernel guard's
// directory (synack, confirm, verdict), this family's.
std::string program(const Parts& p, const char* name) {
  return " -m bpf --object-pinned " + p.options.kernelGuardDir + "/" + name + (p.v4 ? "4" : "6");
}

// One RETURN per protected range of the family: `match` is "-d" (client
// packets) or "-m conntrack --ctorigdst" (server packets: the destination
// the client chose).
void returnProtected(const Parts& p, const std::string& prefix, std::string_view match,
                     std::vector<std::string>& into) {
  for (const std::string& range : p.protectedRanges) {
    std::string rule = prefix;
    rule += match;
    rule += ' ';
    rule += range;
    rule += " -j RETURN";
    into.push_back(std::move(rule));
  }
}

// A packet a verdict marked `mark`: the mark saved into the connection,
// and the walk over.
void saveAndReturn(const Parts& p, const std::string& prefix, uint32_t mark, std::vector<std::string>& into) {
  const std::string match = prefix + markMatch("mark", mark, p.m.mask);
  into.push_back(match + p.save);
  into.push_back(match + " -j RETURN");
}

// Denied connections fail fast: TCP gets a reset, UDP a port unreachable.
void rejectDenied(const Parts& p, const std::string& a, std::vector<std::string>& into) {
  const MarkScheme& m = p.m;
  into.push_back(a + "-p tcp " + markMatch("connmark", m.deny, m.mask) +
                 " -j REJECT --reject-with tcp-reset");
  into.push_back(a + "-p udp " + markMatch("connmark", m.deny, m.mask) + " -j REJECT --reject-with " +
                 (p.v4 ? "icmp-port-unreachable" : "icmp6-port-unreachable"));
  into.push_back(a + markMatch("connmark", m.deny, m.mask) + " -j DROP");
}

// The kernel fast path's two RETURNs; both pass only segments without a
// payload byte, so what the client says is still queued and judged.
void fastPath(const Parts& p, const std::string& a, std::vector<std::string>& into) {
  if (p.boundSet.empty()) return;
  const NoPayloadTests empty = noPayloadTests(p.v4 ? IpTablesFamily::V4 : IpTablesFamily::V6);
  const std::string noPayload =
      " -m u32 --u32 \"" + empty.shape + "\" -m u32 ! --u32 \"" + empty.payloadWord + "\"";
  // A SYN to an address our DNS bound to a name allowed on that port: the
  // user-space answer would be "pass, read the first payload" anyway.
  // No mark, so the first payload is queued.
  into.push_back(a + "-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN" + noPayload + " -m set --match-set " +
                 p.boundSet + " dst,dst -j RETURN");
  // The handshake's ACK (and FIN/RST) of a connection whose SYN was let
  // through (ESTABLISHED: conntrack saw the server answer it).
  into.push_back(a + "-p tcp -m tcp --tcp-flags SYN NONE -m conntrack --ctstate ESTABLISHED" + noPayload +
                 " -j RETURN");
}

// <chain>: the dispatch, then every client packet that is not undecided
// and unmarked (a denied or CONFIRM connection, a verdict's NF_REPEAT,
// egressd's own sockets, a packet conntrack does not track).
std::vector<std::string> mainRules(const Parts& p) {
  const MarkScheme& m = p.m;
  const std::string a = "-A " + p.options.chain + " ";
  std::vector<std::string> rules;
  // Most packets belong to a connection allowed already (either
  // direction) and leave here, after one rule.
  rules.push_back(a + markMatch("connmark", m.allow, m.mask) + " -j RETURN");
  if (!p.options.confirmFirstPayload) {
    rules.push_back(a + "-m conntrack --ctdir REPLY -j RETURN");  // only client→server is judged
  } else {
    // Server packets: the insertion guard's chain (goto: its end returns
    // from this chain too), so client packets never walk past its rules.
    rules.push_back(a + "-m conntrack --ctdir REPLY -g " + replyChainName(p.options));
  }
  // The client packets of a connection being decided (SYN, handshake ACK,
  // first payload): a chain holding only the rules that can match them.
  // A packet conntrack does not track matches no connmark test and stays.
  rules.push_back(a + p.undecided + " -g " + newChainName(p.options));
  rules.push_back(a + p.icmp + " -m conntrack --ctstate RELATED -j RETURN");
  returnProtected(p, a, "-d", rules);
  // A packet with a mark: a verdict's NF_REPEAT, or egressd's own sockets.
  rules.push_back(a + "-m mark ! --mark 0x0/" + hex(m.mask) + " -g " + verdictChainName(p.options));
  rejectDenied(p, a, rules);
  rules.push_back(a + p.echoDrop);
  // After every connmark rule, so a decided (denied) connection's
  // retransmitted SYN is still rejected; the pure ACKs of a CONFIRM
  // connection's client leave here.
  fastPath(p, a, rules);
  // No --queue-bypass: without a reader, the kernel drops (fail-closed).
  rules.push_back(a + p.queue);
  return rules;
}

// <chain>-NEW: client packets of a connection no verdict decided, unmarked
// (reached by goto from <chain>: its RETURNs and its end return from
// <chain>). Neither the verdict chain's goto nor the rules for denied
// connections can match them. The RETURNs come first (their order changes
// no outcome): protected ranges, then the fast path, so that a protected
// destination is never run through the kernel verdict's program and the
// cluster's own traffic (most of it) leaves after one rule per range.
std::vector<std::string> newRules(const Parts& p) {
  const MarkScheme& m = p.m;
  const std::string a = "-A " + newChainName(p.options) + " ";
  std::vector<std::string> rules;
  returnProtected(p, a, "-d", rules);
  fastPath(p, a, rules);
  if (p.kernelVerdict) {
    // The first payload judged in the kernel (nfq/kernel_verdict.h): a
    // packet the program allows is marked CONFIRM and saved as a
    // provisional allow from user space would be; the kernel guard's
    // confirm program then finalises it on the server's acknowledgment.
    // The program wrote the guard's confirm entry and a ring record (the
    // worker adopts it: event, check 2). Anything it does not allow falls
    // through to the queue below, unmarked.
    rules.push_back(a + "-p tcp" + program(p, "verdict") + " -j MARK --set-xmark " + hex(m.confirm) + "/" +
                    hex(m.mask));
    if (p.options.confirmFirstPayload) saveAndReturn(p, a, m.confirm, rules);
  }
  // ICMP only: after the TCP-only rules above, whatever their order.
  rules.push_back(a + p.icmp + " -m conntrack --ctstate RELATED -j RETURN");
  rules.push_back(a + p.echoDrop);
  rules.push_back(a + p.queue);
  return rules;
}

// <chain>-VERDICT: client packets with a mark (reached by goto).
std::vector<std::string> verdictRules(const Parts& p) {
  const MarkScheme& m = p.m;
  const std::string v = "-A " + verdictChainName(p.options) + " ";
  std::vector<std::string> rules;
  saveAndReturn(p, v, m.allow, rules);
  // Allowed, provisionally: saved, so the kernel knows to queue the
  // server's replies; the client's next payload segments are still queued.
  if (p.options.confirmFirstPayload) saveAndReturn(p, v, m.confirm, rules);
  rules.push_back(v + markMatch("mark", m.deny, m.mask) + p.save);
  rules.push_back(v + markMatch("mark", m.pass, m.mask) + " -j RETURN");
  // egressd's own sockets (SO_MARK), before the rules for denied
  // connections as ever; only hooked OUTPUT traffic carries it.
  rules.push_back(v + markMatch("mark", m.bypass, m.mask) + " -j RETURN");
  // In both chains: a deny just saved, and the later (unmarked) packets.
  rejectDenied(p, v, rules);
  // A deny on a packet conntrack does not track (INVALID: a bad checksum,
  // a sequence number outside the window) has no connection to save it
  // into; without this it would be queued again, and again.
  rules.push_back(v + markMatch("mark", m.deny, m.mask) + " -j DROP");
  // A mark that is none of the verdicts': queued (judged), never passed.
  rules.push_back(v + p.queue);
  return rules;
}

// <chain>-REPLY (the insertion guard, nfq/insertion_guard.h): server
// packets. The guard reads two kinds: the SYN-ACK of a connection not
// decided yet (where the client's stream starts; in <chain>-REPLY-NEW) and
// the replies of a connection allowed provisionally (CONFIRM: has the
// server acknowledged the judged bytes?).
std::vector<std::string> replyRules(const Parts& p) {
  const MarkScheme& m = p.m;
  const std::string r = "-A " + replyChainName(p.options) + " ";
  std::vector<std::string> rules;
  // Undecided and unmarked (SYN-ACKs, protected ranges' replies): the
  // rules below cannot match them.
  rules.push_back(r + p.undecided + " -g " + replyNewChainName(p.options));
  if (!p.options.kernelGuardDir.empty()) {
    // The server acknowledged the judged bytes (the program compares,
    // nfq/kernel_guard.h): ALLOW, saved by the next rule. Only packets
    // no verdict marked yet.
    rules.push_back(r + "-p tcp " + markMatch("connmark", m.confirm, m.mask) + " " +
                    markMatch("mark", 0, m.mask) + program(p, "confirm") + " -j MARK --set-xmark " +
                    hex(m.allow) + "/" + hex(m.mask));
  }
  // The worker's verdict on a reply: ALLOW (confirmed) is saved; any
  // verdict mark means "judged", so the packet goes on.
  rules.push_back(r + markMatch("mark", m.allow, m.mask) + p.save);
  rules.push_back(r + "-m mark ! --mark 0x0/" + hex(m.mask) + " -j RETURN");
  rules.push_back(r + "-p tcp " + markMatch("connmark", m.confirm, m.mask) + p.setReply);
  // Connections to protected ranges are never judged.
  returnProtected(p, r, "-m conntrack --ctorigdst", rules);
  rules.push_back(r + markMatch("mark", m.reply, m.mask) + " " + p.queue);
  // The rest of the server's packets: the end of the chain returns.
  return rules;
}

// <chain>-REPLY-NEW: server packets of a connection no verdict decided,
// unmarked (reached by goto from <chain>-REPLY).
std::vector<std::string> replyNewRules(const Parts& p) {
  const MarkScheme& m = p.m;
  const std::string r = "-A " + replyNewChainName(p.options) + " ";
  std::vector<std::string> rules;
  // Connections to protected ranges: their SYN-ACKs stay in the kernel, unrecorded.
  returnProtected(p, r, "-m conntrack --ctorigdst", rules);
  const std::string synAck = r + "-p tcp -m tcp --tcp-flags SYN,RST,ACK SYN,ACK";
  if (!p.options.kernelGuardDir.empty()) {
    // The program recorded where the stream starts: no need to queue.
    rules.push_back(synAck + program(p, "synack") + " -j RETURN");
  }
  rules.push_back(synAck + p.setReply);
  rules.push_back(r + markMatch("mark", m.reply, m.mask) + " " + p.queue);
  return rules;
}

}  // namespace

std::vector<std::string> renderChainRules(const RulesetOptions& options, IpTablesFamily family) {
  const Parts p = parts(options, family);
  std::vector<std::string> rules = mainRules(p);
  const auto append = [&rules](const std::vector<std::string>& chain) {
    rules.insert(rules.end(), chain.begin(), chain.end());
  };
  append(newRules(p));
  append(verdictRules(p));
  if (options.confirmFirstPayload) {
    append(replyRules(p));
    append(replyNewRules(p));
  }
  return rules;
}

std::string renderApply(const RulesetOptions& options, IpTablesFamily family, std::string_view currentSave) {
  std::string out = "*filter\n";
  // Under --noflush, declaring a user chain creates it or flushes it: the
  // refill below replaces an older egressd's rules atomically (one COMMIT),
  // whichever of these chains its layout had.
  std::vector<std::string> chains = {options.chain, newChainName(options), verdictChainName(options)};
  const std::array<std::string, 2> replyChains = {replyChainName(options), replyNewChainName(options)};
  if (options.confirmFirstPayload) chains.insert(chains.end(), replyChains.begin(), replyChains.end());
  for (const std::string& chain : chains) out += ":" + chain + " - [0:0]\n";
  for (const std::string& rule : renderChainRules(options, family)) out += rule + "\n";
  if (!options.confirmFirstPayload) {
    // Left by a run with the insertion guard; the refill above dropped the
    // jump to them. Flushed first: the reply chain jumps to the other.
    for (const std::string& chain : replyChains) {
      if (chainExists(currentSave, chain)) out += "-F " + chain + "\n";
    }
    for (const std::string& chain : replyChains) {
      if (chainExists(currentSave, chain)) out += "-X " + chain + "\n";
    }
  }
  for (const char* hook : configuredHooks(options)) {
    if (countJumps(currentSave, hook, options.chain) == 0) {
      // First in the hook, so no earlier ACCEPT lets a flow around us.
      // INPUT only sees the replies to local clients (the insertion guard).
      const std::string reply = std::string_view(hook) == "INPUT" ? "-m conntrack --ctdir REPLY " : "";
      out += std::string("-I ") + hook + " 1 " + reply + "-m comment --comment egressd -j " + options.chain +
             "\n";
    }
  }
  out += "COMMIT\n";
  return out;
}

std::string renderRemove(const RulesetOptions& options, IpTablesFamily, std::string_view currentSave) {
  std::string body;
  for (std::string_view line : lines(currentSave)) {
    for (const char* hook : kHooks) {
      if (isJump(line, hook, options.chain)) body += "-D" + std::string(line.substr(2)) + "\n";
    }
  }
  // Flushed first, deleted after: the chains jump to each other. Whatever
  // layout installed them (an older one has no -NEW chains).
  const std::array<std::string, 5> chains = {options.chain, newChainName(options), verdictChainName(options),
                                             replyChainName(options), replyNewChainName(options)};
  for (const std::string& chain : chains) {
    if (chainExists(currentSave, chain)) body += "-F " + chain + "\n";
  }
  for (const std::string& chain : chains) {
    if (chainExists(currentSave, chain)) body += "-X " + chain + "\n";
  }
  if (body.empty()) return {};
  return "*filter\n" + body + "COMMIT\n";
}

std::vector<std::string> savedRules(std::string_view save, std::string_view chain) {
  std::vector<std::string> out;
  const std::string prefix = "-A " + std::string(chain) + " ";
  for (std::string_view line : lines(save)) {
    if (line.substr(0, prefix.size()) == prefix) out.emplace_back(line);
  }
  return out;
}

bool chainExists(std::string_view save, std::string_view chain) {
  const std::string declaration = ":" + std::string(chain) + " ";
  for (std::string_view line : lines(save)) {
    if (line.substr(0, declaration.size()) == declaration) return true;
  }
  return false;
}

size_t countJumps(std::string_view save, std::string_view hook, std::string_view chain) {
  size_t count = 0;
  for (std::string_view line : lines(save)) count += isJump(line, hook, chain) ? 1 : 0;
  return count;
}

CommandResult runCommand(const std::vector<std::string>& argv, std::string_view input) {
  CommandResult result;
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0) return {false, {}, common::errnoText(errno)};
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    return {false, {}, common::errnoText(errno)};
  }
  if (pipe2(err, O_CLOEXEC) != 0) {
    for (int fd : {in[0], in[1], out[0], out[1]}) close(fd);
    return {false, {}, common::errnoText(errno)};
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int spawned = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(in[0]);
  close(out[1]);
  close(err[1]);
  if (spawned != 0) {
    close(in[1]);
    close(out[0]);
    close(err[0]);
    return {false, {}, argv[0] + ": " + common::errnoText(spawned)};
  }
  // Feed stdin and drain stdout/stderr together so neither side blocks on
  // a full pipe.
  size_t written = 0;
  int inFd = in[1];
  // Non-blocking, or a large write would block while the child waits for
  // us to read its output.
  fcntl(inFd, F_SETFL, fcntl(inFd, F_GETFL) | O_NONBLOCK);
  if (input.empty()) {
    close(inFd);
    inFd = -1;
  }
  bool outOpen = true, errOpen = true;
  char buffer[4096];
  while (outOpen || errOpen || inFd >= 0) {
    pollfd fds[3] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}, {inFd, POLLOUT, 0}};
    if (!outOpen) fds[0].fd = -1;
    if (!errOpen) fds[1].fd = -1;
    if (poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[2].revents & (POLLOUT | POLLERR | POLLHUP)) {
      const ssize_t n = write(inFd, input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == input.size()) {
        close(inFd);
        inFd = -1;
      }
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
        const ssize_t n = read(fds[i].fd, buffer, sizeof buffer);
        if (n > 0) {
          (i == 0 ? result.output : result.error).append(buffer, static_cast<size_t>(n));
        } else {
          (i == 0 ? outOpen : errOpen) = false;
        }
      }
    }
  }
  if (inFd >= 0) close(inFd);
  close(out[0]);
  close(err[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!result.ok && result.error.empty()) result.error = argv[0] + " failed";
  return result;
}

namespace {

CommandResult setFailure(const std::string& name, const std::string& error) {
  std::string message = "ipset ";
  message += name;
  message += ": ";
  message += error;
  return {false, {}, message};
}

// Creates (or reuses) and empties the bound sets before the chain that
// refers to them; after removing the chain, destroys them.
CommandResult prepareSets(const RulesetOptions& options) {
  IpSetClient client;
  std::string error;
  if (!client.open(error)) return {false, {}, "ipset: " + error};
  for (const IpTablesFamily family : {IpTablesFamily::V4, IpTablesFamily::V6}) {
    const std::string name = boundSetName(options, family);
    if (name.empty()) return {false, {}, "ipset: set name for chain " + options.chain + " is too long"};
    const common::IpFamily ipFamily =
        family == IpTablesFamily::V4 ? common::IpFamily::V4 : common::IpFamily::V6;
    // Entries of an earlier run reflect an earlier binding table.
    if (!client.create(name, ipFamily, options.boundSetMaxElements, error) || !client.flush(name, error)) {
      return setFailure(name, error);
    }
  }
  return {true, {}, {}};
}

CommandResult destroySets(const RulesetOptions& options) {
  IpSetClient client;
  std::string error;
  if (!client.open(error)) return {false, {}, "ipset: " + error};
  for (const IpTablesFamily family : {IpTablesFamily::V4, IpTablesFamily::V6}) {
    const std::string name = boundSetName(options, family);
    if (name.empty()) continue;
    if (!client.destroy(name, error)) return setFailure(name, error);
  }
  return {true, {}, {}};
}

CommandResult forEachFamily(const RulesetOptions& options, bool apply) {
  if (apply && options.kernelFastPath) {
    CommandResult sets = prepareSets(options);
    if (!sets.ok) return sets;
  }
  for (const IpTablesFamily family : {IpTablesFamily::V4, IpTablesFamily::V6}) {
    const char* prefix = family == IpTablesFamily::V4 ? "iptables" : "ip6tables";
    CommandResult save = runCommand({std::string(prefix) + "-save", "-t", "filter"});
    if (!save.ok) {
      save.error = std::string(prefix) + "-save: " + save.error;
      return save;
    }
    const std::string input =
        apply ? renderApply(options, family, save.output) : renderRemove(options, family, save.output);
    if (input.empty()) continue;
    CommandResult restore = runCommand({std::string(prefix) + "-restore", "--noflush"}, input);
    if (!restore.ok) {
      restore.error = std::string(prefix) + "-restore: " + restore.error;
      return restore;
    }
  }
  // Whatever the configuration says now: an earlier run may have had the
  // fast path on.
  if (!apply) return destroySets(options);
  return {true, {}, {}};
}

}  // namespace

CommandResult applyRuleset(const RulesetOptions& options) {
  return forEachFamily(options, true);
}
CommandResult removeRuleset(const RulesetOptions& options) {
  return forEachFamily(options, false);
}

}  // namespace nfq

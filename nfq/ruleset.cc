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

std::vector<std::string> renderChainRules(const RulesetOptions& options, IpTablesFamily family) {
  const bool v4 = family == IpTablesFamily::V4;
  const MarkScheme& m = options.marks;
  const std::string a = "-A " + options.chain + " ";
  const std::string icmp = v4 ? "-p icmp" : "-p ipv6-icmp";
  std::vector<std::string> rules;
  std::vector<std::string> replyRules;  // <chain>-REPLY's, after the chain's own
  // Ordered by how often a rule decides: most packets belong to a connection
  // allowed already (either direction) and leave after one match. Each
  // rule a packet walks past costs it (bench/README.md, "Where the
  // connection's CPU goes"); every rule below is a RETURN, so which one
  // comes first changes nothing else.
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
    // The insertion guard (nfq/insertion_guard.h) reads two kinds of server
    // packets: the SYN-ACK of a connection not decided yet (where the
    // client's stream starts) and the replies of a connection allowed
    // provisionally (CONFIRM: has the server acknowledged the judged
    // bytes?). Server packets go to a chain of their own (goto: its end
    // returns from this chain too), so client packets never walk past
    // these rules, nor server packets past the client's.
    const std::string replyChain = replyChainName(options);
    rules.push_back(a + "-m conntrack --ctdir REPLY -g " + replyChain);
    const std::string r = "-A " + replyChain + " ";
    const char* suffix = v4 ? "4" : "6";
    if (!options.kernelGuardDir.empty()) {
      // The server acknowledged the judged bytes (the program compares,
      // nfq/kernel_guard.h): ALLOW, saved by the next rule. Only packets
      // no verdict marked yet.
      replyRules.push_back(r + "-p tcp " + markMatch("connmark", m.confirm, m.mask) + " " +
                           markMatch("mark", 0, m.mask) + " -m bpf --object-pinned " +
                           options.kernelGuardDir + "/confirm" + suffix + " -j MARK --set-xmark " +
                           hex(m.allow) + "/" + hex(m.mask));
    }
    // The worker's verdict on a reply: ALLOW (confirmed) is saved; any
    // verdict mark means "judged", so the packet goes on.
    replyRules.push_back(r + markMatch("mark", m.allow, m.mask) + save);
    replyRules.push_back(r + "-m mark ! --mark 0x0/" + hex(m.mask) + " -j RETURN");
    const std::string setReply = " -j MARK --set-xmark " + hex(m.reply) + "/" + hex(m.mask);
    replyRules.push_back(r + "-p tcp " + markMatch("connmark", m.confirm, m.mask) + setReply);
    // Connections to protected ranges are never judged: their SYN-ACKs
    // stay in the kernel (--ctorigdst: the destination the client chose).
    for (const common::IpNetwork& network : options.protectedCidrs) {
      if ((network.address.family == common::IpFamily::V4) != v4) continue;
      replyRules.push_back(r + "-m conntrack --ctorigdst " + network.toString() + " -j RETURN");
    }
    const std::string synAck =
        r + "-p tcp -m tcp --tcp-flags SYN,RST,ACK SYN,ACK " + markMatch("connmark", 0, m.mask);
    if (!options.kernelGuardDir.empty()) {
      // The program recorded where the stream starts: no need to queue.
      replyRules.push_back(synAck + " -m bpf --object-pinned " + options.kernelGuardDir + "/synack" + suffix +
                           " -j RETURN");
    }
    replyRules.push_back(synAck + setReply);
    replyRules.push_back(r + markMatch("mark", m.reply, m.mask) + " " + queue);
    // The rest of the server's packets: the end of the chain returns.
  }
  rules.push_back(a + icmp + " -m conntrack --ctstate RELATED -j RETURN");
  for (const common::IpNetwork& network : options.protectedCidrs) {
    if ((network.address.family == common::IpFamily::V4) != v4) continue;
    rules.push_back(a + "-d " + network.toString() + " -j RETURN");
  }
  // A packet a verdict marked (NF_REPEAT): its own chain (goto), so that
  // the unmarked ones — SYN, handshake ACK, first payload of a new
  // connection — do not walk past these rules.
  const std::string verdictChain = verdictChainName(options);
  rules.push_back(a + "-m mark ! --mark 0x0/" + hex(m.mask) + " -g " + verdictChain);
  const std::string v = "-A " + verdictChain + " ";
  std::vector<std::string> verdictRules;
  verdictRules.push_back(v + markMatch("mark", m.allow, m.mask) + save);
  verdictRules.push_back(v + markMatch("mark", m.allow, m.mask) + " -j RETURN");
  if (options.confirmFirstPayload) {
    // Allowed, provisionally: saved, so the kernel knows to queue the
    // server's replies; the client's next payload segments are still queued.
    verdictRules.push_back(v + markMatch("mark", m.confirm, m.mask) + save);
    verdictRules.push_back(v + markMatch("mark", m.confirm, m.mask) + " -j RETURN");
  }
  verdictRules.push_back(v + markMatch("mark", m.deny, m.mask) + save);
  verdictRules.push_back(v + markMatch("mark", m.pass, m.mask) + " -j RETURN");
  // Denied connections fail fast: TCP gets a reset, UDP a port unreachable.
  // In both chains: a deny just saved, and the later (unmarked) packets.
  const auto rejectDenied = [&](const std::string& chain, std::vector<std::string>& into) {
    into.push_back(chain + "-p tcp " + markMatch("connmark", m.deny, m.mask) +
                   " -j REJECT --reject-with tcp-reset");
    into.push_back(chain + "-p udp " + markMatch("connmark", m.deny, m.mask) + " -j REJECT --reject-with " +
                   (v4 ? "icmp-port-unreachable" : "icmp6-port-unreachable"));
    into.push_back(chain + markMatch("connmark", m.deny, m.mask) + " -j DROP");
  };
  rejectDenied(v, verdictRules);
  // A deny on a packet conntrack does not track (INVALID: a bad checksum,
  // a sequence number outside the window) has no connection to save it
  // into; without this it would be queued again, and again.
  verdictRules.push_back(v + markMatch("mark", m.deny, m.mask) + " -j DROP");
  // A mark that is none of the verdicts': queued (judged), never passed.
  verdictRules.push_back(v + queue);
  rejectDenied(a, rules);
  rules.push_back(a + icmp + (v4 ? " -m icmp --icmp-type 8" : " -m icmp6 --icmpv6-type 128") + " -j DROP");
  const std::string set = boundSetName(options, family);
  if (options.kernelFastPath && !set.empty()) {
    // After every connmark rule, so a decided (denied) connection's
    // retransmitted SYN is still rejected. Both pass only segments without
    // a payload byte: what the client says is still queued and judged.
    const NoPayloadTests empty = noPayloadTests(family);
    const std::string noPayload =
        " -m u32 --u32 \"" + empty.shape + "\" -m u32 ! --u32 \"" + empty.payloadWord + "\"";
    // A SYN to an address our DNS bound to a name allowed on that port: the
    // user-space answer would be "pass, read the first payload" anyway.
    // No mark, so the first payload is queued.
    rules.push_back(a + "-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN" + noPayload + " -m set --match-set " +
                    set + " dst,dst -j RETURN");
    // The handshake's ACK (and FIN/RST) of a connection whose SYN was let
    // through (ESTABLISHED: conntrack saw the server answer it).
    rules.push_back(a + "-p tcp -m tcp --tcp-flags SYN NONE -m conntrack --ctstate ESTABLISHED" + noPayload +
                    " -j RETURN");
  }
  if (options.kernelVerdict && !options.kernelGuardDir.empty()) {
    // The first payload judged in the kernel (nfq/kernel_verdict.h): a
    // client packet of an undecided connection (no connection mark, no
    // verdict mark) that the program allows is marked CONFIRM, saved by the
    // verdict chain like a provisional allow from user space; the kernel
    // guard's confirm program then finalises it on the server's
    // acknowledgment. The program wrote the guard's confirm entry and a
    // ring record (the worker adopts it: event, check 2). Anything it does
    // not allow falls through to the queue below, unmarked.
    rules.push_back(a + "-p tcp " + markMatch("connmark", 0, m.mask) + " " + markMatch("mark", 0, m.mask) +
                    " -m bpf --object-pinned " + options.kernelGuardDir + "/verdict" + (v4 ? "4" : "6") +
                    " -j MARK --set-xmark " + hex(m.confirm) + "/" + hex(m.mask));
    rules.push_back(a + markMatch("mark", m.confirm, m.mask) + " -g " + verdictChainName(options));
  }
  // No --queue-bypass: without a reader, the kernel drops (fail-closed).
  rules.push_back(a + queue);
  rules.insert(rules.end(), verdictRules.begin(), verdictRules.end());
  rules.insert(rules.end(), replyRules.begin(), replyRules.end());
  return rules;
}

std::string renderApply(const RulesetOptions& options, IpTablesFamily family, std::string_view currentSave) {
  std::string out = "*filter\n";
  // Under --noflush, declaring a user chain creates it or flushes it: the
  // refill below replaces an older egressd's rules atomically (one COMMIT).
  out += ":" + options.chain + " - [0:0]\n";
  out += ":" + verdictChainName(options) + " - [0:0]\n";
  const std::string replyChain = replyChainName(options);
  if (options.confirmFirstPayload) out += ":" + replyChain + " - [0:0]\n";
  for (const std::string& rule : renderChainRules(options, family)) out += rule + "\n";
  if (!options.confirmFirstPayload && chainExists(currentSave, replyChain)) {
    // Left by a run with the insertion guard; the refill above dropped the
    // jump to it.
    out += "-F " + replyChain + "\n-X " + replyChain + "\n";
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
  // Flushed first, deleted after: the main chain holds the jumps to the others.
  const std::array<std::string, 3> chains = {options.chain, verdictChainName(options),
                                             replyChainName(options)};
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

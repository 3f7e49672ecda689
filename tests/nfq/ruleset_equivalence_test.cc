// The chain layout with <chain>-NEW and <chain>-REPLY-NEW ends every packet
// as the layout before it did (tests/nfq/ruleset_legacy.cc): the same
// target (RETURN, the queue, REJECT, DROP), the same packet mark and
// connection mark, and the same eBPF programs run with the same answers,
// for the cross product of packet states and every combination of the
// options that change the rules. A small iptables evaluator walks the
// rendered text of both; a rule with a match or target it does not know
// fails the test, so it cannot silently ignore part of a rule.
// It also pins what the layout is for: the rule evaluations of a decided
// connection's packets.
#include <catch2/catch.hpp>

#include <cstdint>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "nfq/ruleset.h"
#include "tests/nfq/ruleset_legacy.h"

namespace {

constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kAck = 0x10;

enum class Proto : uint8_t { Tcp, Udp, Icmp, Other };
enum class CtState : uint8_t { New, Established, Related };
enum Program : uint8_t { kSynAck = 1, kConfirm = 2, kVerdict = 4 };

// What the rules can ask about a packet. Addresses are the index of the
// protected range they fall in (-1: none); the ranges do not overlap.
struct Packet {
  bool tracked = true;  // false: conntrack has no entry (INVALID, untracked)
  bool reply = false;
  CtState state = CtState::New;
  uint32_t connmark = 0;
  uint32_t mark = 0;
  Proto proto = Proto::Tcp;
  uint8_t tcpFlags = 0;
  bool icmpEcho = false;
  bool shape = true;         // the u32 "shape" test matches
  bool payloadWord = false;  // the u32 "payload word" test matches
  int dst = -1;
  int origDst = -1;
  bool bound = false;       // in the bound ipset
  uint8_t programSays = 0;  // Program bits: which programs would answer 1
};

struct Outcome {
  std::string_view target;  // RETURN, DROP, "NFQUEUE --queue-num 0", "REJECT --reject-with ..."
  uint32_t mark = 0;
  uint32_t connmark = 0;
  uint8_t programsRun = 0;
  int evaluations = 0;  // rules looked at (a goto's rule counts once)
  bool operator==(const Outcome& o) const {
    return target == o.target && mark == o.mark && connmark == o.connmark && programsRun == o.programsRun;
  }
};

enum class MatchKind : uint8_t {
  Proto,
  Dst,
  Connmark,
  Mark,
  CtDirReply,
  CtState,
  CtOrigDst,
  TcpFlags,
  U32Shape,
  U32Word,
  Set,
  Bpf,
  IcmpEcho
};

struct Match {
  MatchKind kind;
  bool invert = false;
  uint32_t value = 0;  // proto, range index, mark value, state, flags' comparison, program bit
  uint32_t mask = 0;
};

enum class TargetKind : uint8_t { Return, Goto, Final, Mark, SaveMark };

struct Rule {
  std::vector<Match> matches;
  TargetKind target = TargetKind::Return;
  std::string text;                          // Final: what the packet ends with; Goto: the chain
  const std::vector<Rule>* chain = nullptr;  // Goto: resolved after parsing
  uint32_t value = 0, mask = 0;
};

using Chains = std::map<std::string, std::vector<Rule>, std::less<>>;

uint32_t number(std::string_view text) {
  return static_cast<uint32_t>(std::stoul(std::string(text), nullptr, 0));
}

void valueMask(std::string_view text, uint32_t& value, uint32_t& mask) {
  const size_t slash = text.find('/');
  value = number(text.substr(0, slash));
  mask = slash == std::string_view::npos ? 0xffffffff : number(text.substr(slash + 1));
}

uint8_t flags(std::string_view list) {
  uint8_t out = 0;
  std::stringstream in{std::string(list)};
  std::string name;
  while (std::getline(in, name, ',')) {
    if (name == "FIN")
      out |= kFin;
    else if (name == "SYN")
      out |= kSyn;
    else if (name == "RST")
      out |= kRst;
    else if (name == "ACK")
      out |= kAck;
    else if (name != "NONE")
      FAIL("unknown TCP flag " << name);
  }
  return out;
}

// Parses the rules renderChainRules (either layout) prints, into chains.
class Parser {
 public:
  Parser(const nfq::RulesetOptions& options, nfq::IpTablesFamily family)
      : options_(options), empty_(nfq::noPayloadTests(family)) {
    for (const auto& network : options.protectedCidrs) ranges_.push_back(network.toString());
  }

  Chains parse(const std::vector<std::string>& lines) const {
    Chains chains;
    for (const std::string& line : lines) {
      INFO(line);
      std::vector<std::string> t;
      std::stringstream in(line);
      for (std::string token; in >> token;) t.push_back(token);
      REQUIRE(t.size() >= 3);
      REQUIRE(t[0] == "-A");
      chains[t[1]].push_back(rule(t));
    }
    for (auto& [name, rules] : chains) {
      for (Rule& r : rules) {
        if (r.target != TargetKind::Goto) continue;
        INFO(name << " -g " << r.text);
        REQUIRE(chains.contains(r.text));
        r.chain = &chains.at(r.text);
      }
    }
    return chains;
  }

 private:
  int range(const std::string& cidr) const {
    for (size_t i = 0; i < ranges_.size(); ++i) {
      if (ranges_[i] == cidr) return static_cast<int>(i);
    }
    FAIL("a range that is not protected: " << cidr);
    return -1;
  }

  Rule rule(const std::vector<std::string>& t) const {
    Rule r;
    size_t i = 2;
    const auto next = [&]() -> const std::string& {
      REQUIRE(i < t.size());
      return t[i++];
    };
    while (i < t.size()) {
      const std::string word = next();
      if (word == "-p") {
        const std::string p = next();
        const Proto proto = p == "tcp"                        ? Proto::Tcp
                            : p == "udp"                      ? Proto::Udp
                            : p == "icmp" || p == "ipv6-icmp" ? Proto::Icmp
                                                              : Proto::Other;
        REQUIRE(proto != Proto::Other);
        r.matches.push_back({MatchKind::Proto, false, static_cast<uint32_t>(proto), 0});
      } else if (word == "-d") {
        r.matches.push_back({MatchKind::Dst, false, static_cast<uint32_t>(range(next())), 0});
      } else if (word == "-m") {
        module(next(), t, i, r);
      } else if (word == "-j" || word == "-g") {
        const std::string target = next();
        if (word == "-g") {
          r.target = TargetKind::Goto;
          r.text = target;
        } else if (target == "RETURN") {
          r.target = TargetKind::Return;
        } else if (target == "DROP" || target == "NFQUEUE" || target == "REJECT") {
          r.target = TargetKind::Final;
          r.text = target;
          while (i < t.size()) r.text += " " + next();
        } else if (target == "MARK") {
          REQUIRE(next() == "--set-xmark");
          r.target = TargetKind::Mark;
          valueMask(next(), r.value, r.mask);
        } else if (target == "CONNMARK") {
          REQUIRE(next() == "--save-mark");
          REQUIRE(next() == "--nfmask");
          r.value = number(next());
          REQUIRE(next() == "--ctmask");
          r.mask = number(next());
          r.target = TargetKind::SaveMark;
        } else {
          FAIL("unknown target " << target);
        }
        REQUIRE(i == t.size());
      } else {
        FAIL("unknown word " << word);
      }
    }
    // The packet states vary TCP flags, u32 and set answers and the
    // programs' answers for TCP packets only: sound while every rule that
    // asks them asks -p tcp first.
    for (const Match& m : r.matches) {
      if (m.kind == MatchKind::TcpFlags || m.kind == MatchKind::U32Shape || m.kind == MatchKind::U32Word ||
          m.kind == MatchKind::Set || m.kind == MatchKind::Bpf) {
        REQUIRE(r.matches.front().kind == MatchKind::Proto);
        REQUIRE(r.matches.front().value == static_cast<uint32_t>(Proto::Tcp));
      }
    }
    return r;
  }

  void module(const std::string& name, const std::vector<std::string>& t, size_t& i, Rule& r) const {
    const auto next = [&]() -> const std::string& {
      REQUIRE(i < t.size());
      return t[i++];
    };
    const auto option = [&](std::string_view expected) {
      const std::string& word = next();
      if (word == "!") {
        REQUIRE(next() == expected);
        return true;
      }
      REQUIRE(word == expected);
      return false;
    };
    if (name == "connmark" || name == "mark") {
      Match m{name == "connmark" ? MatchKind::Connmark : MatchKind::Mark};
      m.invert = option("--mark");
      valueMask(next(), m.value, m.mask);
      r.matches.push_back(m);
    } else if (name == "conntrack") {
      // One or more options; all must hold.
      while (i < t.size() && t[i].starts_with("--ct")) {
        const std::string o = next();
        if (o == "--ctdir") {
          REQUIRE(next() == "REPLY");
          r.matches.push_back({MatchKind::CtDirReply});
        } else if (o == "--ctstate") {
          const std::string s = next();
          REQUIRE((s == "RELATED" || s == "ESTABLISHED"));
          r.matches.push_back(
              {MatchKind::CtState, false,
               static_cast<uint32_t>(s == "RELATED" ? CtState::Related : CtState::Established), 0});
        } else if (o == "--ctorigdst") {
          r.matches.push_back({MatchKind::CtOrigDst, false, static_cast<uint32_t>(range(next())), 0});
        } else {
          FAIL("unknown conntrack option " << o);
        }
      }
    } else if (name == "tcp") {
      REQUIRE(next() == "--tcp-flags");
      const uint8_t mask = flags(next());
      r.matches.push_back({MatchKind::TcpFlags, false, flags(next()), mask});
    } else if (name == "u32") {
      const bool invert = option("--u32");
      const std::string test = next();
      const MatchKind kind = test == "\"" + empty_.shape + "\""         ? MatchKind::U32Shape
                             : test == "\"" + empty_.payloadWord + "\"" ? MatchKind::U32Word
                                                                        : MatchKind::Proto;
      if (kind == MatchKind::Proto) FAIL("unknown u32 test " << test);
      r.matches.push_back({kind, invert});
    } else if (name == "set") {
      REQUIRE(next() == "--match-set");
      const std::string set = next();
      REQUIRE((set == nfq::boundSetName(options_, nfq::IpTablesFamily::V4) ||
               set == nfq::boundSetName(options_, nfq::IpTablesFamily::V6)));
      REQUIRE(next() == "dst,dst");
      r.matches.push_back({MatchKind::Set});
    } else if (name == "bpf") {
      REQUIRE(next() == "--object-pinned");
      const std::string path = next();
      REQUIRE(path.starts_with(options_.kernelGuardDir + "/"));
      // <dir>/<program><family digit>
      const std::string program = path.substr(options_.kernelGuardDir.size() + 1);
      const uint8_t bit = program.starts_with("synack")    ? kSynAck
                          : program.starts_with("confirm") ? kConfirm
                          : program.starts_with("verdict") ? kVerdict
                                                           : 0;
      if (bit == 0) FAIL("unknown program " << path);
      r.matches.push_back({MatchKind::Bpf, false, bit, 0});
    } else if (name == "icmp" || name == "icmp6") {
      const std::string o = next();
      const std::string type = next();
      REQUIRE(((o == "--icmp-type" && type == "8") || (o == "--icmpv6-type" && type == "128")));
      r.matches.push_back({MatchKind::IcmpEcho});
    } else {
      FAIL("unknown match module " << name);
    }
  }

  const nfq::RulesetOptions& options_;
  nfq::NoPayloadTests empty_;
  std::vector<std::string> ranges_;
};

bool matches(const Match& m, const Packet& p, uint8_t& programsRun) {
  bool ok = false;
  switch (m.kind) {
    case MatchKind::Proto:
      ok = p.proto == static_cast<Proto>(m.value);
      break;
    case MatchKind::Dst:
      ok = p.dst == static_cast<int>(m.value);
      break;
    case MatchKind::Connmark:
      // xt_connmark: no conntrack entry, no match (inverted or not).
      if (!p.tracked) return false;
      ok = (p.connmark & m.mask) == m.value;
      break;
    case MatchKind::Mark:
      ok = (p.mark & m.mask) == m.value;
      break;
    case MatchKind::CtDirReply:
      // xt_conntrack without an entry matches only a state test for INVALID
      // or UNTRACKED, which the chain never asks.
      ok = p.tracked && p.reply;
      break;
    case MatchKind::CtState:
      ok = p.tracked && p.state == static_cast<CtState>(m.value);
      break;
    case MatchKind::CtOrigDst:
      ok = p.tracked && p.origDst == static_cast<int>(m.value);
      break;
    case MatchKind::TcpFlags:
      ok = p.proto == Proto::Tcp && (p.tcpFlags & m.mask) == m.value;
      break;
    case MatchKind::U32Shape:
      ok = p.shape;
      break;
    case MatchKind::U32Word:
      ok = p.payloadWord;
      break;
    case MatchKind::Set:
      ok = p.bound;
      break;
    case MatchKind::Bpf:
      programsRun |= static_cast<uint8_t>(m.value);
      ok = (p.programSays & m.value) != 0;
      break;
    case MatchKind::IcmpEcho:
      ok = p.proto == Proto::Icmp && p.icmpEcho;
      break;
  }
  return ok != m.invert;
}

// The walk from the hook's jump to `chain`: every RETURN, a goto'd chain's
// end and the chain's own end return to the hook.
Outcome walk(const Chains& chains, const std::string& chain, Packet p) {
  Outcome out;
  const std::vector<Rule>* rules = &chains.at(chain);
  size_t at = 0;
  for (int steps = 0; steps < 1000; ++steps) {
    if (at == rules->size()) break;
    const Rule& r = (*rules)[at++];
    ++out.evaluations;
    bool all = true;
    for (const Match& m : r.matches) {
      if (!matches(m, p, out.programsRun)) {
        all = false;
        break;
      }
    }
    if (!all) continue;
    switch (r.target) {
      case TargetKind::Return:
        out.target = "RETURN";
        out.mark = p.mark;
        out.connmark = p.connmark;
        return out;
      case TargetKind::Final:
        out.target = r.text;
        out.mark = p.mark;
        out.connmark = p.connmark;
        return out;
      case TargetKind::Goto:
        rules = r.chain;
        at = 0;
        break;
      case TargetKind::Mark:
        p.mark = (p.mark & ~r.mask) ^ r.value;
        break;
      case TargetKind::SaveMark:
        if (p.tracked) p.connmark = (p.connmark & ~r.mask) ^ (p.mark & r.value);
        break;
    }
  }
  out.target = "RETURN";
  out.mark = p.mark;
  out.connmark = p.connmark;
  return out;
}

std::string describe(const Packet& p) {
  std::ostringstream o;
  o << std::hex << "tracked=" << p.tracked << " reply=" << p.reply << " state=" << int(p.state)
    << " connmark=0x" << p.connmark << " mark=0x" << p.mark << " proto=" << int(p.proto) << " flags=0x"
    << int(p.tcpFlags) << " echo=" << p.icmpEcho << " shape=" << p.shape << " word=" << p.payloadWord
    << " dst=" << p.dst << " origdst=" << p.origDst << " bound=" << p.bound
    << " programs=" << int(p.programSays);
  return o.str();
}

std::string describe(const Outcome& o) {
  std::ostringstream s;
  s << o.target << std::hex << " mark=0x" << o.mark << " connmark=0x" << o.connmark
    << " ran=" << int(o.programsRun) << std::dec << " after " << o.evaluations << " rules";
  return s.str();
}

// Calls `visit` with every packet state of the cross product.
template <typename Visit>
void forEachPacket(const nfq::RulesetOptions& o, Visit&& visit) {
  const nfq::MarkScheme& m = o.marks;
  const std::vector<uint32_t> marks = {0, m.allow, m.deny, m.pass, m.bypass, m.confirm, m.reply, m.mask};
  // Bits outside the mask (kube-proxy's, Calico's) must survive and must
  // not change a match.
  const std::vector<uint32_t> foreign = {0, 0x8000c000};
  // One of each answer the chain's flag tests can give (SYN,RST,ACK =
  // SYN,ACK; FIN,SYN,RST,ACK = SYN; SYN = none), and a few ways to give none.
  const std::vector<uint8_t> tcpFlags = {kSyn,        kSyn | kAck,       kAck, kRst, kFin | kAck,
                                         kSyn | kFin, kSyn | kAck | kRst};
  const int ranges = static_cast<int>(o.protectedCidrs.size());
  const uint8_t programs = (o.kernelGuardDir.empty() ? 0 : kSynAck | kConfirm) |
                           (o.kernelVerdict && !o.kernelGuardDir.empty() ? kVerdict : 0);
  Packet p;
  for (int ct = 0; ct < 7; ++ct) {
    p.tracked = ct < 6;
    p.reply = ct >= 3 && ct < 6;
    p.state = static_cast<CtState>(ct % 3);
    for (uint32_t connmark : p.tracked ? marks : std::vector<uint32_t>{0}) {
      for (uint32_t mark : marks) {
        for (uint32_t bits : foreign) {
          p.connmark = connmark | bits;
          p.mark = mark | bits;
          for (int proto = 0; proto < 5; ++proto) {
            p.proto = proto == 4 ? Proto::Icmp : static_cast<Proto>(proto);
            p.icmpEcho = proto == 4;
            // The TCP-only tests (the parser checks each rule with one says
            // -p tcp first) vary for TCP only.
            const bool tcp = p.proto == Proto::Tcp;
            for (size_t f = 0; f < (tcp ? tcpFlags.size() : 1); ++f) {
              p.tcpFlags = tcp ? tcpFlags[f] : 0;
              for (int u32 = 0; u32 < (tcp && o.kernelFastPath ? 4 : 1); ++u32) {
                p.shape = (u32 & 1) != 0;
                p.payloadWord = (u32 & 2) != 0;
                for (int bound = 0; bound < (tcp && o.kernelFastPath ? 2 : 1); ++bound) {
                  p.bound = bound != 0;
                  for (int dst = -1; dst < ranges; ++dst) {
                    p.dst = dst;
                    for (int origDst = -1; origDst < ranges; ++origDst) {
                      p.origDst = origDst;
                      for (uint8_t says = 0; says <= (tcp ? programs : 0); ++says) {
                        if ((says & ~programs) != 0) continue;
                        p.programSays = says;
                        visit(p);
                      }
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
  }
}

struct Layouts {
  Chains before;
  Chains after;
};

Layouts layouts(const nfq::RulesetOptions& o, nfq::IpTablesFamily family) {
  const Parser parser(o, family);
  return {parser.parse(nfqtest::legacyChainRules(o, family)), parser.parse(nfq::renderChainRules(o, family))};
}

nfq::RulesetOptions withProtected(nfq::RulesetOptions o, nfq::IpTablesFamily family) {
  o.protectedCidrs.clear();
  const char* ranges4[] = {"10.0.0.0/8", "192.168.0.0/16"};
  const char* ranges6[] = {"fd00::/8", "2001:db8::/32"};
  for (const char* range : family == nfq::IpTablesFamily::V4 ? ranges4 : ranges6) {
    o.protectedCidrs.push_back(common::parseIpNetwork(range).network.value());
  }
  return o;
}

// Every packet state under one set of options: the same outcome both ways.
void checkEquivalent(const nfq::RulesetOptions& o, nfq::IpTablesFamily family, size_t& packets) {
  const Layouts l = layouts(o, family);
  int failures = 0;
  forEachPacket(o, [&](const Packet& p) {
    ++packets;
    const Outcome before = walk(l.before, o.chain, p);
    const Outcome after = walk(l.after, o.chain, p);
    if (before == after || failures >= 5) return;
    ++failures;
    FAIL_CHECK("options: confirm=" << o.confirmFirstPayload << " fastPath=" << o.kernelFastPath
                                   << " guard=" << !o.kernelGuardDir.empty() << " verdict=" << o.kernelVerdict
                                   << " protected=" << o.protectedCidrs.size()
                                   << "\n  packet: " << describe(p) << "\n  before: " << describe(before)
                                   << "\n  after:  " << describe(after));
  });
}

void checkAllOptions(bool confirm, nfq::IpTablesFamily family) {
  size_t packets = 0;
  for (int bits = 0; bits < 16; ++bits) {
    nfq::RulesetOptions o;
    o.queueFirst = 0;
    o.queueLast = family == nfq::IpTablesFamily::V4 ? 1 : 0;
    o.confirmFirstPayload = confirm;
    o.kernelFastPath = (bits & 1) != 0;
    o.kernelGuardDir = (bits & 2) != 0 ? "/sys/fs/bpf/egressd-1" : "";
    o.kernelVerdict = (bits & 4) != 0;
    if ((bits & 8) != 0) o = withProtected(o, family);
    checkEquivalent(o, family, packets);
  }
  // The cross product really was walked (and not, say, an empty chain map).
  CHECK(packets > 1000000);
}

}  // namespace

TEST_CASE("chain layout: every packet ends as before the -NEW chains (insertion guard on, IPv4)",
          "[nfq][ruleset][equivalence]") {
  checkAllOptions(true, nfq::IpTablesFamily::V4);
}

TEST_CASE("chain layout: every packet ends as before the -NEW chains (insertion guard off, IPv4)",
          "[nfq][ruleset][equivalence]") {
  checkAllOptions(false, nfq::IpTablesFamily::V4);
}

TEST_CASE("chain layout: every packet ends as before the -NEW chains (IPv6)", "[nfq][ruleset][equivalence]") {
  checkAllOptions(true, nfq::IpTablesFamily::V6);
  checkAllOptions(false, nfq::IpTablesFamily::V6);
}

TEST_CASE("chain layout: the rules a connection's packets walk, before and after",
          "[nfq][ruleset][equivalence]") {
  nfq::RulesetOptions o;
  o.queueLast = 1;
  o.confirmFirstPayload = true;
  o.kernelFastPath = true;
  o.kernelGuardDir = "/sys/fs/bpf/egressd-1";
  o.kernelVerdict = true;
  const nfq::MarkScheme& m = o.marks;
  Packet syn;
  syn.tcpFlags = kSyn;
  syn.bound = true;
  Packet ack = syn;
  ack.state = CtState::Established;
  ack.tcpFlags = kAck;
  Packet payload = ack;
  payload.payloadWord = true;
  payload.programSays = kVerdict;
  Packet synAck = ack;
  synAck.reply = true;
  synAck.tcpFlags = kSyn | kAck;
  synAck.programSays = kSynAck;
  Packet confirming = synAck;
  confirming.tcpFlags = kAck;
  confirming.connmark = m.confirm;
  confirming.programSays = kConfirm;
  Packet later = confirming;
  later.connmark = m.allow;
  // A client packet of a CONFIRM connection (more payload: queued), and the
  // first payload allowed in user space, reinjected with ALLOW.
  Packet confirmWindow = payload;
  confirmWindow.connmark = m.confirm;
  confirmWindow.programSays = 0;
  Packet reinjected = payload;
  reinjected.programSays = 0;
  reinjected.mark = m.allow;
  struct Row {
    const char* name;
    Packet packet;
    int before;
    int after;
    std::string target;
    bool walksRanges;  // past every protected range, before and after
  };
  const std::vector<Row> rows = {
      {"SYN (bound)", syn, 10, 4, "RETURN", true},
      {"handshake ACK", ack, 11, 5, "RETURN", true},
      {"first payload (kernel verdict)", payload, 17, 8, "RETURN", true},
      {"SYN-ACK (recorded)", synAck, 8, 4, "RETURN", true},
      {"confirming reply", confirming, 6, 6, "RETURN", false},
      {"later packets", later, 1, 1, "RETURN", false},
      {"client payload while CONFIRM", confirmWindow, 14, 12, "NFQUEUE --queue-balance 0:1", true},
      {"first payload allowed in user space, reinjected", reinjected, 7, 7, "RETURN", true},
  };
  const auto check = [](const Layouts& l, const Row& row, int extra) {
    INFO(row.name);
    const Outcome before = walk(l.before, "EGRESSD", row.packet);
    const Outcome after = walk(l.after, "EGRESSD", row.packet);
    CHECK(after == before);
    CHECK(after.target == row.target);
    CHECK(before.evaluations == row.before + extra);
    CHECK(after.evaluations == row.after + extra);
  };
  const Layouts plain = layouts(o, nfq::IpTablesFamily::V4);
  for (const Row& row : rows) check(plain, row, 0);
  // With two protected ranges, each walked by the packets of a new
  // connection (before and after) ...
  const nfq::RulesetOptions guarded = withProtected(o, nfq::IpTablesFamily::V4);
  const Layouts ranges = layouts(guarded, nfq::IpTablesFamily::V4);
  for (const Row& row : rows) check(ranges, row, row.walksRanges ? 2 : 0);
  // ... and the cluster's own traffic: a client packet to the second range
  // and the server's reply leave after as many rules as the range's place.
  Packet inCluster = ack;
  inCluster.payloadWord = true;
  inCluster.dst = 1;
  inCluster.origDst = 1;
  Packet inClusterReply = inCluster;
  inClusterReply.reply = true;
  inClusterReply.dst = -1;
  CHECK(walk(ranges.before, "EGRESSD", inCluster).evaluations == 6);
  CHECK(walk(ranges.after, "EGRESSD", inCluster).evaluations == 5);
  CHECK(walk(ranges.before, "EGRESSD", inClusterReply).evaluations == 9);
  CHECK(walk(ranges.after, "EGRESSD", inClusterReply).evaluations == 5);
}

// renderYaml (suggest/suggester.h): the suggestion as EgressRuleSet
// documents. Every byte that comes from the input is a validated name or
// target, a validated object name, or printable ASCII inside a comment.
#include <string>

#include "suggest/suggester.h"

namespace suggest {

namespace {

constexpr size_t kShownClients = 8;
constexpr size_t kShownNames = 12;
constexpr size_t kShownDnsOnly = 50;
constexpr size_t kShownUnsuggestable = 20;

std::string plural(uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + (n == 1 ? one : many);
}

// "12 hits (12 audit), first 2026-11-26T12:00:01Z, last 2026-11-26T12:05:00Z"
std::string usageText(const Usage& usage, const char* one, const char* many) {
  std::string out = plural(usage.hits, one, many);
  std::string split;
  auto part = [&](uint64_t n, const char* word) {
    if (n == 0) return;
    if (!split.empty()) split += ", ";
    split += std::to_string(n) + " " + word;
  };
  part(usage.allowed, "allowed");
  part(usage.denied, "denied");
  part(usage.audit, "audit");
  out += " (" + split + ")";
  out += ", first " + formatTime(usage.first) + ", last " + formatTime(usage.last);
  return out;
}

std::string clientsText(const Usage& usage, bool unattributed) {
  if (usage.clients.empty()) return {};
  std::string out = unattributed ? "from " : "by ";
  const size_t shown = std::min(usage.clients.size(), kShownClients);
  for (size_t i = 0; i < shown; ++i) {
    if (i > 0) out += ", ";
    out += usage.clients[i];  // printable ASCII (Suggester)
  }
  const size_t more = usage.clients.size() - shown;
  if (usage.moreThanKept) {
    out += " and more than " + std::to_string(more) + " others";
  } else if (more > 0) {
    out += " and " + plural(more, " other", " others");
  }
  return out;
}

void comment(std::string& out, const std::string& indent, const std::string& text) {
  out += indent + "# " + text + "\n";
}

void renderTarget(std::string& out, const SuggestedTarget& target, bool unattributed) {
  const std::string indent = "    ";
  std::string line = usageText(target.usage, " hit", " hits");
  const std::string clients = clientsText(target.usage, unattributed);
  if (!clients.empty()) line += "; " + clients;
  if (target.kind == SuggestedTarget::Kind::Wildcard) {
    const std::string domain = target.target.substr(2, target.target.rfind(':') - 2);
    std::string names = plural(target.names.size(), " name", " names") + " under " + domain + ": ";
    for (size_t i = 0; i < target.names.size() && i < kShownNames; ++i) {
      if (i > 0) names += ", ";
      names += target.names[i];
    }
    if (target.names.size() > kShownNames)
      names += " and " + std::to_string(target.names.size() - kShownNames) + " more";
    comment(out, indent, "wildcard for " + names);
  }
  if (target.throughDns > 0) {
    comment(out, indent,
            plural(target.throughDns, " connection", " connections") +
                " without a name matched through DNS: the client had resolved this name (through egressd) "
                "to the address it connected to");
  }
  if (target.kind == SuggestedTarget::Kind::Address) {
    comment(out, indent,
            "WARNING: address only: no name was seen for these connections (no SNI, Host or DNS-bound "
            "name); the server's address may change and may be shared with others. Prefer a name.");
  }
  if (target.inForce) comment(out, indent, "already allowed by the rules in force (listed because of --all)");
  comment(out, indent, line);
  out += indent + "- \"" + target.target + "\"\n";
}

void renderNotes(std::string& out, const SuggestedRuleSet& ruleSet, const std::string& indent) {
  if (!ruleSet.dnsOnly.empty()) {
    comment(
        out, indent,
        "Resolved through egressd but never connected to (DNS gives no port, so no target); add NAME:PORT "
        "if one of them is needed:");
    const size_t shown = std::min(ruleSet.dnsOnly.size(), kShownDnsOnly);
    for (size_t i = 0; i < shown; ++i) {
      const auto& entry = ruleSet.dnsOnly[i];
      std::string line = "  " + entry.name + ": " + usageText(entry.usage, " query", " queries");
      const std::string clients = clientsText(entry.usage, ruleSet.unattributed);
      if (!clients.empty()) line += "; " + clients;
      comment(out, indent, line);
    }
    if (ruleSet.dnsOnly.size() > shown) {
      comment(out, indent, "  and " + std::to_string(ruleSet.dnsOnly.size() - shown) + " more names");
    }
  }
  if (!ruleSet.unsuggestable.empty()) {
    comment(out, indent,
            "Not suggested: no target can allow these (targets allow TCP, and QUIC to UDP 443 by name):");
    size_t shown = 0;
    for (const auto& [what, count] : ruleSet.unsuggestable) {
      if (shown++ == kShownUnsuggestable) {
        comment(out, indent,
                "  and " + std::to_string(ruleSet.unsuggestable.size() - kShownUnsuggestable) + " more");
        break;
      }
      comment(out, indent, "  " + what + ": " + plural(count, " decision", " decisions"));
    }
  }
}

}  // namespace

std::string renderYaml(const Suggestion& suggestion) {
  std::string out;
  size_t targets = 0;
  size_t documents = 0;
  for (const auto& ruleSet : suggestion.ruleSets) {
    targets += ruleSet.targets.size();
    if (!ruleSet.targets.empty()) ++documents;
  }
  out += "# Suggested by egressctl suggest from " + plural(suggestion.decisions, " decision", " decisions");
  if (suggestion.decisions > 0) {
    out += " (" + formatTime(suggestion.first) + " to " + formatTime(suggestion.last) + ")";
  }
  out += ": " + plural(documents, " rule set, ", " rule sets, ") + plural(targets, " target.", " targets.") +
         "\n";
  out += "# Review before applying: each target opens egress for the whole cluster.\n";
  out += "# Wildcards stand for at least " + std::to_string(suggestion.wildcardMin) +
         " names seen under one registrable domain on one port (--wildcard-min).\n";
  if (suggestion.all) {
    out += "# --all: targets the rules in force already allow are listed too.\n";
  } else if (suggestion.rulesKnown) {
    out += "# Left out: " + plural(suggestion.leftOutInForce, " destination", " destinations") +
           " the rules in force already allow (--all lists them).\n";
  }
  if (suggestion.droppedDestinations > 0) {
    out += "# INCOMPLETE: " + plural(suggestion.droppedDestinations, " decision", " decisions") +
           " for destinations beyond the limit of distinct destinations were not counted.\n";
  }
  for (const auto& ruleSet : suggestion.ruleSets) {
    if (ruleSet.targets.empty()) {
      // No document: an empty target list is not worth a rule set, but
      // what was seen is still said.
      if (ruleSet.dnsOnly.empty() && ruleSet.unsuggestable.empty()) continue;
      out += "\n# " + ruleSet.ns + "/" + ruleSet.name + ": no new targets.\n";
      renderNotes(out, ruleSet, "");
      continue;
    }
    out += "---\n";
    if (ruleSet.unattributed) {
      out +=
          "# Clients egressd could not attribute to a pod (no namespace in the decisions): by source "
          "address.\n";
    }
    out += "apiVersion: zalando.org/v1\n";
    out += "kind: EgressRuleSet\n";
    out += "metadata:\n";
    out += "  name: " + ruleSet.name + "\n";
    out += "  namespace: " + ruleSet.ns + "\n";
    out += "spec:\n";
    out += "  targets:\n";
    for (const auto& target : ruleSet.targets) renderTarget(out, target, ruleSet.unattributed);
    renderNotes(out, ruleSet, "    ");
  }
  return out;
}

}  // namespace suggest

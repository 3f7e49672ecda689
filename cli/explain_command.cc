#include "cli/explain_command.h"

#include <algorithm>
#include <filesystem>
#include <iostream>

#include "cli/control_client.h"
#include "common/strings.h"
#include "policy/manifest.h"

namespace cli {

std::string toAsciiQuery(const std::string& text, std::string& note, std::string& error) {
  const bool ascii =
      std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  if (ascii) return text;
  const size_t colon = text.rfind(':');
  const std::string host = text.substr(0, colon);
  const auto aLabel = policy::toALabel(host);
  if (!aLabel) {
    error = "\"" + host + "\" is not a valid internationalised name";
    return {};
  }
  note = host + " is " + *aLabel;
  return *aLabel + (colon == std::string::npos ? std::string() : text.substr(colon));
}

std::optional<HostPort> parseHostPort(const std::string& text, std::string& error) {
  std::string note;
  const std::string ascii = toAsciiQuery(text, note, error);
  if (!error.empty()) return std::nullopt;
  return control::parseHostPort(ascii, error);
}

int printExplanation(const policy::Policy& policy, const HostPort& query, bool json, std::ostream& out) {
  return printExplanation(control::explainJson(policy, query.host, query.port), query, json, out);
}

int printExplanation(const nlohmann::json& doc, const HostPort& query, bool json, std::ostream& out) {
  const bool allowed = doc.value("verdict", std::string()) == "allow";
  if (json) {
    out << doc.dump() << '\n';
    return allowed ? 0 : 1;
  }
  out << control::displayHostPort(query) << (allowed ? " ALLOWED" : " DENIED") << '\n';
  // "*.example.org:80" asks about a pattern: the wildcard label matches
  // like any name under it, so the answer holds for every such name.
  const bool pattern = query.host.rfind("*.", 0) == 0;
  if (pattern) out << "  (a pattern: the answer holds for every name it covers)\n";
  if (allowed) {
    if (doc.contains("allowed_by") && doc["allowed_by"].is_array()) {
      for (const auto& a : doc["allowed_by"]) {
        out << "  by " << a.value("rule_set", std::string()) << "  (target "
            << a.value("target", std::string()) << ", " << a.value("kind", std::string()) << ")\n";
      }
    }
    if (doc.value("needs_dns_binding", false)) {
      // The name as it is matched and resolved: lower case, no trailing dot.
      std::string name = common::toLowerAscii(query.host);
      if (name.size() > 1 && name.back() == '.') name.pop_back();
      out << "  note: with strict binding, the destination address must come from egressd's DNS answer for "
          << (pattern ? "that name" : name) << '\n';
    }
    return 0;
  }
  if (doc.value("mode", std::string()) == "audit") {
    out << "  egressd runs in audit mode (mode = \"audit\"): it reports this as \"would deny\" and lets it "
           "through\n";
  }
  const bool isAddress = doc.value("host_is_address", false);
  out << "  no rule set allows " << (isAddress ? "this address" : "this name") << " on port " << query.port
      << '\n';
  if (doc.contains("internal_address") && doc["internal_address"].is_object()) {
    const auto& internal = doc["internal_address"];
    out << "  world access (*:" << query.port
        << ") covers public destinations only, not this internal address: "
        << internal.value("range", std::string()) << '\n'
        << "  to open it on purpose, add the target " << internal.value("open_with", std::string())
        << " (or its network as a CIDR target) to a rule set\n";
  }
  if (doc.contains("allowed_on_other_ports") && doc["allowed_on_other_ports"].is_array() &&
      !doc["allowed_on_other_ports"].empty()) {
    out << "  allowed on other ports:";
    for (const auto& port : doc["allowed_on_other_ports"]) out << ' ' << port.dump();
    out << '\n';
  }
  if (!doc.value("port_in_use", true)) out << "  no rule set uses port " << query.port << " at all\n";
  return 1;
}

int runExplain(const ExplainOptions& options, std::ostream& out, std::ostream& err) {
  std::string error;
  std::string note;
  // Names are matched as A-labels; a U-label query is converted (and the
  // conversion shown), as browsers and curl do.
  const std::string asciiQuery = toAsciiQuery(options.query, note, error);
  const auto query = error.empty() ? control::parseHostPort(asciiQuery, error) : std::nullopt;
  if (!query) {
    err << "egressctl explain: \"" << options.query << "\": " << error << '\n';
    return 2;
  }
  if (!note.empty() && !options.json) out << "(" << note << ")\n";
  if (options.rulesDirs.empty()) {
    // The running daemon's live policy, through the control socket.
    auto client = ControlClient::connect(options.socket, error);
    if (!client) {
      err << "egressctl explain: " << error << "\n  (or give --rules-dir DIR to explain offline)\n";
      return 2;
    }
    control::Request request;
    request.op = control::Op::Explain;
    request.target = asciiQuery;
    const auto response = client->call(request, error);
    if (!response || !response->contains("explain")) {
      err << "egressctl explain: " << (error.empty() ? "no explanation in the answer" : error) << '\n';
      return 2;
    }
    return printExplanation((*response)["explain"], *query, options.json, out);
  }
  for (const auto& dir : options.rulesDirs) {
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) {
      err << "egressctl explain: --rules-dir " << dir << ": not a directory\n";
      return 2;
    }
    // A mistyped directory would otherwise only show as "DENIED".
    std::vector<policy::Problem> ignored;
    if (policy::listRulesDirectory(dir, ignored).files.empty()) {
      err << "warning: --rules-dir " << dir << ": no *.yaml, *.yml or *.json files\n";
    }
  }
  const auto load = policy::loadRulesDirectories(options.rulesDirs, policy::defaultPublicSuffixList());
  for (const auto& problem : load.problems) {
    if (problem.severity == policy::Severity::Error)
      err << "warning: not in force: " << problem.toString() << '\n';
  }
  const auto compiled = policy::Policy::compile(load.ruleSets);
  return printExplanation(*compiled, *query, options.json, out);
}

}  // namespace cli

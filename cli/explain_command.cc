#include "cli/explain_command.h"

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/ip_address.h"
#include "common/strings.h"
#include "policy/manifest.h"

namespace cli {

std::optional<HostPort> parseHostPort(const std::string& text, std::string& error) {
  HostPort result;
  std::string portText;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      error = "expected [IPv6]:PORT, e.g. [2001:db8::1]:443";
      return std::nullopt;
    }
    result.host = text.substr(1, close - 1);
    portText = text.substr(close + 2);
    if (!common::parseIpAddress(result.host)) {
      error = "\"" + result.host + "\" is not an IPv6 address";
      return std::nullopt;
    }
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string::npos) {
      error = "missing port; expected HOST:PORT, e.g. api.example.com:443";
      return std::nullopt;
    }
    result.host = text.substr(0, colon);
    portText = text.substr(colon + 1);
    if (result.host.find(':') != std::string::npos) {
      error = "IPv6 addresses must be in brackets, e.g. [2001:db8::1]:443";
      return std::nullopt;
    }
  }
  const auto port = common::parseDecimal(portText, 65535);
  if (!port || *port == 0) {
    error = "port \"" + portText + "\" is not a number between 1 and 65535";
    return std::nullopt;
  }
  if (result.host.empty()) {
    error = "missing host before the port";
    return std::nullopt;
  }
  result.port = static_cast<uint16_t>(*port);
  return result;
}

namespace {

std::string displayQuery(const HostPort& query) {
  const bool v6 = query.host.find(':') != std::string::npos;
  return (v6 ? "[" + query.host + "]" : query.host) + ":" + std::to_string(query.port);
}

// Ports on which the host would be allowed, to make a denial actionable.
std::vector<uint16_t> otherAllowedPorts(const policy::Policy& policy, const HostPort& query) {
  std::vector<uint16_t> ports;
  for (uint16_t port : policy.portsInUse()) {
    if (port != query.port && !policy.explain(query.host, port).empty()) ports.push_back(port);
  }
  return ports;
}

}  // namespace

int printExplanation(const policy::Policy& policy, const HostPort& query, bool json, std::ostream& out) {
  const auto allowances = policy.explain(query.host, query.port);
  const bool allowed = !allowances.empty();
  const bool isAddress = common::parseIpAddress(query.host).has_value();
  // Names allowed only by name rules still need egressd's DNS to have handed
  // out the destination address (strict binding); world access does not.
  bool needsBinding = false;
  if (allowed && !isAddress) {
    needsBinding = true;
    for (const auto& a : allowances) needsBinding = needsBinding && a.kind != policy::MatchKind::World;
  }
  const auto otherPorts = allowed ? std::vector<uint16_t>{} : otherAllowedPorts(policy, query);

  if (json) {
    nlohmann::json doc;
    doc["query"] = displayQuery(query);
    doc["verdict"] = allowed ? "allow" : "deny";
    doc["allowed_by"] = nlohmann::json::array();
    for (const auto& a : allowances) {
      doc["allowed_by"].push_back(
          {{"rule_set", a.ruleSet}, {"target", a.target}, {"kind", policy::matchKindName(a.kind)}});
    }
    doc["needs_dns_binding"] = needsBinding;
    doc["allowed_on_other_ports"] = otherPorts;
    out << doc.dump() << '\n';
    return allowed ? 0 : 1;
  }

  out << displayQuery(query) << (allowed ? " ALLOWED" : " DENIED") << '\n';
  if (allowed) {
    for (const auto& a : allowances) {
      out << "  by " << a.ruleSet << "  (target " << a.target << ", " << policy::matchKindName(a.kind)
          << ")\n";
    }
    if (needsBinding) {
      out << "  note: with strict binding, the destination address must come from egressd's DNS answer for "
          << query.host << '\n';
    }
    return 0;
  }
  out << "  no rule set allows " << (isAddress ? "this address" : "this name") << " on port " << query.port
      << '\n';
  if (!otherPorts.empty()) {
    out << "  allowed on other ports:";
    for (uint16_t port : otherPorts) out << ' ' << port;
    out << '\n';
  }
  if (!policy.portInUse(query.port)) out << "  no rule set uses port " << query.port << " at all\n";
  return 1;
}

int runExplain(const ExplainOptions& options, std::ostream& out, std::ostream& err) {
  std::string error;
  const auto query = parseHostPort(options.query, error);
  if (!query) {
    err << "egressctl explain: \"" << options.query << "\": " << error << '\n';
    return 2;
  }
  if (options.rulesDirs.empty()) {
    err << "egressctl explain: give --rules-dir DIR (querying a running egressd through its control socket "
           "is "
           "not available in this version)\n";
    return 2;
  }
  for (const auto& dir : options.rulesDirs) {
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) {
      err << "egressctl explain: --rules-dir " << dir << ": not a directory\n";
      return 2;
    }
  }
  const auto load = policy::loadRulesDirectories(options.rulesDirs, policy::defaultPublicSuffixList());
  for (const auto& problem : load.problems) {
    if (problem.severity == policy::Severity::Error)
      err << "warning: skipped: " << problem.toString() << '\n';
  }
  const auto compiled = policy::Policy::compile(load.valid);
  return printExplanation(*compiled, *query, options.json, out);
}

}  // namespace cli

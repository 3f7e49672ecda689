#include "cli/rules_command.h"

#include <algorithm>
#include <iomanip>
#include <iostream>

#include "cli/control_client.h"

namespace cli {

namespace {

std::string text(const nlohmann::json& value, const char* key) {
  const auto it = value.find(key);
  return it != value.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

void printRules(const nlohmann::json& rules, std::ostream& out) {
  const auto& sets = rules.contains("rule_sets") ? rules["rule_sets"] : nlohmann::json::array();
  const auto& merged = rules.contains("union") ? rules["union"] : nlohmann::json::array();
  out << "policy generation " << rules.value("generation", uint64_t{0}) << ": " << sets.size()
      << (sets.size() == 1 ? " rule set, " : " rule sets, ") << rules.value("targets", size_t{0})
      << " targets; ports in use:";
  if (rules.contains("ports") && rules["ports"].is_array()) {
    for (const auto& port : rules["ports"]) out << ' ' << port.dump();
  }
  out << "\n\n";

  size_t idWidth = 8;
  for (const auto& set : sets) idWidth = std::max(idWidth, text(set, "id").size());
  out << std::left << std::setw(static_cast<int>(idWidth + 2)) << "RULE SET" << std::setw(8) << "TARGETS"
      << "SOURCE\n";
  for (const auto& set : sets) {
    const size_t count = set.contains("targets") && set["targets"].is_array() ? set["targets"].size() : 0;
    std::string source = text(set, "source");
    if (set.value("system", false)) source += "  (system)";
    out << std::setw(static_cast<int>(idWidth + 2)) << text(set, "id") << std::setw(8) << count << source
        << '\n';
  }

  size_t targetWidth = 6;
  for (const auto& row : merged) targetWidth = std::max(targetWidth, text(row, "target").size());
  out << '\n'
      << std::setw(static_cast<int>(targetWidth + 2)) << "TARGET"
      << "ALLOWED BY\n";
  for (const auto& row : merged) {
    out << std::setw(static_cast<int>(targetWidth + 2)) << text(row, "target");
    bool first = true;
    if (row.contains("rule_sets") && row["rule_sets"].is_array()) {
      for (const auto& id : row["rule_sets"]) {
        out << (first ? "" : ", ") << (id.is_string() ? id.get<std::string>() : id.dump());
        first = false;
      }
    }
    out << '\n';
  }
  out << std::right;
}

int runRules(const RulesOptions& options, std::ostream& out, std::ostream& err) {
  std::string error;
  auto client = ControlClient::connect(options.socket, error);
  if (!client) {
    err << "egressctl rules: " << error << '\n';
    return 1;
  }
  control::Request request;
  request.op = control::Op::Rules;
  const auto response = client->call(request, error);
  if (!response || !response->contains("rules")) {
    err << "egressctl rules: " << (error.empty() ? "no rules in the answer" : error) << '\n';
    return 1;
  }
  if (options.json) {
    out << (*response)["rules"].dump(2) << '\n';
  } else {
    printRules((*response)["rules"], out);
  }
  return 0;
}

}  // namespace cli

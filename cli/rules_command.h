// `egressctl rules`: the running egressd's compiled policy with provenance
// (rule sets, their sources and targets, and the union: each target with
// every rule set that allows it), as a table or --json.
#pragma once

#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>

namespace cli {

struct RulesOptions {
  std::string socket;
  bool json = false;
};

// The table for a "rules" object of the control protocol (pure).
void printRules(const nlohmann::json& rules, std::ostream& out);

// Exit code: 0, 1 when egressd cannot be asked.
int runRules(const RulesOptions& options, std::ostream& out, std::ostream& err);

}  // namespace cli

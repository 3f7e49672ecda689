// `egressctl explain HOST:PORT --rules-dir DIR...`: is HOST:PORT allowed,
// and by which rule sets. Offline with --rules-dir; the running daemon's
// policy is asked through the control socket otherwise.
#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/control_protocol.h"
#include "policy/policy.h"

namespace cli {

struct ExplainOptions {
  std::string query;                   // HOST:PORT
  std::vector<std::string> rulesDirs;  // empty: ask the running egressd
  bool json = false;
  std::string socket;  // the control socket, without rulesDirs
};

using HostPort = control::HostPort;

// "api.example.com:443", "203.0.113.7:443", "[2001:db8::1]:443"; an
// internationalised name is converted to A-labels ("bücher.example:443").
std::optional<HostPort> parseHostPort(const std::string& text, std::string& error);

// `text` with its host as A-labels when it has non-ASCII characters (`note`
// then says "bücher.example is xn--bcher-kva.example"); `error` when the
// host is not a valid internationalised name.
std::string toAsciiQuery(const std::string& text, std::string& note, std::string& error);

// Prints the answer for `query` against `policy`; returns 0 allowed, 1 denied.
int printExplanation(const policy::Policy& policy, const HostPort& query, bool json, std::ostream& out);
// The same from control::explainJson()'s object (offline or from egressd).
int printExplanation(const nlohmann::json& explanation, const HostPort& query, bool json, std::ostream& out);

// Returns 0 allowed, 1 denied, 2 usage or load error.
int runExplain(const ExplainOptions& options, std::ostream& out, std::ostream& err);

}  // namespace cli

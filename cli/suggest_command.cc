#include "cli/suggest_command.h"

#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string_view>
#include <vector>

#include "cli/control_client.h"
#include "common/duration.h"
#include "common/errno_text.h"
#include "policy/manifest.h"
#include "policy/policy.h"
#include "suggest/line_reader.h"
#include "suggest/suggester.h"

namespace cli {

namespace {

using SteadyClock = std::chrono::steady_clock;
constexpr size_t kShownBadLines = 5;

std::string timeLeft(std::chrono::seconds left) {
  const auto total = std::max<int64_t>(left.count(), 0);
  std::string out;
  if (total >= 3600) out += std::to_string(total / 3600) + "h";
  if (total >= 60) out += std::to_string(total / 60 % 60) + "m";
  out += std::to_string(total % 60) + "s";
  return out;
}

// Listens to egressd's watch stream until `duration` is over (or Ctrl-C),
// counting every decision into `suggester`; progress on `err`.
int listen(const SuggestOptions& options, common::Duration duration, suggest::Suggester& suggester,
           std::ostream& err) {
  installInterruptHandler();
  std::string error;
  auto client = ControlClient::connect(options.socket, error);
  if (!client) {
    err << "egressctl suggest: " << error << "\n  (or give --from FILE, saved by egressctl watch --json)\n";
    return 1;
  }
  control::Request request;
  request.op = control::Op::Watch;
  request.format = control::WatchFormat::Json;
  if (!client->call(request, error)) {
    err << "egressctl suggest: " << error << '\n';
    return 1;
  }
  const bool terminal = ::isatty(STDERR_FILENO) == 1;
  const auto start = SteadyClock::now();
  const auto deadline = start + duration;
  auto nextProgress = start;
  uint64_t dropped = 0;
  std::string line;
  auto progress = [&](bool last) {
    const auto left = std::chrono::ceil<std::chrono::seconds>(deadline - SteadyClock::now());
    std::string text = "egressctl suggest: " + std::to_string(suggester.decisions()) + " decisions, " +
                       std::to_string(suggester.distinctNames()) + " names";
    if (!last) text += ", " + timeLeft(left) + " left";
    if (terminal) {
      err << '\r' << text << "\x1b[K" << (last ? "\n" : "") << std::flush;
    } else {
      err << text << '\n' << std::flush;
    }
  };
  // On a terminal the line is redrawn every second; in a log every 10 s.
  const auto every = terminal ? std::chrono::seconds(1) : std::chrono::seconds(10);
  for (;;) {
    const auto now = SteadyClock::now();
    if (now >= deadline) break;
    if (now >= nextProgress) {
      progress(false);
      nextProgress = now + every;
    }
    const auto wait =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::min(deadline, nextProgress) - now);
    const auto status = client->readLine(line, error, std::max(wait, std::chrono::milliseconds(1)));
    if (status == ControlClient::ReadStatus::Timeout) continue;
    if (status == ControlClient::ReadStatus::Interrupted) {
      if (terminal) err << '\n';
      err << "egressctl suggest: interrupted; suggesting from what was seen\n";
      break;
    }
    if (status == ControlClient::ReadStatus::Closed || status == ControlClient::ReadStatus::Error) {
      if (terminal) err << '\n';
      err << "egressctl suggest: " << (error.empty() ? "egressd closed the connection" : error) << '\n';
      return 1;
    }
    const auto result = suggest::readLine(line, &dropped);
    if (result.kind == suggest::LineKind::Event) suggester.add(result.event);
  }
  progress(true);
  if (dropped > 0) {
    err << "egressctl suggest: warning: egressd dropped " << dropped
        << " events for this client (it did not keep up): some destinations may be missing\n";
  }
  return 0;
}

// Reads a `watch --json` file (or stdin); bad lines are named, and the
// input fails only when nothing in it was an event.
int readFile(const SuggestOptions& options, std::istream& in, suggest::Suggester& suggester,
             std::ostream& err) {
  std::ifstream file;
  std::istream* input = &in;
  const std::string name = options.from == "-" ? "<stdin>" : options.from;
  if (options.from != "-") {
    std::error_code ec;
    if (std::filesystem::is_directory(options.from, ec)) {
      err << "egressctl suggest: --from " << options.from
          << ": is a directory; expected a file saved by egressctl watch --json\n";
      return 1;
    }
    file.open(options.from);
    if (!file) {
      err << "egressctl suggest: --from " << options.from << ": cannot open: " << common::errnoText(errno)
          << '\n';
      return 1;
    }
    input = &file;
  }
  uint64_t lineNumber = 0;
  uint64_t bad = 0;
  uint64_t events = 0;
  observe::Event event;  // reused line after line
  std::string error;
  auto oneLine = [&](std::string_view line) {
    ++lineNumber;
    const auto kind = suggest::readLine(line, event, error);
    if (kind == suggest::LineKind::Event) {
      suggester.add(event);
      ++events;
    } else if (kind == suggest::LineKind::Invalid) {
      if (++bad <= kShownBadLines) {
        err << "egressctl suggest: " << name << ":" << lineNumber << ": not a decision event: " << error
            << '\n';
      }
    }
  };
  // Large blocks, lines cut in place (as std::getline would: at '\n', the
  // last one also without it): a million lines are one pass over the bytes.
  constexpr size_t kBlock = 1 << 20;
  std::vector<char> buffer(kBlock);
  size_t held = 0;  // bytes of an unfinished line at the buffer's start
  while (*input) {
    if (buffer.size() - held < kBlock / 2) buffer.resize(buffer.size() * 2);  // a line longer than a block
    input->read(buffer.data() + held, static_cast<std::streamsize>(buffer.size() - held));
    const size_t filled = held + static_cast<size_t>(input->gcount());
    size_t start = 0;
    while (const void* found = std::memchr(buffer.data() + start, '\n', filled - start)) {
      const size_t end = static_cast<size_t>(static_cast<const char*>(found) - buffer.data());
      oneLine(std::string_view(buffer.data() + start, end - start));
      start = end + 1;
    }
    held = filled - start;
    std::memmove(buffer.data(), buffer.data() + start, held);
  }
  if (held > 0) oneLine(std::string_view(buffer.data(), held));
  if (input->bad()) {
    err << "egressctl suggest: " << name << ": read error\n";
    return 1;
  }
  if (bad > kShownBadLines) {
    err << "egressctl suggest: " << name << ": " << bad - kShownBadLines
        << " more lines that are not events\n";
  }
  if (bad > 0) {
    err << "egressctl suggest: " << name << ": skipped " << bad << " of " << lineNumber << " lines\n";
  }
  // An empty input too: `watch --json > FILE` that caught nothing must not
  // pass for "nothing to allow" (docs/egressctl.md: exit 1).
  if (events == 0) {
    err << "egressctl suggest: " << name << ": no decision events in it"
        << (lineNumber == 0 ? " (it is empty)" : "") << " (expected the output of egressctl watch --json)\n";
    return 1;
  }
  return 0;
}

struct RulesInForce {
  std::shared_ptr<const policy::Policy> policy;  // null with --all
  int status = 0;
};

RulesInForce rulesInForce(const SuggestOptions& options, std::ostream& err) {
  RulesInForce out;
  if (!options.rulesDirs.empty()) {
    const auto load = policy::loadRulesDirectories(options.rulesDirs, policy::defaultPublicSuffixList());
    for (const auto& problem : load.problems) {
      if (problem.severity == policy::Severity::Error)
        err << "warning: not in force: " << problem.toString() << '\n';
    }
    out.policy = policy::Policy::compile(load.ruleSets);
    return out;
  }
  std::string error;
  auto client = ControlClient::connect(options.socket, error);
  std::optional<nlohmann::json> response;
  if (client) {
    control::Request request;
    request.op = control::Op::Rules;
    response = client->call(request, error);
  }
  std::optional<std::vector<policy::RuleSet>> ruleSets;
  if (response && response->contains("rules")) ruleSets = ruleSetsFromRulesJson((*response)["rules"], error);
  if (response && !response->contains("rules")) error = "its answer to the rules request has no rules";
  if (!ruleSets && options.all) return out;  // --all: nothing is left out; only the marks are missing
  if (!ruleSets) {
    err << "egressctl suggest: cannot read the rules in force from egressd: " << error
        << "\n  (give --rules-dir DIR to compare with rule files offline, or --all to list every "
           "destination)\n";
    out.status = 1;
    return out;
  }
  out.policy = policy::Policy::compile(*ruleSets);
  return out;
}

}  // namespace

std::optional<std::vector<policy::RuleSet>> ruleSetsFromRulesJson(const nlohmann::json& rules,
                                                                  std::string& error) {
  const auto list = rules.find("rule_sets");
  if (!rules.is_object() || list == rules.end() || !list->is_array()) {
    error = "the rules answer has no rule_sets list";
    return std::nullopt;
  }
  std::vector<policy::RuleSet> out;
  for (const auto& item : *list) {
    if (!item.is_object() || !item.contains("id") || !item["id"].is_string() || !item.contains("targets") ||
        !item["targets"].is_array()) {
      error = "a rule set in the rules answer has no id or targets";
      return std::nullopt;
    }
    policy::RuleSet ruleSet;
    const std::string id = item["id"].get<std::string>();
    const size_t slash = id.find('/');
    ruleSet.ns = slash == std::string::npos ? "default" : id.substr(0, slash);
    ruleSet.name = slash == std::string::npos ? id : id.substr(slash + 1);
    ruleSet.system = item.value("system", false);
    for (const auto& text : item["targets"]) {
      if (!text.is_string()) continue;
      auto parsed = policy::parseTarget(text.get<std::string>(), policy::defaultPublicSuffixList());
      if (!parsed.target) continue;  // in force in egressd means valid; a newer syntax is skipped
      ruleSet.targets.push_back(*parsed.target);
      ruleSet.targetTexts.push_back(text.get<std::string>());
    }
    out.push_back(std::move(ruleSet));
  }
  return out;
}

int runSuggest(const SuggestOptions& options, std::istream& in, std::ostream& out, std::ostream& err) {
  // Usage first, before listening for ten minutes.
  if (options.from.empty() == options.forDuration.empty()) {
    err << "egressctl suggest: give either --for DURATION (listen to egressd, e.g. --for 10m) or --from FILE "
           "(saved by egressctl watch --json; - for stdin)\n";
    return 2;
  }
  std::optional<common::Duration> duration;
  if (!options.forDuration.empty()) {
    duration = common::parseDuration(options.forDuration);
    if (!duration || duration->count() <= 0) {
      err << "egressctl suggest: --for \"" << options.forDuration
          << "\": expected a duration with a unit, e.g. 30s, 10m, 1h30m\n";
      return 2;
    }
  }
  suggest::Options settings;
  if (options.per == "namespace") {
    settings.per = suggest::Per::Namespace;
  } else if (options.per == "workload") {
    settings.per = suggest::Per::Workload;
  } else {
    err << "egressctl suggest: --per \"" << options.per << "\": expected namespace or workload\n";
    return 2;
  }
  if (options.wildcardMin < 2) {
    err << "egressctl suggest: --wildcard-min " << options.wildcardMin
        << ": must be at least 2 (a wildcard for one name is never needed)\n";
    return 2;
  }
  if (suggest::objectName(options.unattributedNamespace) != options.unattributedNamespace ||
      options.unattributedNamespace.size() > 63) {
    err << "egressctl suggest: --unattributed-namespace \"" << options.unattributedNamespace
        << "\": not a Kubernetes namespace name (lower case letters, digits and '-', at most 63)\n";
    return 2;
  }
  if (suggest::objectName(options.namePrefix) != options.namePrefix || options.namePrefix.size() > 200) {
    err << "egressctl suggest: --name \"" << options.namePrefix
        << "\": not a Kubernetes object name (lower case letters, digits and '-', at most 200)\n";
    return 2;
  }
  for (const auto& dir : options.rulesDirs) {
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) {
      err << "egressctl suggest: --rules-dir " << dir << ": not a directory\n";
      return 2;
    }
  }
  settings.wildcardMin = options.wildcardMin;
  settings.all = options.all;
  settings.unattributedNamespace = options.unattributedNamespace;
  settings.namePrefix = options.namePrefix;

  // The rules in force first: a missing egressd is said before listening
  // for ten minutes, and Ctrl-C, which ends the window, ends nothing else.
  const RulesInForce rules = rulesInForce(options, err);
  if (rules.status != 0) return rules.status;
  suggest::Suggester suggester(policy::defaultPublicSuffixList(), settings);
  const int status =
      duration ? listen(options, *duration, suggester, err) : readFile(options, in, suggester, err);
  if (status != 0) return status;
  const suggest::Suggestion suggestion = suggester.finish(rules.policy.get());
  if (suggestion.droppedDestinations > 0) {
    err << "egressctl suggest: warning: more than " << settings.maxDestinations << " distinct destinations; "
        << suggestion.droppedDestinations << " decisions were not counted (the output says so)\n";
  }
  out << suggest::renderYaml(suggestion);
  out.flush();
  if (!out) {
    err << "egressctl suggest: cannot write the output\n";
    return 1;
  }
  return 0;
}

}  // namespace cli

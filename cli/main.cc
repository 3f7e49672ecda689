// egressctl: the operator's tool. Wiring only; each subcommand lives in
// cli/<name>_command.cc.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <vector>

#include "cli/control_client.h"
#include "cli/explain_command.h"
#include "cli/lint_command.h"
#include "cli/rules_command.h"
#include "cli/stats_command.h"
#include "cli/suggest_command.h"
#include "cli/top_command.h"
#include "cli/watch_command.h"
#include "common/command_line.h"

namespace {

// --socket and --config of one subcommand; which socket they name is
// decided after parsing (cli::chooseSocket), so that --socket beats
// --config beats $EGRESSCTL_SOCKET beats the default.
struct SocketFlags {
  std::string socket;
  std::string configFile;
  std::vector<CLI::Option*> socketOptions;  // one per subcommand

  bool socketGiven() const {
    return std::any_of(socketOptions.begin(), socketOptions.end(),
                       [](const CLI::Option* option) { return option->count() > 0; });
  }
};

void addSocketOption(CLI::App* command, SocketFlags& flags) {
  flags.socketOptions.push_back(
      command->add_option("--socket,-S", flags.socket,
                          "egressd's control socket (default: $EGRESSCTL_SOCKET, else " +
                              std::string(cli::kDefaultSocket) + ")"));
  command->add_option("--config", flags.configFile,
                      "Take the socket from this egressd.toml ([control] socket)");
}

constexpr const char* kFilterHelp =
    "Filter words, tcpdump style (pcap-filter(7)); joined with spaces:\n"
    "  [src|dst] host ADDR, [src|dst] net CIDR, [src|dst] port N[-M]|https|http|domain|...,\n"
    "  name NAME|*.SUFFIX, sni NAME|*.SUFFIX, verdict allow|deny|audit, reason REASON[*],\n"
    "  proto tcp|udp|icmp|icmp6 (or tcp, udp, icmp), dns, qtype A|AAAA|TXT|..., rcode NXDOMAIN|...,\n"
    "  ruleset NS/NAME; combined with and/&&, or/||, not/!, parentheses.\n"
    "  e.g.: egressctl watch verdict deny and port 443";

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"egressctl: lint, explain and observe egressd's egress allowlist"};
  app.require_subcommand(0, 1);  // none: the list of subcommands (below)
  SocketFlags socketFlags;
  app.set_version_flag("--version", "egressctl " + std::string(control::kVersion));

  cli::LintOptions lint;
  auto* lintCommand = app.add_subcommand(
      "lint", "Validate EgressRuleSet manifests offline (exit 0 valid, 1 errors); warns about world access");
  lintCommand
      ->add_option("paths", lint.paths, "Manifest files or directories (*.yaml, *.yml, *.json), - for stdin")
      ->required();
  lintCommand->add_flag("--warnings-as-errors,-W", lint.warningsAsErrors, "Exit 1 on warnings too");
  lintCommand->add_flag("--quiet,-q", lint.quiet, "No summary line");

  cli::ExplainOptions explain;
  auto* explainCommand = app.add_subcommand(
      "explain",
      "Is HOST:PORT allowed, and by which rule sets? Asks the running egressd, or loads --rules-dir offline "
      "(exit 0 allowed, 1 denied, 2 usage error or egressd unreachable)");
  explainCommand
      ->add_option("target", explain.query, "HOST:PORT, e.g. api.example.com:443, [2001:db8::1]:443")
      ->required();
  explainCommand->add_option("--rules-dir,-r", explain.rulesDirs,
                             "Rules directory to load instead of asking egressd (repeatable)");
  explainCommand->add_flag("--json", explain.json, "One JSON object instead of text");
  addSocketOption(explainCommand, socketFlags);

  cli::WatchOptions watch;
  auto* watchCommand = app.add_subcommand(
      "watch",
      "Live decisions of the running egressd, one line each, tcpdump style:\n"
      "  TIME SRC > DST PROTO [sni=NAME] VERDICT [by RULESETS | reason]; DNS answers and refusals too.\n"
      "Exit 0 when -c is reached or on Ctrl-C, 1 when egressd goes away, 2 on a bad filter.");
  watchCommand->add_option("filter", watch.filter, kFilterHelp);
  watchCommand->add_option("-c,--count", watch.count, "Exit after N matching decisions");
  watchCommand->add_flag("--json", watch.json, "One JSON object per decision (docs/control-protocol.md)");
  watchCommand->add_option(
      "-w,--write", watch.writeFile,
      "Write the deciding packet of each matching decision to a pcap file (- for stdout) "
      "instead of printing lines; read it with tcpdump -r or Wireshark");
  watchCommand->add_flag("--print", watch.print, "With -w FILE: print the lines as well");
  watchCommand->add_flag("--no-colour,--no-color", watch.noColour,
                         "No colours (the default when stdout is not a terminal)");
  watchCommand->add_flag("--utc", watch.utc, "Times in UTC instead of local time");
  addSocketOption(watchCommand, socketFlags);

  cli::RulesOptions rules;
  auto* rulesCommand = app.add_subcommand(
      "rules",
      "The running egressd's policy: rule sets with their sources, and each target with the rule sets "
      "that allow it");
  rulesCommand->add_flag("--json", rules.json, "The control protocol's JSON object");
  addSocketOption(rulesCommand, socketFlags);

  cli::StatsOptions stats;
  auto* statsCommand = app.add_subcommand("stats", "The running egressd's counters (as /metrics has them)");
  statsCommand->add_flag("--json", stats.json, "One JSON object (per refresh)");
  std::string statsWatch;  // a string: "--watch" alone means 2 seconds
  auto* statsWatchOption =
      statsCommand
          ->add_option("--watch", statsWatch,
                       "Refresh every SECONDS (--watch 1, --watch=0.5; --watch alone: every 2 s)")
          ->expected(0, 1)
          ->type_name("[SECONDS]");
  statsCommand->add_option("--iterations", stats.iterations, "With --watch: stop after N refreshes");
  addSocketOption(statsCommand, socketFlags);

  cli::TopOptions top;
  auto* topCommand = app.add_subcommand(
      "top",
      "Busiest destinations and most-denied names, refreshed every --interval seconds (each report "
      "covers that window), from the watch stream");
  topCommand->add_option("filter", top.filter, "Only decisions matching this filter (as for watch)");
  topCommand->add_option("--interval,-i", top.intervalSeconds, "Window length in seconds")
      ->capture_default_str();
  topCommand->add_option("-n,--rows", top.rows, "Rows per table")->capture_default_str();
  topCommand->add_option("--iterations", top.iterations, "Stop after N reports (default: until Ctrl-C)");
  topCommand->add_flag("--json", top.json, "One JSON object per report");
  topCommand
      ->add_option("--by", top.by,
                   "Also count decisions per client: namespace, or workload (NAMESPACE/KIND/NAME); "
                   "needs attribution (docs/attribution.md)")
      ->check(CLI::IsMember({"namespace", "workload"}));
  addSocketOption(topCommand, socketFlags);

  cli::SuggestOptions suggest;
  std::string suggestFile;
  auto* suggestCommand = app.add_subcommand(
      "suggest",
      "Propose EgressRuleSets (YAML for kubectl apply) from observed decisions: listen to the running "
      "egressd\n"
      "  (--for 10m) or read a file saved by `egressctl watch --json` (--from FILE). One rule set per\n"
      "  namespace (--per workload: per workload); each target with its hit count, first/last seen and\n"
      "  the workloads that used it. Names already allowed by the rules in force are left out (--all:\n"
      "  kept). e.g. egressctl suggest --for 10m > suggested.yaml; egressctl lint suggested.yaml\n"
      "Exit 0 done, 1 egressd or the input failed, 2 usage error.");
  suggestCommand->add_option("file", suggestFile, "Same as --from FILE");
  suggestCommand->add_option("--from,-f", suggest.from,
                             "A file saved by egressctl watch --json (- for stdin) instead of listening");
  suggestCommand->add_option(
      "--for", suggest.forDuration,
      "Listen to egressd this long (30s, 10m, 1h); progress on stderr, Ctrl-C ends early");
  suggestCommand->add_option("--per", suggest.per, "One rule set per namespace or per workload")
      ->capture_default_str();
  suggestCommand
      ->add_option("--wildcard-min", suggest.wildcardMin,
                   "Collapse names into *.DOMAIN:PORT when at least this many distinct names under one "
                   "registrable domain were seen on PORT (never over a public suffix)")
      ->capture_default_str();
  suggestCommand->add_flag(
      "--all", suggest.all,
      "Also list destinations the rules in force already allow, marked as such (then an egressd "
      "that cannot be reached only costs the marks)");
  // One directory per --rules-dir, so that `--rules-dir DIR FILE` keeps FILE.
  suggestCommand
      ->add_option("--rules-dir,-r", suggest.rulesDirs,
                   "The rules in force from this directory instead of from egressd (repeatable)")
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  suggestCommand
      ->add_option(
          "--unattributed-namespace", suggest.unattributedNamespace,
          "Namespace of the rule set for clients that are not known pods (no namespace in the decisions)")
      ->capture_default_str();
  suggestCommand
      ->add_option("--name", suggest.namePrefix,
                   "metadata.name of each rule set (--per workload: NAME-KIND-WORKLOAD; unattributed: "
                   "NAME-unattributed)")
      ->capture_default_str();
  addSocketOption(suggestCommand, socketFlags);

  try {
    common::CommandLine line(argc, argv);
    app.parse(line.argc(), line.argv());
  } catch (const CLI::ParseError& e) {
    // CLI11 exits 0 for --help; usage errors are 2 for every subcommand.
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (app.get_subcommands().empty()) {
    // Bare `egressctl`: what it can do, as --help says it (a usage error).
    std::cerr << app.help();
    return 2;
  }
  if (!*lintCommand) {
    std::string socket;
    std::string error;
    // Read once at start-up, before any other thread exists.
    const char* environment = std::getenv("EGRESSCTL_SOCKET");  // NOLINT(concurrency-mt-unsafe)
    if (!cli::chooseSocket(socketFlags.socketGiven() ? &socketFlags.socket : nullptr, socketFlags.configFile,
                           environment, socket, error)) {
      std::cerr << "egressctl " << app.get_subcommands().front()->get_name() << ": " << error << '\n';
      return 2;
    }
    explain.socket = watch.socket = rules.socket = stats.socket = top.socket = suggest.socket = socket;
  }
  if (*lintCommand) return cli::runLint(lint, std::cin, std::cout);
  if (*explainCommand) return cli::runExplain(explain, std::cout, std::cerr);
  if (*watchCommand) return cli::runWatch(watch);
  if (*rulesCommand) return cli::runRules(rules, std::cout, std::cerr);
  if (*statsCommand) {
    if (statsWatchOption->count() > 0 && statsWatch.empty()) statsWatch = "2";
    if (!statsWatch.empty()) {
      char* end = nullptr;
      stats.watchSeconds = std::strtod(statsWatch.c_str(), &end);
      if (end == statsWatch.c_str() || *end != '\0' || stats.watchSeconds <= 0) {
        std::cerr << "egressctl stats: --watch SECONDS needs a number of seconds above 0, not \""
                  << statsWatch << "\"\n";
        return 2;
      }
    }
    return cli::runStats(stats, std::cout, std::cerr);
  }
  if (*topCommand) return cli::runTop(top, std::cout, std::cerr);
  if (*suggestCommand) {
    if (!suggestFile.empty()) {
      if (!suggest.from.empty()) {
        std::cerr << "egressctl suggest: a FILE and --from " << suggest.from << ": give one of them\n";
        return 2;
      }
      suggest.from = suggestFile;
    }
    return cli::runSuggest(suggest, std::cin, std::cout, std::cerr);
  }
  return 2;
}

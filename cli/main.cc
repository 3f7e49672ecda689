// egressctl: the operator's tool. Wiring only; each subcommand lives in
// cli/<name>_command.cc.
#include <CLI/CLI.hpp>

#include <iostream>

#include "cli/explain_command.h"
#include "cli/lint_command.h"

int main(int argc, char** argv) {
  CLI::App app{"egressctl: lint, explain and observe egressd's egress allowlist"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "egressctl 0.1.0");

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
      "explain", "Is HOST:PORT allowed, and by which rule sets? (exit 0 allowed, 1 denied, 2 usage error)");
  explainCommand
      ->add_option("target", explain.query, "HOST:PORT, e.g. api.example.com:443, [2001:db8::1]:443")
      ->required();
  explainCommand->add_option("--rules-dir,-r", explain.rulesDirs, "Rules directory to load (repeatable)");
  explainCommand->add_flag("--json", explain.json, "One JSON object instead of text");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 exits 0 for --help; usage errors are 2 for every subcommand.
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (*lintCommand) return cli::runLint(lint, std::cin, std::cout);
  if (*explainCommand) return cli::runExplain(explain, std::cout, std::cerr);
  return 2;
}

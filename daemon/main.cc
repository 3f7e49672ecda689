// egressd: the transparent egress gateway. Wiring only (daemon/daemon.cc).
#include <CLI/CLI.hpp>

#include <iostream>

#include "common/command_line.h"
#include "common/log.h"
#include "config/load.h"
#include "daemon/check_config.h"
#include "daemon/control_protocol.h"
#include "daemon/daemon.h"
#include "daemon/enforcement.h"

int main(int argc, char** argv) {
  CLI::App app{
      "egressd: answers DNS only for allowlisted names and judges every new outbound connection\n"
      "against the union of the cluster's EgressRuleSets (see egressctl for lint/explain/watch)."};
  std::string configPath = "/etc/egressd/egressd.toml";
  bool checkOnly = false;
  bool uninstallOnly = false;
  bool strict = false;
  app.add_option("--config,-c", configPath, "Configuration file (egressd.toml)")->capture_default_str();
  app.add_flag("--check-config", checkOnly,
               "Validate the configuration and its rules directories, then exit "
               "(0 valid, 1 with every problem listed)");
  app.add_flag("--strict", strict,
               "With --check-config: also exit 1 when a rule set or target is refused (for CI); without it "
               "they are listed, and egressd runs with the rest");
  app.add_flag(
      "--uninstall", uninstallOnly,
      "Remove the iptables/ip6tables chains egressd installed (SIGTERM leaves them in place so that nothing "
      "leaks while egressd restarts; the DNS take-over chains of dns.intercept too), then exit");
  app.set_version_flag("--version", "egressd " + std::string(control::kVersion));
  try {
    common::CommandLine line(argc, argv);
    app.parse(line.argc(), line.argv());
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  if (strict && !checkOnly) {
    std::cerr << "egressd: --strict only applies to --check-config\n";
    return 2;
  }
  if (checkOnly) return daemon_main::runCheckConfig(configPath, std::cout, strict);

  config::ConfigLoad loaded = config::loadConfigFile(configPath);
  if (!loaded.ok()) {
    // Start-up errors are fatal, and all of them are shown at once.
    for (const auto& problem : loaded.problems) std::cerr << problem.toString() << '\n';
    std::cerr << "egressd: not starting: " << loaded.problems.size() << " configuration problem"
              << (loaded.problems.size() == 1 ? "" : "s") << " in " << configPath << '\n';
    return 1;
  }
  if (uninstallOnly) {
    std::string error;
    if (!daemon_main::uninstall(*loaded.config, error)) {
      std::cerr << "egressd: uninstall failed: " << error << '\n';
      return 1;
    }
    std::cout
        << "egressd: removed the EGRESSD chain, the EGRESSD-DNS chains and their jumps (IPv4 and IPv6)\n";
    return 0;
  }
  common::setLogLevel(loaded.config->log.level);
  common::setLogStyle(loaded.config->log.format == config::LogFormat::Json ? common::LogStyle::Json
                                                                           : common::LogStyle::Logfmt);
  for (const auto& warning : loaded.warnings) {
    common::LogLine(common::LogLevel::Warn, "config.warning").field("problem", warning.toString());
  }
  daemon_main::Daemon daemon(configPath, std::move(*loaded.config));
  return daemon.run();
}

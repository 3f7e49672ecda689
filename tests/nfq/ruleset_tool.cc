// Test driver for nfq/ruleset: `nfq_ruleset_tool apply|remove|print|print-legacy
// [--output] [--queues A:B] [--protect CIDR]... [--fast-path] [--confirm]
// [--kernel-guard DIR] [--kernel-verdict] [--chain NAME]`
// in the current network namespace (the script test runs it under
// `ip netns exec`).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "nfq/ruleset.h"
#include "tests/nfq/ruleset_legacy.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s apply|remove|print [--output] [--queues A:B] [--protect CIDR]...\n",
                 argv[0]);
    return 2;
  }
  nfq::RulesetOptions options;
  for (int i = 2; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--output") {
      options.hookOutput = true;
    } else if (arg == "--fast-path") {
      options.kernelFastPath = true;
    } else if (arg == "--confirm") {
      options.confirmFirstPayload = true;
    } else if (arg == "--kernel-verdict") {
      options.kernelVerdict = true;
    } else if (arg == "--kernel-guard" && i + 1 < argc) {
      options.kernelGuardDir = argv[++i];
    } else if (arg == "--chain" && i + 1 < argc) {
      options.chain = argv[++i];
    } else if (arg == "--queues" && i + 1 < argc) {
      const std::string range = argv[++i];
      const size_t colon = range.find(':');
      options.queueFirst = static_cast<uint16_t>(std::stoi(range.substr(0, colon)));
      options.queueLast = colon == std::string::npos
                              ? options.queueFirst
                              : static_cast<uint16_t>(std::stoi(range.substr(colon + 1)));
    } else if (arg == "--protect" && i + 1 < argc) {
      const auto parsed = common::parseIpNetwork(argv[++i]);
      if (!parsed.network) {
        std::fprintf(stderr, "bad network %s\n", argv[i]);
        return 2;
      }
      options.protectedCidrs.push_back(*parsed.network);
    } else {
      std::fprintf(stderr, "unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  const std::string_view command = argv[1];
  if (command == "print" || command == "print-legacy") {
    // print-legacy: the layout before the -NEW chains (installing over it).
    for (auto family : {nfq::IpTablesFamily::V4, nfq::IpTablesFamily::V6}) {
      const auto rules = command == "print" ? nfq::renderChainRules(options, family)
                                            : nfqtest::legacyChainRules(options, family);
      for (const auto& rule : rules) std::printf("%s\n", rule.c_str());
    }
    return 0;
  }
  const nfq::CommandResult result = command == "apply"    ? nfq::applyRuleset(options)
                                    : command == "remove" ? nfq::removeRuleset(options)
                                                          : nfq::CommandResult{false, {}, "unknown command"};
  if (!result.ok) {
    std::fprintf(stderr, "%s\n", result.error.c_str());
    return 1;
  }
  return 0;
}

#include "cli/stats_command.h"

#include <unistd.h>

#include <chrono>
#include <ctime>
#include <iostream>
#include <thread>

#include "cli/control_client.h"

namespace cli {

namespace {

void flatten(const nlohmann::json& value, const std::string& prefix, std::ostream& out) {
  if (value.is_object()) {
    for (const auto& [key, child] : value.items())
      flatten(child, prefix.empty() ? key : std::string(prefix).append(".").append(key), out);
    return;
  }
  if (value.is_array() && !value.empty() && (value.front().is_object() || value.front().is_array())) {
    for (size_t i = 0; i < value.size(); ++i) flatten(value[i], prefix + "[" + std::to_string(i) + "]", out);
    return;
  }
  out << prefix << ' ' << (value.is_string() ? value.get<std::string>() : value.dump()) << '\n';
}

}  // namespace

void printStats(const nlohmann::json& stats, std::ostream& out) {
  flatten(stats, "", out);
}

int runStats(const StatsOptions& options, std::ostream& out, std::ostream& err) {
  std::string error;
  auto client = ControlClient::connect(options.socket, error);
  if (!client) {
    err << "egressctl stats: " << error << '\n';
    return 1;
  }
  installInterruptHandler();
  const bool clear = options.watchSeconds > 0 && !options.json && ::isatty(STDOUT_FILENO) == 1;
  for (uint64_t round = 1;; ++round) {
    control::Request request;
    request.op = control::Op::Stats;
    const auto response = client->call(request, error);
    if (!response || !response->contains("stats")) {
      if (interrupted()) return 0;
      err << "egressctl stats: " << (error.empty() ? "no stats in the answer" : error) << '\n';
      return 1;
    }
    if (options.json) {
      out << (*response)["stats"].dump(options.watchSeconds > 0 ? -1 : 2) << std::endl;
    } else {
      if (clear) out << "\x1b[H\x1b[2J";
      if (options.watchSeconds > 0) {
        const std::time_t now = std::time(nullptr);
        std::tm local{};
        localtime_r(&now, &local);  // std::localtime shares a static buffer
        char stamp[32];
        std::strftime(stamp, sizeof(stamp), "%H:%M:%S", &local);
        out << "egressd " << client->daemonVersion() << " at " << client->path() << ", " << stamp << '\n';
      }
      printStats((*response)["stats"], out);
      out << std::flush;
    }
    if (options.watchSeconds <= 0 || (options.iterations > 0 && round >= options.iterations)) return 0;
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(options.watchSeconds);
    while (std::chrono::steady_clock::now() < until) {
      if (interrupted()) return 0;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!clear && !options.json) out << '\n';
  }
}

}  // namespace cli

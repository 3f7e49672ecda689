#include "cli/watch_command.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <variant>

#include "cli/control_client.h"
#include "daemon/control_protocol.h"
#include "observe/filter.h"
#include "observe/format.h"
#include "observe/pcap.h"

namespace cli {

std::string joinFilter(const std::vector<std::string>& words) {
  std::string text;
  for (const auto& word : words) {
    if (!text.empty()) text += ' ';
    text += word;
  }
  return text;
}

namespace {

void writeOut(const std::string& line) {
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

}  // namespace

int runWatch(const WatchOptions& options) {
  const std::string filterText = joinFilter(options.filter);
  {
    auto parsed = observe::parseFilter(filterText);
    if (const auto* error = std::get_if<observe::FilterError>(&parsed)) {
      std::cerr << "egressctl watch: invalid filter:\n" << error->pointAt(filterText) << '\n';
      return 2;
    }
  }
  observe::PcapWriter pcap;
  const bool capture = !options.writeFile.empty();
  if (capture) {
    std::string error;
    if (!pcap.open(options.writeFile, error)) {
      std::cerr << "egressctl watch: " << error << '\n';
      return 2;
    }
  }
  const bool toStdout = capture && options.writeFile == "-";
  const bool printLines = (!capture || options.print) && !toStdout;

  installInterruptHandler();
  std::string error;
  auto client = ControlClient::connect(options.socket, error);
  if (!client) {
    std::cerr << "egressctl watch: " << error << '\n';
    return 1;
  }
  control::Request request;
  request.op = control::Op::Watch;
  request.filter = filterText;
  request.packets = capture;
  nlohmann::json response;
  if (!client->call(request, error, &response)) {
    std::cerr << "egressctl watch: " << error << '\n';
    if (response.contains("filter_error") && response["filter_error"].is_object()) {
      observe::FilterError filterError;
      filterError.offset = response["filter_error"].value("offset", size_t{0});
      filterError.length = response["filter_error"].value("length", size_t{0});
      filterError.message = response["filter_error"].value("message", std::string());
      std::cerr << filterError.pointAt(filterText) << '\n';
      return 2;
    }
    return 1;
  }

  observe::LineStyle style;
  style.colour = !options.noColour && !options.json && ::isatty(STDOUT_FILENO) == 1;
  style.utc = options.utc;
  uint64_t seen = 0;
  bool done = false;
  std::string line;
  for (;;) {
    // After the last counted event, wait briefly for its packet only.
    const auto timeout = done ? std::chrono::milliseconds(200) : std::chrono::milliseconds(-1);
    const auto status = client->readLine(line, error, timeout);
    if (status == ControlClient::ReadStatus::Timeout || status == ControlClient::ReadStatus::Interrupted)
      break;
    if (status == ControlClient::ReadStatus::Closed) {
      if (done) break;
      std::cerr << "egressctl watch: egressd closed the connection\n";
      pcap.flush();
      return 1;
    }
    if (status == ControlClient::ReadStatus::Error) {
      std::cerr << "egressctl watch: " << error << '\n';
      pcap.flush();
      return 1;
    }
    // --json: the server's event object is printed as sent, unparsed (the
    // cheap path for a busy gateway).
    constexpr std::string_view kEventPrefix = "{\"event\":";
    if (options.json && !done && line.size() > kEventPrefix.size() + 1 && line.starts_with(kEventPrefix) &&
        line.back() == '}') {
      ++seen;
      if (printLines) writeOut(line.substr(kEventPrefix.size(), line.size() - kEventPrefix.size() - 1));
      if (options.count > 0 && seen >= options.count) {
        if (!capture) break;
        done = true;
      }
      continue;
    }
    auto doc = nlohmann::json::parse(line, nullptr, false);
    if (!doc.is_object()) continue;
    if (const auto it = doc.find("event"); it != doc.end()) {
      if (done) break;
      ++seen;
      if (printLines) {
        if (options.json) {
          writeOut(it->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        } else if (auto event = observe::eventFromJson(*it)) {
          writeOut(observe::formatLine(*event, style));
        }
      }
      if (options.count > 0 && seen >= options.count) {
        if (!capture) break;
        done = true;
      }
      continue;
    }
    if (const auto it = doc.find("packet"); it != doc.end()) {
      if (!capture) continue;
      if (auto packet = control::packetFromJson(*it)) {
        if (!pcap.write(packet->time, packet->bytes, packet->originalLength) || !pcap.flush()) {
          std::cerr << "egressctl watch: cannot write " << options.writeFile << '\n';
          return 1;
        }
      }
      if (done) break;
      continue;
    }
    if (const auto it = doc.find("dropped"); it != doc.end() && it->is_number_unsigned()) {
      std::cerr << "egressctl watch: " << it->get<uint64_t>()
                << " events dropped (this client did not keep up with egressd)\n";
    }
  }
  pcap.flush();
  return 0;
}

}  // namespace cli

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

// stdout is fully buffered and flushed when the stream goes quiet (the
// control client's before-wait hook) or at the end: one write per burst of
// lines, not one per line.
void writeOut(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
}

void flushOut() {
  std::fflush(stdout);
}

observe::FilterError filterErrorFrom(const nlohmann::json& json) {
  observe::FilterError error;
  error.offset = json.value("offset", size_t{0});
  error.length = json.value("length", size_t{0});
  error.message = json.value("message", std::string());
  return error;
}

// One watch stream being printed and/or written to a pcap file.
class WatchStream {
 public:
  WatchStream(const WatchOptions& options, bool printLines, observe::PcapWriter* pcap)
      : options_(options), printLines_(printLines), pcap_(pcap), timeOfDay_(options.utc) {
    style_.colour = !options.noColour && !options.json && ::isatty(STDOUT_FILENO) == 1;
    style_.utc = options.utc;
  }

  const observe::LineStyle& style() const noexcept { return style_; }

  enum class Next { More, Stop, Fail };
  // Handles one stream line.
  Next handle(const std::string& line) {
    if (options_.json && printJsonFast(line)) return counted();
    if (control::parseTextEventLine(line, text_)) {
      if (done_) return Next::Stop;
      printText(text_.time, text_.body);
      return counted();
    }
    const auto doc = nlohmann::json::parse(line, nullptr, false);
    if (!doc.is_object()) return Next::More;
    if (const auto it = doc.find("event"); it != doc.end()) return handleEventObject(*it);
    if (const auto it = doc.find("line"); it != doc.end() && it->is_string()) {
      // A line event the fast parser did not take (e.g. a time before 1970).
      if (done_) return Next::Stop;
      const auto micros = doc.find("time_us");
      const auto time = micros != doc.end() && micros->is_number_integer()
                            ? control::timeFromMicros(micros->get<int64_t>())
                            : std::nullopt;
      printText(time.value_or(std::chrono::system_clock::time_point{}), it->get_ref<const std::string&>());
      return counted();
    }
    if (const auto it = doc.find("packet"); it != doc.end()) return handlePacket(*it);
    if (const auto it = doc.find("dropped"); it != doc.end() && it->is_number_unsigned()) {
      flushOut();
      std::cerr << "egressctl watch: " << it->get<uint64_t>()
                << " events dropped (this client did not keep up with egressd)\n";
    }
    return Next::More;
  }

  // After the last counted event: waiting briefly for its packet only.
  bool done() const noexcept { return done_; }

  // -w: what went into the file, on stderr as tcpdump says "N packets
  // captured". Decisions without a packet (DNS answers, the explicit
  // proxy's) are said to be so, or an empty file would look like a bug.
  void reportCapture() const {
    if (pcap_ == nullptr) return;
    flushOut();
    const std::string file = options_.writeFile == "-" ? "stdout" : options_.writeFile;
    std::cerr << "egressctl watch: " << packets_ << (packets_ == 1 ? " packet" : " packets") << " written to "
              << file << " for " << seen_ << (seen_ == 1 ? " matching decision" : " matching decisions");
    if (seen_ > packets_) {
      std::cerr << " (DNS answers and proxy decisions carry no packet; only connections judged through "
                   "NFQUEUE do)";
    }
    std::cerr << '\n';
  }

 private:
  // --json: the server's event object is printed as sent, unparsed (the
  // cheap path for a busy gateway).
  bool printJsonFast(const std::string& line) {
    constexpr std::string_view kEventPrefix = "{\"event\":";
    if (done_ || line.size() <= kEventPrefix.size() + 1 || !line.starts_with(kEventPrefix) ||
        line.back() != '}')
      return false;
    if (printLines_) {
      writeOut(std::string_view(line).substr(kEventPrefix.size(), line.size() - kEventPrefix.size() - 1));
    }
    return true;
  }

  void printText(std::chrono::system_clock::time_point time, std::string_view body) {
    if (!printLines_) return;
    out_.assign(timeOfDay_.format(time));
    out_ += ' ';
    out_ += body;
    writeOut(out_);
  }

  // A daemon that streams event objects (--json, or one older than the line format).
  Next handleEventObject(const nlohmann::json& event) {
    if (done_) return Next::Stop;
    if (printLines_) {
      if (options_.json) {
        writeOut(event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      } else if (auto parsed = observe::eventFromJson(event)) {
        writeOut(observe::formatLine(*parsed, style_));
      }
    }
    return counted();
  }

  Next handlePacket(const nlohmann::json& packet) {
    if (pcap_ == nullptr) return Next::More;
    if (auto record = control::packetFromJson(packet)) {
      if (!pcap_->write(record->time, record->bytes, record->originalLength) || !pcap_->flush()) {
        std::cerr << "egressctl watch: cannot write " << options_.writeFile << '\n';
        return Next::Fail;
      }
      ++packets_;
    }
    return done_ ? Next::Stop : Next::More;
  }

  Next counted() {
    ++seen_;
    if (options_.count > 0 && seen_ >= options_.count) {
      if (pcap_ == nullptr) return Next::Stop;
      done_ = true;  // wait briefly for the last event's packet
    }
    return Next::More;
  }

  const WatchOptions& options_;
  bool printLines_;
  observe::PcapWriter* pcap_;
  observe::LineStyle style_;
  observe::TimeOfDayFormatter timeOfDay_;
  control::TextEvent text_;
  std::string out_;
  uint64_t seen_ = 0;
  uint64_t packets_ = 0;
  bool done_ = false;
};

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
  WatchStream stream(options, printLines, capture ? &pcap : nullptr);

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
  // Lines are formatted once in the daemon for every watching client;
  // --json wants the whole event object.
  request.format = options.json ? control::WatchFormat::Json : control::WatchFormat::Line;
  request.colour = stream.style().colour;
  nlohmann::json response;
  if (!client->call(request, error, &response)) {
    std::cerr << "egressctl watch: " << error << '\n';
    if (response.contains("filter_error") && response["filter_error"].is_object()) {
      std::cerr << filterErrorFrom(response["filter_error"]).pointAt(filterText) << '\n';
      return 2;
    }
    return 1;
  }
  if (!toStdout) setvbuf(stdout, nullptr, _IOFBF, 1 << 16);
  client->setBeforeWait([&] {
    flushOut();
    pcap.flush();
  });

  int status = 0;
  std::string line;
  for (;;) {
    const auto timeout = stream.done() ? std::chrono::milliseconds(200) : std::chrono::milliseconds(-1);
    const auto read = client->readLine(line, error, timeout);
    if (read == ControlClient::ReadStatus::Timeout || read == ControlClient::ReadStatus::Interrupted) break;
    if (read == ControlClient::ReadStatus::Closed) {
      if (stream.done()) break;
      std::cerr << "egressctl watch: egressd closed the connection\n";
      status = 1;
      break;
    }
    if (read == ControlClient::ReadStatus::Error) {
      std::cerr << "egressctl watch: " << error << '\n';
      status = 1;
      break;
    }
    const auto next = stream.handle(line);
    if (next == WatchStream::Next::Stop) break;
    if (next == WatchStream::Next::Fail) return 1;
  }
  flushOut();
  pcap.flush();
  stream.reportCapture();
  return status;
}

}  // namespace cli

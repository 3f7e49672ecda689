#include "cli/top_command.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <iomanip>
#include <iostream>
#include <variant>

#include "cli/control_client.h"
#include "cli/watch_command.h"
#include "common/strings.h"
#include "observe/filter.h"
#include "observe/format.h"

namespace cli {

namespace {

std::string hostOf(const observe::Event& event) {
  if (event.nameLength > 0) {
    // DNS events keep the case as asked (0x20): one row per name whatever
    // the case.
    std::string name(event.nameView());
    for (char& c : name) c = common::asciiLower(c);
    return name;
  }
  if (event.dst.family == common::IpFamily::V6) return "[" + event.dst.toString() + "]";
  return event.dst.toString();
}

void count(TopTable::Row& row, observe::EventVerdict verdict) {
  ++row.total;
  switch (verdict) {
    case observe::EventVerdict::Allow:
      ++row.allowed;
      break;
    case observe::EventVerdict::Deny:
      ++row.denied;
      break;
    case observe::EventVerdict::Audit:
      ++row.audit;
      break;
  }
}

std::vector<TopTable::Row> topRows(const std::map<std::string, TopTable::Row>& rows, size_t limit) {
  std::vector<TopTable::Row> out;
  out.reserve(rows.size());
  for (const auto& [key, row] : rows) out.push_back(row);
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.total > b.total; });
  if (out.size() > limit) out.resize(limit);
  return out;
}

nlohmann::json rowsJson(const std::vector<TopTable::Row>& rows) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& row : rows) {
    out.push_back({{"key", row.key},
                   {"total", row.total},
                   {"allow", row.allowed},
                   {"deny", row.denied},
                   {"audit", row.audit}});
  }
  return out;
}

}  // namespace

void TopTable::add(const observe::Event& event) {
  ++events_;
  if (!by_.empty()) {
    std::string key = "-";
    if (event.client.known()) {
      key = std::string(event.namespaceView());
      if (by_ == "workload") {
        key += '/';
        key += event.client.workloadLength > 0 ? event.workloadView() : std::string_view("-");
      }
    }
    Row& row = clients_[key];
    row.key = key;
    count(row, event.verdict);
  }
  if (event.kind == observe::EventKind::Verdict) {
    const std::string key = hostOf(event) + ":" + std::to_string(event.dstPort);
    Row& row = destinations_[key];
    row.key = key;
    count(row, event.verdict);
  }
  if (event.kind == observe::EventKind::Dns && event.nameLength > 0) {
    const std::string key = hostOf(event);
    Row& row = dnsNames_[key];
    row.key = key;
    count(row, event.verdict);
  }
  if (event.verdict != observe::EventVerdict::Allow) {
    // DNS denials and denied (or audit: would be denied) connections.
    const std::string key = hostOf(event);
    Row& row = denied_[key];
    row.key = key;
    count(row, event.verdict);
  }
}

void TopTable::clear() {
  destinations_.clear();
  dnsNames_.clear();
  denied_.clear();
  clients_.clear();
  events_ = 0;
}

std::vector<TopTable::Row> TopTable::destinations(size_t limit) const {
  return topRows(destinations_, limit);
}

std::vector<TopTable::Row> TopTable::dnsNames(size_t limit) const {
  return topRows(dnsNames_, limit);
}

std::vector<TopTable::Row> TopTable::deniedNames(size_t limit) const {
  return topRows(denied_, limit);
}

std::vector<TopTable::Row> TopTable::clients(size_t limit) const {
  return topRows(clients_, limit);
}

nlohmann::json TopTable::toJson(size_t limit, double seconds) const {
  nlohmann::json out = {{"window_seconds", seconds},
                        {"events", events_},
                        {"destinations", rowsJson(destinations(limit))},
                        {"dns_names", rowsJson(dnsNames(limit))},
                        {"denied", rowsJson(deniedNames(limit))}};
  if (!by_.empty()) {
    out["by"] = by_;
    out["clients"] = rowsJson(clients(limit));
  }
  return out;
}

void TopTable::print(std::ostream& out, size_t limit, double seconds) const {
  out << "last " << seconds << " s: " << events_ << " decisions\n\n";
  auto table = [&](const char* title, const std::vector<Row>& rows) {
    size_t width = 12;
    for (const auto& row : rows) width = std::max(width, row.key.size());
    out << std::left << std::setw(static_cast<int>(width + 2)) << title << std::right << std::setw(8)
        << "TOTAL" << std::setw(8) << "ALLOW" << std::setw(8) << "DENY" << std::setw(8) << "AUDIT" << '\n';
    for (const auto& row : rows) {
      out << std::left << std::setw(static_cast<int>(width + 2)) << row.key << std::right << std::setw(8)
          << row.total << std::setw(8) << row.allowed << std::setw(8) << row.denied << std::setw(8)
          << row.audit << '\n';
    }
    if (rows.empty()) out << "  (none)\n";
  };
  table("DESTINATION", destinations(limit));
  out << '\n';
  table("DNS NAME", dnsNames(limit));
  out << '\n';
  table("DENIED NAME", deniedNames(limit));
  if (!by_.empty()) {
    out << '\n';
    table(by_ == "workload" ? "WORKLOAD" : "NAMESPACE", clients(limit));
  }
}

int runTop(const TopOptions& options, std::ostream& out, std::ostream& err) {
  const std::string filterText = joinFilter(options.filter);
  {
    auto parsed = observe::parseFilter(filterText);
    if (const auto* error = std::get_if<observe::FilterError>(&parsed)) {
      err << "egressctl top: invalid filter:\n" << error->pointAt(filterText) << '\n';
      return 2;
    }
  }
  if (options.intervalSeconds <= 0) {
    err << "egressctl top: --interval must be more than 0 seconds\n";
    return 2;
  }
  installInterruptHandler();
  std::string error;
  auto client = ControlClient::connect(options.socket, error);
  if (!client) {
    err << "egressctl top: " << error << '\n';
    return 1;
  }
  control::Request request;
  request.op = control::Op::Watch;
  request.filter = filterText;
  if (!client->call(request, error)) {
    err << "egressctl top: " << error << '\n';
    return 1;
  }
  const bool clear = !options.json && ::isatty(STDOUT_FILENO) == 1;
  const auto interval = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(options.intervalSeconds));
  TopTable table(options.by);
  uint64_t reports = 0;
  auto deadline = std::chrono::steady_clock::now() + interval;
  std::string line;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    const auto status =
        left.count() <= 0 ? ControlClient::ReadStatus::Timeout : client->readLine(line, error, left);
    if (status == ControlClient::ReadStatus::Line) {
      auto doc = nlohmann::json::parse(line, nullptr, false);
      if (doc.is_object() && doc.contains("event")) {
        if (auto event = observe::eventFromJson(doc["event"])) table.add(*event);
      }
      continue;
    }
    if (status == ControlClient::ReadStatus::Interrupted) return 0;
    if (status == ControlClient::ReadStatus::Closed || status == ControlClient::ReadStatus::Error) {
      err << "egressctl top: " << (error.empty() ? "egressd closed the connection" : error) << '\n';
      return 1;
    }
    // The window is over: report and start the next one.
    if (options.json) {
      out << table.toJson(options.rows, options.intervalSeconds).dump() << std::endl;
    } else {
      if (clear) out << "\x1b[H\x1b[2J";
      table.print(out, options.rows, options.intervalSeconds);
      out << std::endl;
    }
    table.clear();
    deadline += interval;
    if (options.iterations > 0 && ++reports >= options.iterations) return 0;
  }
}

}  // namespace cli

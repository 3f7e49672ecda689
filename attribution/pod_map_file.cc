#include "attribution/pod_map_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <unordered_set>

#include "common/errno_text.h"
#include "observe/event.h"

namespace attribution {

namespace {

bool isLowerAlnum(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// Splits at runs of blanks (space, tab); at most `out.size()` fields, the
// count of fields found (more than out.size() when there are extra ones).
size_t splitFields(std::string_view line, std::array<std::string_view, 5>& out) noexcept {
  size_t count = 0;
  size_t at = 0;
  while (at < line.size()) {
    while (at < line.size() && (line[at] == ' ' || line[at] == '\t')) ++at;
    if (at == line.size()) break;
    size_t end = at;
    while (end < line.size() && line[end] != ' ' && line[end] != '\t') ++end;
    if (count < out.size()) out[count] = line.substr(at, end - at);
    ++count;
    at = end;
  }
  return count;
}

std::string_view emptyIfDash(std::string_view field) noexcept {
  return field == "-" ? std::string_view() : field;
}

// Shown in a problem: the bad text, cut and made printable.
std::string quoted(std::string_view text) {
  std::string out = "\"";
  for (char c : text.substr(0, 80)) {
    const auto byte = static_cast<unsigned char>(c);
    out += (byte < 0x20 || byte >= 0x7f || c == '"' || c == '\\') ? '?' : c;
  }
  if (text.size() > 80) out += "...";
  return out + "\"";
}

}  // namespace

// RFC 1123 §2.1 as Kubernetes applies it (validation.IsDNS1123Label):
// 1..63 of [a-z0-9-], starting and ending with [a-z0-9].
bool isDnsLabel(std::string_view text) noexcept {
  if (text.empty() || text.size() > observe::kMaxEventNamespace) return false;
  if (!isLowerAlnum(text.front()) || !isLowerAlnum(text.back())) return false;
  for (char c : text) {
    if (!isLowerAlnum(c) && c != '-') return false;
  }
  return true;
}

// validation.IsDNS1123Subdomain: 1..253 bytes, dot-separated labels.
bool isDnsSubdomain(std::string_view text) noexcept {
  if (text.empty() || text.size() > observe::kMaxEventPod) return false;
  size_t start = 0;
  while (true) {
    const size_t dot = text.find('.', start);
    const std::string_view label = text.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (label.empty() || !isLowerAlnum(label.front()) || !isLowerAlnum(label.back())) return false;
    for (char c : label) {
      if (!isLowerAlnum(c) && c != '-') return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// "Kind/name": a kind as Kubernetes spells them (a letter, then letters and
// digits), a subdomain name, the whole within an event's workload field.
bool isWorkload(std::string_view text) noexcept {
  if (text.size() > observe::kMaxEventWorkload) return false;
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0) return false;
  const std::string_view kind = text.substr(0, slash);
  const auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  if (!letter(kind.front())) return false;
  for (char c : kind) {
    if (!letter(c) && !(c >= '0' && c <= '9')) return false;
  }
  return isDnsSubdomain(text.substr(slash + 1));
}

PodMapParse parsePodMap(std::string_view text) {
  PodMapParse out;
  std::unordered_set<std::string> seen;  // addresses, as text of the parsed value
  size_t lineNumber = 0;
  while (!text.empty()) {
    ++lineNumber;
    const size_t newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::array<std::string_view, 5> fields{};
    const size_t count = splitFields(line, fields);
    if (count == 0 || fields[0].front() == '#') continue;
    const auto problem = [&](std::string message) {
      out.problems.push_back({lineNumber, std::move(message)});
    };
    if (count != fields.size()) {
      problem("expected 5 fields (IP NAMESPACE POD WORKLOAD SERVICE_ACCOUNT, \"-\" for none), found " +
              std::to_string(count));
      continue;
    }
    const auto ip = common::parseIpAddress(fields[0]);
    if (!ip) {
      problem(quoted(fields[0]) + " is not an IPv4 or IPv6 address");
      continue;
    }
    if (!isDnsLabel(fields[1])) {
      problem("namespace " + quoted(fields[1]) +
              " is not a Kubernetes name (a DNS label: a-z, 0-9, '-', 1..63)");
      continue;
    }
    if (!isDnsSubdomain(fields[2])) {
      problem("pod " + quoted(fields[2]) +
              " is not a Kubernetes name (a DNS subdomain: a-z, 0-9, '-', '.', 1..253)");
      continue;
    }
    const std::string_view workload = emptyIfDash(fields[3]);
    if (!workload.empty() && !isWorkload(workload)) {
      problem("workload " + quoted(fields[3]) + " is not KIND/NAME (e.g. Deployment/web) or \"-\"");
      continue;
    }
    const std::string_view account = emptyIfDash(fields[4]);
    if (!account.empty() && !isDnsSubdomain(account)) {
      problem("service account " + quoted(fields[4]) + " is not a Kubernetes name or \"-\"");
      continue;
    }
    const common::IpAddress address = ip->unmapped();
    if (!seen.insert(address.toString()).second) {
      problem("address " + address.toString() + " is mapped by an earlier line; one address, one pod");
      continue;
    }
    if (out.records.size() >= kMaxPodMapRecords) {
      problem("more than " + std::to_string(kMaxPodMapRecords) + " addresses; the rest is ignored");
      break;
    }
    out.records.push_back(PodRecord{address, std::string(fields[1]), std::string(fields[2]),
                                    std::string(workload), std::string(account)});
  }
  return out;
}

std::string formatPodMap(const std::vector<PodRecord>& records) {
  std::string out = "# egressd pod map (docs/attribution.md): IP NAMESPACE POD WORKLOAD SERVICE_ACCOUNT\n";
  out.reserve(out.size() + records.size() * 96);
  for (const PodRecord& record : records) {
    out += record.ip.toString();
    out += ' ';
    out += record.ns;
    out += ' ';
    out += record.pod;
    out += ' ';
    out += record.workload.empty() ? std::string_view("-") : std::string_view(record.workload);
    out += ' ';
    out += record.serviceAccount.empty() ? std::string_view("-") : std::string_view(record.serviceAccount);
    out += '\n';
  }
  return out;
}

bool writePodMapFile(const std::string& path, std::string_view text, std::string& error) {
  const std::filesystem::path target(path);
  const std::string temp = (target.parent_path() / ("." + target.filename().string() + ".tmp")).string();
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = temp + ": " + common::errnoText(errno);
    return false;
  }
  size_t done = 0;
  bool ok = true;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = temp + ": " + common::errnoText(errno);
      ok = false;
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (ok && ::fsync(fd) != 0) {
    error = temp + ": fsync: " + common::errnoText(errno);
    ok = false;
  }
  ::close(fd);
  if (ok && ::rename(temp.c_str(), path.c_str()) != 0) {
    error = path + ": rename: " + common::errnoText(errno);
    ok = false;
  }
  if (!ok) ::unlink(temp.c_str());
  return ok;
}

}  // namespace attribution

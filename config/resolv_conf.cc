#include "config/resolv_conf.h"

#include <algorithm>

#include "common/ip_address.h"

namespace config {

namespace {

bool isBlank(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\r';
}

std::string_view nextWord(std::string_view& rest) noexcept {
  while (!rest.empty() && isBlank(rest.front())) rest.remove_prefix(1);
  size_t end = 0;
  while (end < rest.size() && !isBlank(rest[end])) ++end;
  const std::string_view word = rest.substr(0, end);
  rest.remove_prefix(end);
  return word;
}

}  // namespace

ResolvConf parseResolvConf(std::string_view text) {
  ResolvConf result;
  int number = 0;
  while (!text.empty()) {
    ++number;
    const size_t newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
    // resolv.conf(5): '#' or ';' in the first column start a comment; glibc
    // also ends a nameserver's address at a comment character.
    const size_t comment = line.find_first_of("#;");
    if (comment != std::string_view::npos) line = line.substr(0, comment);
    if (nextWord(line) != "nameserver") continue;
    const std::string_view address = nextWord(line);
    if (address.empty()) {
      result.problems.push_back({number, "\"nameserver\" without an address"});
      continue;
    }
    if (address.find('%') != std::string_view::npos) {
      // fe80::1%eth0: egressd's upstream sockets carry no interface scope.
      result.problems.push_back(
          {number, "nameserver " + std::string(address) +
                       " has an interface scope, which egressd cannot use; list a global or ULA address"});
      continue;
    }
    const auto ip = common::parseIpAddress(address);
    if (!ip) {
      result.problems.push_back({number, "nameserver \"" + std::string(address) + "\" is not an IP address"});
      continue;
    }
    const common::SocketAddress server{*ip, 53};
    if (std::find(result.nameservers.begin(), result.nameservers.end(), server) == result.nameservers.end())
      result.nameservers.push_back(server);
  }
  return result;
}

}  // namespace config

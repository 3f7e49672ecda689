// Test driver for nfq/kernel_guard: `nfq_kernel_guard_tool DIR` loads and
// pins the programs under DIR, prints "ready" and keeps them until stdin
// closes; then removes the pins. Lines on stdin ask the maps:
//   start CLIENT CPORT SERVER SPORT      -> "start SEQ IFINDEX" or "start none"
//   expect CLIENT CPORT SERVER SPORT END IFINDEX -> "expect ok|failed"
//   confirm CLIENT CPORT SERVER SPORT    -> "confirm 0|1" or "confirm none"
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>

#include "flow_key_input.h"
#include "nfq/kernel_guard.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  nfq::KernelGuard guard;
  std::string error;
  if (!guard.open({argv[1], 1024, 1024}, error)) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  std::printf("ready\n");
  std::fflush(stdout);
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string command;
    in >> command;
    if (command == "start") {
      const auto start = guard.findStart(nfqtest::readFlowKey(in));
      if (start) {
        std::printf("start %u %u\n", start->seq, start->ifindex);
      } else {
        std::printf("start none\n");
      }
    } else if (command == "expect") {
      const nfq::FlowKey key = nfqtest::readFlowKey(in);
      nfq::KernelConfirm entry{};
      in >> entry.judgedEnd >> entry.clientIfindex;
      entry.passedEnd = entry.judgedEnd;
      std::printf("expect %s\n", guard.expectConfirm(key, entry) ? "ok" : "failed");
    } else if (command == "confirm") {
      const auto entry = guard.findConfirm(nfqtest::readFlowKey(in));
      if (entry) {
        std::printf("confirm %u\n", entry->confirmed);
      } else {
        std::printf("confirm none\n");
      }
    }
    std::fflush(stdout);
  }
  return 0;
}

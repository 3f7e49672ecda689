// Test driver for nfq/kernel_verdict: `nfq_kernel_verdict_tool DIR` opens
// the kernel guard and the kernel verdict under DIR (pins synack4/6,
// confirm4/6, verdict4/6), keeps the consumer alive, prints "ready" and
// keeps them until stdin closes. Lines on stdin:
//   allow SERVER PORT NAME        -> "allow ok|failed" (expires in 60 s)
//   drain                         -> "records N" then per record "record SOURCE
//                                    IFINDEX BYTES SRC SPORT DST DPORT SEQ PAYLOADLEN FIRSTBYTE"
//   confirm CLIENT CPORT SERVER SPORT -> "confirm JUDGEDEND IFINDEX" or "confirm none"
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "flow_key_input.h"
#include "nfq/kernel_guard.h"
#include "nfq/kernel_verdict.h"
#include "nfq/packet.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  nfq::KernelGuard guard;
  nfq::KernelVerdict verdict;
  std::string error;
  if (!guard.open({argv[1], 1024, 1024}, error) || !verdict.open({argv[1], 1024, 1U << 16}, guard, error)) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  verdict.keepConsumerAlive(nfq::Clock::now() + std::chrono::minutes(10));
  std::printf("ready\n");
  std::fflush(stdout);
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string command;
    in >> command;
    if (command == "allow") {
      std::string server, name;
      unsigned port = 0;
      in >> server >> port >> name;
      const auto address = common::parseIpAddress(server);
      const bool ok = address && verdict.allow(*address, static_cast<uint16_t>(port), name,
                                               nfq::Clock::now() + std::chrono::seconds(60));
      std::printf("allow %s\n", ok ? "ok" : "failed");
    } else if (command == "drain") {
      std::vector<std::string> records;
      verdict.drain([&](const nfq::KernelVerdictRecord& header, std::span<const uint8_t> packet) {
        const nfq::DecodeResult decoded = nfq::decodePacket(packet);
        char text[320];
        std::snprintf(text, sizeof text, "record %s %u %u %s %u %s %u %u %zu %d",
                      header.source == static_cast<uint32_t>(nfq::KernelNameSource::Sni) ? "sni" : "host",
                      header.ifindex, header.packetBytes, decoded.view.src.toString().c_str(),
                      decoded.view.srcPort, decoded.view.dst.toString().c_str(), decoded.view.dstPort,
                      decoded.view.tcpSeq, decoded.view.payload.size(),
                      decoded.ok() && !decoded.view.payload.empty() ? decoded.view.payload[0] : -1);
        records.emplace_back(text);
      });
      std::printf("records %zu\n", records.size());
      for (const std::string& record : records) std::printf("%s\n", record.c_str());
    } else if (command == "confirm") {
      const auto entry = guard.findConfirm(nfqtest::readFlowKey(in));
      if (entry) {
        std::printf("confirm %u %u\n", entry->judgedEnd, entry->clientIfindex);
      } else {
        std::printf("confirm none\n");
      }
    }
    std::fflush(stdout);
  }
  return 0;
}

// Writes captured packets as a classic pcap file (LINKTYPE_RAW: each record
// starts with the IPv4 or IPv6 header), readable by tcpdump -r and Wireshark.
//
// Ownership: owns the FILE (closed by the destructor). Failure: open()
// returns false with `error` naming the file and errno text; write() returns
// false once the file cannot be written (e.g. disk full), and from then on;
// "-" (stdout) is flushed, not closed. Thread-safety: one thread per writer.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>

namespace observe {

class PcapWriter {
 public:
  static constexpr uint32_t kSnapLength = 65535;

  // "-" writes to stdout (as `tcpdump -w -`).
  bool open(const std::string& path, std::string& error);
  bool write(std::chrono::system_clock::time_point time, std::span<const uint8_t> bytes,
             uint32_t originalLength);
  bool flush();

 private:
  struct Close {
    void operator()(FILE* file) const noexcept;
  };
  std::unique_ptr<FILE, Close> file_;
};

}  // namespace observe

// Runs an eBPF socket filter of egressd's chain (the kernel guard's, the
// kernel verdict's) on one IP packet with BPF_PROG_TEST_RUN, as iptables'
// bpf match would: the test run strips an Ethernet header, so the program
// sees the IP header first; the packet's interface is the loopback
// (ifindex 1). For the unit tests; needs CAP_BPF.
#pragma once

#include <linux/bpf.h>

#include <cstdint>
#include <optional>

#include "nfq/bpf_syscall.h"
#include "packet_builder.h"

namespace nfqtest {

// The program's return value, or nullopt when the kernel refused the run.
inline std::optional<uint32_t> testRunSocketFilter(int program, const Bytes& ip) {
  Bytes frame(14, 0);
  const bool v6 = !ip.empty() && (ip[0] >> 4) == 6;
  frame[12] = v6 ? 0x86 : 0x08;
  frame[13] = v6 ? 0xdd : 0x00;
  frame.insert(frame.end(), ip.begin(), ip.end());
  bpf_attr attr{};
  attr.test.prog_fd = static_cast<uint32_t>(program);
  attr.test.data_in = reinterpret_cast<uint64_t>(frame.data());
  attr.test.data_size_in = static_cast<uint32_t>(frame.size());
  attr.test.repeat = 1;
  if (nfq::bpfCall(BPF_PROG_TEST_RUN, attr) != 0) return std::nullopt;
  return attr.test.retval;
}

}  // namespace nfqtest

// Test driver that makes the kernel verdict and the worker disagree:
// `nfq_kernel_verdict_inject PROGRAM SERVER PORT NAME` opens a running
// egressd's pinned verdict program (PROGRAM, e.g.
// /sys/fs/bpf/egressd-NETNS/verdict4; run it in egressd's mount namespace),
// finds the program's names and state maps, and writes (SERVER, PORT, NAME)
// into the names map under the current generation, expiring in 60 s: the
// program will allow a first payload naming NAME to SERVER:PORT although
// egressd's DNS never bound it there, which user space must catch
// (docs/nfq.md "Kernel verdict": a disagreement withdraws the connection).
// Prints "injected GENERATION"; exit status 2 for bad arguments, 1 with the
// reason when the program or its maps cannot be used.
#include <linux/bpf.h>
#include <time.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "common/unique_fd.h"
#include "nfq/bpf_syscall.h"
#include "nfq/kernel_verdict.h"

namespace {

int fail(const std::string& what) {
  std::fprintf(stderr, "nfq_kernel_verdict_inject: %s: %s\n", what.c_str(), std::strerror(errno));
  return 1;
}

uint64_t ptr(const void* p) {
  return reinterpret_cast<uint64_t>(p);
}

// The map of `program` whose kernel name is `name`; an empty fd if none.
common::UniqueFd programMap(int program, std::string_view name) {
  std::array<uint32_t, 16> ids{};
  bpf_prog_info info{};
  info.nr_map_ids = ids.size();
  info.map_ids = ptr(ids.data());
  bpf_attr attr{};
  attr.info.bpf_fd = static_cast<uint32_t>(program);
  attr.info.info_len = sizeof info;
  attr.info.info = ptr(&info);
  if (nfq::bpfCall(BPF_OBJ_GET_INFO_BY_FD, attr) != 0) return {};
  for (uint32_t i = 0; i < info.nr_map_ids && i < ids.size(); ++i) {
    bpf_attr byId{};
    byId.map_id = ids[i];
    common::UniqueFd map(static_cast<int>(nfq::bpfCall(BPF_MAP_GET_FD_BY_ID, byId)));
    if (!map) continue;
    bpf_map_info mapInfo{};
    bpf_attr query{};
    query.info.bpf_fd = static_cast<uint32_t>(map.get());
    query.info.info_len = sizeof mapInfo;
    query.info.info = ptr(&mapInfo);
    if (nfq::bpfCall(BPF_OBJ_GET_INFO_BY_FD, query) == 0 && name == mapInfo.name) return map;
  }
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s PROGRAM SERVER PORT NAME\n", argv[0]);
    return 2;
  }
  const auto server = common::parseIpAddress(argv[2]);
  char* portEnd = nullptr;
  const unsigned long port = std::strtoul(argv[3], &portEnd, 10);
  nfq::KernelNameKey key{};
  if (!server || *portEnd != '\0' || port == 0 || port > 65535 ||
      !nfq::kernelNameKey(*server, static_cast<uint16_t>(port), argv[4], key)) {
    std::fprintf(stderr,
                 "nfq_kernel_verdict_inject: '%s' '%s' '%s' is no server address, port 1-65535 and name\n",
                 argv[2], argv[3], argv[4]);
    return 2;
  }
  bpf_attr get{};
  get.pathname = ptr(argv[1]);
  const common::UniqueFd program(static_cast<int>(nfq::bpfCall(BPF_OBJ_GET, get)));
  if (!program) return fail(std::string("opening ") + argv[1]);
  const common::UniqueFd names = programMap(program.get(), "egressd_names");
  const common::UniqueFd state = programMap(program.get(), "egressd_vstate");
  if (!names || !state) return fail("the program has no egressd_names or egressd_vstate map");

  uint32_t zero = 0;
  nfq::KernelVerdictState current{};
  bpf_attr lookup{};
  lookup.map_fd = static_cast<uint32_t>(state.get());
  lookup.key = ptr(&zero);
  lookup.value = ptr(&current);
  if (nfq::bpfCall(BPF_MAP_LOOKUP_ELEM, lookup) != 0) return fail("reading the state map");

  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  nfq::KernelNameValue value{};
  value.expiryNs =
      (static_cast<uint64_t>(now.tv_sec) + 60) * 1000000000ULL + static_cast<uint64_t>(now.tv_nsec);
  value.generation = current.generation;
  bpf_attr update{};
  update.map_fd = static_cast<uint32_t>(names.get());
  update.key = ptr(&key);
  update.value = ptr(&value);
  update.flags = BPF_ANY;
  if (nfq::bpfCall(BPF_MAP_UPDATE_ELEM, update) != 0) return fail("writing the names map");
  std::printf("injected %u\n", current.generation);
  return 0;
}

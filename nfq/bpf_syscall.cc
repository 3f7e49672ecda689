#include "nfq/bpf_syscall.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace nfq {

long bpfCall(int command, bpf_attr& attr) noexcept {
  return syscall(__NR_bpf, command, &attr, sizeof attr);
}

int createBpfMap(bpf_map_type type, uint32_t keySize, uint32_t valueSize, uint32_t entries, uint32_t flags,
                 const char* name) noexcept {
  bpf_attr attr{};
  attr.map_type = type;
  attr.key_size = keySize;
  attr.value_size = valueSize;
  attr.max_entries = entries;
  attr.map_flags = flags;
  std::memcpy(attr.map_name, name, std::min(std::strlen(name), sizeof attr.map_name - 1));
  return static_cast<int>(bpfCall(BPF_MAP_CREATE, attr));
}

int loadSocketFilter(bpf_attr& attr, const char* name, size_t logBytes, size_t keepBytes, std::string& log) {
  attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
  // egressd's own programs; bpf_ringbuf_output is GPL-only.
  static constexpr char kLicense[] = "GPL";
  attr.license = reinterpret_cast<uint64_t>(kLicense);
  std::memcpy(attr.prog_name, name, std::min(std::strlen(name), sizeof attr.prog_name - 1));
  int fd = static_cast<int>(bpfCall(BPF_PROG_LOAD, attr));
  if (fd >= 0) return fd;
  const int saved = errno;
  // Again with the verifier's log, for the error message (its end says why).
  std::vector<char> buffer(logBytes);
  attr.log_buf = reinterpret_cast<uint64_t>(buffer.data());
  attr.log_size = static_cast<uint32_t>(buffer.size());
  attr.log_level = 1;
  fd = static_cast<int>(bpfCall(BPF_PROG_LOAD, attr));
  attr.log_buf = 0;
  attr.log_size = 0;
  attr.log_level = 0;
  if (fd >= 0) return fd;
  log.assign(buffer.data(), strnlen(buffer.data(), buffer.size()));
  if (log.size() > keepBytes) log = log.substr(log.size() - keepBytes);
  errno = saved;
  return -1;
}

bool pinBpfObject(int fd, const std::string& path) noexcept {
  ::unlink(path.c_str());  // an earlier run's pin
  bpf_attr attr{};
  attr.pathname = reinterpret_cast<uint64_t>(path.c_str());
  attr.bpf_fd = static_cast<uint32_t>(fd);
  return bpfCall(BPF_OBJ_PIN, attr) == 0;
}

}  // namespace nfq

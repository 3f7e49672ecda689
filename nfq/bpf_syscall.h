// The bpf(2) calls the kernel guard and the kernel verdict share: creating
// a map, loading a socket-filter program (with the verifier's log on a
// refusal) and pinning an object. No libbpf.
//
// Pure wrappers: each is one or two system calls; the caller owns the
// descriptors they return (common::UniqueFd).
#pragma once

#include <linux/bpf.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace nfq {

long bpfCall(int command, bpf_attr& attr) noexcept;

// A map named `name` (truncated to the kernel's 15 bytes); -1 with errno.
int createBpfMap(bpf_map_type type, uint32_t keySize, uint32_t valueSize, uint32_t entries, uint32_t flags,
                 const char* name) noexcept;

// Loads `attr`'s instructions (and whatever else the caller set: BTF,
// function info) as a GPL socket filter named `name`. On a refusal it
// loads once more with a verifier log of `logBytes` and keeps its last
// `keepBytes` in `log` (where the verifier says why); -1 with the first
// attempt's errno.
int loadSocketFilter(bpf_attr& attr, const char* name, size_t logBytes, size_t keepBytes, std::string& log);

// Pins `fd` at `path`, replacing an earlier run's pin; false with errno.
bool pinBpfObject(int fd, const std::string& path) noexcept;

}  // namespace nfq

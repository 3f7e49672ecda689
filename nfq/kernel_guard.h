// The insertion guard's checks 1 and 3 done in the kernel (docs/nfq.md
// "Kernel guard"): two eBPF socket-filter programs per address family,
// run by iptables' bpf match (xt_bpf, `-m bpf --object-pinned`), with two
// hash maps shared with the queue workers.
//
//   starts   (LRU hash) the program on an undecided connection's SYN-ACK
//            records client 5-tuple -> {ack = client ISN + 1, interface it
//            came in on, time} and the rule lets the SYN-ACK pass without
//            queueing; the worker reads the entry when the first payload
//            is judged (what StreamStarts holds for queued SYN-ACKs).
//   confirm  (hash) the worker writes client 5-tuple -> {judged end,
//            passed end, client interface} when it allows provisionally;
//            the program on a server packet of a CONFIRM connection matches
//            when its acknowledgment covers the judged bytes and no more
//            than was passed (insertion_guard.h acknowledges()), not from
//            the client's interface, and records that it confirmed; the
//            rule then sets ALLOW, which the chain saves. The worker reads
//            the record and releases its wait without a queued packet.
//
// Everything the programs do not match goes to user space as before, so a
// missing entry (full map, map write failed) costs a queued packet, never
// a check. The worker's own tables stay the fallback.
//
// Pure part: the map layouts and the program instructions (tested without
// a kernel). I/O part: KernelGuard loads, pins and removes them.
//
// Ownership: KernelGuard owns its map and program descriptors and its pins
// (removed by remove() / the destructor). Thread-safety: after open(), the
// map operations are safe from any thread (each is one bpf() syscall; the
// kernel serialises per element). Nothing here allocates after open().
#pragma once

#include <linux/bpf.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "nfq/flow_table.h"
#include "nfq/insertion_guard.h"
#include "nfq/verdict.h"

namespace nfq {

// The key of both maps: the connection as the client opened it. Addresses
// and ports in network byte order (as in the packet), IPv4 in the first 4
// bytes of a zeroed 16.
struct KernelFlowKey {
  uint8_t client[16];
  uint8_t server[16];
  uint8_t clientPort[2];
  uint8_t serverPort[2];
  uint8_t family;    // 4 or 6
  uint8_t protocol;  // 6 (TCP)
  uint8_t pad[2];
};
static_assert(sizeof(KernelFlowKey) == 40);

struct KernelStart {
  uint32_t seq;      // the SYN-ACK's acknowledgment number: client ISN + 1
  uint32_t ifindex;  // the interface the SYN-ACK came in on
  uint64_t timeNs;   // CLOCK_MONOTONIC (bpf_ktime_get_ns) when recorded
};
static_assert(sizeof(KernelStart) == 16);

struct KernelConfirm {
  uint32_t judgedEnd;      // sequence number after the judged bytes
  uint32_t passedEnd;      // after the client bytes passed so far
  uint32_t clientIfindex;  // server packets from here are forged
  uint32_t confirmed;      // set by the program: 1 when a server packet confirmed
  uint64_t confirmedNs;
};
static_assert(sizeof(KernelConfirm) == 24);

// Field offsets the programs use (kept next to the structs they mirror).
namespace kernel_layout {
inline constexpr int16_t kConfirmJudgedEnd = 0;
inline constexpr int16_t kConfirmPassedEnd = 4;
inline constexpr int16_t kConfirmIfindex = 8;
inline constexpr int16_t kConfirmConfirmed = 12;
inline constexpr int16_t kConfirmTime = 16;
}  // namespace kernel_layout

// The map key of a connection (FlowKey as the client sent it: src = client).
KernelFlowKey kernelKey(const FlowKey& key) noexcept;
// And back (a key read from a map walk).
FlowKey flowKeyOf(const KernelFlowKey& key) noexcept;

// The decision the confirm program takes, in C++ (the instructions mirror
// it; tests compare both with acknowledges()): true when a server packet
// with ACK set, acknowledgment `ack`, that came in on `ifindex`, confirms.
bool kernelConfirms(const KernelConfirm& entry, uint32_t ack, uint32_t ifindex) noexcept;

enum class KernelProgram : uint8_t { SynAck, Confirm };
enum class KernelFamily : uint8_t { V4, V6 };

// The program's instructions, with `mapFd` as its map (starts for SynAck,
// confirm for Confirm). Returns 1 (the rule matches) only when it did its
// job: the start is recorded / the server confirmed.
std::vector<bpf_insn> kernelProgram(KernelProgram program, KernelFamily family, int mapFd);

// Where the programs are pinned: "<dir>/synack4" etc.
std::string kernelPinPath(const std::string& dir, KernelProgram program, KernelFamily family);
// Removes the pins under `dir` (the kernel verdict's too) and the
// directory (egressd --uninstall, or a run that was killed); missing ones
// are fine.
void removeKernelPins(const std::string& dir) noexcept;
// The kernel's CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns) as a worker
// time point: steady_clock is CLOCK_MONOTONIC on Linux.
TimePoint kernelTime(uint64_t ns) noexcept;
// A kernel start as the insertion guard's check 1 reads starts.
StreamStarts::Start streamStartOf(const KernelStart& start) noexcept;

class KernelGuard {
 public:
  struct Options {
    std::string dir;           // a directory under a bpffs mount, created here
    uint32_t starts = 65536;   // entries of the starts map
    uint32_t confirms = 8192;  // entries of the confirm map (all workers)
  };

  KernelGuard() = default;
  ~KernelGuard();
  KernelGuard(const KernelGuard&) = delete;
  KernelGuard& operator=(const KernelGuard&) = delete;

  // Mounts bpffs on the parent of `dir` if it is not one, creates the maps,
  // loads and pins the four programs. False with `error` set (no CAP_BPF,
  // no bpffs, a verifier refusal); nothing is left behind then.
  bool open(const Options& options, std::string& error);
  bool active() const noexcept { return static_cast<bool>(starts_); }
  const std::string& dir() const noexcept { return options_.dir; }
  // Unpins the programs and removes the directory (the chain's rules keep
  // their programs until the chain goes).
  void remove() noexcept;

  // The start the kernel recorded for `key`, if any.
  std::optional<KernelStart> findStart(const FlowKey& key) const noexcept;
  // A provisional allow: the kernel may confirm it. False when the map is
  // full (the server's packets then go to user space, as without it).
  bool expectConfirm(const FlowKey& key, const KernelConfirm& entry) const noexcept;
  // The entry, or nullopt when there is none.
  std::optional<KernelConfirm> findConfirm(const FlowKey& key) const noexcept;
  // Reads and deletes the entry in one step (after it, the program can no
  // longer confirm: the worker's decision on it is the last word).
  std::optional<KernelConfirm> takeConfirm(const FlowKey& key) const noexcept;
  void forgetConfirm(const FlowKey& key) const noexcept;

  // A walk over the whole confirm map in batches (BPF_MAP_LOOKUP_BATCH):
  // the entries of every owner (all workers' provisional allows and the
  // kernel verdict's), in the map's bucket order; an entry present for the
  // whole walk is read exactly once. Start with a fresh ConfirmWalk; each
  // call reads at most keys.size() (== values.size()) entries and returns
  // how many, or nullopt when the kernel refused (no batch operations on
  // hash maps before Linux 5.6; a bucket larger than the buffer): read per
  // key then. walk.done says the end was reached.
  struct ConfirmWalk {
    KernelFlowKey cursor{};  // the kernel's opaque position (a bucket index)
    bool started = false;
    bool done = false;
  };
  std::optional<size_t> readConfirms(ConfirmWalk& walk, std::span<KernelFlowKey> keys,
                                     std::span<KernelConfirm> values) const noexcept;
  // Deletes the entries of `keys` (BPF_MAP_DELETE_BATCH: one call, more
  // only when a key is gone already, which the kernel stops at; one delete
  // per key before Linux 5.6). Returns how many bpf() calls it took.
  size_t forgetConfirms(std::span<const KernelFlowKey> keys) const noexcept;

  // The maps' descriptors, for the kernel verdict's programs
  // (nfq/kernel_verdict.h), which read starts and write confirm entries.
  int startsMapFd() const noexcept { return starts_.get(); }
  int confirmMapFd() const noexcept { return confirms_.get(); }

 private:
  Options options_;
  common::UniqueFd starts_;
  common::UniqueFd confirms_;
  std::vector<common::UniqueFd> programs_;
  std::vector<std::string> pinned_;
};

}  // namespace nfq

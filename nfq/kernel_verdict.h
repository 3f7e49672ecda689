// The first payload judged in the kernel (docs/nfq.md "Kernel verdict"):
// an eBPF socket-filter program per address family, run by iptables' bpf
// match (xt_bpf, `-m bpf --object-pinned`) on the first client payload of
// an undecided TCP connection, right before the rule that would queue it.
//
// The program allows only the plain, common case, and only what the user
// space verdict procedure would allow too:
//   - TCP right after the IP header, ACK set, no SYN/FIN/RST, a payload;
//   - check 1 of the insertion guard: the kernel guard's starts map holds
//     the connection, the payload starts at its ISN + 1, the SYN-ACK did
//     not come in on this packet's interface, and it is younger than 300 s;
//   - the whole ClientHello (TLS) or the whole request head (HTTP/1) is in
//     this one segment and parses as strictly as sni/ parses it;
//   - its name (SNI or Host, lower case, no trailing dot, at most
//     kKernelNameBytes) is in the names map for (server address, port),
//     written under the current generation and not expired: egressd's DNS
//     bound that address to that name and the policy allows the name on
//     that port (what decide() answers `sni_allowed` / `host_allowed`);
//   - a consumer drained the ring recently (state.consumerDeadlineNs):
//     with no egressd reading the events, nothing is allowed here.
// It then writes the kernel guard's confirm entry (judged end = passed end
// = seq + payload length, the client's interface), copies the packet into
// the ring (the event, and the judged bytes the worker needs for check 2),
// and returns 1: the rule marks the packet CONFIRM, which the chain saves.
// The record also carries the starts entry check 1 read (the worker's own
// check 1 uses that copy: no second map read per connection).
// The server's acknowledgment is confirmed by the kernel guard's confirm
// program as for a user-space allow. Anything else returns 0 and the
// packet is queued as before: the program only ever spares a round trip.
//
// Ownership: KernelVerdict owns its maps, ring mapping, programs and pins.
// Thread-safety: the names/state map writes are one bpf() syscall each and
// safe from any thread; drain() from one thread at a time.
#pragma once

#include <linux/bpf.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip_address.h"
#include "common/unique_fd.h"
#include "nfq/bpf/kernel_verdict_record.h"
#include "nfq/flow_table.h"
#include "nfq/kernel_guard.h"

namespace nfq {

inline constexpr size_t kKernelNameBytes = 128;

// Key of the names map. Addresses in network byte order, IPv4 in the first
// 4 bytes of a zeroed 16; the name lower case and zero-padded.
struct KernelNameKey {
  uint8_t family;    // 4 or 6
  uint8_t protocol;  // 6 (TCP)
  uint8_t port[2];   // server port, network byte order
  uint8_t server[16];
  char name[kKernelNameBytes];
};
static_assert(sizeof(KernelNameKey) == 148);

struct KernelNameValue {
  uint64_t expiryNs;    // CLOCK_MONOTONIC; the binding's expiry (TTL + grace)
  uint32_t generation;  // must equal state.generation
  uint32_t pad;
};
static_assert(sizeof(KernelNameValue) == 16);

// The one element of the state array map.
struct KernelVerdictState {
  uint32_t generation;  // bumped before a policy change is published
  uint32_t pad;
  uint64_t consumerDeadlineNs;  // the program allows only before this
};
static_assert(sizeof(KernelVerdictState) == 16);

// What the name was read from.
enum class KernelNameSource : uint32_t { Sni = 1, Host = 2 };

// A ring record: this header, then `packetBytes` bytes of the packet from
// its IP header on (the whole packet; records of larger packets are never
// written: the program returns 0). The layout is the program's
// (nfq/bpf/kernel_verdict_record.h), asserted field by field below.
struct KernelVerdictRecord {
  uint32_t packetBytes;
  uint32_t ifindex;  // the interface the packet came in on
  uint64_t timeNs;   // bpf_ktime_get_ns() when allowed
  uint32_t source;   // KernelNameSource
  uint32_t version;  // kKernelVerdictRecordVersion (others are skipped)
  // The kernel guard's starts entry as the program read and checked it
  // (check 1): the worker checks it again from here instead of the map.
  KernelStart start;
};
inline constexpr uint32_t kKernelVerdictRecordVersion = KERNEL_VERDICT_RECORD_VERSION;
static_assert(sizeof(KernelVerdictRecord) == sizeof(kernel_verdict_record));
static_assert(offsetof(KernelVerdictRecord, packetBytes) == offsetof(kernel_verdict_record, packet_bytes));
static_assert(offsetof(KernelVerdictRecord, ifindex) == offsetof(kernel_verdict_record, ifindex));
static_assert(offsetof(KernelVerdictRecord, timeNs) == offsetof(kernel_verdict_record, time_ns));
static_assert(offsetof(KernelVerdictRecord, source) == offsetof(kernel_verdict_record, source));
static_assert(offsetof(KernelVerdictRecord, version) == offsetof(kernel_verdict_record, version));
static_assert(offsetof(KernelVerdictRecord, start) + offsetof(KernelStart, seq) ==
              offsetof(kernel_verdict_record, start_seq));
static_assert(offsetof(KernelVerdictRecord, start) + offsetof(KernelStart, ifindex) ==
              offsetof(kernel_verdict_record, start_ifindex));
static_assert(offsetof(KernelVerdictRecord, start) + offsetof(KernelStart, timeNs) ==
              offsetof(kernel_verdict_record, start_time_ns));
inline constexpr size_t kKernelMaxPacketBytes = 4096;

enum class KernelVerdictFamily : uint8_t { V4, V6 };
std::string kernelVerdictPinPath(const std::string& dir, KernelVerdictFamily family);

// The names map key for (server, port, name); false when the name cannot be
// a key (longer than kKernelNameBytes, empty).
bool kernelNameKey(const common::IpAddress& server, uint16_t port, std::string_view name,
                   KernelNameKey& out) noexcept;

class KernelVerdict {
 public:
  struct Options {
    std::string dir;                // the kernel guard's pin directory
    uint32_t names = 131072;        // entries of the names map (LRU: an evicted entry is a queued packet)
    uint32_t ringBytes = 1U << 21;  // ring size, a power of two
  };

  KernelVerdict();  // defined where Impl is complete
  ~KernelVerdict();
  KernelVerdict(const KernelVerdict&) = delete;
  KernelVerdict& operator=(const KernelVerdict&) = delete;

  // Creates the maps and the ring, loads the two programs (they use the
  // guard's starts and confirm maps) and pins them as verdict4/verdict6 in
  // options.dir. False with `error` set; nothing is left behind then.
  bool open(const Options& options, const KernelGuard& guard, std::string& error);
  bool active() const noexcept;
  void remove() noexcept;  // unpins (rules keep their programs until the chain goes)

  // The names map, under the current generation.
  bool allow(const common::IpAddress& server, uint16_t port, std::string_view name,
             TimePoint expiry) noexcept;
  // Removes the entry of (server, port, name), if any: a binding egressd's
  // table dropped for room before it expired (one map delete).
  void forget(const common::IpAddress& server, uint16_t port, std::string_view name) noexcept;
  // Every entry written so far stops counting (one map write).
  void invalidateAll() noexcept;
  // The program allows until `until` only; renewed by the ring's consumer.
  void keepConsumerAlive(TimePoint until) noexcept;

  // The ring's descriptor (readable when records wait) and its reading:
  // calls `record(header, packet)` for each waiting record, at most
  // `limit`, and returns how many. Never allocates.
  int ringFd() const noexcept;
  template <typename Consumer>
  size_t drain(Consumer&& record, size_t limit = SIZE_MAX) noexcept;

 private:
  // The next waiting record (nullptr when none) and its release.
  const KernelVerdictRecord* peekRecord(std::span<const uint8_t>& packet) noexcept;
  void releaseRecord() noexcept;

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

template <typename Consumer>
size_t KernelVerdict::drain(Consumer&& record, size_t limit) noexcept {
  size_t count = 0;
  std::span<const uint8_t> packet;
  while (count < limit) {
    const KernelVerdictRecord* header = peekRecord(packet);
    if (header == nullptr) break;
    record(*header, packet);
    releaseRecord();
    ++count;
  }
  return count;
}

}  // namespace nfq

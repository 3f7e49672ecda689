// A small ip_set client over netlink (libmnl), for the kernel fast path's
// bound sets (nfq/ruleset.h): hash:ip,port sets with per-entry timeouts
// holding the (address, tcp:port) pairs egressd's DNS bound to an allowed
// name. Speaks the protocol of <linux/netfilter/ipset/ip_set.h> directly:
// libipset parses text and allocates per command, and the per-binding
// path here must stay cheap (no fork/exec, no allocation, one sendmsg per
// batch).
//
// Pure part: encodeAdd() builds one IPSET_CMD_ADD message into a buffer.
// I/O part: IpSetClient (one netlink socket). create/flush/destroy/header
// wait for the kernel's answer (start-up, uninstall, policy change); add()
// does not wait: netlink requests to the kernel are processed during
// sendmsg, so the error answers (only failures are answered) are already
// queued when it drains them with MSG_DONTWAIT.
//
// Ownership: the client owns its socket and buffers. Thread-safety: one
// thread at a time per client. Failure: the bool calls return false with a
// message in `error`; add() counts failures in its result.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip_address.h"

struct mnl_socket;

namespace nfq {

inline constexpr size_t kIpSetMaxNameLength = 31;      // IPSET_MAXNAMELEN without the NUL
inline constexpr uint32_t kIpSetMaxTimeout = 2147483;  // seconds: the kernel's IPSET_MAX_TIMEOUT

// One (address, tcp:port) pair and how long it may pass, in seconds (never
// 0: the kernel reads 0 as "permanent").
struct SetEntry {
  common::IpAddress ip;
  uint16_t port = 0;
  uint32_t timeoutSeconds = 0;
  friend bool operator==(const SetEntry&, const SetEntry&) = default;
};

// Appends an IPSET_CMD_ADD of `entry` (TCP) to `set` at the start of
// `buffer`, without NLM_F_EXCL (an existing entry gets the new timeout) and
// without NLM_F_ACK (only failures are answered). Returns the message's
// aligned length, or 0 when it does not fit or the name is too long.
size_t encodeAdd(std::span<uint8_t> buffer, std::string_view set, const SetEntry& entry,
                 uint32_t seq) noexcept;

struct IpSetAddResult {
  size_t sent = 0;    // entries handed to the kernel
  size_t full = 0;    // refused: the set holds maxelem entries
  size_t failed = 0;  // refused for another reason, or could not be sent
};

struct IpSetHeader {
  std::string typeName;  // "hash:ip,port"
  common::IpFamily family = common::IpFamily::V4;
};

class IpSetClient {
 public:
  IpSetClient() = default;
  IpSetClient(const IpSetClient&) = delete;
  IpSetClient& operator=(const IpSetClient&) = delete;

  bool open(std::string& error);
  bool isOpen() const noexcept { return socket_ != nullptr; }

  // Creates a hash:ip,port set with timeouts, or reuses an existing one of
  // that type and family (other parameters may differ: it is not destroyed
  // while a rule refers to it). A set of another type under the name fails.
  bool create(std::string_view name, common::IpFamily family, uint32_t maxElements, std::string& error);
  bool flush(std::string_view name, std::string& error);
  // A missing set is fine. Retries for a while when the set is still
  // referenced (nf_tables releases removed rules' references asynchronously).
  bool destroy(std::string_view name, std::string& error);
  // The set's type and family; false (error = "no such set") when missing.
  bool header(std::string_view name, IpSetHeader& out, std::string& error);
  // How many entries the set holds (`ipset list -t`, "Number of entries":
  // timed-out entries count until the kernel's garbage collector removes
  // them). False when the set is missing or the kernel does not say.
  bool size(std::string_view name, uint64_t& entries, std::string& error);

  // Adds TCP entries, v4 ones to `set4`, v6 ones to `set6`, batched (up to
  // 64 per sendmsg); never blocks, never allocates.
  IpSetAddResult add(std::string_view set4, std::string_view set6,
                     std::span<const SetEntry> entries) noexcept;

 private:
  struct SocketClose {
    void operator()(mnl_socket* socket) const noexcept;
  };
  struct Reply;

  bool request(std::vector<uint8_t>& message, Reply* reply, std::string& error, int* code = nullptr);
  void sendBatch(size_t bytes, size_t count, IpSetAddResult& result) noexcept;
  uint32_t nextSeq() noexcept { return ++seq_; }

  std::unique_ptr<mnl_socket, SocketClose> socket_;
  unsigned portId_ = 0;
  uint32_t seq_ = 0;
  std::vector<uint8_t> batch_;
  std::vector<uint8_t> receive_;
};

}  // namespace nfq

#include "nfq/kernel_guard.h"
#include "common/errno_text.h"
#include "nfq/bpf_syscall.h"
#include "nfq/kernel_verdict.h"

#include <arpa/inet.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>

namespace nfq {
namespace {

// --- a tiny assembler ------------------------------------------------------

constexpr uint8_t R0 = 0, R1 = 1, R2 = 2, R3 = 3, R4 = 4, R6 = 6, R7 = 7, R8 = 8, R9 = 9, FP = 10;

// __sk_buff->ifindex: skb->dev, the interface the packet came in on in
// FORWARD and INPUT (what NFQA_IFINDEX_INDEV reports).
constexpr int16_t kSkbIfindex = offsetof(__sk_buff, ifindex);

class Assembler {
 public:
  void op(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
    bpf_insn insn{};
    insn.code = code;
    insn.dst_reg = dst & 0xf;
    insn.src_reg = src & 0xf;
    insn.off = off;
    insn.imm = imm;
    code_.push_back(insn);
  }
  void mov(uint8_t dst, uint8_t src) { op(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0); }
  void movImm(uint8_t dst, int32_t imm) { op(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm); }
  void alu64Imm(uint8_t operation, uint8_t dst, int32_t imm) {
    op(BPF_ALU64 | operation | BPF_K, dst, 0, 0, imm);
  }
  // 32-bit arithmetic: results are modulo 2^32 and zero-extended.
  void alu32(uint8_t operation, uint8_t dst, uint8_t src) { op(BPF_ALU | operation | BPF_X, dst, src, 0, 0); }
  void alu32Imm(uint8_t operation, uint8_t dst, int32_t imm) {
    op(BPF_ALU | operation | BPF_K, dst, 0, 0, imm);
  }
  // Legacy packet loads (socket filters): byte order converted to host,
  // and the program returns 0 when the offset lies beyond the packet.
  void loadAbs(uint8_t size, int32_t offset) { op(BPF_LD | size | BPF_ABS, 0, 0, 0, offset); }
  void loadInd(uint8_t size, uint8_t base, int32_t offset) {
    op(BPF_LD | size | BPF_IND, 0, base, 0, offset);
  }
  void load(uint8_t size, uint8_t dst, uint8_t base, int16_t offset) {
    op(BPF_LDX | size | BPF_MEM, dst, base, offset, 0);
  }
  void store(uint8_t size, uint8_t base, int16_t offset, uint8_t src) {
    op(BPF_STX | size | BPF_MEM, base, src, offset, 0);
  }
  void storeImm(uint8_t size, uint8_t base, int16_t offset, int32_t imm) {
    op(BPF_ST | size | BPF_MEM, base, 0, offset, imm);
  }
  void loadMapFd(uint8_t dst, int fd) {
    // BPF_LD | BPF_DW | BPF_IMM (BPF_LD and BPF_IMM are 0): a 64-bit
    // immediate over two instructions, here the map's descriptor.
    static_assert(BPF_LD == 0 && BPF_IMM == 0);
    op(BPF_DW, dst, BPF_PSEUDO_MAP_FD, 0, fd);
    op(0, 0, 0, 0, 0);
  }
  void call(int32_t helper) { op(BPF_JMP | BPF_CALL, 0, 0, 0, helper); }
  void exit() { op(BPF_JMP | BPF_EXIT, 0, 0, 0, 0); }
  // Conditional jumps to the "return 0" label, patched by finish().
  void failIfImm(uint8_t condition, uint8_t dst, int32_t imm) {
    fails_.push_back(code_.size());
    op(BPF_JMP | condition | BPF_K, dst, 0, 0, imm);
  }
  void failIf(uint8_t condition, uint8_t dst, uint8_t src) {
    fails_.push_back(code_.size());
    op(BPF_JMP | condition | BPF_X, dst, src, 0, 0);
  }
  std::vector<bpf_insn> finish() {
    // return 1 ... ; fail: return 0
    movImm(R0, 1);
    exit();
    const size_t fail = code_.size();
    movImm(R0, 0);
    exit();
    for (size_t at : fails_) code_[at].off = static_cast<int16_t>(fail - at - 1);
    return std::move(code_);
  }

 private:
  std::vector<bpf_insn> code_;
  std::vector<size_t> fails_;
};

// Stack layout: the key at fp-40 (40 bytes), a start value at fp-56.
constexpr int16_t kKey = -40;
constexpr int16_t kStartValue = -56;

// Reads the IP and TCP headers of the skb in R6 (data starts at the IP
// header in netfilter hooks): R7 = offset of the TCP header, R8 = the
// acknowledgment number (host order), and the key of the connection the
// packet answers (client = destination) at fp-40. Fails (returns 0) on
// anything but TCP directly after the IP header, an IPv4 fragment, or
// `flagsMask` bits other than `flags` (SYN/RST/ACK).
void readReply(Assembler& a, KernelFamily family, int32_t flags) {
  const bool v4 = family == KernelFamily::V4;
  int32_t srcOffset = 8, dstOffset = 24, addressBytes = 16;
  if (v4) {
    a.loadAbs(BPF_B, 0);
    a.alu64Imm(BPF_AND, R0, 0x0f);
    a.alu64Imm(BPF_LSH, R0, 2);
    a.mov(R7, R0);
    a.failIfImm(BPF_JLT, R7, 20);
    a.loadAbs(BPF_B, 9);
    a.failIfImm(BPF_JNE, R0, IPPROTO_TCP);
    a.loadAbs(BPF_H, 6);  // MF and the fragment offset
    a.alu64Imm(BPF_AND, R0, 0x3fff);
    a.failIfImm(BPF_JNE, R0, 0);
    srcOffset = 12;
    dstOffset = 16;
    addressBytes = 4;
  } else {
    // TCP right after the fixed header; extension headers go to user space.
    a.movImm(R7, 40);
    a.loadAbs(BPF_B, 6);
    a.failIfImm(BPF_JNE, R0, IPPROTO_TCP);
  }
  a.loadInd(BPF_B, R7, 13);
  a.alu64Imm(BPF_AND, R0, 0x16);  // SYN | RST | ACK
  a.failIfImm(BPF_JNE, R0, flags);
  a.loadInd(BPF_W, R7, 8);
  a.mov(R8, R0);
  for (int16_t at = kKey; at < 0; at += 8) a.storeImm(BPF_DW, FP, at, 0);
  const auto copy = [&](int32_t packetOffset, bool fromTcp, int16_t keyOffset, int32_t length) {
    a.mov(R1, R6);
    if (fromTcp) {
      a.mov(R2, R7);
      a.alu64Imm(BPF_ADD, R2, packetOffset);
    } else {
      a.movImm(R2, packetOffset);
    }
    a.mov(R3, FP);
    a.alu64Imm(BPF_ADD, R3, kKey + keyOffset);
    a.movImm(R4, length);
    a.call(BPF_FUNC_skb_load_bytes);
    a.failIfImm(BPF_JNE, R0, 0);
  };
  copy(dstOffset, false, static_cast<int16_t>(offsetof(KernelFlowKey, client)), addressBytes);
  copy(srcOffset, false, static_cast<int16_t>(offsetof(KernelFlowKey, server)), addressBytes);
  copy(2, true, static_cast<int16_t>(offsetof(KernelFlowKey, clientPort)), 2);
  copy(0, true, static_cast<int16_t>(offsetof(KernelFlowKey, serverPort)), 2);
  a.storeImm(BPF_B, FP, static_cast<int16_t>(kKey + static_cast<int16_t>(offsetof(KernelFlowKey, family))),
             v4 ? 4 : 6);
  a.storeImm(BPF_B, FP, static_cast<int16_t>(kKey + static_cast<int16_t>(offsetof(KernelFlowKey, protocol))),
             IPPROTO_TCP);
}

std::vector<bpf_insn> synAckProgram(KernelFamily family, int mapFd) {
  Assembler a;
  a.mov(R6, R1);
  readReply(a, family, 0x12);  // SYN and ACK, no RST
  // RFC 9293 section 3.5: the SYN-ACK acknowledges ISN + 1.
  a.store(BPF_W, FP, static_cast<int16_t>(kStartValue + static_cast<int16_t>(offsetof(KernelStart, seq))),
          R8);
  a.load(BPF_W, R0, R6, kSkbIfindex);
  a.store(BPF_W, FP, static_cast<int16_t>(kStartValue + static_cast<int16_t>(offsetof(KernelStart, ifindex))),
          R0);
  a.call(BPF_FUNC_ktime_get_ns);
  a.store(BPF_DW, FP, static_cast<int16_t>(kStartValue + static_cast<int16_t>(offsetof(KernelStart, timeNs))),
          R0);
  a.loadMapFd(R1, mapFd);
  a.mov(R2, FP);
  a.alu64Imm(BPF_ADD, R2, kKey);
  a.mov(R3, FP);
  a.alu64Imm(BPF_ADD, R3, kStartValue);
  a.movImm(R4, BPF_ANY);
  a.call(BPF_FUNC_map_update_elem);
  a.failIfImm(BPF_JNE, R0, 0);  // not recorded: queue it as before
  return a.finish();
}

std::vector<bpf_insn> confirmProgram(KernelFamily family, int mapFd) {
  using namespace kernel_layout;
  Assembler a;
  a.mov(R6, R1);
  readReply(a, family, 0x10);  // ACK, no SYN or RST
  a.loadMapFd(R1, mapFd);
  a.mov(R2, FP);
  a.alu64Imm(BPF_ADD, R2, kKey);
  a.call(BPF_FUNC_map_lookup_elem);
  a.failIfImm(BPF_JEQ, R0, 0);
  a.mov(R9, R0);
  // Not from the client's side (a pod spoofing the server).
  a.load(BPF_W, R1, R6, kSkbIfindex);
  a.load(BPF_W, R2, R9, kConfirmIfindex);
  a.failIf(BPF_JEQ, R1, R2);
  // acknowledges(): beyond = ack - judgedEnd; beyond <= passedEnd -
  // judgedEnd + 1 and beyond < 2^31, all modulo 2^32.
  a.load(BPF_W, R2, R9, kConfirmJudgedEnd);
  a.mov(R1, R8);
  a.alu32(BPF_SUB, R1, R2);
  a.load(BPF_W, R3, R9, kConfirmPassedEnd);
  a.alu32(BPF_SUB, R3, R2);
  a.alu32Imm(BPF_ADD, R3, 1);
  a.failIf(BPF_JGT, R1, R3);
  a.mov(R4, R1);
  a.alu64Imm(BPF_RSH, R4, 31);
  a.failIfImm(BPF_JNE, R4, 0);
  a.storeImm(BPF_W, R9, kConfirmConfirmed, 1);
  a.call(BPF_FUNC_ktime_get_ns);
  a.store(BPF_DW, R9, kConfirmTime, R0);
  return a.finish();
}

int loadProgram(const std::vector<bpf_insn>& code, const char* name, std::string& log) {
  bpf_attr attr{};
  attr.insns = reinterpret_cast<uint64_t>(code.data());
  attr.insn_cnt = static_cast<uint32_t>(code.size());
  return loadSocketFilter(attr, name, 4096, 300, log);
}

bool isBpfFs(const std::string& path) {
  struct statfs info {};
  return statfs(path.c_str(), &info) == 0 && static_cast<unsigned long>(info.f_type) == BPF_FS_MAGIC;
}

std::string parentOf(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == 0 || slash == std::string::npos ? std::string("/") : path.substr(0, slash);
}

}  // namespace

KernelFlowKey kernelKey(const FlowKey& key) noexcept {
  KernelFlowKey out{};
  std::memcpy(out.client, key.src.bytes.data(), key.src.byteLength());
  std::memcpy(out.server, key.dst.bytes.data(), key.dst.byteLength());
  const uint16_t clientPort = htons(key.srcPort);
  const uint16_t serverPort = htons(key.dstPort);
  std::memcpy(out.clientPort, &clientPort, 2);
  std::memcpy(out.serverPort, &serverPort, 2);
  out.family = key.src.family == common::IpFamily::V4 ? 4 : 6;
  out.protocol = key.protocol;
  return out;
}

FlowKey flowKeyOf(const KernelFlowKey& key) noexcept {
  FlowKey out;
  const bool v4 = key.family == 4;
  out.src = v4 ? common::IpAddress::v4Bytes(key.client) : common::IpAddress::v6Bytes(key.client);
  out.dst = v4 ? common::IpAddress::v4Bytes(key.server) : common::IpAddress::v6Bytes(key.server);
  out.srcPort = static_cast<uint16_t>(key.clientPort[0] << 8 | key.clientPort[1]);
  out.dstPort = static_cast<uint16_t>(key.serverPort[0] << 8 | key.serverPort[1]);
  out.protocol = key.protocol;
  return out;
}

bool kernelConfirms(const KernelConfirm& entry, uint32_t ack, uint32_t ifindex) noexcept {
  if (ifindex == entry.clientIfindex) return false;
  const uint32_t beyond = ack - entry.judgedEnd;
  return beyond <= entry.passedEnd - entry.judgedEnd + 1 && beyond < (1U << 31);
}

std::vector<bpf_insn> kernelProgram(KernelProgram program, KernelFamily family, int mapFd) {
  return program == KernelProgram::SynAck ? synAckProgram(family, mapFd) : confirmProgram(family, mapFd);
}

std::string kernelPinPath(const std::string& dir, KernelProgram program, KernelFamily family) {
  return dir + (program == KernelProgram::SynAck ? "/synack" : "/confirm") +
         (family == KernelFamily::V4 ? "4" : "6");
}

void removeKernelPins(const std::string& dir) noexcept {
  for (const KernelProgram program : {KernelProgram::SynAck, KernelProgram::Confirm}) {
    for (const KernelFamily family : {KernelFamily::V4, KernelFamily::V6}) {
      ::unlink(kernelPinPath(dir, program, family).c_str());
    }
  }
  // The kernel verdict's programs share the directory (nfq/kernel_verdict.h).
  for (const KernelVerdictFamily family : {KernelVerdictFamily::V4, KernelVerdictFamily::V6}) {
    ::unlink(kernelVerdictPinPath(dir, family).c_str());
  }
  ::rmdir(dir.c_str());
}

TimePoint kernelTime(uint64_t ns) noexcept {
  return TimePoint(std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(ns)));
}

StreamStarts::Start streamStartOf(const KernelStart& start) noexcept {
  return {start.seq, start.ifindex, kernelTime(start.timeNs)};
}

KernelGuard::~KernelGuard() {
  remove();
}

bool KernelGuard::open(const Options& options, std::string& error) {
  remove();
  options_ = options;
  const auto fail = [&](const std::string& what) {
    error = what;
    remove();
    starts_.reset();
    confirms_.reset();
    programs_.clear();
    return false;
  };
  const std::string mount = parentOf(options.dir);
  if (!isBpfFs(mount)) {
    // Pinning needs a bpffs; mounting one needs CAP_SYS_ADMIN (the
    // DaemonSet mounts the host's /sys/fs/bpf instead).
    if (::mount("bpf", mount.c_str(), "bpf", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700") != 0) {
      return fail("no bpffs at " + mount + " and mounting one failed: " + common::errnoText(errno));
    }
  }
  if (mkdir(options.dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return fail("mkdir " + options.dir + ": " + common::errnoText(errno));
  }
  starts_.reset(createBpfMap(BPF_MAP_TYPE_LRU_HASH, sizeof(KernelFlowKey), sizeof(KernelStart),
                             options.starts, 0, "egressd_starts"));
  if (!starts_) return fail("creating the starts map: " + common::errnoText(errno));
  confirms_.reset(createBpfMap(BPF_MAP_TYPE_HASH, sizeof(KernelFlowKey), sizeof(KernelConfirm),
                               options.confirms, 0, "egressd_confirm"));
  if (!confirms_) return fail("creating the confirm map: " + common::errnoText(errno));
  for (const KernelProgram program : {KernelProgram::SynAck, KernelProgram::Confirm}) {
    for (const KernelFamily family : {KernelFamily::V4, KernelFamily::V6}) {
      const int map = program == KernelProgram::SynAck ? starts_.get() : confirms_.get();
      const std::string path = kernelPinPath(options.dir, program, family);
      std::string log;
      common::UniqueFd fd(loadProgram(kernelProgram(program, family, map), "egressd_guard", log));
      if (!fd)
        return fail("loading " + path + ": " + common::errnoText(errno) + (log.empty() ? "" : ": " + log));
      if (!pinBpfObject(fd.get(), path)) return fail("pinning " + path + ": " + common::errnoText(errno));
      pinned_.push_back(path);
      programs_.push_back(std::move(fd));
    }
  }
  return true;
}

void KernelGuard::remove() noexcept {
  for (const std::string& path : pinned_) ::unlink(path.c_str());
  if (!pinned_.empty() || starts_) ::rmdir(options_.dir.c_str());
  pinned_.clear();
}

namespace {

// One map command on the connection's key: `value` is read or written by
// the kernel (nullptr for a delete). 0, or -1 with errno.
long mapCommand(int command, int mapFd, const FlowKey& key, void* value, uint64_t flags = 0) noexcept {
  const KernelFlowKey k = kernelKey(key);
  bpf_attr attr{};
  attr.map_fd = static_cast<uint32_t>(mapFd);
  attr.key = reinterpret_cast<uint64_t>(&k);
  attr.value = reinterpret_cast<uint64_t>(value);
  attr.flags = flags;
  return bpfCall(command, attr);
}

}  // namespace

std::optional<KernelStart> KernelGuard::findStart(const FlowKey& key) const noexcept {
  KernelStart value{};
  if (!starts_ || mapCommand(BPF_MAP_LOOKUP_ELEM, starts_.get(), key, &value) != 0) return std::nullopt;
  return value;
}

bool KernelGuard::expectConfirm(const FlowKey& key, const KernelConfirm& entry) const noexcept {
  KernelConfirm value = entry;
  return confirms_ && mapCommand(BPF_MAP_UPDATE_ELEM, confirms_.get(), key, &value, BPF_ANY) == 0;
}

std::optional<KernelConfirm> KernelGuard::findConfirm(const FlowKey& key) const noexcept {
  KernelConfirm value{};
  if (!confirms_ || mapCommand(BPF_MAP_LOOKUP_ELEM, confirms_.get(), key, &value) != 0) return std::nullopt;
  return value;
}

std::optional<KernelConfirm> KernelGuard::takeConfirm(const FlowKey& key) const noexcept {
  if (!confirms_) return std::nullopt;
  KernelConfirm value{};
  if (mapCommand(BPF_MAP_LOOKUP_AND_DELETE_ELEM, confirms_.get(), key, &value) == 0) return value;
  if (errno == ENOENT) return std::nullopt;
  // Hash maps take the one-step form from Linux 5.14 on; before, two.
  std::optional<KernelConfirm> found = findConfirm(key);
  forgetConfirm(key);
  return found;
}

void KernelGuard::forgetConfirm(const FlowKey& key) const noexcept {
  if (confirms_) mapCommand(BPF_MAP_DELETE_ELEM, confirms_.get(), key, nullptr);
}

std::optional<size_t> KernelGuard::readConfirms(ConfirmWalk& walk, std::span<KernelFlowKey> keys,
                                                std::span<KernelConfirm> values) const noexcept {
  if (!confirms_ || walk.done || keys.empty() || values.size() < keys.size()) return std::nullopt;
  // kernel/bpf/hashtab.c __htab_map_lookup_and_delete_batch: in_batch is
  // where the last call stopped (absent on the first), out_batch where
  // this one did; ENOENT with the last entries when the walk is through.
  KernelFlowKey next{};
  bpf_attr attr{};
  attr.batch.map_fd = static_cast<uint32_t>(confirms_.get());
  attr.batch.in_batch = walk.started ? reinterpret_cast<uint64_t>(&walk.cursor) : 0;
  attr.batch.out_batch = reinterpret_cast<uint64_t>(&next);
  attr.batch.keys = reinterpret_cast<uint64_t>(keys.data());
  attr.batch.values = reinterpret_cast<uint64_t>(values.data());
  attr.batch.count = static_cast<uint32_t>(keys.size());
  if (bpfCall(BPF_MAP_LOOKUP_BATCH, attr) != 0) {
    if (errno != ENOENT) return std::nullopt;
    walk.done = true;
  }
  walk.cursor = next;
  walk.started = true;
  return std::min<size_t>(attr.batch.count, keys.size());
}

size_t KernelGuard::forgetConfirms(std::span<const KernelFlowKey> keys) const noexcept {
  if (!confirms_) return 0;
  const auto forgetOne = [this](const KernelFlowKey& key) {
    bpf_attr attr{};
    attr.map_fd = static_cast<uint32_t>(confirms_.get());
    attr.key = reinterpret_cast<uint64_t>(&key);
    bpfCall(BPF_MAP_DELETE_ELEM, attr);  // ENOENT: gone already
  };
  size_t calls = 0;
  while (!keys.empty()) {
    ++calls;
    if (keys.size() == 1) {
      forgetOne(keys.front());  // the same one syscall, without the batch's copy of the count
      return calls;
    }
    bpf_attr attr{};
    attr.batch.map_fd = static_cast<uint32_t>(confirms_.get());
    attr.batch.keys = reinterpret_cast<uint64_t>(keys.data());
    attr.batch.count = static_cast<uint32_t>(keys.size());
    if (bpfCall(BPF_MAP_DELETE_BATCH, attr) == 0) return calls;
    // kernel/bpf/syscall.c generic_map_delete_batch stops at the first key
    // it cannot delete (gone already: ENOENT) and says how many it did.
    const size_t done = std::min<size_t>(attr.batch.count, keys.size());
    if (errno == ENOENT && done < keys.size()) {
      keys = keys.subspan(done + 1);
      continue;
    }
    // No batch operations (before Linux 5.6): one at a time.
    for (const KernelFlowKey& key : keys.subspan(done)) {
      forgetOne(key);
      ++calls;
    }
    return calls;
  }
  return calls;
}

}  // namespace nfq

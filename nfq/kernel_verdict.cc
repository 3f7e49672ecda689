#include "nfq/kernel_verdict.h"

#include <elf.h>
#include <linux/btf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "common/errno_text.h"
#include "nfq/bpf_syscall.h"

namespace nfq {

#ifdef EGRESSD_HAVE_KERNEL_VERDICT_OBJECT
// nfq/bpf/kernel_verdict.bpf.c compiled by clang at build time, embedded
// by cmake/EmbedBytes.cmake.
extern const unsigned char kKernelVerdictObject[];
extern const size_t kKernelVerdictObjectSize;
static std::span<const uint8_t> kernelVerdictObject() noexcept {
  return {kKernelVerdictObject, kKernelVerdictObjectSize};
}
#else
static std::span<const uint8_t> kernelVerdictObject() noexcept {
  return {};
}
#endif

namespace {

// The per-CPU scratch map's value: at least sizeof(struct scratch) in the
// program (a _Static_assert there keeps it so).
constexpr uint32_t kScratchBytes = 8192;

// --- the ELF object: sections, symbols, relocations -----------------------

// A read-only view of the embedded relocatable object (ELF64, EM_BPF,
// little-endian), bounds-checked: a corrupt object gives an error, never a
// read past it.
class ElfObject {
 public:
  ElfObject(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool parse(std::string& error) {
    if (size_ < sizeof(Elf64_Ehdr)) return fail(error, "too short");
    std::memcpy(&header_, data_, sizeof header_);
    if (std::memcmp(header_.e_ident, ELFMAG, SELFMAG) != 0 || header_.e_ident[EI_CLASS] != ELFCLASS64 ||
        header_.e_ident[EI_DATA] != ELFDATA2LSB || header_.e_machine != EM_BPF) {
      return fail(error, "not a little-endian 64-bit BPF object");
    }
    if (header_.e_shentsize != sizeof(Elf64_Shdr) || header_.e_shoff > size_ ||
        (size_ - header_.e_shoff) / sizeof(Elf64_Shdr) < header_.e_shnum ||
        header_.e_shstrndx >= header_.e_shnum) {
      return fail(error, "bad section table");
    }
    sections_.resize(header_.e_shnum);
    std::memcpy(sections_.data(), data_ + header_.e_shoff, header_.e_shnum * sizeof(Elf64_Shdr));
    for (const Elf64_Shdr& section : sections_) {
      if (section.sh_type != SHT_NOBITS &&
          (section.sh_offset > size_ || section.sh_size > size_ - section.sh_offset))
        return fail(error, "section beyond the object");
      if (section.sh_type == SHT_SYMTAB) symtab_ = static_cast<int>(&section - sections_.data());
    }
    if (symtab_ < 0 || sections_[symtab_].sh_link >= sections_.size()) return fail(error, "no symbol table");
    return true;
  }

  // The section named `name`, or -1.
  int section(std::string_view name) const {
    for (size_t i = 0; i < sections_.size(); ++i) {
      if (sectionName(i) == name) return static_cast<int>(i);
    }
    return -1;
  }
  const Elf64_Shdr& header(int index) const { return sections_[static_cast<size_t>(index)]; }
  std::string_view sectionName(size_t index) const {
    return string(static_cast<size_t>(header_.e_shstrndx), sections_[index].sh_name);
  }
  const uint8_t* bytes(int index) const { return data_ + sections_[static_cast<size_t>(index)].sh_offset; }
  size_t count() const { return sections_.size(); }

  size_t symbolCount() const { return sections_[static_cast<size_t>(symtab_)].sh_size / sizeof(Elf64_Sym); }
  Elf64_Sym symbol(size_t index) const {
    Elf64_Sym sym{};
    std::memcpy(&sym, bytes(symtab_) + index * sizeof(Elf64_Sym), sizeof sym);
    return sym;
  }
  std::string_view symbolName(const Elf64_Sym& sym) const {
    return string(sections_[static_cast<size_t>(symtab_)].sh_link, sym.st_name);
  }

 private:
  static bool fail(std::string& error, const char* what) {
    error = std::string("the kernel verdict object: ") + what;
    return false;
  }
  std::string_view string(size_t table, size_t offset) const {
    const Elf64_Shdr& strings = sections_[table];
    if (offset >= strings.sh_size) return {};
    const char* start = reinterpret_cast<const char*>(data_ + strings.sh_offset + offset);
    return {start, strnlen(start, strings.sh_size - offset)};
  }

  const uint8_t* data_;
  size_t size_;
  Elf64_Ehdr header_{};
  std::vector<Elf64_Shdr> sections_;
  int symtab_ = -1;
};

struct MapFd {
  std::string_view name;  // the symbol in the program's "maps" section
  int fd;
};

bool isLoadImm64(const bpf_insn& insn) {
  return insn.code == (BPF_LD | BPF_IMM | BPF_DW);
}

// The program of section `name`: its instructions with .text appended (the
// bpf_loop callbacks and any other function clang kept out of line), the
// relocations applied: map symbols become BPF_PSEUDO_MAP_FD loads of the
// maps created here, references into .text (callbacks, calls) become
// BPF_PSEUDO_FUNC loads and BPF_PSEUDO_CALL offsets. libbpf's
// bpf_object__relocate does the same for general objects.
bool linkProgram(const ElfObject& elf, std::string_view name, const std::vector<MapFd>& maps,
                 std::vector<bpf_insn>& code, std::string& error) {
  const int program = elf.section(name);
  const int text = elf.section(".text");
  const int mapSection = elf.section("maps");
  if (program < 0) {
    error = "the kernel verdict object has no section " + std::string(name);
    return false;
  }
  const auto append = [&](int section) {
    const size_t count = elf.header(section).sh_size / sizeof(bpf_insn);
    const size_t at = code.size();
    code.resize(at + count);
    std::memcpy(code.data() + at, elf.bytes(section), count * sizeof(bpf_insn));
    return at;
  };
  code.clear();
  append(program);
  const size_t textBase = text >= 0 ? append(text) : 0;
  const auto base = [&](int section) { return section == program ? size_t{0} : textBase; };

  for (size_t rel = 0; rel < elf.count(); ++rel) {
    const Elf64_Shdr& relocations = elf.header(static_cast<int>(rel));
    const int target = static_cast<int>(relocations.sh_info);
    if (relocations.sh_type != SHT_REL || (target != program && (target != text || text < 0))) continue;
    for (size_t r = 0; r < relocations.sh_size / sizeof(Elf64_Rel); ++r) {
      Elf64_Rel entry{};
      std::memcpy(&entry, elf.bytes(static_cast<int>(rel)) + r * sizeof entry, sizeof entry);
      const size_t at = base(target) + entry.r_offset / sizeof(bpf_insn);
      const size_t symbolIndex = ELF64_R_SYM(entry.r_info);
      if (entry.r_offset % sizeof(bpf_insn) != 0 || at >= code.size() || symbolIndex >= elf.symbolCount()) {
        error = "the kernel verdict object: bad relocation";
        return false;
      }
      const Elf64_Sym sym = elf.symbol(symbolIndex);
      bpf_insn& insn = code[at];
      if (mapSection >= 0 && sym.st_shndx == mapSection && isLoadImm64(insn) && at + 1 < code.size()) {
        const std::string_view mapName = elf.symbolName(sym);
        const auto map =
            std::find_if(maps.begin(), maps.end(), [&](const MapFd& m) { return m.name == mapName; });
        if (map == maps.end()) {
          error = "the kernel verdict object uses an unknown map " + std::string(mapName);
          return false;
        }
        insn.src_reg = BPF_PSEUDO_MAP_FD;
        insn.imm = map->fd;
        code[at + 1].imm = 0;
      } else if (text >= 0 && sym.st_shndx == text) {
        // Byte offsets into .text: the symbol's value plus the addend clang
        // left in imm (a section symbol) or, for a call, imm + 1 instructions.
        const bool call = insn.code == (BPF_JMP | BPF_CALL) && insn.src_reg == BPF_PSEUDO_CALL;
        if (!call && !isLoadImm64(insn)) {
          error = "the kernel verdict object: unexpected relocation into .text";
          return false;
        }
        const int64_t callee =
            call ? static_cast<int64_t>(sym.st_value / sizeof(bpf_insn)) + insn.imm + 1
                 : static_cast<int64_t>((sym.st_value + static_cast<uint64_t>(insn.imm)) / sizeof(bpf_insn));
        const int64_t relative = static_cast<int64_t>(textBase) + callee - static_cast<int64_t>(at) - 1;
        if (!call) {
          insn.src_reg = BPF_PSEUDO_FUNC;
          code[at + 1].imm = 0;
        }
        insn.imm = static_cast<int32_t>(relative);
      } else {
        error = "the kernel verdict object: relocation against " + std::string(elf.symbolName(sym)) +
                " (a .data/.rodata section is not supported)";
        return false;
      }
    }
  }
  return true;
}

// Where the verifier's subprograms start (kernel/bpf/verifier.c
// check_subprogs: the program, and every target of a call or of a
// function's address), in order.
std::vector<uint32_t> subprogramStarts(const std::vector<bpf_insn>& code) {
  std::vector<uint32_t> starts = {0};
  for (size_t i = 0; i < code.size(); ++i) {
    const bool call = code[i].code == (BPF_JMP | BPF_CALL) && code[i].src_reg == BPF_PSEUDO_CALL;
    const bool function = isLoadImm64(code[i]) && code[i].src_reg == BPF_PSEUDO_FUNC;
    if (call || function) starts.push_back(static_cast<uint32_t>(static_cast<int64_t>(i) + code[i].imm + 1));
  }
  std::sort(starts.begin(), starts.end());
  starts.erase(std::unique(starts.begin(), starts.end()), starts.end());
  return starts;
}

// The least BTF the verifier asks of a program with callbacks (a
// BPF_PSEUDO_FUNC needs func_info): `int` (type 1), a prototype returning
// it (type 2) and a static FUNC per subprogram (types 3...). Static
// functions are verified in their callers' context, so their prototypes
// need not tell the arguments.
std::vector<uint8_t> minimalBtf(size_t functions) {
  std::vector<uint32_t> types;
  std::string strings(1, '\0');
  const auto name = [&](const std::string& text) {
    const auto offset = static_cast<uint32_t>(strings.size());
    strings += text;
    strings += '\0';
    return offset;
  };
  const auto info = [](uint32_t kind, uint32_t vlen) { return kind << 24 | vlen; };
  types.insert(types.end(), {name("int"), info(BTF_KIND_INT, 0), 4, BTF_INT_SIGNED << 24 | 32});
  types.insert(types.end(), {0, info(BTF_KIND_FUNC_PROTO, 0), 1});
  for (size_t i = 0; i < functions; ++i) {
    types.insert(types.end(),
                 {name("egressd_f" + std::to_string(i)), info(BTF_KIND_FUNC, BTF_FUNC_STATIC), 2});
  }
  btf_header header{};
  header.magic = BTF_MAGIC;
  header.version = 1;
  header.hdr_len = sizeof header;
  header.type_off = 0;
  header.type_len = static_cast<uint32_t>(types.size() * sizeof(uint32_t));
  header.str_off = header.type_len;
  header.str_len = static_cast<uint32_t>(strings.size());
  std::vector<uint8_t> blob(sizeof header + header.type_len + header.str_len);
  std::memcpy(blob.data(), &header, sizeof header);
  std::memcpy(blob.data() + sizeof header, types.data(), header.type_len);
  std::memcpy(blob.data() + sizeof header + header.type_len, strings.data(), strings.size());
  return blob;
}

int loadBtf(const std::vector<uint8_t>& blob) {
  bpf_attr attr{};
  attr.btf = reinterpret_cast<uint64_t>(blob.data());
  attr.btf_size = static_cast<uint32_t>(blob.size());
  return static_cast<int>(bpfCall(BPF_BTF_LOAD, attr));
}

int loadProgram(const std::vector<bpf_insn>& code, const char* name, std::string& log) {
  const std::vector<uint32_t> starts = subprogramStarts(code);
  common::UniqueFd btf(loadBtf(minimalBtf(starts.size())));
  if (!btf) {
    log = "loading its BTF failed";
    return -1;
  }
  std::vector<bpf_func_info> functions(starts.size());
  for (size_t i = 0; i < starts.size(); ++i) functions[i] = {starts[i], static_cast<uint32_t>(3 + i)};
  bpf_attr attr{};
  attr.prog_btf_fd = static_cast<uint32_t>(btf.get());
  attr.func_info = reinterpret_cast<uint64_t>(functions.data());
  attr.func_info_cnt = static_cast<uint32_t>(functions.size());
  attr.func_info_rec_size = sizeof(bpf_func_info);
  attr.insns = reinterpret_cast<uint64_t>(code.data());
  attr.insn_cnt = static_cast<uint32_t>(code.size());
  return loadSocketFilter(attr, name, 1 << 20, 600, log);
}

uint64_t nanoseconds(TimePoint at) noexcept {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(at.time_since_epoch()).count();
  return ns < 0 ? 0 : static_cast<uint64_t>(ns);
}

// A shared mapping owned by the object (munmap on destruction).
struct Mapping {
  void* address = MAP_FAILED;
  size_t length = 0;
  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() { reset(); }
  bool map(int fd, size_t bytes, int protection, off_t offset) noexcept {
    reset();
    address = ::mmap(nullptr, bytes, protection, MAP_SHARED, fd, offset);
    length = bytes;
    return address != MAP_FAILED;
  }
  void reset() noexcept {
    if (address != MAP_FAILED) ::munmap(address, length);
    address = MAP_FAILED;
  }
  uint8_t* bytes() const noexcept { return static_cast<uint8_t*>(address); }
};

}  // namespace

std::string kernelVerdictPinPath(const std::string& dir, KernelVerdictFamily family) {
  return dir + (family == KernelVerdictFamily::V4 ? "/verdict4" : "/verdict6");
}

bool kernelNameKey(const common::IpAddress& server, uint16_t port, std::string_view name,
                   KernelNameKey& out) noexcept {
  // The program reads names in lower case without a trailing dot (it
  // refuses others), so keys are written that way.
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > kKernelNameBytes) return false;
  out = KernelNameKey{};
  out.family = server.family == common::IpFamily::V4 ? 4 : 6;
  out.protocol = 6;
  out.port[0] = static_cast<uint8_t>(port >> 8);
  out.port[1] = static_cast<uint8_t>(port);
  std::memcpy(out.server, server.bytes.data(), server.byteLength());
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    out.name[i] = c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  }
  return true;
}

struct KernelVerdict::Impl {
  Options options;
  common::UniqueFd names;
  common::UniqueFd state;
  common::UniqueFd ring;
  common::UniqueFd scratch;
  std::array<common::UniqueFd, 2> programs;
  std::vector<std::string> pinned;
  Mapping stateMap;       // the one KernelVerdictState (BPF_F_MMAPABLE)
  Mapping consumerMap;    // the ring's consumer position (read-write)
  Mapping producerMap;    // its producer position and the data, mapped twice (read-only)
  uint64_t consumer = 0;  // our copy of the consumer position
  uint64_t pending = 0;   // the position after the record peekRecord returned

  KernelVerdictState* stateValue() const noexcept {
    return reinterpret_cast<KernelVerdictState*>(stateMap.address);
  }
  uint64_t* consumerPosition() const noexcept { return reinterpret_cast<uint64_t*>(consumerMap.address); }
  const uint64_t* producerPosition() const noexcept {
    return reinterpret_cast<const uint64_t*>(producerMap.address);
  }
  const uint8_t* data() const noexcept { return producerMap.bytes() + ::getpagesize(); }
};

KernelVerdict::KernelVerdict() = default;

KernelVerdict::~KernelVerdict() {
  remove();
}

bool KernelVerdict::open(const Options& options, const KernelGuard& guard, std::string& error) {
  remove();
  impl_.reset();
  const std::span<const uint8_t> object = kernelVerdictObject();
  if (object.empty()) {
    error = "built without clang: kernel verdict unavailable";
    return false;
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  const auto fail = [&](const std::string& what) {
    error = what;
    for (const std::string& path : impl->pinned) ::unlink(path.c_str());
    return false;
  };
  if (!guard.active()) return fail("the kernel guard is not active");
  const size_t page = static_cast<size_t>(::getpagesize());
  if (options.ringBytes < page || (options.ringBytes & (options.ringBytes - 1)) != 0)
    return fail("the ring size must be a power of two of at least a page");

  impl->names.reset(createBpfMap(BPF_MAP_TYPE_LRU_HASH, sizeof(KernelNameKey), sizeof(KernelNameValue),
                                 options.names, 0, "egressd_names"));
  if (!impl->names) return fail("creating the names map: " + common::errnoText(errno));
  impl->state.reset(createBpfMap(BPF_MAP_TYPE_ARRAY, sizeof(uint32_t), sizeof(KernelVerdictState), 1,
                                 BPF_F_MMAPABLE, "egressd_vstate"));
  if (!impl->state) return fail("creating the state map: " + common::errnoText(errno));
  impl->ring.reset(createBpfMap(BPF_MAP_TYPE_RINGBUF, 0, 0, options.ringBytes, 0, "egressd_vring"));
  if (!impl->ring) return fail("creating the ring: " + common::errnoText(errno));
  impl->scratch.reset(
      createBpfMap(BPF_MAP_TYPE_PERCPU_ARRAY, sizeof(uint32_t), kScratchBytes, 1, 0, "egressd_vscratch"));
  if (!impl->scratch) return fail("creating the scratch map: " + common::errnoText(errno));

  // The state is written with single atomic stores through a mapping: the
  // generation and the consumer's deadline never overwrite each other.
  if (!impl->stateMap.map(impl->state.get(), page, PROT_READ | PROT_WRITE, 0))
    return fail("mapping the state map: " + common::errnoText(errno));
  __atomic_store_n(&impl->stateValue()->generation, 1, __ATOMIC_RELEASE);
  // The ring (kernel/bpf/ringbuf.c): the consumer page is ours to write;
  // the producer page and the data pages, which the kernel maps twice in a
  // row so that a record wrapping around the end reads contiguously, are
  // read-only.
  if (!impl->consumerMap.map(impl->ring.get(), page, PROT_READ | PROT_WRITE, 0))
    return fail("mapping the ring's consumer page: " + common::errnoText(errno));
  if (!impl->producerMap.map(impl->ring.get(), page + 2 * size_t{options.ringBytes}, PROT_READ,
                             static_cast<off_t>(page)))
    return fail("mapping the ring: " + common::errnoText(errno));
  impl->consumer = __atomic_load_n(impl->consumerPosition(), __ATOMIC_ACQUIRE);

  ElfObject elf(object.data(), object.size());
  if (!elf.parse(error)) return fail(error);
  const std::vector<MapFd> maps = {
      {"starts", guard.startsMapFd()}, {"confirm", guard.confirmMapFd()}, {"names", impl->names.get()},
      {"state", impl->state.get()},    {"ring", impl->ring.get()},        {"scratch", impl->scratch.get()},
  };
  for (const KernelVerdictFamily family : {KernelVerdictFamily::V4, KernelVerdictFamily::V6}) {
    const bool v4 = family == KernelVerdictFamily::V4;
    std::vector<bpf_insn> code;
    if (!linkProgram(elf, v4 ? "socket/verdict4" : "socket/verdict6", maps, code, error)) return fail(error);
    const std::string path = kernelVerdictPinPath(options.dir, family);
    std::string log;
    common::UniqueFd fd(loadProgram(code, v4 ? "egressd_verdict4" : "egressd_verdict6", log));
    if (!fd)
      return fail("loading " + path + ": " + common::errnoText(errno) + (log.empty() ? "" : ": " + log));
    if (!pinBpfObject(fd.get(), path)) return fail("pinning " + path + ": " + common::errnoText(errno));
    impl->pinned.push_back(path);
    impl->programs[v4 ? 0 : 1] = std::move(fd);
  }
  impl_ = std::move(impl);
  return true;
}

bool KernelVerdict::active() const noexcept {
  return impl_ != nullptr;
}

void KernelVerdict::remove() noexcept {
  if (!impl_) return;
  for (const std::string& path : impl_->pinned) ::unlink(path.c_str());
  impl_->pinned.clear();
  // The directory is the kernel guard's; it goes once both have unpinned.
  ::rmdir(impl_->options.dir.c_str());
}

bool KernelVerdict::allow(const common::IpAddress& server, uint16_t port, std::string_view name,
                          TimePoint expiry) noexcept {
  if (!impl_) return false;
  KernelNameKey key{};
  if (!kernelNameKey(server, port, name, key)) return false;
  KernelNameValue value{};
  value.expiryNs = nanoseconds(expiry);
  value.generation = __atomic_load_n(&impl_->stateValue()->generation, __ATOMIC_ACQUIRE);
  bpf_attr attr{};
  attr.map_fd = static_cast<uint32_t>(impl_->names.get());
  attr.key = reinterpret_cast<uint64_t>(&key);
  attr.value = reinterpret_cast<uint64_t>(&value);
  attr.flags = BPF_ANY;
  return bpfCall(BPF_MAP_UPDATE_ELEM, attr) == 0;
}

void KernelVerdict::forget(const common::IpAddress& server, uint16_t port, std::string_view name) noexcept {
  if (!impl_) return;
  KernelNameKey key{};
  if (!kernelNameKey(server, port, name, key)) return;
  bpf_attr attr{};
  attr.map_fd = static_cast<uint32_t>(impl_->names.get());
  attr.key = reinterpret_cast<uint64_t>(&key);
  bpfCall(BPF_MAP_DELETE_ELEM, attr);  // ENOENT: never written, or gone already
}

void KernelVerdict::invalidateAll() noexcept {
  if (impl_) __atomic_fetch_add(&impl_->stateValue()->generation, 1, __ATOMIC_SEQ_CST);
}

void KernelVerdict::keepConsumerAlive(TimePoint until) noexcept {
  if (impl_) __atomic_store_n(&impl_->stateValue()->consumerDeadlineNs, nanoseconds(until), __ATOMIC_RELEASE);
}

int KernelVerdict::ringFd() const noexcept {
  return impl_ ? impl_->ring.get() : -1;
}

const KernelVerdictRecord* KernelVerdict::peekRecord(std::span<const uint8_t>& packet) noexcept {
  if (!impl_) return nullptr;
  Impl& r = *impl_;
  const uint64_t mask = r.options.ringBytes - 1;
  while (true) {
    // Acquire pairs with the kernel's release of the producer position and
    // of each record's length word (bpf_ringbuf_commit).
    const uint64_t producer = __atomic_load_n(r.producerPosition(), __ATOMIC_ACQUIRE);
    if (r.consumer >= producer) return nullptr;
    const uint8_t* header = r.data() + (r.consumer & mask);
    const uint32_t word = __atomic_load_n(reinterpret_cast<const uint32_t*>(header), __ATOMIC_ACQUIRE);
    if ((word & BPF_RINGBUF_BUSY_BIT) != 0) return nullptr;  // reserved, not yet committed
    const uint32_t length = word & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
    const uint64_t next = r.consumer + ((uint64_t{length} + BPF_RINGBUF_HDR_SZ + 7) & ~uint64_t{7});
    const auto* record = reinterpret_cast<const KernelVerdictRecord*>(header + BPF_RINGBUF_HDR_SZ);
    if ((word & BPF_RINGBUF_DISCARD_BIT) != 0 || length < sizeof(KernelVerdictRecord) ||
        record->version != kKernelVerdictRecordVersion ||
        record->packetBytes > length - sizeof(KernelVerdictRecord)) {
      // Discarded (or, impossibly, not ours: another layout): skip it.
      r.consumer = next;
      __atomic_store_n(r.consumerPosition(), r.consumer, __ATOMIC_RELEASE);
      continue;
    }
    r.pending = next;
    packet = std::span<const uint8_t>(header + BPF_RINGBUF_HDR_SZ + sizeof(KernelVerdictRecord),
                                      record->packetBytes);
    return record;
  }
}

void KernelVerdict::releaseRecord() noexcept {
  if (!impl_) return;
  // Release: our reads of the record happen before the kernel may reuse it.
  impl_->consumer = impl_->pending;
  __atomic_store_n(impl_->consumerPosition(), impl_->consumer, __ATOMIC_RELEASE);
}

}  // namespace nfq

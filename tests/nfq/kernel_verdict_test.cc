// The kernel verdict (nfq/kernel_verdict.h): the real programs, loaded by
// KernelVerdict against a real KernelGuard's maps and run by the kernel
// (BPF_PROG_TEST_RUN) over crafted IPv4 and IPv6 packets carrying real
// OpenSSL ClientHellos and HTTP request heads. Every refusal is a row that
// must return 0 and leave no confirm entry and no event; the allowed rows
// must write exactly the confirm entry and the ring record the worker
// needs. The differential test runs every TLS and HTTP sample of the fuzz
// corpora, plus mutations, through the program and holds it to "kernel
// allow => the sni/ parsers read the same name and decide() allows".
//
// Needs root (CAP_BPF, CAP_SYS_ADMIN for a private bpffs): skipped with a
// message otherwise.
#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "bpf_test_run.h"
#include "common/unique_fd.h"
#include "nfq/first_payload.h"
#include "nfq/kernel_guard.h"
#include "nfq/kernel_verdict.h"
#include "nfq/packet.h"
#include "nfq/verdict.h"
#include "packet_builder.h"
#include "sni/tls.h"
#include "tests/support/rule_sets.h"
#include "tests/support/test_internet.h"

namespace {

using nfqtest::Bytes;
using namespace std::chrono_literals;

constexpr uint8_t kAck = 0x10, kSyn = 0x02, kFin = 0x01, kRst = 0x04, kPsh = 0x08, kUrg = 0x20;
constexpr uint32_t kIsn = 0x7ffffff0;  // first payload byte: kIsn + 1
constexpr uint32_t kLoopback = 1;      // the test run's packets come in on lo

const char* const kClient4 = "10.0.0.2";
const char* const kServer4 = "203.0.113.10";
const char* const kClient6 = "fd00::2";
const char* const kServer6 = "2001:db8::10";

long bpf(int command, bpf_attr& attr) {
  return syscall(__NR_bpf, command, &attr, sizeof attr);
}

uint64_t monotonicNs() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1000000000ULL + static_cast<uint64_t>(now.tv_nsec);
}

// A real ClientHello: OpenSSL 3's first flight for `sni`, with ALPN.
Bytes opensslHello(const std::string& sni) {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  REQUIRE(ctx);
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), SSL_free);
  REQUIRE(ssl);
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl.get(), in, out);  // owned by ssl from here
  if (!sni.empty()) SSL_set_tlsext_host_name(ssl.get(), sni.c_str());
  static const unsigned char kAlpn[] = "\x02h2\x08http/1.1";
  SSL_set_alpn_protos(ssl.get(), kAlpn, sizeof kAlpn - 1);
  SSL_set_connect_state(ssl.get());
  REQUIRE(SSL_do_handshake(ssl.get()) <= 0);  // waits for the server
  char* data = nullptr;
  const long size = BIO_get_mem_data(out, &data);
  REQUIRE(size > 0);
  return Bytes(data, data + size);
}

Bytes http(const std::string& head) {
  return nfqtest::text(head);
}

Bytes readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

struct Segment {
  bool v6 = false;
  Bytes payload;
  uint16_t port = 443;
  uint8_t flags = kAck | kPsh;
  uint32_t seq = kIsn + 1;
  uint16_t clientPort = 40000;
  const char* server = nullptr;  // default: kServer4 / kServer6
};

Bytes packetOf(const Segment& s) {
  const Bytes segment = nfqtest::tcp(s.clientPort, s.port, s.flags, s.payload, 12, s.seq);
  return s.v6 ? nfqtest::ipv6(kClient6, s.server ? s.server : kServer6, 6, segment)
              : nfqtest::ipv4(kClient4, s.server ? s.server : kServer4, 6, segment);
}

nfq::FlowKey flowOf(const Segment& s) {
  nfq::FlowKey key;
  key.src = *common::parseIpAddress(s.v6 ? kClient6 : kClient4);
  key.dst = *common::parseIpAddress(s.server ? s.server : (s.v6 ? kServer6 : kServer4));
  key.srcPort = s.clientPort;
  key.dstPort = s.port;
  key.protocol = 6;
  return key;
}

// The kernel guard and the kernel verdict on a private bpffs (a mount
// namespace of this process), the consumer alive, the test's server names
// allowed.
struct Kernel {
  std::string skipped;  // why the kernel part cannot run
  std::string mount;
  nfq::KernelGuard guard;
  nfq::KernelVerdict verdict;
  std::array<common::UniqueFd, 2> programs;

  explicit Kernel(uint32_t ringBytes = 1U << 16) {
    if (unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      skipped = "no private mount namespace (needs CAP_SYS_ADMIN)";
      return;
    }
    char dir[] = "/tmp/kvprog-bpffs-XXXXXX";
    if (mkdtemp(dir) == nullptr) {
      skipped = "mkdtemp failed";
      return;
    }
    mount = dir;
    std::string error;
    if (!guard.open({.dir = mount + "/egressd", .starts = 64, .confirms = 64}, error)) {
      skipped = "kernel guard: " + error;
      return;
    }
    if (!verdict.open({.dir = mount + "/egressd", .names = 1024, .ringBytes = ringBytes}, guard, error)) {
      // Loading is what this test is about: a verifier refusal fails it.
      if (error.find("Operation not permitted") != std::string::npos ||
          error.find("built without clang") != std::string::npos) {
        skipped = "kernel verdict: " + error;
        return;
      }
      FAIL("KernelVerdict::open: " << error);
    }
    for (const auto family : {nfq::KernelVerdictFamily::V4, nfq::KernelVerdictFamily::V6}) {
      const std::string path = nfq::kernelVerdictPinPath(mount + "/egressd", family);
      bpf_attr attr{};
      attr.pathname = reinterpret_cast<uint64_t>(path.c_str());
      programs[family == nfq::KernelVerdictFamily::V4 ? 0 : 1].reset(
          static_cast<int>(bpf(BPF_OBJ_GET, attr)));
      REQUIRE(programs[family == nfq::KernelVerdictFamily::V4 ? 0 : 1]);
    }
    verdict.keepConsumerAlive(nfq::Clock::now() + 60s);
  }
  ~Kernel() {
    verdict.remove();
    guard.remove();
    if (!mount.empty()) {
      ::umount2(mount.c_str(), MNT_DETACH);
      ::rmdir(mount.c_str());
    }
  }
  bool ready() const {
    if (!skipped.empty()) WARN("kernel verdict test skipped: " << skipped);  // Catch2 v2 has no SKIP
    return skipped.empty();
  }

  void start(const Segment& s, uint32_t ifindex = 2, uint64_t ageNs = 1000000) {
    nfq::KernelFlowKey key = nfq::kernelKey(flowOf(s));
    nfq::KernelStart value{kIsn + 1, ifindex, monotonicNs() - ageNs};
    bpf_attr attr{};
    attr.map_fd = static_cast<uint32_t>(guard.startsMapFd());
    attr.key = reinterpret_cast<uint64_t>(&key);
    attr.value = reinterpret_cast<uint64_t>(&value);
    REQUIRE(bpf(BPF_MAP_UPDATE_ELEM, attr) == 0);
  }
  void forgetStart(const Segment& s) {
    nfq::KernelFlowKey key = nfq::kernelKey(flowOf(s));
    bpf_attr attr{};
    attr.map_fd = static_cast<uint32_t>(guard.startsMapFd());
    attr.key = reinterpret_cast<uint64_t>(&key);
    bpf(BPF_MAP_DELETE_ELEM, attr);
  }
  void allow(bool v6, uint16_t port, const std::string& name, nfq::TimePoint expiry) {
    REQUIRE(verdict.allow(*common::parseIpAddress(v6 ? kServer6 : kServer4), port, name, expiry));
  }
  void forgetName(bool v6, uint16_t port, const std::string& name) {
    nfq::KernelNameKey key{};
    if (!nfq::kernelNameKey(*common::parseIpAddress(v6 ? kServer6 : kServer4), port, name, key)) return;
    // The names map is the verdict's; reach it through a fresh allow with
    // an expiry in the past (an expired entry allows nothing).
    verdict.allow(*common::parseIpAddress(v6 ? kServer6 : kServer4), port, name, nfq::TimePoint{});
  }

  // Runs the program of the packet's family as the chain would.
  uint32_t run(const Bytes& ip) {
    const bool v6 = (ip[0] >> 4) == 6;
    const std::optional<uint32_t> result = nfqtest::testRunSocketFilter(programs[v6 ? 1 : 0].get(), ip);
    REQUIRE(result);
    return *result;
  }

  struct Event {
    nfq::KernelVerdictRecord header;
    Bytes packet;
  };
  std::vector<Event> drain() {
    std::vector<Event> events;
    verdict.drain([&](const nfq::KernelVerdictRecord& header, std::span<const uint8_t> packet) {
      events.push_back({header, Bytes(packet.begin(), packet.end())});
    });
    return events;
  }
};

struct Row {
  const char* description;
  Segment segment;
  std::function<void(Kernel&, const Segment&)> setup = {};
};

}  // namespace

TEST_CASE("kernel verdict name key: lower case, zero-padded, network byte order", "[nfq][kernel_verdict]") {
  nfq::KernelNameKey key{};
  REQUIRE(nfq::kernelNameKey(*common::parseIpAddress("203.0.113.10"), 443, "API.Example.com.", key));
  CHECK(key.family == 4);
  CHECK(key.protocol == 6);
  CHECK(key.port[0] == 1);
  CHECK(key.port[1] == 187);
  const uint8_t server[16] = {203, 0, 113, 10};
  CHECK(std::memcmp(key.server, server, 16) == 0);
  CHECK(std::string(key.name) == "api.example.com");
  CHECK(key.name[nfq::kKernelNameBytes - 1] == 0);
  REQUIRE(nfq::kernelNameKey(*common::parseIpAddress("2001:db8::10"), 80, "a", key));
  CHECK(key.family == 6);
  CHECK(key.server[0] == 0x20);
  CHECK(key.server[15] == 0x10);
  CHECK_FALSE(nfq::kernelNameKey(*common::parseIpAddress("2001:db8::10"), 80, "", key));
  CHECK(nfq::kernelNameKey(*common::parseIpAddress("2001:db8::10"), 80, std::string(128, 'a'), key));
  CHECK_FALSE(nfq::kernelNameKey(*common::parseIpAddress("2001:db8::10"), 80, std::string(129, 'a'), key));
  CHECK(nfq::kernelVerdictPinPath("/sys/fs/bpf/egressd-1", nfq::KernelVerdictFamily::V6) ==
        "/sys/fs/bpf/egressd-1/verdict6");
}

TEST_CASE("kernel verdict open: fails with the reason and leaves nothing behind", "[nfq][kernel_verdict]") {
  nfq::KernelGuard inactive;
  nfq::KernelVerdict verdict;
  std::string error;
  CHECK_FALSE(verdict.open({.dir = "/nonexistent/egressd"}, inactive, error));
  CHECK_FALSE(verdict.active());
  CHECK_FALSE(error.empty());
  Kernel kernel;
  if (!kernel.ready()) return;
  const std::string dir = kernel.mount + "/egressd2";
  nfq::KernelGuard guard;
  REQUIRE(guard.open({.dir = dir, .starts = 64, .confirms = 64}, error));
  CHECK_FALSE(verdict.open({.dir = dir, .ringBytes = 3000}, guard, error));
  CHECK(error.find("power of two") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(nfq::kernelVerdictPinPath(dir, nfq::KernelVerdictFamily::V4)));
  REQUIRE(verdict.open({.dir = dir, .ringBytes = 1U << 16}, guard, error));
  CHECK(verdict.active());
  CHECK(std::filesystem::exists(nfq::kernelVerdictPinPath(dir, nfq::KernelVerdictFamily::V4)));
  CHECK(std::filesystem::exists(nfq::kernelVerdictPinPath(dir, nfq::KernelVerdictFamily::V6)));
  // egressd --uninstall after a kill: every pin and the directory go.
  nfq::removeKernelPins(dir);
  CHECK_FALSE(std::filesystem::exists(dir));
}

TEST_CASE("kernel verdict allows the plain case and hands the packet over", "[nfq][kernel_verdict]") {
  Kernel kernel;
  if (!kernel.ready()) return;
  const Bytes hello = opensslHello("api.example.com");
  const std::vector<Segment> allowed = {
      {.v6 = false, .payload = hello},
      {.v6 = true, .payload = hello},
      {.v6 = false,
       .payload = http("GET / HTTP/1.1\r\nHost: api.example.com\r\nAccept: */*\r\n\r\n"),
       .port = 80},
      {.v6 = true,
       .payload =
           http("POST /upload?x=1 HTTP/1.0\r\nhost:\tapi.example.com:80 \r\nContent-Length: 3\r\n\r\nabc"),
       .port = 80},
      {.v6 = false, .payload = nfqtest::clientHello("api.example.com", 1200)},  // post-quantum sized
  };
  for (const Segment& s : allowed) {
    CAPTURE(s.v6, s.port, std::string(s.payload.begin(), s.payload.begin() + 16));
    kernel.allow(s.v6, s.port, "api.example.com", nfq::Clock::now() + 30s);
    kernel.start(s);
    const Bytes packet = packetOf(s);
    REQUIRE(kernel.run(packet) == 1);
    const auto entry = kernel.guard.findConfirm(flowOf(s));
    REQUIRE(entry);
    CHECK(entry->judgedEnd == kIsn + 1 + s.payload.size());
    CHECK(entry->passedEnd == entry->judgedEnd);
    CHECK(entry->clientIfindex == kLoopback);
    CHECK(entry->confirmed == 0);
    const auto events = kernel.drain();
    REQUIRE(events.size() == 1);
    CHECK(events[0].packet == packet);
    CHECK(events[0].header.packetBytes == packet.size());
    CHECK(events[0].header.ifindex == kLoopback);
    CHECK(events[0].header.source ==
          static_cast<uint32_t>(s.port == 443 ? nfq::KernelNameSource::Sni : nfq::KernelNameSource::Host));
    const uint64_t now = monotonicNs();
    CHECK(events[0].header.timeNs <= now);
    CHECK(events[0].header.timeNs + 5000000000ULL > now);
    // The starts entry check 1 read, for the worker's own check 1.
    CHECK(events[0].header.version == nfq::kKernelVerdictRecordVersion);
    const auto start = kernel.guard.findStart(flowOf(s));
    REQUIRE(start);
    CHECK(events[0].header.start.seq == kIsn + 1);
    CHECK(events[0].header.start.ifindex == 2);
    CHECK(events[0].header.start.timeNs == start->timeNs);
    kernel.guard.forgetConfirm(flowOf(s));
  }
  CHECK(kernel.drain().empty());
}

TEST_CASE("kernel verdict refuses everything but the plain case", "[nfq][kernel_verdict]") {
  Kernel kernel;
  if (!kernel.ready()) return;
  const Bytes hello = opensslHello("api.example.com");
  const Bytes get = http("GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n");
  const auto v4 = [&](Bytes payload, uint16_t port = 443) {
    return Segment{.payload = std::move(payload), .port = port};
  };
  const auto v6 = [&](Bytes payload, uint16_t port = 443) {
    return Segment{.v6 = true, .payload = std::move(payload), .port = port};
  };
  Bytes truncated = hello;
  truncated.resize(truncated.size() - 1);
  Bytes twoRecords;  // the same hello over two TLS records (sni/ reassembles it)
  {
    const size_t first = 40;
    const Bytes message(hello.begin() + 5, hello.end());
    for (const auto& [from, to] : {std::pair<size_t, size_t>{0, first}, {first, message.size()}}) {
      twoRecords.insert(twoRecords.end(),
                        {22, 3, 1, static_cast<uint8_t>((to - from) >> 8), static_cast<uint8_t>(to - from)});
      twoRecords.insert(twoRecords.end(), message.begin() + static_cast<long>(from),
                        message.begin() + static_cast<long>(to));
    }
  }
  const Bytes fragment = nfqtest::ipv4(
      kClient4, kServer4, 6, nfqtest::tcp(40000, 443, kAck, hello, 12, kIsn + 1), {0, 0x2000, 0});  // MF
  const std::vector<Row> rows = {
      {"name not in the map", v4(opensslHello("other.example.com"))},
      {"upper case SNI", v4(opensslHello("API.example.com"))},
      {"trailing dot", v4(opensslHello("api.example.com."))},
      {"IPv4 literal as SNI", v4(nfqtest::clientHello("203.0.113.10"))},
      {"wrong port", v4(hello, 8443),
       [](Kernel& k, const Segment& s) { k.allow(s.v6, 443, "api.example.com", nfq::Clock::now() + 30s); }},
      {"wrong address", Segment{.payload = hello, .server = "203.0.113.11"}},
      {"expired", v4(hello),
       [](Kernel& k, const Segment& s) {
         k.allow(s.v6, s.port, "api.example.com", nfq::Clock::now() - 1ms);
       }},
      {"old generation", v6(hello),
       [](Kernel& k, const Segment& s) {
         k.allow(s.v6, s.port, "api.example.com", nfq::Clock::now() + 30s);
         k.verdict.invalidateAll();
       }},
      {"consumer deadline passed", v4(hello),
       [](Kernel& k, const Segment&) { k.verdict.keepConsumerAlive(nfq::Clock::now() - 1ms); }},
      {"no start", v4(hello), [](Kernel& k, const Segment& s) { k.forgetStart(s); }},
      {"payload not at ISN + 1", Segment{.payload = hello, .seq = kIsn + 2}},
      {"payload before ISN + 1", Segment{.v6 = true, .payload = hello, .seq = kIsn}},
      {"start from the client's interface", v4(hello),
       [](Kernel& k, const Segment& s) { k.start(s, kLoopback); }},
      {"start older than 300 s", v6(hello),
       [](Kernel& k, const Segment& s) { k.start(s, 2, 301ULL * 1000000000ULL); }},
      {"truncated hello", v4(truncated)},
      {"hello over two records", v4(twoRecords)},
      {"hello split over segments (first)", v4(Bytes(hello.begin(), hello.begin() + 100))},
      {"SYN", Segment{.payload = hello, .flags = kSyn | kAck}},
      {"FIN", Segment{.payload = hello, .flags = kFin | kAck}},
      {"RST", Segment{.payload = hello, .flags = kRst | kAck}},
      {"URG", Segment{.payload = hello, .flags = kUrg | kAck}},
      {"no ACK", Segment{.payload = hello, .flags = kPsh}},
      {"no payload", v4({})},
      {"HTTP upper case Host", v4(http("GET / HTTP/1.1\r\nHost: API.example.com\r\n\r\n"), 80)},
      {"HTTP head not complete", v4(http("GET / HTTP/1.1\r\nHost: api.example.com\r\n"), 80)},
      {"HTTP/1.0 without Host", v4(http("GET / HTTP/1.0\r\n\r\n"), 80)},
      {"HTTP duplicate Host",
       v4(http("GET / HTTP/1.1\r\nHost: api.example.com\r\nHost: api.example.com\r\n\r\n"), 80)},
      {"HTTP obs-fold", v4(http("GET / HTTP/1.1\r\nHost: api.example.com\r\nX: a\r\n b\r\n\r\n"), 80)},
      {"HTTP space before colon", v4(http("GET / HTTP/1.1\r\nHost : api.example.com\r\n\r\n"), 80)},
      {"HTTP bare LF", v4(http("GET / HTTP/1.1\nHost: api.example.com\r\n\r\n"), 80)},
      {"HTTP absolute-form",
       v4(http("GET http://api.example.com/ HTTP/1.1\r\nHost: api.example.com\r\n\r\n"), 80)},
      {"HTTP CONNECT",
       v4(http("CONNECT api.example.com:80 HTTP/1.1\r\nHost: api.example.com:80\r\n\r\n"), 80)},
      {"HTTP port 0", v4(http("GET / HTTP/1.1\r\nHost: api.example.com:0\r\n\r\n"), 80)},
      {"HTTP port 65536", v4(http("GET / HTTP/1.1\r\nHost: api.example.com:65536\r\n\r\n"), 80)},
      {"HTTP/2 preface", v4(http("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 80)},
      {"HTTP version 1.2", v4(http("GET / HTTP/1.2\r\nHost: api.example.com\r\n\r\n"), 80)},
  };
  size_t controls = 0;
  for (const Row& row : rows) {
    CAPTURE(row.description);
    const Segment& s = row.segment;
    kernel.verdict.invalidateAll();  // no earlier row's name counts
    kernel.verdict.keepConsumerAlive(nfq::Clock::now() + 60s);
    const uint16_t port = s.port == 80 ? 80 : 443;  // "wrong port" sends to 8443
    kernel.allow(s.v6, port, "api.example.com", nfq::Clock::now() + 30s);
    kernel.allow(s.v6, port, "203.0.113.10", nfq::Clock::now() + 30s);
    kernel.start(s);
    if (row.setup) row.setup(kernel, s);
    CHECK(kernel.run(packetOf(s)) == 0);
    CHECK_FALSE(kernel.guard.findConfirm(flowOf(s)));
    CHECK(kernel.drain().empty());
    // The control: the plain hello or head of the same family and port,
    // with the names, start and consumer reset, is allowed: the row
    // failed for its own reason, not for a broken harness.
    const Segment plain{.v6 = s.v6, .payload = port == 80 ? get : hello, .port = port};
    kernel.verdict.invalidateAll();
    kernel.verdict.keepConsumerAlive(nfq::Clock::now() + 60s);
    kernel.allow(s.v6, port, "api.example.com", nfq::Clock::now() + 30s);
    kernel.start(plain);
    CHECK(kernel.run(packetOf(plain)) == 1);
    kernel.guard.forgetConfirm(flowOf(plain));
    CHECK(kernel.drain().size() == 1);
    ++controls;
  }
  CHECK(controls == rows.size());
  // IPv4 fragments and IPv6 extension headers: left to user space.
  Segment s = v4(hello);
  kernel.verdict.keepConsumerAlive(nfq::Clock::now() + 60s);
  kernel.allow(false, 443, "api.example.com", nfq::Clock::now() + 30s);
  kernel.allow(true, 443, "api.example.com", nfq::Clock::now() + 30s);
  kernel.start(s);
  CHECK(kernel.run(fragment) == 0);
  const Bytes segment6 = nfqtest::tcp(40000, 443, kAck, hello, 12, kIsn + 1);
  kernel.start(v6(hello));
  CHECK(kernel.run(nfqtest::ipv6(kClient6, kServer6, 0, nfqtest::cat({nfqtest::ext(6), segment6}))) == 0);
  CHECK(kernel.run(nfqtest::ipv6(kClient6, kServer6, 6, segment6)) == 1);  // the control
  CHECK_FALSE(kernel.guard.findConfirm(flowOf(s)));
  CHECK(kernel.drain().size() == 1);
}

TEST_CASE("kernel guard confirm map in batches: every entry read once, deletes skip the gone",
          "[nfq][kernel_guard][kernel_verdict]") {
  // The worker's batched confirm round (docs/nfq.md "Kernel guard: the
  // confirm checks") stands on these two calls.
  Kernel kernel;
  if (!kernel.ready()) return;
  std::vector<nfq::FlowKey> keys;
  for (uint16_t port = 0; port < 40; ++port) {
    Segment s{.v6 = port % 2 == 1, .payload = {}, .port = static_cast<uint16_t>(1000 + port)};
    keys.push_back(flowOf(s));
    REQUIRE(kernel.guard.expectConfirm(keys.back(), {port, port, 7, port % 3 == 0 ? 1U : 0U, port}));
  }
  // Read in calls of 8: 40 entries, each once, with its value, and the key
  // maps back to the connection.
  std::vector<nfq::KernelFlowKey> batchKeys(8);
  std::vector<nfq::KernelConfirm> batchValues(8);
  nfq::KernelGuard::ConfirmWalk walk;
  std::vector<int> seen(40, 0);
  size_t calls = 0;
  while (!walk.done) {
    const auto read = kernel.guard.readConfirms(walk, batchKeys, batchValues);
    REQUIRE(read);
    REQUIRE(++calls < 40);
    for (size_t i = 0; i < *read; ++i) {
      const nfq::FlowKey key = nfq::flowKeyOf(batchKeys[i]);
      const auto at = std::find(keys.begin(), keys.end(), key);
      REQUIRE(at != keys.end());
      const auto index = static_cast<size_t>(at - keys.begin());
      ++seen[index];
      CHECK(batchValues[i].judgedEnd == index);
      CHECK(batchValues[i].confirmed == (index % 3 == 0 ? 1U : 0U));
    }
  }
  CHECK(std::count(seen.begin(), seen.end(), 1) == 40);
  CHECK(calls >= 5);
  // Delete a batch with keys gone already among them (first, middle,
  // last): every present one goes, the others stay.
  std::vector<nfq::KernelFlowKey> deletes;
  for (size_t i = 0; i < 20; ++i) deletes.push_back(nfq::kernelKey(keys[i]));
  for (const size_t gone : {0, 7, 19}) kernel.guard.forgetConfirm(keys[gone]);
  CHECK(kernel.guard.forgetConfirms(deletes) == 3);  // stopped at 0, 7 and 19 (the last)
  for (size_t i = 0; i < 40; ++i) CHECK(static_cast<bool>(kernel.guard.findConfirm(keys[i])) == (i >= 20));
  CHECK(kernel.guard.forgetConfirms(std::span<const nfq::KernelFlowKey>(deletes.data() + 1, 1)) == 1);
  // An empty map: one call, nothing read, done.
  for (size_t i = 20; i < 40; ++i) kernel.guard.forgetConfirm(keys[i]);
  nfq::KernelGuard::ConfirmWalk empty;
  const auto none = kernel.guard.readConfirms(empty, batchKeys, batchValues);
  REQUIRE(none);
  CHECK(*none == 0);
  CHECK(empty.done);
}

TEST_CASE("kernel verdict: a full ring allows nothing and leaves no confirm entry", "[nfq][kernel_verdict]") {
  Kernel kernel(1U << 14);  // four pages: a few records
  if (!kernel.ready()) return;
  const Segment s{.payload = nfqtest::clientHello("api.example.com", 1500)};
  kernel.allow(false, 443, "api.example.com", nfq::Clock::now() + 30s);
  kernel.start(s);
  size_t allowed = 0;
  uint32_t last = 1;
  for (int i = 0; i < 64 && last == 1; ++i) {
    last = kernel.run(packetOf(s));
    if (last == 1) {
      ++allowed;
      kernel.guard.forgetConfirm(flowOf(s));
    }
  }
  CHECK(last == 0);
  CHECK(allowed >= 2);
  CHECK_FALSE(kernel.guard.findConfirm(flowOf(s)));
  CHECK(kernel.drain().size() == allowed);
  CHECK(kernel.run(packetOf(s)) == 1);  // drained: room again
  CHECK(kernel.drain().size() == 1);
}

TEST_CASE("kernel verdict ring: records across the end read whole, the descriptor polls",
          "[nfq][kernel_verdict]") {
  Kernel kernel(1U << 14);  // four pages: the records below wrap around it many times
  if (!kernel.ready()) return;
  kernel.allow(false, 443, "api.example.com", nfq::Clock::now() + 30s);
  const auto readable = [&] {
    pollfd waiting{kernel.verdict.ringFd(), POLLIN, 0};
    return ::poll(&waiting, 1, 0) == 1 && (waiting.revents & POLLIN) != 0;
  };
  CHECK_FALSE(readable());
  size_t bytes = 0;
  for (size_t i = 0; i < 48; ++i) {
    // Sizes that do not divide the ring: record boundaries move around it.
    const Segment s{.payload = nfqtest::clientHello("api.example.com", 100 + (i * 397) % 2500),
                    .clientPort = static_cast<uint16_t>(2000 + i)};
    kernel.start(s);
    const Bytes packet = packetOf(s);
    REQUIRE(kernel.run(packet) == 1);
    kernel.guard.forgetConfirm(flowOf(s));
    CHECK(readable());
    const auto events = kernel.drain();
    REQUIRE(events.size() == 1);
    CHECK(events[0].packet == packet);
    CHECK_FALSE(readable());
    bytes += packet.size();
  }
  CHECK(bytes > 4 * (1U << 14));
}

namespace {

// decide() with a policy that allows exactly `name` on `port` and a
// binding of it to the server: what the names map entry stands for.
struct UserSpace {
  std::map<std::pair<std::string, uint16_t>, std::shared_ptr<const policy::Policy>> policies;

  class OneBinding final : public nfq::BindingLookup {
   public:
    OneBinding(std::string name, common::IpAddress ip) : name_(std::move(name)), ip_(ip) {}
    bool isBound(std::string_view name, const common::IpAddress& ip, nfq::TimePoint) const noexcept override {
      return ip == ip_ && name == name_;
    }
    void forEachBoundName(const common::IpAddress& ip, nfq::TimePoint,
                          Visitor& visitor) const noexcept override {
      if (ip == ip_) visitor.visit(name_);
    }

   private:
    std::string name_;
    common::IpAddress ip_;
  };

  // nullptr when `name` cannot be a rule (then no names map entry could exist).
  const policy::Policy* policyFor(const std::string& name, uint16_t port) {
    auto [it, inserted] = policies.try_emplace({name, port});
    if (inserted) {
      const std::string target = name + ":" + std::to_string(port);
      auto parsed = policy::parseTarget(target, policy::defaultPublicSuffixList());
      if (parsed.target) {
        it->second = testsupport::compileWithTestInternet({testsupport::ruleSet("team", "app", {target})});
      }
    }
    return it->second.get();
  }
};

std::vector<Bytes> corpus(const char* folder) {
  std::vector<Bytes> out;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(EGRESSD_SOURCE_DIR) + folder)) {
    out.push_back(readFile(entry.path()));
  }
  return out;
}

}  // namespace

TEST_CASE("kernel verdict allows only what the sni/ parsers and decide() allow", "[nfq][kernel_verdict]") {
  Kernel kernel;
  if (!kernel.ready()) return;
  // Every ClientHello and HTTP request of the fuzz corpora, real OpenSSL
  // hellos and the builders' hellos, each as the first payload.
  std::vector<std::pair<Bytes, uint16_t>> samples;
  for (Bytes& b : corpus("/tests/sni/corpus/tls")) samples.emplace_back(std::move(b), 443);
  for (Bytes& b : corpus("/tests/sni/corpus/http")) samples.emplace_back(std::move(b), 80);
  for (const char* name : {"api.example.com", "a-b_c.example.org", "x.y", "1.example"}) {
    samples.emplace_back(opensslHello(name), 443);
    samples.emplace_back(nfqtest::clientHello(name, 300), 443);
    samples.emplace_back(nfqtest::httpGet(name), 80);
    samples.emplace_back(http("HEAD /a HTTP/1.0\r\nHost: " + std::string(name) + ":8080\r\n\r\n"), 80);
  }
  std::mt19937 random(17);
  UserSpace user;
  std::vector<uint8_t> scratch(sni::kMaxClientHelloBytes);
  size_t runs = 0, allowed = 0, originalsAllowed = 0;
  uint16_t clientPort = 1000;

  const auto userName = [&](std::span<const uint8_t> payload, nfq::PayloadInspection& out) {
    out = nfq::inspectFirstPayload(payload, false, scratch);
    return out.kind == nfq::PayloadKind::Name ? std::string(out.name) : std::string();
  };
  const auto tryOne = [&](const Bytes& payload, uint16_t port, const std::string& original, bool v6) {
    if (payload.size() > 3000) return false;
    nfq::PayloadInspection inspection;
    std::set<std::string> candidates = {original};
    std::string parsed = userName(payload, inspection);
    for (char& c : parsed) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!parsed.empty()) candidates.insert(parsed);
    bool any = false;
    for (const std::string& name : candidates) {
      if (name.empty()) continue;
      // One name in the map per run: a 1 says which name the program used.
      kernel.verdict.invalidateAll();
      if (!kernel.verdict.allow(*common::parseIpAddress(v6 ? kServer6 : kServer4), port, name,
                                nfq::Clock::now() + 30s))
        continue;
      const Segment s{.v6 = v6, .payload = payload, .port = port, .clientPort = ++clientPort};
      kernel.start(s);
      const Bytes packet = packetOf(s);
      ++runs;
      if (kernel.run(packet) != 1) {
        CHECK(kernel.drain().empty());
        continue;
      }
      ++allowed;
      any = true;
      CAPTURE(name, std::string(payload.begin(), payload.end()));
      // The parsers read exactly that name, from the same protocol.
      const nfq::DecodeResult decoded = nfq::decodePacket(packet);
      REQUIRE(decoded.ok());
      nfq::PayloadInspection again;
      CHECK(userName(decoded.view.payload, again) == name);
      const auto events = kernel.drain();
      REQUIRE(events.size() == 1);
      CHECK(events[0].packet == packet);
      CHECK(events[0].header.source == static_cast<uint32_t>(again.source == nfq::NameSource::Host
                                                                 ? nfq::KernelNameSource::Host
                                                                 : nfq::KernelNameSource::Sni));
      // decide() on that packet, with what the entry stands for, allows.
      if (const policy::Policy* policy = user.policyFor(name, port)) {
        const UserSpace::OneBinding binding(name, decoded.view.dst);
        const nfq::NamePorts namePorts = nfq::computeNamePorts(*policy);
        nfq::DecideOptions options;
        options.inspectBoundFlows = true;
        options.namePorts = &namePorts;
        nfq::FlowState flow;
        flow.scratch = scratch;
        const nfq::Decision decision =
            nfq::decide(flow, decoded.view, *policy, binding, options, nfq::Clock::now());
        CHECK(decision.verdict == nfq::Verdict::Allow);
        CHECK((decision.reason == nfq::Reason::SniAllowed || decision.reason == nfq::Reason::HostAllowed));
      }
      const auto entry = kernel.guard.takeConfirm(flowOf(s));
      REQUIRE(entry);
      CHECK(entry->judgedEnd == kIsn + 1 + payload.size());
      kernel.forgetStart(s);
    }
    return any;
  };

  for (size_t i = 0; i < samples.size(); ++i) {
    const auto& [sample, port] = samples[i];
    const bool v6 = i % 2 == 1;
    nfq::PayloadInspection inspection;
    std::string original = userName(sample, inspection);
    for (char& c : original) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    CAPTURE(i, original);
    if (tryOne(sample, port, original, v6)) ++originalsAllowed;
    // Mutations: a byte changed (to its neighbours, case flipped, a dot,
    // a colon, zero, 0xff), a byte removed or doubled, the end cut off.
    for (int m = 0; m < 160 && !sample.empty(); ++m) {
      Bytes mutant = sample;
      const size_t at = random() % mutant.size();
      static constexpr uint8_t kValues[] = {0x00, 0xff, '.', ':', 'A', ' ', '\r', '\n'};
      switch (m % 6) {
        case 0:
          mutant[at] = static_cast<uint8_t>(mutant[at] + 1);
          break;
        case 1:
          mutant[at] = static_cast<uint8_t>(mutant[at] - 1);
          break;
        case 2:
          mutant[at] ^= 0x20;
          break;
        case 3:
          mutant[at] = kValues[random() % sizeof kValues];
          break;
        case 4:
          if (random() % 2) {
            mutant.erase(mutant.begin() + static_cast<long>(at));
          } else {
            mutant.insert(mutant.begin() + static_cast<long>(at), mutant[at]);
          }
          break;
        default:
          mutant.resize(at);
          break;
      }
      tryOne(mutant, port, original, v6);
    }
  }
  INFO(runs << " runs, " << allowed << " allowed, " << originalsAllowed << " of " << samples.size()
            << " samples allowed as they are");
  // The harness sees allows: most samples are the plain case.
  CHECK(originalsAllowed >= 16);
  CHECK(allowed > originalsAllowed);
}

// Not run by ctest (hidden tag): the program's cost per packet as the
// kernel measures it (BPF_PROG_TEST_RUN's mean duration over `repeat`
// runs), and its size. `nfq_test "[.kernel_verdict_bench]"` (root).
TEST_CASE("kernel verdict cost per packet", "[.kernel_verdict_bench]") {
  Kernel kernel(1U << 24);  // room for every record of the allowed runs
  if (!kernel.ready()) return;
  for (int family = 0; family < 2; ++family) {
    bpf_prog_info info{};
    bpf_attr attr{};
    attr.info.bpf_fd = static_cast<uint32_t>(kernel.programs[family].get());
    attr.info.info_len = sizeof info;
    attr.info.info = reinterpret_cast<uint64_t>(&info);
    REQUIRE(bpf(BPF_OBJ_GET_INFO_BY_FD, attr) == 0);
    std::printf("verdict%d: %u instructions verified, %u bytes translated, %u bytes jited\n", family ? 6 : 4,
                info.verified_insns, info.xlated_prog_len, info.jited_prog_len);
  }
  const auto measure = [&](const char* what, const Segment& s, uint32_t expected) {
    kernel.start(s);
    Bytes frame(14, 0);
    const Bytes ip = packetOf(s);
    frame[12] = s.v6 ? 0x86 : 0x08;
    frame[13] = s.v6 ? 0xdd : 0x00;
    frame.insert(frame.end(), ip.begin(), ip.end());
    bpf_attr attr{};
    attr.test.prog_fd = static_cast<uint32_t>(kernel.programs[s.v6 ? 1 : 0].get());
    attr.test.data_in = reinterpret_cast<uint64_t>(frame.data());
    attr.test.data_size_in = static_cast<uint32_t>(frame.size());
    attr.test.repeat = 2000;
    REQUIRE(bpf(BPF_PROG_TEST_RUN, attr) == 0);
    CHECK(attr.test.retval == expected);
    std::printf("%-44s %5zu bytes  %6u ns per run\n", what, ip.size(), attr.test.duration);
    kernel.drain();
    kernel.guard.forgetConfirm(flowOf(s));
  };
  kernel.allow(false, 443, "api.example.com", nfq::Clock::now() + 60s);
  kernel.allow(false, 80, "api.example.com", nfq::Clock::now() + 60s);
  const Bytes hello = opensslHello("api.example.com");
  measure("TLS (OpenSSL 3 hello), allowed", {.payload = hello}, 1);
  measure("TLS, post-quantum sized hello, allowed",
          {.payload = nfqtest::clientHello("api.example.com", 1200)}, 1);
  measure("HTTP (curl-like head), allowed", {.payload = nfqtest::httpGet("api.example.com"), .port = 80}, 1);
  measure("TLS, name not in the map", {.payload = opensslHello("other.example.com")}, 0);
  kernel.verdict.keepConsumerAlive(nfq::Clock::now() - 1s);
  measure("TLS, no consumer (refused before parsing)", {.payload = hello}, 0);
}

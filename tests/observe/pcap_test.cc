#include "observe/pcap.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

using observe::PcapWriter;

namespace {

using Bytes = std::vector<uint8_t>;

void put16(Bytes& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}

uint32_t sum16(const uint8_t* data, size_t size, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < size; i += 2) sum += static_cast<uint32_t>(data[i] << 8 | data[i + 1]);
  if (size % 2) sum += static_cast<uint32_t>(data[size - 1] << 8);
  return sum;
}

uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// A real SYN: 10.0.1.2:51234 > 203.0.113.7:443, IPv4 (RFC 791) + TCP
// (RFC 9293) with MSS, both checksums right.
Bytes ipv4TcpSyn() {
  Bytes p(44, 0);
  p[0] = 0x45;
  put16(p, 2, 44);      // total length
  put16(p, 4, 0x1234);  // id
  p[6] = 0x40;          // DF
  p[8] = 64;            // TTL
  p[9] = 6;             // TCP
  const uint8_t src[4] = {10, 0, 1, 2};
  const uint8_t dst[4] = {203, 0, 113, 7};
  std::memcpy(&p[12], src, 4);
  std::memcpy(&p[16], dst, 4);
  put16(p, 10, fold(sum16(p.data(), 20)));
  uint8_t* tcp = &p[20];
  tcp[0] = 51234 >> 8;
  tcp[1] = 51234 & 0xff;
  tcp[2] = 443 >> 8;
  tcp[3] = 443 & 0xff;
  tcp[7] = 1;        // seq 1
  tcp[12] = 6 << 4;  // data offset 24 bytes
  tcp[13] = 0x02;    // SYN
  tcp[14] = 0xfa;    // window 64240
  tcp[15] = 0xf0;
  tcp[20] = 2;  // MSS
  tcp[21] = 4;
  tcp[22] = 0x05;  // 1460
  tcp[23] = 0xb4;
  uint32_t pseudo = sum16(src, 4) + sum16(dst, 4) + 6 + 24;
  const uint16_t check = fold(sum16(tcp, 24, pseudo));
  tcp[16] = static_cast<uint8_t>(check >> 8);
  tcp[17] = static_cast<uint8_t>(check);
  return p;
}

// [2001:db8::5]:5555 > [2001:db8:1::7]:9999 UDP "hello" (RFC 8200, RFC 768).
Bytes ipv6Udp() {
  Bytes p(40 + 8 + 5, 0);
  p[0] = 0x60;
  put16(p, 4, 13);  // payload length
  p[6] = 17;
  p[7] = 64;
  const uint8_t src[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5};
  const uint8_t dst[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7};
  std::memcpy(&p[8], src, 16);
  std::memcpy(&p[24], dst, 16);
  put16(p, 40, 5555);
  put16(p, 42, 9999);
  put16(p, 44, 13);
  std::memcpy(&p[48], "hello", 5);
  const uint32_t pseudo = sum16(src, 16) + sum16(dst, 16) + 13 + 17;
  put16(p, 46, fold(sum16(&p[40], 13, pseudo)));
  return p;
}

std::string run(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) out += buffer;
  const int status = ::pclose(pipe);
  INFO(command << "\n" << out);
  REQUIRE(status == 0);
  return out;
}

struct TempFile {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() /
      ("observe_pcap_" + std::to_string(::getpid()) + "_" + std::to_string(++counter) + ".pcap");
  static inline int counter = 0;
  ~TempFile() { std::filesystem::remove(path); }
};

Bytes readAll(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

uint32_t host32(const Bytes& b, size_t at) {
  uint32_t v = 0;
  std::memcpy(&v, &b[at], 4);
  return v;
}

std::chrono::system_clock::time_point at(int64_t seconds, int64_t micros) {
  return std::chrono::system_clock::time_point(std::chrono::seconds(seconds) +
                                               std::chrono::microseconds(micros));
}

}  // namespace

TEST_CASE("pcap: file and record headers") {
  TempFile file;
  PcapWriter writer;
  std::string error;
  REQUIRE(writer.open(file.path.string(), error));
  const Bytes syn = ipv4TcpSyn();
  REQUIRE(writer.write(at(1764158401, 123456), syn, 60));
  REQUIRE(writer.flush());
  const Bytes bytes = readAll(file.path);
  REQUIRE(bytes.size() == 24 + 16 + syn.size());
  CHECK(host32(bytes, 0) == 0xa1b2c3d4);
  CHECK(bytes[4 + (std::endian::native == std::endian::little ? 0 : 1)] == 2);  // version 2.4
  CHECK(bytes[6 + (std::endian::native == std::endian::little ? 0 : 1)] == 4);
  CHECK(host32(bytes, 16) == 65535);  // snaplen
  CHECK(host32(bytes, 20) == 101);    // LINKTYPE_RAW
  CHECK(host32(bytes, 24) == 1764158401);
  CHECK(host32(bytes, 28) == 123456);
  CHECK(host32(bytes, 32) == syn.size());  // incl_len
  CHECK(host32(bytes, 36) == 60);          // orig_len
  CHECK(std::equal(syn.begin(), syn.end(), bytes.begin() + 40));
}

TEST_CASE("pcap: tcpdump reads what we write") {
  TempFile file;
  {
    PcapWriter writer;
    std::string error;
    REQUIRE(writer.open(file.path.string(), error));
    REQUIRE(writer.write(at(1764158401, 123456), ipv4TcpSyn(), 44));
    REQUIRE(writer.write(at(1764158401, 200000), ipv6Udp(), 53));
    // A 1500-byte SYN with payload, of which only the first 44 bytes were kept.
    Bytes truncated = ipv4TcpSyn();
    put16(truncated, 2, 1500);
    REQUIRE(writer.write(at(1764158402, 5), truncated, 1500));
  }  // the destructor closes (and flushes) the file
  const std::string out = run("tcpdump -nn -tt -r " + file.path.string() + " 2>&1");
  INFO(out);
  CHECK(out.find("reading from file " + file.path.string() + ", link-type RAW (Raw IP)") !=
        std::string::npos);
  CHECK(out.find("1764158401.123456 IP 10.0.1.2.51234 > 203.0.113.7.443: Flags [S], seq 1, win 64240, "
                 "options [mss 1460], length 0\n") != std::string::npos);
  CHECK(out.find("1764158401.200000 IP6 2001:db8::5.5555 > 2001:db8:1::7.9999: UDP, length 5\n") !=
        std::string::npos);
  CHECK(out.find("1764158402.000005 IP 10.0.1.2.51234 > 203.0.113.7.443: Flags [S], seq 1") !=
        std::string::npos);
  // Three records, nothing else.
  CHECK(std::count(out.begin(), out.end(), '\n') == 4);

  // tcpdump sees the original length of the truncated record.
  const std::string verbose = run("tcpdump -nn -v -r " + file.path.string() + " 2>&1");
  CHECK(verbose.find("length 1500") != std::string::npos);
}

TEST_CASE("pcap: errors") {
  PcapWriter writer;
  std::string error;
  CHECK_FALSE(writer.open("/nonexistent-dir/x.pcap", error));
  CHECK(error.find("/nonexistent-dir/x.pcap") != std::string::npos);
  CHECK(error.find("No such file or directory") != std::string::npos);
  CHECK_FALSE(writer.write(at(0, 0), ipv4TcpSyn(), 44));  // not open
  CHECK_FALSE(writer.flush());

  // A full disk: the failure shows on flush or on a later write, and sticks.
  REQUIRE(writer.open("/dev/full", error));
  const Bytes big(60000, 0x45);
  bool failed = false;
  for (int i = 0; i < 4 && !failed; ++i) failed = !writer.write(at(0, 0), big, 60000);
  if (!failed) failed = !writer.flush();
  CHECK(failed);
  CHECK_FALSE(writer.write(at(0, 0), ipv4TcpSyn(), 44));
}

TEST_CASE("pcap: records longer than the snap length are cut") {
  TempFile file;
  PcapWriter writer;
  std::string error;
  REQUIRE(writer.open(file.path.string(), error));
  const Bytes huge(70000, 0x45);
  REQUIRE(writer.write(at(0, 0), huge, 10));
  REQUIRE(writer.flush());
  const Bytes bytes = readAll(file.path);
  REQUIRE(bytes.size() == 24 + 16 + PcapWriter::kSnapLength);
  CHECK(host32(bytes, 32) == PcapWriter::kSnapLength);
  CHECK(host32(bytes, 36) == PcapWriter::kSnapLength);  // never below incl_len
}

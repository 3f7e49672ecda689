#include "observe/pcap.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "common/errno_text.h"

namespace observe {

namespace {

// Classic libpcap format (https://www.tcpdump.org/manpages/pcap-savefile.5.html,
// draft-ietf-opsawg-pcap): a 24-byte file header, then per packet a 16-byte
// record header and the bytes. Fields in the writer's byte order; readers
// recognise it from the magic.
constexpr uint32_t kMagicMicroseconds = 0xa1b2c3d4;
constexpr uint16_t kVersionMajor = 2;
constexpr uint16_t kVersionMinor = 4;
constexpr uint32_t kLinkTypeRaw = 101;  // LINKTYPE_RAW: IPv4 or IPv6 header first

struct FileHeader {
  uint32_t magic;
  uint16_t versionMajor;
  uint16_t versionMinor;
  int32_t thisZone;
  uint32_t sigFigs;
  uint32_t snapLength;
  uint32_t linkType;
};
static_assert(sizeof(FileHeader) == 24);

struct RecordHeader {
  uint32_t seconds;
  uint32_t microseconds;
  uint32_t includedLength;
  uint32_t originalLength;
};
static_assert(sizeof(RecordHeader) == 16);

}  // namespace

void PcapWriter::Close::operator()(FILE* file) const noexcept {
  if (file == stdout) {
    std::fflush(file);
  } else {
    std::fclose(file);
  }
}

bool PcapWriter::open(const std::string& path, std::string& error) {
  file_.reset();
  FILE* file = path == "-" ? stdout : std::fopen(path.c_str(), "wb");
  if (file == nullptr) {
    error = "cannot open " + path + ": " + common::errnoText(errno);
    return false;
  }
  file_.reset(file);
  const FileHeader header{kMagicMicroseconds, kVersionMajor, kVersionMinor, 0, 0, kSnapLength, kLinkTypeRaw};
  if (std::fwrite(&header, sizeof header, 1, file) != 1) {
    error = "cannot write " + path + ": " + common::errnoText(errno);
    file_.reset();
    return false;
  }
  return true;
}

bool PcapWriter::write(std::chrono::system_clock::time_point time, std::span<const uint8_t> bytes,
                       uint32_t originalLength) {
  if (!file_) return false;
  const auto sinceEpoch = std::chrono::floor<std::chrono::microseconds>(time.time_since_epoch());
  const auto seconds = std::chrono::floor<std::chrono::seconds>(sinceEpoch);
  const auto included = static_cast<uint32_t>(std::min<size_t>(bytes.size(), kSnapLength));
  RecordHeader record{};
  // The format's seconds are unsigned 32-bit: clamp rather than wrap.
  record.seconds = static_cast<uint32_t>(std::clamp<int64_t>(seconds.count(), 0, UINT32_MAX));
  record.microseconds = static_cast<uint32_t>((sinceEpoch - seconds).count());
  record.includedLength = included;
  record.originalLength = std::max(originalLength, included);
  if (std::fwrite(&record, sizeof record, 1, file_.get()) != 1 ||
      (included > 0 && std::fwrite(bytes.data(), included, 1, file_.get()) != 1)) {
    file_.reset();  // sticky: a half-written record would corrupt every later one
    return false;
  }
  return true;
}

bool PcapWriter::flush() {
  return file_ && std::fflush(file_.get()) == 0;
}

}  // namespace observe

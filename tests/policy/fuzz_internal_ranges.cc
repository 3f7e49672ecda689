// libFuzzer target: the internal-address classifier on arbitrary addresses.
// Input: 16 address bytes (zero-padded), then optionally operator ranges
// (17 bytes each: 16 address bytes and a prefix length; the high bit of
// the prefix byte picks internal or public, the next one the family).
// Checks:
//   - classify agrees with a naive reference (every range, longest prefix
//     wins, an operator's range over a built-in one of the same length);
//   - IPv4-mapped, IPv4-compatible, NAT64 and 6to4 forms of the first four
//     bytes are internal exactly when that IPv4 address is;
//   - isInternal == classify().internal, and nothing crashes.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/ip_address.h"
#include "policy/internal_ranges.h"

namespace {

using common::IpAddress;
using common::IpFamily;
using common::IpNetwork;

IpNetwork masked(IpAddress address, unsigned prefix) {
  prefix = std::min(prefix, address.bitLength());
  for (unsigned bit = prefix; bit < address.bitLength(); ++bit) {
    address.bytes[bit / 8] = static_cast<uint8_t>(address.bytes[bit / 8] & ~(1U << (7 - bit % 8)));
  }
  return IpNetwork{address, static_cast<uint8_t>(prefix)};
}

struct Candidate {
  IpNetwork network;
  policy::RangeKind kind;
  bool builtin;
  uint8_t offset;
};

// The reference: scan everything, keep the longest (ties: operator).
bool referenceInternal(const IpAddress& ip, const std::vector<Candidate>& all, int depth = 0) {
  const Candidate* best = nullptr;
  for (const Candidate& c : all) {
    if (c.network.address.family != ip.family || !c.network.contains(ip)) continue;
    if (best == nullptr || c.network.prefixLength > best->network.prefixLength ||
        (c.network.prefixLength == best->network.prefixLength && best->builtin && !c.builtin)) {
      best = &c;
    }
  }
  if (best == nullptr) return false;
  if (best->kind == policy::RangeKind::Embedded) {
    if (depth > 0) std::abort();  // an IPv4 address never reaches an embedding range
    return referenceInternal(IpAddress::v4Bytes(ip.bytes.data() + best->offset), all, depth + 1);
  }
  return best->kind == policy::RangeKind::Internal;
}

void check(const policy::InternalRanges& ranges, const std::vector<Candidate>& all, const IpAddress& ip) {
  const policy::AddressClass c = ranges.classify(ip);
  if (c.internal != ranges.isInternal(ip)) std::abort();
  if (c.internal != referenceInternal(ip, all)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  uint8_t bytes[16] = {};
  if (size > 0) std::memcpy(bytes, data, std::min<size_t>(size, 16));  // data may be null when empty
  std::vector<Candidate> all;
  for (const policy::SpecialRange& range : policy::specialRanges()) {
    all.push_back({*common::parseIpNetwork(range.network).network, range.kind, true, range.embedOffset});
  }
  std::vector<IpNetwork> internal, publicRanges;
  for (size_t at = 16; at + 17 <= size && internal.size() + publicRanges.size() < 8; at += 17) {
    const uint8_t flags = data[at + 16];
    const bool v6 = (flags & 0x40) != 0;
    const IpAddress base = v6 ? IpAddress::v6Bytes(data + at) : IpAddress::v4Bytes(data + at);
    const IpNetwork network = masked(base, flags & 0x3f ? (flags & 0x3fU) * (v6 ? 2U : 1U) : 0U);
    if (policy::checkOperatorRange(network)) continue;  // config/ refuses it
    // Same network in both lists is refused by config/ too.
    bool duplicate = false;
    for (const auto& n : internal) duplicate = duplicate || n == network;
    for (const auto& n : publicRanges) duplicate = duplicate || n == network;
    if (duplicate) continue;
    const bool isPublic = (flags & 0x80) != 0;
    (isPublic ? publicRanges : internal).push_back(network);
    all.push_back({network, isPublic ? policy::RangeKind::Public : policy::RangeKind::Internal, false, 0});
  }
  const policy::InternalRanges ranges(internal, publicRanges);

  const IpAddress v6 = IpAddress::v6Bytes(bytes);
  const IpAddress v4 = IpAddress::v4Bytes(bytes);
  check(ranges, all, v6);
  check(ranges, all, v4);

  // The embedding forms of v4 classify like v4.
  const bool want = ranges.isInternal(v4);
  IpAddress forms[4];
  const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  forms[0].family = forms[1].family = forms[2].family = forms[3].family = IpFamily::V6;
  std::memcpy(forms[0].bytes.data(), mapped, 12);
  std::memcpy(forms[1].bytes.data(), nat64, 12);
  for (int i = 0; i < 3; ++i) std::memcpy(forms[i].bytes.data() + 12, bytes, 4);  // forms[2]: ::a.b.c.d
  forms[3].bytes[0] = 0x20;
  forms[3].bytes[1] = 0x02;
  std::memcpy(forms[3].bytes.data() + 2, bytes, 4);
  std::memcpy(forms[3].bytes.data() + 6, bytes + 4, 10);  // the rest of the input as the 6to4 suffix
  // ::0.0.0.0 and ::0.0.0.1 are :: and ::1, with entries of their own
  // (internal, as 0.0.0.0/8 is unless an operator says otherwise).
  const bool unspecifiedOrLoopback = bytes[0] == 0 && bytes[1] == 0 && bytes[2] == 0 && bytes[3] <= 1;
  for (int i = 0; i < 4; ++i) {
    if (!(i == 2 && unspecifiedOrLoopback) && ranges.isInternal(forms[i]) != want) std::abort();
    check(ranges, all, forms[i]);
  }
  return 0;
}

// libFuzzer target for upstream answers: analyzeAnswer (question match,
// CNAME chain, addresses, TTLs), the rebinding check and stripEch, whose
// output must itself analyse the same way.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "dns/answer.h"
#include "dns/wire.h"
#include "policy/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::vector<uint8_t> out(dns::kMaxMessageSize);
  static const auto policy = policy::Policy::empty();
  const std::span<const uint8_t> wire(data, size);
  // Take the question from the input itself so that matching answers get
  // past the question check.
  dns::Header header;
  if (!dns::parseHeader(wire, header)) return 0;
  dns::Query query;
  query.header = header;
  size_t offset = dns::kHeaderSize;
  if (!dns::readName(wire, offset, query.qname, false) || offset + 4 > size) return 0;
  query.qtype = dns::readU16(data + offset);
  query.qclass = dns::readU16(data + offset + 2);
  query.questionEnd = offset + 4;

  dns::AnswerInfo info;
  if (dns::analyzeAnswer(wire, query, header.id, info) != dns::AnswerStatus::Ok) return 0;
  if (info.addressCount > dns::kMaxAnswerAddresses || info.chainLength > dns::kMaxChainLength) std::abort();
  dns::findRebinding(info, *policy);
  const size_t length = dns::stripEch(wire, out);
  if (length != 0) {
    dns::AnswerInfo after;
    const auto status =
        dns::analyzeAnswer(std::span<const uint8_t>(out.data(), length), query, header.id, after);
    if (status != dns::AnswerStatus::Ok || after.hasEch || after.addressCount != info.addressCount)
      std::abort();
  }
  return 0;
}

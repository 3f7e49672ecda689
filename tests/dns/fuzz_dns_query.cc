// libFuzzer target for the client query path, everything but the sockets:
// parseQuery → classifyQuery (real compiled policy) → the response the
// server would write (deny/refuse/FORMERR/truncated), into a fixed buffer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "dns/classify.h"
#include "dns/response.h"
#include "dns/wire.h"
#include "policy/policy.h"
#include "policy/target.h"

namespace {

const policy::Policy& fuzzPolicy() {
  static const std::shared_ptr<const policy::Policy> policy = [] {
    policy::RuleSet set;
    set.ns = "fuzz";
    set.name = "fuzz";
    for (const char* text : {"api.example.com:443", "*.example.org:443", "10.0.0.0/8:5432", "*:80"}) {
      auto parsed = policy::parseTarget(text, policy::defaultPublicSuffixList());
      if (!parsed.target) std::abort();
      set.targets.push_back(*parsed.target);
      set.targetTexts.emplace_back(text);
    }
    return policy::Policy::compile({set});
  }();
  return *policy;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::vector<uint8_t> out(dns::kMaxMessageSize);
  const std::span<const uint8_t> wire(data, size);
  dns::Query query;
  const dns::QueryStatus status = dns::parseQuery(wire, query);
  dns::DnsOptions options;
  const dns::Classification decision = dns::classifyQuery(status, query, fuzzPolicy(), options);
  if (status == dns::QueryStatus::Ok && query.questionEnd > size) std::abort();
  switch (decision.action) {
    case dns::QueryAction::Deny: {
      const dns::ExtendedError ede{dns::kEdeBlocked, dns::denyReasonText(decision.reason)};
      const size_t length = dns::buildResponse(wire, query, decision.rcode, &ede, out);
      // Our own output must parse as a response to the same question.
      dns::MessageReader reader;
      if (length == 0 || !reader.start(std::span<const uint8_t>(out.data(), length))) std::abort();
      dns::ResourceRecord rr;
      while (reader.next(rr)) {
      }
      if (reader.failed()) std::abort();
      break;
    }
    case dns::QueryAction::Refuse:
      dns::buildResponse(wire, query, decision.rcode, nullptr, out);
      break;
    case dns::QueryAction::FormErr:
      dns::buildHeaderOnlyResponse(wire, dns::rcode::FormErr, out);
      break;
    case dns::QueryAction::Forward:
    case dns::QueryAction::Cluster:
      dns::buildTruncatedResponse(wire, query, dns::flag::QR, out);
      break;
    case dns::QueryAction::Drop:
      break;
  }
  return 0;
}

// libFuzzer target for decide(): any bytes as a queued packet (and, split at
// a fuzzer-chosen point, as a held first payload) against a fixed policy
// and binding table. Checks, beyond "no crash": the decision is consistent
// (a hold needs bytes, allow/deny reasons match the verdict, a bound name
// comes from the table).
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "nfq/verdict.h"
#include "policy/policy.h"

namespace {

struct Fixture {
  std::shared_ptr<const policy::Policy> policy;
  nfq::NamePorts namePorts;
  Fixture() {
    policy::RuleSet set;
    set.ns = "fuzz";
    set.name = "rules";
    for (const char* text : {"api.example.com:443", "*.example.org:80", "*:8080", "203.0.113.0/24:443",
                             "[2001:db8::/32]:443", "example.com:443", "db.example.com:3306"}) {
      set.targets.push_back(*policy::parseTarget(text, policy::defaultPublicSuffixList()).target);
      set.targetTexts.emplace_back(text);
    }
    policy = policy::Policy::compile({set});
    namePorts = nfq::computeNamePorts(*policy);
  }
};

class Bindings final : public nfq::BindingLookup {
 public:
  bool isBound(std::string_view name, const common::IpAddress& ip, nfq::TimePoint) const noexcept override {
    return ip.bytes[0] == 192 && (name == "api.example.com" || name == "www.example.org");
  }
  void forEachBoundName(const common::IpAddress& ip, nfq::TimePoint,
                        Visitor& visitor) const noexcept override {
    if (ip.bytes[0] == 192 && !visitor.visit("api.example.com")) visitor.visit("www.example.org");
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Fixture fixture;
  static const Bindings bindings;
  static std::vector<uint8_t> scratch(16384 + 4);
  if (size < 2) return 0;
  const uint8_t control = data[0];
  const std::span<const uint8_t> packet(data + 1, size - 1);
  const nfq::DecodeResult decoded = nfq::decodePacket(packet);
  if (!decoded.ok()) return 0;
  nfq::DecideOptions options;
  options.audit = (control & 1) != 0;
  options.strictBinding = (control & 2) == 0;
  options.inspectBoundFlows = (control & 4) != 0;
  options.namePorts = (control & 8) != 0 ? &fixture.namePorts : nullptr;
  nfq::FlowState flow;
  flow.scratch = scratch;
  flow.timedOut = (control & 16) != 0;
  const nfq::Decision d =
      nfq::decide(flow, decoded.view, *fixture.policy, bindings, options, nfq::TimePoint{});
  if (nfq::reasonName(d.reason) == "unknown" || nfq::verdictName(d.verdict) == "unknown") std::abort();
  if (d.verdict == nfq::Verdict::Hold && (decoded.view.payload.empty() || flow.timedOut)) std::abort();
  if (d.verdict == nfq::Verdict::AuditAllow && !options.audit) std::abort();
  if (options.audit && d.verdict == nfq::Verdict::Deny) std::abort();
  if (d.nameSource == nfq::NameSource::Binding && d.name() != "api.example.com" &&
      d.name() != "www.example.org") {
    std::abort();
  }
  if ((d.reason == nfq::Reason::SniAllowed || d.reason == nfq::Reason::HostAllowed) &&
      !fixture.policy->matchName(d.name(), decoded.view.dstPort)) {
    std::abort();
  }
  return 0;
}

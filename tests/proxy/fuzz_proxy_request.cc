// libFuzzer target for everything the proxy reads from a client before it
// connects anywhere: the request head (request line, header fields, the
// CONNECT authority and absolute-form URI), the decision on its authority
// against a real compiled policy, the refusal text, and a chunked body
// after the head. Also the response-head parser on the same bytes (an
// origin server is untrusted too). Invariants: views stay inside the
// input, an Ok head's length fits, and Content-Length and chunked never
// both frame one message.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "policy/policy.h"
#include "policy/public_suffix.h"
#include "policy/target.h"
#include "proxy/chunked.h"
#include "proxy/decision.h"
#include "proxy/http_head.h"
#include "proxy/response.h"

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

void checkInside(std::string_view view, const uint8_t* data, size_t size) {
  if (view.empty()) return;
  const auto* begin = reinterpret_cast<const char*>(data);
  if (view.data() < begin || view.data() + view.size() > begin + size) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> input(data, size);
  proxy::RequestHead head;
  const size_t maxHead = 2048;
  const proxy::ParseStatus status = proxy::parseRequestHead(input, maxHead, head);
  if (status == proxy::ParseStatus::Ok) {
    if (head.headLength == 0 || head.headLength > size || head.headLength > maxHead) std::abort();
    if (head.headers.chunked && head.headers.hasContentLength) std::abort();
    checkInside(head.method, data, size);
    checkInside(head.target, data, size);
    checkInside(head.path, data, size);
    checkInside(head.authority.host, data, size);
    for (size_t i = 0; i < head.headers.count; ++i) {
      checkInside(head.headers.fields[i].name, data, size);
      checkInside(head.headers.fields[i].value, data, size);
    }
    if (head.form == proxy::RequestForm::Connect || head.form == proxy::RequestForm::Absolute) {
      if (head.authority.port == 0 || head.authority.host.empty()) std::abort();
      const proxy::TargetDecision decision = proxy::judgeTarget(fuzzPolicy(), head.authority);
      if (!decision.allowed) {
        const std::string body = proxy::denialBody(head.method, head.authority, decision.reason);
        if (proxy::errorResponse(decision.reason, body).find("X-Egressd-Reason: ") == std::string::npos)
          std::abort();
      }
    }
    if (head.headers.chunked) {
      proxy::ChunkedScanner scanner;
      proxy::ChunkedScanner::Status chunkStatus;
      const size_t used = scanner.feed(input.subspan(head.headLength), chunkStatus);
      if (used > size - head.headLength) std::abort();
    }
  } else if (status == proxy::ParseStatus::Malformed && head.why.empty()) {
    std::abort();
  }
  proxy::ResponseHead response;
  if (proxy::parseResponseHead(input, maxHead, response) == proxy::ParseStatus::Ok &&
      (response.headLength > size || response.status < 100 || response.status > 999)) {
    std::abort();
  }
  return 0;
}

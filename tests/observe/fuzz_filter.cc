// libFuzzer target for observe::parseFilter: arbitrary bytes from a socket
// client. No crash; errors point inside the text (or at its end) and draw
// with pointAt; a filter that parses evaluates without trouble against a
// few events, and its normalized text parses to the same meaning.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "observe/filter.h"
#include "test_events.h"

namespace {

const observe::Event* fixtures() {
  static const observe::Event events[] = {
      observetest::tlsAllowed(),    observetest::httpDenied(),
      observetest::quicAudit(),     observetest::icmpDenied(),
      observetest::mappedAllowed(), observetest::dnsDenied(),
      observetest::dnsAllowedV6(),  observe::Event{},
  };
  return events;
}
constexpr size_t kFixtures = 8;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto result = observe::parseFilter(text);
  if (auto* error = std::get_if<observe::FilterError>(&result)) {
    if (error->message.empty()) std::abort();
    if (size <= observe::kMaxFilterLength && error->offset + error->length > size) std::abort();
    const std::string drawn = error->pointAt(text);
    if (drawn.find('\n') == std::string::npos) std::abort();
    return 0;
  }
  const observe::Filter& filter = std::get<observe::Filter>(result);
  bool matched[kFixtures];
  for (size_t i = 0; i < kFixtures; ++i) matched[i] = filter.matches(fixtures()[i]);
  // Normalizing can lengthen a filter ("port 1 or 2" → "port 1 or port 2")
  // past the input limit; the round trip holds below it.
  if (filter.text().size() > observe::kMaxFilterLength) return 0;
  auto again = observe::parseFilter(filter.text());
  if (!std::holds_alternative<observe::Filter>(again)) std::abort();
  const observe::Filter& reparsed = std::get<observe::Filter>(again);
  if (reparsed.text() != filter.text()) std::abort();
  for (size_t i = 0; i < kFixtures; ++i) {
    if (reparsed.matches(fixtures()[i]) != matched[i]) std::abort();
  }
  return 0;
}

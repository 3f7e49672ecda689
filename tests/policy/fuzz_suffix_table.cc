// libFuzzer target: the registrable domain of arbitrary bytes from the
// in-process suffix table must be libpsl's, byte for byte (as is, and
// lower-cased as the DNS path hands names over); the host-name lookup the
// tunnel guard uses must agree for every name it is meant for, and stay a
// suffix of any other.
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "policy/public_suffix.h"
#include "tests/policy/psl_reference.h"

namespace {
void check(std::string_view name) {
  const std::string_view ours = policy::defaultPublicSuffixList().registrableDomain(name);
  if (ours != pslreference::registrableDomain(pslreference::fromDat(), name)) std::abort();
  if (ours.data() + ours.size() != name.data() + name.size()) std::abort();
  const std::string_view host = policy::defaultPublicSuffixList().registrableDomainOfHost(name);
  if (host.data() + host.size() != name.data() + name.size() || host.size() > name.size()) std::abort();
  const bool hostName = !name.empty() && name.front() != '.' && name.back() != '.' &&
                        name.find("..") == std::string_view::npos &&
                        name.find('\0') == std::string_view::npos;
  if (hostName && host != ours) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 400) return 0;
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast)
  const std::string name(reinterpret_cast<const char*>(data), size);
  check(name);
  std::string lower = name;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  check(lower);
  return 0;
}

// The public suffix list (publicsuffix.org), used to refuse wildcards
// directly over a public suffix ("*.com", "*.co.uk", "*.github.io").
//
// PublicSuffixList is the interface the pure policy code sees; LibPsl is the
// adapter over libpsl reading Debian's /usr/share/publicsuffix data, with
// an in-process SuffixTable (policy/suffix_table.h) built from the same
// file for registrableDomain, which the DNS query path calls.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace policy {

class PublicSuffixList {
 public:
  virtual ~PublicSuffixList() = default;
  // True when `name` (lower case, no trailing dot) is itself a public
  // suffix, ICANN or private section, including wildcard rules ("*.ck").
  virtual bool isPublicSuffix(std::string_view name) const = 0;
  // The registrable domain of `name` (lower case, no trailing dot): the
  // public suffix plus one label ("a.b.example.co.uk" -> "example.co.uk"),
  // as a view into `name`; `name` itself when it has none (a public suffix,
  // a single label). Exactly libpsl's answer; no allocation, no libpsl call
  // (the DNS query path).
  virtual std::string_view registrableDomain(std::string_view name) const noexcept = 0;
  // The same for a host name as a DNS query carries it (labels not empty,
  // no NUL, no leading or trailing dot), cheaper where the list allows.
  virtual std::string_view registrableDomainOfHost(std::string_view name) const noexcept {
    return registrableDomain(name);
  }
};

// Loads the list from `path`, the text form (.dat; a DAFSA is refused: the
// lookup table is built from the rules). Empty path: Debian's
// /usr/share/publicsuffix/public_suffix_list.dat. Returns nullptr with
// `error` set when no list can be loaded: a policy must not silently run
// without it.
std::unique_ptr<PublicSuffixList> loadPublicSuffixList(const std::string& path, std::string& error);

// Process-wide default list (loaded once, thread-safe); aborts the program
// with a clear message if Debian's list is missing.
const PublicSuffixList& defaultPublicSuffixList();

}  // namespace policy

#include "policy/public_suffix.h"

#include <libpsl.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "common/c_handle.h"

namespace policy {

namespace {

using PslHandle = common::CHandle<psl_ctx_t, psl_free>;

class LibPsl final : public PublicSuffixList {
 public:
  explicit LibPsl(PslHandle handle) : handle_(std::move(handle)) {}

  bool isPublicSuffix(std::string_view name) const override {
    // libpsl wants a NUL-terminated string; names are at most 253 bytes.
    char buffer[256];
    if (name.empty() || name.size() >= sizeof buffer) return false;
    name.copy(buffer, name.size());
    buffer[name.size()] = '\0';
    // PSL_TYPE_ANY: ICANN and private suffixes ("github.io" too), and the
    // implicit "*" rule, so an unlisted TLD counts as a suffix as browsers
    // treat it: the conservative reading for a wildcard allowlist.
    return psl_is_public_suffix2(handle_.get(), buffer, PSL_TYPE_ANY) != 0;
  }

  std::string_view registrableDomain(std::string_view name) const noexcept override {
    // libpsl walks the name from the left, one lookup per label; no rule of
    // the list has more than a handful of labels, so the last eight decide
    // and a 127-label name costs no more than an ordinary one.
    constexpr size_t kLabelsThatDecide = 8;
    std::string_view tail = name;
    size_t labels = 0;
    for (size_t i = name.size(); i > 0; --i) {
      if (name[i - 1] == '.' && ++labels == kLabelsThatDecide) {
        tail = name.substr(i);
        break;
      }
    }
    char buffer[256];
    if (tail.empty() || tail.size() >= sizeof buffer) return name;
    tail.copy(buffer, tail.size());
    buffer[tail.size()] = '\0';
    const char* found = psl_registrable_domain(handle_.get(), buffer);
    if (found == nullptr) return name;
    return name.substr(name.size() - (tail.size() - static_cast<size_t>(found - buffer)));
  }

 private:
  PslHandle handle_;
};

constexpr const char* kDebianLists[] = {
    "/usr/share/publicsuffix/public_suffix_list.dafsa",
    "/usr/share/publicsuffix/public_suffix_list.dat",
};

}  // namespace

std::unique_ptr<PublicSuffixList> loadPublicSuffixList(const std::string& path, std::string& error) {
  std::vector<std::string> candidates;
  if (!path.empty()) {
    candidates.push_back(path);
  } else {
    for (const char* p : kDebianLists) candidates.emplace_back(p);
  }
  for (const auto& candidate : candidates) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(candidate, ec)) continue;
    PslHandle handle(psl_load_file(candidate.c_str()));
    if (handle) return std::make_unique<LibPsl>(std::move(handle));
  }
  error = path.empty() ? "public suffix list not found (install Debian package 'publicsuffix': "
                         "/usr/share/publicsuffix/public_suffix_list.dafsa)"
                       : "cannot load public suffix list from " + path;
  return nullptr;
}

const PublicSuffixList& defaultPublicSuffixList() {
  static const std::unique_ptr<PublicSuffixList> list = [] {
    std::string error;
    auto loaded = loadPublicSuffixList("", error);
    if (!loaded) {
      std::fprintf(stderr, "fatal: %s\n", error.c_str());
      // Start-up is single-threaded here; a policy without the list would
      // silently accept "*.co.uk", so there is no way to carry on.
      std::exit(2);  // NOLINT(concurrency-mt-unsafe)
    }
    return loaded;
  }();
  return *list;
}

}  // namespace policy

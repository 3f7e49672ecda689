#include "policy/public_suffix.h"

#include <libpsl.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "common/c_handle.h"
#include "policy/suffix_table.h"

namespace policy {

namespace {

using PslHandle = common::CHandle<psl_ctx_t, psl_free>;

class LibPsl final : public PublicSuffixList {
 public:
  LibPsl(PslHandle handle, SuffixTable table) : handle_(std::move(handle)), table_(std::move(table)) {}

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
    // The DNS query path: the in-process table, built from the same file
    // libpsl loaded, answers as psl_registrable_domain does (tested against
    // it) for a hash probe or two per label instead of ~3,000 instructions.
    return table_.registrableDomain(name);
  }
  std::string_view registrableDomainOfHost(std::string_view name) const noexcept override {
    return table_.registrableDomainOfHost(name);
  }

 private:
  PslHandle handle_;
  SuffixTable table_;
};

// The text form: the table is built from it, and libpsl loads the same
// file so that both read one source. (Debian's .dafsa is compiled from it
// in the same package.)
constexpr const char* kDebianList = "/usr/share/publicsuffix/public_suffix_list.dat";

std::optional<std::string> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return std::move(text).str();
}

}  // namespace

std::unique_ptr<PublicSuffixList> loadPublicSuffixList(const std::string& path, std::string& error) {
  const std::string file = path.empty() ? kDebianList : path;
  std::error_code ec;
  const auto text = std::filesystem::is_regular_file(file, ec) ? readFile(file) : std::nullopt;
  if (!text) {
    error = path.empty()
                ? "public suffix list not found (install Debian package 'publicsuffix': " + file + ")"
                : "cannot read public suffix list " + file;
    return nullptr;
  }
  if (text->starts_with(".DAFSA@PSL_")) {
    error = "public suffix list " + file + " is a DAFSA; give the text list (public_suffix_list.dat)";
    return nullptr;
  }
  std::string tableError;
  auto table = SuffixTable::fromText(*text, tableError);
  PslHandle handle(psl_load_file(file.c_str()));
  if (!table || !handle) {
    error = "cannot load public suffix list from " + file + (table ? "" : ": " + tableError);
    return nullptr;
  }
  return std::make_unique<LibPsl>(std::move(handle), std::move(*table));
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

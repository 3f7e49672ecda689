// The reference for policy::SuffixTable: libpsl's own psl_registrable_domain,
// called as the libpsl adapter called it before the table (the last eight
// labels, a NUL-terminated copy, the whole name when libpsl finds none).
// Shared by suffix_table_test.cc and fuzz_suffix_table.cc.
#pragma once

#include <libpsl.h>

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "common/c_handle.h"

namespace pslreference {

using PslHandle = common::CHandle<psl_ctx_t, psl_free>;

inline constexpr const char* kDat = "/usr/share/publicsuffix/public_suffix_list.dat";
inline constexpr const char* kDafsa = "/usr/share/publicsuffix/public_suffix_list.dafsa";

// Loaded once; aborts when the file is missing (the test cannot judge).
inline psl_ctx_t* load(const char* path) {
  psl_ctx_t* psl = psl_load_file(path);
  if (psl == nullptr) {
    std::fprintf(stderr, "cannot load %s\n", path);
    std::abort();
  }
  return psl;
}
inline const psl_ctx_t* fromDat() {
  static const PslHandle handle(load(kDat));
  return handle.get();
}
inline const psl_ctx_t* fromDafsa() {
  static const PslHandle handle(load(kDafsa));
  return handle.get();
}

inline std::string_view registrableDomain(const psl_ctx_t* psl, std::string_view name) {
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
  const char* found = psl_registrable_domain(psl, buffer);
  if (found == nullptr) return name;
  return name.substr(name.size() - (tail.size() - static_cast<size_t>(found - buffer)));
}

}  // namespace pslreference

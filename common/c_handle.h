// Ownership of C library handles (STYLE.md rule 6): every event_base,
// ldns_pkt, nfq_handle, SSL_CTX... is held by a std::unique_ptr whose
// deleter is the library's own free function, so no path leaks or
// double-frees it.
//
//   using EventBase = common::CHandle<event_base, event_base_free>;
//   EventBase base{event_base_new()};
#pragma once

#include <memory>

namespace common {

template <auto FreeFunction>
struct CFree {
  template <typename T>
  void operator()(T* handle) const noexcept {
    if (handle != nullptr) FreeFunction(handle);
  }
};

template <typename T, auto FreeFunction>
using CHandle = std::unique_ptr<T, CFree<FreeFunction>>;

}  // namespace common

// Counts heap allocations on this thread while enabled, through replacements
// of every global operator new/delete form (all backed by malloc/free, so
// sanitizers see matching pairs). For "no allocation on the hot path" tests.
#pragma once

#include <cstddef>

namespace testsupport {

struct AllocationCounter {
  AllocationCounter();
  ~AllocationCounter();
  size_t count() const;
};

}  // namespace testsupport

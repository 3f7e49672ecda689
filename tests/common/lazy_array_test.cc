#include "common/lazy_array.h"

#include <sys/mman.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

namespace {

// How many pages of [data, data + bytes) are resident (mincore(2)).
size_t residentPages(const void* data, size_t bytes) {
  const auto page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> map((bytes + page - 1) / page);
  REQUIRE(::mincore(const_cast<void*>(data), bytes, map.data()) == 0);
  size_t resident = 0;
  for (unsigned char bit : map) resident += bit & 1;
  return resident;
}

int live = 0;  // Counted's constructed and not yet destroyed

struct Counted {
  Counted() noexcept : value(7) { ++live; }
  explicit Counted(int v) noexcept : value(v) { ++live; }
  Counted(const Counted&) = delete;
  Counted& operator=(const Counted&) = delete;
  ~Counted() { --live; }
  int value;
  uint8_t padding[4000] = {};
};

struct Squares {
  Counted operator()(size_t index) const noexcept { return Counted(static_cast<int>(index * index)); }
};

}  // namespace

TEST_CASE("lazy array: zero-valued elements cost no memory until written") {
  constexpr size_t kCount = 16u << 20;  // 64 MiB of uint32_t
  common::LazyArray<uint32_t> array(kCount);
  REQUIRE(array.size() == kCount);
  CHECK(residentPages(array.data(), kCount * sizeof(uint32_t)) == 0);
  CHECK(array[kCount - 1] == 0);
  CHECK(array[12345] == 0);
  array[3] = 42;
  CHECK(array[3] == 42);
  // Reading the untouched zero page maps nothing private; one write
  // commits one page.
  CHECK(residentPages(array.data(), kCount * sizeof(uint32_t)) <= 3);
}

TEST_CASE("lazy array: elements are constructed in index order on first access") {
  live = 0;
  {
    common::LazyArray<Counted> array(1000);
    CHECK(array.constructed() == 0);
    CHECK(live == 0);
    CHECK(residentPages(array.data(), 1000 * sizeof(Counted)) == 0);
    CHECK(array[4].value == 7);
    CHECK(array.constructed() == 5);
    CHECK(live == 5);
    array[2].value = 99;
    CHECK(array[2].value == 99);  // not constructed a second time
    CHECK(array.constructed() == 5);
    const auto& view = array;
    CHECK(view[9].value == 7);  // a const read constructs too
    CHECK(live == 10);
    // About 10 elements' worth of pages, not 1000.
    CHECK(residentPages(array.data(), 1000 * sizeof(Counted)) <= 11);
    Counted* first = &array[0];
    CHECK(array[999].value == 7);
    CHECK(&array[0] == first);  // elements never move
    CHECK(live == 1000);
  }
  CHECK(live == 0);  // every constructed element destroyed
}

TEST_CASE("lazy array: a factory gives each element its index") {
  live = 0;
  {
    common::LazyArray<Counted, Squares> array(50);
    CHECK(array[6].value == 36);
    CHECK(array[0].value == 0);
    CHECK(array[3].value == 9);
    CHECK(live == 7);
  }
  CHECK(live == 0);
}

TEST_CASE("lazy array: an empty array maps nothing") {
  common::LazyArray<uint64_t> array(0);
  CHECK(array.size() == 0);
  CHECK(array.data() == nullptr);
}

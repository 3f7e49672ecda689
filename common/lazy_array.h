// A fixed-capacity array that costs memory only for the elements in use.
//
// The packet path's tables are sized for their worst case (65,536 held
// flows per queue, each with a QUIC buffer) and must never allocate while
// packets flow, but on a quiet node almost none of those slots is ever
// touched. A std::vector constructs every element up front, which writes
// every page: about 6 KiB per held-flow slot, 400 MiB per queue at the
// default. LazyArray instead reserves the whole capacity as anonymous
// memory (mmap, MAP_NORESERVE), whose pages the kernel commits only when
// they are first written, and constructs the elements in index order on
// first access: touching element i constructs every element up to i that
// is not constructed yet. The tables hand their slots out lowest index
// first (a high-water mark, then a free list), so what is resident follows
// the most slots ever in use at once, not the capacity.
//
// Elements never move (the reservation is never resized), so pointers and
// references stay valid for the array's lifetime. Types that are trivially
// default-constructible and use the default factory are not constructed
// at all: fresh anonymous pages are zero, which is their value-initialized
// state (std::vector<uint32_t>(n) or std::vector<uint8_t>(n)).
//
// Construction on first access happens inside operator[] (also the const
// one: it is an implementation detail of a logically const read), so an
// array belongs to one thread, like the tables that use it. The factory
// must not throw (the packet path is noexcept); a type with a potentially
// throwing default constructor is refused at compile time.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace common {

template <typename T>
struct DefaultConstruct {
  T operator()(size_t /*index*/) const noexcept { return T(); }
};

template <typename T, typename Make = DefaultConstruct<T>>
class LazyArray {
  static_assert(std::is_same_v<std::invoke_result_t<const Make&, size_t>, T>, "the factory returns a T");
  static_assert(std::is_nothrow_invocable_v<const Make&, size_t>,
                "LazyArray constructs elements on the packet path: the factory must be noexcept");
  static_assert(alignof(T) <= 4096, "LazyArray elements are page-aligned at most");

 public:
  // Reserves `capacity` elements. Throws std::bad_alloc when the address
  // space cannot be reserved (start-up only).
  explicit LazyArray(size_t capacity, Make make = Make()) : make_(std::move(make)), capacity_(capacity) {
    if (capacity_ == 0) return;
    void* memory =
        ::mmap(nullptr, bytes(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (memory == MAP_FAILED) throw std::bad_alloc();
    data_ = static_cast<T*>(memory);
    if constexpr (kZeroIsConstructed) constructed_ = capacity_;
  }
  ~LazyArray() {
    if (data_ == nullptr) return;
    if constexpr (!std::is_trivially_destructible_v<T>) {
      for (size_t i = constructed_; i-- > 0;) data_[i].~T();
    }
    ::munmap(data_, bytes());
  }
  LazyArray(const LazyArray&) = delete;
  LazyArray& operator=(const LazyArray&) = delete;

  // `index` < size(). Constructs every element up to `index` on first use.
  T& operator[](size_t index) noexcept {
    if (index >= constructed_) [[unlikely]]
      constructThrough(index);
    return data_[index];
  }
  const T& operator[](size_t index) const noexcept {
    if (index >= constructed_) [[unlikely]]
      constructThrough(index);
    return data_[index];
  }

  // The capacity: every index below it is valid.
  size_t size() const noexcept { return capacity_; }
  // The first element's address (for index arithmetic; elements at or
  // beyond constructed() are not constructed yet).
  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  // How many elements (from index 0) are constructed.
  size_t constructed() const noexcept { return constructed_; }

 private:
  static constexpr bool kZeroIsConstructed =
      std::is_trivially_default_constructible_v<T> && std::is_same_v<Make, DefaultConstruct<T>>;

  size_t bytes() const noexcept { return capacity_ * sizeof(T); }
  void constructThrough(size_t index) const noexcept {
    for (; constructed_ <= index; ++constructed_)
      ::new (static_cast<void*>(data_ + constructed_)) T(make_(constructed_));
  }

  Make make_;
  size_t capacity_ = 0;
  T* data_ = nullptr;
  mutable size_t constructed_ = 0;
};

}  // namespace common

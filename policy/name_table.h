// A read-only hash table from names to small values, built once per policy
// snapshot. Open addressing with linear probing over one flat slot array
// (hash, name position, value inline), names in one arena: a miss costs
// one cache line, a hit one more to compare the name. The packet path asks
// it several times per name (exact, then each wildcard suffix), so this
// matters at 100,000 targets where std::unordered_map costs two misses per
// probe.
//
// Thread-safety: immutable after build(); concurrent find() is safe.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace policy {

template <typename Value>
class NameTable {
 public:
  void build(const std::vector<std::pair<std::string, Value>>& entries) {
    size_t capacity = 16;
    while (capacity < entries.size() * 2) capacity *= 2;  // load factor <= 0.5
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    arena_.clear();
    size_ = 0;
    lengths_ = {};
    shortest_ = SIZE_MAX;
    longest_ = 0;
    for (const auto& [name, value] : entries) {
      shortest_ = std::min(shortest_, name.size());
      longest_ = std::max(longest_, name.size());
      if (name.size() < kLengths) lengths_[name.size() / 64] |= uint64_t{1} << (name.size() % 64);
      const uint64_t hash = hashOf(name);
      size_t index = hash & mask_;
      while (slots_[index].used) index = (index + 1) & mask_;
      Slot& slot = slots_[index];
      slot.used = true;
      slot.hash = hash;
      slot.nameOffset = static_cast<uint32_t>(arena_.size());
      slot.nameLength = static_cast<uint32_t>(name.size());
      slot.value = value;
      arena_.append(name);
      ++size_;
    }
    arena_.shrink_to_fit();
  }

  const Value* find(std::string_view name) const noexcept {
    if (size_ == 0) return nullptr;
    // No key of this length: no hash to compute (a name's suffixes are
    // probed one by one, and most of them have a length no key has).
    if (name.size() < kLengths && ((lengths_[name.size() / 64] >> (name.size() % 64)) & 1) == 0) {
      return nullptr;
    }
    const uint64_t hash = hashOf(name);
    for (size_t index = hash & mask_;; index = (index + 1) & mask_) {
      const Slot& slot = slots_[index];
      if (!slot.used) return nullptr;
      if (slot.hash == hash && slot.nameLength == name.size() &&
          std::string_view(arena_.data() + slot.nameOffset, slot.nameLength) == name) {
        return &slot.value;
      }
    }
  }

  size_t size() const noexcept { return size_; }
  // The shortest and the longest key (SIZE_MAX and 0 when empty): a name
  // whose suffixes are probed need not look outside that range.
  size_t shortestKey() const noexcept { return shortest_; }
  size_t longestKey() const noexcept { return longest_; }
  bool empty() const noexcept { return size_ == 0; }

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t nameOffset = 0;
    uint32_t nameLength = 0;
    Value value{};
    bool used = false;
  };
  static uint64_t hashOf(std::string_view name) noexcept { return std::hash<std::string_view>{}(name); }
  // Key lengths present, one bit per length below kLengths (longer keys,
  // which names never are, are always looked up).
  static constexpr size_t kLengths = 256;

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
  std::array<uint64_t, kLengths / 64> lengths_{};
  size_t shortest_ = SIZE_MAX;
  size_t longest_ = 0;
  std::string arena_;
};

}  // namespace policy

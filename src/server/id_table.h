// server/id_table.h — the node's client sessions by id (Node::sessions_): an open-addressing
// hash table that owns its values, for the event loop's lookups of a session by id.
//
// Why not std::unordered_map: a write at pipeline 1 looks its session up about seven times
// (its epoll event, the read/parse loop's checks that it is still open, the apply's reply
// slot, the flush): with the standard map's modulo and bucket chain ~29 instructions each,
// ~5 % of a SET's server instructions (bench/README.md, "Server instructions per request at
// pipeline 1"). Here a lookup is a multiply, a shift and (nearly always) one slot.
//
// How: linear probing over a power-of-two array of (id, owner) slots kept at most half full
// (kMaxLoadPercent), the slot chosen by Fibonacci hashing of the id (sequential ids spread
// over the table; the ids are the server's own, never a client's); erase shifts the entries
// after it back (no tombstones, so a long-lived table does not slow down). A value's address
// does not change while it is in the table (slots hold unique_ptrs, moved when slots shift).
// Iteration visits each entry once, in slot order; entries must not be added or erased while
// iterating. Id 0 marks an empty slot and is not a valid key.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "common/assert.h"

namespace hmdb::server {

template <class T>
class IdTable {
 public:
  using Slot = std::pair<uint64_t, std::unique_ptr<T>>;  // id 0: empty

  // The table grows (doubles) before an insert would fill more than this share of it.
  static constexpr size_t kMaxLoadPercent = 50;
  static constexpr size_t kMinSlots = 16;

  T* find(uint64_t id) const {
    if (id == 0 || slots_.empty()) [[unlikely]] return nullptr;
    for (size_t i = home(id);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.first == id) return s.second.get();
      if (s.first == 0) return nullptr;
    }
  }

  // Adds id -> value; id must be nonzero and not in the table.
  void emplace(uint64_t id, std::unique_ptr<T>&& value) {
    HMDB_ASSERT(id != 0, "id 0 marks an empty slot");
    if ((size_ + 1) * 100 > slots_.size() * kMaxLoadPercent) grow();
    size_t i = home(id);
    while (slots_[i].first != 0) {
      HMDB_ASSERT(slots_[i].first != id, "id %llu is in the table already", static_cast<unsigned long long>(id));
      i = (i + 1) & mask_;
    }
    slots_[i] = Slot{id, std::move(value)};
    size_++;
  }

  // Removes id and destroys its value; false if it was not there.
  bool erase(uint64_t id) {
    if (id == 0 || slots_.empty()) return false;
    size_t i = home(id);
    while (slots_[i].first != id) {
      if (slots_[i].first == 0) return false;
      i = (i + 1) & mask_;
    }
    std::unique_ptr<T> gone = std::move(slots_[i].second);
    slots_[i].first = 0;
    size_--;
    // Backward shift: each later entry of the run moves into the hole if its home slot is
    // not between the hole and it (cyclically), so every entry stays reachable from home.
    for (size_t j = (i + 1) & mask_; slots_[j].first != 0; j = (j + 1) & mask_) {
      const size_t h = home(slots_[j].first);
      const bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
      if (stays) continue;
      slots_[i] = std::move(slots_[j]);
      slots_[j].first = 0;
      i = j;
    }
    return true;  // `gone` (the value) is destroyed here, once the table is consistent again
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  template <class SlotT, class Vec>
  class Iter {
   public:
    Iter(Vec* slots, size_t i) : slots_(slots), i_(i) { skip(); }
    SlotT& operator*() const { return (*slots_)[i_]; }
    SlotT* operator->() const { return &(*slots_)[i_]; }
    Iter& operator++() {
      i_++;
      skip();
      return *this;
    }
    bool operator==(const Iter& o) const { return i_ == o.i_; }

   private:
    void skip() {
      while (i_ < slots_->size() && (*slots_)[i_].first == 0) i_++;
    }
    Vec* slots_;
    size_t i_;
  };
  using iterator = Iter<Slot, std::vector<Slot>>;
  using const_iterator = Iter<const Slot, const std::vector<Slot>>;
  iterator begin() { return iterator(&slots_, 0); }
  iterator end() { return iterator(&slots_, slots_.size()); }
  const_iterator begin() const { return const_iterator(&slots_, 0); }
  const_iterator end() const { return const_iterator(&slots_, slots_.size()); }

 private:
  static constexpr uint64_t kFibonacci = 0x9E3779B97F4A7C15ull;  // 2^64 / golden ratio

  size_t home(uint64_t id) const { return static_cast<size_t>((id * kFibonacci) >> shift_); }

  void grow() {
    std::vector<Slot> old = std::move(slots_);
    const size_t n = old.empty() ? kMinSlots : old.size() * 2;
    slots_ = std::vector<Slot>(n);
    mask_ = n - 1;
    shift_ = 64;
    for (size_t s = n; s > 1; s >>= 1) shift_--;  // 64 - log2(n)
    for (Slot& s : old) {
      if (s.first == 0) continue;
      size_t i = home(s.first);
      while (slots_[i].first != 0) i = (i + 1) & mask_;
      slots_[i] = std::move(s);
    }
  }

  std::vector<Slot> slots_;
  size_t size_ = 0;
  size_t mask_ = 0;
  unsigned shift_ = 64;
};

}  // namespace hmdb::server

// apps/kv/list.h — the kv app's list value: a ring buffer of std::string in one heap block.
//
// Why not std::deque: a deque allocates a map array and a 512-byte block even for one
// element (~4 allocations, ~700 bytes), and a list workload (LPUSH on many keys) was
// measured spending most of its CPU and memory there. Here a list of n elements is one
// block of capacity(n) std::string slots, the capacity a power of two (so an index wraps
// with a mask); short elements (up to 15 bytes) live inside their slot (std::string's small
// buffer), so a one-element list of a short value costs one 32-byte allocation.
//
// Push and pop at either end are amortised O(1); indexing is O(1). The block grows by
// doubling when full and shrinks by half when a quarter full, so pops give memory back.
// Order is the visible order of LRANGE and of the snapshot: element 0 is the head.
#pragma once

#include <cassert>
#include <cstddef>
#include <new>
#include <string>
#include <string_view>
#include <utility>

namespace hmdb::kv {

class List {
 public:
  // Capacity of the first block: one slot, because most lists in a keyspace of many keys
  // are short (a random LPUSH workload averages 2-3 elements per key).
  static constexpr size_t kCapacityMin = 1;
  static_assert((kCapacityMin & (kCapacityMin - 1)) == 0, "capacities are powers of two");

  List() noexcept = default;
  List(List&& other) noexcept
      : slots_(std::exchange(other.slots_, nullptr)),
        head_(std::exchange(other.head_, 0)),
        size_(std::exchange(other.size_, 0)),
        capacity_(std::exchange(other.capacity_, 0)) {}
  List& operator=(List&& other) noexcept {
    if (this != &other) {
      destroy();
      slots_ = std::exchange(other.slots_, nullptr);
      head_ = std::exchange(other.head_, 0);
      size_ = std::exchange(other.size_, 0);
      capacity_ = std::exchange(other.capacity_, 0);
    }
    return *this;
  }
  List(const List&) = delete;
  List& operator=(const List&) = delete;
  ~List() { destroy(); }

  size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  size_t capacity() const noexcept { return capacity_; }

  // Element i, counted from the head. REQUIRES: i < size().
  const std::string& operator[](size_t i) const noexcept {
    assert(i < size_);
    return slots_[(head_ + i) & (capacity_ - 1)];
  }
  std::string& operator[](size_t i) noexcept {
    assert(i < size_);
    return slots_[(head_ + i) & (capacity_ - 1)];
  }
  const std::string& front() const noexcept { return (*this)[0]; }
  const std::string& back() const noexcept { return (*this)[size_ - 1]; }

  void push_front(std::string_view value) {
    if (size_ == capacity_) reallocate(capacity_ == 0 ? kCapacityMin : capacity_ * 2);
    size_t at = (head_ + capacity_ - 1) & (capacity_ - 1);
    new (&slots_[at]) std::string(value);  // may throw: nothing changed yet
    head_ = at;
    size_++;
  }
  void push_back(std::string_view value) {
    if (size_ == capacity_) reallocate(capacity_ == 0 ? kCapacityMin : capacity_ * 2);
    new (&slots_[(head_ + size_) & (capacity_ - 1)]) std::string(value);
    size_++;
  }

  // Inserts value before element pos (pos == size(): at the end). O(size() - pos): the
  // elements after it move up by one (swaps of std::string: no copies of their bytes).
  void insert(size_t pos, std::string_view value) {
    assert(pos <= size_);
    push_back(value);
    for (size_t i = size_ - 1; i > pos; i--) std::swap((*this)[i], (*this)[i - 1]);
  }

  // Removes the elements for which remove(i) is true, i counted from the head before any
  // removal, keeping the others in order; the number removed. O(size()).
  template <class Pred>
  size_t remove_where(Pred&& remove) {
    size_t kept = 0;
    for (size_t i = 0; i < size_; i++) {
      if (remove(i)) continue;
      if (kept != i) std::swap((*this)[kept], (*this)[i]);
      kept++;
    }
    const size_t removed = size_ - kept;
    for (size_t i = 0; i < removed; i++) pop_back();
    return removed;
  }

  // REQUIRES: !empty().
  void pop_front() noexcept {
    assert(size_ > 0);
    slots_[head_].~basic_string();
    head_ = (head_ + 1) & (capacity_ - 1);
    size_--;
    maybe_shrink();
  }
  void pop_back() noexcept {
    assert(size_ > 0);
    slots_[(head_ + size_ - 1) & (capacity_ - 1)].~basic_string();
    size_--;
    maybe_shrink();
  }

  // Destroys up to `budget` elements from the back without shrinking the block (that
  // would move the rest), and frees the block with the last one: freeing a deleted list a
  // bounded amount at a time (kv.h, Graveyard). Returns how many.
  size_t clear_some(size_t budget) noexcept {
    const size_t n = budget < size_ ? budget : size_;
    for (size_t i = 0; i < n; i++) slots_[(head_ + size_ - 1 - i) & (capacity_ - 1)].~basic_string();
    size_ -= n;
    if (size_ == 0) destroy();
    return n;
  }

 private:
  void destroy() noexcept {
    for (size_t i = 0; i < size_; i++) slots_[(head_ + i) & (capacity_ - 1)].~basic_string();
    if (slots_) ::operator delete(slots_);
    slots_ = nullptr;
    head_ = size_ = capacity_ = 0;
  }

  // Moves the elements into a fresh block of `capacity` slots (head at slot 0). Throws
  // std::bad_alloc and changes nothing if the block cannot be had.
  void reallocate(size_t capacity) {
    assert(capacity >= size_ && (capacity & (capacity - 1)) == 0);
    auto* fresh = static_cast<std::string*>(::operator new(capacity * sizeof(std::string)));
    move_into(fresh, capacity);
  }
  void move_into(std::string* fresh, size_t capacity) noexcept {
    for (size_t i = 0; i < size_; i++) {
      std::string& old = slots_[(head_ + i) & (capacity_ - 1)];
      new (&fresh[i]) std::string(std::move(old));
      old.~basic_string();
    }
    if (slots_) ::operator delete(slots_);
    slots_ = fresh;
    head_ = 0;
    capacity_ = capacity;
  }

  // Halves the block once it is a quarter full (amortised O(1): a halving follows at least
  // capacity/4 pops). Best effort: if memory is short the list keeps its block. An empty
  // list keeps its block too: the caller deletes the key (a stored list is never empty).
  void maybe_shrink() noexcept {
    if (size_ == 0 || capacity_ <= kCapacityMin || size_ > capacity_ / 4) return;
    size_t capacity = capacity_ / 2;
    auto* fresh = static_cast<std::string*>(::operator new(capacity * sizeof(std::string), std::nothrow));
    if (fresh) move_into(fresh, capacity);
  }

  std::string* slots_ = nullptr;  // capacity_ slots; those in [head_, head_ + size_) (mod capacity_) live
  size_t head_ = 0;               // slot of element 0
  size_t size_ = 0;
  size_t capacity_ = 0;           // 0 or a power of two
};

}  // namespace hmdb::kv

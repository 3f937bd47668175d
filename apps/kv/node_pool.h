// apps/kv/node_pool.h — kv::detail::NodePool: fixed-size blocks carved from slabs of their
// own, for a sorted set's B+tree leaves and inner nodes (zorder.h).
//
// Why: the B+tree's nodes are 552-byte blocks. Given back to glibc's malloc one by one (a
// ZPOPMIN empties a leaf every ~20 pops), each is too big for its fast bins: free()
// coalesces it with its free neighbours at once, and once that makes a free area of 64 KiB
// it consolidates every fast bin, where the entries and their members sit (bench/README.md:
// glibc's unlink_chunk 12.9k -> 68.2k and malloc_consolidate 0 -> 37.9k last-level misses
// per 40,000 ZPOPMIN against the skip list, whose nodes were all fast-bin sized). Here a
// node freed goes onto its slab's free list (two stores); malloc sees a slab allocated or
// freed once per kSlabBytes of nodes at most.
//
// Slabs: kSlabBytes each, from operator new. A slab with a free slot is on the pool's
// `partial_` list, most recently freed-into first (its lines are likely in cache); a slab
// whose last node is freed is given back to malloc, except one empty slab kept as a spare
// (kEmptySlabsKept) so an order that grows and shrinks around a slab boundary does not
// allocate and free a slab per operation. Memory: one pointer (the slot's slab) per node,
// ~1.4 % of a 552-byte node, and up to one slot of tail per slab.
//
// What a pool hands out never moves and is never touched by the pool until freed; the
// order's structure, and so every reply and snapshot, does not depend on where a node lives.
//
// Threads: a pool is shared by every order of one node size in the process (a slab per
// order would cost 64 KiB for a sorted set of 40 members); a mutex guards it, taken once per
// node allocated or freed (one per ~20 inserts or erases) or once per batch of blocks freed
// together (deallocate_n: a freed sorted set's leaf of entries), never held across a call out.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>

// Under AddressSanitizer a freed block is poisoned until handed out again, so a use after
// free of a node is still reported although the pool, not malloc, holds the memory.
#if defined(__SANITIZE_ADDRESS__)
#define HMDB_NODE_POOL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HMDB_NODE_POOL_ASAN 1
#endif
#endif
#ifdef HMDB_NODE_POOL_ASAN
#include <sanitizer/asan_interface.h>
#define HMDB_NODE_POOL_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define HMDB_NODE_POOL_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define HMDB_NODE_POOL_POISON(p, n) ((void)(p), (void)(n))
#define HMDB_NODE_POOL_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace hmdb::kv::detail {

class NodePool {
 public:
  // A slab's size: small enough to stay in malloc's heap (below its 128 KiB mmap threshold),
  // big enough that a slab is allocated or freed once per ~100 nodes of 552 bytes.
  static constexpr size_t kSlabBytes = size_t{64} << 10;
  // Empty slabs kept instead of being freed (see above).
  static constexpr size_t kEmptySlabsKept = 1;

  // node_bytes: the size of every block this pool hands out (8-byte aligned).
  explicit NodePool(size_t node_bytes)
      : slot_bytes_(round_up(sizeof(Slot) + node_bytes)),
        slots_per_slab_(static_cast<uint32_t>((kSlabBytes - sizeof(Slab)) / slot_bytes_)) {
    assert(slots_per_slab_ >= 2);
  }
  // Every block must have been freed: their slabs are all on partial_ then.
  ~NodePool() {
    assert(live_ == 0);
    while (Slab* s = partial_) {
      unlink_partial(s);
      HMDB_NODE_POOL_UNPOISON(s, kSlabBytes);
      ::operator delete(s);
    }
  }
  NodePool(const NodePool&) = delete;
  NodePool& operator=(const NodePool&) = delete;

  // A block of node_bytes; throws std::bad_alloc as operator new does.
  void* allocate() {
    std::lock_guard<std::mutex> lock(mu_);
    Slab* s = partial_;
    if (!s) {
      s = static_cast<Slab*>(::operator new(kSlabBytes));
      *s = Slab{};
      push_partial(s);
      slabs_++;
      empty_++;
    }
    Slot* slot = s->free;
    if (slot) {
      HMDB_NODE_POOL_UNPOISON(slot, slot_bytes_);
      s->free = slot->next_free;
    } else {
      slot = reinterpret_cast<Slot*>(reinterpret_cast<char*>(s + 1) + size_t{s->carved} * slot_bytes_);
      s->carved++;
    }
    slot->slab = s;
    if (s->live++ == 0) empty_--;
    if (!s->free && s->carved == slots_per_slab_) unlink_partial(s);  // now full
    live_++;
    return slot + 1;
  }

  // Gives back a block allocate() returned.
  void deallocate(void* p) noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    deallocate_locked(p);
  }

  // Gives back n blocks allocate() returned, under one lock: a caller freeing many at once
  // (a deleted sorted set's entries, a leaf's worth at a time) takes the mutex once, not per
  // block (14.5 % of the loop's samples freeing a 10 M-member sorted set: bench/README.md).
  template <class T>
  void deallocate_n(T* const* blocks, size_t n) noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < n; i++) deallocate_locked(blocks[i]);
  }

  // For tests: slabs held (empty ones included) and blocks handed out and not freed.
  size_t slabs() const {
    std::lock_guard<std::mutex> lock(mu_);
    return slabs_;
  }
  size_t live() const {
    std::lock_guard<std::mutex> lock(mu_);
    return live_;
  }
  uint32_t slots_per_slab() const { return slots_per_slab_; }

 private:
  struct Slab;
  // A slot's header: its slab while the block is handed out, the next free slot after.
  union Slot {
    Slab* slab;
    Slot* next_free;
  };
  // A slab's header; its slots follow it. Slots [0, carved) have been handed out at least
  // once (each is live or on `free`); the rest were never touched.
  struct Slab {
    Slab* prev = nullptr;  // on partial_
    Slab* next = nullptr;
    Slot* free = nullptr;
    uint32_t carved = 0;
    uint32_t live = 0;
  };
  static_assert(sizeof(Slab) % 8 == 0);

  // deallocate() with mu_ held.
  void deallocate_locked(void* p) noexcept {
    Slot* slot = static_cast<Slot*>(p) - 1;
    Slab* s = slot->slab;
    const bool was_full = !s->free && s->carved == slots_per_slab_;
    slot->next_free = s->free;
    s->free = slot;
    HMDB_NODE_POOL_POISON(slot, slot_bytes_);
    if (was_full) push_partial(s);
    live_--;
    if (--s->live > 0) return;
    if (empty_ < kEmptySlabsKept) {
      empty_++;
      return;
    }
    unlink_partial(s);
    slabs_--;
    HMDB_NODE_POOL_UNPOISON(s, kSlabBytes);
    ::operator delete(s);
  }

  static size_t round_up(size_t b) { return (b + 7) & ~size_t{7}; }

  void push_partial(Slab* s) {
    s->prev = nullptr;
    s->next = partial_;
    if (partial_) partial_->prev = s;
    partial_ = s;
  }
  void unlink_partial(Slab* s) {
    if (s->prev) s->prev->next = s->next;
    else partial_ = s->next;
    if (s->next) s->next->prev = s->prev;
    s->prev = s->next = nullptr;
  }

  const size_t slot_bytes_;
  const uint32_t slots_per_slab_;
  mutable std::mutex mu_;
  Slab* partial_ = nullptr;  // slabs with a free or never-used slot
  size_t slabs_ = 0;
  size_t empty_ = 0;  // slabs with no live block (all on partial_)
  size_t live_ = 0;
};

}  // namespace hmdb::kv::detail

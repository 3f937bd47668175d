// apps/kv/node_pool.h — kv::detail::NodePool: fixed-size blocks carved from slabs of their
// own, for a sorted set's B+tree leaves and inner nodes and its entries (zorder.h).
//
// Why: the B+tree's nodes are 552-byte blocks. Given back to glibc's malloc one by one (a
// ZPOPMIN empties a leaf every ~20 pops), each is too big for its fast bins: free()
// coalesces it with its free neighbours at once, and once that makes a free area of 64 KiB
// it consolidates every fast bin, where the entries and their members sit (bench/README.md:
// glibc's unlink_chunk 12.9k -> 68.2k and malloc_consolidate 0 -> 37.9k last-level misses
// per 40,000 ZPOPMIN against the skip list, whose nodes were all fast-bin sized). Here a
// node freed goes onto its slab's free list (two stores); malloc sees none of it.
//
// Slabs: kSlabBytes each, the prefault thread's block (prefault.h): mapped and populated
// (populated_allocator.h, map_populated: a block from the thread's pantry when it has one,
// so the loop does not zero it), never from malloc's heap. A slab with a free slot is on the
// pool's `partial_` list, most recently freed-into first (its lines are likely in cache); a
// slab whose last node is freed is handed back to the prefault thread (prefault::give_back),
// which zeroes it into its pantry or unmaps it off the loop, except one empty slab kept as a
// spare (kEmptySlabsKept) so an order that grows and shrinks around a slab boundary does not
// map and hand back a slab per operation. Memory: one pointer (the slot's slab) per node,
// ~1.4 % of a 552-byte node, and up to one slot of tail per slab; a pool holds at least one
// slab (2 MiB) once used, and a slab stays while one of its ~3,700 nodes (~37,000 entries)
// lives.
//
// Why not malloc's heap (64 KiB slabs from operator new, until issue 16 item 5): glibc gives
// freed heap memory back only from the heap's top, all of it in one sbrk (in the free() that
// makes the top reach M_TRIM_THRESHOLD, kMallocTrimThresholdBytes: 512 MiB), or never while
// something live lies above it. A deleted 10 M-member sorted set is ~800 MiB of slabs: in 15
// runs none went back (VmRSS 791-820 MiB after, bench/README.md); a trim would have unmapped
// hundreds of MiB in one loop turn (~14 ms per 128 MiB of 4 KiB pages). Handed back a slab at
// a time, the memory goes back (VmRSS ~30 MiB after), no call of the loop returns more than
// kSlabBytes, and the thread pays for the unmap.
//
// What a pool hands out never moves and is never touched by the pool until freed; the
// order's structure, and so every reply and snapshot, does not depend on where a node lives.
//
// Threads: a pool is shared by every order of one node size in the process (a slab per
// order would cost a slab for a sorted set of 40 members); a mutex guards it, taken once per
// node allocated or freed (one per ~20 inserts or erases) or once per batch of blocks freed
// together (deallocate_n: a freed sorted set's leaf of entries), never held across a call out
// (a slab is mapped, and handed back, with the mutex released).
//
// Planted bug (tests/apps/zorder_test.cc, NodePool.SlabsGoToThePrefaultThreadNotMalloc):
// -DHMDB_PLANTED_BUG_NODE_POOL_HEAP_SLABS takes the slabs from operator new again.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>

#include "kv/populated_allocator.h"
#include "kv/prefault.h"

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
  // A slab's size: the prefault thread's block (see above), so a slab comes populated from
  // its pantry and goes back to it; a slab is mapped or handed back once per ~3,700 nodes of
  // 552 bytes (~37,000 entries).
  static constexpr size_t kSlabBytes = prefault::kBlockBytes;
  // Empty slabs kept instead of being handed back (see above).
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
      release_slab(s);
    }
  }
  NodePool(const NodePool&) = delete;
  NodePool& operator=(const NodePool&) = delete;

  // A block of node_bytes; throws std::bad_alloc as operator new does.
  void* allocate() {
    std::unique_lock<std::mutex> lock(mu_);
    if (!partial_) {
      lock.unlock();
      void* fresh = new_slab();  // without the mutex: it may map and populate a slab
      lock.lock();
      push_partial(new (fresh) Slab{});
      slabs_++;
      empty_++;
    }
    Slab* s = partial_;
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
    Slab* emptied;
    {
      std::lock_guard<std::mutex> lock(mu_);
      emptied = deallocate_locked(p, nullptr);
    }
    if (emptied) release_slab(emptied);
  }

  // Gives back n blocks allocate() returned, under one lock: a caller freeing many at once
  // (a deleted sorted set's entries, a leaf's worth at a time) takes the mutex once, not per
  // block (14.5 % of the loop's samples freeing a 10 M-member sorted set: bench/README.md).
  template <class T>
  void deallocate_n(T* const* blocks, size_t n) noexcept {
    Slab* emptied = nullptr;  // linked through `next`
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 0; i < n; i++) emptied = deallocate_locked(blocks[i], emptied);
    }
    while (Slab* s = emptied) {
      emptied = s->next;
      release_slab(s);
    }
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

  // deallocate() with mu_ held. A slab this empties and the pool does not keep is taken off
  // partial_ and pushed onto `emptied` (linked through `next`), to be released once mu_ is
  // no longer held; returns that list.
  Slab* deallocate_locked(void* p, Slab* emptied) noexcept {
    Slot* slot = static_cast<Slot*>(p) - 1;
    Slab* s = slot->slab;
    const bool was_full = !s->free && s->carved == slots_per_slab_;
    slot->next_free = s->free;
    s->free = slot;
    HMDB_NODE_POOL_POISON(slot, slot_bytes_);
    if (was_full) push_partial(s);
    live_--;
    if (--s->live > 0) return emptied;
    if (empty_ < kEmptySlabsKept) {
      empty_++;
      return emptied;
    }
    unlink_partial(s);
    slabs_--;
    s->next = emptied;
    return s;
  }

  // A slab's memory: kSlabBytes, aligned to it, resident (see above).
  static void* new_slab() {
#ifdef HMDB_PLANTED_BUG_NODE_POOL_HEAP_SLABS
    return ::operator new(kSlabBytes);
#else
    return map_populated(kSlabBytes);
#endif
  }
  // Gives a slab new_slab() made back: to the prefault thread, which reuses or unmaps it.
  static void release_slab(Slab* s) noexcept {
    HMDB_NODE_POOL_UNPOISON(s, kSlabBytes);
#ifdef HMDB_PLANTED_BUG_NODE_POOL_HEAP_SLABS
    ::operator delete(s);
#else
    prefault::give_back(s);
#endif
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

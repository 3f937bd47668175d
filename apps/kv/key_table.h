// apps/kv/key_table.h — kv::KeyTable, the kv app's top-level key table (and deadline table):
// a chained hash table that grows and shrinks a few buckets per operation, in one
// canonical order.
//
// Why not absl::flat_hash_map: it doubles in one call, moving every slot. At 5 M keys that
// is ~0.6 GiB of slots moved (and, with the populated allocator, 1.2 GiB faulted in) inside
// one apply, measured as a 0.7-2.0 s stall of every client (issue 16) — longer than the
// 200 ms election timeout, so a leader growing its table is deposed. Its slots (72 bytes at
// a load factor of 0.44-0.875) also made a small key cost ~163 bytes against Redis' 112.
//
// Here, as in Redis' dict, a resize allocates the new bucket array (lazily zeroed pages,
// no copy) and then every insert and erase moves kRehashBucketsPerStep buckets of the old
// array into the new one; lookups go to the one array that holds the key. Nodes never
// move (a node is allocated once, from slabs, and only relinked), so an iterator or a
// pointer to a value stays valid until that key is erased. A node is 16 bytes of link and
// hash plus the Key and value; buckets are 8 bytes at a load factor of 0.5-1.
//
// Order. Keys are kept ordered by (h, key bytes), h = XXH3 of the key: a bucket holds the
// keys whose h has the bucket's index as its top bits, its chain sorted. So iteration
// visits keys in that one order whatever the table's size, history or rehash progress:
// snapshot bytes are the same on every node with the same state. A resize keeps it: a
// bucket of the old array becomes 2^k consecutive buckets of the new one (or 2^k old ones
// one new one), in order. That also makes a SCAN cursor simple (issue 17): "the keys
// with h >= c" is one position in this order, valid across any resize, so a cursor of h
// never returns a key twice or misses one that stayed, as Redis' reverse-binary cursor
// does for its mask-indexed buckets (keys with the same 64-bit h are returned together).
//
// Bounds: kRehashBucketsPerStep buckets (and at most 10x as many empty ones) per insert or
// erase; a freed mapped bucket array is handed to the prefault thread, which unmaps it
// (prefault.h, release), or, if the thread refuses it, unmapped kReleaseBytesPerStep at a
// time; a node slab is at most kSlabBytesMax. No operation does work proportional to the
// table's size but clear() and the destructor.
//
// The resize itself (detail::ResizingBuckets, below) is shared with the sorted sets' member
// index (zorder.h), which chains the sorted set's own entries instead of nodes of its own.
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <xxhash.h>

#include "kv/key.h"
#include "kv/populated_allocator.h"
#include "kv/prefault.h"

namespace hmdb::kv {

// Old buckets moved to the new array by each insert or erase while a resize is under way.
// A doubling starts when the table holds as many keys as buckets (n) and must finish
// before the next one (n more inserts): at 2 per insert it finishes after n/2 (after 3n/4 at
// most for a mapped array, whose steps wait kPrefaultLeadSteps first). Each moved bucket
// costs a cache miss or two (~0.1-0.3 µs), so an insert during a resize costs well under a
// µs more. (Per loop turn that is bounded by the commands in a turn's batches.)
inline constexpr size_t kRehashBucketsPerStep = 2;
// Empty old buckets a step may skip besides, as Redis' dictRehash (10 per bucket): a
// sparse old array (after many deletes) still makes progress at bounded cost.
inline constexpr size_t kRehashEmptyVisitsPerBucket = 10;
// A mapped bucket array given up (by a finished resize, or by its table freed) goes to the
// prefault thread, which unmaps it off the event loop (prefault.h, release; hand_over_buckets
// below). Only one the thread refuses (kReleasedBytesMax waiting already; a forked child;
// prefaulting off) is unmapped by its owner, this much per step (munmap of populated memory
// costs ~0.1-0.3 µs per page; 64 KiB is 16 pages; but each call also waits for the TLB flush
// of the other CPU, 1-24 ms for some on this VM under load: bench/README.md).
inline constexpr size_t kReleaseBytesPerStep = size_t{64} << 10;
// How far past the bucket a resize's steps are at the prefault thread populates the new
// array (prefault.h): two huge pages, so that it has the steps' whole passage over one to
// fill the next (~65,000 inserts of a doubling per 2 MiB) and the array is resident at most
// this much earlier than the steps alone would make it (at 10 M keys the doubling to 16 M
// buckets is half done: populating its 128 MiB at once cost 6 bytes per key).
inline constexpr size_t kPrefaultAheadBytes = size_t{4} << 20;
// Steps a resize to a mapped array waits before it moves its first bucket, so that the
// prefault thread has its first pages ready (without it the steps wrote the first pages at
// once and, at load 10 on 2 cores, faulted the first few in themselves). At most a quarter of
// the old array's buckets: a doubling then ends after 3n/4 inserts, still before the next.
inline constexpr size_t kPrefaultLeadSteps = 32768;
// drain()'s work units: a node destroyed is 1 (~0.05-0.1 µs), an empty bucket skipped is
// 1/kDrainEmptyBucketsPerUnit, a populated slab freed is kDrainSlabUnits (512 pages): what
// its munmap costs when the caller must make it (the prefault thread takes it otherwise:
// free_block).
inline constexpr size_t kDrainEmptyBucketsPerUnit = 16;
inline constexpr size_t kDrainSlabUnits = 2048;
// A release step of a bucket array given up (kReleaseBytesPerStep unmapped by the owner: an
// array the prefault thread refused) in drain()'s units. Counted, a freeing that empties a table of tens of millions of keys (a 128-256 MiB
// array) unmaps it a step at a time over its budgets instead of at once in one call (a DEL of
// a 10 M-field hash unmapped its 128 MiB array whole; bench/README.md, "Deleting one key of 10
// M elements"). As much as a whole step of kv's lazy freeing (kv.h, kLazyFreeStepWork), so
// that the freeing looks at the loop turn's budget after every munmap: each waits for the
// other CPU's TLB flush (an IPI), ~0.07 ms on average and 1-3 ms at load 7 on this VM, and
// counted at its 16 pages (64 units, the slab's rate) a step made 8 of them between looks
// and carried a 10 M-member sorted set's DEL to turns of 20-24 ms of CPU (bench/README.md,
// "the long turn named").
#ifndef HMDB_PLANTED_BUG_RELEASE_UNITS_BY_PAGES
inline constexpr size_t kDrainReleaseUnits = 512;
#else
inline constexpr size_t kDrainReleaseUnits = kReleaseBytesPerStep / 4096 * (kDrainSlabUnits / 512);
#endif
// The smallest bucket array (2^kMinBucketBits) and the load factor that ends a shrink: a
// table shrinks when it holds fewer than 1/kShrinkRatio keys per bucket.
inline constexpr unsigned kMinBucketBits = 2;
inline constexpr size_t kShrinkRatio = 8;
// Nodes come from slabs that double from kSlabBytesMin to kSlabBytesMax: a small table
// (most hash tables here are tiny: the deadline table of a keyspace without TTLs) costs
// one small block; a big one 2 MiB blocks, populated in one call (populated_allocator.h).
inline constexpr size_t kSlabBytesMin = 1024;
inline constexpr size_t kSlabBytesMax = kPopulateBytesMin;

// The default hash of a KeyTable: XXH3 of the key's bytes (also the scan position of keys
// and of hash fields, kv.cc). Another hasher (sets order members by a seeded XXH3, set.h)
// is a type with the same static hash().
struct KeyTableHash {
  static uint64_t hash(std::string_view key) noexcept { return XXH3_64bits(key.data(), key.size()); }
};

namespace detail {

// For tests: the bytes of bucket arrays their owner unmapped itself (by a release step, or
// at once: arrays the prefault thread refused), and the most one such munmap call unmapped;
// the arrays the thread took are counted in prefault::Stats (released_*). Relaxed atomics (a
// snapshot's background load may free a table on another thread), on a path that makes a
// system call anyway.
struct UnmapStats {
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> largest{0};
};
inline UnmapStats unmap_stats;
inline void unmap_buckets(void* p, size_t bytes) noexcept {
  munmap(p, bytes);
  unmap_stats.bytes.fetch_add(bytes, std::memory_order_relaxed);
  if (bytes > unmap_stats.largest.load(std::memory_order_relaxed)) unmap_stats.largest.store(bytes, std::memory_order_relaxed);
}
// Hands a mapped bucket array the owner gave up to the prefault thread, which unmaps it
// (prefault.h, release); false if the thread refused it (the owner unmaps it then). The
// owner has called prefault::forget for it. -DHMDB_PLANTED_BUG_LOOP_UNMAPS_BUCKETS hands
// nothing over (the owner unmaps every array, as before).
inline bool hand_over_buckets(void* p, size_t bytes) noexcept {
#ifndef HMDB_PLANTED_BUG_LOOP_UNMAPS_BUCKETS
  return prefault::release(p, bytes);
#else
  (void)p;
  (void)bytes;
  return false;
#endif
}

// The incremental resize of a chained hash table, shared by KeyTable (its nodes) and a
// sorted set's member index (zorder.h: the sorted set's own entries, chained through a link
// of theirs). Chain says how to reach a node's link and hash:
//   static Node*& next(Node*)         the node's link in its bucket's chain
//   static uint64_t hash(const Node*) the node's hash (KeyTable's nodes keep it; a sorted
//                                     set entry's is computed from its member)
// Bucket i of an array of 2^bits holds the nodes whose hash has i as its top `bits` bits,
// so an old bucket becomes consecutive new ones (or old ones one new one) and a chain's
// order is kept by a resize. A resize allocates the new array (lazily zeroed pages, no
// copy); then each step() moves kRehashBucketsPerStep old buckets (and skips at most
// kRehashEmptyVisitsPerBucket times as many empty ones); the old array, once empty, goes to
// the prefault thread (or, refused, is unmapped kReleaseBytesPerStep per step); the owner
// calls step() on every insert and erase and grown()/shrunk() after them. Invariant: while rehashing (t1_ set), a node is in t1_ iff its t0_ bucket is
// below rehash_idx_, else in t0_ — so a lookup reads one chain.
template <class Node, class Chain>
class ResizingBuckets {
 public:
  // For tests and INFO: buckets of the array nodes are being moved to (or of the one array).
  size_t bucket_count() const noexcept { return rehashing() ? t1_.count() : t0_.count(); }
  bool rehashing() const noexcept { return t1_.slots != nullptr; }

  // One bounded step of the resize and of memory release (also run by every insert and
  // erase); for callers that want progress without changing keys.
  void step() {
    if (rehashing() && rehash_wait_ == 0) {
      rehash_some();
    } else {
      if (rehashing()) rehash_wait_--;
      last_step_ = StepWork{};
    }
    if (!releasing_.empty()) release_step();
  }

  // For tests: what the last step() moved (old buckets visited, empty or not; nodes
  // relinked). At most kRehashBucketsPerStep * (1 + kRehashEmptyVisitsPerBucket) buckets.
  struct StepWork {
    size_t buckets = 0, nodes = 0;
  };
  StepWork last_step() const noexcept { return last_step_; }
  // For tests: buckets read by in-order walks (iteration, lower_bound) since construction.
  size_t walk_visits() const noexcept { return walk_visits_; }

 protected:
  ResizingBuckets() noexcept = default;
  ResizingBuckets(const ResizingBuckets&) = delete;
  ResizingBuckets& operator=(const ResizingBuckets&) = delete;
  ~ResizingBuckets() { release_all(); }

  // A bucket array of 2^bits chains; bucket i holds the nodes whose hash has i as its top
  // `bits` bits.
  struct Buckets {
    Node** slots = nullptr;
    unsigned bits = 0;
    bool mapped = false;  // from mmap (munmap it), else from calloc

    size_t count() const noexcept { return slots ? size_t{1} << bits : 0; }
    size_t index(uint64_t h) const noexcept { return bits == 0 ? 0 : static_cast<size_t>(h >> (64 - bits)); }
    size_t bytes() const noexcept { return count() * sizeof(Node*); }

    // Small arrays from calloc; big ones mapped, zero pages faulted in as buckets are
    // first written (a resize spreads that over its steps), or all at once if `populate`
    // (a load writes them all anyway, and one call is much cheaper than a fault per page).
    static Buckets allocate(unsigned bits, bool populate) {
      Buckets b;
      b.bits = bits;
      const size_t bytes = (size_t{1} << bits) * sizeof(Node*);
      if (bytes < kPopulateBytesMin) {
        b.slots = static_cast<Node**>(std::calloc(size_t{1} << bits, sizeof(Node*)));
        if (!b.slots) throw std::bad_alloc();
        return b;
      }
      void* p;
      if (populate) {
        p = detail::map_populated(bytes);
      } else {
        p = detail::map_block(bytes);
      }
      b.slots = static_cast<Node**>(p);
      b.mapped = true;
      return b;
    }
    // Frees the array now: a mapped one goes to the prefault thread (unmapped here if it
    // refuses it), a small one to free().
    void free_now() noexcept {
      if (!slots) return;
      if (mapped) {
        prefault::forget(slots, detail::page_round(bytes()));
        if (!hand_over_buckets(slots, detail::page_round(bytes()))) unmap_buckets(slots, detail::page_round(bytes()));
      }
      else std::free(slots);
      slots = nullptr;
    }
    // Hands a mapped array to the prefault thread, or if it refuses it to the release queue
    // (unmapped a slice per step); frees a small one now.
    void release_later(std::vector<std::pair<char*, size_t>>& queue) noexcept {
      if (!slots) return;
      if (mapped) {
        prefault::forget(slots, detail::page_round(bytes()));
        if (hand_over_buckets(slots, detail::page_round(bytes()))) {
          slots = nullptr;
          return;
        }
        try {
          queue.emplace_back(reinterpret_cast<char*>(slots), detail::page_round(bytes()));
        } catch (...) {
          free_now();  // no room to queue it: pay for it now rather than leak it
        }
      } else {
        std::free(slots);
      }
      slots = nullptr;
    }
  };

  static unsigned bits_for(size_t n) {
    unsigned bits = 0;
    while ((size_t{1} << bits) < n) bits++;
    return bits;
  }

  bool moved(uint64_t h) const noexcept { return rehashing() && t0_.index(h) < rehash_idx_; }
  const Buckets* home(uint64_t h) const noexcept { return moved(h) ? &t1_ : &t0_; }
  Buckets* home(uint64_t h) noexcept { return moved(h) ? &t1_ : &t0_; }

  // The head of the chain that holds (or would hold) hash h; makes the first array.
  Node** chain(uint64_t h) {
    if (!t0_.slots) t0_ = Buckets::allocate(kMinBucketBits, false);
    Buckets* b = home(h);
    return &b->slots[b->index(h)];
  }
  // The first node of h's chain (null if none), for lookups.
  Node* chain_head(uint64_t h) const noexcept {
    const Buckets* b = home(h);
    return b->slots ? b->slots[b->index(h)] : nullptr;
  }
  // After an insert that left `size` nodes: a doubling starts once there are more nodes
  // than buckets.
  void grown(size_t size) {
    if (!rehashing() && size > t0_.count()) start_resize(t0_.bits + 1);
  }
  // After an erase that left `size` nodes: a shrink starts below 1/kShrinkRatio per bucket.
  void shrunk(size_t size) {
    if (!rehashing() && t0_.bits > kMinBucketBits && size < t0_.count() / kShrinkRatio)
      start_resize(std::max(kMinBucketBits, bits_for(size * 2)));
  }
  // One populated array for n nodes in an empty table (a load): no resize while loading.
  void reserve_buckets(size_t n) {
    if (rehashing() || n == 0) return;
    const unsigned bits = std::max(kMinBucketBits, bits_for(n));
    if (t0_.slots && t0_.bits >= bits) return;
    t0_.free_now();
    t0_ = Buckets::allocate(bits, true);
  }
  // Hands both arrays over (the caller destroyed or unlinked the nodes): to the prefault
  // thread, or refused to the release queue, unmapped a step at a time (release_step); a
  // small one freed now.
  void release_buckets_later() noexcept {
    t0_.release_later(releasing_);
    t1_.release_later(releasing_);
    rehash_idx_ = 0;
  }
  // Frees both arrays now (the caller destroyed or unlinked the nodes).
  void forget_buckets() noexcept {
    t0_.free_now();
    t1_.free_now();
    t0_ = Buckets{};
    t1_ = Buckets{};
    rehash_idx_ = 0;
  }
  void steal_buckets(ResizingBuckets& o) noexcept {
    t0_ = std::exchange(o.t0_, Buckets{});
    t1_ = std::exchange(o.t1_, Buckets{});
    rehash_idx_ = std::exchange(o.rehash_idx_, 0);
    prefault_upto_ = std::exchange(o.prefault_upto_, 0);
    rehash_wait_ = std::exchange(o.rehash_wait_, 0);
    releasing_ = std::move(o.releasing_);
    o.releasing_.clear();
  }
  void swap_buckets(ResizingBuckets& o) noexcept {
    std::swap(t0_, o.t0_);
    std::swap(t1_, o.t1_);
    std::swap(rehash_idx_, o.rehash_idx_);
    std::swap(prefault_upto_, o.prefault_upto_);
    std::swap(rehash_wait_, o.rehash_wait_);
    releasing_.swap(o.releasing_);
  }

  void start_resize(unsigned bits) {
    if (bits == t0_.bits) return;
    try {
      t1_ = Buckets::allocate(bits, false);
    } catch (const std::bad_alloc&) {
      return;  // best effort: the table keeps working at a higher (or lower) load factor
    }
    rehash_idx_ = 0;
    prefault_upto_ = 0;
    rehash_wait_ = t1_.mapped ? std::min(kPrefaultLeadSteps, t0_.count() / 4) : 0;
    prefault_ahead();
  }

  // The prefault thread faults a mapped new array in ahead of the steps that write it, in
  // the order they do, at most kPrefaultAheadBytes past the bucket they are at (prefault.h):
  // the loop does not zero its pages, and the array is not resident earlier than that.
  void prefault_ahead() noexcept {
    if (!t1_.mapped) return;
    const size_t at = t1_.bits >= t0_.bits ? rehash_idx_ << (t1_.bits - t0_.bits) : rehash_idx_ >> (t0_.bits - t1_.bits);
    const size_t bytes = detail::page_round(t1_.bytes());
    while (prefault_upto_ < bytes && prefault_upto_ < at * sizeof(Node*) + kPrefaultAheadBytes) {
      const size_t n = std::min(prefault::kChunkBytes, bytes - prefault_upto_);
      prefault::populate_ahead(reinterpret_cast<char*>(t1_.slots) + prefault_upto_, n);
      prefault_upto_ += n;
    }
  }

  // Moves old buckets [rehash_idx_, ...) to t1_, kRehashBucketsPerStep of them.
  void rehash_some() noexcept {
    size_t buckets = 0, empty_visits = 0, nodes = 0;
    const size_t n0 = t0_.count();
    while (rehash_idx_ < n0 && buckets < kRehashBucketsPerStep &&
           empty_visits < kRehashBucketsPerStep * kRehashEmptyVisitsPerBucket) {
      Node* n = t0_.slots[rehash_idx_];
      if (!n) {
        empty_visits++;
        rehash_idx_++;
        continue;
      }
      t0_.slots[rehash_idx_] = nullptr;
      // Every node already in t1_ has a smaller hash (it came from an earlier old bucket),
      // so each node goes to the end of its new bucket's chain: a sorted chain stays sorted.
      while (n) {
        Node* next = Chain::next(n);
        Node** link = &t1_.slots[t1_.index(Chain::hash(n))];
        while (*link) link = &Chain::next(*link);
        Chain::next(n) = nullptr;
        *link = n;
        n = next;
        nodes++;
      }
      rehash_idx_++;
      buckets++;
    }
    last_step_ = StepWork{buckets + empty_visits, nodes};
    if (rehash_idx_ == n0) {
      t0_.release_later(releasing_);
      t0_ = t1_;
      t1_ = Buckets{};
      rehash_idx_ = 0;
      return;
    }
    prefault_ahead();
  }

  void release_step() noexcept {
    auto& [p, bytes] = releasing_.back();
    const size_t n = std::min(bytes, kReleaseBytesPerStep);
    unmap_buckets(p + bytes - n, n);
    bytes -= n;
    if (bytes == 0) releasing_.pop_back();
  }

  // The first node in b's buckets [from, end of those that may hold one). While rehashing,
  // t1_'s end is t1_filled_end(), not its size: an in-order walk must not read the rest.
  Node* first_in(const Buckets& b, size_t from) const {
    const size_t end = &b == &t1_ ? t1_filled_end() : b.count();
    for (size_t i = from; b.slots && i < end; i++) {
      walk_visits_++;
      if (b.slots[i]) return b.slots[i];
    }
    return nullptr;
  }
  // While rehashing: the end of t1_'s buckets that may hold nodes, those the moved old
  // buckets [0, rehash_idx_) map to. The rest of t1_ stays empty until the steps reach it.
  // Walking it was the longest turn of a snapshot in slices at 20 M keys (issue 16 item 5):
  // past the middle of the doubling to 32 M buckets, the cursor's step from the last moved
  // bucket read ~16 M empty ones (128 MiB, mostly not yet faulted in: one fault per page),
  // 245 ms of the loop's CPU in one turn; a SCAN or KEYS crossing that point did the same.
  size_t t1_filled_end() const noexcept {
    if (t1_.bits >= t0_.bits) return rehash_idx_ << (t1_.bits - t0_.bits);
    const unsigned k = t0_.bits - t1_.bits;  // a shrink: 2^k old buckets to one new one
    return (rehash_idx_ + (size_t{1} << k) - 1) >> k;
  }
  // The release queue's arrays at once (a table destroyed): to the prefault thread, which
  // refused them before but may have room now, else unmapped here.
  void release_all() noexcept {
    for (auto& [p, bytes] : releasing_)
      if (!hand_over_buckets(p, bytes)) unmap_buckets(p, bytes);
    releasing_.clear();
  }


  Buckets t0_, t1_;
  size_t rehash_idx_ = 0;
  mutable size_t walk_visits_ = 0;  // walk_visits()
  size_t prefault_upto_ = 0;  // bytes of t1_ handed to the prefault thread (prefault_ahead)
  size_t rehash_wait_ = 0;    // steps left before the resize moves its first bucket
  std::vector<std::pair<char*, size_t>> releasing_;  // mapped arrays the prefault thread refused, unmapped a slice per step
  StepWork last_step_;
};

}  // namespace detail

namespace detail {
template <class V>
struct KeyTableNode {
  KeyTableNode* next;
  uint64_t hash;
  std::pair<const Key, V> kv;
};
template <class V>
struct KeyTableChain {
  static KeyTableNode<V>*& next(KeyTableNode<V>* n) noexcept { return n->next; }
  static uint64_t hash(const KeyTableNode<V>* n) noexcept { return n->hash; }
};
}  // namespace detail

template <class V, class Hasher = KeyTableHash>
class KeyTable : private detail::ResizingBuckets<detail::KeyTableNode<V>, detail::KeyTableChain<V>> {
  using Node = detail::KeyTableNode<V>;
  using Base = detail::ResizingBuckets<Node, detail::KeyTableChain<V>>;
  using typename Base::Buckets;
  using Base::t0_;
  using Base::t1_;
  using Base::rehash_idx_;
  using Base::releasing_;
  using Base::moved;
  using Base::home;
  using Base::first_in;
  using Base::t1_filled_end;
  using Base::release_step;
  using Base::release_all;

 public:
  using key_type = Key;
  using mapped_type = V;
  using value_type = std::pair<const Key, V>;
  using Base::bucket_count;
  using Base::rehashing;
  using Base::step;
  using Base::last_step;
  using Base::walk_visits;

  template <bool kConst>
  class Iter {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = KeyTable::value_type;
    using difference_type = std::ptrdiff_t;
    using reference = std::conditional_t<kConst, const value_type&, value_type&>;
    using pointer = std::conditional_t<kConst, const value_type*, value_type*>;

    Iter() = default;
    template <bool kOther, class = std::enable_if_t<kConst && !kOther>>
    Iter(const Iter<kOther>& o) : t_(o.t_), n_(o.n_) {}  // NOLINT: iterator -> const_iterator

    reference operator*() const { return n_->kv; }
    pointer operator->() const { return &n_->kv; }
    uint64_t hash() const { return n_->hash; }  // hash_of(key), the key's place in the order
    Iter& operator++() {
      n_ = t_->next_node(n_);
      return *this;
    }
    Iter operator++(int) {
      Iter old = *this;
      ++*this;
      return old;
    }
    friend bool operator==(const Iter& a, const Iter& b) { return a.n_ == b.n_; }
    friend bool operator!=(const Iter& a, const Iter& b) { return a.n_ != b.n_; }

   private:
    friend class KeyTable;
    template <bool>
    friend class Iter;
    Iter(const KeyTable* t, Node* n) : t_(t), n_(n) {}
    const KeyTable* t_ = nullptr;
    Node* n_ = nullptr;
  };
  using iterator = Iter<false>;
  using const_iterator = Iter<true>;

  static uint64_t hash_of(std::string_view key) { return Hasher::hash(key); }

  KeyTable() noexcept = default;
  KeyTable(KeyTable&& o) noexcept { steal(o); }
  KeyTable& operator=(KeyTable&& o) noexcept {
    if (this != &o) {
      clear();
      release_all();
      steal(o);
    }
    return *this;
  }
  KeyTable(const KeyTable&) = delete;
  KeyTable& operator=(const KeyTable&) = delete;
  ~KeyTable() {
    clear();
    release_all();
  }

  size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  iterator begin() { return iterator(this, first_node()); }
  iterator end() { return iterator(this, nullptr); }
  const_iterator begin() const { return const_iterator(this, first_node()); }
  const_iterator end() const { return const_iterator(this, nullptr); }

  iterator find(std::string_view key) { return iterator(this, find_node(key, hash_of(key))); }
  const_iterator find(std::string_view key) const { return const_iterator(this, find_node(key, hash_of(key))); }
  bool contains(std::string_view key) const { return find_node(key, hash_of(key)) != nullptr; }

  // The first key, in (hash, key) order, whose hash is >= h (end() if none): where a SCAN
  // cursor h resumes (kv.cc). One chain, then empty buckets skipped as by iteration.
  const_iterator lower_bound_hash(uint64_t h) const { return const_iterator(this, lower_bound_node(h)); }
  iterator lower_bound_hash(uint64_t h) { return iterator(this, lower_bound_node(h)); }

  // find() and try_emplace() for a caller that has the key's hash already (see
  // try_emplace_hashed).
  iterator find_hashed(std::string_view key, uint64_t h) { return iterator(this, find_node(key, h)); }
  const_iterator find_hashed(std::string_view key, uint64_t h) const { return const_iterator(this, find_node(key, h)); }

  // Cache hint: the bucket key lands in.
  void prefetch(std::string_view key) const {
    const uint64_t h = hash_of(key);
    if (const Buckets* b = home(h); b->slots) __builtin_prefetch(&b->slots[b->index(h)]);
  }

  // Inserts key with V(args...) unless present; the position of key, and whether it is new.
  template <class... Args>
  std::pair<iterator, bool> try_emplace(std::string_view key, Args&&... args) {
    return try_emplace_hashed(key, hash_of(key), std::forward<Args>(args)...);
  }
  // The table orders and finds keys by the h it is given: a caller of these passes the same
  // function of the key's bytes every time (hash_of, or its own: a test's set.h chooses
  // hashes that collide).
  template <class... Args>
  std::pair<iterator, bool> try_emplace_hashed(std::string_view key, uint64_t h, Args&&... args) {
    step();
    Node** link = position(key, h);
    if (*link && (*link)->hash == h && (*link)->kv.first.view() == key) return {iterator(this, *link), false};
    void* mem = allocate_node();
    Node* n;
    try {
      n = new (mem) Node{*link, h, value_type(std::piecewise_construct, std::forward_as_tuple(key),
                                              std::forward_as_tuple(std::forward<Args>(args)...))};
    } catch (...) {
      free_node(mem);
      throw;
    }
    *link = n;
    size_++;
    this->grown(size_);
    return {iterator(this, n), true};
  }
  template <class... Args>
  std::pair<iterator, bool> emplace(std::string_view key, Args&&... args) {
    return try_emplace(key, std::forward<Args>(args)...);
  }

  // Inserts key with value v, or assigns v to key's value.
  template <class M>
  std::pair<iterator, bool> insert_or_assign(std::string_view key, M&& v) {
    auto r = try_emplace(key, std::forward<M>(v));  // uses v only if it inserts
    if (!r.second) r.first->second = std::forward<M>(v);
    return r;
  }

  void erase(iterator it) {
    Node* n = it.n_;
    assert(n);
    Node** link = &home(n->hash)->slots[home(n->hash)->index(n->hash)];
    while (*link != n) link = &(*link)->next;
    *link = n->next;
    destroy_node(n);
    size_--;
    this->shrunk(size_);
    step();
  }
  size_t erase(std::string_view key) {
    iterator it = find(key);
    if (it == end()) return 0;
    erase(it);
    return 1;
  }

  // Destroys every node and gives the buckets back: work proportional to the size (a big
  // table is handed to a graveyard instead, see lazy_free.h).
  void clear() noexcept {
    for (Buckets* b : {&t0_, &t1_}) {
      for (size_t i = 0; b->slots && i < b->count(); i++) {
        for (Node* n = b->slots[i]; n;) {
          Node* next = n->next;
          n->~Node();
          n = next;
        }
      }
      b->free_now();
    }
    t0_ = Buckets{};
    t1_ = Buckets{};
    rehash_idx_ = 0;
    drain_idx_ = 0;
    size_ = 0;
    free_list_ = nullptr;
    for (auto& [p, bytes] : slabs_) free_block(p, bytes);
    slabs_.clear();
    bump_ = bump_end_ = nullptr;
  }

  // Destroys up to `budget` nodes (fewer if the table empties; a slab counts
  // kDrainSlabUnits, a release step of a bucket array kDrainReleaseUnits, and one of them is
  // made per call even if that is more), unlinking them from the first buckets; calls
  // on_value(V&&) with each value first, so a caller may keep a big one to free later. For a
  // table taken out of service (FLUSHALL, a deleted hash or set): it is not usable for
  // lookups afterwards, only for more of this and destruction, which frees what is left at
  // once (destroy it once drained()). Returns the work done.
  template <class Fn>
  size_t drain(size_t budget, Fn&& on_value) {
    size_t done = 0;
    for (Buckets* b : {&t1_, &t0_}) {
      while (b->slots && drain_idx_ < b->count() && done < budget) {
        Node*& head = b->slots[drain_idx_];
        if (!head) {
          drain_idx_++;
          if (drain_idx_ % kDrainEmptyBucketsPerUnit == 0) done++;  // an empty bucket is a little work
          continue;
        }
        Node* n = head;
        head = n->next;
        on_value(std::move(n->kv.second));
        destroy_node(n);
        size_--;
        done++;
      }
      if (done >= budget) return done;
      if (b->slots) {
        b->release_later(releasing_);
        *b = Buckets{};
        drain_idx_ = 0;
      }
    }
    // All nodes gone: the slabs and arrays go, a bounded amount per call.
    while (!slabs_.empty() && (done == 0 || done + kDrainSlabUnits <= budget)) {
      free_block(slabs_.back().first, slabs_.back().second);
      slabs_.pop_back();
      done += kDrainSlabUnits;
    }
    free_list_ = nullptr;
    bump_ = bump_end_ = nullptr;
    while (!releasing_.empty() && (done == 0 || done + kDrainReleaseUnits <= budget)) {
      release_step();
      done += kDrainReleaseUnits;
    }
    return done;
  }
  // True once drain() has nothing left to do.
  bool drained() const noexcept { return !t0_.slots && !t1_.slots && slabs_.empty() && releasing_.empty(); }

  // Prepares for n keys in an empty table (a snapshot load): one populated bucket array,
  // no resize while loading. Ignored for a table that already holds keys.
  void reserve(size_t n) {
    if (size_ == 0) this->reserve_buckets(n);
  }

 private:
  Node* find_node(std::string_view key, uint64_t h) const {
    const Buckets* b = home(h);
    if (!b->slots) return nullptr;
    for (Node* n = b->slots[b->index(h)]; n && n->hash <= h; n = n->next)
      if (n->hash == h && n->kv.first.view() == key) return n;
    return nullptr;
  }

  Node* lower_bound_node(uint64_t h) const {
    if (size_ == 0) return nullptr;
    const Buckets* b = home(h);
    if (!b->slots) return nullptr;
    const size_t i = b->index(h);
    for (Node* n = b->slots[i]; n; n = n->next)
      if (n->hash >= h) return n;
    if (b == &t1_) {  // a moved bucket: then the rest of t1_, then t0_ from the rehash point
      if (Node* n = first_in(t1_, i + 1)) return n;
      return first_in(t0_, rehash_idx_);
    }
    return first_in(t0_, i + 1);
  }

  static bool before(const Node* n, uint64_t h, std::string_view key) {
    return n->hash < h || (n->hash == h && n->kv.first.view() < key);
  }
  // The link at which (h, key) is or would be, in its bucket's sorted chain.
  Node** position(std::string_view key, uint64_t h) {
    Node** link = this->chain(h);
    while (*link && before(*link, h, key)) link = &(*link)->next;
    return link;
  }

  // In (hash, key) order: the moved keys (all below the old bucket rehash_idx_'s range)
  // are in t1_, the others in t0_'s buckets from rehash_idx_.
  Node* first_node() const {
    if (size_ == 0) return nullptr;
    if (!rehashing()) return first_in(t0_, 0);
    if (Node* n = first_in(t1_, 0)) return n;
    return first_in(t0_, rehash_idx_);
  }
  Node* next_node(const Node* n) const {
    if (n->next) return n->next;
    if (moved(n->hash)) {
      if (Node* m = first_in(t1_, t1_.index(n->hash) + 1)) return m;
      return first_in(t0_, rehash_idx_);
    }
    return first_in(t0_, t0_.index(n->hash) + 1);
  }

  void* allocate_node() {
    if (free_list_) {
      void* p = free_list_;
      free_list_ = *static_cast<void**>(p);
      return p;
    }
    if (bump_ == bump_end_) {
      const size_t bytes = slabs_.empty() ? kSlabBytesMin : std::min(kSlabBytesMax, slabs_.back().second * 2);
      slabs_.reserve(slabs_.size() + 1);
      char* p = static_cast<char*>(bytes >= kPopulateBytesMin ? detail::map_populated(bytes) : ::operator new(bytes));
      slabs_.emplace_back(p, bytes);
      bump_ = p;
      bump_end_ = p + bytes / sizeof(Node) * sizeof(Node);
    }
    void* p = bump_;
    bump_ += sizeof(Node);
    return p;
  }
  void free_node(void* p) noexcept {
    *static_cast<void**>(p) = free_list_;
    free_list_ = p;
  }
  void destroy_node(Node* n) noexcept {
    n->~Node();
    free_node(n);
  }
  // A slab of the prefault thread's block size (kSlabBytesMax: every mapped slab) is handed
  // back to it (prefault::give_back), which reuses or unmaps it, as the value allocator's
  // empty blocks: the freeing thread (the event loop, for a flushed table or a deleted hash's
  // last field) makes no munmap of a populated 2 MiB block.
  static void free_block(char* p, size_t bytes) noexcept {
    static_assert(kSlabBytesMax == prefault::kBlockBytes, "a mapped slab is a pantry block");
    if (bytes < kPopulateBytesMin) ::operator delete(p);
    else if (detail::page_round(bytes) == prefault::kBlockBytes && (reinterpret_cast<uintptr_t>(p) & (prefault::kBlockBytes - 1)) == 0)
      prefault::give_back(p);  // aligned, as map_populated maps a block of this size
    else munmap(p, detail::page_round(bytes));
  }
  void steal(KeyTable& o) noexcept {
    this->steal_buckets(o);
    drain_idx_ = std::exchange(o.drain_idx_, 0);
    size_ = std::exchange(o.size_, 0);
    free_list_ = std::exchange(o.free_list_, nullptr);
    bump_ = std::exchange(o.bump_, nullptr);
    bump_end_ = std::exchange(o.bump_end_, nullptr);
    slabs_ = std::move(o.slabs_);
    o.slabs_.clear();
  }

  size_t drain_idx_ = 0;  // drain(): the bucket being emptied
  size_t size_ = 0;
  void* free_list_ = nullptr;  // freed nodes, linked through their first word
  char* bump_ = nullptr;       // the unused rest of the newest slab
  char* bump_end_ = nullptr;
  std::vector<std::pair<char*, size_t>> slabs_;  // (block, bytes), oldest first
};

}  // namespace hmdb::kv

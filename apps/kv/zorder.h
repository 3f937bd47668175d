// apps/kv/zorder.h — a sorted set's (score, member) order with ranks: kv::ZOrder, a B+tree
// whose inner nodes count the entries below each child.
//
// ZRANK, ZRANGE by index (a leaderboard's "top 10" is ZRANGE key -10 -1), ZREMRANGEBYRANK
// and ZRANDMEMBER need the entry at a rank and the rank of an entry. Redis uses a skip list
// with spans (t_zset.c's zskiplist), and so did kv until issue 16 item 4: at a million
// entries a search visits 20-40 nodes, nearly each one a cache miss, and a ZADD of a new
// score searches twice. Here a search visits one node per level (six at a million entries,
// the upper ones in cache), reads a few cache lines of sorted scores in each (all asked for
// at once), and touches an entry (its member) only where scores tie. An inner node holds, per child, the child's
// first entry (its score and a pointer to it) and how many entries are below it: a rank,
// or the entry at a rank, is found on the way down, O(log n).
//
// Entries (ZNode: score, member, member-index link) are allocated one each and never move
// while they are in the order: the member index (below) and inner nodes point at them, and
// a new score moves only the leaf slot. Entries, full leaves and inner nodes come from pools
// of their own (node_pool.h), and a member of up to ZMember::kInline bytes is held in its
// entry: a ZADD or a ZPOPMIN calls no malloc for them. Given back to glibc one by one, the
// popped entries and their members (two fast-bin chunks each) were consolidated in every loop
// turn that allocated a block of 1 KiB or more (the batch, the replies), coalescing each with
// its random neighbours: 3.9 of ZPOPMIN's 7.0 last-level misses per request (bench/README.md). Leaves hold the scores and entry pointers of up
// to kLeafMax entries in order, linked both ways for iteration; a leaf that is the root
// starts small (kRootLeafFirst slots) and doubles, so a sorted set of three members does not
// pay for a full leaf. Bounds: a leaf keeps kLeafMin..kLeafMax entries and an inner node
// kInnerMin..kInnerMax children (the root excepted); depth is at most kMaxDepth.
//
// A member index finds a member's entry and score without a second copy of the member: it
// chains the entries themselves (ZNode::chain) from a bucket array that grows and shrinks a
// few buckets per insert and erase (key_table.h's detail::ResizingBuckets, the key table's
// own): a Swiss table doubles in one call, a 169-176 ms loop turn at 1,835,008 members
// (issue 16).
//
// The visible order (score, then member bytes), and so every reply, snapshot and digest, is
// the same as the skip list's: the structure decides speed only.
//
// Memory: an entry is 56 bytes (40 of ZEntry, the chain link, the pool's slab pointer) plus
// its member beyond ZMember's inline 28 bytes; a leaf slot is 16 bytes at 50-100 % fill (~70 % after random
// inserts, ~75 % after inserts in order, as a snapshot's load); inner nodes add about
// 1/kInnerMin of that again; 8-16 bytes of bucket per entry (a load factor of 0.5-1).
#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <new>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <xxhash.h>

#include "kv/key_table.h"
#include "kv/node_pool.h"

namespace hmdb::kv {

// A member's bytes: inline up to kInline bytes (redis-benchmark's 20-byte members, most ids
// and names), else in a heap block of its own; 32 bytes, as a std::string, whose inline
// capacity is 15. An entry whose member is inline is one block of the order's entry pool
// (node_pool.h): creating or destroying it calls no malloc, so ZPOPMIN's frees never make
// glibc coalesce (bench/README.md, "Sorted sets' entries from a pool").
class ZMember {
 public:
  static constexpr size_t kInline = 28;

  ZMember() noexcept : size_(0) {}
  ZMember(std::string_view s) { init(s); }  // NOLINT: implicit, as a std::string from a view
  ZMember(const std::string& s) { init(s); }  // NOLINT
  ZMember(const char* s) { init(std::string_view(s)); }  // NOLINT
  ZMember(const ZMember& o) { init(o.view()); }
  ZMember(ZMember&& o) noexcept {
    std::memcpy(static_cast<void*>(this), &o, sizeof(ZMember));
    o.size_ = 0;
  }
  ZMember& operator=(const ZMember& o) {
    if (this != &o) {
      ZMember copy(o);
      swap(copy);
    }
    return *this;
  }
  ZMember& operator=(ZMember&& o) noexcept {
    swap(o);
    return *this;
  }
  ~ZMember() {
    if (size_ > kInline) ::operator delete(heap());
  }
  void swap(ZMember& o) noexcept {
    alignas(ZMember) unsigned char t[sizeof(ZMember)];
    std::memcpy(t, static_cast<void*>(this), sizeof(ZMember));
    std::memcpy(static_cast<void*>(this), &o, sizeof(ZMember));
    std::memcpy(static_cast<void*>(&o), t, sizeof(ZMember));
  }

  const char* data() const { return size_ > kInline ? heap() : bytes_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::string_view view() const { return {data(), size_}; }
  operator std::string_view() const { return view(); }  // NOLINT: implicit, as std::string's
  std::string str() const { return std::string(view()); }

  friend bool operator==(const ZMember& a, const ZMember& b) { return a.view() == b.view(); }
  template <class T>
    requires std::is_convertible_v<const T&, std::string_view>
  friend bool operator==(const ZMember& a, const T& b) {
    return a.view() == std::string_view(b);
  }
  friend std::ostream& operator<<(std::ostream& o, const ZMember& m) { return o << m.view(); }

 private:
  void init(std::string_view s) {
    if (s.size() > UINT32_MAX) throw std::length_error("sorted-set member too long");
    size_ = static_cast<uint32_t>(s.size());
    if (size_ <= kInline) {
      if (size_) std::memcpy(bytes_, s.data(), size_);
      return;
    }
    char* h = static_cast<char*>(::operator new(size_));
    std::memcpy(h, s.data(), size_);
    std::memcpy(bytes_, &h, sizeof h);
  }
  char* heap() const {
    char* h;
    std::memcpy(&h, bytes_, sizeof h);
    return h;
  }

  alignas(8) char bytes_[kInline];  // the member, or (longer than kInline) its heap block
  uint32_t size_;
};
static_assert(sizeof(ZMember) == 32);

struct ZEntry {
  double score;
  ZMember member;
};
struct ZEntryKey {
  double score;
  std::string_view member;
};
// Redis' order: by score, then by member bytes.
struct ZLess {
  using is_transparent = void;
  template <class A, class B>
  bool operator()(const A& a, const B& b) const {
    if (a.score != b.score) return a.score < b.score;
    return std::string_view(a.member) < std::string_view(b.member);
  }
};

// kLeafMax entries per leaf, kInnerMax children per inner node: template parameters so the
// tests can run the same code with tiny nodes (deep trees, every split and merge case).
template <uint32_t kLeafMaxT, uint32_t kInnerMaxT>
class BasicZOrder {
 public:
  static constexpr uint32_t kLeafMax = kLeafMaxT;
  static constexpr uint32_t kInnerMax = kInnerMaxT;
  // A node below its minimum (the root excepted) borrows from or merges with a sibling. At
  // least 2, so a leaf or inner node other than the root is never empty and a merged or
  // split node is within bounds.
  static constexpr uint32_t kLeafMin = kLeafMax / 4 > 2 ? kLeafMax / 4 : 2;
  static constexpr uint32_t kInnerMin = kInnerMax / 4 > 2 ? kInnerMax / 4 : 2;
  static_assert(kLeafMin * 2 <= kLeafMax && kInnerMin * 2 <= kInnerMax);
  // A root leaf's first capacity; it doubles up to kLeafMax + 1.
  static constexpr uint32_t kRootLeafFirst = 4 < kLeafMax ? 4 : kLeafMax;
  // Levels of inner nodes: every inner node but the root has kInnerMin >= 2 children, so
  // 48 levels hold more than 2^48 entries.
  static constexpr int kMaxDepth = 48;

 private:
  // An entry as the order holds it: a ZEntry (what iterators and find_member show) and its
  // member-index link.
  struct ZNode : ZEntry {
    explicit ZNode(ZEntry e) : ZEntry(std::move(e)) {}
    ZNode* chain = nullptr;  // the next entry in its member-index bucket
  };

  // A leaf's slots follow it in one block: `cap` scores, then `cap` entry pointers. A slot
  // more than kLeafMax (cap = kLeafMax + 1) lets an insert land before the split.
  struct Leaf {
    uint32_t n;
    uint32_t cap;
    Leaf* prev;
    Leaf* next;
    double* sc() { return reinterpret_cast<double*>(this + 1); }
    const double* sc() const { return reinterpret_cast<const double*>(this + 1); }
    ZNode** nd() { return reinterpret_cast<ZNode**>(sc() + cap); }
    ZNode* const* nd() const { return reinterpret_cast<ZNode* const*>(sc() + cap); }
  };
  static_assert(sizeof(Leaf) % alignof(double) == 0 && alignof(Leaf) >= alignof(double));

  // Child i's first entry (score[i], first[i]) and its entry count; kInnerMax + 1 slots for
  // the same reason as a leaf's.
  struct Inner {
    uint32_t n = 0;
    double score[kInnerMax + 1];
    ZNode* first[kInnerMax + 1];
    void* child[kInnerMax + 1];
    uint64_t count[kInnerMax + 1];
  };

  // Where a search ended: the inner nodes from the root down and the child taken in each,
  // the leaf and the slot.
  struct Path {
    Inner* node[kMaxDepth];
    uint32_t idx[kMaxDepth];
    int depth;  // levels of inner nodes when it was found
    Leaf* leaf;
    uint32_t pos;
  };

  static uint64_t member_hash(std::string_view m) { return XXH3_64bits(m.data(), m.size()); }

  struct MemberChain {
    static ZNode*& next(ZNode* n) noexcept { return n->chain; }
    static uint64_t hash(const ZNode* n) noexcept { return member_hash(n->member); }
  };
  class MemberIndex : public detail::ResizingBuckets<ZNode, MemberChain> {
   public:
    ZNode* find(std::string_view m, uint64_t h) const {
      for (ZNode* n = this->chain_head(h); n; n = n->chain)
        if (n->member == m) return n;
      return nullptr;
    }
    // Adds x, whose member (hashed h) is not in the index; size: the entries after it.
    void insert(ZNode* x, uint64_t h, size_t size) {
      this->step();
      ZNode** head = this->chain(h);
      x->chain = *head;
      *head = x;
      this->grown(size);
    }
    // Takes x out; size: the entries after it.
    void erase(ZNode* x, size_t size) {
      ZNode** link = this->chain(member_hash(x->member));
      while (*link != x) link = &(*link)->chain;
      *link = x->chain;
      this->shrunk(size);
      this->step();
    }
    void reserve(size_t n) { this->reserve_buckets(n); }
    void forget() noexcept { this->forget_buckets(); }  // the order destroyed the entries
    // The arrays to the prefault thread, which unmaps them (key_table.h, hand_over_buckets),
    // or, refused, to the release queue, unmapped a step at a time (release_some): the lazy
    // freeing of a deleted sorted set, whose 10 M members' array is 128 MiB.
    void forget_later() noexcept { this->release_buckets_later(); }
    bool releasing() const noexcept { return !this->releasing_.empty(); }
    void release_some() noexcept { this->release_step(); }
    void swap(MemberIndex& o) noexcept { this->swap_buckets(o); }
    // For tests: the entries in its chains. O(buckets + entries).
    size_t count_nodes() const {
      size_t n = 0;
      for (const auto* b : {&this->t0_, &this->t1_})
        for (size_t i = 0; i < b->count(); i++)
          for (const ZNode* x = b->slots[i]; x; x = x->chain) n++;
      return n;
    }
  };

  // k < (s, x) and (s, x) < k; the member is read only when the scores are equal.
  template <class K>
  static bool key_less(const K& k, double s, const ZNode* x) {
    if (k.score != s) return k.score < s;
    return std::string_view(k.member) < std::string_view(x->member);
  }
  template <class K>
  static bool less_key(double s, const ZNode* x, const K& k) {
    if (s != k.score) return s < k.score;
    return std::string_view(x->member) < std::string_view(k.member);
  }

 public:
  class const_iterator {
   public:
    using iterator_category = std::bidirectional_iterator_tag;
    using value_type = ZEntry;
    using difference_type = std::ptrdiff_t;
    using pointer = const ZEntry*;
    using reference = const ZEntry&;

    const_iterator() = default;
    reference operator*() const { return *leaf_->nd()[pos_]; }
    pointer operator->() const { return leaf_->nd()[pos_]; }
    const_iterator& operator++() {
      if (++pos_ == leaf_->n) {
        leaf_ = leaf_->next;
        pos_ = 0;
      }
      return *this;
    }
    const_iterator operator++(int) {
      const_iterator old = *this;
      ++*this;
      return old;
    }
    const_iterator& operator--() {
      if (!leaf_) {
        leaf_ = tree_->last_;
        pos_ = leaf_->n - 1;
      } else if (pos_ == 0) {  // before begin() is end(), as the skip list's was (kv relies on it)
        leaf_ = leaf_->prev;
        pos_ = leaf_ ? leaf_->n - 1 : 0;
      } else {
        pos_--;
      }
      return *this;
    }
    const_iterator operator--(int) {
      const_iterator old = *this;
      --*this;
      return old;
    }
    bool operator==(const const_iterator& o) const { return leaf_ == o.leaf_ && pos_ == o.pos_; }
    bool operator!=(const const_iterator& o) const { return !(*this == o); }

   private:
    friend class BasicZOrder;
    const_iterator(const Leaf* l, uint32_t pos, const BasicZOrder* t) : leaf_(l), pos_(pos), tree_(t) {}
    const ZNode* node() const { return leaf_->nd()[pos_]; }
    const Leaf* leaf_ = nullptr;  // null: end()
    uint32_t pos_ = 0;
    const BasicZOrder* tree_ = nullptr;
  };
  using iterator = const_iterator;  // entries are keys: never changed in place
  using const_reverse_iterator = std::reverse_iterator<const_iterator>;

  BasicZOrder() = default;
  ~BasicZOrder() { clear(); }
  BasicZOrder(const BasicZOrder& o) { append_sorted(o); }
  BasicZOrder& operator=(const BasicZOrder& o) {
    if (this != &o) {
      clear();
      append_sorted(o);
    }
    return *this;
  }
  BasicZOrder(BasicZOrder&& o) noexcept { swap(o); }
  BasicZOrder& operator=(BasicZOrder&& o) noexcept {
    swap(o);
    return *this;
  }
  void swap(BasicZOrder& o) noexcept {
    std::swap(root_, o.root_);
    std::swap(depth_, o.depth_);
    std::swap(size_, o.size_);
    std::swap(first_, o.first_);
    std::swap(last_, o.last_);
    members_.swap(o.members_);
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  const_iterator begin() const { return {first_, 0, this}; }
  const_iterator end() const { return {nullptr, 0, this}; }
  const_reverse_iterator rbegin() const { return const_reverse_iterator(end()); }
  const_reverse_iterator rend() const { return const_reverse_iterator(begin()); }

  void clear() {
    if (root_) free_subtree(root_, depth_);  // whole, or what clear_some left
    root_ = nullptr;
    depth_ = 0;
    size_ = 0;
    first_ = last_ = nullptr;
    members_.forget();
  }
  void reserve(size_t n) { members_.reserve(n); }

  // Destroys up to `budget` entries from the front, with the leaves and inner nodes they
  // empty (kv's lazy freeing of a deleted sorted set, a bounded amount per loop turn); the
  // first call hands the member index's arrays to the prefault thread, which unmaps them
  // (2,048 munmaps of 64 KiB on the loop for 10 M members before: bench/README.md), or, if it
  // refuses them, to the index's release queue, unmapped once the entries are gone, a step
  // (kDrainReleaseUnits of work) at a time. The tree stays whole:
  // each inner node keeps the children it still has (its first ones dropped; its counts and
  // first entries are stale), an emptied leaf is dropped from its parent, and an inner node
  // is freed when its last child goes: at most `depth` of them after the budget's last entry.
  // (It freed every inner node in its first call: ~33,000 at 10 M members, 4x a housekeeping
  // entry's budget, one loop turn of 26-41 ms of CPU with 4 KiB pages: bench/README.md.)
  // From the front, as before: freed from the back, a sorted set filled in order gave its
  // slabs back to the top of malloc's heap, which glibc returned to the kernel in one call
  // once it reached the trim threshold (kMallocTrimThresholdBytes, 512 MiB): loop turns of
  // 27-56 ms of CPU with 4 KiB pages (bench/README.md). Afterwards the order is only good for
  // size(), empty(), iterating, clear_some(), clear() and destruction, which is free once
  // cleared(). Returns the entries destroyed plus the inner nodes freed plus the release
  // steps' units.
  size_t clear_some(size_t budget) {
    members_.forget_later();  // a no-op after the first call
    size_t work = 0;
    Inner* path[kMaxDepth];
    while (root_ && work < budget) {
      Leaf* l = first_;  // child 0 all the way down
      const uint32_t k = static_cast<uint32_t>(std::min<size_t>(l->n, budget - work));
      l->n -= k;
      free_nodes(l->nd() + l->n, k);
      size_ -= k;
      work += k;
      if (l->n > 0) break;
      void* n = root_;
      for (int d = 0; d < depth_; d++) {
        path[d] = static_cast<Inner*>(n);
        n = path[d]->child[0];
      }
      assert(n == l);
      first_ = l->next;
      if (first_) first_->prev = nullptr;
      else last_ = nullptr;
      free_leaf(l);
      int d = depth_ - 1;
      for (; d >= 0 && path[d]->n == 1; d--) {
        free_inner(path[d]);
        work++;
      }
      if (d < 0) {
        root_ = nullptr;
        depth_ = 0;
      } else {
        Inner* in = path[d];
        in->n--;
        std::memmove(in->child, in->child + 1, in->n * sizeof(in->child[0]));
      }
    }
    while (!root_ && members_.releasing() && (work == 0 || work + kDrainReleaseUnits <= budget)) {
      members_.release_some();
      work += kDrainReleaseUnits;
    }
    return work;
  }
  // True once clear_some left nothing to free.
  bool cleared() const noexcept { return !root_ && !first_ && !members_.releasing(); }

  // The entry of member m, or null. O(1).
  const ZEntry* find_member(std::string_view m) const {
    const ZNode* n = members_.find(m, member_hash(m));
    return n;
  }

  // Inserts e; false (and nothing changes) when its member is already there.
  bool insert(ZEntry e) {
    const uint64_t hm = member_hash(e.member);
    if (members_.find(e.member, hm)) return false;
    ZNode* x = new_node(std::move(e));
    try {
      members_.insert(x, hm, size_ + 1);  // may allocate the first bucket array
    } catch (...) {
      free_node(x);
      throw;
    }
    link(x);
    return true;
  }

  // Sets member m's score; false if m is absent. In place when the entry keeps its rank
  // (its leaf slot's score, and the inner nodes' copy where it is a subtree's first entry),
  // else the entry leaves its slot and is linked at its new place: no allocation of an
  // entry, no change to the member index.
  bool update_score(std::string_view m, double score) {
    const ZEntry* e = find_member(m);
    if (!e) return false;
    update_score(e, score);
    return true;
  }
  // The same for an entry find_member returned (ZADD has looked its member up already);
  // e stays valid.
  void update_score(const ZEntry* e, double score) {
    ZNode* x = const_cast<ZNode*>(static_cast<const ZNode*>(e));
    Path p;
    locate(x, p);
    const ZEntryKey k{score, x->member};
    Leaf* l = p.leaf;
    const ZNode* before = nullptr;
    double before_score = 0;
    if (p.pos > 0) {
      before = l->nd()[p.pos - 1];
      before_score = l->sc()[p.pos - 1];
    } else if (l->prev) {
      before = l->prev->nd()[l->prev->n - 1];
      before_score = l->prev->sc()[l->prev->n - 1];
    }
    const ZNode* after = nullptr;
    double after_score = 0;
    if (p.pos + 1 < l->n) {
      after = l->nd()[p.pos + 1];
      after_score = l->sc()[p.pos + 1];
    } else if (l->next) {
      after = l->next->nd()[0];
      after_score = l->next->sc()[0];
    }
    if ((!before || less_key(before_score, before, k)) && (!after || key_less(k, after_score, after))) {
      x->score = score;
      l->sc()[p.pos] = score;
      if (p.pos == 0) set_first(p, score, x);
      return;
    }
    unlink_at(p);
    x->score = score;
    link(x);
  }

  // Removes member m's entry; the count removed (0 or 1).
  size_t erase_member(std::string_view m) {
    ZNode* x = members_.find(m, member_hash(m));
    if (!x) return 0;
    Path p;
    locate(x, p);
    remove_at(p);
    return 1;
  }

  // Removes the entry equal to k; the count removed (0 or 1).
  template <class K>
  size_t erase(const K& k) {
    if (!root_) return 0;
    Path p;
    descend(k, p);
    if (p.pos == p.leaf->n || key_less(k, p.leaf->sc()[p.pos], p.leaf->nd()[p.pos])) return 0;
    remove_at(p);
    return 1;
  }
  // Removes *it (ZPOPMIN and its kin: one search, where erase(it) makes two; none for the
  // first or the last entry, whose path is the leftmost or the rightmost).
  void remove(const_iterator it) {
    Path p;
    const bool first = it.leaf_ == first_ && it.pos_ == 0;
    const bool last = it.leaf_ == last_ && it.pos_ + 1 == last_->n;
    if (first || last) {
      void* n = root_;
      for (int d = 0; d < depth_; d++) {
        Inner* in = static_cast<Inner*>(n);
        p.node[d] = in;
        p.idx[d] = first ? 0 : in->n - 1;
        n = in->child[p.idx[d]];
      }
      p.depth = depth_;
      p.leaf = static_cast<Leaf*>(n);
      p.pos = it.pos_;
      assert(p.leaf == it.leaf_);
    } else {
      locate(it.node(), p);
    }
    remove_at(p);
  }
  // Removes *it; the iterator after it (found again by its entry: a merge may move it).
  const_iterator erase(const_iterator it) {
    const_iterator next = std::next(it);
    const ZNode* after = next.leaf_ ? next.node() : nullptr;
    Path p;
    locate(it.node(), p);
    remove_at(p);
    if (!after) return end();
    locate(after, p);
    return {p.leaf, p.pos, this};
  }

  // The first entry not less than k.
  template <class K>
  const_iterator lower_bound(const K& k) const {
    if (!root_) return end();
    Path p;
    descend(k, p);
    if (p.pos == p.leaf->n) return {p.leaf->next, 0, this};
    return {p.leaf, p.pos, this};
  }
  template <class K>
  const_iterator find(const K& k) const {
    const_iterator it = lower_bound(k);
    return it != end() && !key_less(k, it->score, it.node()) ? it : end();
  }
  // The first entry after k (an entry equal to k, which may or may not be there, excluded):
  // where a snapshot's inner cursor (zset_save.h) goes on from the last entry it wrote.
  template <class K>
  const_iterator upper_bound(const K& k) const {
    const_iterator it = lower_bound(k);
    if (it != end() && !key_less(k, it->score, it.node())) ++it;
    return it;
  }

  // The 0-based rank of the entry equal to k, or -1 if there is none. O(log n).
  template <class K>
  int64_t rank(const K& k) const {
    if (!root_) return -1;
    const void* n = root_;
    uint64_t r = 0;
    for (int d = 0; d < depth_; d++) {
      const Inner* in = static_cast<const Inner*>(n);
      const uint32_t c = child_for(in, k);
      for (uint32_t i = 0; i < c; i++) r += in->count[i];
      n = in->child[c];
    }
    const Leaf* l = static_cast<const Leaf*>(n);
    const uint32_t pos = leaf_lower_bound(l, k);
    if (pos == l->n || key_less(k, l->sc()[pos], l->nd()[pos])) return -1;
    return static_cast<int64_t>(r + pos);
  }

  // The entry at 0-based rank r (< size()). O(log n).
  const_iterator at(size_t r) const {
    assert(r < size_);
    const void* n = root_;
    for (int d = 0; d < depth_; d++) {
      const Inner* in = static_cast<const Inner*>(n);
      uint32_t i = 0;
      while (r >= in->count[i]) r -= in->count[i++];
      n = in->child[i];
    }
    return {static_cast<const Leaf*>(n), static_cast<uint32_t>(r), this};
  }

  // For tests: the member index's buckets, whether it is resizing, and what the last insert
  // or erase moved of it (key_table.h, ResizingBuckets::last_step).
  size_t index_buckets() const { return members_.bucket_count(); }
  bool index_resizing() const { return members_.rehashing(); }
  auto index_last_step() const { return members_.last_step(); }
  // For tests: levels of inner nodes.
  int depth() const { return depth_; }
  // For tests: the leaves and inner nodes of this node size's pool in use, by every order
  // of the process (node_pool.h), and the slabs it holds.
  static size_t pool_nodes() { return pool().live(); }
  static size_t pool_entries() { return entry_pool().live(); }
  static size_t pool_slabs() { return pool().slabs(); }

  // For tests: the order, every count, first entry and fill bound, the leaf links, the size
  // and the member index agree. O(n).
  bool check_invariants() const {
    if (!root_) return size_ == 0 && depth_ == 0 && !first_ && !last_ && members_.count_nodes() == 0;
    const Leaf* expect_leaf = first_;
    const Leaf* prev_leaf = nullptr;
    const ZNode* prev = nullptr;
    size_t seen = 0;
    if (!check_subtree(root_, depth_, true, expect_leaf, prev_leaf, prev, seen)) return false;
    if (expect_leaf || last_ != prev_leaf || seen != size_) return false;
    if (members_.count_nodes() != size_) return false;
    for (auto it = begin(); it != end(); ++it)
      if (find_member(it->member) != &*it) return false;
    return true;
  }

 private:
  // Full-size leaves (every leaf but a small root's) and inner nodes come from one pool per
  // node size (node_pool.h: freed one by one to malloc, these blocks made it coalesce and
  // consolidate its fast bins during ZPOPMIN); a small root leaf from operator new.
  static constexpr size_t kFullLeafBytes = sizeof(Leaf) + size_t{kLeafMax + 1} * (sizeof(double) + sizeof(ZNode*));
  static detail::NodePool& pool() {
    // Never destroyed: an order in a static object may be freed after it would have been.
    static detail::NodePool* p = new detail::NodePool(kFullLeafBytes > sizeof(Inner) ? kFullLeafBytes : sizeof(Inner));
    return *p;
  }
  static Leaf* new_leaf(uint32_t cap) {
    void* mem = cap == kLeafMax + 1 ? pool().allocate()
                                    : ::operator new(sizeof(Leaf) + size_t{cap} * (sizeof(double) + sizeof(ZNode*)));
    return new (mem) Leaf{0, cap, nullptr, nullptr};
  }
  static void free_leaf(Leaf* l) {
    if (l->cap == kLeafMax + 1) pool().deallocate(l);
    else ::operator delete(l);
  }
  static Inner* new_inner() { return new (pool().allocate()) Inner; }
  // Entries from a pool of their own (48-byte blocks; see ZMember).
  static detail::NodePool& entry_pool() {
    static detail::NodePool* p = new detail::NodePool(sizeof(ZNode));  // never destroyed, as pool()
    return *p;
  }
  static ZNode* new_node(ZEntry e) {
    void* mem = entry_pool().allocate();
    return new (mem) ZNode(std::move(e));  // noexcept: moves a double and a ZMember
  }
  static void free_node(ZNode* x) noexcept {
    x->~ZNode();
    entry_pool().deallocate(x);
  }
  static void free_inner(Inner* in) { pool().deallocate(in); }  // Inner is trivially destructible
  // n entries, with the entry pool's lock taken once.
  static void free_nodes(ZNode* const* xs, size_t n) noexcept {
    for (size_t i = 0; i < n; i++) xs[i]->~ZNode();
    entry_pool().deallocate_n(xs, n);
  }

  void free_subtree(void* n, int levels) {
    if (levels == 0) {
      Leaf* l = static_cast<Leaf*>(n);
      free_nodes(l->nd(), l->n);
      free_leaf(l);
      return;
    }
    Inner* in = static_cast<Inner*>(n);
    for (uint32_t i = 0; i < in->n; i++) free_subtree(in->child[i], levels - 1);
    free_inner(in);
  }

  // Asks for the cache lines a search of node n reads (its count and its scores) at once,
  // so their misses overlap instead of each step of the binary search waiting for the next.
  static void prefetch_search(const void* n, bool leaf) {
    const char* b = static_cast<const char*>(n);
    const size_t bytes = leaf ? sizeof(Leaf) + (kLeafMax + 1) * sizeof(double) : offsetof(Inner, first);
    for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(b + off);
  }

  // The child of `in` whose subtree holds k's place: the last whose first entry is not
  // above k (child 0 when k is below them all).
  template <class K>
  static uint32_t child_for(const Inner* in, const K& k) {
    uint32_t lo = 1, hi = in->n;  // the first child i >= 1 whose first entry is above k
    while (lo < hi) {
      const uint32_t mid = (lo + hi) / 2;
      if (key_less(k, in->score[mid], in->first[mid])) hi = mid;
      else lo = mid + 1;
    }
    return lo - 1;
  }
  // The first slot of l not below k (l->n if none).
  template <class K>
  static uint32_t leaf_lower_bound(const Leaf* l, const K& k) {
    uint32_t lo = 0, hi = l->n;
    const double* sc = l->sc();
    while (lo < hi) {
      const uint32_t mid = (lo + hi) / 2;
      if (less_key(sc[mid], l->nd()[mid], k)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  // p: the path to k's place (root_ not null).
  template <class K>
  void descend(const K& k, Path& p) const {
    void* n = root_;
    for (int d = 0; d < depth_; d++) {
      Inner* in = static_cast<Inner*>(n);
      const uint32_t c = child_for(in, k);
      p.node[d] = in;
      p.idx[d] = c;
      n = in->child[c];
      prefetch_search(n, d + 1 == depth_);
    }
    p.depth = depth_;
    p.leaf = static_cast<Leaf*>(n);
    p.pos = leaf_lower_bound(p.leaf, k);
  }
  // p: the path to entry x, which is in the order.
  // In the leaf it compares scores only and then pointers, not members: the entries of x's
  // score are together, and x is among them in this leaf.
  void locate(const ZNode* x, Path& p) const {
    const double s = x->score;
    void* n = root_;
    for (int d = 0; d < depth_; d++) {
      Inner* in = static_cast<Inner*>(n);
      const uint32_t c = child_for(in, *x);
      p.node[d] = in;
      p.idx[d] = c;
      n = in->child[c];
      prefetch_search(n, d + 1 == depth_);
    }
    p.depth = depth_;
    Leaf* l = p.leaf = static_cast<Leaf*>(n);
    uint32_t lo = 0, hi = l->n;
    const double* sc = l->sc();
    while (lo < hi) {
      const uint32_t mid = (lo + hi) / 2;
      if (sc[mid] < s) lo = mid + 1;
      else hi = mid;
    }
    while (l->nd()[lo] != x) {
      assert(lo + 1 < l->n && sc[lo + 1] == s);
      lo++;
    }
    p.pos = lo;
  }

  // The first entry of p's leaf is now (s, x): so it is of each subtree up the path that
  // the leaf starts.
  static void set_first(const Path& p, double s, ZNode* x) {
    for (int d = p.depth - 1; d >= 0; d--) {
      Inner* in = p.node[d];
      in->score[p.idx[d]] = s;
      in->first[p.idx[d]] = x;
      if (p.idx[d] != 0) break;
    }
  }
  // Links entry x (not in the order) at its place. noexcept: failing to allocate a leaf or
  // an inner node part way through would leave the order half changed, so it ends the
  // process instead.
  void link(ZNode* x) noexcept {
    const double s = x->score;
    if (!root_) {
      Leaf* l = new_leaf(kRootLeafFirst);
      l->sc()[0] = s;
      l->nd()[0] = x;
      l->n = 1;
      root_ = first_ = last_ = l;
      depth_ = 0;
      size_ = 1;
      return;
    }
    Path p;
    descend(ZEntryKey{s, x->member}, p);
    Leaf* l = p.leaf;
    if (l->n == l->cap) l = p.leaf = grow_root_leaf(l);  // only a root leaf is short of slots
    for (int d = 0; d < p.depth; d++) p.node[d]->count[p.idx[d]]++;
    std::memmove(l->sc() + p.pos + 1, l->sc() + p.pos, (l->n - p.pos) * sizeof(double));
    std::memmove(l->nd() + p.pos + 1, l->nd() + p.pos, (l->n - p.pos) * sizeof(ZNode*));
    l->sc()[p.pos] = s;
    l->nd()[p.pos] = x;
    l->n++;
    size_++;
    if (p.pos == 0) set_first(p, s, x);
    if (l->n > kLeafMax) split_leaf(p);
  }

  Leaf* grow_root_leaf(Leaf* l) {
    assert(depth_ == 0 && l == root_ && l->cap <= kLeafMax);
    const uint32_t cap = l->cap * 2 < kLeafMax + 1 ? l->cap * 2 : kLeafMax + 1;
    Leaf* g = new_leaf(cap);
    g->n = l->n;
    std::memcpy(g->sc(), l->sc(), l->n * sizeof(double));
    std::memcpy(g->nd(), l->nd(), l->n * sizeof(ZNode*));
    free_leaf(l);
    root_ = first_ = last_ = g;
    return g;
  }

  // Splits the overfull leaf at p in two halves; or, when the new entry went to the end of
  // the last leaf (entries arriving in order: a snapshot's load, a copy, rising scores),
  // leaves the left one nearly full and the right one at its minimum, so such an order's
  // leaves are ~3/4 full instead of half (its inner nodes likewise).
  void split_leaf(Path& p) {
    Leaf* l = p.leaf;
    Leaf* r = new_leaf(kLeafMax + 1);
    const bool append = !l->next && p.pos == l->n - 1;
    const uint32_t h = append ? l->n - kLeafMin : l->n / 2;
    r->n = l->n - h;
    std::memcpy(r->sc(), l->sc() + h, r->n * sizeof(double));
    std::memcpy(r->nd(), l->nd() + h, r->n * sizeof(ZNode*));
    l->n = h;
    r->prev = l;
    r->next = l->next;
    if (l->next) l->next->prev = r;
    else last_ = r;
    l->next = r;
    add_child(p, p.depth - 1, l, l->n, r, r->n, r->sc()[0], r->nd()[0], append);
  }

  static double first_score(const void* n, bool leaf) {
    return leaf ? static_cast<const Leaf*>(n)->sc()[0] : static_cast<const Inner*>(n)->score[0];
  }
  static ZNode* first_node(void* n, bool leaf) {
    return leaf ? static_cast<Leaf*>(n)->nd()[0] : static_cast<Inner*>(n)->first[0];
  }

  // `left` (p.node[d]'s child p.idx[d], or the root if d < 0) was split: `right` (first
  // entry (rs, rx)) follows it. Splits p.node[d] in turn if it overflows (append: at the
  // end of the last node of its level, as split_leaf says).
  void add_child(Path& p, int d, void* left, uint64_t left_count, void* right, uint64_t right_count, double rs,
                 ZNode* rx, bool append) {
    if (d < 0) {
      const bool leaf = depth_ == 0;
      Inner* root = new_inner();
      root->n = 2;
      root->score[0] = first_score(left, leaf);
      root->first[0] = first_node(left, leaf);
      root->child[0] = left;
      root->count[0] = left_count;
      root->score[1] = rs;
      root->first[1] = rx;
      root->child[1] = right;
      root->count[1] = right_count;
      root_ = root;
      depth_++;
      return;
    }
    Inner* in = p.node[d];
    const uint32_t i = p.idx[d] + 1;
    in->count[i - 1] = left_count;
    const uint32_t tail = in->n - i;
    std::memmove(in->score + i + 1, in->score + i, tail * sizeof(double));
    std::memmove(in->first + i + 1, in->first + i, tail * sizeof(ZNode*));
    std::memmove(in->child + i + 1, in->child + i, tail * sizeof(void*));
    std::memmove(in->count + i + 1, in->count + i, tail * sizeof(uint64_t));
    in->score[i] = rs;
    in->first[i] = rx;
    in->child[i] = right;
    in->count[i] = right_count;
    in->n++;
    if (in->n > kInnerMax) split_inner(p, d, append);
  }

  void split_inner(Path& p, int d, bool append) {
    Inner* in = p.node[d];
    Inner* r = new_inner();
    const uint32_t h = append ? in->n - kInnerMin : in->n / 2;
    r->n = in->n - h;
    std::memcpy(r->score, in->score + h, r->n * sizeof(double));
    std::memcpy(r->first, in->first + h, r->n * sizeof(ZNode*));
    std::memcpy(r->child, in->child + h, r->n * sizeof(void*));
    std::memcpy(r->count, in->count + h, r->n * sizeof(uint64_t));
    in->n = h;
    add_child(p, d - 1, in, sum_counts(in), r, sum_counts(r), r->score[0], r->first[0], append);
  }
  static uint64_t sum_counts(const Inner* in) {
    uint64_t s = 0;
    for (uint32_t i = 0; i < in->n; i++) s += in->count[i];
    return s;
  }

  // Removes the entry at p from the order, the member index and memory.
  void remove_at(Path& p) {
    ZNode* x = p.leaf->nd()[p.pos];
    unlink_at(p);
    members_.erase(x, size_);
    free_node(x);
  }

  // Takes the entry at p out of the order (not out of the member index), rebalancing.
  void unlink_at(Path& p) {
    Leaf* l = p.leaf;
    const uint32_t tail = l->n - p.pos - 1;
    std::memmove(l->sc() + p.pos, l->sc() + p.pos + 1, tail * sizeof(double));
    std::memmove(l->nd() + p.pos, l->nd() + p.pos + 1, tail * sizeof(ZNode*));
    l->n--;
    size_--;
    for (int d = 0; d < p.depth; d++) p.node[d]->count[p.idx[d]]--;
    if (l->n == 0) {  // only a root leaf empties: a smaller one merges first
      assert(depth_ == 0);
      free_leaf(l);
      root_ = first_ = last_ = nullptr;
      return;
    }
    if (p.pos == 0) set_first(p, l->sc()[0], l->nd()[0]);
    rebalance(p);
  }

  // After an erase: each node up the path below its minimum takes entries or children from
  // a sibling, or merges with it; a root with one child gives way to the child.
  void rebalance(Path& p) {
    bool leaf = true;
    void* n = p.leaf;
    for (int d = p.depth - 1; d >= 0; d--) {
      const uint32_t have = leaf ? static_cast<Leaf*>(n)->n : static_cast<Inner*>(n)->n;
      if (have >= (leaf ? kLeafMin : kInnerMin)) return;
      Inner* parent = p.node[d];
      const uint32_t j = p.idx[d] > 0 ? p.idx[d] - 1 : 0;  // the pair j, j + 1
      if (leaf) fix_leaves(parent, j);
      else fix_inners(parent, j);
      n = parent;
      leaf = false;
    }
    while (depth_ > 0 && static_cast<Inner*>(root_)->n == 1) {
      Inner* old = static_cast<Inner*>(root_);
      root_ = old->child[0];
      depth_--;
      free_inner(old);
    }
  }

  static void remove_child(Inner* in, uint32_t i) {
    const uint32_t tail = in->n - i - 1;
    std::memmove(in->score + i, in->score + i + 1, tail * sizeof(double));
    std::memmove(in->first + i, in->first + i + 1, tail * sizeof(ZNode*));
    std::memmove(in->child + i, in->child + i + 1, tail * sizeof(void*));
    std::memmove(in->count + i, in->count + i + 1, tail * sizeof(uint64_t));
    in->n--;
  }

  // Leaves j and j + 1 of `in`, one of them below kLeafMin: merged if they fit in one,
  // else the entries are shared evenly. The left one's first entry never changes.
  void fix_leaves(Inner* in, uint32_t j) {
    Leaf* a = static_cast<Leaf*>(in->child[j]);
    Leaf* b = static_cast<Leaf*>(in->child[j + 1]);
    const uint32_t total = a->n + b->n;
    if (total <= kLeafMax) {
      std::memcpy(a->sc() + a->n, b->sc(), b->n * sizeof(double));
      std::memcpy(a->nd() + a->n, b->nd(), b->n * sizeof(ZNode*));
      a->n = total;
      a->next = b->next;
      if (b->next) b->next->prev = a;
      else last_ = a;
      in->count[j] += in->count[j + 1];
      remove_child(in, j + 1);
      free_leaf(b);
      return;
    }
    const uint32_t want = total / 2;
    if (a->n > want) {  // a's tail to b's front
      const uint32_t m = a->n - want;
      std::memmove(b->sc() + m, b->sc(), b->n * sizeof(double));
      std::memmove(b->nd() + m, b->nd(), b->n * sizeof(ZNode*));
      std::memcpy(b->sc(), a->sc() + want, m * sizeof(double));
      std::memcpy(b->nd(), a->nd() + want, m * sizeof(ZNode*));
      a->n = want;
      b->n += m;
    } else {  // b's front to a's tail
      const uint32_t m = want - a->n;
      std::memcpy(a->sc() + a->n, b->sc(), m * sizeof(double));
      std::memcpy(a->nd() + a->n, b->nd(), m * sizeof(ZNode*));
      std::memmove(b->sc(), b->sc() + m, (b->n - m) * sizeof(double));
      std::memmove(b->nd(), b->nd() + m, (b->n - m) * sizeof(ZNode*));
      a->n = want;
      b->n -= m;
    }
    in->count[j] = a->n;
    in->count[j + 1] = b->n;
    in->score[j + 1] = b->sc()[0];
    in->first[j + 1] = b->nd()[0];
  }

  // The same for inner nodes j and j + 1 of `in`.
  static void fix_inners(Inner* in, uint32_t j) {
    Inner* a = static_cast<Inner*>(in->child[j]);
    Inner* b = static_cast<Inner*>(in->child[j + 1]);
    const uint32_t total = a->n + b->n;
    auto move = [](Inner* to, uint32_t at, const Inner* from, uint32_t from_at, uint32_t m) {
      std::memmove(to->score + at, from->score + from_at, m * sizeof(double));
      std::memmove(to->first + at, from->first + from_at, m * sizeof(ZNode*));
      std::memmove(to->child + at, from->child + from_at, m * sizeof(void*));
      std::memmove(to->count + at, from->count + from_at, m * sizeof(uint64_t));
    };
    if (total <= kInnerMax) {
      move(a, a->n, b, 0, b->n);
      a->n = total;
      in->count[j] += in->count[j + 1];
      remove_child(in, j + 1);
      free_inner(b);
      return;
    }
    const uint32_t want = total / 2;
    if (a->n > want) {
      const uint32_t m = a->n - want;
      move(b, m, b, 0, b->n);
      move(b, 0, a, want, m);
      a->n = want;
      b->n += m;
    } else {
      const uint32_t m = want - a->n;
      move(a, a->n, b, 0, m);
      move(b, 0, b, m, b->n - m);
      a->n = want;
      b->n -= m;
    }
    in->count[j] = sum_counts(a);
    in->count[j + 1] = sum_counts(b);
    in->score[j + 1] = b->score[0];
    in->first[j + 1] = b->first[0];
  }

  // Copies o's entries (sorted) into this empty order: O(n log n).
  void append_sorted(const BasicZOrder& o) {
    assert(empty());
    members_.reserve(o.size());
    for (const ZEntry& e : o) {
      ZNode* x = new_node(e);
      members_.insert(x, member_hash(x->member), size_ + 1);
      link(x);
    }
  }

  // Checks the subtree n (`levels` inner levels above its leaves), its leaves' order against
  // the leaf chain, and returns false at the first broken invariant.
  bool check_subtree(const void* n, int levels, bool is_root, const Leaf*& expect_leaf, const Leaf*& prev_leaf,
                     const ZNode*& prev, size_t& seen) const {
    if (levels == 0) {
      const Leaf* l = static_cast<const Leaf*>(n);
      if (l != expect_leaf || l->prev != prev_leaf || l->n > kLeafMax || l->n > l->cap) return false;
      if (!is_root && (l->n < kLeafMin || l->cap != kLeafMax + 1)) return false;
      if (is_root && l->n == 0) return false;
      for (uint32_t i = 0; i < l->n; i++) {
        const ZNode* x = l->nd()[i];
        if (l->sc()[i] != x->score) return false;
        if (prev && !ZLess{}(*prev, *x)) return false;
        prev = x;
      }
      seen += l->n;
      prev_leaf = l;
      expect_leaf = l->next;
      return true;
    }
    const Inner* in = static_cast<const Inner*>(n);
    if (in->n > kInnerMax || (is_root ? in->n < 2 : in->n < kInnerMin)) return false;
    for (uint32_t i = 0; i < in->n; i++) {
      const size_t before = seen;
      const Leaf* starts = expect_leaf;
      if (!check_subtree(in->child[i], levels - 1, false, expect_leaf, prev_leaf, prev, seen)) return false;
      if (seen - before != in->count[i]) return false;
      if (in->first[i] != starts->nd()[0] || in->score[i] != starts->nd()[0]->score) return false;
    }
    return true;
  }

  void* root_ = nullptr;  // a Leaf if depth_ == 0, else an Inner; null when empty
  int depth_ = 0;         // levels of inner nodes
  size_t size_ = 0;
  Leaf* first_ = nullptr;
  Leaf* last_ = nullptr;
  MemberIndex members_;  // every entry, by member
};

// Leaves of 32 entries (512 bytes of slots), inner nodes of 16 children (552 bytes).
using ZOrder = BasicZOrder<32, 16>;

}  // namespace hmdb::kv

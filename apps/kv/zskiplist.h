// apps/kv/zskiplist.h — a sorted set's (score, member) order with ranks: kv::ZSkipList.
//
// ZRANK, ZRANGE by index (a leaderboard's "top 10" is ZRANGE key -10 -1), ZREMRANGEBYRANK
// and ZRANDMEMBER need the entry at a rank and the rank of an entry. A B-tree without
// counts (absl::btree_set, what kv used before) answers both by walking: O(n) for a ZRANK
// on a sorted set of millions. This is the structure Redis uses (t_zset.c's zskiplist,
// after Pugh's "Skip Lists: A Probabilistic Alternative to Balanced Trees"): every forward
// link records how many entries it skips (its span), so a search adds spans as it goes and
// finds a rank, or the entry at a rank, in O(log n) expected.
//
// A node's height is drawn from a hash of its member, not from a random generator: the
// same member gets the same height on every node and in every run, with no generator state
// to seed or snapshot. The height only decides speed, never what a reply holds (the order
// is by score, then member bytes), so a member chosen to be tall costs that one member a few
// more links, nothing more. Probability 1/4 per extra level (Redis' ZSKIPLIST_P), at most
// kMaxHeight (16) levels: enough for 4^16 (4.3 G) entries, more than memory holds.
//
// A member index finds a member's entry and score without a second copy of the member: a
// sorted set holds each member once, in its node, as Redis' holds one sds for its dict and
// its skiplist. The index chains the nodes themselves (a link in each node) from a bucket
// array that grows and shrinks a few buckets per insert and erase (key_table.h's
// detail::ResizingBuckets, the key table's own): a Swiss table (absl::flat_hash_set, used
// before) doubles in one call, a 169-176 ms loop turn at 1,835,008 members (issue 16).
//
// Memory: an entry (40 bytes), a backward link with the height in its low bits, the index
// link, and 16 bytes per level (1.33 levels on average, stored below the node), in one
// allocation per entry; 8-16 bytes of bucket per entry (a load factor of 0.5-1).
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <new>
#include <string>
#include <string_view>
#include <utility>

#include <xxhash.h>

#include "kv/key_table.h"

namespace hmdb::kv {

struct ZEntry {
  double score;
  std::string member;
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

class ZSkipList {
  // A node's height - 1 is kept in the low bits of its backward link (nodes are 16-byte
  // aligned: they follow their 16-byte levels in a block from operator new).
  static constexpr uintptr_t kHeightMask = 15;

  struct Node;
  struct Level {
    Node* forward;
    uint64_t span;  // level-0 steps from this node to `forward` (to the last entry if null)
  };
  struct Node {
    ZEntry entry;
    uintptr_t back_and_height;  // the backward link (null for the first entry) | height - 1
    Node* chain;                // the next node in its member-index bucket
    Node* backward() const { return reinterpret_cast<Node*>(back_and_height & ~kHeightMask); }
    void set_backward(Node* b) {
      back_and_height = reinterpret_cast<uintptr_t>(b) | (back_and_height & kHeightMask);
    }
    int height() const { return static_cast<int>(back_and_height & kHeightMask) + 1; }
    // Level i lives just below the node, level 0 nearest: a search reads a node's score
    // and its low levels (where most of its steps are) from one or two adjacent cache
    // lines, not from both ends of a ~100-byte block as when the levels followed the
    // entry (ZADD of random scores into ~400k members: 4.7-5.1 us CPU/op against
    // 5.1-5.3 before, under load).
    Level& lv(int i) { return reinterpret_cast<Level*>(this)[-1 - i]; }
    const Level& lv(int i) const { return reinterpret_cast<const Level*>(this)[-1 - i]; }
  };
  static_assert(alignof(Node) <= alignof(Level) && sizeof(Level) == kHeightMask + 1 &&
                __STDCPP_DEFAULT_NEW_ALIGNMENT__ >= kHeightMask + 1);

  static uint64_t member_hash(std::string_view m) { return XXH3_64bits(m.data(), m.size()); }

  // The member index: nodes by member, chained through Node::chain.
  struct MemberChain {
    static Node*& next(Node* n) noexcept { return n->chain; }
    static uint64_t hash(const Node* n) noexcept { return member_hash(n->entry.member); }
  };
  class MemberIndex : public detail::ResizingBuckets<Node, MemberChain> {
   public:
    Node* find(std::string_view m, uint64_t h) const {
      for (Node* n = this->chain_head(h); n; n = n->chain)
        if (n->entry.member == m) return n;
      return nullptr;
    }
    // Adds x, whose member (hashed h) is not in the index; size: the nodes after it.
    void insert(Node* x, uint64_t h, size_t size) {
      this->step();
      Node** head = this->chain(h);
      x->chain = *head;
      *head = x;
      this->grown(size);
    }
    // Takes x out; size: the nodes after it.
    void erase(Node* x, size_t size) {
      Node** link = this->chain(member_hash(x->entry.member));
      while (*link != x) link = &(*link)->chain;
      *link = x->chain;
      this->shrunk(size);
      this->step();
    }
    void reserve(size_t n) { this->reserve_buckets(n); }
    void forget() noexcept { this->forget_buckets(); }  // the list destroyed the nodes
    void swap(MemberIndex& o) noexcept { this->swap_buckets(o); }
    // For tests: the nodes in its chains. O(buckets + nodes).
    size_t count_nodes() const {
      size_t n = 0;
      for (const auto* b : {&this->t0_, &this->t1_})
        for (size_t i = 0; i < b->count(); i++)
          for (const Node* x = b->slots[i]; x; x = x->chain) n++;
      return n;
    }
  };

 public:
  // Height bound (levels of the head): 4^16 entries before it is a limit.
  static constexpr int kMaxHeight = static_cast<int>(kHeightMask) + 1;

  class const_iterator {
   public:
    using iterator_category = std::bidirectional_iterator_tag;
    using value_type = ZEntry;
    using difference_type = std::ptrdiff_t;
    using pointer = const ZEntry*;
    using reference = const ZEntry&;

    const_iterator() = default;
    reference operator*() const { return node_->entry; }
    pointer operator->() const { return &node_->entry; }
    const_iterator& operator++() {
      node_ = node_->lv(0).forward;
      return *this;
    }
    const_iterator operator++(int) {
      const_iterator old = *this;
      ++*this;
      return old;
    }
    const_iterator& operator--() {
      node_ = node_ ? node_->backward() : list_->tail_;
      return *this;
    }
    const_iterator operator--(int) {
      const_iterator old = *this;
      --*this;
      return old;
    }
    bool operator==(const const_iterator& o) const { return node_ == o.node_; }
    bool operator!=(const const_iterator& o) const { return node_ != o.node_; }

   private:
    friend class ZSkipList;
    const_iterator(const Node* n, const ZSkipList* l) : node_(n), list_(l) {}
    const Node* node_ = nullptr;  // null: end()
    const ZSkipList* list_ = nullptr;
  };
  using iterator = const_iterator;  // entries are keys: never changed in place
  using const_reverse_iterator = std::reverse_iterator<const_iterator>;

  ZSkipList() : head_(make_node(kMaxHeight, ZEntry{0, {}})) {}
  ~ZSkipList() {
    clear();
    destroy_node(head_);
  }
  ZSkipList(const ZSkipList& o) : ZSkipList() { append_sorted(o); }
  ZSkipList& operator=(const ZSkipList& o) {
    if (this != &o) {
      clear();
      append_sorted(o);
    }
    return *this;
  }
  ZSkipList(ZSkipList&& o) noexcept : ZSkipList() { swap(o); }
  ZSkipList& operator=(ZSkipList&& o) noexcept {
    swap(o);
    return *this;
  }
  void swap(ZSkipList& o) noexcept {
    std::swap(head_, o.head_);
    std::swap(tail_, o.tail_);
    std::swap(height_, o.height_);
    std::swap(size_, o.size_);
    members_.swap(o.members_);
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  const_iterator begin() const { return {head_->lv(0).forward, this}; }
  const_iterator end() const { return {nullptr, this}; }
  const_reverse_iterator rbegin() const { return const_reverse_iterator(end()); }
  const_reverse_iterator rend() const { return const_reverse_iterator(begin()); }

  void clear() {
    Node* x = head_->lv(0).forward;
    while (x) {
      Node* next = x->lv(0).forward;
      destroy_node(x);
      x = next;
    }
    for (int i = 0; i < kMaxHeight; i++) head_->lv(i) = Level{nullptr, 0};
    tail_ = nullptr;
    height_ = 1;
    size_ = 0;
    members_.forget();
  }
  void reserve(size_t n) { members_.reserve(n); }

  // The entry of member m, or null. O(1).
  const ZEntry* find_member(std::string_view m) const {
    const Node* n = members_.find(m, member_hash(m));
    return n ? &n->entry : nullptr;
  }

  // Inserts e; false (and nothing changes) when its member is already there.
  bool insert(ZEntry e) {
    const uint64_t hm = member_hash(e.member);
    if (members_.find(e.member, hm)) return false;
    const int h = height_of(e.member);  // before e is moved from
    Node* x = make_node(h, std::move(e));
    try {
      members_.insert(x, hm, size_ + 1);  // may allocate the first bucket array
    } catch (...) {
      destroy_node(x);
      throw;
    }
    link(x);
    return true;
  }

  // Sets member m's score; false if m is absent. As Redis' zslUpdateScore: in place when
  // the entry keeps its rank, else its node moves (one search to unlink it, one to link it
  // again) with no allocation and no change to the member index. ZADD of an existing
  // member with a new score (redis-benchmark's ZADD, mostly) was an erase and an insert:
  // five member-index lookups, a free, an allocation and a copy of the member.
  bool update_score(std::string_view m, double score) {
    Node* x = members_.find(m, member_hash(m));
    if (!x) return false;
    const ZEntryKey k{score, x->entry.member};
    const Node* next = x->lv(0).forward;
    if ((!x->backward() || less_(x->backward()->entry, k)) && (!next || less_(k, next->entry))) {
      x->entry.score = score;
      return true;
    }
    Node* update[kMaxHeight];
    Node* y = head_;
    for (int i = height_ - 1; i >= 0; i--) {
      while (y->lv(i).forward && less_(y->lv(i).forward->entry, x->entry)) y = y->lv(i).forward;
      update[i] = y;
    }
    assert(y->lv(0).forward == x);
    detach(x, update);
    x->entry.score = score;
    link(x);
    return true;
  }

  // Removes member m's entry; the count removed (0 or 1).
  size_t erase_member(std::string_view m) {
    const Node* n = members_.find(m, member_hash(m));
    if (!n) return 0;
    return erase(ZEntryKey{n->entry.score, n->entry.member});
  }

  // Removes the entry equal to k; the count removed (0 or 1).
  template <class K>
  size_t erase(const K& k) {
    Node* update[kMaxHeight];
    Node* x = head_;
    for (int i = height_ - 1; i >= 0; i--) {
      while (x->lv(i).forward && less_(x->lv(i).forward->entry, k)) x = x->lv(i).forward;
      update[i] = x;
    }
    x = x->lv(0).forward;
    if (!x || less_(k, x->entry)) return 0;
    unlink(x, update);
    return 1;
  }
  // Removes *it; the iterator after it.
  const_iterator erase(const_iterator it) {
    const Node* next = it.node_->lv(0).forward;
    const ZEntry& e = it.node_->entry;
    size_t n = erase(ZEntryKey{e.score, e.member});
    assert(n == 1);
    (void)n;
    return {next, this};
  }

  // The first entry not less than k.
  template <class K>
  const_iterator lower_bound(const K& k) const {
    const Node* x = head_;
    for (int i = height_ - 1; i >= 0; i--)
      while (x->lv(i).forward && less_(x->lv(i).forward->entry, k)) x = x->lv(i).forward;
    return {x->lv(0).forward, this};
  }
  template <class K>
  const_iterator find(const K& k) const {
    const_iterator it = lower_bound(k);
    return it != end() && !less_(k, *it) ? it : end();
  }

  // The 0-based rank of the entry equal to k, or -1 if there is none. O(log n).
  template <class K>
  int64_t rank(const K& k) const {
    const Node* x = head_;
    uint64_t r = 0;
    for (int i = height_ - 1; i >= 0; i--) {
      while (x->lv(i).forward && !less_(k, x->lv(i).forward->entry)) {
        r += x->lv(i).span;
        x = x->lv(i).forward;
      }
      if (x != head_ && !less_(x->entry, k)) return static_cast<int64_t>(r) - 1;
    }
    return -1;
  }

  // The entry at 0-based rank r (< size()). O(log n).
  const_iterator at(size_t r) const {
    assert(r < size_);
    const uint64_t want = r + 1;
    const Node* x = head_;
    uint64_t traversed = 0;
    for (int i = height_ - 1; i >= 0; i--) {
      while (x->lv(i).forward && traversed + x->lv(i).span <= want) {
        traversed += x->lv(i).span;
        x = x->lv(i).forward;
      }
      if (traversed == want) return {x, this};
    }
    assert(false);
    return end();
  }

  // For tests: the member index's buckets, whether it is resizing, and what the last insert
  // or erase moved of it (key_table.h, ResizingBuckets::last_step).
  size_t index_buckets() const { return members_.bucket_count(); }
  bool index_resizing() const { return members_.rehashing(); }
  auto index_last_step() const { return members_.last_step(); }

  // For tests: every link, span, backward link and the size agree. O(n * height).
  bool check_invariants() const {
    size_t n = 0;
    const Node* prev = nullptr;
    for (const Node* x = head_->lv(0).forward; x; x = x->lv(0).forward) {
      if (x->backward() != prev || (prev && !less_(prev->entry, x->entry))) return false;
      if (x->height() > height_ || x->height() != height_of(x->entry.member)) return false;
      prev = x;
      n++;
    }
    if (n != size_ || tail_ != prev || members_.count_nodes() != size_) return false;
    for (const Node* x = head_->lv(0).forward; x; x = x->lv(0).forward)
      if (find_member(x->entry.member) != &x->entry) return false;
    // Each span equals the number of level-0 steps to the forward node (or to the end).
    auto position = [&](const Node* target) {
      uint64_t p = 0;
      for (const Node* x = head_; x != target; x = x->lv(0).forward) p++;
      return p;
    };
    for (const Node* x = head_; x; x = x->lv(0).forward) {
      const int h = x == head_ ? height_ : x->height();
      const uint64_t from = position(x);
      for (int i = 0; i < h; i++) {
        const Level& l = x->lv(i);
        if (l.forward ? l.forward->height() <= i || l.span != position(l.forward) - from : l.span != size_ - from)
          return false;
      }
    }
    for (int i = height_; i < kMaxHeight; i++)
      if (head_->lv(i).forward) return false;
    return height_ == 1 || head_->lv(height_ - 1).forward;
  }

 private:
  // Seeded apart from the member index's hash, so tall nodes do not share its low bits.
  static constexpr uint64_t kHeightSeed = 0x7a736b69706c6973ULL;  // "zskiplis"
  static int height_of(std::string_view member) {
    uint64_t h = XXH3_64bits_withSeed(member.data(), member.size(), kHeightSeed);
    int level = 1;
    while (level < kMaxHeight && (h & 3) == 0) {  // 1/4 per extra level
      level++;
      h >>= 2;
    }
    return level;
  }

  // One block: `height` levels (the top one first), then the node.
  static Node* make_node(int height, ZEntry e) {
    const size_t below = sizeof(Level) * static_cast<size_t>(height);
    char* mem = static_cast<char*>(::operator new(below + sizeof(Node)));
    Node* n = new (mem + below) Node{std::move(e), static_cast<uintptr_t>(height - 1), nullptr};
    for (int i = 0; i < height; i++) new (&n->lv(i)) Level{nullptr, 0};
    return n;
  }
  static void destroy_node(Node* n) {
    const size_t below = sizeof(Level) * static_cast<size_t>(n->height());
    n->~Node();
    ::operator delete(reinterpret_cast<char*>(n) - below);
  }

  // Links node x (not in the list; its height set, its levels anything) at its place.
  void link(Node* x) {
    const ZEntry& e = x->entry;
    Node* update[kMaxHeight];
    uint64_t rank[kMaxHeight];
    Node* y = head_;
    for (int i = height_ - 1; i >= 0; i--) {
      rank[i] = i == height_ - 1 ? 0 : rank[i + 1];
      while (y->lv(i).forward && less_(y->lv(i).forward->entry, e)) {
        rank[i] += y->lv(i).span;
        y = y->lv(i).forward;
      }
      update[i] = y;
    }
    const int h = x->height();
    if (h > height_) {
      for (int i = height_; i < h; i++) {
        rank[i] = 0;
        update[i] = head_;
        head_->lv(i).span = size_;
      }
      height_ = h;
    }
    for (int i = 0; i < h; i++) {
      Level& up = update[i]->lv(i);
      x->lv(i).forward = up.forward;
      x->lv(i).span = up.span - (rank[0] - rank[i]);
      up.forward = x;
      up.span = rank[0] - rank[i] + 1;
    }
    for (int i = h; i < height_; i++) update[i]->lv(i).span++;
    x->set_backward(update[0] == head_ ? nullptr : update[0]);
    if (Node* next = x->lv(0).forward) next->set_backward(x); else tail_ = x;
    size_++;
  }

  void unlink(Node* x, Node* const* update) {
    detach(x, update);
    members_.erase(x, size_);
    destroy_node(x);
  }
  // Takes x out of the order (update[i]: the last node before x at level i), leaving the
  // node and the member index alone.
  void detach(Node* x, Node* const* update) {
    for (int i = 0; i < height_; i++) {
      Level& up = update[i]->lv(i);
      if (up.forward == x) {
        up.span += x->lv(i).span - 1;
        up.forward = x->lv(i).forward;
      } else {
        up.span--;
      }
    }
    if (Node* next = x->lv(0).forward) next->set_backward(x->backward()); else tail_ = x->backward();
    while (height_ > 1 && !head_->lv(height_ - 1).forward) height_--;
    size_--;
  }

  // Appends o's entries (sorted, each above this list's last) in O(n).
  void append_sorted(const ZSkipList& o) {
    Node* last[kMaxHeight];
    uint64_t last_rank[kMaxHeight];
    for (int i = 0; i < kMaxHeight; i++) {
      last[i] = head_;
      last_rank[i] = 0;
    }
    assert(empty());
    members_.reserve(o.size());
    for (const ZEntry& e : o) {
      const int h = height_of(e.member);
      Node* x = make_node(h, e);
      const uint64_t r = ++size_;
      for (int i = 0; i < h; i++) {
        last[i]->lv(i) = Level{x, r - last_rank[i]};
        last[i] = x;
        last_rank[i] = r;
      }
      x->set_backward(tail_);
      tail_ = x;
      members_.insert(x, member_hash(x->entry.member), size_);
      if (h > height_) height_ = h;
    }
    for (int i = 0; i < height_; i++) last[i]->lv(i) = Level{nullptr, size_ - last_rank[i]};
  }

  Node* head_;
  Node* tail_ = nullptr;
  int height_ = 1;
  size_t size_ = 0;
  ZLess less_;
  MemberIndex members_;  // every node, by member
};

}  // namespace hmdb::kv

// apps/kv/set.h — the kv app's set value: members ordered by (XXH3 hash, bytes), in a
// sorted flat array while small and a hash table (key_table.h) once large.
//
// Why: like hashes (hash.h), a set was a boxed absl::btree_set, i.e. a set object and a
// B-tree node per key even for one member. A small set is one block of up to
// kSmallMembersMax (hash, std::string) entries, found by binary search. A big one (SADD
// grows redis-benchmark's set to a million members) is a KeyTable keyed by the member,
// hashed with kSetHashSeed: one bucket and one node per lookup instead of ~10 B-tree levels
// (40-byte entries, a heap string compared at each), and it grows a few buckets per insert.
//
// The order is part of the schema (kv.h: SPOP picks the first member whose hash is >= a
// value derived from the log index, wrapping to the first member; SMEMBERS and the snapshot
// list members in this order). The table keeps exactly it (its buckets are ranges of hash
// values, its chains sorted by (hash, bytes)), and so does the array, so which one a set
// uses is invisible; SPOP's pick is a lower bound in one bucket.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <iterator>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <xxhash.h>

#include "kv/key_table.h"

namespace hmdb::kv {

// Seed of the member hash that orders sets. Part of the schema: changing it changes which
// member SPOP picks, so it may only change with a new schema version.
inline constexpr uint64_t kSetHashSeed = 0x686d64622d736574ULL;  // "hmdb-set"

// The hash sets are ordered by (kv.cc's member_hash).
struct SetMemberHasher {
  static uint64_t hash(std::string_view m) noexcept { return XXH3_64bits_withSeed(m.data(), m.size(), kSetHashSeed); }
};

struct SetMember {
  uint64_t hash;
  std::string value;
};
struct SetMemberKey {
  uint64_t hash;
  std::string_view value;
};
struct SetLess {
  using is_transparent = void;
  template <class A, class B>
  bool operator()(const A& a, const B& b) const {
    if (a.hash != b.hash) return a.hash < b.hash;
    return std::string_view(a.value) < std::string_view(b.value);
  }
};

class Set {
 public:
  // Most members a set holds in the flat array (40-byte entries: an insert moves at most
  // 2.5 KiB, a lookup is a binary search of 6 steps), as for Hash::kSmallFieldsMax.
  static constexpr size_t kSmallMembersMax = 64;
  // A big set that drops to this many members goes back to the array; half the bound,
  // so a set hovering around it does not convert on every SADD/SREM.
  static constexpr size_t kShrinkMembersMax = kSmallMembersMax / 2;
  static_assert(kShrinkMembersMax < kSmallMembersMax);

  struct None {};
  using Big = KeyTable<None, SetMemberHasher>;

  Set() noexcept = default;
  Set(Set&&) noexcept = default;
  Set& operator=(Set&&) noexcept = default;

  size_t size() const noexcept { return big_ ? big_->size() : small_.size(); }
  bool empty() const noexcept { return size() == 0; }
  bool is_small() const noexcept { return !big_; }  // for tests

  bool contains(SetMemberKey k) const {
    if (big_) return big_->find_hashed(k.value, k.hash) != big_->end();
    auto it = lower_bound(k);
    return it != small_.end() && it->hash == k.hash && it->value == k.value;
  }

  // Adds the member; true if it was not there. k.hash must be member_hash(k.value).
  bool insert(SetMemberKey k) {
    if (!big_) {
      auto it = lower_bound(k);
      if (it != small_.end() && it->hash == k.hash && it->value == k.value) return false;
      if (small_.size() < kSmallMembersMax) {
        small_.insert(it, SetMember{k.hash, std::string(k.value)});
        return true;
      }
      to_big();
    }
    return big_->try_emplace_hashed(k.value, k.hash).second;
  }

  // Removes the member; true if it was there.
  bool erase(SetMemberKey k) {
    if (big_) {
      auto it = big_->find_hashed(k.value, k.hash);
      if (it == big_->end()) return false;
      big_->erase(it);
      if (big_->size() <= kShrinkMembersMax) to_small();
      return true;
    }
    auto it = lower_bound(k);
    if (it == small_.end() || it->hash != k.hash || it->value != k.value) return false;
    small_.erase(it);
    return true;
  }

  // The member pop_at_or_after(hash) would remove, left in place (a snapshot keeps it first,
  // save_producer.h). REQUIRES: !empty().
  SetMemberKey at_or_after(uint64_t hash) const {
    assert(!empty());
    if (big_) {
      auto it = big_->lower_bound_hash(hash);
      if (it == big_->end()) it = big_->begin();
      return SetMemberKey{it.hash(), it->first.view()};
    }
    auto it = lower_bound(SetMemberKey{hash, std::string_view()});
    if (it == small_.end()) it = small_.begin();
    return SetMemberKey{it->hash, std::string_view(it->value)};
  }

  // Removes and returns the first member whose hash is >= hash, or the first member if
  // there is none (SPOP's pick). REQUIRES: !empty().
  std::string pop_at_or_after(uint64_t hash) {
    assert(!empty());
    if (big_) {
      auto it = big_->lower_bound_hash(hash);
      if (it == big_->end()) it = big_->begin();
      std::string value(it->first.view());
      big_->erase(it);
      if (big_->size() <= kShrinkMembersMax) to_small();
      return value;
    }
    auto it = lower_bound(SetMemberKey{hash, std::string_view()});
    if (it == small_.end()) it = small_.begin();
    std::string value = std::move(it->value);
    small_.erase(it);
    return value;
  }

  // Calls fn(uint64_t hash, std::string_view member) for each member whose hash is >=
  // hash, in (hash, bytes) order, until fn returns false (SSCAN's page: one bucket to
  // start, then O(COUNT)).
  template <class Fn>
  void for_each_from(uint64_t hash, Fn&& fn) const {
    if (big_) {
      for (auto it = big_->lower_bound_hash(hash); it != big_->end(); ++it)
        if (!fn(it.hash(), it->first.view())) return;
    } else {
      for (auto it = lower_bound(SetMemberKey{hash, std::string_view()}); it != small_.end(); ++it)
        if (!fn(it->hash, std::string_view(it->value))) return;
    }
  }

  // Removes up to about `budget` members, for freeing a deleted set a bounded amount at a
  // time (kv.h, Graveyard); returns the work done. A small set goes at once. The set is
  // only to be destroyed or cleared further afterwards, until cleared(). As
  // Hash::clear_some, the node slabs and the bucket array go after the last member, within
  // the budgets.
  size_t clear_some(size_t budget) {
    if (!big_) {
      const size_t n = small_.size();
      std::vector<SetMember>().swap(small_);
      return n;
    }
    const size_t n = big_->drain(budget, [](None&&) {});
    if (big_->drained()) big_.reset();
    return n;
  }
  // True once clear_some left nothing to free: destroying the set then costs nothing.
  bool cleared() const noexcept { return !big_ && small_.empty(); }

  // A place in the (hash, bytes) order, for visiting the members a part at a time (a
  // sliced SMEMBERS, kv.cc): valid while the set does not change.
  struct Cursor {
    Big::const_iterator it{};
    size_t index = 0;
    bool started = false;
  };
  // Calls fn(member) for up to `n` members from the cursor on, moving it; true once every
  // member was visited.
  template <class Fn>
  bool for_each_some(Cursor& c, size_t n, Fn&& fn) const {
    if (big_) {
      if (!c.started) c.it = big_->begin();
      c.started = true;
      for (; c.it != big_->end() && n > 0; ++c.it, n--) fn(c.it->first.view());
      return c.it == big_->end();
    }
    c.started = true;
    for (; c.index < small_.size() && n > 0; c.index++, n--) fn(std::string_view(small_[c.index].value));
    return c.index == small_.size();
  }

  // The member at the cursor and its hash (a cursor not started is at the first member);
  // false once past the last. advance() moves the cursor to the next member. For walking
  // several sets side by side (a lazy SUNION merges them in this order, kv.cc).
  bool at(Cursor& c, SetMemberKey* m) const {
    if (big_) {
      if (!c.started) c.it = big_->begin();
      c.started = true;
      if (c.it == big_->end()) return false;
      *m = SetMemberKey{c.it.hash(), c.it->first.view()};
      return true;
    }
    c.started = true;
    if (c.index >= small_.size()) return false;
    *m = SetMemberKey{small_[c.index].hash, std::string_view(small_[c.index].value)};
    return true;
  }
  // REQUIRES: at(c) returned true.
  void advance(Cursor& c) const {
    if (big_) ++c.it;
    else c.index++;
  }

  // for_each_from a part at a time, for a big set (a sliced SSCAN page, kv.cc): from the
  // cursor (one not started: the first member whose hash is >= hash) calls fn(hash, member)
  // for up to n members, moving the cursor past each fn returned true for; true once fn
  // returned false or the set ended. REQUIRES: !is_small(); the set unchanged meanwhile.
  template <class Fn>
  bool for_each_from_some(uint64_t hash, Cursor& c, size_t n, Fn&& fn) const {
    assert(big_);
    if (!c.started) c.it = big_->lower_bound_hash(hash);
    c.started = true;
    for (; c.it != big_->end(); ++c.it) {
      if (n-- == 0) return false;
      if (!fn(c.it.hash(), c.it->first.view())) return true;
    }
    return true;
  }

  // Calls fn(std::string_view member) for each member in (hash, bytes) order.
  template <class Fn>
  void for_each(Fn&& fn) const {
    if (big_) {
      for (const auto& m : *big_) fn(m.first.view());
    } else {
      for (const SetMember& m : small_) fn(std::string_view(m.value));
    }
  }

 private:
  std::vector<SetMember>::const_iterator lower_bound(SetMemberKey k) const {
    return std::lower_bound(small_.begin(), small_.end(), k, SetLess());
  }
  std::vector<SetMember>::iterator lower_bound(SetMemberKey k) {
    return std::lower_bound(small_.begin(), small_.end(), k, SetLess());
  }

  // The conversions copy, so a failed allocation leaves the set as it was.
  void to_big() {
    auto big = std::make_unique<Big>();
    for (const SetMember& m : small_) big->try_emplace_hashed(m.value, m.hash);
    big_ = std::move(big);
    std::vector<SetMember>().swap(small_);  // give the block back
  }
  void to_small() {
    std::vector<SetMember> small;
    small.reserve(big_->size());
    for (auto it = big_->begin(); it != big_->end(); ++it) small.push_back(SetMember{it.hash(), std::string(it->first.view())});
    small_ = std::move(small);  // the table's order is SetLess order already
    big_.reset();
  }

  // Invariant: exactly one holds the members; small_ is empty (no block) while big_ is
  // set, small_ is sorted by SetLess with no duplicates and holds at most kSmallMembersMax.
  std::vector<SetMember> small_;
  std::unique_ptr<Big> big_;
};

}  // namespace hmdb::kv

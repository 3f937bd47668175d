// apps/kv/set.h — the kv app's set value: members ordered by (XXH3 hash, bytes), in a
// sorted flat array while small and a B-tree once large.
//
// Why: like hashes (hash.h), a set was a boxed absl::btree_set, i.e. a set object and a
// B-tree node per key even for one member. A small set is now one block of up to
// kSmallMembersMax (hash, std::string) entries, found by binary search.
//
// The order is part of the schema (kv.h: SPOP picks the first member whose hash is >= a
// value derived from the log index, wrapping to the first member; SMEMBERS and the snapshot
// list members in this order), and both representations keep exactly it, so which one a
// set uses is invisible.
#pragma once

#include <absl/container/btree_set.h>

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

namespace hmdb::kv {

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
  // A B-tree set that drops to this many members goes back to the array; half the bound,
  // so a set hovering around it does not convert on every SADD/SREM.
  static constexpr size_t kShrinkMembersMax = kSmallMembersMax / 2;
  static_assert(kShrinkMembersMax < kSmallMembersMax);

  using Big = absl::btree_set<SetMember, SetLess>;

  Set() noexcept = default;
  Set(Set&&) noexcept = default;
  Set& operator=(Set&&) noexcept = default;

  size_t size() const noexcept { return big_ ? big_->size() : small_.size(); }
  bool empty() const noexcept { return size() == 0; }
  bool is_small() const noexcept { return !big_; }  // for tests

  bool contains(SetMemberKey k) const {
    if (big_) return big_->find(k) != big_->end();
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
    return big_->insert(SetMember{k.hash, std::string(k.value)}).second;
  }

  // Removes the member; true if it was there.
  bool erase(SetMemberKey k) {
    if (big_) {
      if (big_->erase(k) == 0) return false;
      if (big_->size() <= kShrinkMembersMax) to_small();
      return true;
    }
    auto it = lower_bound(k);
    if (it == small_.end() || it->hash != k.hash || it->value != k.value) return false;
    small_.erase(it);
    return true;
  }

  // Removes and returns the first member whose hash is >= hash, or the first member if
  // there is none (SPOP's pick). REQUIRES: !empty().
  std::string pop_at_or_after(uint64_t hash) {
    assert(!empty());
    const SetMemberKey k{hash, std::string_view()};
    if (big_) {
      auto it = big_->lower_bound(k);
      if (it == big_->end()) it = big_->begin();
      // btree_set elements are const; the node is erased right after, so moving is safe.
      std::string value = std::move(const_cast<SetMember&>(*it).value);
      big_->erase(it);
      if (big_->size() <= kShrinkMembersMax) to_small();
      return value;
    }
    auto it = lower_bound(k);
    if (it == small_.end()) it = small_.begin();
    std::string value = std::move(it->value);
    small_.erase(it);
    return value;
  }

  // Calls fn(uint64_t hash, const std::string& member) for each member whose hash is >=
  // hash, in (hash, bytes) order, until fn returns false (SSCAN's page: O(log n) to start).
  template <class Fn>
  void for_each_from(uint64_t hash, Fn&& fn) const {
    const SetMemberKey k{hash, std::string_view()};
    if (big_) {
      for (auto it = big_->lower_bound(k); it != big_->end(); ++it)
        if (!fn(it->hash, it->value)) return;
    } else {
      for (auto it = lower_bound(k); it != small_.end(); ++it)
        if (!fn(it->hash, it->value)) return;
    }
  }

  // Removes up to `budget` members, for freeing a deleted set a bounded amount at a time
  // (kv.h, Graveyard); returns how many. A small set goes at once. The set is only to be
  // destroyed or cleared further afterwards.
  size_t clear_some(size_t budget) {
    if (!big_) {
      const size_t n = small_.size();
      std::vector<SetMember>().swap(small_);
      return n;
    }
    const size_t n = std::min(budget, big_->size());
    auto first = big_->begin();
    big_->erase(first, std::next(first, static_cast<std::ptrdiff_t>(n)));
    if (big_->empty()) big_.reset();
    return n;
  }

  // Calls fn(const std::string& member) for each member in (hash, bytes) order.
  template <class Fn>
  void for_each(Fn&& fn) const {
    if (big_) {
      for (const SetMember& m : *big_) fn(m.value);
    } else {
      for (const SetMember& m : small_) fn(m.value);
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
    for (const SetMember& m : small_) big->insert(big->end(), m);
    big_ = std::move(big);
    std::vector<SetMember>().swap(small_);  // give the block back
  }
  void to_small() {
    std::vector<SetMember> small(big_->begin(), big_->end());
    small_ = std::move(small);
    big_.reset();
  }

  // Invariant: exactly one holds the members; small_ is empty (no block) while big_ is
  // set, small_ is sorted by SetLess with no duplicates and holds at most kSmallMembersMax.
  std::vector<SetMember> small_;
  std::unique_ptr<Big> big_;
};

}  // namespace hmdb::kv

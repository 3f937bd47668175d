// apps/kv/hash.h — the kv app's hash value: a sorted flat array of (field, value) while
// small, a B-tree once large.
//
// Why: a hash was an absl::btree_map behind a unique_ptr, i.e. a map object, a B-tree node
// and a heap block per field longer than 15 bytes ("element:000000123456") even for a
// one-field hash; an HSET workload on many keys spent most of its CPU allocating and
// freeing those and faulting in their memory. Most hashes in such a keyspace are small.
// Like Redis' listpack encoding, a small hash is one block: up to kSmallFieldsMax entries
// of (Key field, std::string value) sorted by field bytes, found by binary search. A field
// of up to 31 bytes and a value of up to 15 live inside the entry.
//
// The representation is invisible: iteration (HGETALL, the snapshot, the digest) is in
// field byte order either way. It depends on the hash's history (a hash that shrank
// below kSmallFieldsMax may stay a B-tree until kShrinkFieldsMax), which is fine because
// nothing observable or encoded depends on it.
#pragma once

#include <absl/container/btree_map.h>

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kv/key.h"

namespace hmdb::kv {

class Hash {
 public:
  // Most fields a hash holds in the flat array. An insert or erase in the array moves up
  // to this many 64-byte entries (4 KiB), and a lookup is a binary search of 6 steps; above
  // it the B-tree's O(log n) pays. Redis' default hash-max-listpack-entries is 128 with a
  // linear scan; 64 keeps the worst insert well under a microsecond.
  static constexpr size_t kSmallFieldsMax = 64;
  // A B-tree hash that drops to this many fields goes back to the flat array. Half of
  // kSmallFieldsMax, so a hash whose size hovers around the bound does not convert back
  // and forth on every HSET/HDEL.
  static constexpr size_t kShrinkFieldsMax = kSmallFieldsMax / 2;
  static_assert(kShrinkFieldsMax < kSmallFieldsMax);

  using Big = absl::btree_map<std::string, std::string, std::less<>>;

  Hash() noexcept = default;
  Hash(Hash&&) noexcept = default;
  Hash& operator=(Hash&&) noexcept = default;

  size_t size() const noexcept { return big_ ? big_->size() : small_.size(); }
  bool empty() const noexcept { return size() == 0; }
  bool is_small() const noexcept { return !big_; }  // for tests and INFO-style checks

  // The value of field, or null.
  const std::string* find(std::string_view field) const {
    if (big_) {
      auto it = big_->find(field);
      return it == big_->end() ? nullptr : &it->second;
    }
    auto it = lower_bound(field);
    return it != small_.end() && it->field.view() == field ? &it->value : nullptr;
  }
  std::string* find(std::string_view field) {
    return const_cast<std::string*>(static_cast<const Hash*>(this)->find(field));
  }

  // The value of field, inserted empty if it was absent; *inserted says which.
  std::string& find_or_insert(std::string_view field, bool* inserted) {
    if (!big_) {
      auto it = lower_bound(field);
      if (it != small_.end() && it->field.view() == field) {
        *inserted = false;
        return it->value;
      }
      if (small_.size() < kSmallFieldsMax) {
        *inserted = true;
        return small_.insert(it, Entry{Key(field), std::string()})->value;
      }
      to_big();
    }
    auto [it, fresh] = big_->try_emplace(std::string(field));
    *inserted = fresh;
    return it->second;
  }

  // Sets field to value; true if the field is new.
  bool set(std::string_view field, std::string_view value) {
    bool inserted;
    find_or_insert(field, &inserted).assign(value.data(), value.size());
    return inserted;
  }

  // Removes field; true if it was there.
  bool erase(std::string_view field) {
    if (big_) {
      if (big_->erase(field) == 0) return false;
      if (big_->size() <= kShrinkFieldsMax) to_small();
      return true;
    }
    auto it = lower_bound(field);
    if (it == small_.end() || it->field.view() != field) return false;
    small_.erase(it);
    return true;
  }

  // Removes up to `budget` fields, for freeing a deleted hash a bounded amount at a time
  // (kv.h, Graveyard); returns how many. A small hash goes at once (at most
  // kSmallFieldsMax). The hash is only to be destroyed or cleared further afterwards.
  size_t clear_some(size_t budget) {
    if (!big_) {
      const size_t n = small_.size();
      std::vector<Entry>().swap(small_);
      return n;
    }
    const size_t n = std::min(budget, big_->size());
    auto first = big_->begin();
    big_->erase(first, std::next(first, static_cast<std::ptrdiff_t>(n)));
    if (big_->empty()) big_.reset();
    return n;
  }

  // Calls fn(std::string_view field, const std::string& value) for each field in byte order.
  template <class Fn>
  void for_each(Fn&& fn) const {
    if (big_) {
      for (const auto& [field, value] : *big_) fn(std::string_view(field), value);
    } else {
      for (const Entry& e : small_) fn(e.field.view(), e.value);
    }
  }

 private:
  struct Entry {
    Key field;
    std::string value;
  };

  std::vector<Entry>::const_iterator lower_bound(std::string_view field) const {
    return std::lower_bound(small_.begin(), small_.end(), field,
                            [](const Entry& e, std::string_view f) { return e.field.view() < f; });
  }
  std::vector<Entry>::iterator lower_bound(std::string_view field) {
    return std::lower_bound(small_.begin(), small_.end(), field,
                            [](const Entry& e, std::string_view f) { return e.field.view() < f; });
  }

  // The conversions copy (once per kShrinkFieldsMax changes at least), so a failed
  // allocation leaves the hash as it was.
  void to_big() {
    auto big = std::make_unique<Big>();
    for (const Entry& e : small_) big->emplace_hint(big->end(), std::string(e.field.view()), e.value);
    big_ = std::move(big);
    std::vector<Entry>().swap(small_);  // give the block back
  }
  void to_small() {
    std::vector<Entry> small;
    small.reserve(big_->size());
    for (const auto& [field, value] : *big_) small.push_back(Entry{Key(field), value});
    small_ = std::move(small);
    big_.reset();
  }

  // Invariant: exactly one holds the fields; small_ is empty (no block) while big_ is set,
  // small_ is sorted by field bytes with no duplicates and holds at most kSmallFieldsMax.
  std::vector<Entry> small_;
  std::unique_ptr<Big> big_;
};

}  // namespace hmdb::kv

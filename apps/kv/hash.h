// apps/kv/hash.h — the kv app's hash value: a sorted flat array of (field, value) while
// small, a hash table (key_table.h) once large; fields listed in (XXH3(field), field) order.
//
// Why: a hash was an absl::btree_map behind a unique_ptr, i.e. a map object, a B-tree node
// and a heap block per field longer than 15 bytes ("element:000000123456") even for a
// one-field hash; an HSET workload on many keys spent most of its CPU allocating and
// freeing those and faulting in their memory. Most hashes in such a keyspace are small.
// Like Redis' listpack encoding, a small hash is one block: up to kSmallFieldsMax entries
// of (Key field, std::string value) sorted by field bytes, found by binary search. A field
// of up to 31 bytes and a value of up to 15 live inside the entry.
//
// A big hash (redis-benchmark's HSET grows one to a million fields) is a KeyTable: one
// bucket and one node per lookup, where the B-tree it replaced (3-4 64-byte entries per
// node, ~13 levels at 1 M fields, a heap string compared at each) cost ~3 µs per HSET
// against Redis' ~1.4. The table grows and shrinks a few buckets per insert and erase, so
// no HSET stalls the loop to rehash a million fields.
//
// Order. The fields are listed (HGETALL, HKEYS, HVALS, the snapshot) in (h, field bytes)
// order, h = XXH3(field): the table's own order, which depends only on the fields, never
// on the table's size or resize progress, and also the HSCAN position (kv.cc). A small hash
// sorts its few entries into that order as it lists them (for_each), so which
// representation a hash uses is invisible. Snapshots written when fields were listed in
// byte order load the same (load() takes fields in any order). The digest keeps hashing a
// hash's fields in byte order (for_each_in_byte_order) so that nodes of either binary agree.
#pragma once

#include <algorithm>
#include <array>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kv/key.h"
#include "kv/key_table.h"

namespace hmdb::kv {

class Hash {
 public:
  // Most fields a hash holds in the flat array. An insert or erase in the array moves up
  // to this many 64-byte entries (4 KiB), and a lookup is a binary search of 6 steps; above
  // it the table's O(1) pays. Redis' default hash-max-listpack-entries is 128 with a
  // linear scan; 64 keeps the worst insert well under a microsecond.
  static constexpr size_t kSmallFieldsMax = 64;
  // A big hash that drops to this many fields goes back to the flat array. Half of
  // kSmallFieldsMax, so a hash whose size hovers around the bound does not convert back
  // and forth on every HSET/HDEL.
  static constexpr size_t kShrinkFieldsMax = kSmallFieldsMax / 2;
  static_assert(kShrinkFieldsMax < kSmallFieldsMax);

  using Big = KeyTable<std::string>;

  // A field's place in the order (and its HSCAN position): XXH3 of its bytes.
  static uint64_t field_hash(std::string_view field) { return Big::hash_of(field); }

  Hash() noexcept = default;
  Hash(Hash&&) noexcept = default;
  Hash& operator=(Hash&&) noexcept = default;

  size_t size() const noexcept { return big_ ? big_->size() : small_.size(); }
  bool empty() const noexcept { return size() == 0; }
  bool is_small() const noexcept { return !big_; }  // for tests and OBJECT ENCODING

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
    auto [it, fresh] = big_->try_emplace(field);
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

  // Removes up to about `budget` fields, for freeing a deleted hash a bounded amount at a
  // time (kv.h, Graveyard); returns the work done. A small hash goes at once (at most
  // kSmallFieldsMax). The hash is only to be destroyed or cleared further afterwards, until
  // cleared(). After its last field the table's node slabs (handed to the prefault thread:
  // ~40 of 2 MiB at 1 M fields, key_table.h, free_block) and its bucket array (unmapped 64
  // KiB a step: 128 MiB at 10 M fields) go within the budgets too (KeyTable::drain).
  size_t clear_some(size_t budget) {
    if (!big_) {
      const size_t n = small_.size();
      std::vector<Entry>().swap(small_);
      return n;
    }
    const size_t n = big_->drain(budget, [](std::string&&) {});
    if (big_->drained()) big_.reset();
    return n;
  }
  // True once clear_some left nothing to free: destroying the hash then costs nothing.
  bool cleared() const noexcept { return !big_ && small_.empty(); }

  // Calls fn(std::string_view field, const std::string& value) for each field in
  // (field_hash, bytes) order.
  template <class Fn>
  void for_each(Fn&& fn) const {
    if (big_) {
      for (const auto& [field, value] : *big_) fn(field.view(), value);
      return;
    }
    // The array is in byte order: sort its (at most kSmallFieldsMax) indexes by hash.
    std::array<std::pair<uint64_t, uint8_t>, kSmallFieldsMax> order;
    static_assert(kSmallFieldsMax <= 256, "indexes fit a byte");
    const size_t n = small_.size();
    for (size_t i = 0; i < n; i++) order[i] = {field_hash(small_[i].field.view()), static_cast<uint8_t>(i)};
    // Equal hashes: the index order is byte order, as the table's chains.
    std::sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n));
    for (size_t i = 0; i < n; i++) {
      const Entry& e = small_[order[i].second];
      fn(e.field.view(), e.value);
    }
  }

  // A place in for_each's order, for visiting the fields a part at a time (a sliced
  // HGETALL, kv.cc): valid while the hash does not change.
  struct Cursor {
    Big::const_iterator it{};
    bool started = false;
  };
  // Calls fn(field, value) for up to `n` fields from the cursor on (a small hash's, at most
  // kSmallFieldsMax, all at once), moving it; true once every field was visited.
  template <class Fn>
  bool for_each_some(Cursor& c, size_t n, Fn&& fn) const {
    if (!big_) {
      if (!c.started) for_each(fn);
      c.started = true;
      return true;
    }
    if (!c.started) c.it = big_->begin();
    c.started = true;
    for (; c.it != big_->end() && n > 0; ++c.it, n--) fn(c.it->first.view(), c.it->second);
    return c.it == big_->end();
  }

  // Calls fn(uint64_t field_hash, std::string_view field, const std::string& value) for
  // each field whose field_hash is >= h, in for_each's order, until fn returns false (a
  // big hash's HSCAN page: one bucket to start, then O(COUNT)).
  template <class Fn>
  void for_each_from(uint64_t h, Fn&& fn) const {
    if (big_) {
      for (auto it = big_->lower_bound_hash(h); it != big_->end(); ++it)
        if (!fn(it.hash(), it->first.view(), it->second)) return;
      return;
    }
    bool go = true;
    for_each([&](std::string_view f, const std::string& v) {
      if (!go) return;
      const uint64_t fh = field_hash(f);
      if (fh >= h) go = fn(fh, f, v);
    });
  }

  // for_each_from a part at a time, for a big hash (a sliced HSCAN page, kv.cc): from the
  // cursor (one not started: the first field whose hash is >= h) calls fn(field_hash,
  // field, value) for up to n fields, moving the cursor past each fn returned true for; true
  // once fn returned false or the hash ended. REQUIRES: !is_small(); unchanged meanwhile.
  template <class Fn>
  bool for_each_from_some(uint64_t h, Cursor& c, size_t n, Fn&& fn) const {
    assert(big_);
    if (!c.started) c.it = big_->lower_bound_hash(h);
    c.started = true;
    for (; c.it != big_->end(); ++c.it) {
      if (n-- == 0) return false;
      if (!fn(c.it.hash(), c.it->first.view(), c.it->second)) return true;
    }
    return true;
  }

  // Calls fn(std::string_view field, const std::string& value) for each field in byte
  // order: the order fields were listed in before hashes were hash tables, which the
  // digest keeps (so nodes of either binary compare equal). O(n log n) for a big hash.
  template <class Fn>
  void for_each_in_byte_order(Fn&& fn) const {
    if (!big_) {
      for (const Entry& e : small_) fn(e.field.view(), e.value);
      return;
    }
    std::vector<const Big::value_type*> fields;
    fields.reserve(big_->size());
    for (const auto& kv : *big_) fields.push_back(&kv);
    std::sort(fields.begin(), fields.end(),
              [](const Big::value_type* a, const Big::value_type* b) { return a->first.view() < b->first.view(); });
    for (const Big::value_type* kv : fields) fn(kv->first.view(), kv->second);
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
    for (const Entry& e : small_) big->try_emplace(e.field.view(), e.value);
    big_ = std::move(big);
    std::vector<Entry>().swap(small_);  // give the block back
  }
  void to_small() {
    std::vector<Entry> small;
    small.reserve(big_->size());
    for (const auto& [field, value] : *big_) small.push_back(Entry{Key(field.view()), value});
    std::sort(small.begin(), small.end(),
              [](const Entry& a, const Entry& b) { return a.field.view() < b.field.view(); });
    small_ = std::move(small);
    big_.reset();
  }

  // Invariant: exactly one holds the fields; small_ is empty (no block) while big_ is set,
  // small_ is sorted by field bytes with no duplicates and holds at most kSmallFieldsMax.
  std::vector<Entry> small_;
  std::unique_ptr<Big> big_;
};

}  // namespace hmdb::kv

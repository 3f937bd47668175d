// apps/kv/sharded_map.h — the kv key table: kKeyShards independent Swiss tables, a key's
// table chosen by the top bits of its hash.
//
// Why: a Swiss table grows by doubling and rehashes every key in one step. One table of
// ~7M keys took a single event-loop turn of 0.66-0.82 s to grow (bench/README.md, snapshot
// stall), longer than a cluster leader's 200 ms election timeout. Split in kKeyShards
// tables, each grows on its own and the longest step moves 1/kKeyShards of the keys.
// find() hashes the key once (the table is given the hash); try_emplace and erase hash it
// twice.
//
// The interface is the subset of absl::flat_hash_map the kv app uses, with the same
// meaning: find, try_emplace, erase (by iterator or key), size, empty, reserve, prefetch,
// begin/end. Iteration visits the shards in order; the order is not part of any reply, the
// snapshot format does not fix it and the digest does not depend on it (kv.h).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>
#include <utility>

namespace hmdb::kv {

// Tables of the key table. A power of two (the shard is the hash's top bits). 64: at 10M
// keys each holds ~160k keys (an 11 MiB slot array that grows in ~10 ms), and the 64
// empty tables of a small database cost nothing.
inline constexpr size_t kKeyShards = 64;
static_assert((kKeyShards & (kKeyShards - 1)) == 0);

template <class Map>
class ShardedMap {
 public:
  using key_type = typename Map::key_type;
  using mapped_type = typename Map::mapped_type;
  using value_type = typename Map::value_type;

  template <bool kConst>
  class Iter {
    using Outer = std::conditional_t<kConst, const ShardedMap, ShardedMap>;
    using Inner = std::conditional_t<kConst, typename Map::const_iterator, typename Map::iterator>;

   public:
    Iter() = default;
    Iter(Outer* m, size_t shard, Inner in) : m_(m), shard_(shard), in_(in) { skip_empty(); }
    // iterator -> const_iterator, as the standard containers allow.
    template <bool kOther, class = std::enable_if_t<kConst && !kOther>>
    Iter(const Iter<kOther>& o) : m_(o.m_), shard_(o.shard_), in_(o.in_) {}  // NOLINT

    auto& operator*() const { return *in_; }
    auto* operator->() const { return &*in_; }
    Iter& operator++() {
      ++in_;
      skip_empty();
      return *this;
    }
    bool operator==(const Iter& o) const { return shard_ == o.shard_ && (shard_ == kKeyShards || in_ == o.in_); }
    bool operator!=(const Iter& o) const { return !(*this == o); }

   private:
    friend class ShardedMap;
    template <bool>
    friend class Iter;
    // At the end of a shard's table: on to the next shard that has an element, or end().
    void skip_empty() {
      while (shard_ < kKeyShards && in_ == m_->shards_[shard_].end()) {
        if (++shard_ < kKeyShards) in_ = m_->shards_[shard_].begin();
      }
    }
    Outer* m_ = nullptr;
    size_t shard_ = kKeyShards;  // kKeyShards: end()
    Inner in_{};
  };
  using iterator = Iter<false>;
  using const_iterator = Iter<true>;

  iterator begin() { return iterator(this, 0, shards_[0].begin()); }
  iterator end() { return iterator(this, kKeyShards, {}); }
  const_iterator begin() const { return const_iterator(this, 0, shards_[0].begin()); }
  const_iterator end() const { return const_iterator(this, kKeyShards, {}); }

  size_t size() const {
    size_t n = 0;
    for (const Map& m : shards_) n += m.size();
    return n;
  }
  size_t shard_size(size_t shard) const { return shards_[shard].size(); }  // tests, INFO
  bool empty() const {
    for (const Map& m : shards_)
      if (!m.empty()) return false;
    return true;
  }

  // Room for n keys in all: each table gets its share plus a margin for the uneven spread
  // (a few tables may still grow once, each by a small step).
  void reserve(size_t n) {
    const size_t each = n / kKeyShards + n / kKeyShards / 16 + 64;
    for (Map& m : shards_) m.reserve(each);
  }

  // The lookups hash the key once: the table's own hasher picks the shard, and the table
  // is given that hash instead of computing it again.
  iterator find(std::string_view key) {
    const size_t h = hash(key);
    const size_t s = shard_of_hash(h);
    auto in = shards_[s].find(key, h);
    return in == shards_[s].end() ? end() : iterator(this, s, in);
  }
  const_iterator find(std::string_view key) const {
    const size_t h = hash(key);
    const size_t s = shard_of_hash(h);
    auto in = shards_[s].find(key, h);
    return in == shards_[s].end() ? end() : const_iterator(this, s, in);
  }

  template <class... Args>
  std::pair<iterator, bool> try_emplace(std::string_view key, Args&&... args) {
    const size_t s = shard_of(key);
    auto [in, inserted] = shards_[s].try_emplace(key, std::forward<Args>(args)...);
    return {iterator(this, s, in), inserted};
  }

  void erase(iterator it) { shards_[it.shard_].erase(it.in_); }
  size_t erase(std::string_view key) { return shards_[shard_of(key)].erase(key); }

  void prefetch(std::string_view key) const { shards_[shard_of(key)].prefetch(key); }

 private:
  static size_t hash(std::string_view key) { return typename Map::hasher{}(key); }
  // The top bits: the table itself places keys by the low bits, so the keys of one shard
  // still spread over all of its slots.
  static size_t shard_of_hash(size_t h) { return (static_cast<uint64_t>(h) >> 58) & (kKeyShards - 1); }
  static size_t shard_of(std::string_view key) { return shard_of_hash(hash(key)); }
  static_assert(kKeyShards <= 64, "shard_of_hash takes the hash's top 6 bits");
  static_assert(sizeof(size_t) == 8, "the shard comes from a 64-bit hash");

  std::array<Map, kKeyShards> shards_;
};

}  // namespace hmdb::kv

// tests/apps/kv_sharded_map_test.cc — the kv key table (apps/kv/sharded_map.h) against a
// std::map model: find/try_emplace/erase by key and by iterator, size, iteration that visits
// every key once across the shards, const iterators, and reserve.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <string>

#include "kv/kv.h"

namespace hmdb::kv {
namespace {

using Table = ShardedMap<StringMap<int>>;

std::string key_of(uint64_t i) { return "key:" + std::to_string(i); }

TEST(KvShardedMap, EmptyTableHasNoElements) {
  Table t;
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.size(), 0u);
  EXPECT_TRUE(t.begin() == t.end());
  EXPECT_TRUE(t.find("absent") == t.end());
  EXPECT_EQ(t.erase("absent"), 0u);
}

TEST(KvShardedMap, MatchesAModelUnderRandomOperations) {
  for (uint64_t seed : {1, 2, 3}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    Table t;
    std::map<std::string, int> model;
    for (int step = 0; step < 20000; step++) {
      const std::string k = key_of(rng() % 3000);
      switch (rng() % 4) {
        case 0: {  // insert or keep
          const int v = static_cast<int>(rng() % 1000);
          auto [it, inserted] = t.try_emplace(k, v);
          auto [mit, minserted] = model.try_emplace(k, v);
          ASSERT_EQ(inserted, minserted);
          ASSERT_EQ(it->first.view(), k);
          ASSERT_EQ(it->second, mit->second);
          break;
        }
        case 1: {  // find and update through the iterator
          auto it = t.find(k);
          auto mit = model.find(k);
          ASSERT_EQ(it == t.end(), mit == model.end());
          if (it != t.end()) {
            it->second++;
            mit->second++;
          }
          break;
        }
        case 2:  // erase by key
          ASSERT_EQ(t.erase(k), model.erase(k));
          break;
        case 3: {  // erase by iterator
          auto it = t.find(k);
          if (it != t.end()) {
            t.erase(it);
            model.erase(k);
          }
          break;
        }
      }
      ASSERT_EQ(t.size(), model.size());
    }
    // Iteration visits every key exactly once, with its value, across all shards.
    std::set<std::string> seen;
    for (const auto& [key, value] : t) {
      ASSERT_TRUE(seen.insert(std::string(key.view())).second) << "visited twice: " << key.view();
      ASSERT_EQ(model.at(std::string(key.view())), value);
    }
    EXPECT_EQ(seen.size(), model.size());
    EXPECT_EQ(t.empty(), model.empty());
  }
}

TEST(KvShardedMap, ConstLookupsAndIteratorConversion) {
  Table t;
  for (uint64_t i = 0; i < 500; i++) t.try_emplace(key_of(i), static_cast<int>(i));
  const Table& c = t;
  auto cit = c.find(key_of(42));
  ASSERT_TRUE(cit != c.end());
  EXPECT_EQ(cit->second, 42);
  EXPECT_TRUE(c.find(key_of(500)) == c.end());
  Table::const_iterator converted = t.find(key_of(7));
  EXPECT_EQ(converted->second, 7);
  size_t n = 0;
  for (auto it = c.begin(); it != c.end(); ++it) n++;
  EXPECT_EQ(n, 500u);
}

// The point of the shards: keys spread over all of them, so no single table holds (and
// must rehash) more than a small share.
TEST(KvShardedMap, KeysSpreadOverEveryShardAndReserveKeepsThemAll) {
  Table t;
  t.reserve(100000);
  for (uint64_t i = 0; i < 100000; i++) t.try_emplace(key_of(i), 0);
  EXPECT_EQ(t.size(), 100000u);
  const size_t mean = 100000 / kKeyShards;  // 1562
  for (size_t s = 0; s < kKeyShards; s++) {
    EXPECT_GT(t.shard_size(s), mean / 2) << "shard " << s;
    EXPECT_LT(t.shard_size(s), mean * 3 / 2) << "shard " << s;
  }
  for (uint64_t i = 0; i < 100000; i += 997) ASSERT_TRUE(t.find(key_of(i)) != t.end());
  for (uint64_t i = 0; i < 100000; i++) t.prefetch(key_of(i));  // a hint only: nothing changes
  EXPECT_EQ(t.size(), 100000u);
}

}  // namespace
}  // namespace hmdb::kv

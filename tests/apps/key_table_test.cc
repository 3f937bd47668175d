// tests/apps/key_table_test.cc — kv::KeyTable (apps/kv/key_table.h) against a model
// (std::unordered_map) through random inserts, overwrites and erases across growth and
// shrink, its canonical iteration order, and the bounds of a resize step.
#include "kv/key_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace hmdb::kv {
namespace {

using Table = KeyTable<std::string>;

// The order the table promises: (XXH3(key), key bytes).
std::vector<std::string> canonical_order(const std::unordered_map<std::string, std::string>& model) {
  std::vector<std::pair<uint64_t, std::string>> v;
  for (const auto& [k, _] : model) v.emplace_back(Table::hash_of(k), k);
  std::sort(v.begin(), v.end());
  std::vector<std::string> out;
  for (auto& [_, k] : v) out.push_back(k);
  return out;
}

std::vector<std::string> iteration(const Table& t) {
  std::vector<std::string> out;
  for (const auto& [k, v] : t) out.emplace_back(k.view());
  return out;
}

// Everything a snapshot would write, in iteration order.
std::string bytes_of(const Table& t) {
  std::string out;
  for (const auto& [k, v] : t) {
    out += k.view();
    out += '=';
    out += v;
    out += ';';
  }
  return out;
}

void expect_same(const Table& t, const std::unordered_map<std::string, std::string>& model) {
  ASSERT_EQ(t.size(), model.size());
  for (const auto& [k, v] : model) {
    auto it = t.find(k);
    ASSERT_NE(it, t.end()) << k;
    ASSERT_EQ(it->second, v) << k;
  }
  ASSERT_EQ(iteration(t), canonical_order(model));
}

uint64_t seed_from_env(uint64_t fallback) {
  const char* s = std::getenv("KEY_TABLE_SEED");
  return s ? std::strtoull(s, nullptr, 10) : fallback;
}

// Random ops in phases: grow to ~19,000 keys (several doublings), shrink to a few hundred
// (several halvings), grow again; checked against the model all along (a lookup per op),
// fully whenever a resize starts or ends and every 9973 ops.
TEST(KeyTable, MatchesModelAcrossGrowthAndShrink) {
  for (uint64_t base : {1u, 2u, 3u}) {
    const uint64_t seed = seed_from_env(base);
    SCOPED_TRACE("seed " + std::to_string(seed) + " (KEY_TABLE_SEED=" + std::to_string(seed) + " to repeat)");
    std::mt19937_64 rng(seed);
    Table t;
    std::unordered_map<std::string, std::string> model;
    size_t max_buckets = 0, min_buckets_after_peak = SIZE_MAX, resizes_seen = 0;
    bool was_rehashing = false;
    const size_t kKeySpace = 20000;
    auto random_key = [&] { return "key:" + std::to_string(rng() % kKeySpace); };
    struct Phase {
      size_t ops;
      int insert_percent;
    };
    const Phase phases[] = {{80000, 95}, {150000, 2}, {60000, 90}};
    size_t op = 0;
    for (const Phase& phase : phases) {
      for (size_t i = 0; i < phase.ops; i++, op++) {
        const std::string k = random_key();
        const int dice = static_cast<int>(rng() % 100);
        if (dice < phase.insert_percent) {
          const std::string v = "v" + std::to_string(rng());
          auto [it, inserted] = t.try_emplace(k, v);
          auto [mit, minserted] = model.try_emplace(k, v);
          ASSERT_EQ(inserted, minserted) << "op " << op;
          ASSERT_EQ(it->first.view(), k);
          if (!inserted) {
            it->second = v;
            mit->second = v;
          }
        } else {
          ASSERT_EQ(t.erase(k), model.erase(k)) << "op " << op;
        }
        if (t.rehashing() && !was_rehashing) resizes_seen++;
        const bool transition = t.rehashing() != was_rehashing;
        was_rehashing = t.rehashing();
        max_buckets = std::max(max_buckets, t.bucket_count());
        if (max_buckets >= 32768) min_buckets_after_peak = std::min(min_buckets_after_peak, t.bucket_count());
        const std::string probe = random_key();
        ASSERT_EQ(t.contains(probe), model.count(probe) == 1) << "op " << op << " " << probe;
        if (transition || op % 9973 == 0) {
          ASSERT_NO_FATAL_FAILURE(expect_same(t, model)) << "op " << op;
        }
      }
      ASSERT_NO_FATAL_FAILURE(expect_same(t, model));
    }
    // The run exercised what it claims to: many resizes, a big table, and a shrink from it.
    EXPECT_GE(resizes_seen, 16u);
    EXPECT_GE(max_buckets, 32768u);
    EXPECT_LE(min_buckets_after_peak, 4096u);
  }
}

// The iteration (so the snapshot) depends only on the contents: tables with different
// histories and resize schedules — one loaded after reserve(), one grown key by key, one
// that held and lost many other keys and is in the middle of a shrink — give the same bytes.
TEST(KeyTable, IterationDependsOnContentsOnly) {
  const uint64_t seed = seed_from_env(7);
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::vector<std::pair<std::string, std::string>> kv;
  for (int i = 0; i < 20000; i++) kv.emplace_back("k" + std::to_string(rng()), std::to_string(i));

  Table reserved;
  reserved.reserve(kv.size());
  for (auto& [k, v] : kv) reserved.try_emplace(k, v);
  EXPECT_FALSE(reserved.rehashing());

  Table grown;
  for (auto it = kv.rbegin(); it != kv.rend(); ++it) grown.try_emplace(it->first, it->second);

  Table churned;
  for (int i = 0; i < 200000; i++) churned.try_emplace("other" + std::to_string(i), "x");
  for (auto& [k, v] : kv) churned.try_emplace(k, v);
  bool caught_mid_resize = false;
  for (int i = 0; i < 200000; i++) {
    churned.erase("other" + std::to_string(i));
    if (churned.rehashing() && i > 190000) {
      // Compare in the middle of a resize too.
      std::unordered_map<std::string, std::string> model(kv.begin(), kv.end());
      for (int j = i + 1; j < 200000; j++) model.emplace("other" + std::to_string(j), "x");
      std::vector<std::string> keys;
      for (const auto& [k, _] : churned) keys.emplace_back(k.view());
      ASSERT_EQ(keys, canonical_order(model));
      caught_mid_resize = true;
      break;
    }
  }
  EXPECT_TRUE(caught_mid_resize) << "the test meant to compare during a shrink";
  for (int i = 0; i < 200000; i++) churned.erase("other" + std::to_string(i));

  const std::string expected = bytes_of(reserved);
  EXPECT_TRUE(bytes_of(grown) == expected) << "a table grown key by key iterates differently";
  EXPECT_TRUE(bytes_of(churned) == expected) << "a table that shrank iterates differently";
}

// A resize is spread over many operations: the insert that starts a doubling of a 2^17-
// bucket table moves no more than kRehashBucketsPerStep buckets, and the resize ends before
// the table needs the next one (its new array is mapped: the steps wait kPrefaultLeadSteps,
// at most n/4, for the prefault thread first).
TEST(KeyTable, ResizeIsIncremental) {
  Table t;
  const size_t n = size_t{1} << 17;
  for (size_t i = 0; i < n; i++) t.try_emplace("k" + std::to_string(i), "v");
  ASSERT_FALSE(t.rehashing());
  ASSERT_EQ(t.bucket_count(), n);
  t.try_emplace("one more", "v");
  ASSERT_TRUE(t.rehashing()) << "the doubling starts here and is not done in one call";
  size_t ops = 1;
  while (t.rehashing()) {
    t.try_emplace("more" + std::to_string(ops), "v");
    ops++;
    ASSERT_LE(ops, std::min(kPrefaultLeadSteps, n / 4) + n / kRehashBucketsPerStep + 1)
        << "every insert after the wait moves at least one bucket's worth";
  }
  // At kRehashBucketsPerStep (plus the empty buckets each step may skip) it takes at least
  // n / (kRehashBucketsPerStep * (1 + kRehashEmptyVisitsPerBucket)) inserts.
  EXPECT_GE(ops, n / (kRehashBucketsPerStep * (1 + kRehashEmptyVisitsPerBucket)));
  EXPECT_EQ(t.bucket_count(), 2 * n);
  EXPECT_EQ(t.size(), n + ops);
}

// An in-order walk mid-resize reads only the new array's buckets that the moved old ones
// went to, then the old array from the rehash point: never the new array's empty rest (at
// 20 M keys mid-doubling, 16 M buckets read in one snapshot slice's step, a 245 ms turn).
// Checked a fifth into a doubling and into a halving, with the walk's order.
TEST(KeyTable, AWalkMidResizeSkipsTheNewArraysUnfilledRest) {
  auto walk_reads = [](const Table& t) {
    const size_t before = t.walk_visits();
    size_t n = 0;
    for (auto it = t.begin(); it != t.end(); ++it) n++;
    EXPECT_EQ(n, t.size());
    return t.walk_visits() - before;
  };
  std::unordered_map<std::string, std::string> model;
  Table t;
  const size_t n = size_t{1} << 16;
  for (size_t i = 0; i < n; i++) {
    t.try_emplace("k" + std::to_string(i), "v");
    model.emplace("k" + std::to_string(i), "v");
  }
  ASSERT_FALSE(t.rehashing());
  // Into the doubling (an array this small is calloc'd: no prefault lead): n/16 steps move
  // n/8 old buckets and skip some empty ones, ~a fifth of the n.
  const size_t steps = n / 16;
  for (size_t added = 0; added < steps; added++) {
    std::string k = "more" + std::to_string(added);
    t.try_emplace(k, "v");
    model.emplace(k, "v");
    ASSERT_TRUE(t.rehashing()) << "after " << added + 1 << " inserts of " << steps;
  }
  ASSERT_EQ(t.bucket_count(), 2 * n);
  ASSERT_EQ(iteration(t), canonical_order(model));
  // Moved: about n/2 of the new array's 2n buckets; the old array's rest: about 3n/4.
  EXPECT_LT(walk_reads(t), 2 * n) << "the walk read the new array's unfilled buckets";
  // lower_bound from the last moved bucket's hash onward crosses the same point.
  const size_t before = t.walk_visits();
  auto it = t.lower_bound_hash(uint64_t{1} << 62);  // a quarter into the hash space
  ASSERT_NE(it, t.end());
  EXPECT_LT(t.walk_visits() - before, n) << "lower_bound read the new array's unfilled buckets";

  // A halving: erase down to a sixteenth, then a quarter of its steps.
  Table s;
  std::vector<std::string> keys;
  for (size_t i = 0; i < n; i++) keys.push_back("h" + std::to_string(i));
  for (const auto& k : keys) s.try_emplace(k, "v");
  for (size_t i = 0; i < 4 * n && s.rehashing(); i++) s.step();  // finish any doubling
  ASSERT_FALSE(s.rehashing());
  size_t erased = 0;
  while (!s.rehashing() && erased < keys.size()) s.erase(keys[erased++]);
  ASSERT_TRUE(s.rehashing()) << "no halving started";
  ASSERT_LT(s.bucket_count(), n);
  for (size_t i = 0; i < 16 && s.rehashing(); i++) s.step();
  if (s.rehashing()) {
    EXPECT_LT(walk_reads(s), 2 * n) << "the walk mid-halving read too many buckets";
  }
  std::unordered_map<std::string, std::string> left;
  for (size_t i = erased; i < keys.size(); i++) left.emplace(keys[i], "v");
  EXPECT_EQ(iteration(s), canonical_order(left));
}

// Values never move: a pointer into the table survives a whole doubling.
TEST(KeyTable, ValuesStayPutAcrossResizes) {
  Table t;
  auto [it, inserted] = t.try_emplace("anchor", "value");
  std::string* p = &it->second;
  for (int i = 0; i < 100000; i++) t.try_emplace("k" + std::to_string(i), "v");
  for (int i = 0; i < 100000; i++) t.erase("k" + std::to_string(i));
  EXPECT_EQ(&t.find("anchor")->second, p);
  EXPECT_EQ(*p, "value");
  EXPECT_EQ(t.size(), 1u);
}

// drain() empties a table in bounded steps and hands every value to the callback once.
TEST(KeyTable, DrainInBoundedSteps) {
  Table t;
  for (int i = 0; i < 50000; i++) t.try_emplace("k" + std::to_string(i), std::to_string(i));
  for (int i = 0; i < 20000; i++) t.try_emplace("more" + std::to_string(i), "m");  // mid-resize, probably
  size_t values = 0, calls = 0;
  while (!t.drained()) {
    size_t done = t.drain(1000, [&](std::string&&) { values++; });
    ASSERT_LE(done, std::max<size_t>(1000, kDrainSlabUnits));
    calls++;
    ASSERT_LT(calls, 1000u);
  }
  EXPECT_EQ(values, 70000u);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_GE(calls, 70u);
}

// Keys longer than Key's inline bytes, empty keys and keys differing only in late bytes.
TEST(KeyTable, OddKeys) {
  Table t;
  std::unordered_map<std::string, std::string> model;
  std::vector<std::string> keys = {"", std::string(1, '\0'), std::string(100, 'a'), std::string(99, 'a') + "b",
                                   std::string(31, 'x'), std::string(32, 'x')};
  for (const auto& k : keys) {
    t.try_emplace(k, k + "!");
    model.emplace(k, k + "!");
  }
  expect_same(t, model);
  t.erase(std::string(100, 'a'));
  model.erase(std::string(100, 'a'));
  expect_same(t, model);
}

// Moving a table moves its keys; the source is empty and usable.
TEST(KeyTable, MoveLeavesSourceEmpty) {
  Table a;
  for (int i = 0; i < 5000; i++) a.try_emplace("k" + std::to_string(i), "v");
  Table b(std::move(a));
  EXPECT_EQ(b.size(), 5000u);
  EXPECT_EQ(a.size(), 0u);  // NOLINT: moved-from is specified here
  EXPECT_EQ(a.find("k1"), a.end());
  a.try_emplace("x", "y");
  EXPECT_EQ(a.size(), 1u);
  b = std::move(a);
  EXPECT_EQ(b.size(), 1u);
}

}  // namespace
}  // namespace hmdb::kv

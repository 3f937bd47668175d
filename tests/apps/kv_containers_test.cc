// tests/apps/kv_containers_test.cc — the kv app's compact containers (apps/kv/list.h,
// hash.h, set.h) against std::deque / std::map / std::set models, and through the app:
// the list commands across chunk boundaries, HSET/HDEL and SADD/SREM/SPOP across the small/table
// switch, and the snapshot bytes and digest, which must be exactly those of the documented
// format (docs/kv-commands.md).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <xxhash.h>

#include "hmdb/testing.h"
#include "kv/hash.h"
#include "kv/kv.h"
#include "kv/list.h"
#include "kv/set.h"

namespace hmdb::kv {
namespace {

using hmdb::testing::array;
using hmdb::testing::bulk;
using hmdb::testing::integer;

uint64_t test_seed() {
  const char* env = std::getenv("HMDB_TEST_SEED");
  return env ? std::strtoull(env, nullptr, 10) : 20261124;
}

// Values on both sides of std::string's 15-byte small buffer.
std::string value_for(std::mt19937_64& rng) {
  size_t len = rng() % 3 == 0 ? 16 + rng() % 40 : rng() % 16;
  std::string v(len, 'a');
  for (char& c : v) c = static_cast<char>('a' + rng() % 26);
  return v;
}

void expect_list_equals(const List& l, const std::deque<std::string>& model) {
  ASSERT_TRUE(l.check()) << "the chunks' invariants";
  ASSERT_EQ(l.size(), model.size());
  size_t i = 0;
  l.for_each([&](std::string_view v) {
    ASSERT_LT(i, model.size());
    ASSERT_EQ(v, model[i]) << "element " << i;
    i++;
  });
  ASSERT_EQ(i, model.size());
  if (!model.empty()) {
    EXPECT_EQ(l.front(), model.front());
    EXPECT_EQ(l.back(), model.back());
  }
}

// Elements of every encoding class: short (1-byte lengths), 128+ bytes (2-byte lengths),
// and now and then one longer than a whole chunk (a chunk of its own).
std::string list_value_for(std::mt19937_64& rng, bool short_only = false) {
  const uint64_t r = short_only ? 0 : rng() % 100;
  size_t len = r < 70 ? rng() % 24 : r < 97 ? 100 + rng() % 300 : List::kChunkBytesMax - 50 + rng() % 3000;
  std::string v(len, 'a');
  for (char& c : v) c = static_cast<char>('a' + rng() % 26);
  return v;
}

// ---- List --------------------------------------------------------------------------------

TEST(KvList, EncodingWalksBothWaysAtEveryLengthClass) {
  for (size_t len : {size_t{0}, size_t{1}, size_t{127}, size_t{128}, size_t{16383}, size_t{16384}, size_t{2097152}}) {
    SCOPED_TRACE("length " + std::to_string(len));
    std::string v(len, 'x');
    if (len) v[len - 1] = 'y';
    std::string buf(List::encoded_size(len), '\0');
    EXPECT_EQ(buf.size(), len + 2 * (len < 128 ? 1 : len < 16384 ? 2 : len < 2097152 ? 3 : 4));
    List::encode(buf.data(), v);
    uint32_t fwd = 0, bwd = 0;
    EXPECT_EQ(List::decode_at(buf.data(), &fwd), v);
    EXPECT_EQ(List::decode_before(buf.data() + buf.size(), &bwd), v);
    EXPECT_EQ(fwd, buf.size());
    EXPECT_EQ(bwd, buf.size());
  }
}

TEST(KvList, AShortListIsOneSmallBlock) {
  List l;
  l.push_back("xxx");
  ASSERT_EQ(l.chunk_count(), 1u);
  EXPECT_EQ(l.chunk(0).cap, List::kChunkBytesMin) << "5 bytes in malloc's smallest block";
  l.push_front("yyy");
  l.push_back("zzz");
  EXPECT_EQ(l.chunk(0).cap, List::kChunkBytesMin) << "three 3-byte elements: 15 bytes";
  expect_list_equals(l, {"yyy", "xxx", "zzz"});
  for (int i = 0; i < 10; i++) l.push_front("a");
  EXPECT_EQ(l.chunk_count(), 1u);
  EXPECT_EQ(l.chunk(0).cap, 56u) << "grown by doubling: 24, 56";
}

TEST(KvList, ChunksFillToTheBoundThenANewOneStartsAtEitherEnd) {
  // 20-byte elements cost 22 bytes: kChunkBytesMax / 22 of them fill a chunk exactly.
  const size_t per_chunk = List::kChunkBytesMax / 22;
  static_assert(List::kChunkBytesMax % 22 == 0);
  auto fill = [&](List& l, std::deque<std::string>& model) {
    for (size_t i = 0; i < per_chunk; i++) {
      char v[32];
      std::snprintf(v, sizeof v, "element:%012zu", i);
      l.push_back(v);
      model.push_back(v);
    }
    ASSERT_EQ(l.chunk_count(), 1u);
    EXPECT_EQ(l.chunk(0).cap, List::kChunkBytesMax);
    EXPECT_EQ(l.chunk(0).used(), List::kChunkBytesMax);
  };
  List l;
  std::deque<std::string> model;
  fill(l, model);
  l.push_back("element:xxxxxxxxxxxx");
  model.push_back("element:xxxxxxxxxxxx");
  EXPECT_EQ(l.chunk_count(), 2u) << "full: the next push starts a chunk";
  l.push_front("element:yyyyyyyyyyyy");
  model.push_front("element:yyyyyyyyyyyy");
  EXPECT_EQ(l.chunk_count(), 3u) << "at the front too";
  expect_list_equals(l, model);
  // Popping the front chunk's only element frees it; the list goes back to one inline chunk.
  l.pop_front();
  model.pop_front();
  l.pop_back();
  model.pop_back();
  EXPECT_EQ(l.chunk_count(), 1u);
  expect_list_equals(l, model);
  // LSET of a longer value in the full chunk splits it (the value joins the first half).
  std::string longer(300, 'L');
  l.set(200, longer);
  model[200] = longer;
  EXPECT_EQ(l.chunk_count(), 2u);
  EXPECT_EQ(l.chunk(0).count, 201u);
  expect_list_equals(l, model);
  // LINSERT into a full chunk splits it; indexes on both sides of the split still work.
  {
    List l2;
    std::deque<std::string> model2;
    fill(l2, model2);
    l2.insert(per_chunk / 3, "inserted");
    model2.insert(model2.begin() + static_cast<std::ptrdiff_t>(per_chunk / 3), "inserted");
    EXPECT_EQ(l2.chunk_count(), 2u);
    expect_list_equals(l2, model2);
    for (size_t i = 0; i < model2.size(); i++) ASSERT_EQ(l2[i], model2[i]) << i;
  }
  // Removing most elements merges the chunks left less than half full.
  size_t kept = 0;
  const size_t removed = l.remove_where([&](size_t i, std::string_view) { return i % 10 != 0; });
  std::deque<std::string> rest;
  for (size_t i = 0; i < model.size(); i++)
    if (i % 10 == 0) rest.push_back(model[i]), kept++;
  EXPECT_EQ(removed, model.size() - kept);
  EXPECT_EQ(l.chunk_count(), 1u) << "a tenth of three chunks fits one";
  expect_list_equals(l, rest);
}

TEST(KvList, PopsGiveMemoryBack) {
  List l;
  for (int i = 0; i < 5000; i++) l.push_back(std::to_string(i));
  EXPECT_GT(l.chunk_count(), 3u);
  while (l.size() > 2) l.pop_front();
  EXPECT_EQ(l.chunk_count(), 1u);
  EXPECT_LE(l.chunk(0).cap, 56u) << "the last chunk shrank as it emptied";
  expect_list_equals(l, {"4998", "4999"});
  l.pop_back();
  l.pop_back();
  EXPECT_TRUE(l.empty());
  EXPECT_EQ(l.chunk_count(), 0u);
}

TEST(KvList, ClearSomeFreesWholeChunksAboutABudgetOfElements) {
  List l;
  char v[32];
  for (int i = 0; i < 100000; i++) {
    std::snprintf(v, sizeof v, "element:%012d", i);  // 22 bytes each: 372 to a chunk
    l.push_back(v);
  }
  const size_t per_chunk = List::kChunkBytesMax / 22;
  const size_t chunks = l.chunk_count();
  EXPECT_EQ(chunks, (100000 + per_chunk - 1) / per_chunk);
  EXPECT_EQ(l.clear_some(1), 100000 % per_chunk) << "at least one chunk (the last, partly filled)";
  EXPECT_EQ(l.chunk_count(), chunks - 1);
  EXPECT_EQ(l.clear_some(3 * per_chunk), 3 * per_chunk) << "whole chunks up to the budget";
  EXPECT_EQ(l.chunk_count(), chunks - 4);
  size_t freed = 100000 % per_chunk + 3 * per_chunk;
  while (!l.empty()) {
    const size_t n = l.clear_some(512);
    EXPECT_EQ(n % per_chunk, 0u);
    EXPECT_TRUE(n >= 512 || l.empty()) << n;
    EXPECT_LT(n, 512 + per_chunk);
    freed += n;
  }
  EXPECT_EQ(freed, 100000u);
}

// Every operation against a std::deque model, seeded (HMDB_TEST_SEED), in phases that grow
// and shrink the list so chunks are created, split, merged and freed at both ends; with
// elements of every length class, and with short ones only (hundreds to a chunk).
void run_list_model(uint64_t seed, bool short_only) {
  SCOPED_TRACE("seed " + std::to_string(seed) + " (HMDB_TEST_SEED)" + (short_only ? ", short elements" : ""));
  std::mt19937_64 rng(seed);
  size_t most_chunks = 0;
  List l;
  std::deque<std::string> model;
  for (int step = 0; step < 30000; step++) {
    SCOPED_TRACE("step " + std::to_string(step));
    const bool grow = (step / 2000) % 2 == 0;
    const uint64_t op = rng() % 100;
    const size_t n = model.size();
    if (n == 0 || op < (grow ? 55u : 20u)) {
      std::string v = list_value_for(rng, short_only);
      if (rng() % 2) { l.push_front(v); model.push_front(v); } else { l.push_back(v); model.push_back(v); }
    } else if (op < 60) {
      if (rng() % 2) {
        ASSERT_EQ(l.front(), model.front());
        l.pop_front();
        model.pop_front();
      } else {
        ASSERT_EQ(l.back(), model.back());
        l.pop_back();
        model.pop_back();
      }
    } else if (op < 70) {
      const size_t i = rng() % n;
      std::string v = list_value_for(rng, short_only);
      l.set(i, v);
      model[i] = v;
    } else if (op < 78) {
      const size_t pos = rng() % (n + 1);
      std::string v = list_value_for(rng, short_only);
      l.insert(pos, v);
      model.insert(model.begin() + static_cast<std::ptrdiff_t>(pos), v);
    } else if (op < 82) {
      // LREM's shapes: one element anywhere, or a fraction spread over the whole list.
      std::vector<bool> gone(n, false);
      if (rng() % 2) {
        gone[rng() % n] = true;
      } else {
        const uint64_t mod = grow ? 50 + rng() % 50 : 2 + rng() % 6;  // a few, or most
        for (size_t i = 0; i < n; i++) gone[i] = grow ? rng() % mod == 0 : rng() % mod != 0;
      }
      std::deque<std::string> rest;
      for (size_t i = 0; i < n; i++)
        if (!gone[i]) rest.push_back(model[i]);
      size_t seen = 0;
      const size_t removed = l.remove_where([&](size_t i, std::string_view v) {
        EXPECT_EQ(i, seen++);
        EXPECT_EQ(v, model[i]);
        return gone[i];
      });
      EXPECT_EQ(removed, n - rest.size());
      model = std::move(rest);
    } else if (op < 86) {
      const size_t k = rng() % (grow ? 3 : n / 4 + 2);
      const size_t drop = std::min(k, n);
      if (rng() % 2) { l.erase_front(drop); model.erase(model.begin(), model.begin() + static_cast<std::ptrdiff_t>(drop)); }
      else { l.erase_back(drop); model.erase(model.end() - static_cast<std::ptrdiff_t>(drop), model.end()); }
    } else if (op < 94) {
      // Walk a random range forward and back with a cursor, as LRANGE and LPOS do.
      const size_t first = rng() % n, last = first + rng() % (n - first);
      List::Cursor c = l.cursor(first);
      for (size_t i = first;; i++) {
        ASSERT_EQ(*c, model[i]) << "forward at " << i;
        if (i == last) break;
        c.next();
      }
      for (size_t i = last;; i--) {
        ASSERT_EQ(*c, model[i]) << "backward at " << i;
        if (i == first) break;
        c.prev();
      }
    } else {
      const size_t i = rng() % n;
      ASSERT_EQ(l[i], model[i]) << "index " << i;
    }
    ASSERT_TRUE(l.check());
    ASSERT_EQ(l.size(), model.size());
    most_chunks = std::max(most_chunks, l.chunk_count());
    if (step % 50 == 0 || model.size() < 8) expect_list_equals(l, model);
    if (::testing::Test::HasFatalFailure() || ::testing::Test::HasNonfatalFailure()) return;
  }
  expect_list_equals(l, model);
  EXPECT_GE(most_chunks, 4u) << "the phases reached several chunks";
  List moved(std::move(l));
  expect_list_equals(moved, model);
  EXPECT_TRUE(l.empty());  // NOLINT(bugprone-use-after-move): a moved-from list is empty
}

TEST(KvList, MatchesADequeUnderRandomOperations) { run_list_model(test_seed(), false); }
TEST(KvList, MatchesADequeUnderRandomOperationsOnShortElements) { run_list_model(test_seed() + 1, true); }

// ---- Hash --------------------------------------------------------------------------------

// The order a hash lists its fields in: (XXH3(field), field bytes).
std::vector<std::pair<std::string, std::string>> in_hash_order(const std::map<std::string, std::string>& model) {
  std::vector<std::pair<uint64_t, const std::pair<const std::string, std::string>*>> order;
  for (const auto& kv : model) order.emplace_back(XXH3_64bits(kv.first.data(), kv.first.size()), &kv);
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : a.second->first < b.second->first;
  });
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [h, kv] : order) out.emplace_back(kv->first, kv->second);
  return out;
}

void expect_hash_equals(const Hash& h, const std::map<std::string, std::string>& model) {
  ASSERT_EQ(h.size(), model.size());
  const auto ordered = in_hash_order(model);
  auto it = ordered.begin();
  h.for_each([&](std::string_view field, const std::string& value) {
    ASSERT_NE(it, ordered.end());
    EXPECT_EQ(field, it->first);
    EXPECT_EQ(value, it->second);
    ++it;
  });
  EXPECT_EQ(it, ordered.end());
  auto byte_it = model.begin();
  h.for_each_in_byte_order([&](std::string_view field, const std::string& value) {
    ASSERT_NE(byte_it, model.end());
    EXPECT_EQ(field, byte_it->first);
    EXPECT_EQ(value, byte_it->second);
    ++byte_it;
  });
  EXPECT_EQ(byte_it, model.end());
  for (const auto& [field, value] : model) {
    const std::string* found = h.find(field);
    ASSERT_NE(found, nullptr) << field;
    EXPECT_EQ(*found, value);
  }
}

TEST(KvHash, SwitchesToATableAboveTheBoundAndBackAfterDeletes) {
  Hash h;
  std::map<std::string, std::string> model;
  // Fields inserted in descending order, so every insert lands at the array's front.
  for (size_t i = Hash::kSmallFieldsMax; i > 0; i--) {
    std::string field = "field:" + std::to_string(1000 + i);
    EXPECT_TRUE(h.set(field, "v" + std::to_string(i)));
    model[field] = "v" + std::to_string(i);
  }
  EXPECT_TRUE(h.is_small()) << "exactly kSmallFieldsMax fields stay small";
  expect_hash_equals(h, model);
  EXPECT_FALSE(h.set("field:1001", "changed")) << "an existing field is not new";
  model["field:1001"] = "changed";
  EXPECT_TRUE(h.is_small());

  EXPECT_TRUE(h.set("a-long-field-name-beyond-the-31-byte-inline-key", "x"));
  model["a-long-field-name-beyond-the-31-byte-inline-key"] = "x";
  EXPECT_FALSE(h.is_small()) << "field kSmallFieldsMax + 1 switches to the table";
  expect_hash_equals(h, model);

  // Delete down to the shrink bound: the table stays until then (hysteresis) ...
  while (model.size() > Hash::kShrinkFieldsMax + 1) {
    EXPECT_TRUE(h.erase(model.begin()->first));
    model.erase(model.begin());
    EXPECT_FALSE(h.is_small());
  }
  EXPECT_FALSE(h.erase("no-such-field"));
  // ... and goes back to the array at kShrinkFieldsMax.
  EXPECT_TRUE(h.erase(model.rbegin()->first));
  model.erase(std::prev(model.end()));
  EXPECT_TRUE(h.is_small());
  expect_hash_equals(h, model);
  while (!model.empty()) {
    EXPECT_TRUE(h.erase(model.begin()->first));
    model.erase(model.begin());
  }
  EXPECT_TRUE(h.empty());
  EXPECT_FALSE(h.erase("x"));
}

TEST(KvHash, MatchesAMapUnderRandomSetsIncrementsAndDeletes) {
  const uint64_t seed = test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  Hash h;
  std::map<std::string, std::string> model;
  bool was_big = false, back_to_small = false;
  for (int step = 0; step < 30000; step++) {
    // Phases of growth and shrinkage across both bounds; field names around the 31-byte
    // inline limit of kv::Key.
    // 100 names: the growth phases settle near 85 fields, the shrinking ones near 25.
    bool grow = (step / 3000) % 2 == 0 ? rng() % 6 != 0 : rng() % 6 == 0;
    uint64_t n = rng() % 100;
    std::string field = "f" + std::to_string(n);
    if (n % 4 == 0) field += std::string(26 + n % 8, 'x');
    if (grow) {
      std::string v = value_for(rng);
      bool fresh = model.find(field) == model.end();
      EXPECT_EQ(h.set(field, v), fresh);
      model[field] = v;
    } else if (rng() % 5 == 0) {
      bool inserted;
      std::string& v = h.find_or_insert(field, &inserted);
      EXPECT_EQ(inserted, model.find(field) == model.end());
      v += "+";
      model[field] += "+";
    } else {
      EXPECT_EQ(h.erase(field), model.erase(field) == 1);
    }
    if (!h.is_small()) was_big = true;
    if (was_big && h.is_small()) back_to_small = true;
    if (step % 101 == 0) expect_hash_equals(h, model);
  }
  expect_hash_equals(h, model);
  EXPECT_TRUE(was_big && back_to_small) << "the walk must cross both switches";
  Hash moved(std::move(h));
  expect_hash_equals(moved, model);
}

TEST(KvHash, BigHashKeepsHashOrderAcrossIncrementalResizes) {
  // Thousands of fields: the table doubles many times while fields arrive, and halves while
  // they go; the listing stays in hash order at every step checked (some in mid-resize), and
  // a walk from any hash (HSCAN) starts at the right field.
  const uint64_t seed = test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  Hash h;
  std::map<std::string, std::string> model;
  std::vector<std::string> names;
  for (int i = 0; i < 20000; i++) names.push_back("element:" + std::to_string(rng() % 1000000000));
  for (size_t i = 0; i < names.size(); i++) {
    std::string v = value_for(rng);
    EXPECT_EQ(h.set(names[i], v), model.find(names[i]) == model.end());
    model[names[i]] = v;
    if (i % 4999 == 0) expect_hash_equals(h, model);
  }
  expect_hash_equals(h, model);
  const auto ordered = in_hash_order(model);
  for (int probe = 0; probe < 50; probe++) {
    const uint64_t from = rng();
    auto want = std::find_if(ordered.begin(), ordered.end(), [&](const auto& kv) {
      return XXH3_64bits(kv.first.data(), kv.first.size()) >= from;
    });
    std::vector<std::string> got;
    h.for_each_from(from, [&](uint64_t fh, std::string_view f, const std::string&) {
      EXPECT_EQ(fh, XXH3_64bits(f.data(), f.size()));
      got.emplace_back(f);
      return got.size() < 3;
    });
    for (size_t i = 0; i < got.size(); i++, ++want) {
      ASSERT_NE(want, ordered.end());
      EXPECT_EQ(got[i], want->first);
    }
    EXPECT_TRUE(got.size() == 3 || want == ordered.end());
  }
  std::shuffle(names.begin(), names.end(), rng);
  for (size_t i = 0; i < names.size(); i++) {
    EXPECT_EQ(h.erase(names[i]), model.erase(names[i]) == 1);
    if (i % 3331 == 0) expect_hash_equals(h, model);
  }
  EXPECT_TRUE(h.empty());
}

// ---- Set ---------------------------------------------------------------------------------

using SetModel = std::set<std::pair<uint64_t, std::string>>;

// Member hashes here are small numbers, so that many members share a hash (ties are broken
// by bytes) and SPOP's wrap-around is exercised; the real hash is XXH3 (kv.cc).
void expect_set_equals(const Set& set, const SetModel& model) {
  ASSERT_EQ(set.size(), model.size());
  auto it = model.begin();
  set.for_each([&](std::string_view m) {
    ASSERT_NE(it, model.end());
    EXPECT_EQ(m, it->second);
    ++it;
  });
  for (const auto& [hash, value] : model) EXPECT_TRUE(set.contains(SetMemberKey{hash, value})) << value;
}

TEST(KvSet, MatchesAnOrderedSetAcrossBothSwitchesIncludingPops) {
  const uint64_t seed = test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  Set set;
  SetModel model;
  bool was_big = false, back_to_small = false;
  for (int step = 0; step < 30000; step++) {
    bool grow = (step / 3000) % 2 == 0 ? rng() % 6 != 0 : rng() % 6 == 0;
    uint64_t n = rng() % 100;
    const std::string value = "m" + std::string(n % 5 == 0 ? 20 : 0, 'x') + std::to_string(n);
    const SetMemberKey k{n % 37, value};
    if (grow) {
      EXPECT_EQ(set.insert(k), model.insert({k.hash, value}).second);
    } else if (rng() % 4 == 0 && !model.empty()) {
      uint64_t at = rng() % 40;  // sometimes above every hash: wraps to the first member
      auto pick = model.lower_bound({at, std::string()});
      if (pick == model.end()) pick = model.begin();
      EXPECT_EQ(set.pop_at_or_after(at), pick->second);
      model.erase(pick);
    } else {
      EXPECT_EQ(set.erase(k), model.erase({k.hash, value}) == 1);
    }
    if (!set.is_small()) was_big = true;
    if (was_big && set.is_small()) back_to_small = true;
    if (step % 101 == 0) expect_set_equals(set, model);
  }
  expect_set_equals(set, model);
  EXPECT_TRUE(was_big && back_to_small) << "the walk must cross both switches";
}

TEST(KvSet, SpopPicksTheSameMembersInEitherRepresentation) {
  // a: grown past the bound, then shrunk to 40 members (still a table: hysteresis);
  // b: the same 40 members added directly (an array). Every pop must agree.
  Set a, b;
  for (uint64_t i = 0; i < 100; i++) a.insert(SetMemberKey{i * 7919 % 1000, "m" + std::to_string(i)});
  for (uint64_t i = 0; i < 60; i++) a.erase(SetMemberKey{i * 7919 % 1000, "m" + std::to_string(i)});
  for (uint64_t i = 60; i < 100; i++) b.insert(SetMemberKey{i * 7919 % 1000, "m" + std::to_string(i)});
  ASSERT_FALSE(a.is_small());
  ASSERT_TRUE(b.is_small());
  std::mt19937_64 rng(test_seed());
  while (!a.empty()) {
    uint64_t at = rng() % 1100;
    ASSERT_EQ(a.pop_at_or_after(at), b.pop_at_or_after(at));
  }
  EXPECT_TRUE(b.empty());
}

// ---- through the app ---------------------------------------------------------------------

TEST(KvContainers, ListCommandsAcrossChunkBoundaries) {
  hmdb::testing::AppDriver<Kv> db;
  // 1000-byte elements: 8 to a chunk, so 40 of them are 5+ chunks (pushed at both ends).
  std::deque<std::string> model;
  for (int i = 0; i < 40; i++) {
    std::string v(1000, static_cast<char>('A' + i % 26));
    v += std::to_string(i);
    if (i % 3 == 0) { db.run_strings({"LPUSH", "l", v}); model.push_front(v); }
    else { db.run_strings({"RPUSH", "l", v}); model.push_back(v); }
  }
  const auto& list = std::get<List>(db.host.state().keys.find(std::string_view("l"))->second);
  ASSERT_GE(list.chunk_count(), 5u) << "the test needs several chunks";
  auto range = [&](int64_t a, int64_t b) {
    const int64_t n = static_cast<int64_t>(model.size());
    if (a < 0) a = std::max<int64_t>(0, a + n);
    if (b < 0) b += n;
    b = std::min(b, n - 1);
    std::vector<std::string> out;
    for (int64_t i = a; i <= b; i++) out.push_back(model[static_cast<size_t>(i)]);
    return out;
  };
  auto bulks = [](const std::vector<std::string>& xs) {
    std::string out = "*" + std::to_string(xs.size()) + "\r\n";
    for (const auto& x : xs) out += "$" + std::to_string(x.size()) + "\r\n" + x + "\r\n";
    return out;
  };
  for (auto [a, b] : std::vector<std::pair<int, int>>{{0, -1}, {-3, -2}, {-1, -1}, {7, 9}, {-100, 12}, {15, 100}}) {
    EXPECT_EQ(db.run_strings({"LRANGE", "l", std::to_string(a), std::to_string(b)}), bulks(range(a, b)))
        << a << " " << b;
  }
  for (int i : {0, 7, 8, 9, 23, 39, -1, -9}) {
    const size_t at = static_cast<size_t>(i < 0 ? i + 40 : i);
    EXPECT_EQ(db.run_strings({"LINDEX", "l", std::to_string(i)}), bulk(model[at])) << i;
  }
  // LPOS from either end finds the same element; LSET/LINSERT/LREM in a middle chunk.
  EXPECT_EQ(db.run_strings({"LPOS", "l", model[17]}), integer(17));
  EXPECT_EQ(db.run_strings({"LPOS", "l", model[17], "RANK", "-1"}), integer(17));
  EXPECT_EQ(db.run_strings({"LSET", "l", "17", "short"}), "+OK\r\n");
  model[17] = "short";
  EXPECT_EQ(db.run_strings({"LINSERT", "l", "BEFORE", "short", std::string(3000, 'z')}), integer(41));
  model.insert(model.begin() + 17, std::string(3000, 'z'));
  EXPECT_EQ(db.run_strings({"LREM", "l", "-1", model[30]}), integer(1));
  model.erase(model.begin() + 30);
  EXPECT_EQ(db.run_strings({"LTRIM", "l", "3", "-4"}), "+OK\r\n");
  model.erase(model.end() - 3, model.end());
  model.erase(model.begin(), model.begin() + 3);
  EXPECT_EQ(db.run_strings({"LRANGE", "l", "0", "-1"}), bulks(range(0, -1)));
  EXPECT_TRUE(list.check());
}

// The snapshot of one list key and one hash key (each alone: key order in a snapshot is the
// table's) must be the documented encoding byte for byte, and the digest the XXH3 of it.
std::string expected_entry(std::string_view key, uint8_t type, const std::vector<std::string>& items) {
  Encoder e;
  e.bytes(key);
  e.u8(type);
  e.varint(type == static_cast<uint8_t>(Type::kHash) ? items.size() / 2 : items.size());
  for (const auto& x : items) e.bytes(x);
  return e.take();
}

TEST(KvContainers, SnapshotBytesAndDigestAreTheDocumentedFormat) {
  for (size_t fields : {size_t{3}, Hash::kSmallFieldsMax, Hash::kSmallFieldsMax + 40}) {
    SCOPED_TRACE("fields " + std::to_string(fields));
    hmdb::testing::AppDriver<Kv> a;
    std::map<std::string, std::string> model;
    for (size_t i = 0; i < fields; i++) {
      std::string f = "element:" + std::to_string((i * 7919) % 100003);  // not in order
      a.run_strings({"HSET", "h", f, std::to_string(i)});
      model[f] = std::to_string(i);
    }
    // The snapshot lists fields in hash order, the digest hashes them in byte order.
    std::vector<std::string> items, byte_items;
    for (const auto& [f, v] : in_hash_order(model)) { items.push_back(f); items.push_back(v); }
    for (const auto& [f, v] : model) { byte_items.push_back(f); byte_items.push_back(v); }
    std::string entry = expected_entry("h", static_cast<uint8_t>(Type::kHash), items);
    std::string digested = expected_entry("h", static_cast<uint8_t>(Type::kHash), byte_items);
    Encoder whole;
    whole.varint(1);
    std::string expected = whole.take() + entry;
    EXPECT_EQ(a.snapshot(), expected);
    EXPECT_EQ(a.host.digest(), XXH3_64bits(digested.data(), digested.size()));
    // A snapshot of the byte-ordered listing (what binaries before hash-ordered hashes
    // wrote) loads into the same state: same snapshot, digest and replies.
    Encoder old_whole;
    old_whole.varint(1);
    hmdb::testing::AppDriver<Kv> from_old;
    ASSERT_TRUE(from_old.restore(old_whole.take() + digested));
    EXPECT_EQ(from_old.snapshot(), expected);
    EXPECT_EQ(from_old.host.digest(), a.host.digest());
    EXPECT_EQ(from_old.run({"HGETALL", "h"}), a.run({"HGETALL", "h"}));
  }
  for (size_t members : {size_t{3}, Set::kSmallMembersMax + 10}) {
    SCOPED_TRACE("members " + std::to_string(members));
    hmdb::testing::AppDriver<Kv> a;
    std::set<std::pair<uint64_t, std::string>> model;
    for (size_t i = 0; i < members; i++) {
      std::string m = "member:" + std::to_string(i);
      a.run_strings({"SADD", "s", m});
      model.insert({XXH3_64bits_withSeed(m.data(), m.size(), kSetHashSeed), m});
    }
    std::vector<std::string> items;
    for (const auto& [hash, m] : model) items.push_back(m);
    std::string entry = expected_entry("s", static_cast<uint8_t>(Type::kSet), items);
    Encoder whole;
    whole.varint(1);
    EXPECT_EQ(a.snapshot(), whole.take() + entry);
    EXPECT_EQ(a.host.digest(), XXH3_64bits(entry.data(), entry.size()));
  }
  hmdb::testing::AppDriver<Kv> b;
  for (int i = 0; i < 10; i++) b.run_strings({"LPUSH", "l", std::to_string(i)});
  b.run({"RPOP", "l"});
  b.run({"RPUSH", "l", "tail-element-longer-than-fifteen-bytes"});
  std::string entry = expected_entry(
      "l", static_cast<uint8_t>(Type::kList),
      {"9", "8", "7", "6", "5", "4", "3", "2", "1", "tail-element-longer-than-fifteen-bytes"});
  Encoder whole;
  whole.varint(1);
  EXPECT_EQ(b.snapshot(), whole.take() + entry);
  EXPECT_EQ(b.host.digest(), XXH3_64bits(entry.data(), entry.size()));
}

TEST(KvContainers, SnapshotRoundTripAcrossTheSwitchKeepsRepliesAndDigest) {
  const uint64_t seed = test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  hmdb::testing::AppDriver<Kv> a;
  // Hashes of every size class (one that grew big and shrank back above the shrink bound
  // stays a table; after a load it is an array: invisible either way), wrapped lists.
  for (int i = 0; i < 200; i++) a.run_strings({"HSET", "big", "f" + std::to_string(i), std::to_string(i)});
  for (int i = 0; i < 150; i++) a.run_strings({"HDEL", "big", "f" + std::to_string(i)});
  for (int i = 0; i < 90; i++) a.run_strings({"HSET", "mid", "f" + std::to_string(rng() % 120), value_for(rng)});
  a.run({"HSET", "one", "f", "v"});
  for (int i = 0; i < 100; i++) a.run_strings({"SADD", "set", "m" + std::to_string(i)});
  a.run({"SPOP", "set", "70"});  // a table of 100, back to an array once <= 32 remain
  for (int k = 0; k < 20; k++) {
    std::string key = "list" + std::to_string(k);
    for (int i = 0; i < 30; i++) {
      std::string v = value_for(rng);
      switch (rng() % 4) {
        case 0: a.run_strings({"LPUSH", key, v}); break;
        case 1: a.run_strings({"RPUSH", key, v}); break;
        case 2: a.run_strings({"LPOP", key}); break;
        case 3: a.run_strings({"RPOP", key}); break;
      }
    }
  }
  hmdb::testing::AppDriver<Kv> b;
  ASSERT_TRUE(b.restore(a.snapshot()));
  EXPECT_EQ(a.host.digest(), b.host.digest());
  EXPECT_EQ(a.snapshot().size(), b.snapshot().size());
  for (const char* key : {"big", "mid", "one"}) {
    EXPECT_EQ(a.run({"HGETALL", key}), b.run({"HGETALL", key})) << key;
    EXPECT_EQ(a.run({"HLEN", key}), b.run({"HLEN", key})) << key;
  }
  EXPECT_EQ(a.run({"SMEMBERS", "set"}), b.run({"SMEMBERS", "set"}));
  EXPECT_EQ(a.run({"SCARD", "set"}), integer(30));
  for (int k = 0; k < 20; k++) {
    std::string key = "list" + std::to_string(k);
    EXPECT_EQ(a.run_strings({"LRANGE", key, "0", "-1"}), b.run_strings({"LRANGE", key, "0", "-1"})) << key;
  }
  // Both continue identically: HINCRBY on the loaded array and the original table.
  for (int i = 150; i < 200; i++) {
    std::string f = "f" + std::to_string(i);
    ASSERT_EQ(a.run_strings({"HINCRBY", "big", f, "5"}), b.run_strings({"HINCRBY", "big", f, "5"}));
    ASSERT_EQ(a.run_strings({"HDEL", "big", "f" + std::to_string(i - 1)}),
              b.run_strings({"HDEL", "big", "f" + std::to_string(i - 1)}));
  }
  EXPECT_EQ(a.host.digest(), b.host.digest());

  // A hash field twice in a snapshot is corruption, in either representation.
  for (size_t fields : {size_t{2}, Hash::kSmallFieldsMax + 2}) {
    Encoder dup;
    dup.varint(1);
    dup.bytes("h");
    dup.u8(static_cast<uint8_t>(Type::kHash));
    dup.varint(fields);
    for (size_t i = 0; i + 1 < fields; i++) { dup.bytes("f" + std::to_string(i)); dup.bytes("v"); }
    dup.bytes("f0");
    dup.bytes("again");
    hmdb::testing::AppDriver<Kv> c;
    EXPECT_FALSE(c.restore(dup.buffer())) << fields << " fields";
  }
}

TEST(KvContainers, BigHashAndSetSnapshotRoundTripAndLazyFree) {
  // A hash and a set of thousands (tables, grown through many resizes) round-trip through a
  // snapshot with the same replies, digest and bytes; SPOP then picks the same members on
  // both; and deleting them frees them a bounded amount at a time (the graveyard).
  hmdb::testing::AppDriver<Kv> a;
  for (int i = 0; i < 5000; i++) {
    a.run_strings({"HSET", "h", "element:" + std::to_string(i * 7919 % 100003), std::to_string(i)});
    a.run_strings({"SADD", "s", "member:" + std::to_string(i * 104729 % 1000003)});
  }
  for (int i = 0; i < 1000; i++) a.run_strings({"HDEL", "h", "element:" + std::to_string(i * 7919 % 100003)});
  hmdb::testing::AppDriver<Kv> b;
  ASSERT_TRUE(b.restore(a.snapshot()));
  b.index = a.index;  // SPOP's pick depends on the log index: as after an install at a.index
  EXPECT_EQ(a.snapshot(), b.snapshot());
  EXPECT_EQ(a.host.digest(), b.host.digest());
  EXPECT_EQ(a.run({"HGETALL", "h"}), b.run({"HGETALL", "h"}));
  EXPECT_EQ(a.run({"HLEN", "h"}), integer(4000));
  EXPECT_EQ(a.run({"SMEMBERS", "s"}), b.run({"SMEMBERS", "s"}));
  for (int i = 0; i < 20; i++) EXPECT_EQ(a.run({"SPOP", "s", "7"}), b.run({"SPOP", "s", "7"}));
  EXPECT_EQ(a.run({"SCARD", "s"}), integer(5000 - 140));
  EXPECT_EQ(a.run({"DEL", "h", "s"}), integer(2));
  EXPECT_EQ(a.run({"EXISTS", "h", "s"}), integer(0));
  EXPECT_FALSE(a.host.state().graveyard.empty()) << "thousands of elements are freed later";
  int writes = 0;
  while (!a.host.state().graveyard.empty() && writes < 1000) a.run_strings({"SET", "k" + std::to_string(writes++), "v"});
  EXPECT_TRUE(a.host.state().graveyard.empty());
  EXPECT_GT(writes, 5) << "a bounded step per write: ~8,900 elements take several";
}

}  // namespace
}  // namespace hmdb::kv

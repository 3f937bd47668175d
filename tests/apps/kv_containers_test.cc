// tests/apps/kv_containers_test.cc — the kv app's compact containers (apps/kv/list.h,
// hash.h, set.h) against std::deque / std::map / std::set models, and through the app:
// LRANGE across the ring buffer's wrap, HSET/HDEL and SADD/SREM/SPOP across the small/table
// switch, and the snapshot bytes and digest, which must be exactly those of the documented
// format (docs/kv-commands.md).
#include <gtest/gtest.h>

#include <algorithm>
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
  ASSERT_EQ(l.size(), model.size());
  for (size_t i = 0; i < model.size(); i++) ASSERT_EQ(l[i], model[i]) << "element " << i;
  if (!model.empty()) {
    EXPECT_EQ(l.front(), model.front());
    EXPECT_EQ(l.back(), model.back());
  }
}

// ---- List --------------------------------------------------------------------------------

TEST(KvList, WrapsAroundBothWays) {
  List l;
  // Capacity 4 after four pushes; pushing at the front wraps the head below slot 0.
  l.push_back("b");
  l.push_back("c");
  l.push_front("a");
  l.push_back("d");
  EXPECT_EQ(l.capacity(), 4u);
  l.pop_front();  // head moves to slot 1 ...
  l.pop_front();
  l.push_back("e");  // ... and the tail wraps to slot 0
  l.push_back("f");
  EXPECT_EQ(l.capacity(), 4u) << "no growth while there is room";
  expect_list_equals(l, {"c", "d", "e", "f"});
  l.push_front("b");  // full: grows, unwrapping into a fresh block
  EXPECT_EQ(l.capacity(), 8u);
  expect_list_equals(l, {"b", "c", "d", "e", "f"});
}

TEST(KvList, ShrinksWhenAQuarterFull) {
  List l;
  for (int i = 0; i < 64; i++) l.push_back(std::to_string(i));
  EXPECT_EQ(l.capacity(), 64u);
  while (l.size() > 2) l.pop_front();
  EXPECT_LE(l.capacity(), 8u) << "pops give memory back";
  expect_list_equals(l, {"62", "63"});
  l.pop_back();
  l.pop_back();
  EXPECT_TRUE(l.empty());
}

TEST(KvList, MatchesADequeUnderRandomPushesAndPops) {
  const uint64_t seed = test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  List l;
  std::deque<std::string> model;
  for (int step = 0; step < 20000; step++) {
    // Drift between growing and shrinking phases so the capacity moves both ways.
    bool grow = (step / 1000) % 2 == 0 ? rng() % 4 != 0 : rng() % 4 == 0;
    if (grow || model.empty()) {
      std::string v = value_for(rng);
      if (rng() % 2) { l.push_front(v); model.push_front(v); } else { l.push_back(v); model.push_back(v); }
    } else if (rng() % 2) {
      ASSERT_EQ(l.front(), model.front());
      l.pop_front();
      model.pop_front();
    } else {
      ASSERT_EQ(l.back(), model.back());
      l.pop_back();
      model.pop_back();
    }
    if (step % 97 == 0) expect_list_equals(l, model);
  }
  expect_list_equals(l, model);
  List moved(std::move(l));
  expect_list_equals(moved, model);
  EXPECT_TRUE(l.empty());  // NOLINT(bugprone-use-after-move): a moved-from list is empty
}

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

TEST(KvContainers, LrangeWithNegativeIndexesAcrossTheWrap) {
  hmdb::testing::AppDriver<Kv> db;
  // RPUSH 1..4 fills a block of 4; two LPOPs and two RPUSHes wrap the tail to slots 0-1.
  EXPECT_EQ(db.run({"RPUSH", "l", "1", "2", "3", "4"}), integer(4));
  EXPECT_EQ(db.run({"LPOP", "l", "2"}), array({bulk("1"), bulk("2")}));
  EXPECT_EQ(db.run({"RPUSH", "l", "5", "6"}), integer(4));  // slots: 5 6 3 4, head at 2
  const auto& list = std::get<List>(db.host.state().keys.find(std::string_view("l"))->second);
  ASSERT_EQ(list.capacity(), 4u) << "the test needs the wrapped layout";
  EXPECT_EQ(db.run({"LRANGE", "l", "0", "-1"}), array({bulk("3"), bulk("4"), bulk("5"), bulk("6")}));
  EXPECT_EQ(db.run({"LRANGE", "l", "-3", "-2"}), array({bulk("4"), bulk("5")}));
  EXPECT_EQ(db.run({"LRANGE", "l", "-1", "-1"}), array({bulk("6")}));
  EXPECT_EQ(db.run({"LRANGE", "l", "1", "-1"}), array({bulk("4"), bulk("5"), bulk("6")}));
  EXPECT_EQ(db.run({"LRANGE", "l", "-100", "-3"}), array({bulk("3"), bulk("4")}));
  EXPECT_EQ(db.run({"RPOP", "l"}), bulk("6"));
  EXPECT_EQ(db.run({"LPUSH", "l", "2"}), integer(4));  // head wraps back to slot 1
  EXPECT_EQ(db.run({"LRANGE", "l", "-4", "-1"}), array({bulk("2"), bulk("3"), bulk("4"), bulk("5")}));
  EXPECT_EQ(db.run({"LPUSH", "l", "1"}), integer(5));  // grows, unwrapped
  EXPECT_EQ(db.run({"LRANGE", "l", "-5", "1"}), array({bulk("1"), bulk("2")}));
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

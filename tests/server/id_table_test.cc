// tests/server/id_table_test.cc — the sessions' table by id (server/id_table.h): lookups,
// inserts and erases against std::unordered_map as the model, over growth, runs that wrap
// past the array's end, and erases that shift a run back; values keep their address.
#include "server/id_table.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace hmdb::server {
namespace {

struct Value {
  uint64_t id;
};

// Every id of the model is found with its own value (at the address it got), every id not
// in it is not, and iteration visits exactly the model's ids once each.
void expect_same(const IdTable<Value>& t, const std::unordered_map<uint64_t, Value*>& model, uint64_t max_id) {
  ASSERT_EQ(t.size(), model.size());
  for (uint64_t id = 1; id <= max_id; id++) {
    auto it = model.find(id);
    Value* v = t.find(id);
    if (it == model.end()) {
      EXPECT_EQ(v, nullptr) << "id " << id << " found after its erase";
    } else {
      ASSERT_NE(v, nullptr) << "id " << id << " lost";
      EXPECT_EQ(v, it->second) << "id " << id << " moved";
      EXPECT_EQ(v->id, id);
    }
  }
  std::map<uint64_t, int> seen;
  for (const auto& [id, v] : t) {
    EXPECT_EQ(v->id, id);
    seen[id]++;
  }
  EXPECT_EQ(seen.size(), model.size());
  for (const auto& [id, n] : seen) {
    EXPECT_EQ(n, 1) << "id " << id << " visited " << n << " times";
    EXPECT_TRUE(model.count(id)) << "id " << id << " visited but not in the table";
  }
}

TEST(IdTable, EmptyFindsNothing) {
  IdTable<Value> t;
  EXPECT_EQ(t.find(1), nullptr);
  EXPECT_EQ(t.find(0), nullptr);
  EXPECT_FALSE(t.erase(1));
  EXPECT_TRUE(t.empty());
  EXPECT_TRUE(t.begin() == t.end());
}

TEST(IdTable, SequentialIdsLikeSessions) {
  IdTable<Value> t;
  std::unordered_map<uint64_t, Value*> model;
  for (uint64_t id = 16; id < 16 + 1000; id++) {
    auto v = std::make_unique<Value>(Value{id});
    model[id] = v.get();
    t.emplace(id, std::move(v));
  }
  expect_same(t, model, 2000);
  for (uint64_t id = 16; id < 16 + 1000; id += 3) {
    EXPECT_TRUE(t.erase(id));
    model.erase(id);
  }
  EXPECT_FALSE(t.erase(16));
  expect_same(t, model, 2000);
}

// Random inserts and erases in a small id range, so that runs collide, wrap past the end of
// the array and are shifted back by erases; the model says what must be there.
TEST(IdTable, RandomOperationsMatchTheModel) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (uint64_t range : {40ull, 200ull, 5000ull}) {
    IdTable<Value> t;
    std::unordered_map<uint64_t, Value*> model;
    for (int step = 0; step < 20000; step++) {
      const uint64_t id = 1 + rng() % range;
      if (model.count(id)) {
        ASSERT_TRUE(t.erase(id));
        model.erase(id);
      } else if (rng() % 3 != 0) {
        auto v = std::make_unique<Value>(Value{id});
        model[id] = v.get();
        t.emplace(id, std::move(v));
      } else {
        ASSERT_FALSE(t.erase(id));
      }
      if (step % 997 == 0) expect_same(t, model, range);
    }
    expect_same(t, model, range);
  }
}

TEST(IdTable, EraseDestroysTheValue) {
  struct Counted {
    int* alive;
    explicit Counted(int* a) : alive(a) { ++*alive; }
    ~Counted() { --*alive; }
  };
  int alive = 0;
  {
    IdTable<Counted> t;
    for (uint64_t id = 1; id <= 100; id++) t.emplace(id, std::make_unique<Counted>(&alive));
    EXPECT_EQ(alive, 100);
    for (uint64_t id = 1; id <= 50; id++) t.erase(id);
    EXPECT_EQ(alive, 50);
  }
  EXPECT_EQ(alive, 0);
}

}  // namespace
}  // namespace hmdb::server

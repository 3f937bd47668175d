// tests/core/watch_table_test.cc — the leader's record of changes for WATCH
// (core/watch_table.h): a batched write's keys are pending until its batch has an index, a
// refused batch stays pending while the next one is built, a dropped batch stops being
// pending; a write that reports more fails every WATCH while in flight and only its keys
// once applied; nothing is known below the horizon or when this node does not lead.
#include "core/watch_table.h"

#include <gtest/gtest.h>

#include <string_view>
#include <vector>

namespace hmdb::core {
namespace {

const KeySpec kFirst;  // the word after the name
const KeySpec kMore{0, 0, 1, true};

Args words(const std::vector<std::string_view>& v) { return Args(v.data(), v.size()); }

TEST(WatchTable, ABatchedWriteIsAChangeFromTheMomentItIsBatched) {
  WatchTable t;
  EXPECT_TRUE(t.changed_since("a", 100)) << "a node that does not lead knows nothing";
  t.start(10);
  t.watching(0);
  EXPECT_TRUE(t.changed_since("a", 9)) << "below the horizon";
  EXPECT_FALSE(t.changed_since("a", 10));
  std::vector<std::string_view> set_a = {"SET", "a", "1"};
  t.batched(words(set_a), kFirst);
  EXPECT_TRUE(t.changed_since("a", 10)) << "pending";
  EXPECT_FALSE(t.changed_since("b", 10));
  t.proposed(12, false);
  EXPECT_TRUE(t.changed_since("a", 11));
  EXPECT_FALSE(t.changed_since("a", 12)) << "a WATCH taken once entry 12 was applied";
  t.stop();
  EXPECT_TRUE(t.changed_since("a", 12));
}

TEST(WatchTable, ARefusedBatchStaysPendingUntilProposedAgain) {
  WatchTable t;
  t.start(1);
  t.watching(0);
  std::vector<std::string_view> set_a = {"SET", "a", "1"}, set_b = {"SET", "b", "1"};
  t.batched(words(set_a), kFirst);
  t.refused();
  t.batched(words(set_b), kFirst);
  t.batched(words(set_a), kFirst);
  t.proposed(5, true);  // the refused batch, proposed again first
  EXPECT_TRUE(t.changed_since("a", 5)) << "the batch being built changes it again";
  EXPECT_TRUE(t.changed_since("b", 100));
  t.proposed(6, false);
  EXPECT_FALSE(t.changed_since("a", 6));
  EXPECT_FALSE(t.changed_since("b", 6));
  EXPECT_TRUE(t.changed_since("b", 5));
  // A batch answered without being proposed stops being pending.
  t.batched(words(set_a), kFirst);
  t.dropped(6, false);
  EXPECT_FALSE(t.changed_since("a", 6));
}

TEST(WatchTable, AWriteThatReportsMoreFailsEveryWatchWhileInFlight) {
  WatchTable t;
  t.start(1);
  t.watching(0);
  std::vector<std::string_view> sweep = {"HMDB.EXPIRE"};
  t.batched(words(sweep), kMore);
  EXPECT_TRUE(t.changed_since("x", 1));
  t.proposed(3, false);
  EXPECT_TRUE(t.changed_since("x", 2));
  t.applying(3);
  t.changed("a");
  EXPECT_FALSE(t.changed_since("x", 2)) << "applied: only what it reported";
  EXPECT_TRUE(t.changed_since("a", 2));
  t.applying(4);
  t.all_changed();
  EXPECT_TRUE(t.changed_since("x", 3));
  EXPECT_FALSE(t.changed_since("x", 4));
}

TEST(WatchTable, WritesProposedWhileNobodyWatchesChangeEveryKey) {
  WatchTable t;
  t.start(1);
  std::vector<std::string_view> set_a = {"SET", "a", "1"};
  t.batched(words(set_a), kFirst);  // nobody watches: not recorded
  EXPECT_TRUE(t.changed_since("b", 1)) << "pending, untracked";
  t.proposed(2, false);
  t.watching(1000);
  EXPECT_TRUE(t.changed_since("b", 1)) << "entry 2 changed who knows what";
  EXPECT_FALSE(t.changed_since("b", 2));
  t.batched(words(set_a), kFirst);  // watched now: recorded
  t.proposed(3, false);
  EXPECT_FALSE(t.changed_since("b", 2));
  EXPECT_TRUE(t.changed_since("a", 2));
  t.idle_check(1000 + kWatchTrackingIdleMs - 1);
  t.batched(words(set_a), kFirst);
  t.proposed(4, false);
  EXPECT_FALSE(t.changed_since("b", 3)) << "still recording";
  t.idle_check(1000 + kWatchTrackingIdleMs);
  t.batched(words(set_a), kFirst);
  t.proposed(5, false);
  EXPECT_TRUE(t.changed_since("b", 4)) << "idle: not recorded any more";
}

TEST(WatchTable, KeySpecsNameTheirKeys) {
  std::vector<std::string_view> mset = {"MSET", "a", "1", "b", "2"}, del = {"DEL", "a", "b", "c"};
  std::vector<std::string_view> seen;
  KeySpec{1, -1, 2}.for_each(words(mset), [&](std::string_view k) { seen.push_back(k); });
  EXPECT_EQ(seen, (std::vector<std::string_view>{"a", "b"}));
  seen.clear();
  KeySpec::all_after_name().for_each(words(del), [&](std::string_view k) { seen.push_back(k); });
  EXPECT_EQ(seen, (std::vector<std::string_view>{"a", "b", "c"}));
  seen.clear();
  KeySpec::none().for_each(words(del), [&](std::string_view k) { seen.push_back(k); });
  KeySpec{1, 2, 1}.for_each(words(std::vector<std::string_view>{"X"}), [&](std::string_view k) { seen.push_back(k); });
  EXPECT_TRUE(seen.empty());
}

}  // namespace
}  // namespace hmdb::core

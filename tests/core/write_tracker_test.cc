// tests/core/write_tracker_test.cc — who waits for which proposed entry: a proposal ends
// once, as applied (its term at its index), lost (another term applied there) or unknown
// (the log stopped holding it: replaced by a new leader's entries, cut short, or replaced by
// an installed snapshot), and the in-flight bytes follow. The simulator drives the same class
// through random faults (tests/sim); these are the cases one by one.
#include "core/write_tracker.h"

#include <gtest/gtest.h>

#include <tuple>
#include <vector>

namespace hmdb::core {
namespace {

using Ended = std::tuple<raft::Index, raft::Term, WriteOutcome, std::vector<ReplySlot>>;

struct Recorder {
  std::vector<Ended> ended;
  auto fn() {
    return [this](raft::Index i, WriteTracker::Proposal&& p, WriteOutcome o) {
      ended.emplace_back(i, p.term, o, std::move(p.slots));
    };
  }
};

std::vector<raft::Entry> entries(raft::Index first, std::vector<raft::Term> terms) {
  std::vector<raft::Entry> out;
  for (raft::Term t : terms) {
    raft::Entry e;
    e.index = first++;
    e.term = t;
    out.push_back(e);
  }
  return out;
}

std::vector<ReplySlot> slot(uint64_t session, uint64_t seq) { return {ReplySlot{session, seq}}; }

TEST(WriteTracker, AppliedWithItsTermIsOursAndFreesItsBytes) {
  WriteTracker w;
  Recorder r;
  w.track(5, 2, 100, {ReplySlot{1, 0}, ReplySlot{2, 7}}, r.fn());
  EXPECT_EQ(w.bytes(), 100u);
  EXPECT_EQ(w.take_applied(4, 2), std::nullopt);  // nothing of ours there
  auto got = w.take_applied(5, 2);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->second, WriteOutcome::kApplied);
  EXPECT_EQ(got->first.slots, (std::vector<ReplySlot>{{1, 0}, {2, 7}}));
  EXPECT_TRUE(w.empty());
  EXPECT_EQ(w.bytes(), 0u);
  EXPECT_TRUE(r.ended.empty());
}

TEST(WriteTracker, AppliedWithAnotherTermIsLost) {
  WriteTracker w;
  Recorder r;
  w.track(5, 2, 10, slot(1, 0), r.fn());
  auto got = w.take_applied(5, 3);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->second, WriteOutcome::kLost);
  EXPECT_EQ(w.bytes(), 0u);
}

TEST(WriteTracker, EntriesOfTheSameTermKeepTheirWaiters) {
  WriteTracker w;
  Recorder r;
  for (raft::Index i = 3; i <= 5; i++) w.track(i, 2, 1, slot(1, i), r.fn());
  // The leader's own Ready hands out its own entries: nothing changes.
  auto same = entries(3, {2, 2, 2});
  w.log_replaced(std::nullopt, same, r.fn());
  EXPECT_TRUE(r.ended.empty());
  EXPECT_EQ(w.size(), 3u);
}

TEST(WriteTracker, ANewLeadersEntriesEndTheReplacedOnesAsUnknown) {
  WriteTracker w;
  Recorder r;
  for (raft::Index i = 22; i <= 30; i++) w.track(i, 2, 10, slot(1, i), r.fn());
  // The term-3 leader's entries replace 24.. and the log now ends at 25: 22 and 23 stay
  // (same term), 24 and 25 were replaced, 26..30 are beyond the new end.
  auto repl = entries(24, {3, 3});
  w.log_replaced(std::nullopt, repl, r.fn());
  ASSERT_EQ(r.ended.size(), 7u);
  for (size_t k = 0; k < r.ended.size(); k++) {
    EXPECT_EQ(std::get<0>(r.ended[k]), 24 + k) << "in index order";
    EXPECT_EQ(std::get<2>(r.ended[k]), WriteOutcome::kUnknown);
    EXPECT_EQ(std::get<3>(r.ended[k]), slot(1, 24 + k));
  }
  EXPECT_EQ(w.size(), 2u);
  EXPECT_EQ(w.bytes(), 20u);
  EXPECT_NE(w.find(22), nullptr);
  EXPECT_NE(w.find(23), nullptr);
}

TEST(WriteTracker, ASnapshotInstallEndsEveryProposal) {
  WriteTracker w;
  Recorder r;
  for (raft::Index i = 8; i <= 12; i++) w.track(i, 4, 1, slot(2, i), r.fn());
  // Covered (8..10: it may be inside the snapshot) or beyond it (11, 12: the snapshot
  // replaced the whole log): unknown either way.
  w.log_replaced(10, {}, r.fn());
  EXPECT_EQ(r.ended.size(), 5u);
  EXPECT_TRUE(w.empty());
  EXPECT_EQ(w.bytes(), 0u);
}

TEST(WriteTracker, ASnapshotThenEntriesInOneReady) {
  WriteTracker w;
  Recorder r;
  w.track(11, 4, 1, slot(2, 1), r.fn());
  auto after = entries(11, {5});
  w.log_replaced(10, after, r.fn());
  ASSERT_EQ(r.ended.size(), 1u);
  // Proposed after the install: tracked and kept.
  w.track(12, 5, 1, slot(2, 2), r.fn());
  auto next = entries(12, {5});
  w.log_replaced(std::nullopt, next, r.fn());
  EXPECT_EQ(r.ended.size(), 1u);
  EXPECT_EQ(w.size(), 1u);
}

TEST(WriteTracker, ProposingAtAnIndexStillWaitedOnEndsTheOldOneFirst) {
  // Impossible while log_replaced() runs on every Ready (the invariant); if it happens, the
  // old waiter is answered instead of aborting the node, and it is counted.
  WriteTracker w;
  Recorder r;
  w.track(24, 2, 5, slot(1, 1), r.fn());
  w.track(24, 4, 7, slot(3, 9), r.fn());
  ASSERT_EQ(r.ended.size(), 1u);
  EXPECT_EQ(std::get<1>(r.ended[0]), 2u);
  EXPECT_EQ(std::get<2>(r.ended[0]), WriteOutcome::kUnknown);
  EXPECT_EQ(w.reused(), 1u);
  EXPECT_EQ(w.bytes(), 7u);
  auto got = w.take_applied(24, 4);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->first.slots, slot(3, 9));
}

}  // namespace
}  // namespace hmdb::core
